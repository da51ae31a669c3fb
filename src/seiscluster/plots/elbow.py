"""Figure of the elbow scan (distortion per k, knee, scores)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["plot_elbow"]


def plot_elbow(
    table: pd.DataFrame, knee: int | None, chosen: int, message: str | None = None
) -> Figure:
    """Distortion per k (dots), the smoothed curve (line) and the knee; scores below."""
    fig = Figure(figsize=(8, 6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    k = table["k"].to_numpy()
    top.plot(k, table["distortion"], "o", color="k", label="distortion")
    if not np.allclose(table["distortion"], table["distortion_smoothed"]):
        top.plot(k, table["distortion_smoothed"], "r-", label="smoothed")
    else:
        top.plot(k, table["distortion"], "r-", lw=1)
    if knee is not None:
        top.axvline(knee, color="tab:blue", label=f"knee: {knee}")
    if chosen != knee:
        top.axvline(chosen, color="tab:orange", ls="--", label=f"chosen (fallback): {chosen}")
    top.set_ylabel("sum of distance to center")
    top.legend()
    top.set_title(message or "Elbow scan", fontsize=9, wrap=True)
    for column, colour in (("silhouette", "tab:green"), ("calinski_harabasz", "tab:purple")):
        values = table[column].to_numpy(dtype=float)
        span = np.nanmax(values) - np.nanmin(values)
        scaled = (values - np.nanmin(values)) / (span if span > 0 else 1.0)
        bottom.plot(k, scaled, "o-", color=colour, label=column.replace("_", "-"))
    bottom.set_ylabel("score (scaled 0-1)")
    bottom.set_xlabel("number of clusters")
    bottom.set_xticks(k)
    bottom.legend(fontsize=8)
    fig.tight_layout()
    return fig
