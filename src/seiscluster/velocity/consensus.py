"""Consensus of a velocity clustering over seeds: how often each node falls in its cluster.

The clustering a run keeps is one fit of one seed. :func:`consensus` refits the same
method with the same k (``velocity.consensus.seeds`` times, seeds ``random_state + 1`` ...),
each refit on a seeded draw of ``fraction`` of the distinct profiles (the others assigned
to its nearest cluster: ``predict``), matches the clusters of each refit to the final ones
(the Hungarian method on their contingency table, :func:`match_labels`) and counts, for
every node, the share of refits that put it in its final cluster: its *agreement*, 1 where
every refit agrees, down to 0. The vote maps of Cottaar & Lekic (2016) are the same idea
over models and methods. Everything is seeded: the same seed gives the same agreement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

#: A refit: (profiles, weights or None, seed, indices drawn) -> labels (0-based) of every
#: profile given.
Refit = Callable[[np.ndarray, "np.ndarray | None", int, np.ndarray], np.ndarray]


def contingency(reference: np.ndarray, labels: np.ndarray,
                weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(table, reference clusters, other clusters): ``table[a, b]`` the (weighted) number of
    nodes in cluster ``a`` of ``reference`` and ``b`` of ``labels``."""
    ref_ids, ref = np.unique(reference, return_inverse=True)
    ids, other = np.unique(labels, return_inverse=True)
    w = np.ones(ref.size) if weights is None else np.asarray(weights, dtype=np.float64)
    table = np.zeros((ref_ids.size, ids.size))
    np.add.at(table, (ref.ravel(), other.ravel()), w)
    return table, ref_ids, ids


def match_labels(reference: np.ndarray, labels: np.ndarray,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """``labels`` renamed to the ``reference`` clusters they overlap most, one to one
    (Hungarian method on the contingency table, the largest total overlap); a cluster left
    without a partner (more clusters than the reference has) becomes -1."""
    table, ref_ids, ids = contingency(reference, labels, weights)
    rows, cols = linear_sum_assignment(table, maximize=True)
    mapping = np.full(ids.size, -1, dtype=np.int64)
    mapping[cols] = ref_ids[rows]
    return mapping[np.searchsorted(ids, labels)]


def agreement(final: np.ndarray, refits: list[np.ndarray],
              weights: np.ndarray | None = None) -> np.ndarray:
    """Share of ``refits`` (labels of the same nodes) that put each node in its ``final``
    cluster, after matching each refit's clusters to the final ones (:func:`match_labels`,
    weighted by ``weights``)."""
    final = np.asarray(final)
    hits = np.zeros(final.size)
    for labels in refits:
        hits += match_labels(final, labels, weights) == final
    return hits / max(len(refits), 1)


def draw(n: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded draw of ``round(fraction * n)`` of ``n`` (all when 1)."""
    if fraction >= 1.0:
        return np.arange(n)
    size = min(n, max(2, round(fraction * n)))
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def consensus(X: np.ndarray, final: np.ndarray, refit: Refit, *, seeds: int,
              first_seed: int, fraction: float, weights: np.ndarray | None = None
              ) -> dict[str, Any]:
    """Agreement of every profile of ``X`` (the distinct nodes) with its ``final`` label
    over ``seeds`` refits. Refit r has seed ``first_seed + r`` (its draw and its fit);
    ``refit(X, weights, seed, indices)`` fits on ``X[indices]`` and labels all of ``X``.
    Returns ``agreement`` (per profile), ``seeds`` and ``ari`` (each refit against the
    final labels)."""
    from sklearn.metrics import adjusted_rand_score

    labels, used, ari = [], [], []
    for r in range(seeds):
        seed = int(first_seed + r)
        result = np.asarray(refit(X, weights, seed, draw(X.shape[0], fraction, seed)))
        labels.append(result)
        used.append(seed)
        ari.append(float(adjusted_rand_score(final, result)))
    return {"agreement": agreement(final, labels, weights), "seeds": used, "ari": ari,
            "labels": labels}


def summary(values: np.ndarray, threshold: float, weights: np.ndarray | None = None
            ) -> Mapping[str, float]:
    """Mean agreement, the share of nodes below ``threshold`` and their area share."""
    low = values < threshold
    w = np.ones(values.size) if weights is None else weights
    return {"mean_agreement": float(np.average(values, weights=w)),
            "n_low": int(low.sum()), "low_share": float(low.mean()),
            "low_area_share": float(w[low].sum() / w.sum())}
