"""Elbow scan: choose the number of k-means clusters as seisgo does, without its crash.

seisgo's ``vpcluster_evaluate_kmean`` fits ``TimeSeriesKMeans`` for every k in ``nrange``
(default 2..20, the same ``random_state`` for every k), optionally box-smooths the
distortion (``inertia_``) curve and takes the knee that ``kneed.KneeLocator`` finds on the
convex decreasing curve; it crashes with ``IndexError`` when kneed finds none.
:func:`elbow_scan` fits each k with :class:`ProfileKMeans` (identical distortions, much
faster, ``n_init`` restarts), one dask task per k on the scheduler of the ``compute``
config group (:mod:`seiscluster.compute`), adds the silhouette and Calinski-Harabasz
scores, and when kneed finds no knee chooses k by a documented fallback rule and says so.
It also scores the stability of every k and the gap statistic (:mod:`seiscluster.kselect`,
on a seeded sample of ``sample_size`` profiles) and chooses k by ``rule``.
"""

from __future__ import annotations

import logging
import numbers
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import pandas as pd
from joblib import effective_n_jobs
from scipy.sparse import csr_matrix
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from seiscluster import kselect
from seiscluster.compute import dask_scheduler
from seiscluster.config import check_value, n_init_for, section
from seiscluster.errors import InputError
from seiscluster.velocity import dtw
from seiscluster.velocity._tslearn import tslearn_module
from seiscluster.velocity.kmeans import ProfileKMeans, check_profiles, check_weights

log = logging.getLogger(__name__)

#: seisgo's default ``nrange``: ``np.arange(2, 21, 1)``.
DEFAULT_NRANGE = tuple(range(2, 21))


def _second_difference(table: pd.DataFrame) -> pd.Series:
    """Discrete second difference of the analysed distortion curve (NaN at both ends)."""
    y = table["distortion_smoothed"]
    return y.shift(1) - 2 * y + y.shift(-1)


#: Fallback rules: name -> score per k of the table (the chosen k maximises it).
FALLBACKS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "silhouette": lambda t: t["silhouette"],
    "calinski_harabasz": lambda t: t["calinski_harabasz"],
    "second_difference": _second_difference,
    "k_min": lambda t: -t["k"].astype(float),
    "k_max": lambda t: t["k"].astype(float),
}


@dataclass
class ElbowResult:
    """Outcome of :func:`elbow_scan`.

    ``table`` has one row per k: ``k``, ``distortion`` (tslearn ``inertia_``),
    ``distortion_smoothed`` (the curve given to kneed; equal to ``distortion`` when not
    smoothing), ``silhouette``, ``calinski_harabasz``, ``stability``, ``gap``, ``gap_sk``
    (:mod:`seiscluster.kselect`). ``knee`` is kneed's knee or None, ``n_clusters`` the
    chosen k, ``fallback_used`` the fallback rule's name when kneed found no knee and the
    rule used the criterion, ``criterion_k`` the knee-or-fallback choice, ``rule`` the
    rule that chose, ``message`` one sentence for the log and the report, ``models`` the
    fitted :class:`ProfileKMeans` per k (the chosen one need not be fitted again).
    """

    table: pd.DataFrame
    knee: int | None
    n_clusters: int
    fallback_used: str | None
    message: str
    rule: str = "criterion"
    criterion_k: int | None = None
    models: dict[int, ProfileKMeans] = field(repr=False, default_factory=dict)


def smooth_curve(y: Sequence[float], n: int = 3) -> np.ndarray:
    """seisgo's box smoothing: width-n moving average ('same'), end points kept raw."""
    y = np.asarray(y, dtype=np.float64)
    if not isinstance(n, numbers.Integral) or not 1 <= n <= y.size:
        raise InputError(
            f"velocity.elbow.smooth_n must be an integer between 1 and the number of k "
            f"values ({y.size}), got {n!r}."
        )
    smoothed = np.convolve(y, np.ones(n) / n, mode="same")
    smoothed[0], smoothed[-1] = y[0], y[-1]
    return smoothed


