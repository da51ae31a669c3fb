"""Clustering quality of the deep-clustering code on USPS (all 9,298 16 x 16 digits).

    python bench/dec_usps.py [--usps ../shared/data/benchmarks/usps.h5] [--epochs 100]
                             [--method dec|idec|both] [--seed 0] [--threads 2] [--tol 5e-4]

The same code as the tremor branch (ConvAutoencoder + Lightning pretraining + fit_dec),
with a small DCEC-like convolutional autoencoder (32-64-128 channels, 10-d embedding).
Prints the unsupervised clustering accuracy (best one-to-one matching, Hungarian), NMI and
ARI of k-means on the pretrained embedding (the baseline) and after DEC / IDEC
fine-tuning, and the wall times. Published (USPS, ACC / NMI): k-means 0.67 / 0.63,
autoencoder + k-means 0.71 / 0.68, DEC 0.76 / 0.79 (XifengGuo/DEC-keras, mean of 10
trials), IDEC about 0.76 / 0.78, DCEC about 0.79 / 0.83 (Guo et al. 2017).
USPS: the standard set used by these papers (see ../shared/data/MANIFEST.md).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

import h5py
import lightning as L
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from seiscluster.tremor.autoencoder import AutoencoderModule, ConvAutoencoder, embed
from seiscluster.tremor.datamodule import SpectrogramDataModule, as_tensor
from seiscluster.tremor.dec import fit_dec
from seiscluster.tremor.kscan import fit_kmeans

DEFAULT_USPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks" / "usps.h5"
MODEL = dict(channels=[32, 64, 128], kernels=[[5, 5], [5, 5], [3, 3]], strides=[2, 2, 2],
             latent_dim=10, activation="relu", latent_activation=False)


def load_usps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All 9,298 images as (n, 1, 16, 16) float32 in [0, 1], and their digits."""
    with h5py.File(path, "r") as f:
        x = np.concatenate([f["train/data"][:], f["test/data"][:]]).astype(np.float32)
        y = np.concatenate([f["train/target"][:], f["test/target"][:]]).astype(int)
    return x.reshape(-1, 1, 16, 16), y


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Unsupervised clustering accuracy: the best one-to-one label matching."""
    k = max(y.max(), pred.max()) + 1
    count = np.zeros((k, k), dtype=np.int64)
    np.add.at(count, (pred, y), 1)
    rows, cols = linear_sum_assignment(-count)
    return float(count[rows, cols].sum() / y.size)


def scores(y: np.ndarray, pred: np.ndarray) -> str:
    return (f"ACC {accuracy(y, pred):.3f}  NMI {normalized_mutual_info_score(y, pred):.3f}  "
            f"ARI {adjusted_rand_score(y, pred):.3f}")


def pretrain(x: np.ndarray, epochs: int, seed: int, root: str) -> ConvAutoencoder:
    L.seed_everything(seed, verbose=False)
    dm = SpectrogramDataModule(x, batch_size=256, val_fraction=0.1, split_seed=seed,
                               seed=seed, eval_batch_size=1024)
    module = AutoencoderModule(model={"input_shape": list(x.shape[1:]), **MODEL}, lr=1e-3,
                               lr_decay_rate=0.5, lr_decay_steps=10_000)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=root, deterministic=True,
                        use_distributed_sampler=False)
    trainer.fit(module, datamodule=dm)
    print(f"  final losses: train {float(trainer.callback_metrics['train_loss']):.5f}, "
          f"val {float(trainer.callback_metrics['val_loss']):.5f}")
    return module.model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--usps", type=Path, default=DEFAULT_USPS)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--method", choices=("idec", "dec", "both"), default="dec")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--maxiter", type=int, default=10_000)
    ap.add_argument("--update-interval", type=int, default=140)
    ap.add_argument("--tol", type=float, default=0.0005)
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder to keep/reuse the pretrained autoencoder of each seed")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    x, y = load_usps(args.usps)
    print(f"USPS: {x.shape[0]} images of 16 x 16, 10 digits; {args.threads} threads, "
          f"seed {args.seed}")
    start = time.perf_counter()
    cached = args.cache / f"usps_ae_seed{args.seed}_epochs{args.epochs}.pt" if args.cache else None
    if cached is not None and cached.exists():
        ae = ConvAutoencoder((1, 16, 16), **MODEL)
        ae.load_state_dict(torch.load(cached))
        ae.to(memory_format=torch.channels_last)
        print(f"  pretrained autoencoder from {cached}")
    else:
        with tempfile.TemporaryDirectory() as root:
            ae = pretrain(x, args.epochs, args.seed, root)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.save(ae.state_dict(), cached)
    t_pre = time.perf_counter() - start
    xt = as_tensor(x)
    z, _ = embed(ae.eval(), xt, batch_size=1024)
    km = fit_kmeans(z, 10, n_init=20, seed=args.seed)
    print(f"pretraining ({args.epochs} epochs): {t_pre:.1f} s")
    print(f"autoencoder + k-means (n_init 20):  {scores(y, km.labels)}")
    state = {k: v.clone() for k, v in ae.state_dict().items()}
    methods = ("idec", "dec") if args.method == "both" else (args.method,)
    for method in methods:
        ae.load_state_dict(state)
        dec = {"batch_size": 256, "update_interval": args.update_interval, "tol": args.tol,
               "maxiter": args.maxiter, "kl_weight": 0.1, "lr": 0.01, "momentum": 0.9,
               "reconstruction_weight": 1.0 if method == "idec" else 0.0}
        res = fit_dec(ae, xt, km.centres, km.labels, dec=dec, seed=args.seed,
                      trainer={"channels_last": True})
        print(f"{method.upper():4s} ({res.n_iter} iterations, {res.stop_reason}, "
              f"{res.seconds:.1f} s): {scores(y, res.labels)}")
    print(f"total wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
