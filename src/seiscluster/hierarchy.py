"""Merge trees of agglomerative clustering (both branches), in SciPy's linkage format."""

from __future__ import annotations

from typing import Any

import numpy as np


def linkage_matrix(model: Any) -> np.ndarray:
    """SciPy linkage matrix ``(n - 1, 4)`` of a fitted full-tree ``AgglomerativeClustering``
    (merged children, merge distance, size of the merged cluster), for the dendrogram."""
    n = model.labels_.size
    counts = np.ones(2 * n - 1)
    for m, (a, b) in enumerate(model.children_):  # children merge before their parents
        counts[n + m] = counts[a] + counts[b]
    return np.column_stack([model.children_, model.distances_,
                            counts[n:]]).astype(np.float64)
