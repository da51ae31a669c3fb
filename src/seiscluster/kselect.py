"""Choosing the number of clusters: stability, gap statistic and the rule that combines them.

Shared by the velocity elbow scan (:mod:`seiscluster.velocity.elbow`) and the tremor k scan
(:mod:`seiscluster.tremor.kscan`); each branch fits its own clusterings (its estimator and
metric) and this module does the maths.

**Stability** of k (:func:`stability_scores`): ``n_seeds`` clusterings of the same sample,
clustering r fitted with seed ``seed + r`` on its own seeded subsample of ``fraction`` of
the sample and then labelling the whole sample (nearest centre); the score is the mean
adjusted Rand index over all pairs of clusterings (1 = the same partition every time).
It measures agreement over seeds and over subsamples at once, and is deterministic for
a seed.

**Gap statistic** (Tibshirani, Walther & Hastie 2001, :func:`gap_statistic`):
``Gap(k) = E*[log W_k] - log W_k`` with ``W_k`` the within-cluster sum of squared
Euclidean distances to the cluster means, ``E*`` the mean over ``n_refs`` reference sets
drawn uniformly in the box aligned with the principal components of the sample (their
reference distribution (b)) and clustered by scikit-learn's k-means (k-means++, one start
by default: uniform data has no deep local minima),
and ``s_k = sd_k * sqrt(1 + 1/n_refs)``. The data's ``W_k`` is the smallest over the
clusterings of the stability step, so it costs no extra fit. Tibshirani's rule
(:func:`gap_choice`): the smallest k with ``Gap(k) >= Gap(k') - s_k'`` (k' the next k of
the scan); where no k passes, the k of the largest gap. It is Euclidean whatever the
clustering metric (the velocity branch's DTW and soft-DTW fits included).

**Rules** (:func:`choose`, :class:`seiscluster.config.KRule`):

- ``criterion``: the branch's own choice (velocity: kneed's knee, else
  ``velocity.elbow.fallback``; tremor: the best ``tremor.kscan.criterion`` score);
- ``gap``: Tibshirani's rule above;
- ``stable_criterion`` / ``stable_gap``: that choice if its stability reaches
  ``min_stability``; otherwise the largest smaller k that does; otherwise the smallest
  larger k that does; where no k is stable, the choice itself (and the diagnostics warn).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

#: Columns a scan table gains: stability and the gap statistic with its s_k.
COLUMNS = ("stability", "gap", "gap_sk")


def subsample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``size`` of ``n`` samples drawn without replacement (all if fewer)."""
    if size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size, replace=False))


def mean_pairwise_ari(label_sets: Sequence[np.ndarray]) -> float:
    """Mean adjusted Rand index over every pair of labelings of the same samples."""
    pairs = list(combinations(label_sets, 2))
    if not pairs:
        return math.nan
    return float(np.mean([adjusted_rand_score(a, b) for a, b in pairs]))


def stability_draws(n: int, n_seeds: int, fraction: float, seed: int) -> list[np.ndarray]:
    """The fitting subsample of each stability clustering (seeded, sorted indices)."""
    size = max(2, math.ceil(fraction * n))
    return [subsample(n, size, np.random.default_rng([seed, r])) for r in range(n_seeds)]


def stability_scores(label_sets: dict[int, Sequence[np.ndarray]]) -> np.ndarray:
    """Stability of each k: mean pairwise ARI of its labelings (``{k: [labels, ...]}``)."""
    return np.array([mean_pairwise_ari(sets) for sets in label_sets.values()])


def within_ss(X: np.ndarray, labels: np.ndarray) -> float:
    """W_k: sum of squared Euclidean distances of the samples to their cluster means."""
    centred = X - X.mean(axis=0)
    codes = np.unique(labels, return_inverse=True)[1]
    k, n = int(codes.max()) + 1, X.shape[0]
    members = csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(k, n))
    sums = members @ centred
    between = float((np.einsum("ij,ij->i", sums, sums) / np.bincount(codes)).sum())
    return max(float(np.einsum("ij,ij->", centred, centred)) - between, 0.0)


def reference_sets(X: np.ndarray, n_refs: int, seed: int) -> np.ndarray:
    """``n_refs`` samples of X's size, uniform in the box of X's principal components."""
    mean = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
    proj = (X - mean) @ vt.T
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    rng = np.random.default_rng([seed, 1_000_003])
    u = rng.uniform(size=(n_refs, X.shape[0], lo.size))
    return (lo + u * (hi - lo)) @ vt + mean


def _reference_log_w(ref: np.ndarray, k: int, n_init: int, seed: int) -> float:
    """log W_k of one reference set, W_k recomputed from the labels: scikit-learn's inertia
    sums in an order that depends on its thread count, so a threads and a processes
    scheduler would differ in the last bits."""
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(ref)
    return math.log(max(within_ss(ref, km.labels_), np.finfo(float).tiny))


