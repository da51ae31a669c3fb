"""Which rule chooses k best: every rule of ``seiscluster.kselect`` on data with a known or
studied k.

    python bench/kselect.py blobs              # synthetic blobs, known k (tuning + held out)
    python bench/kselect.py velocity           # example model (5 provinces), Cascadia, S362ANI
    python bench/kselect.py embeddings FILE... # tremor embeddings.nc of finished runs

Each data set is scanned once (criteria, stability and gap statistic with the configured
defaults) and every rule is applied to the same table, so the rules are compared on equal
terms. ``blobs`` draws scikit-learn blobs of four shapes (isotropic, varied spread,
anisotropic, unequal sizes) with k = 3, 5, 7, in 10 dimensions, for tuning seed 0 and
held-out seed 100, and scans them through both branches' scans (velocity: elbow knee
as the criterion; tremor: Calinski-Harabasz); it prints the share of data sets where each
rule finds the true k. ``velocity`` prints the table and each rule's k for the real models
in ``../shared/data`` and the embedded example; ``embeddings`` the same for tremor runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.datasets import make_blobs

from seiscluster import kselect
from seiscluster.config import KRule, compose, to_container
from seiscluster.errors import InputError
from seiscluster.tremor.kscan import kscan
from seiscluster.velocity.elbow import elbow_scan
from seiscluster.velocity.example import make_example_model
from seiscluster.velocity.io import open_model
from seiscluster.velocity.profiles import extract_profiles, profile_array
from seiscluster.velocity.stages import _kmeans_kwargs

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ("isotropic", "varied", "anisotropic", "unequal")
TUNING, HELD_OUT = (0,), (100,)


def blobs(shape: str, k: int, seed: int, n: int = 600, dim: int = 10) -> np.ndarray:
    """n samples of k blobs of one shape in ``dim`` dimensions, centres in (-8, 8) and
    spreads that let neighbouring blobs touch."""
    rng = np.random.default_rng(seed)
    std: float | list[float] = 1.8
    sizes: int | list[int] = n
    if shape == "varied":
        std = list(rng.uniform(0.8, 2.5, k))
    if shape == "unequal":
        w = rng.uniform(0.3, 1.0, k)
        sizes = list(np.maximum(20, (n * w / w.sum()).astype(int)))
    X, _ = make_blobs(n_samples=sizes, n_features=dim, centers=None if shape == "unequal"
                      else k, cluster_std=std, center_box=(-8, 8), random_state=seed)
    if shape == "anisotropic":
        X = X @ rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return X


def rules_of(table: pd.DataFrame, criterion_k: int, min_stability: float) -> dict[str, int]:
    """The k of every rule on one scan table."""
    return {rule: kselect.choose(table, rule, criterion_k, "criterion", min_stability,
                                 "rule")[0] for rule in [rule.value for rule in KRule]}


def scan_velocity(X: np.ndarray, cfg, nrange=None) -> tuple[pd.DataFrame, int, float]:
    elbow = {k: v for k, v in to_container(cfg.velocity.elbow).items() if k != "nrange"}
    start = time.perf_counter()
    res = elbow_scan(X, nrange or cfg.velocity.elbow.nrange, **_kmeans_kwargs(
        to_container(cfg.velocity.kmeans)), **elbow, n_jobs=2,
        min_stability=cfg.diagnostics.min_stability)
    return res.table, res.criterion_k, time.perf_counter() - start


def scan_tremor(Z: np.ndarray, cfg, k_max: int | None = None) -> tuple[pd.DataFrame, int, float]:
    ks = to_container(cfg.tremor.kscan)
    start = time.perf_counter()
    res = kscan(Z, k_min=ks["k_min"], k_max=k_max or ks["k_max"], n_init=ks["n_init"],
                criterion=ks["criterion"], seed=int(cfg.seed), n_jobs=2,
                stability_seeds=ks["stability_seeds"],
                stability_fraction=ks["stability_fraction"], sample_size=ks["sample_size"],
                gap_references=ks["gap_references"], min_stability=cfg.diagnostics.min_stability)
    return res.table, res.criterion_k, time.perf_counter() - start


def run_blobs(cfg) -> None:
    rows = []
    for group, seeds in (("tuning", TUNING), ("held-out", HELD_OUT)):
        for seed in seeds:
            for shape in SHAPES:
                for k in (3, 5, 7):
                    X = blobs(shape, k, seed)
                    for branch, scan in (("velocity", lambda X: scan_velocity(
                            X, cfg, list(range(2, 13)))), ("tremor", lambda X: scan_tremor(
                                X, cfg, 12))):
                        table, ck, secs = scan(X)
                        got = rules_of(table, ck, cfg.diagnostics.min_stability)
                        rows.append({"group": group, "seed": seed, "shape": shape,
                                     "true_k": k, "branch": branch, "seconds": secs,
                                     "stability_true_k": float(
                                         table.loc[table.k == k, "stability"].iloc[0]),
                                     **got})
                        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    hits = frame[list([rule.value for rule in KRule])].eq(frame["true_k"], axis=0)
    summary = hits.groupby([frame["group"], frame["branch"]]).mean()
    print("\nshare of data sets where each rule finds the true k:")
    print(summary.round(3).to_string())


def velocity_sets() -> dict[str, tuple[list[str], np.ndarray, np.ndarray | None]]:
    out = {}
    for name, overrides in (("example", []), ("cascadia", ["experiment=cascadia"]),
                            ("s362ani", ["data=s362ani"])):
        try:
            cfg = compose(overrides)
        except InputError as err:  # a missing file skips the data set
            print(f"{name}: skipped ({err})")
            continue
        d = cfg.data.velocity
        ds = make_example_model(**to_container(d.example)) if d.path is None else \
            open_model(d.path, fmt=to_container(d.format), variable=d.variable)
        p = cfg.velocity.profiles
        prof = extract_profiles(ds, zrange=to_container(p.zrange), spacing=p.spacing, dz=p.dz)
        truth = prof["province"].values if "province" in prof.coords else None
        out[name] = (overrides, profile_array(prof), truth)
    return out


def run_velocity() -> None:
    for name, (overrides, X, _) in velocity_sets().items():
        cfg = compose(overrides)
        table, ck, secs = scan_velocity(X, cfg)
        print(f"\n{name}: {X.shape[0]} profiles x {X.shape[1]} depths, scan {secs:.1f} s")
        print(table.round(4).to_string(index=False))
        print("criterion k:", ck, "rules:", rules_of(table, ck, cfg.diagnostics.min_stability))


def run_embeddings(paths: list[str], overrides: list[str]) -> None:
    for path in paths:
        with xr.open_dataset(path) as ds:
            z = ds["embedding"].values
            valid = ds["kmeans_label"].values > 0
        Z = z[valid] if z.ndim == 2 else z.reshape(-1, z.shape[-1])[valid.ravel()]
        cfg = compose(overrides)
        k_max = min(int(cfg.tremor.kscan.k_max), Z.shape[0] - 1)
        table, ck, secs = scan_tremor(Z, cfg, k_max)
        print(f"\n{path}: {Z.shape[0]} embeddings x {Z.shape[1]}, scan {secs:.1f} s")
        print(table.round(4).to_string(index=False))
        print("criterion k:", ck, "rules:", rules_of(table, ck, cfg.diagnostics.min_stability))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("blobs", "velocity", "embeddings"))
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="Hydra overrides of the configuration used for the scans")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    if args.what == "blobs":
        run_blobs(compose(args.overrides))
    elif args.what == "velocity":
        run_velocity()
    else:
        run_embeddings(args.paths, args.overrides)


if __name__ == "__main__":
    sys.exit(main())
