"""Clustering quality of every embedding clustering method on USPS (all 9,298 16 x 16 digits).

    python bench/dec_usps.py [--usps ../shared/data/benchmarks/usps.h5]
                             [--autoencoder dense|conv] [--epochs N] [--seed 0 [1 2 ...]]
                             [--methods kmeans,gmm,agglomerative,umap_gmm,dec,idec]
                             [--threads 2] [--cache DIR] [--maxiter 10000]
                             [--n-neighbors 10] [--n-components 10] [--min-dist 0]
                             [--kl-weight G] [--reconstruction-weight W] [--lr LR]
                             [--momentum M] [--update-interval N] [--tol T] [--batch-size B]

One autoencoder per seed (cached with --cache), then on its embedding every method of
``tremor.cluster`` (:class:`seiscluster.tremor.cluster.EmbeddingClusterer`: k-means with 20
restarts, Gaussian mixture, Ward agglomerative, UMAP + Gaussian mixture as N2D) and the
DEC / IDEC fine-tuning from the k-means (``fit_dec``, the tremor branch's code). Prints
the unsupervised clustering accuracy (best one-to-one matching, Hungarian), NMI, ARI and
the wall time of each method (pretraining apart), per seed, then all methods side by side
(mean and range over the seeds).

Autoencoders: ``dense`` (default), N2D's 256-500-500-2000-10 (ReLU; Adam 1e-3, batches of
256, MSE; N2D trains 1000 epochs); ``conv``, a small DCEC-like convolutional one (32-64-128
channels, 10-d embedding, the tremor branch's Lightning pretraining). Published (USPS,
ACC / NMI): k-means 0.67 / 0.63, autoencoder + k-means 0.71 / 0.68, DEC 0.76 / 0.79
(XifengGuo/DEC-keras, mean of 10 trials), IDEC about 0.76 / 0.78, DCEC about 0.79 / 0.83
(Guo et al. 2017), N2D 0.948 / 0.901 (McConville et al. 2019).
USPS: the standard set used by these papers (see ../shared/data/MANIFEST.md).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from itertools import pairwise
from pathlib import Path

import h5py
import lightning as L
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from torch import Tensor, nn

from seiscluster.tremor.autoencoder import AutoencoderModule, ConvAutoencoder, embed
from seiscluster.tremor.cluster import METHODS as CLUSTERINGS
from seiscluster.tremor.cluster import EmbeddingClusterer
from seiscluster.tremor.datamodule import SpectrogramDataModule, as_tensor
from seiscluster.tremor.dec import fit_dec

DEFAULT_USPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks" / "usps.h5"
MODEL = dict(channels=[32, 64, 128], kernels=[[5, 5], [5, 5], [3, 3]], strides=[2, 2, 2],
             latent_dim=10, activation="relu", latent_activation=False)
#: N2D's dense autoencoder: hidden sizes and embedding size.
DENSE = (500, 500, 2000, 10)
#: Fine-tuning settings (``tremor.dec`` keys) of each method; batches of 256 as the papers.
FINETUNE = {
    # SGD(0.01, 0.9) as DEC-keras, with the tremor reference's KL weight 0.1; target update
    # every 140 batches, tol 5e-4 (DEC-keras for USPS: KL weight 1, 30 batches, tol 1e-3)
    "dec": {"kl_weight": 0.1, "reconstruction_weight": 0.0, "lr": 0.01, "momentum": 0.9,
            "update_interval": 140, "tol": 5e-4, "batch_size": 256},
    # IDEC's (Guo et al. 2017; XifengGuo/IDEC) for USPS: loss = MSE + gamma KL, gamma 0.1,
    # SGD(0.1, 0.99), target update every 30 batches, tol 1e-3
    "idec": {"kl_weight": 0.1, "reconstruction_weight": 1.0, "lr": 0.1, "momentum": 0.99,
             "update_interval": 30, "tol": 1e-3, "batch_size": 256},
}
ALL_METHODS = (*CLUSTERINGS, *FINETUNE)


def mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    """Dense layers of ``sizes`` with ReLU between them (linear output)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        layers += [nn.Linear(a, b), *([nn.ReLU()] if i < len(sizes) - 2 else [])]
    return nn.Sequential(*layers)


