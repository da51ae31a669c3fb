"""Figures comparing the runs of a sweep (matplotlib object-oriented API, no pyplot).

Key metrics per run (one panel per metric) and the wall time of each stage per run. When
a sweep varies one numeric key, runs are placed at its values (a line); otherwise they
are bars in the order of the sweep, labelled with the run names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from seiscluster.plots.style import save

__all__ = ["plot_metrics", "plot_wall_times", "save"]


def _numeric_axis(table: pd.DataFrame, swept: Sequence[str]) -> str | None:
    """The swept key to use as a numeric x axis, when exactly one numeric key varies."""
    if len(swept) != 1:
        return None
    values = pd.to_numeric(table[swept[0]], errors="coerce")
    return swept[0] if values.notna().all() and values.nunique() == len(values) else None


def plot_metrics(table: pd.DataFrame, metrics: Sequence[str], swept: Sequence[str] = (),
                 run_column: str = "run") -> Figure:
    """One panel per metric column, its value for every run."""
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    xkey = _numeric_axis(table, swept)
    if xkey is not None:
        x = pd.to_numeric(table[xkey]).to_numpy(dtype=float)
        order = np.argsort(x)
    for ax, column in zip(axes, metrics, strict=False):
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        if xkey is not None:
            ax.plot(x[order], values[order], "o-", color="tab:blue")
            ax.set_xlabel(xkey)
        else:
            ax.bar(np.arange(len(table)), values, color="tab:blue")
            ax.set_xticks(np.arange(len(table)), table[run_column].astype(str), rotation=45,
                          ha="right", fontsize=8)
        ax.set_title(column.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_wall_times(table: pd.DataFrame, stages: Sequence[str], labels: Sequence[str],
                    run_column: str = "run") -> Figure:
    """Wall time of each stage (stacked horizontal bars), one bar per run."""
    fig = Figure(figsize=(9, 1.2 + 0.45 * len(table)))
    ax = fig.subplots()
    y = np.arange(len(table))
    left = np.zeros(len(table))
    cmap = colormaps["tab20"]
    for i, (column, label) in enumerate(zip(stages, labels, strict=True)):
        seconds = np.nan_to_num(pd.to_numeric(table[column], errors="coerce")
                                .to_numpy(dtype=float))
        ax.barh(y, seconds, left=left, color=cmap(i % cmap.N), label=label)
        left += seconds
    ax.set_yticks(y, table[run_column].astype(str), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("wall time (s)")
    ax.set_title("Wall time per stage (Snakemake benchmarks)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig
