"""DTW k-means engine: tslearn's DTW k-means (k-means++ seeding, Lloyd steps, DBA), compiled.

tslearn 0.10's ``TimeSeriesKMeans(metric="dtw")`` spends most of its time in Python: one
numba call per pair of series in ``cdist_dtw`` and, in DBA, one call per member plus a
Python list append per aligned pair. This module runs the same algorithm in a few numba
kernels (``nogil``: threads run them in parallel; ``cache=True``: compiled once per
machine, in numba's cache directory, which must be writable):

- :func:`cdist_dtw` equals tslearn's ``cdist_dtw`` (same accumulation, bit for bit) for
  series of one length, with a global constraint given as per-row bounds
  (:func:`dtw_band`, tslearn's Sakoe-Chiba band or Itakura parallelogram).
- :func:`assign` is the assignment step, the nearest centre of each profile and its
  distance, with the argmin of the full distance matrix (first index on ties) but most DTW
  computations pruned: centres are tried in the order of their LB_Keogh lower bound, a
  centre whose bound exceeds the best distance so far is skipped, and a DTW whose
  accumulated cost exceeds it is abandoned.
- :func:`dba` is tslearn's ``dtw_barycenter_averaging_petitjean`` (what
  ``TimeSeriesKMeans`` calls: at most 30 iterations, tolerance 1e-5, so tslearn ignores
  ``max_iter_barycenter`` under DTW, and so does this engine). Its sums run in member order
  instead of numpy's pairwise order: barycenters agree with tslearn's to rounding (~1e-15).
- :func:`kmeans_plusplus` is tslearn's ``_k_init_metric`` on the same random stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numba import njit

from seiscluster.velocity._tslearn import tslearn_module

#: tslearn's DBA settings under ``TimeSeriesKMeans(metric="dtw")`` (its defaults).
DBA_MAX_ITER = 30
DBA_TOL = 1e-5
#: Relative margin of the pruning tests: a bound or a partial cost must exceed the best
#: distance by this much (far above rounding) before a centre is ruled out.
_MARGIN = 1e-9


def tslearn_params(size: int, params: dict[str, Any]) -> dict[str, Any]:
    """Checked DTW ``metric_params`` for series of ``size`` samples as tslearn takes them:
    ``global_constraint: auto`` becomes a Sakoe-Chiba band of radius ``sakoe_chiba_radius``
    or, when null, ``ceil(size / 10)`` (Sakoe and Chiba's 10 % window)."""
    if params.get("global_constraint") != "auto":
        return dict(params)
    radius = params.get("sakoe_chiba_radius")
    return {"global_constraint": "sakoe_chiba",
            "sakoe_chiba_radius": -(-size // 10) if radius is None else int(radius)}


def dtw_band(
    size: int,
    global_constraint: str | None = None,
    sakoe_chiba_radius: int | None = None,
    itakura_max_slope: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``i`` of the DTW grid of two series of ``size`` samples may align with columns
    ``lo[i] <= j < hi[i]``: tslearn's mask for these ``metric_params`` (a radius alone
    means Sakoe-Chiba, a slope alone Itakura, defaults 1 and 2; ``auto`` as
    :func:`tslearn_params`), as int64 arrays."""
    if global_constraint == "auto":
        return dtw_band(size, **tslearn_params(size, {
            "global_constraint": "auto", "sakoe_chiba_radius": sakoe_chiba_radius}))
    rows = np.arange(size)
    if global_constraint == "sakoe_chiba" or (
            global_constraint is None and sakoe_chiba_radius is not None):
        radius = 1 if sakoe_chiba_radius is None else int(sakoe_chiba_radius)
        return np.maximum(rows - radius, 0), np.minimum(rows + radius + 1, size)
    if global_constraint == "itakura" or (
            global_constraint is None and itakura_max_slope is not None):
        slope = 2.0 if itakura_max_slope is None else float(itakura_max_slope)
        mask = tslearn_module("tslearn.metrics").itakura_mask(size, size, max_slope=slope)
        lo = mask.argmax(axis=1)
        hi = size - mask[:, ::-1].argmax(axis=1)
        if not (np.array_equal(mask.sum(axis=1), hi - lo) and np.all(np.diff(lo) >= 0)
                and np.all(np.diff(hi) >= 0)):
            raise ValueError(f"the Itakura mask of slope {slope} is not a monotone band")
        return lo.astype(np.int64), hi.astype(np.int64)
    return np.zeros(size, dtype=np.int64), np.full(size, size, dtype=np.int64)


@njit(cache=True, nogil=True)
def _dtw_sq(x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, prev: np.ndarray,
            curr: np.ndarray, abandon: float) -> float:
    """Accumulated squared cost of DTW(x, y) in the band, tslearn's recursion (two rows of
    ``len(y) + 1``; position ``j + 1`` holds column ``j``); inf once a whole row exceeds
    ``abandon``."""
    n, m = x.shape[0], y.shape[0]
    prev[:] = np.inf
    prev[0] = 0.0
    for i in range(n):
        a, b = lo[i], hi[i]
        curr[a] = np.inf
        row_min = np.inf
        xi = x[i]
        for j in range(a, b):
            d = xi - y[j]
            best = prev[j + 1]
            if curr[j] < best:
                best = curr[j]
            if prev[j] < best:
                best = prev[j]
            v = d * d + best
            curr[j + 1] = v
            if v < row_min:
                row_min = v
        if row_min > abandon:
            return np.inf
        if i + 1 < n:
            for p in range(b + 1, hi[i + 1] + 1):
                curr[p] = np.inf
        prev, curr = curr, prev
    return prev[m]


@njit(cache=True, nogil=True)
def _cdist_rows(A: np.ndarray, B: np.ndarray, lo: np.ndarray, hi: np.ndarray, rows: np.ndarray,
                symmetric: bool, out: np.ndarray) -> None:
    """``out[i, j] = DTW(A[i], B[j])`` for i in ``rows``; symmetric: j > i only, mirrored,
    zero diagonal (tslearn's ``cdist_dtw(A)``)."""
    m = B.shape[1]
    prev = np.empty(m + 1)
    curr = np.empty(m + 1)
    for i in rows:
        start = i + 1 if symmetric else 0
        for j in range(start, B.shape[0]):
            d = np.sqrt(_dtw_sq(A[i], B[j], lo, hi, prev, curr, np.inf))
            out[i, j] = d
            if symmetric:
                out[j, i] = d
        if symmetric:
            out[i, i] = 0.0


@njit(cache=True, nogil=True)
def _assign_rows(X: np.ndarray, C: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 rows: np.ndarray, labels: np.ndarray, dists: np.ndarray) -> None:
    """Nearest centre (first on ties) and its DTW distance for X[rows], pruned by LB_Keogh
    and early abandoning (see :func:`assign`)."""
    k, m = C.shape
    upper = np.empty((k, m))
    lower = np.empty((k, m))
    for c in range(k):
        for i in range(m):
            upper[c, i] = C[c, lo[i]:hi[i]].max()
            lower[c, i] = C[c, lo[i]:hi[i]].min()
    prev = np.empty(m + 1)
    curr = np.empty(m + 1)
    bound = np.empty(k)
    for p in rows:
        x = X[p]
        for c in range(k):
            s = 0.0
            for i in range(m):
                if x[i] > upper[c, i]:
                    d = x[i] - upper[c, i]
                    s += d * d
                elif x[i] < lower[c, i]:
                    d = x[i] - lower[c, i]
                    s += d * d
            bound[c] = s
        best_c, best_d, best_sq = -1, np.inf, np.inf
        for c in np.argsort(bound, kind="mergesort"):
            limit = best_sq * (1.0 + _MARGIN)
            if bound[c] > limit:
                break
            sq = _dtw_sq(x, C[c], lo, hi, prev, curr, limit)
            if sq == np.inf:
                continue
            d = np.sqrt(sq)
            if d < best_d or (d == best_d and c < best_c):
                best_c, best_d, best_sq = c, d, sq
        labels[p] = best_c
        dists[p] = best_d


@njit(cache=True, nogil=True)
def _dba(X: np.ndarray, members: np.ndarray, barycenter: np.ndarray, lo: np.ndarray,
         hi: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """tslearn's ``dtw_barycenter_averaging_petitjean`` of X[members] from ``barycenter``
    (unit weights; it stops, as tslearn, when the cost changes by less than ``tol`` or
    increases)."""
    n = X.shape[1]
    m = barycenter.shape[0]
    acc = np.empty((n + 1, m + 1))
    acc[0, :] = np.inf
    acc[:, 0] = np.inf
    acc[0, 0] = 0.0
    path_i = np.empty(n + m, dtype=np.int64)
    path_j = np.empty(n + m, dtype=np.int64)
    sums = np.empty(m)
    counts = np.empty(m)
    cost_prev = np.inf
    for _ in range(max_iter):
        sums[:] = 0.0
        counts[:] = 0.0
        cost = 0.0
        for idx in members:
            x = X[idx]
            # accumulated cost matrix; cells read outside the band are inf
            for i in range(n):
                a, b = lo[i], hi[i]
                acc[i + 1, a] = np.inf
                for j in range(a, b):
                    d = x[i] - barycenter[j]
                    best = acc[i, j + 1]
                    if acc[i + 1, j] < best:
                        best = acc[i + 1, j]
                    if acc[i, j] < best:
                        best = acc[i, j]
                    acc[i + 1, j + 1] = d * d + best
                if i + 1 < n:
                    for q in range(b + 1, hi[i + 1] + 1):
                        acc[i + 1, q] = np.inf
            dist = np.sqrt(acc[n, m])
            cost += dist * dist
            # tslearn's backtracking on acc[1:, 1:]: diagonal, up, left (first minimum)
            i, j, length = n - 1, m - 1, 0
            path_i[0], path_j[0] = i, j
            while i > 0 or j > 0:
                if i == 0:
                    j -= 1
                elif j == 0:
                    i -= 1
                else:
                    diag, up, left = acc[i, j], acc[i, j + 1], acc[i + 1, j]
                    if diag <= up and diag <= left:
                        i -= 1
                        j -= 1
                    elif up <= left:
                        i -= 1
                    else:
                        j -= 1
                length += 1
                path_i[length], path_j[length] = i, j
            for q in range(length, -1, -1):  # in path order, as tslearn appends
                sums[path_j[q]] += x[path_i[q]]
                counts[path_j[q]] += 1.0
        cost /= members.shape[0]
        barycenter = sums / counts
        if abs(cost_prev - cost) < tol or cost_prev < cost:
            break
        cost_prev = cost
    return barycenter


def _row_chunks(n: int, n_jobs: int) -> list[np.ndarray]:
    """Rows split into interleaved chunks (balanced for a triangular matrix)."""
    parts = max(1, min(n_jobs, n))
    return [np.arange(t, n, parts, dtype=np.int64) for t in range(parts)]


def threads(fn: Callable[..., Any], jobs: Sequence[tuple], n_jobs: int) -> list[Any]:
    """``fn(*job)`` for every job, on ``n_jobs`` threads (the kernels release the GIL)."""
    if n_jobs <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        return list(pool.map(lambda job: fn(*job), jobs))


def cdist_dtw(
    A: np.ndarray, B: np.ndarray | None, band: tuple[np.ndarray, np.ndarray], n_jobs: int = 1
) -> np.ndarray:
    """DTW distances between the rows of A and of B (B None: A with itself, symmetric)."""
    symmetric = B is None
    B_ = A if B is None else B
    out = np.empty((A.shape[0], B_.shape[0]))
    threads(_cdist_rows, [(A, B_, *band, rows, symmetric, out)
                           for rows in _row_chunks(A.shape[0], n_jobs)], n_jobs)
    return out


def assign(
    X: np.ndarray, centers: np.ndarray, band: tuple[np.ndarray, np.ndarray], n_jobs: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, distances): each profile's nearest centre in DTW and the distance to it,
    equal to ``argmin`` and ``min`` of ``cdist_dtw(X, centers)`` with most DTWs pruned."""
    labels = np.empty(X.shape[0], dtype=np.int64)
    dists = np.empty(X.shape[0])
    threads(_assign_rows, [(X, centers, *band, rows, labels, dists)
                            for rows in _row_chunks(X.shape[0], n_jobs)], n_jobs)
    return labels, dists


def dba(
    X: np.ndarray, members: np.ndarray, barycenter: np.ndarray,
    band: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """DBA barycenter of X[members] from ``barycenter`` (tslearn's, see :func:`_dba`)."""
    return _dba(X, members.astype(np.int64), np.ascontiguousarray(barycenter), *band,
                DBA_MAX_ITER, DBA_TOL)


def kmeans_plusplus(
    X: np.ndarray, n_clusters: int, band: tuple[np.ndarray, np.ndarray],
    rs: np.random.RandomState, n_jobs: int = 1,
) -> np.ndarray:
    """tslearn's ``_k_init_metric`` with DTW: k-means++ seeds, ``2 + log(k)`` local trials,
    the same draws from ``rs``."""
    n = X.shape[0]
    centers = np.empty((n_clusters, X.shape[1]))
    n_local_trials = 2 + int(np.log(n_clusters))
    center_id = rs.randint(n)
    centers[0] = X[center_id]
    closest_dist_sq = cdist_dtw(centers[:1], X, band, n_jobs) ** 2
    current_pot = closest_dist_sq.sum()
    for c in range(1, n_clusters):
        rand_vals = rs.random_sample(n_local_trials) * current_pot
        candidate_ids = np.searchsorted(np.cumsum(closest_dist_sq, dtype=np.float64),
                                        rand_vals)
        np.clip(candidate_ids, None, closest_dist_sq.size - 1, out=candidate_ids)
        distance_to_candidates = cdist_dtw(X[candidate_ids], X, band, n_jobs) ** 2
        np.minimum(closest_dist_sq, distance_to_candidates, out=distance_to_candidates)
        candidates_pot = distance_to_candidates.sum(axis=1)
        best_candidate = np.argmin(candidates_pot)
        current_pot = candidates_pot[best_candidate]
        closest_dist_sq = distance_to_candidates[best_candidate]
        centers[c] = X[candidate_ids[best_candidate]]
    return centers