def gap_statistic(
    X: np.ndarray,
    data_labels: dict[int, Sequence[np.ndarray]],
    *,
    n_refs: int = 10,
    n_init: int = 1,
    seed: int = 0,
    map_fn: Callable[[Callable, list], list] | None = None,
) -> pd.DataFrame:
    """Gap(k) and s_k for every k of ``data_labels`` (``{k: [labels of X, ...]}``).

    The data's ``W_k`` is the smallest over the given labelings of X; each of the
    ``n_refs`` reference sets (:func:`reference_sets`) is clustered by scikit-learn's
    k-means (``n_init`` starts, seed ``seed``) for every k. ``map_fn(f, args)`` runs the
    reference fits (default: in turn); columns ``k``, ``gap``, ``gap_sk``.
    """
    X = np.asarray(X, dtype=np.float64)
    ks = list(data_labels)
    refs = reference_sets(X, n_refs, seed)
    jobs = [(ref, k, n_init, seed) for k in ks for ref in refs]
    run = map_fn or (lambda f, args: [f(*a) for a in args])
    log_ref = np.array(run(_reference_log_w, jobs)).reshape(len(ks), n_refs)
    log_w = np.array([math.log(max(min(within_ss(X, lab) for lab in sets),
                                   np.finfo(float).tiny))
                      for sets in data_labels.values()])
    gap = log_ref.mean(axis=1) - log_w
    sk = log_ref.std(axis=1) * math.sqrt(1 + 1 / n_refs)
    return pd.DataFrame({"k": ks, "gap": gap, "gap_sk": sk})


def gap_choice(table: pd.DataFrame) -> tuple[int, str]:
    """Tibshirani's rule on a table with ``k``, ``gap``, ``gap_sk`` (k increasing)."""
    k, gap, sk = (table[c].to_numpy(dtype=float) for c in ("k", "gap", "gap_sk"))
    ok = gap[:-1] >= gap[1:] - sk[1:]
    if ok.any():
        i = int(np.flatnonzero(ok)[0])
        return int(k[i]), (f"k={int(k[i])}: the smallest k with Gap(k) >= Gap(k+1) - s(k+1) "
                           f"(gap statistic, {gap[i]:.3f} >= {gap[i + 1] - sk[i + 1]:.3f})")
    i = int(np.nanargmax(gap))
    return int(k[i]), (f"k={int(k[i])}: no k has Gap(k) >= Gap(k+1) - s(k+1), so the largest "
                       f"gap ({gap[i]:.3f})")


def stable_choice(table: pd.DataFrame, base: int, min_stability: float) -> tuple[int, str]:
    """``base`` if its stability reaches ``min_stability``, else the largest smaller stable
    k, else the smallest larger stable k, else ``base``; with one sentence saying which."""
    k = table["k"].to_numpy(dtype=int)
    stab = table["stability"].to_numpy(dtype=float)
    s_base = float(stab[k == base][0]) if (k == base).any() else math.nan
    stable = np.nan_to_num(stab, nan=-np.inf) >= min_stability
    if s_base >= min_stability:
        return base, f"stable (stability {s_base:.3f} >= {min_stability:g})"
    below, above = k[stable & (k < base)], k[stable & (k > base)]
    if below.size or above.size:
        new = int(below.max() if below.size else above.min())
        s_new = float(stab[k == new][0])
        return new, (f"k={base} is unstable (stability {s_base:.3f} < {min_stability:g}), so "
                     f"k={new}, the {'largest smaller' if below.size else 'smallest larger'} "
                     f"stable k (stability {s_new:.3f})")
    return base, (f"no k reaches stability {min_stability:g} (k={base}: {s_base:.3f}); "
                  f"k={base} is kept")


def choose(
    table: pd.DataFrame, rule: str, criterion_k: int, criterion_message: str,
    min_stability: float,
) -> tuple[int, str]:
    """The chosen k and one sentence explaining it, by ``rule`` (a checked
    :class:`seiscluster.config.KRule` value).

    ``table`` has ``k``, ``stability``, ``gap``, ``gap_sk``; ``criterion_k`` and
    ``criterion_message`` are the branch's own choice.
    """
    if rule == "criterion":
        return criterion_k, f"{criterion_message} (rule criterion)"
    if rule.endswith("gap"):
        base, why = gap_choice(table)
    else:
        base, why = criterion_k, criterion_message
    if rule in ("gap",):
        return base, f"{why} (rule gap)"
    k, how = stable_choice(table, base, min_stability)
    return k, f"{why}; {how} (rule {rule})"