class DenseAutoencoder(nn.Module):
    """N2D's dense autoencoder (the interface of ConvAutoencoder that fit_dec uses)."""

    def __init__(self, n_inputs: int, sizes: tuple[int, ...] = DENSE) -> None:
        super().__init__()
        self.encoder = mlp((n_inputs, *sizes))
        self.decoder = mlp((*sizes[::-1], n_inputs))

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def decoder_parameters(self) -> list[nn.Parameter]:
        return list(self.decoder.parameters())

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encoder(x)
        return z, self.decoder(z)


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


def scores(y: np.ndarray, pred: np.ndarray, seconds: float) -> tuple[float, ...]:
    """(ACC, NMI, ARI, wall time)."""
    return (accuracy(y, pred), normalized_mutual_info_score(y, pred),
            adjusted_rand_score(y, pred), seconds)


def pretrain_conv(x: np.ndarray, epochs: int, seed: int) -> ConvAutoencoder:
    """The small convolutional autoencoder, with the tremor branch's Lightning pretraining."""
    L.seed_everything(seed, verbose=False)
    dm = SpectrogramDataModule(x, batch_size=256, val_fraction=0.1, split_seed=seed,
                               seed=seed, eval_batch_size=1024)
    module = AutoencoderModule(model={"input_shape": list(x.shape[1:]), **MODEL}, lr=1e-3,
                               lr_decay_rate=0.5, lr_decay_steps=10_000)
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0,
                            default_root_dir=root, deterministic=True,
                            use_distributed_sampler=False)
        trainer.fit(module, datamodule=dm)
    print(f"  final losses: train {float(trainer.callback_metrics['train_loss']):.5f}, "
          f"val {float(trainer.callback_metrics['val_loss']):.5f}")
    return module.model


def pretrain_dense(x: np.ndarray, epochs: int, seed: int,
                   batch_size: int = 256) -> DenseAutoencoder:
    """N2D's pretraining: Adam 1e-3, MSE, shuffled batches of 256 (all samples)."""
    torch.manual_seed(seed)
    ae = DenseAutoencoder(x.shape[1])
    optimizer = torch.optim.Adam(ae.parameters(), 1e-3)
    order = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x)
    for epoch in range(epochs):
        total = 0.0
        for batch in xt[torch.randperm(len(xt), generator=order)].split(batch_size):
            loss = nn.functional.mse_loss(ae(batch)[1], batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        if (epoch + 1) % 50 == 0 or epoch + 1 == epochs:
            print(f"  epoch {epoch + 1}: loss {total / len(xt):.5f}", flush=True)
    return ae


def autoencoder(x: np.ndarray, kind: str, epochs: int, seed: int,
                cache: Path | None) -> nn.Module:
    """The pretrained autoencoder of ``seed``, from the cache when there."""
    cached = cache / f"usps_{kind}_seed{seed}_epochs{epochs}.pt" if cache else None
    ae = DenseAutoencoder(x.shape[1]) if kind == "dense" else ConvAutoencoder((1, 16, 16),
                                                                              **MODEL)
    if cached is not None and cached.exists():
        ae.load_state_dict(torch.load(cached))
        print(f"pretrained autoencoder ({kind}, {epochs} epochs) from {cached}")
        return ae
    start = time.perf_counter()
    ae = pretrain_dense(x, epochs, seed) if kind == "dense" else pretrain_conv(x, epochs, seed)
    print(f"pretraining ({kind}, {epochs} epochs): {time.perf_counter() - start:.1f} s")
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ae.state_dict(), cached)
    return ae


def fine_tune(ae: nn.Module, xt: Tensor, y: np.ndarray, init: EmbeddingClusterer,
              method: str, args: argparse.Namespace, seed: int) -> tuple[float, ...]:
    """DEC or IDEC from the k-means ``init``; its scores."""
    dec = {**FINETUNE[method], "maxiter": args.maxiter}
    for key in ("kl_weight", "lr", "momentum", "update_interval", "tol", "batch_size"):
        if getattr(args, key) is not None:
            dec[key] = getattr(args, key)
    if method == "idec" and args.reconstruction_weight is not None:
        dec["reconstruction_weight"] = args.reconstruction_weight
    res = fit_dec(ae, xt, init.centres_, init.labels_, dec=dec, seed=seed,
                  trainer={"channels_last": args.autoencoder == "conv"})
    settings = ", ".join(f"{k} {v:g}" for k, v in dec.items() if k != "maxiter")
    print(f"  {method} ({settings}): {res.n_iter} iterations, {res.stop_reason}")
    return scores(y, res.labels, res.seconds)


