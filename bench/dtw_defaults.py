"""Effect of the DTW defaults (restarts, Sakoe-Chiba band) on k-means results, in one run.

    python bench/dtw_defaults.py [--models default second] [--n-init 1 3 10]

``ProfileKMeans(metric="dtw", n_clusters=5, random_state=0, n_jobs=1)`` (tslearn's DTW
k-means, seisgo's settings otherwise) for every ``n_init`` in ``--n-init`` and every
constraint: none (tslearn's and seisgo's default), a Sakoe-Chiba band of radius
``ceil(n_depth / 20)`` (5 %), ``global_constraint: auto`` (the default under
``metric=dtw``: ``ceil(n_depth / 10)``, 10 %) and ``ceil(n_depth / 5)`` (20 %); plus
Euclidean k-means (``n_init=10``) for scale. Models: ``default``, the embedded example of
the default configuration (``data.velocity.example``, seed 0: about 1,600 profiles x 81
depths, the model the defaults were chosen on), and ``second``, an example never used for
that (seed 7, 30 x 56 nodes, 101 depths, noise 0.05, 10 % NaN nodes).

Each row prints the wall time, the speed-up over seisgo's fit (no band, ``n_init=1``,
measured first), the Lloyd iterations of the best start, the inertia in the fit's own
metric (tslearn's: the mean squared DTW distance to the assigned centre, so a band raises
it), the same objective under unconstrained DTW for the fitted centres (each profile to its
nearest centre: comparable across rows) and the adjusted Rand index of the labels against
the true provinces, against the unconstrained ``n_init=10`` fit and against seisgo's.
The load is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from sklearn.metrics import adjusted_rand_score as ari

from seiscluster.config import compose, section
from seiscluster.velocity import dtw
from seiscluster.velocity.example import make_example_model
from seiscluster.velocity.kmeans import ProfileKMeans
from seiscluster.velocity.profiles import extract_profiles, profile_array

K = 5
#: The second model: another seed and other settings than the default example's.
SECOND = {"n_lat": 30, "n_lon": 56, "depth_max": 100.0, "depth_step": 1.0, "n_provinces": 5,
          "noise": 0.05, "nan_fraction": 0.1, "seed": 7}


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + \
        f" ({os.cpu_count()} CPUs)"


def model_settings(name: str) -> dict[str, Any]:
    if name == "second":
        return SECOND
    return section("data.velocity.example", compose([]).data.velocity.example)


def constraints(n_depth: int) -> list[tuple[str, dict[str, Any] | None]]:
    def sakoe_chiba(radius: int) -> dict[str, Any]:
        return {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": radius}

    auto = dtw.tslearn_params(n_depth, {"global_constraint": "auto"})["sakoe_chiba_radius"]
    return [("none", None),
            (f"SC 5% r={-(-n_depth // 20)}", sakoe_chiba(-(-n_depth // 20))),
            (f"auto r={auto} (10%)", {"global_constraint": "auto"}),
            (f"SC 20% r={-(-n_depth // 5)}", sakoe_chiba(-(-n_depth // 5)))]


def run_model(name: str, n_inits: list[int]) -> None:
    settings = model_settings(name)
    prof = extract_profiles(make_example_model(**settings))
    X, truth = profile_array(prof), prof["province"].values
    n_depth = X.shape[1]
    free = dtw.dtw_band(n_depth)
    call = ", ".join(f"{key}={value}" for key, value in settings.items())
    print(f"\nmodel '{name}': make_example_model({call}): {X.shape[0]} profiles x {n_depth} "
          f"depths, k={K}; {load()}")
    header = (f"{'constraint':<18} {'n_init':>6} {'time s':>8} {'speed-up':>9} {'its':>4} "
              f"{'inertia':>9} {'free-DTW':>9} {'ARI truth':>9} {'ARI free10':>10} "
              f"{'ARI seisgo':>10}")
    print(header)
    refs: dict[str, np.ndarray] = {}
    t_seisgo = None
    grid = [(label, params, n_init) for label, params in constraints(n_depth)
            for n_init in sorted({1, 10, *n_inits})]
    # seisgo's fit and the unconstrained n_init=10 fit first: the references of every row
    first = [grid.index(("none", None, 1)), grid.index(("none", None, 10))]
    rows = [grid[i] for i in first] + [row for i, row in enumerate(grid) if i not in first] + \
        [("euclidean", "euclidean", 10)]
    for label, params, n_init in rows:
        metric = "euclidean" if params == "euclidean" else "dtw"
        start = time.perf_counter()
        model = ProfileKMeans(n_clusters=K, metric=metric, n_init=n_init, random_state=0,
                              n_jobs=1, metric_params=None if metric == "euclidean" else params
                              ).fit(X)
        seconds = time.perf_counter() - start
        labels = model.labels_
        if params is None and n_init == 1:
            t_seisgo, refs["seisgo"] = seconds, labels
        if params is None and n_init == 10:
            refs["free10"] = labels
        free_inertia = float((dtw.cdist_dtw(X, model.cluster_centers_, free).min(axis=1) ** 2)
                             .mean())
        versus = [f"{ari(refs[r], labels):10.4f}" if r in refs else f"{'-':>10}"
                  for r in ("free10", "seisgo")]
        print(f"{label:<18} {n_init:6d} {seconds:8.2f} {t_seisgo / seconds:8.2f}x "
              f"{model.n_iter_:4d} {model.inertia_:9.5f} {free_inertia:9.5f} "
              f"{ari(truth, labels):9.4f} {' '.join(versus)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=["default", "second"],
                        default=["default", "second"])
    parser.add_argument("--n-init", type=int, nargs="+", default=[1, 3, 10],
                        help="restarts (1 and 10 always run: they are the references)")
    args = parser.parse_args()
    print(f"before: {load()}; one thread")
    X = profile_array(extract_profiles(make_example_model(n_lat=8, n_lon=8)))
    for params in (None, {"global_constraint": "auto"}):  # warm-up: numba compilation
        ProfileKMeans(n_clusters=K, metric="dtw", n_init=1, metric_params=params).fit(X)
    for name in args.models:
        run_model(name, args.n_init)
    print(f"\nafter: {load()}")


if __name__ == "__main__":
    main()