def find_knee(k: Sequence[int], y: Sequence[float], sensitivity: float = 1.0) -> int | None:
    """Knee of a convex decreasing curve by kneed, as seisgo picks it, or None.

    seisgo takes ``list(KneeLocator(...).all_knees)[0]``. In kneed's default offline mode
    ``all_knees`` holds at most one knee (the search returns at the first one), which is
    ``KneeLocator.knee``; an empty ``all_knees`` (seisgo's ``IndexError``) gives None.
    kneed's and numpy's warnings (e.g. a flat curve) are silenced: the caller reports.
    """
    from kneed import KneeLocator  # imports matplotlib.pyplot: only when a knee is sought

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        knees = list(
            KneeLocator(k, y, S=sensitivity, curve="convex", direction="decreasing").all_knees
        )
    return int(knees[0]) if knees else None


def check_nrange(nrange: Sequence[int] | None, n_profiles: int) -> list[int]:
    """The scanned k (a checked ``velocity.elbow.nrange``), at most the number of profiles."""
    ks = [int(k) for k in (DEFAULT_NRANGE if nrange is None else nrange)]
    if ks[-1] > n_profiles:
        raise InputError(
            f"velocity.elbow.nrange goes up to k={ks[-1]}, more than the number of profiles "
            f"({n_profiles}); lower its largest value."
        )
    return ks


def _describe(ks: list[int]) -> str:
    contiguous = ks == list(range(ks[0], ks[-1] + 1))
    return f"k={ks[0]}..{ks[-1]}" if contiguous else f"k in {ks}"


def _subsample_distances(
    X: np.ndarray,
    idx: np.ndarray,
    metric: str,
    metric_params: dict | None,
    n_jobs: int,
) -> np.ndarray:
    """Pairwise distances of the subsample in the clustering metric, as tslearn's
    ``silhouette_score`` computes them (DTW; normalised soft-DTW; Euclidean by BLAS)."""
    sub = X[idx]
    params = dict(metric_params or {})  # checked by the fits (no n_jobs: passed apart)
    if metric == "dtw":  # tslearn's cdist_dtw, bit for bit, on the compiled engine
        return dtw.cdist_dtw(sub, None, dtw.dtw_band(sub.shape[1], **params), n_jobs)
    if metric == "softdtw":
        metrics = tslearn_module("tslearn.metrics")
        return metrics.cdist_soft_dtw_normalized(sub[:, :, None], **params)
    return euclidean_distances(sub - sub.mean(axis=0))  # centred: no loss of precision


def mean_silhouettes(distances: np.ndarray, label_sets: Sequence[np.ndarray],
                     weights: np.ndarray | None = None) -> np.ndarray:
    """Mean silhouette of several labelings of the same precomputed distance matrix.

    Equals ``sklearn.metrics.silhouette_score(distances, labels, metric="precomputed")``
    for each labeling (singletons score 0; NaN where fewer than 2 or as many labels as
    samples), but sums the distances to every cluster of every labeling in one matrix
    product instead of one ``bincount`` per sample and labeling (19 labelings of 5,000
    profiles: 0.13 s instead of 1.5 s). With ``weights`` the mean distances to a cluster
    and the mean of the silhouettes are weighted means (ones: the unweighted score).
    """
    m = distances.shape[0]
    w = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
    codes = [np.unique(labels, return_inverse=True)[1] for labels in label_sets]
    sizes = [int(c.max()) + 1 for c in codes]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    onehot = np.zeros((m, offsets[-1]))
    rows = np.arange(m)
    for code, start in zip(codes, offsets[:-1], strict=True):
        onehot[rows, start + code] = w
    sums = distances @ onehot
    scores = np.full(len(codes), np.nan)
    for j, (code, size, start) in enumerate(zip(codes, sizes, offsets[:-1], strict=True)):
        if not 2 <= size <= m - 1:
            continue
        block = sums[:, start : start + size]
        freq = np.bincount(code, weights=w, minlength=size)
        with np.errstate(divide="ignore", invalid="ignore"):
            intra = block[rows, code] / (freq[code] - w)
            mean_to = block / freq
            mean_to[rows, code] = np.inf
            inter = mean_to.min(axis=1)
            sil = (inter - intra) / np.maximum(intra, inter)
        scores[j] = np.average(np.nan_to_num(sil), weights=weights)
    return scores


