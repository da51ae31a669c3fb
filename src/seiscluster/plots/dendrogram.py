"""The top of an agglomerative clustering's merge tree, cut at k clusters (matplotlib
object-oriented API, no pyplot)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def plot_dendrogram(linkage: np.ndarray, k: int,
                    title: str = "agglomerative clustering") -> Figure:
    """Dendrogram of a SciPy ``linkage`` matrix truncated to its last merges, with the
    height where it is cut into ``k`` clusters (a dashed line, clusters coloured below)."""
    from scipy.cluster.hierarchy import dendrogram

    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    cut = float(linkage[[-k, -k + 1], 2].mean()) if k > 1 else float(linkage[-1, 2]) * 1.05
    dendrogram(linkage, ax=ax, truncate_mode="lastp", p=max(3 * k, 12), color_threshold=cut,
               leaf_font_size=7)
    ax.axhline(cut, color="0.3", ls="--", lw=0.8, label=f"cut: {k} clusters")
    ax.set(ylabel="merge distance", xlabel="clusters (members)", title=title)
    ax.legend(loc="upper right")
    return fig
