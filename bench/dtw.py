"""DTW k-means at scale: tslearn's levers against unconstrained DTW, measured in one run.

    python bench/dtw.py [--quick] [--cascadia] [--sizes 250 500 1000]

The reference is seisgo's DTW fit, tslearn ``TimeSeriesKMeans(metric="dtw", n_clusters=5,
max_iter_barycenter=100, random_state=0)`` (one start, ``n_jobs=1``), on the profiles of the
embedded example model at 48 x 100 nodes and 101 depths (about 4.6k profiles) or, with
``--cascadia``, of the Cascadia model in ../shared/data over 0-60 km. Against it, with
:class:`~seiscluster.velocity.kmeans.ProfileKMeans` and the same settings: a Sakoe-Chiba band
of several radii and an Itakura parallelogram (``velocity.kmeans.metric_params``),
``n_jobs=2``, fitting on seeded subsamples then assigning every profile
(``velocity.kmeans.fit_sample_size``), one combination, and Euclidean k-means. Each row
prints the wall time, the speed-up over the reference and the adjusted Rand index (ARI) of
the labels against the reference's and, for the example, against the true provinces.
The machine's load (``os.getloadavg``) is printed before and after: timings on a shared
machine are only comparable within one run.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score as ari
from tslearn.clustering import TimeSeriesKMeans
from velocity import timed  # bench/velocity.py

from seiscluster.velocity.example import make_example_model
from seiscluster.velocity.io import open_model
from seiscluster.velocity.kmeans import ProfileKMeans
from seiscluster.velocity.profiles import extract_profiles, profile_array

CASCADIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "velocity" / \
    "Cascadia-ANT+RF-Delph2018.r0.1.nc"
#: seisgo's k-means settings (REFERENCE.md part A) with the metric set to DTW.
SEISGO = {"n_clusters": 5, "metric": "dtw", "max_iter_barycenter": 100, "random_state": 0}


def load_profiles(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Profiles (n, n_depth), the true provinces (example only) and a description."""
    if args.cascadia:
        # over 0-60 km, as the README's Cascadia run: the depths above 0 km are NaN at most nodes
        prof = extract_profiles(open_model(CASCADIA), zrange=[0, 60])
        X = profile_array(prof)
        return X, None, (f"Cascadia (Delph et al. 2018), 0-60 km: {X.shape[0]} profiles x "
                         f"{X.shape[1]}")
    n_lat, n_lon = (16, 30) if args.quick else (48, 100)
    model = make_example_model(n_lat=n_lat, n_lon=n_lon, depth_max=100.0, depth_step=1.0,
                               seed=0)
    prof = extract_profiles(model)
    X = profile_array(prof)
    return X, prof["province"].values, (
        f"embedded example {n_lat} x {n_lon} nodes: {X.shape[0]} profiles x {X.shape[1]} depths")


def ours(X: np.ndarray, **kwargs: Any) -> Callable[[], Any]:
    """A ProfileKMeans fit with seisgo's settings plus ``kwargs``."""
    return lambda: ProfileKMeans(**{**SEISGO, "n_init": 1, **kwargs}).fit(X)


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + \
        f" ({os.cpu_count()} CPUs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small model (smoke run)")
    parser.add_argument("--cascadia", action="store_true", help="the Cascadia model")
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000],
                        help="fit_sample_size values")
    args = parser.parse_args()
    X, truth, what = load_profiles(args)
    print(f"{what}; k={SEISGO['n_clusters']}, one start, seisgo's settings")
    print(f"before: {load()}")
    ProfileKMeans(**{**SEISGO, "n_init": 1}).fit(X[:20])  # warm-up: numba compilation

    ref_model, t_ref = timed(lambda: TimeSeriesKMeans(**SEISGO, n_jobs=1).fit(X[:, :, None]))
    ref = ref_model.labels_
    runs: list[tuple[str, Callable[[], Any]]] = [
        *((f"Sakoe-Chiba radius {r}", ours(X, metric_params={
            "global_constraint": "sakoe_chiba", "sakoe_chiba_radius": r})) for r in (1, 5, 10)),
        ("Itakura max slope 2", ours(X, metric_params={"global_constraint": "itakura"})),
        ("n_jobs=2", ours(X, n_jobs=2)),
        *((f"fit on {n}, assign all", ours(X, fit_sample_size=n)) for n in args.sizes),
        (f"fit on {args.sizes[-1]} + Sakoe-Chiba 5", ours(
            X, fit_sample_size=args.sizes[-1],
            metric_params={"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": 5})),
        ("euclidean (for scale)", ours(X, metric="euclidean")),
    ]
    header = f"{'run':<34} {'time s':>9} {'speed-up':>9} {'Lloyd its':>9} {'ARI vs DTW':>11}"
    print("\n" + header + (f" {'ARI vs truth':>13}" if truth is not None else ""))

    def show(label: str, model: Any, seconds: float) -> None:
        line = (f"{label:<34} {seconds:9.2f} {t_ref / seconds:8.1f}x {model.n_iter_:9d} "
                f"{ari(ref, model.labels_):11.4f}")
        print(line + (f" {ari(truth, model.labels_):13.4f}" if truth is not None else ""),
              flush=True)

    show("unconstrained DTW (tslearn)", ref_model, t_ref)
    for label, run in runs:
        model, seconds = timed(run)
        show(label, model, seconds)
    print(f"\nafter: {load()}")


if __name__ == "__main__":
    main()