def quality(
    X: np.ndarray,
    label_sets: list[np.ndarray],
    metric: str,
    metric_params: dict | None,
    random_state: int | None,
    sample_size: int,
    n_jobs: int,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Silhouette (on a seeded subsample, in the clustering metric) and Calinski-Harabasz
    score (all profiles) of each labeling, weighted by ``weights`` (None: unweighted); NaN
    where a score is undefined."""
    n = X.shape[0]
    idx = np.arange(n)
    if n > sample_size:
        idx = np.sort(check_random_state(random_state).choice(n, sample_size, replace=False))
    distances = _subsample_distances(X, idx, metric, metric_params, n_jobs)
    silhouette = mean_silhouettes(distances, [labels[idx] for labels in label_sets],
                                  None if weights is None else weights[idx])
    scores = calinski_harabasz_scores(X, label_sets, weights)
    return silhouette, scores


def calinski_harabasz_scores(X: np.ndarray, label_sets: Sequence[np.ndarray],
                             weights: np.ndarray | None = None) -> np.ndarray:
    """:func:`calinski_harabasz` of each labeling of X (weighted: every profile counts
    ``weights`` times, weights of mean 1)."""
    if weights is None:
        centred = X - X.mean(axis=0)
        total = float(np.einsum("ij,ij->", centred, centred))
    else:
        centred = X - np.average(X, axis=0, weights=weights)
        total = float(np.einsum("ij,ij,i->", centred, centred, weights))
    return np.array([calinski_harabasz(centred, total, labels, weights)
                     for labels in label_sets])


def calinski_harabasz(centred: np.ndarray, total: float, labels: np.ndarray,
                      weights: np.ndarray | None = None) -> float:
    """``sklearn.metrics.calinski_harabasz_score`` from cluster sums in one pass.

    ``centred`` is X minus its mean and ``total`` its sum of squares; the between-cluster
    dispersion is ``sum_k |S_k|^2 / n_k`` (S_k the sum of cluster k's centred rows) and the
    within-cluster one the rest. NaN where the score is undefined (k < 2 or k = n).
    With ``weights`` (mean 1; ``centred`` and ``total`` weighted alike) the sums and sizes
    are weighted.
    """
    n = centred.shape[0]
    codes = np.unique(labels, return_inverse=True)[1]
    k = int(codes.max()) + 1
    if not 2 <= k < n:
        return np.nan
    w = np.ones(n) if weights is None else weights
    members = csr_matrix((w, (codes, np.arange(n))), shape=(k, n))
    sums = members @ centred
    between = float((np.einsum("ij,ij->i", sums, sums)
                     / np.bincount(codes, weights=weights)).sum())
    within = total - between
    if within <= 0:
        return 1.0
    return between * (n - k) / (within * (k - 1))


def _choose(table: pd.DataFrame, knee: int | None, fallback: str) -> tuple[int, str | None, str]:
    """(chosen k, fallback rule used or None, one-sentence message)."""
    span = _describe(table["k"].tolist())
    if knee is not None:
        return knee, None, f"kneed found the knee of the distortion curve at k={knee} for {span}."
    score = FALLBACKS[fallback](table)
    if score.isna().all():
        raise InputError(
            f"kneed found no knee in the distortion curve for {span} and the {fallback} "
            "fallback is undefined there; set velocity.kmeans.n_clusters or another "
            "velocity.elbow.fallback."
        )
    chosen = int(table["k"][score.idxmax()])
    return chosen, fallback, (
        f"kneed found no knee in the distortion curve for {span}; chose k={chosen} by the "
        f"{fallback} fallback (velocity.elbow.fallback)."
    )


def _fit(X: np.ndarray, k: int, params: dict[str, Any], weights: np.ndarray | None
         ) -> ProfileKMeans:
    """One task of the scan: k-means with k clusters (pure: same inputs, same model),
    logged when done."""
    start = time.perf_counter()
    model = ProfileKMeans(n_clusters=k, **params).fit(X, sample_weight=weights)
    log.info("elbow scan k=%d (%s, n_init=%d): inertia %.6g in %.1f s", k, params["metric"],
             params["n_init"], model.inertia_, time.perf_counter() - start)
    return model


def _stability_labels(sample: np.ndarray, draw: np.ndarray, k: int, params: dict[str, Any],
                      seed: int, weights: np.ndarray | None) -> np.ndarray:
    """One stability clustering: fitted on ``sample[draw]`` (weighted by ``weights`` of
    the sample) with ``seed``, labels of the whole sample (nearest centre in the
    clustering metric); logged when done."""
    start = time.perf_counter()
    labels = ProfileKMeans(n_clusters=k, **{**params, "random_state": seed}).fit(
        sample[draw], sample_weight=None if weights is None else weights[draw]
    ).predict(sample)
    log.info("stability k=%d seed %d (%s, n_init=%d): %.1f s", k, seed, params["metric"],
             params["n_init"], time.perf_counter() - start)
    return labels


def elbow_scan(
    X: Any,
    nrange: Sequence[int] | None = None,
    *,
    metric: str = "euclidean",
    n_init: int | None = 10,
    max_iter: int = 50,
    tol: float = 1e-6,
    max_iter_barycenter: int = 100,
    metric_params: dict | None = None,
    random_state: int | None = 0,
    smooth: bool = False,
    smooth_n: int = 3,
    sensitivity: float = 1.0,
    fallback: str = "silhouette",
    silhouette_sample_size: int = 2000,
    rule: str = "stable_criterion",
    stability_seeds: int = 5,
    stability_fraction: float = 0.8,
    sample_size: int = 1000,
    gap_references: int = 10,
    min_stability: float = 0.9,
    n_jobs: int | None = 1,
    compute: Mapping[str, Any] | None = None,
    sample_weight: Any = None,
) -> ElbowResult:
    """Distortion curve over ``nrange`` (default 2..20), its knee, and the chosen k.

    Every k is fitted like seisgo's loop (same ``random_state`` for every k), with
    :class:`ProfileKMeans` and ``n_init`` starts (None: the metric's default), each k and
    each stability fit logged when done, as one dask task per k with one BLAS/OpenMP
    thread, on the scheduler of the ``compute`` section (default: ``n_jobs`` local threads; see
    :func:`seiscluster.compute.dask_scheduler`). The silhouette is computed on a subsample of
    ``silhouette_sample_size`` profiles (all when fewer; drawn with ``random_state``) in the
    clustering metric, as tslearn's ``silhouette_score`` does: Euclidean, DTW (with
    ``metric_params``) or normalised soft-DTW; DTW matrices are costly, so lower the sample size
    for dtw/softdtw. Calinski-Harabasz is Euclidean by definition (scikit-learn) and uses all
    profiles. When kneed finds no knee, the ``fallback`` rule picks the k that maximises the
    silhouette, the Calinski-Harabasz score or the second difference of the analysed distortion
    curve, or takes the smallest (``k_min``) or largest (``k_max``) k.

    Stability and gap (:mod:`seiscluster.kselect`) use a sample of ``sample_size`` profiles
    (all when fewer; drawn with ``random_state``): for every k, ``stability_seeds``
    clusterings, each fitted like the scan's (same metric and ``n_init``) with seed
    ``random_state + r`` on ``stability_fraction`` of the sample, label the sample; their
    mean pairwise ARI is the stability, their smallest Euclidean W_k the gap statistic's,
    against ``gap_references`` reference sets. ``rule`` (:class:`seiscluster.config.KRule`)
    chooses k: ``criterion`` is the knee (or fallback) choice above; the ``stable_*`` rules
    use ``min_stability``.

    ``sample_weight`` (Euclidean only; e.g. area weights of
    :mod:`seiscluster.velocity.grid`) weighs the fits, the distortion, the silhouette,
    the Calinski-Harabasz score and the stability fits; the gap statistic stays unweighted.
    """
    X = check_profiles(X)
    section("velocity.elbow", {
        "nrange": None if nrange is None else list(nrange), "smooth": smooth,
        "smooth_n": smooth_n, "sensitivity": sensitivity, "fallback": fallback,
        "silhouette_sample_size": silhouette_sample_size, "rule": rule,
        "stability_seeds": stability_seeds, "stability_fraction": stability_fraction,
        "sample_size": sample_size, "gap_references": gap_references})
    if random_state is not None:
        check_value("velocity.kmeans.random_state", random_state)
    ks = check_nrange(nrange, X.shape[0])
    n_init = n_init_for(metric, n_init)
    weights = check_weights(sample_weight, X.shape[0], metric)
    seed = int(random_state or 0)
    picked = kselect.subsample(X.shape[0], sample_size, np.random.default_rng([seed, 7]))
    sample = X[picked]
    sample_weights = None if weights is None else weights[picked]
    draws = kselect.stability_draws(sample.shape[0], stability_seeds, stability_fraction, seed)
    n_threads = effective_n_jobs(n_jobs)
    params = dict(
        metric=metric, n_init=n_init, max_iter=max_iter, tol=tol,
        max_iter_barycenter=max_iter_barycenter, metric_params=metric_params,
        random_state=random_state, n_jobs=1,
    )
    log.info("elbow scan %s (%s, n_init=%d) of %d profiles, then %d stability fits on %d, "
             "on %d threads", _describe(ks), metric, n_init, X.shape[0],
             len(ks) * len(draws), draws[0].size if draws else 0, n_threads)
    with dask_scheduler(compute, n_threads) as session:
        shared = session.share(X)
        models = dask.compute(*(dask.delayed(_fit)(shared, k, params, weights) for k in ks))
        shared_sample = session.share(sample)
        flat = dask.compute(*(
            dask.delayed(_stability_labels)(shared_sample, draw, k, params, seed + r,
                                            sample_weights)
            for k in ks for r, draw in enumerate(draws)))
        labels = {k: flat[i * len(draws):(i + 1) * len(draws)] for i, k in enumerate(ks)}
        with threadpool_limits(limits=1):
            gap = kselect.gap_statistic(
                sample, labels, n_refs=gap_references, seed=seed,
                map_fn=lambda f, args: dask.compute(*(dask.delayed(f)(*a) for a in args)))
    distortion = np.array([model.inertia_ for model in models])
    with threadpool_limits(limits=n_threads):
        silhouette, calinski_harabasz = quality(
            X, [model.labels_ for model in models], metric, metric_params, random_state,
            silhouette_sample_size, n_threads, weights,
        )
    table = pd.DataFrame({
        "k": ks,
        "distortion": distortion,
        "distortion_smoothed": smooth_curve(distortion, smooth_n) if smooth else distortion,
        "silhouette": silhouette,
        "calinski_harabasz": calinski_harabasz,
        "stability": kselect.stability_scores(labels),
        "gap": gap["gap"].to_numpy(),
        "gap_sk": gap["gap_sk"].to_numpy(),
    })
    knee = find_knee(ks, table["distortion_smoothed"], sensitivity)
    criterion_k, used, criterion_message = _choose(table, knee, fallback)
    chosen, message = kselect.choose(table, rule, criterion_k, criterion_message.rstrip("."),
                                     min_stability)
    return ElbowResult(
        table=table, knee=knee, n_clusters=chosen,
        fallback_used=used if rule.endswith("criterion") else None, message=message + ".",
        rule=rule, criterion_k=criterion_k, models=dict(zip(ks, models, strict=True)),
    )
