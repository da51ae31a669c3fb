"""Velocity branch against seisgo 1.0.0, measured in one run on the same synthetic model.

    pip install -c constraints.txt -e ".[dev,bench]"   # seisgo==1.0.0 from PyPI
    python bench/velocity.py [--quick]

Prints wall times and ratios (seisgo / seiscluster) for: profile extraction + k-means
(k=5, euclidean, n_init=1 like seisgo), the full elbow scan 2..20 (n_init=1, and the default
n_init=10), and the SOM with seisgo's defaults; label agreement with seisgo (adjusted Rand
index), the knee each finds, and closeness to the true provinces at spacing 1, 2, 4, 8.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")

from sklearn.metrics import adjusted_rand_score as ari

from seiscluster.velocity.elbow import elbow_scan
from seiscluster.velocity.example import make_example_model
from seiscluster.velocity.kmeans import ProfileKMeans
from seiscluster.velocity.profiles import extract_profiles, profile_array
from seiscluster.velocity.som import ProfileSOM


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    """Result and wall time of ``func()``; seisgo's prints are swallowed."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        result = func()
    return result, time.perf_counter() - start


def seisgo_kmeans(model, **kwargs):
    from seisgo import clustering

    lat, lon, dep = (model[c].values for c in ("latitude", "longitude", "depth"))
    return clustering.vpcluster_kmean(lat, lon, dep, model.vs.values, plot=False, save=False,
                                      evaluate_plot=False, **kwargs)


def seisgo_som(model, **kwargs):
    from seisgo import clustering

    lat, lon, dep = (model[c].values for c in ("latitude", "longitude", "depth"))
    return clustering.vpcluster_som(lat, lon, dep, model.vs.values, plot=False, save=False,
                                    **kwargs)


def ours_kmeans(model, k: int, n_init: int = 1, spacing: int = 1):
    prof = extract_profiles(model, spacing=spacing)
    est = ProfileKMeans(n_clusters=k, n_init=n_init, random_state=0).fit(profile_array(prof))
    return prof, est


def ours_elbow(model, n_init: int, threads: int):
    prof = extract_profiles(model)
    X = profile_array(prof)
    scan = elbow_scan(X, n_init=n_init, random_state=0, n_jobs=threads)
    est = ProfileKMeans(n_clusters=scan.n_clusters, n_init=n_init, random_state=0).fit(X)
    return scan, est


def ours_som(model):
    prof = extract_profiles(model)
    return ProfileSOM(random_state=0).fit(profile_array(prof))


def row(label: str, ref: float, ours: float, extra: str = "") -> None:
    print(f"{label:<44} seisgo {ref:8.2f} s   seiscluster {ours:7.3f} s   "
          f"ratio {ref / ours:7.1f}x  {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller model (smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    n_lat, n_lon = (40, 60) if args.quick else (100, 240)
    model = make_example_model(n_lat=n_lat, n_lon=n_lon, depth_max=100.0, depth_step=1.0,
                               n_provinces=5, nan_fraction=0.25, seed=0)
    prof = extract_profiles(model)
    print(f"model: {model.sizes['depth']} depths x {n_lat} lat x {n_lon} lon, "
          f"{prof.sizes['profile']} profiles without NaN, {args.threads} threads\n")
    timed(lambda: ours_kmeans(model, 5))  # warm-up: imports and first-call costs, both sides
    timed(lambda: seisgo_kmeans(model.isel(latitude=slice(0, 5)), ncluster=2))

    ref, t_ref = timed(lambda: seisgo_kmeans(model, ncluster=5))
    (prof, est), t_ours = timed(lambda: ours_kmeans(model, 5))
    agree = ari(ref["cluster_map"].cluster, est.labels_)
    row("extraction + k-means k=5 (n_init=1)", t_ref, t_ours, f"ARI vs seisgo {agree:.4f}")

    ref, t_ref = timed(lambda: seisgo_kmeans(model, ncluster=None))
    (scan, est), t_ours = timed(lambda: ours_elbow(model, 1, args.threads))
    knee_ref = ref["para"]["n_clusters"]
    row("elbow scan 2..20 + final fit (n_init=1)", t_ref, t_ours,
        f"knee seisgo {knee_ref} / ours {scan.n_clusters}, "
        f"ARI {ari(ref['cluster_map'].cluster, est.labels_):.4f}")
    (scan10, _), t_ours10 = timed(lambda: ours_elbow(model, 10, args.threads))
    row("elbow scan 2..20 + final fit (n_init=10)", t_ref, t_ours10,
        f"knee ours {scan10.n_clusters}")

    ref, t_ref = timed(lambda: seisgo_som(model))
    som, t_ours = timed(lambda: ours_som(model))
    nx, ny = som.grid_shape_
    row(f"SOM defaults ({nx}x{ny}, 50000 iterations)", t_ref, t_ours,
        f"populated nodes seisgo {len(ref['pred'])} / ours {len(som.populated_nodes_)}")

    print("\ncloseness to the true provinces (ARI), k = 5:")
    for spacing in (1, 2, 4, 8):
        ref, _ = timed(lambda s=spacing: seisgo_kmeans(model, ncluster=5, spacing=s))
        prof, one = ours_kmeans(model, 5, 1, spacing)
        _, ten = ours_kmeans(model, 5, 10, spacing)
        truth = prof.province.values
        print(f"  spacing {spacing}: seisgo {ari(truth, ref['cluster_map'].cluster):.3f}   "
              f"seiscluster n_init=1 {ari(truth, one.labels_):.3f}   "
              f"n_init=10 (default) {ari(truth, ten.labels_):.3f}")


if __name__ == "__main__":
    main()
