"""Clustering quality of the deep-clustering code on USPS (all 9,298 16 x 16 digits).

    python bench/dec_usps.py [--usps ../shared/data/benchmarks/usps.h5] [--epochs 100]
                             [--method dec|idec|both] [--seed 0 [1 2 ...]] [--threads 2]
                             [--cache DIR] [--maxiter 10000] [--kl-weight G]
                             [--reconstruction-weight W] [--lr LR] [--momentum M]
                             [--update-interval N] [--tol T] [--batch-size B]

The same code as the tremor branch (ConvAutoencoder + Lightning pretraining + fit_dec),
with a small DCEC-like convolutional autoencoder (32-64-128 channels, 10-d embedding).
Prints the unsupervised clustering accuracy (best one-to-one matching, Hungarian), NMI and
ARI of k-means on the pretrained embedding (the baseline) and after DEC / IDEC
fine-tuning, and the wall times, per seed and their mean. Each method has its published
settings for USPS (:data:`METHODS`); the options override them. Published (USPS, ACC /
NMI): k-means 0.67 / 0.63, autoencoder + k-means 0.71 / 0.68, DEC 0.76 / 0.79
(XifengGuo/DEC-keras, mean of 10 trials), IDEC about 0.76 / 0.78, DCEC about 0.79 / 0.83
(Guo et al. 2017).
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
#: Fine-tuning settings (``tremor.dec`` keys) of each method; batches of 256 as the papers.
METHODS = {
    # SGD(0.01, 0.9) as DEC-keras, with the tremor reference's KL weight 0.1; target update
    # every 140 batches, tol 5e-4 (DEC-keras for USPS: KL weight 1, 30 batches, tol 1e-3)
    "dec": {"kl_weight": 0.1, "reconstruction_weight": 0.0, "lr": 0.01, "momentum": 0.9,
            "update_interval": 140, "tol": 5e-4, "batch_size": 256},
    # IDEC's (Guo et al. 2017; XifengGuo/IDEC) for USPS: loss = MSE + gamma KL, gamma 0.1,
    # SGD(0.1, 0.99), target update every 30 batches, tol 1e-3
    "idec": {"kl_weight": 0.1, "reconstruction_weight": 1.0, "lr": 0.1, "momentum": 0.99,
             "update_interval": 30, "tol": 1e-3, "batch_size": 256},
}


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


def fine_tune(ae: ConvAutoencoder, xt: torch.Tensor, y: np.ndarray, km, method: str,
              args: argparse.Namespace, seed: int) -> tuple[float, float, float]:
    """DEC or IDEC from the k-means ``km``; prints and returns (ACC, NMI, ARI)."""
    dec = {**METHODS[method], "maxiter": args.maxiter}
    for key in ("kl_weight", "lr", "momentum", "update_interval", "tol", "batch_size"):
        if getattr(args, key) is not None:
            dec[key] = getattr(args, key)
    if method == "idec" and args.reconstruction_weight is not None:
        dec["reconstruction_weight"] = args.reconstruction_weight
    res = fit_dec(ae, xt, km.centres, km.labels, dec=dec, seed=seed,
                  trainer={"channels_last": True})
    settings = ", ".join(f"{k} {v:g}" for k, v in dec.items() if k != "maxiter")
    print(f"{method.upper():4s} ({settings})\n     {res.n_iter} iterations, {res.stop_reason}, "
          f"{res.seconds:.1f} s: {scores(y, res.labels)}")
    return (accuracy(y, res.labels), normalized_mutual_info_score(y, res.labels),
            adjusted_rand_score(y, res.labels))


def run_seed(x: np.ndarray, y: np.ndarray, seed: int, args: argparse.Namespace) -> dict:
    """Pretraining (or its cache), k-means and the fine-tuning methods of one seed."""
    start = time.perf_counter()
    cached = args.cache / f"usps_ae_seed{seed}_epochs{args.epochs}.pt" if args.cache else None
    if cached is not None and cached.exists():
        ae = ConvAutoencoder((1, 16, 16), **MODEL)
        ae.load_state_dict(torch.load(cached))
        ae.to(memory_format=torch.channels_last)
        print(f"pretrained autoencoder ({args.epochs} epochs) from {cached}")
    else:
        with tempfile.TemporaryDirectory() as root:
            ae = pretrain(x, args.epochs, seed, root)
        print(f"pretraining ({args.epochs} epochs): {time.perf_counter() - start:.1f} s")
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.save(ae.state_dict(), cached)
    xt = as_tensor(x)
    z, _ = embed(ae.eval(), xt, batch_size=1024)
    km = fit_kmeans(z, 10, n_init=20, seed=seed)
    print(f"autoencoder + k-means (n_init 20):  {scores(y, km.labels)}")
    found = {"k-means": (accuracy(y, km.labels), normalized_mutual_info_score(y, km.labels),
                         adjusted_rand_score(y, km.labels))}
    state = {k: v.clone() for k, v in ae.state_dict().items()}
    for method in ("dec", "idec") if args.method == "both" else (args.method,):
        ae.load_state_dict(state)
        found[method] = fine_tune(ae, xt, y, km, method, args, seed)
    print(f"seed {seed}: wall time {time.perf_counter() - start:.1f} s")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--usps", type=Path, default=DEFAULT_USPS)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--method", choices=("idec", "dec", "both"), default="dec")
    ap.add_argument("--seed", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--maxiter", type=int, default=10_000)
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder to keep/reuse the pretrained autoencoder of each seed")
    over = ap.add_argument_group("overrides of the method's settings (METHODS)")
    over.add_argument("--kl-weight", type=float, help="weight of the clustering (KL) loss")
    over.add_argument("--reconstruction-weight", type=float,
                      help="IDEC's weight of the reconstruction (MSE) loss (DEC: 0)")
    over.add_argument("--lr", type=float)
    over.add_argument("--momentum", type=float)
    over.add_argument("--update-interval", type=int)
    over.add_argument("--tol", type=float)
    over.add_argument("--batch-size", type=int)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    x, y = load_usps(args.usps)
    found = {}
    for seed in args.seed:
        print(f"USPS: {x.shape[0]} images of 16 x 16, 10 digits; {args.threads} threads, "
              f"seed {seed}")
        found[seed] = run_seed(x, y, seed, args)
    print(f"\n{'':8s} " + " ".join(f"{'seed ' + str(s):>17s}" for s in found)
          + f" {'mean':>17s}   (ACC / NMI / ARI)")
    for name in found[args.seed[0]]:
        rows = np.array([found[s][name] for s in found])
        print(f"{name:8s} " + " ".join("  {:.3f}/{:.3f}/{:.3f}".format(*r) for r in rows)
              + "  {:.3f}/{:.3f}/{:.3f}".format(*rows.mean(0)))


if __name__ == "__main__":
    main()
