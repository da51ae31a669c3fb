"""The spread of each cluster, feature by feature: a diagonal Gaussian per cluster.

Monitoring measures how far a new window lies from a cluster in that cluster's own spread
(novelty), and the labels of the windows at a regime change weigh the parts of a window
against each cluster the same way (:mod:`~seiscluster.tremor.boundaries`). A cluster's
variance of each standardised feature is shrunk by :data:`SHRINKAGE` towards the variance
pooled over the clusters and kept above :data:`MIN_SPREAD` squared, so that a small or
tight cluster does not make every other window infinitely far.
"""

from __future__ import annotations

import numpy as np

#: Share of the pooled within-cluster variance mixed into each cluster's variance: 0
#: trusts every cluster's own spread, 1 gives all clusters the pooled one.
SHRINKAGE = 0.25
#: Smallest standard deviation of a standardised feature in a cluster.
MIN_SPREAD = 0.05


def cluster_spread(z: np.ndarray, cluster: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(k, d) standard deviation of every feature in every cluster (1-based ``cluster``),
    its variance shrunk by :data:`SHRINKAGE` towards the pooled within-cluster variance and
    at least :data:`MIN_SPREAD`."""
    residual = (z - centres[cluster - 1]) ** 2
    pooled = residual.mean(axis=0)
    own = np.stack([residual[cluster == j].mean(axis=0) for j in range(1, len(centres) + 1)])
    return np.maximum(np.sqrt((1 - SHRINKAGE) * own + SHRINKAGE * pooled), MIN_SPREAD)


def spread_distance(z: np.ndarray, centres: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Root mean square over the last axis of ``(z - centres) / spread`` (broadcast)."""
    return np.sqrt((((z - centres) / spread) ** 2).mean(axis=-1))
