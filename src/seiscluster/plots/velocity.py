"""Figures of the velocity branch, drawn offline with matplotlib (no web tiles).

Figures are built with the object-oriented API (no pyplot state, no GUI backend).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from seiscluster.fileio import atomic_path


def save(fig: Figure, path: str | Path, dpi: int = 120) -> None:
    """Save a figure atomically in the format of the file's suffix (png, svg, pdf)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")


def plot_kselect(ax, table: pd.DataFrame, chosen: int, min_stability: float | None = None
                 ) -> None:
    """Stability (left axis, with its threshold) and gap statistic +- s_k (right axis) per
    k, the chosen k marked; nothing where the table lacks them."""
    if "stability" not in table:
        return
    k = table["k"].to_numpy()
    ax.plot(k, table["stability"], "o-", color="tab:blue", ms=4, label="stability (ARI)")
    if min_stability is not None:
        ax.axhline(min_stability, color="tab:blue", ls=":", lw=1)
    ax.set_ylabel("stability", color="tab:blue", fontsize=8)
    ax.axvline(chosen, color="tab:red", ls="--", lw=1)
    twin = ax.twinx()
    twin.errorbar(k, table["gap"], yerr=table["gap_sk"], fmt="s-", color="tab:brown", ms=3,
                  lw=1, label="gap +- s_k")
    twin.set_ylabel("gap", color="tab:brown", fontsize=8)
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


def panel_grid(n: int) -> tuple[int, int]:
    """seisgo's panel layout for n clusters: 1 row below 4, then 2, 3, 4, 5, 6 columns."""
    if n < 4:
        return 1, max(n, 1)
    ncols = next(c for limit, c in ((9, 2), (16, 3), (21, 4), (26, 5)) if n < limit) \
        if n < 26 else 6
    return math.ceil(n / ncols), ncols


def plot_cluster_profiles(
    depth: np.ndarray,
    X: np.ndarray,
    clusters: np.ndarray,
    cluster_ids: Sequence[int],
    centroids: np.ndarray,
    *,
    ylabel: str = "Vs (km/s)",
    centroid_label: str = "centroid",
    figsize: Sequence[float] | None = None,
) -> Figure:
    """One panel per cluster: member profiles transparent, centroid (or mean) in red,
    depth on the x axis as in seisgo."""
    nrows, ncols = panel_grid(len(cluster_ids))
    size = figsize or (13, 4 if nrows == 1 else min(3 * nrows, 24))
    fig = Figure(figsize=size)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for ax, cid, centre in zip(axes.flat, cluster_ids, centroids, strict=False):
        members = X[clusters == cid]
        alpha = float(np.clip(20.0 / max(len(members), 1), 0.02, 0.3))
        lines = np.stack([np.broadcast_to(depth, members.shape), members], axis=-1)
        ax.add_collection(LineCollection(lines, colors="k", alpha=alpha, linewidths=0.6))
        ax.plot(depth, centre, "r-", lw=1.8, label=centroid_label)
        noun = "profile" if len(members) == 1 else "profiles"
        ax.set_title(f"Cluster {cid} ({len(members)} {noun})", fontsize=10)
        ax.set_xlabel("depth (km)")
        ax.set_ylabel(ylabel)
        ax.autoscale_view()
        ax.label_outer()
    for ax in axes.flat[len(cluster_ids):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_cluster_map(
    clusters: xr.Dataset, title: str, truth: np.ndarray | None = None
) -> Figure:
    """Map of ``cluster_label(latitude, longitude)``, optionally beside the true provinces."""
    panels = [("cluster_label", clusters["cluster_label"].values, title)]
    if truth is not None:
        panels.append(("province", truth, "true province (example model)"))
    lat = clusters["latitude"].values
    lon = clusters["longitude"].values
    aspect = 1.0 / max(np.cos(np.deg2rad(np.mean(lat))), 0.1)
    shape = np.ptp(lat) * aspect / max(np.ptp(lon), 1e-9)  # height / width of one map
    width = float(np.clip(5.0 / max(shape, 1e-9), 3.0, 9.0)) + 1.8  # + colour bar
    fig = Figure(figsize=(width * len(panels), 5.5))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (name, grid, label) in zip(axes.flat, panels, strict=True):
        ids = np.unique(grid[np.isfinite(grid) & (grid > 0)]).astype(int)
        cmap, norm = _discrete_colours(ids)
        mesh = ax.pcolormesh(lon, lat, np.where(grid > 0, grid, np.nan), cmap=cmap, norm=norm,
                             shading="nearest")
        ticks = ids if ids.size <= 25 else None
        fig.colorbar(mesh, ax=ax, ticks=ticks, label=name.replace("_", " "))
        ax.set_aspect(aspect)
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
        ax.set_title(label, fontsize=10)
    fig.tight_layout()
    return fig


def plot_som_maps(u_matrix: np.ndarray, hits: np.ndarray) -> Figure:
    """SOM node distance map (U-matrix) and hit counts per node, node numbers annotated."""
    nx, ny = hits.shape
    fig = Figure(figsize=(11, 4.8))
    axes = fig.subplots(1, 2)
    for ax, grid, label, cmap in ((axes[0], u_matrix, "mean distance to neighbours", "bone_r"),
                                  (axes[1], hits, "profiles per node", "viridis")):
        image = ax.imshow(grid.T, origin="lower", cmap=cmap, aspect="equal")
        fig.colorbar(image, ax=ax, label=label)
        ax.set_xlabel("SOM x")
        ax.set_ylabel("SOM y")
    for x in range(nx):
        for y in range(ny):
            axes[1].text(x, y, f"{x * ny + y + 1}\n{int(hits[x, y])}", ha="center",
                         va="center", fontsize=7, color="w")
    axes[0].set_title("U-matrix")
    axes[1].set_title("hits (node number / count)")
    fig.tight_layout()
    return fig


def _discrete_colours(ids: np.ndarray) -> tuple[ListedColormap, BoundaryNorm]:
    base = colormaps["tab20" if ids.size > 10 else "tab10"]
    colours = [base(i % base.N) for i in range(max(ids.size, 1))]
    bounds = np.concatenate([ids - 0.5, [ids[-1] + 0.5]]) if ids.size else np.array([0.0, 1.0])
    cmap = ListedColormap(colours)
    return cmap, BoundaryNorm(bounds, cmap.N)
