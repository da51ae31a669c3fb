"""k-means of velocity profiles that reproduces tslearn's ``TimeSeriesKMeans`` (seisgo), faster.

seisgo's ``vpcluster_kmean`` fits ``tslearn.clustering.TimeSeriesKMeans`` on the profiles.
:class:`ProfileKMeans` gives the same labels for the same ``random_state``:

- ``metric="euclidean"`` (the hot path) runs tslearn's own algorithm on compiled code:
  the same k-means++ seeding (scikit-learn's ``kmeans_plusplus`` fed the same
  ``RandomState`` stream and the same squared norms), then tslearn's Lloyd loop (assign,
  fail on an empty cluster, record the inertia, move the centroids to the cluster means,
  stop when the inertia changed by less than ``tol``), each step done by scikit-learn's
  chunked OpenMP Elkan iteration (the private ``elkan_iter_chunked_dense`` and
  ``_inertia_dense`` that ``KMeans(algorithm="elkan")`` uses: exact assignments, most
  distances skipped by triangle-inequality bounds) instead of tslearn's numpy/``cdist`` code.
  Labels equal tslearn's; sums are taken in another order, so centers and inertia agree
  to rounding (~1e-15).
- ``metric="dtw"`` runs tslearn's DTW k-means (DTW k-means++ seeding, Lloyd steps, DBA
  barycenters) on the compiled engine :mod:`seiscluster.velocity.dtw`: the same distances
  bit for bit, the same seeds and labels, barycenters equal to rounding, 10-100x faster
  (assignments pruned by LB_Keogh, no Python per pair).
- ``metric="softdtw"`` delegates to tslearn (soft-DTW barycenters).

DTW k-means is still the costly metric (each Lloyd step aligns every profile to the
centres and DBA re-aligns the members), so its levers are exposed: a global constraint on
the warping path (``metric_params``: Sakoe-Chiba band or Itakura parallelogram; a band also
makes LB_Keogh prune most assignments), ``n_jobs`` threads, and ``fit_sample_size``: fit on
a seeded subsample, then assign every profile to its nearest centre in the same metric.
``bench/dtw.py`` measures their time and agreement with unconstrained DTW.

``n_init`` restarts draw from one ``check_random_state(random_state)`` stream in sequence,
exactly as tslearn does, so the first start is seisgo's single start and the best-of-N
inertia is never worse than seisgo's. A start that empties a cluster is retried, at most
``max(n_init, 10)`` starts in all, as in tslearn.

Clusters are renumbered by ascending mean of their centroid (mean velocity), so the
numbering does not depend on the initialisation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from joblib import effective_n_jobs
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import kmeans_plusplus
from sklearn.cluster._k_means_common import _inertia_dense
from sklearn.cluster._k_means_elkan import elkan_iter_chunked_dense, init_bounds_dense
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from seiscluster.config import check_metric_params, is_int, n_init_for, section
from seiscluster.errors import InputError
from seiscluster.velocity._tslearn import tslearn_module

# seiscluster.velocity.dtw (numba) is imported by the DTW code paths only.

if TYPE_CHECKING:
    from tslearn.clustering import TimeSeriesKMeans

log = logging.getLogger(__name__)
_THREADPOOLS = ThreadpoolController()  # found once: limiting per fit then costs ~nothing


def check_profiles(X: Any) -> np.ndarray:
    """Return profiles as a C-contiguous float64 array (n_profiles, n_depth).

    Accepts (n_profiles, n_depth) or tslearn's (n_profiles, n_depth, 1); raises
    :class:`InputError` on another shape, on no data and on NaN/inf values (profiles with
    missing values are dropped upstream, as in seisgo).
    """
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(
            "velocity profiles must be a non-empty array of shape (n_profiles, n_depth) "
            f"or (n_profiles, n_depth, 1), got shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise InputError(
            "velocity profiles contain NaN or infinite values; profiles with missing "
            "values must be dropped before clustering."
        )
    return np.ascontiguousarray(arr)


def check_weights(sample_weight: Any, n_profiles: int, metric: str = "euclidean"
                  ) -> np.ndarray | None:
    """Sample weights as a float64 array of ``n_profiles`` positive values, or None;
    :class:`InputError` for another shape, a value <= 0 or weights with a DTW metric
    (tslearn's DBA and soft-DTW barycenters take no weights)."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n_profiles,):
        raise InputError(f"sample weights must be one per profile ({n_profiles}), got an "
                         f"array of shape {w.shape}.")
    if not (np.isfinite(w) & (w > 0)).all():
        raise InputError("sample weights must be positive finite numbers.")
    if metric != "euclidean":
        raise InputError(f"velocity.grid.weights: area weights need velocity.kmeans.metric="
                         f"euclidean (tslearn's {metric} barycenters take no weights); set "
                         "velocity.grid.weights=none.")
    return w


class _EmptyCluster(Exception):
    """A Lloyd step left a cluster without members (tslearn's ``EmptyClusterError``)."""


def _lloyd(
    X: np.ndarray, centers: np.ndarray, max_iter: int, tol: float, n_threads: int,
    weights: np.ndarray,
) -> tuple[np.ndarray, float, int]:
    """tslearn's Euclidean Lloyd loop on scikit-learn's compiled Elkan step.

    Returns (centers, inertia, n_iter). Each iteration assigns every profile to its
    nearest center and accumulates the new cluster means in one chunked pass
    (``elkan_iter_chunked_dense``: Elkan's triangle-inequality bounds skip most distance
    computations but give the same assignment as a full Lloyd step), fails if a cluster is
    empty (before scikit-learn's relocation could hide it), then takes tslearn's inertia:
    the mean squared distance to the centers the profiles were just assigned to (weighted
    by ``weights``, as the new centers are their members' weighted means).
    """
    n, k = X.shape[0], centers.shape[0]
    total = float(weights.sum())
    labels = np.full(n, -1, dtype=np.int32)
    new_centers = np.empty_like(centers)
    cluster_weights = np.empty(k)
    shift = np.zeros(k)
    upper = np.zeros(n)
    lower = np.zeros((n, k))
    half, next_center = _center_gaps(centers)
    init_bounds_dense(X, centers, half, labels, upper, lower, n_threads)
    old_inertia = np.inf
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is returned
        elkan_iter_chunked_dense(
            X, weights, centers, new_centers, cluster_weights, half, next_center, upper,
            lower, labels, shift, n_threads,
        )
        if np.bincount(labels, minlength=k).min() == 0:
            raise _EmptyCluster
        inertia = _inertia_dense(X, weights, centers, labels, n_threads) / total
        centers, new_centers = new_centers, centers
        half, next_center = _center_gaps(centers)
        if abs(old_inertia - inertia) < tol:
            break
        old_inertia = inertia
    return centers, inertia, n_iter


def _center_gaps(centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half distances between centers and, per center, half the gap to its nearest other
    center: the bounds Elkan's step needs (as scikit-learn's ``_kmeans_single_elkan``)."""
    half = euclidean_distances(centers) / 2
    if centers.shape[0] == 1:
        return half, np.zeros(1)
    return half, np.partition(half, kth=1, axis=0)[1]


def _dtw_lloyd(
    X: np.ndarray, centers: np.ndarray, max_iter: int, tol: float,
    band: tuple[np.ndarray, np.ndarray], n_jobs: int,
) -> tuple[np.ndarray, float, int]:
    """tslearn's DTW Lloyd loop: assign (fail on an empty cluster), record the inertia, move
    every centre to the DBA barycenter of its members (clusters on ``n_jobs`` threads),
    stop when the inertia changed by less than ``tol``. Returns (centers, inertia, n_iter).
    """
    from seiscluster.velocity import dtw

    n, k = X.shape[0], centers.shape[0]
    old_inertia = np.inf
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is returned
        labels, distances = dtw.assign(X, centers, band, n_jobs)
        if np.bincount(labels, minlength=k).min() == 0:
            raise _EmptyCluster
        inertia = np.sum(distances ** 2) / n
        centers = np.array(dtw.threads(dtw.dba, [
            (X, np.flatnonzero(labels == c), centers[c], band) for c in range(k)], n_jobs))
        if abs(old_inertia - inertia) < tol:
            break
        old_inertia = inertia
    return centers, inertia, n_iter


class ProfileKMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """k-means of velocity profiles, label-for-label tslearn's ``TimeSeriesKMeans``.

    Parameters mirror ``TimeSeriesKMeans`` (config keys ``velocity.kmeans.*``); ``n_init``
    None is the metric's default (:data:`seiscluster.config.N_INIT_DEFAULTS`). ``n_jobs``
    is the number of OpenMP threads of the Euclidean Lloyd step and of threads of the DTW
    engine (``None`` = 1, -1 = all cores), and is passed to tslearn for softdtw.
    ``metric_params`` is checked by :func:`seiscluster.config.check_metric_params`.
    ``fit_sample_size`` (None = all) fits the centres on that many profiles drawn without
    replacement with ``random_state`` (kept in their order), then assigns every profile.

    Fitted attributes: ``labels_`` (0-based, n_profiles), ``cluster_centers_``
    (n_clusters, n_depth), ``inertia_`` (tslearn's: mean squared distance of every profile
    to its assigned center), ``n_iter_`` (Lloyd iterations of the best start),
    ``fit_indices_`` (the profiles the centres were fitted on; None = all),
    ``n_features_in_``. Clusters are numbered by ascending centroid mean.

    ``fit(X, sample_weight=w)`` (Euclidean only) weighs the profiles (e.g. by the area of
    their grid cells, :mod:`seiscluster.velocity.grid`) in the k-means++ draws, the centre
    means and the inertia (a weighted mean); ``sample_weight=None`` is tslearn's k-means.
    """

    def __init__(
        self,
        n_clusters: int = 3,
        metric: str = "euclidean",
        n_init: int | None = 10,
        max_iter: int = 50,
        tol: float = 1e-6,
        max_iter_barycenter: int = 100,
        metric_params: dict | None = None,
        random_state: int | np.random.RandomState | None = 0,
        n_jobs: int | None = 1,
        fit_sample_size: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.metric = metric
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.max_iter_barycenter = max_iter_barycenter
        self.metric_params = metric_params
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.fit_sample_size = fit_sample_size

    def _check_params(self, n_profiles: int) -> None:
        if not is_int(self.n_clusters) or not 1 <= self.n_clusters <= n_profiles:
            raise InputError(
                "velocity.kmeans.n_clusters must be an integer between 1 and the number of "
                f"profiles ({n_profiles}), got {self.n_clusters!r}."
            )
        section("velocity.kmeans", {
            key: getattr(self, key) for key in (
                "n_clusters", "metric", "n_init", "max_iter", "max_iter_barycenter", "tol",
                "fit_sample_size")} | {"metric_params": dict(self.metric_params or {})})

    def _fit_indices(self, n_profiles: int) -> np.ndarray | None:
        """Sorted indices of the seeded fitting subsample, or None to fit on all."""
        if self.fit_sample_size is None or self.fit_sample_size >= n_profiles:
            return None
        rs = check_random_state(self.random_state)
        return np.sort(rs.choice(n_profiles, self.fit_sample_size, replace=False))

    @property
    def _n_starts(self) -> int:
        """``n_init``, None resolved to the metric's default."""
        return n_init_for(self.metric, self.n_init)

    def _metric_params(self, n_depth: int) -> dict[str, Any]:
        """Checked ``metric_params`` as tslearn takes them (DTW's ``auto`` resolved)."""
        params = check_metric_params(self.metric, self.metric_params)
        if self.metric != "dtw":
            return params
        from seiscluster.velocity import dtw

        return dtw.tslearn_params(n_depth, params)

    def _tslearn_estimator(self, n_depth: int) -> TimeSeriesKMeans:
        kmeans = tslearn_module("tslearn.clustering")
        return kmeans.TimeSeriesKMeans(
            n_clusters=self.n_clusters,
            max_iter=self.max_iter,
            tol=self.tol,
            n_init=self._n_starts,
            metric=self.metric,
            max_iter_barycenter=self.max_iter_barycenter,
            metric_params=self._metric_params(n_depth) or None,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )

    def _fail_empty(self, n_profiles: int) -> InputError:
        return InputError(
            f"velocity.kmeans.n_clusters={self.n_clusters} left a cluster empty in every "
            f"one of {max(self._n_starts, 10)} starts on {n_profiles} profiles; the profiles "
            "have fewer distinct shapes than clusters, so choose fewer clusters."
        )

    def _fit_euclidean(self, X: np.ndarray, weights: np.ndarray | None
                       ) -> tuple[np.ndarray, float, int]:
        """Best of ``n_init`` tslearn starts; returns (centers, inertia, n_iter)."""
        n_threads = effective_n_jobs(self.n_jobs)
        rs = check_random_state(self.random_state)
        # Same squared norms as tslearn passes to k-means++ (bit-identical seeding).
        x_squared_norms = cdist(X, np.zeros((1, X.shape[1])), metric="sqeuclidean").ravel()
        mean = X.mean(axis=0)
        Xc = X - mean  # centred copy: the expanded distances lose no precision

        def one_start() -> tuple[np.ndarray, float, int]:
            seeds, _ = kmeans_plusplus(
                X, self.n_clusters, x_squared_norms=x_squared_norms, random_state=rs,
                sample_weight=weights,
            )
            centers, inertia, n_iter = _lloyd(
                Xc, seeds - mean, self.max_iter, self.tol, n_threads,
                np.ones(X.shape[0]) if weights is None else weights,
            )
            return centers + mean, inertia, n_iter

        # One BLAS thread inside the OpenMP chunks, as scikit-learn's KMeans does.
        with _THREADPOOLS.limit(limits=1, user_api="blas"):
            return self._best_start(one_start, X.shape[0])

    def _band(self, n_depth: int) -> tuple[np.ndarray, np.ndarray]:
        """The DTW global constraint of ``metric_params`` as per-row bounds."""
        from seiscluster.velocity import dtw

        return dtw.dtw_band(n_depth, **self._metric_params(n_depth))

    def _fit_dtw(self, X: np.ndarray) -> tuple[np.ndarray, float, int]:
        """tslearn's DTW ``fit`` (:meth:`_best_start` over tslearn's k-means++ and Lloyd
        steps) on the compiled engine; each start logged with its inertia and time."""
        from seiscluster.velocity import dtw

        band = self._band(X.shape[1])
        n_jobs = effective_n_jobs(self.n_jobs)
        rs = check_random_state(self.random_state)

        def one_start() -> tuple[np.ndarray, float, int]:
            seeds = dtw.kmeans_plusplus(X, self.n_clusters, band, rs, n_jobs)
            return _dtw_lloyd(X, seeds, self.max_iter, self.tol, band, n_jobs)

        return self._best_start(one_start, X.shape[0], progress="dtw")

    def _best_start(self, one_start: Callable[[], tuple[np.ndarray, float, int]],
                    n_profiles: int, progress: str | None = None
                    ) -> tuple[np.ndarray, float, int]:
        """tslearn's restarts: ``one_start`` (centers, inertia, n_iter) until ``n_init``
        starts succeed, at most ``max(n_init, 10)`` attempts (a start that empties a cluster
        is retried), the lowest inertia kept. With ``progress`` (the metric's name) every
        start and retry is logged."""
        best: tuple[np.ndarray, float, int] | None = None
        n_done = 0
        for _ in range(max(self._n_starts, 10)):
            if n_done == self._n_starts:
                break
            start = time.perf_counter()
            try:
                centers, inertia, n_iter = one_start()
            except _EmptyCluster:
                if progress:
                    log.info("k-means k=%d (%s): a start emptied a cluster, retried",
                             self.n_clusters, progress)
                continue
            n_done += 1
            if best is None or inertia < best[1]:
                best = (centers, inertia, n_iter)
            if progress:
                log.info("k-means k=%d (%s, %d profiles) start %d/%d: inertia %.6g after %d "
                         "iterations in %.2f s", self.n_clusters, progress, n_profiles,
                         n_done, self._n_starts, inertia, n_iter,
                         time.perf_counter() - start)
        if best is None:
            raise self._fail_empty(n_profiles)
        return best

    def _fit_centers(self, X: np.ndarray, weights: np.ndarray | None
                     ) -> tuple[np.ndarray, float, int]:
        """(centers, inertia, n_iter) of the best start on X, by metric (``weights``:
        Euclidean only, checked by :meth:`fit`)."""
        if self.metric == "euclidean":
            return self._fit_euclidean(X, weights)
        if self.metric == "dtw":
            return self._fit_dtw(X)
        model = self._fit_tslearn(X)
        if model.cluster_centers_ is None:
            raise self._fail_empty(X.shape[0])
        return model.cluster_centers_[:, :, 0], model.inertia_, model.n_iter_

    def _fit_tslearn(self, X: np.ndarray) -> TimeSeriesKMeans:
        """tslearn's ``TimeSeriesKMeans.fit`` (soft-DTW), start by start, each start
        logged with its inertia and time (a start can take minutes: the log shows
        progress). The loop is tslearn 0.10's own: one ``RandomState`` stream, at most
        ``max(n_init, 10)`` attempts, a start that empties a cluster retried, the best
        inertia kept, then ``_post_fit``; so the result is tslearn's ``fit``."""
        utils = tslearn_module("tslearn.clustering.utils")
        model = self._tslearn_estimator(X.shape[1])
        X_ = X[:, :, None]
        model.labels_, model.inertia_, model.cluster_centers_ = None, np.inf, None
        model._X_fit, model._squared_inertia, model.n_iter_ = None, True, 0
        rs = check_random_state(self.random_state)
        best, min_inertia, n_successful, n_attempts = None, np.inf, 0, 0
        while n_successful < self._n_starts and n_attempts < max(self._n_starts, 10):
            n_attempts += 1
            start = time.perf_counter()
            try:
                model._fit_one_init(X_, None, rs)
            except utils.EmptyClusterError:
                log.info("k-means k=%d (%s): a start emptied a cluster, retried",
                         self.n_clusters, self.metric)
                continue
            if model.inertia_ < min_inertia:
                best, min_inertia = model.cluster_centers_.copy(), model.inertia_
                model.n_iter_ = model._iter
            n_successful += 1
            log.info("k-means k=%d (%s, %d profiles) start %d/%d: inertia %.6g after %d "
                     "iterations in %.1f s", self.n_clusters, self.metric, X.shape[0],
                     n_successful, self._n_starts, model.inertia_, model._iter,
                     time.perf_counter() - start)
        model._post_fit(X_, best, min_inertia)
        return model

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> ProfileKMeans:
        """Cluster the profiles X (n_profiles, n_depth), weighted by ``sample_weight``
        (None: unweighted); returns self."""
        X = check_profiles(X)
        n = X.shape[0]
        self._check_params(n)
        weights = check_weights(sample_weight, n, self.metric)
        self.fit_indices_ = self._fit_indices(n)
        part = slice(None) if self.fit_indices_ is None else self.fit_indices_
        centers, inertia, n_iter = self._fit_centers(
            X[part], None if weights is None else weights[part])
        order = np.argsort(centers.mean(axis=1), kind="stable")
        self.cluster_centers_ = np.ascontiguousarray(centers[order])
        self.inertia_ = float(inertia)
        self.n_iter_ = int(n_iter)
        self.n_features_in_ = X.shape[1]
        # Final assignment as tslearn's _post_fit: the nearest of the final centers (tslearn
        # raises EmptyClusterError if that empties a cluster; it is kept here).
        self.labels_, nearest = self._nearest(X)
        if self.fit_indices_ is not None:  # the inertia of every profile, as tslearn's
            self.inertia_ = float(np.average(nearest ** 2, weights=weights))
        return self

    def _nearest(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index of the nearest center, distance to it) of checked profiles."""
        if self.metric == "dtw":
            from seiscluster.velocity import dtw

            labels, distances = dtw.assign(X, self.cluster_centers_, self._band(X.shape[1]),
                                           effective_n_jobs(self.n_jobs))
            return labels.astype(np.intp), distances
        distances = self._distances(X)
        labels = distances.argmin(axis=1).astype(np.intp)
        return labels, distances[np.arange(X.shape[0]), labels]

    def to_tslearn(self) -> TimeSeriesKMeans:
        """A fitted tslearn ``TimeSeriesKMeans`` with these centers, labels and inertia.

        This is the ``model`` of seisgo's output dictionary; it can ``predict``. Unlike a
        model tslearn fits itself, it does not keep a copy of the training data.
        """
        check_is_fitted(self, "labels_")
        return self._fitted_tslearn(self.labels_)

    def _fitted_tslearn(self, labels: np.ndarray | None) -> TimeSeriesKMeans:
        model = self._tslearn_estimator(self.cluster_centers_.shape[1])
        model.cluster_centers_ = self.cluster_centers_[:, :, None].copy()
        model.labels_ = labels
        model.inertia_ = self.inertia_
        model.n_iter_ = self.n_iter_
        model.n_features_in_ = 1
        model._X_fit = None
        model._squared_inertia = True
        return model

    def _distances(self, X: np.ndarray) -> np.ndarray:
        """Distances of checked profiles to the centers: tslearn's ``transform`` (for
        euclidean its very computation, scipy's ``cdist``, without importing tslearn)."""
        if self.metric == "euclidean":
            return cdist(X, self.cluster_centers_, metric="euclidean")
        if self.metric == "dtw":
            from seiscluster.velocity import dtw

            return dtw.cdist_dtw(X, self.cluster_centers_, self._band(X.shape[1]),
                                 effective_n_jobs(self.n_jobs))
        return self._fitted_tslearn(None).transform(X[:, :, None])

    def predict(self, X: Any) -> np.ndarray:
        """Cluster index (0-based) of each profile: the nearest centroid for the metric."""
        check_is_fitted(self, "cluster_centers_")
        return self._nearest(check_profiles(X))[0]

    def transform(self, X: Any) -> np.ndarray:
        """Distances (n_profiles, n_clusters) of the profiles to the centroids, by metric."""
        check_is_fitted(self, "cluster_centers_")
        return self._distances(check_profiles(X))
