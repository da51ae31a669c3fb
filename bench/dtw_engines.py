"""DTW engines on the same profiles, in one run: our numba engine against tslearn and C DTW.

    pip install --target /tmp/dtwpkgs --no-deps dtaidistance dtw-python aeon   # optional
    PYTHONPATH=/tmp/dtwpkgs python bench/dtw_engines.py [--n 1000] [--cascadia]

The reference is :func:`seiscluster.velocity.dtw.cdist_dtw` (one thread). Against it, on the
same profiles (a seeded draw of ``--n`` profiles of the embedded example at 48 x 100 nodes
and 101 depths, as bench/dtw.py; or, with ``--cascadia``, every Cascadia profile over
0-60 km), each engine computes the symmetric distance matrix, unconstrained and with a
Sakoe-Chiba band of radius ``ceil(n_depth / 10)`` (the ``global_constraint: auto`` band):

- tslearn 0.10 ``cdist_dtw`` (``n_jobs=1``; numba, one call per pair);
- dtaidistance's C library, ``dtw.distance_matrix_fast(parallel=False)``, without and with
  ``use_pruning`` (a Euclidean upper bound per pair); its ``window=w`` keeps ``|i - j| < w``,
  so tslearn's radius r is ``window=r + 1`` (``window=0`` or None: no band);
- aeon ``dtw_pairwise_distance`` (numba; returns the squared distance; its ``window`` is a
  fraction, radius ``int(window * n_depth)``: ``(r + 0.5) / n_depth`` here);
- dtw-python ``dtw(local_cost, step_pattern=symmetric1, distance_only=True)`` on the squared
  differences (its ``symmetric2`` default weighs diagonal steps twice; sakoechiba
  ``window_size=r`` keeps ``|i - j| <= r``): one Python call per pair, timed on the first
  ``--pair-sample`` profiles only.

All return the square root of the least sum of squared differences, as tslearn. Each row
prints the time, the time per pair, our engine's time on the same profiles measured just
before it (the load of a shared machine drifts), the speed-up (ours / the engine's time) and
the largest difference from ours (``bit-identical`` when there is none). A second table times one
assignment step (every profile to its nearest of k=5 DTW centres fitted with the band):
ours (LB_Keogh pruning, :func:`~seiscluster.velocity.dtw.assign`) against the full
profile x centre matrix of each engine plus an argmin. A package that is not installed is
skipped with one line. Everything runs on one thread; the load is printed before and after.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from seiscluster.velocity import dtw as ours
from seiscluster.velocity.example import make_example_model
from seiscluster.velocity.io import open_model
from seiscluster.velocity.kmeans import ProfileKMeans
from seiscluster.velocity.profiles import extract_profiles, profile_array

CASCADIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "velocity" / \
    "Cascadia-ANT+RF-Delph2018.r0.1.nc"
#: A distance matrix of the rows of X (series of one length) for a Sakoe-Chiba radius
#: (None: unconstrained), or of the rows of X against those of Y.
Engine = Callable[..., np.ndarray]


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + \
        f" ({os.cpu_count()} CPUs)"


def profiles(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    if args.cascadia:
        X = profile_array(extract_profiles(open_model(CASCADIA, variable="vs"),
                                           zrange=[0, 60]))
        return X, f"Cascadia (Delph et al. 2018), 0-60 km: {X.shape[0]} profiles x {X.shape[1]}"
    X = profile_array(extract_profiles(make_example_model(
        n_lat=48, n_lon=100, depth_max=100.0, depth_step=1.0, seed=0)))
    pick = np.sort(np.random.default_rng(0).choice(X.shape[0], min(args.n, X.shape[0]),
                                                   replace=False))
    return (np.ascontiguousarray(X[pick]),
            f"embedded example 48 x 100 nodes, seeded draw of {pick.size} of {X.shape[0]} "
            f"profiles x {X.shape[1]} depths")


def band(n_depth: int, radius: int | None) -> tuple[np.ndarray, np.ndarray]:
    return ours.dtw_band(n_depth) if radius is None else \
        ours.dtw_band(n_depth, "sakoe_chiba", radius)


def _import_dtw_python() -> ModuleType:
    """dtw-python's ``dtw`` package: bench/dtw.py shadows it while bench/ is on sys.path."""
    bench = Path(__file__).resolve().parent
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != bench]
    try:
        module = importlib.import_module("dtw")
    finally:
        sys.path[:] = saved
    if not hasattr(module, "symmetric1"):
        raise ImportError("dtw-python")
    return module