def run_seed(x: np.ndarray, y: np.ndarray, seed: int, args: argparse.Namespace) -> dict:
    """The autoencoder of one seed and every method on its embedding: name -> scores."""
    if args.autoencoder == "dense":
        x = x.reshape(len(x), -1)
    ae = autoencoder(x, args.autoencoder, args.epochs, seed, args.cache).eval()
    xt = as_tensor(x, args.autoencoder == "conv")
    if args.autoencoder == "conv":
        ae.to(memory_format=torch.channels_last)
    z, _ = embed(ae, xt, batch_size=1024)
    found, fits = {}, {}
    for method in (m for m in args.methods if m in CLUSTERINGS or m == "kmeans"):
        start = time.perf_counter()
        fits[method] = EmbeddingClusterer(
            method, 10, n_init=20, n_neighbors=args.n_neighbors,
            n_components=args.n_components, min_dist=args.min_dist, seed=seed).fit(z)
        found[method] = scores(y, fits[method].labels_, time.perf_counter() - start)
    state = {k: v.clone() for k, v in ae.state_dict().items()}
    for method in (m for m in args.methods if m in FINETUNE):
        ae.load_state_dict(state)
        found[method] = fine_tune(ae.train(), xt, y, fits["kmeans"], method, args, seed)
    for method in args.methods:
        print("  {:14s} ACC {:.3f}  NMI {:.3f}  ARI {:.3f}  {:7.1f} s".format(
            method, *found[method]), flush=True)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--usps", type=Path, default=DEFAULT_USPS)
    ap.add_argument("--autoencoder", choices=("dense", "conv"), default="dense")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--methods", default=",".join(ALL_METHODS),
                    help="comma-separated, among " + ", ".join(ALL_METHODS))
    ap.add_argument("--seed", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--maxiter", type=int, default=10_000)
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder to keep/reuse the pretrained autoencoder of each seed")
    umap = ap.add_argument_group("UMAP of umap_gmm (N2D's settings)")
    umap.add_argument("--n-neighbors", type=int, default=10)
    umap.add_argument("--n-components", type=int, default=10)
    umap.add_argument("--min-dist", type=float, default=0.0)
    over = ap.add_argument_group("overrides of the fine-tuning settings (FINETUNE)")
    over.add_argument("--kl-weight", type=float, help="weight of the clustering (KL) loss")
    over.add_argument("--reconstruction-weight", type=float,
                      help="IDEC's weight of the reconstruction (MSE) loss (DEC: 0)")
    over.add_argument("--lr", type=float)
    over.add_argument("--momentum", type=float)
    over.add_argument("--update-interval", type=int)
    over.add_argument("--tol", type=float)
    over.add_argument("--batch-size", type=int)
    args = ap.parse_args()
    args.methods = args.methods.split(",")
    unknown = set(args.methods) - set(ALL_METHODS)
    if unknown:
        ap.error(f"unknown methods {sorted(unknown)}")
    if set(args.methods) & set(FINETUNE) and "kmeans" not in args.methods:
        args.methods.insert(0, "kmeans")  # DEC / IDEC start from it
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    x, y = load_usps(args.usps)
    found = {}
    for seed in args.seed:
        print(f"USPS: {x.shape[0]} images of 16 x 16, 10 digits; {args.autoencoder} "
              f"autoencoder, {args.epochs} epochs; {args.threads} threads; seed {seed}",
              flush=True)
        found[seed] = run_seed(x, y, seed, args)
    print(f"\nseeds {', '.join(map(str, found))}: mean [min-max]")
    print(f"{'method':14s} {'ACC':>19s} {'NMI':>19s} {'ARI':>19s} {'seconds':>9s}")
    for method in args.methods:
        rows = np.array([found[s][method] for s in found])
        print(f"{method:14s} " + " ".join(
            f"{m:.3f} [{lo:.3f}-{hi:.3f}]" for m, lo, hi in
            zip(rows.mean(0)[:3], rows.min(0)[:3], rows.max(0)[:3], strict=True))
            + f" {rows[:, 3].mean():9.1f}")


if __name__ == "__main__":
    main()
