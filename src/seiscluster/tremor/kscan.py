"""Number of clusters of the embeddings: k-means for each k of a range and its scores.

For every k in ``k_min..k_max``: k-means with ``n_init`` restarts (seeded), its inertia,
and the Calinski-Harabasz (higher is better), silhouette (higher is better) and
Davies-Bouldin (lower is better) scores; k is then chosen by the configured criterion,
or fixed by config. Each k also gets its stability and gap statistic
(:mod:`seiscluster.kselect`), and the rule (``tremor.kscan.rule``) combines them with the
criterion. The embeddings are small (thousands x tens), so the scan takes seconds: the k
values run in parallel threads (scikit-learn's k-means releases the GIL), each with one
OpenMP thread, and the silhouette reuses one pairwise distance matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.metrics.pairwise import euclidean_distances
from threadpoolctl import threadpool_limits

from seiscluster import kselect
from seiscluster.config import section
from seiscluster.errors import InputError

#: Above this many samples the silhouette is estimated on a seeded subsample of this size.
SILHOUETTE_EXACT_MAX = 5000


@dataclass
class KMeansFit:
    """One k-means solution: 0-based labels, centres and inertia."""

    k: int
    labels: np.ndarray
    centres: np.ndarray
    inertia: float
    n_iter: int


@dataclass
class KScanResult:
    """The scan table, the chosen k and how it was chosen."""

    table: pd.DataFrame
    n_clusters: int
    criterion: str
    message: str
    fits: dict[int, KMeansFit] = field(repr=False)
    rule: str = "criterion"
    criterion_k: int | None = None


def fit_kmeans(z: np.ndarray, k: int, n_init: int = 20, seed: int = 0) -> KMeansFit:
    """k-means (Lloyd, k-means++ init, ``n_init`` restarts) with ``random_state=seed``."""
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z)
    return KMeansFit(k, km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32),
                     float(km.inertia_), int(km.n_iter_))


def _scores(z: np.ndarray, fit: KMeansFit, distances: np.ndarray | None, seed: int) -> dict:
    labels = fit.labels
    if np.unique(labels).size < 2:
        ch = sil = db = np.nan
    else:
        ch = calinski_harabasz_score(z, labels)
        db = davies_bouldin_score(z, labels)
        if distances is not None:
            sil = silhouette_score(distances, labels, metric="precomputed")
        else:
            sil = silhouette_score(z, labels, sample_size=SILHOUETTE_EXACT_MAX,
                                   random_state=seed)
    return {"k": fit.k, "calinski_harabasz": float(ch), "silhouette": float(sil),
            "davies_bouldin": float(db), "inertia": fit.inertia, "n_iter": fit.n_iter}


def _fit_and_score(z: np.ndarray, k: int, n_init: int, seed: int,
                   distances: np.ndarray | None) -> tuple[KMeansFit, dict]:
    fit = fit_kmeans(z, k, n_init, seed)
    return fit, _scores(z, fit, distances, seed)


def _stability_labels(sample: np.ndarray, draw: np.ndarray, k: int, n_init: int,
                      seed: int) -> np.ndarray:
    """One stability clustering: k-means of ``sample[draw]``, labels of the whole sample."""
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(sample[draw]) \
        .predict(sample)


def scan_k(
    z: np.ndarray,
    ks: Sequence[int],
    *,
    n_init: int = 20,
    seed: int = 0,
    n_jobs: int = 1,
    stability_seeds: int = 5,
    stability_fraction: float = 0.8,
    sample_size: int = SILHOUETTE_EXACT_MAX,
    gap_references: int = 10,
) -> tuple[pd.DataFrame, dict[int, KMeansFit]]:
    """k-means and scores for every k of ``ks``: the table and the fits by k.

    Besides the criteria, every k gets its stability and gap statistic
    (:mod:`seiscluster.kselect`) on a seeded sample of ``sample_size`` embeddings (all
    when fewer): ``stability_seeds`` k-means (``n_init`` starts, seed ``seed + r``) each
    fitted on ``stability_fraction`` of the sample label the sample; ``gap_references``
    reference sets give the gap statistic.
    """
    z = np.ascontiguousarray(z, dtype=np.float64)
    distances = euclidean_distances(z) if z.shape[0] <= SILHOUETTE_EXACT_MAX else None
    sample = z[kselect.subsample(z.shape[0], sample_size, np.random.default_rng([seed, 7]))]
    draws = kselect.stability_draws(sample.shape[0], stability_seeds, stability_fraction, seed)
    with threadpool_limits(1), Parallel(n_jobs=max(1, n_jobs), prefer="threads") as pool:
        out = pool(delayed(_fit_and_score)(z, int(k), n_init, seed, distances) for k in ks)
        flat = pool(delayed(_stability_labels)(sample, draw, int(k), n_init, seed + r)
                    for k in ks for r, draw in enumerate(draws))
        labels = {int(k): flat[i * len(draws):(i + 1) * len(draws)] for i, k in enumerate(ks)}
        gap = kselect.gap_statistic(sample, labels, n_refs=gap_references, seed=seed,
                                    map_fn=lambda f, args: pool(delayed(f)(*a) for a in args))
    fits = {fit.k: fit for fit, _ in out}
    table = pd.DataFrame([row for _, row in out])
    table["stability"] = kselect.stability_scores(labels)
    table["gap"], table["gap_sk"] = gap["gap"].to_numpy(), gap["gap_sk"].to_numpy()
    return table.sort_values("k").reset_index(drop=True), fits


def choose_k(table: pd.DataFrame, criterion: str) -> tuple[int, str]:
    """k with the best ``criterion`` score (max CH / silhouette, min Davies-Bouldin)."""
    scores = table[criterion].to_numpy(dtype=float)
    if np.isnan(scores).all():
        k = int(table["k"].iloc[0])
        return k, f"every {criterion} score is undefined: k={k} (the smallest scanned)"
    best = np.nanargmin(scores) if criterion == "davies_bouldin" else np.nanargmax(scores)
    k = int(table["k"].iloc[best])
    word = "lowest" if criterion == "davies_bouldin" else "highest"
    return k, f"k={k}: {word} {criterion.replace('_', '-')} score ({scores[best]:.4g})"


def kscan(
    z: np.ndarray,
    *,
    k_min: int = 2,
    k_max: int = 15,
    n_init: int = 20,
    criterion: str = "calinski_harabasz",
    n_clusters: int | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    source: str = "the embeddings",
    rule: str = "stable_criterion",
    stability_seeds: int = 5,
    stability_fraction: float = 0.8,
    sample_size: int = SILHOUETTE_EXACT_MAX,
    gap_references: int = 10,
    min_stability: float = 0.9,
) -> KScanResult:
    """Scan k = k_min..k_max on embeddings ``z`` and choose k (or take ``n_clusters``).

    ``rule`` (:class:`seiscluster.config.KRule`): ``criterion`` takes the best
    ``criterion`` score; ``gap`` Tibshirani's rule; ``stable_*`` that choice moved to a
    stable k (stability >= ``min_stability``) as :func:`seiscluster.kselect.choose` says.
    """
    n = int(np.shape(z)[0])
    if k_max >= n:
        raise InputError(f"tremor.kscan.k_max ({k_max}) must be smaller than the number of "
                         f"samples ({n}) of {source}.")
    if n_clusters is not None and n_clusters > n:
        raise InputError(f"tremor.kscan.n_clusters ({n_clusters}) is larger than the number "
                         f"of samples ({n}) of {source}.")
    section("tremor.kscan", {
        "k_min": k_min, "k_max": k_max, "n_init": n_init, "criterion": criterion,
        "n_clusters": n_clusters, "rule": rule, "stability_seeds": stability_seeds,
        "stability_fraction": stability_fraction, "sample_size": sample_size,
        "gap_references": gap_references})
    ks = list(range(int(k_min), int(k_max) + 1))
    table, fits = scan_k(z, ks, n_init=n_init, seed=seed, n_jobs=n_jobs,
                         stability_seeds=stability_seeds, stability_fraction=stability_fraction,
                         sample_size=sample_size, gap_references=gap_references)
    criterion_k, criterion_message = choose_k(table, criterion)
    if n_clusters is None:
        k, message = kselect.choose(table, rule, criterion_k, criterion_message, min_stability)
    else:
        k = int(n_clusters)
        message = f"k={k}: fixed by tremor.kscan.n_clusters"
        if k not in fits:
            fits[k] = fit_kmeans(np.asarray(z, dtype=np.float64), k, n_init, seed)
    return KScanResult(table=table, n_clusters=k, criterion=criterion, message=message,
                       fits=fits, rule=rule if n_clusters is None else "fixed",
                       criterion_k=criterion_k)