def engines() -> tuple[dict[str, Engine], list[str]]:
    """name -> engine(X, radius, Y=None); and one line per package that is missing."""
    found: dict[str, Engine] = {
        "seiscluster numba (reference)":
            lambda X, r, Y=None: ours.cdist_dtw(X, Y, band(X.shape[1], r))}
    missing = []
    from tslearn.metrics import cdist_dtw as ts_cdist

    def tslearn(X, r, Y=None):
        kw = {} if r is None else {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": r}
        return ts_cdist(X[:, :, None], None if Y is None else Y[:, :, None], n_jobs=1, **kw)

    found["tslearn cdist_dtw"] = tslearn
    try:
        from dtaidistance import __version__ as dtai_version
        from dtaidistance import dtw as dtai
    except ImportError:
        missing.append("dtaidistance: not installed, skipped")
    else:
        if not dtai.try_import_c():
            missing.append("dtaidistance: C library not available, skipped")
        else:
            def dtai_matrix(X, r, Y=None, pruning=False):
                window = None if r is None else r + 1
                if Y is None:
                    return dtai.distance_matrix_fast(X, window=window, parallel=False,
                                                     use_pruning=pruning)
                k = Y.shape[0]
                D = dtai.distance_matrix_fast(np.vstack([Y, X]), window=window, parallel=False,
                                              use_pruning=pruning,
                                              block=((0, k), (k, k + X.shape[0])))
                return D[:k, k:].T

            found[f"dtaidistance {dtai_version} C"] = dtai_matrix
            found[f"dtaidistance {dtai_version} C pruning"] = \
                lambda X, r, Y=None: dtai_matrix(X, r, Y, pruning=True)
    try:
        import aeon
        from aeon.distances import dtw_pairwise_distance
    except ImportError:
        missing.append("aeon: not installed, skipped")
    else:
        def aeon_matrix(X, r, Y=None):
            window = None if r is None else (r + 0.5) / X.shape[1]
            return np.sqrt(dtw_pairwise_distance(X, Y, window=window))

        found[f"aeon {aeon.__version__} (numba)"] = aeon_matrix
    try:
        dtw_python = _import_dtw_python()
        dtw_version = version("dtw-python")
    except ImportError:
        missing.append("dtw-python: not installed, skipped")
    else:
        def dtw_python_matrix(X, r, Y=None):
            kw = {} if r is None else {"window_type": "sakoechiba",
                                       "window_args": {"window_size": r}}
            one = Y is None
            Y = X if one else Y
            D = np.zeros((X.shape[0], Y.shape[0]))
            for i in range(X.shape[0]):
                for j in range(i + 1 if one else 0, Y.shape[0]):
                    cost = (X[i][:, None] - Y[j][None, :]) ** 2
                    D[i, j] = math.sqrt(dtw_python.dtw(cost, step_pattern=dtw_python.symmetric1,
                                                       distance_only=True, **kw).distance)
                    if one:
                        D[j, i] = D[i, j]
            return D

        found[f"dtw-python {dtw_version} (per pair)"] = dtw_python_matrix
    return found, missing


def compare(D: np.ndarray, ref: np.ndarray) -> str:
    diff = float(np.abs(D - ref).max())
    return "bit-identical" if diff == 0 else f"max |diff| {diff:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="profiles drawn from the example")
    parser.add_argument("--cascadia", action="store_true", help="the Cascadia profiles")
    parser.add_argument("--pair-sample", type=int, default=60,
                        help="profiles for the per-pair engines (dtw-python)")
    parser.add_argument("--repeat", type=int, default=5, help="assignment steps timed (best)")
    args = parser.parse_args()
    X, what = profiles(args)
    n, n_depth = X.shape
    radius = -(-n_depth // 10)
    found, missing = engines()
    print(f"{what}; Sakoe-Chiba radius ceil({n_depth}/10) = {radius}; one thread")
    for line in missing:
        print(line)
    print(f"before: {load()}")
    for engine in found.values():  # warm-up: numba compilation
        for r in (None, radius):
            engine(X[:4], r)
            engine(X[:4], r, X[:2])

    header = (f"{'engine':<38} {'band':>6} {'pairs':>8} {'time s':>8} {'us/pair':>8} "
              f"{'ours s':>7} {'speed-up':>9}  distances vs ours")
    print(f"\ndistance matrix of {n} profiles (symmetric); ours timed again just before each "
          f"row, the speed-up is ours / the engine's time\n{header}")
    reference = found["seiscluster numba (reference)"]
    for name, engine in found.items():
        sub = X[:args.pair_sample] if "per pair" in name else X
        pairs = sub.shape[0] * (sub.shape[0] - 1) // 2
        for r in (None, radius):
            start = time.perf_counter()
            ref = reference(sub, r)
            t_ours = time.perf_counter() - start
            if engine is reference:
                D, seconds = ref, t_ours
            else:
                start = time.perf_counter()
                D = engine(sub, r)
                seconds = time.perf_counter() - start
            print(f"{name:<38} {'none' if r is None else f'r={r}':>6} {pairs:8d} {seconds:8.2f} "
                  f"{seconds / pairs * 1e6:8.1f} {t_ours:7.2f} {t_ours / seconds:8.2f}x  "
                  f"{compare(D, ref)}", flush=True)

    k = 5
    centres = ProfileKMeans(n_clusters=k, metric="dtw", n_init=1, random_state=0,
                            metric_params={"global_constraint": "auto"}).fit(X).cluster_centers_
    header = header.replace("pairs", " DTWs").replace("us/pair", " us/DTW").replace(
        "  ours s", "") + "; labels"
    print(f"\none assignment step: {n} profiles to their nearest of k={k} centres (a banded "
          f"fit's), best of {args.repeat}\n{header}")
    for r in (None, radius):
        runs: list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = [
            ("seiscluster assign, LB_Keogh (ref)", lambda r=r: ours.assign(
                X, centres, band(n_depth, r)))]
        for name, engine in found.items():
            if "per pair" not in name:
                runs.append((f"{name.split(' (')[0]} + argmin", lambda e=engine, r=r: (
                    lambda D: (D.argmin(axis=1), D.min(axis=1)))(e(X, r, centres))))
        for name, run in runs:
            seconds = math.inf
            for _ in range(args.repeat):
                start = time.perf_counter()
                labels, dists = run()
                seconds = min(seconds, time.perf_counter() - start)
            if name.endswith("(ref)"):
                t_ref, ref_labels, ref_dists = seconds, labels, dists
            same = "same" if np.array_equal(labels, ref_labels) else \
                f"{int((labels != ref_labels).sum())} differ"
            print(f"{name:<38} {'none' if r is None else f'r={r}':>6} {n * k:8d} {seconds:8.3f} "
                  f"{seconds / (n * k) * 1e6:8.1f} {t_ref / seconds:8.2f}x  "
                  f"{compare(dists, ref_dists)}; {same}", flush=True)
    print(f"\nafter: {load()}")


if __name__ == "__main__":
    main()
