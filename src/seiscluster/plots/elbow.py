"""Figures of the k scans: the elbow scan (distortion per k, knee, scores) and the
stability / gap-statistic panel that both branches' scans share."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_elbow", "plot_information_criteria", "plot_kselect"]


def plot_kselect(ax: Axes, table: pd.DataFrame, chosen: int,
                 min_stability: float | None = None) -> None:
    """Stability (left axis, with its threshold) and gap statistic +- s_k (right axis) per
    k, the chosen k marked; nothing where the table lacks them."""
    if "stability" not in table:
        return
    k = table["k"].to_numpy()
    ax.plot(k, table["stability"], "o-", color="tab:blue", ms=4, label="stability (ARI)")
    if min_stability is not None:
        ax.axhline(min_stability, color="tab:blue", ls=":", lw=1)
    ax.set_ylabel("stability (ARI)", color="tab:blue", fontsize=8)
    ax.axvline(chosen, color="tab:red", ls="--", lw=1)
    twin = ax.twinx()
    twin.errorbar(k, table["gap"], yerr=table["gap_sk"], fmt="s-", color="tab:brown", ms=3,
                  lw=1, label="gap +- s_k")
    twin.set_ylabel("gap (log W ratio)", color="tab:brown", fontsize=8)
    ax.set_title(f"stability (mean pairwise ARI) and gap statistic; chosen k = {chosen}",
                 fontsize=9)


def plot_elbow(
    table: pd.DataFrame, knee: int | None, chosen: int, message: str | None = None,
    min_stability: float | None = None,
) -> Figure:
    """Distortion per k (dots), the smoothed curve (line) and the knee; scores below
    (and the stability and gap statistic where the table has them)."""
    extra = "stability" in table
    fig = Figure(figsize=(8, 8 if extra else 6))
    axes = fig.subplots(3 if extra else 2, 1, sharex=True,
                        gridspec_kw={"height_ratios": [2, 1, 1] if extra else [2, 1]})
    top, bottom = axes[0], axes[1]
    k = table["k"].to_numpy()
    top.plot(k, table["distortion"], "o", color="k", label="distortion")
    if not np.allclose(table["distortion"], table["distortion_smoothed"]):
        top.plot(k, table["distortion_smoothed"], "r-", label="smoothed")
    else:
        top.plot(k, table["distortion"], "r-", lw=1)
    if knee is not None:
        top.axvline(knee, color="tab:blue", label=f"knee: {knee}")
    if chosen != knee:
        top.axvline(chosen, color="tab:orange", ls="--", label=f"chosen: {chosen}")
    top.set_ylabel("sum of distance to center")
    top.legend()
    top.set_title(message or "Elbow scan", fontsize=9, wrap=True)
    for column, colour in (("silhouette", "tab:green"), ("calinski_harabasz", "tab:purple")):
        values = table[column].to_numpy(dtype=float)
        span = np.nanmax(values) - np.nanmin(values)
        scaled = (values - np.nanmin(values)) / (span if span > 0 else 1.0)
        bottom.plot(k, scaled, "o-", color=colour, label=column.replace("_", "-"))
    bottom.set_ylabel("score (scaled 0-1)")
    bottom.set_xticks(k)
    bottom.legend(fontsize=8)
    plot_kselect(axes[-1], table, chosen, min_stability)
    axes[-1].set_xlabel("number of clusters")
    fig.tight_layout()
    return fig


def plot_information_criteria(table: pd.DataFrame, chosen: int) -> Figure:
    """BIC and AIC of the Gaussian mixture per k (smaller is better), the chosen k marked."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for column, colour in (("bic", "tab:blue"), ("aic", "tab:orange")):
        ax.plot(table["k"], table[column], "o-", color=colour, ms=4, label=column.upper())
        best = table["k"][table[column].idxmin()]
        ax.axvline(best, color=colour, ls=":", lw=1)
    ax.axvline(chosen, color="tab:red", ls="--", lw=1, label=f"chosen: {chosen}")
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("information criterion")
    ax.set_title("Gaussian mixture: BIC and AIC per k (dotted: their minima)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    return fig
