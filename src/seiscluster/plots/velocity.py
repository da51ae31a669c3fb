"""Figures of the velocity branch, drawn offline with matplotlib (no web tiles): cluster
profiles against depth, cluster maps (:mod:`seiscluster.plots.maps`) and SOM maps, one
colour per cluster in all of them (:func:`cluster_colour_list`).

Figures are built with the object-oriented API (no pyplot state, no GUI backend).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure

from seiscluster.plots import maps
from seiscluster.plots.colours import (
    NO_DATA,
    cluster_colours,
    colours_for_ids,
    discrete_norm,
    som_node_colours,
)
from seiscluster.plots.style import save, save_all

__all__ = ["cluster_colour_list", "panel_grid", "plot_agreement", "plot_cluster_map",
           "plot_cluster_profiles", "plot_consensus_map", "plot_probability_map",
           "plot_som_maps", "save", "save_all"]


def panel_grid(n: int) -> tuple[int, int]:
    """seisgo's panel layout for n clusters: 1 row below 4, then 2, 3, 4, 5, 6 columns."""
    if n < 4:
        return 1, max(n, 1)
    ncols = next(c for limit, c in ((9, 2), (16, 3), (21, 4), (26, 5)) if n < limit) \
        if n < 26 else 6
    return math.ceil(n / ncols), ncols


def cluster_colour_list(clusters: xr.Dataset) -> list[str]:
    """The colour of each cluster of ``clusters`` (in the order of its ``cluster``
    coordinate), the same in every figure: a SOM node's colour comes from its place on the
    node grid (:func:`~seiscluster.plots.colours.som_node_colours`), other clusters take
    :func:`~seiscluster.plots.colours.cluster_colours` of the cluster count."""
    ids = clusters["cluster"].values.astype(int)
    if "som_hits" in clusters:
        nx, ny = clusters["som_hits"].shape
        return som_node_colours(nx, ny).reshape(-1)[ids - 1].tolist()
    return colours_for_ids(ids)


#: Member profiles drawn per cluster panel at most (a seeded draw of the larger clusters:
#: 40,000 lines took seconds per format and looked the same); the mean and the 10th-90th
#: percentile band are computed from all members.
MAX_DRAWN_PROFILES = 2000


def plot_cluster_profiles(
    depth: np.ndarray,
    X: np.ndarray,
    clusters: np.ndarray,
    cluster_ids: Sequence[int],
    centroids: np.ndarray,
    *,
    colours: Sequence[str] | None = None,
    ylabel: str = "Vs (km/s)",
    centroid_label: str = "centroid",
    figsize: Sequence[float] | None = None,
) -> Figure:
    """Velocity against depth (depth down): first all clusters' means in one panel, then one
    panel per cluster with its member profiles, mean, spread (10th-90th percentile, shaded)
    and the centroid (dashed, where it differs from the mean). ``ylabel`` names the
    velocity axis (kept for seisgo's argument name)."""
    ids = list(cluster_ids)
    colours = list(colours) if colours is not None else cluster_colours(len(ids))
    nrows, ncols = panel_grid(len(ids) + 1)
    size = figsize or (min(2.6 * ncols + 1.0, 16), min(3.6 * nrows, 40))
    fig = Figure(figsize=size)
    # Common limits set on every panel instead of sharex/sharey: matplotlib's shared axes
    # cost time quadratic in the panel count (a 7x7 SOM: about 10 s of 24).
    axes = fig.subplots(nrows, ncols, squeeze=False)
    depth = np.asarray(depth, dtype=float)
    everything = axes.flat[0]
    rng = np.random.default_rng(0)
    for ax, cid, centre, colour in zip(axes.flat[1:], ids, centroids, colours, strict=False):
        members = X[clusters == cid]
        noun = "profile" if len(members) == 1 else "profiles"
        ax.set_title(f"cluster {cid} ({len(members)} {noun})", fontsize=9, color=colour)
        if len(members):
            drawn = members
            if len(members) > MAX_DRAWN_PROFILES:  # a seeded draw; the band uses all
                drawn = members[np.sort(rng.choice(len(members), MAX_DRAWN_PROFILES,
                                                   replace=False))]
            alpha = float(np.clip(20.0 / len(drawn), 0.02, 0.3))
            lines = np.stack([drawn, np.broadcast_to(depth, drawn.shape)], axis=-1)
            ax.add_collection(LineCollection(lines, colors=colour, alpha=alpha,
                                             linewidths=0.5, rasterized=True))  # SVG size
            low, mean, high = (np.nanpercentile(members, 10, axis=0),
                               np.nanmean(members, axis=0),
                               np.nanpercentile(members, 90, axis=0))
            ax.fill_betweenx(depth, low, high, color=colour, alpha=0.25, lw=0,
                             label="10th-90th percentile")
            ax.plot(mean, depth, color="k", lw=1.6, label="mean")
            everything.plot(mean, depth, color=colour, lw=1.4, label=str(cid))
        if centroid_label != "mean" and np.all(np.isfinite(centre)):
            ax.plot(centre, depth, color="k", lw=1.0, ls="--", label=centroid_label)
    everything.set_title(f"all clusters: mean ({len(ids)})", fontsize=9)
    if len(ids) <= 12:
        everything.legend(fontsize=6, title="cluster", title_fontsize=6, loc="lower left")
    handles, labels = axes.flat[1].get_legend_handles_labels() if ids else ([], [])
    if handles:
        axes.flat[1].legend(handles, labels, fontsize=6, loc="lower left")
    n_panels = len(ids) + 1
    values = np.concatenate([np.ravel(X), np.ravel(np.asarray(centroids, dtype=float))])
    finite = values[np.isfinite(values)]
    xlim = None
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        pad = 0.05 * (high - low) if high > low else 0.5
        xlim = (low - pad, high + pad)  # matplotlib's 5 % margins of the shared axes
    for i, ax in enumerate(axes.flat[:n_panels]):
        ax.grid(lw=0.3, color="#cccccc")
        if xlim is not None:
            ax.set_xlim(xlim)
        else:
            ax.autoscale_view()
        if depth.size:
            ax.set_ylim(depth.max(), depth.min())  # depth down
        if i % ncols == 0:
            ax.set_ylabel("depth (km)")
        else:
            ax.tick_params(labelleft=False)
        if i + ncols >= n_panels:  # no panel below: label the velocity axis
            ax.set_xlabel(ylabel)
        else:
            ax.tick_params(labelbottom=False)
    for ax in axes.flat[len(ids) + 1:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_cluster_map(
    clusters: xr.Dataset, title: str, truth: np.ndarray | None = None,
    markers: Sequence[Mapping[str, Any]] = (),
) -> Figure:
    """Map of ``cluster_label(latitude, longitude)`` in a projection suited to its extent
    (:mod:`seiscluster.plots.maps`): coastlines, borders, graticule, ``markers``; beside
    it a colour bar with integer ticks (k-means) or the SOM node grid coloured as the map
    (a SOM); optionally the true provinces (example model) on a second map."""
    ids = clusters["cluster"].values.astype(int)
    colours = cluster_colour_list(clusters)
    panels = [(clusters["cluster_label"].values, title, ids, colours)]
    if truth is not None:
        provinces = np.unique(truth[np.isfinite(truth) & (truth > 0)]).astype(int)
        panels.append((truth, "true province (example model)", provinces,
                       colours_for_ids(provinces)))
    lat = clusters["latitude"].values
    lon = clusters["longitude"].values
    projection = maps.choose_projection(lon, lat)
    x, y = projection(*np.meshgrid(lon, lat))
    shape = np.ptp(y) / max(np.ptp(x), 1e-9)  # height / width of one map
    map_width = float(np.clip(6.0 / max(shape, 1e-9), 3.5, 11.0))
    som = "som_hits" in clusters
    height = float(np.clip(map_width * shape, 4.0, 7.5)) + 1.2
    widths = [map_width + (0.0 if som and i == 0 else 1.3) for i in range(len(panels))]
    if som:
        widths.insert(1, 3.4)  # the node grid beside the SOM map
    fig = Figure(figsize=(sum(widths), height), layout="constrained")
    axes = list(fig.subplots(1, len(widths), squeeze=False,
                             gridspec_kw={"width_ratios": widths})[0])
    for i, (grid, label, panel_ids, panel_colours) in enumerate(panels):
        ax = axes.pop(0)
        cmap, norm, ticks = discrete_norm(panel_ids, panel_colours)
        valid = np.where(np.isin(grid, panel_ids), grid, np.nan)
        mesh, _ = maps.draw_map(ax, lon, lat, valid, cmap, norm, markers=markers,
                                projection=projection)
        ax.set_title(label, fontsize=10)
        if som and i == 0:
            _som_grid_legend(axes.pop(0), clusters, colours)
        else:
            bar = fig.colorbar(mesh, ax=ax, ticks=ticks, shrink=0.8, fraction=0.08,
                               label="cluster" if i == 0 else "province")
            bar.minorticks_off()
    return fig


def _som_grid_legend(ax: Axes, clusters: xr.Dataset, colours: Sequence[str]) -> None:
    """The SOM node grid as the map's legend: each node in its map colour, its number
    (and hit count where the grid is small), empty nodes hatched."""
    hits = clusters["som_hits"].values
    nx, ny = hits.shape
    grid = som_node_colours(nx, ny)
    rgba = np.array([[to_rgba(c) for c in row] for row in grid])
    rgba[hits == 0] = to_rgba(NO_DATA)
    ax.imshow(rgba.transpose(1, 0, 2), origin="lower", aspect="equal",
              extent=(0.5, nx + 0.5, 0.5, ny + 0.5))
    size = 7 if max(nx, ny) <= 8 else 5 if max(nx, ny) <= 12 else 0
    if size:
        for x in range(nx):
            for y in range(ny):
                text = f"{x * ny + y + 1}" + (f"\n{int(hits[x, y])}" if max(nx, ny) <= 6
                                              else "")
                ax.text(x + 1, y + 1, text, ha="center", va="center", fontsize=size)
    ax.set_xlabel("SOM node x")
    ax.set_ylabel("SOM node y")
    step = max(1, int(np.ceil(max(nx, ny) / 6)))
    ax.set_xticks(range(1, nx + 1, step))
    ax.set_yticks(range(1, ny + 1, step))
    ax.set_title(f"SOM node grid ({nx} x {ny})\nnode number = (x - 1)·{ny} + y", fontsize=8)


def plot_som_maps(u_matrix: np.ndarray, hits: np.ndarray) -> Figure:
    """SOM node distance map (U-matrix) and hit counts per node on the node grid (x, y
    from 1, as the cluster map's legend), node numbers annotated on grids up to 8 x 8."""
    nx, ny = hits.shape
    fig = Figure(figsize=(11, 4.8))
    axes = fig.subplots(1, 2)
    extent = (0.5, nx + 0.5, 0.5, ny + 0.5)
    for ax, grid, label, cmap in ((axes[0], u_matrix, "mean distance to neighbours", "bone_r"),
                                  (axes[1], hits, "profiles per node", "viridis")):
        image = ax.imshow(grid.T, origin="lower", cmap=cmap, aspect="equal", extent=extent)
        fig.colorbar(image, ax=ax, label=label)
        ax.set_xlabel("SOM node x")
        ax.set_ylabel("SOM node y")
    if max(nx, ny) <= 8:
        for x in range(nx):
            for y in range(ny):
                axes[1].text(x + 1, y + 1, f"{x * ny + y + 1}\n{int(hits[x, y])}",
                             ha="center", va="center", fontsize=7, color="w")
    axes[0].set_title("U-matrix")
    axes[1].set_title("hits (node number / count)" if max(nx, ny) <= 8 else
                      f"hits; node number = (x - 1)·{ny} + y")
    fig.tight_layout()
    return fig


def plot_probability_map(clusters: xr.Dataset, markers: Sequence[Mapping[str, Any]] = ()
                         ) -> Figure:
    """Map of the posterior probability of each node's most probable cluster (Gaussian
    mixture): 1 where the mixture is sure, down to 1/k where it cannot tell."""
    lon, lat = clusters["longitude"].values, clusters["latitude"].values
    probability = clusters["probability"].values
    k = probability.shape[0]
    best = np.where(np.isnan(probability).all(axis=0), np.nan,
                    np.nanmax(np.nan_to_num(probability, nan=-1.0), axis=0))
    fig = Figure(figsize=(8.5, 5.4), layout="constrained")
    ax = fig.subplots()
    mesh, _ = maps.draw_map(ax, lon, lat, best, colormaps["magma"],
                            Normalize(1.0 / k, 1.0), markers=markers)
    fig.colorbar(mesh, ax=ax, shrink=0.8, fraction=0.08,
                 label="probability of the most probable cluster")
    ax.set_title(f"Gaussian mixture (k = {k}): certainty of the cluster", fontsize=10)
    return fig


def plot_consensus_map(consensus: xr.Dataset, threshold: float,
                       markers: Sequence[Mapping[str, Any]] = (),
                       low_shares: Mapping[str, float] | None = None) -> Figure:
    """One map per method of the consensus (:mod:`seiscluster.velocity.consensus`): the
    share of refits that put each node in its final cluster (1: all of them), the nodes
    below ``threshold`` (low agreement) marked with a black dot; the titles give each
    method's share of low-agreement nodes (``low_shares``, by default that of the map's
    cells)."""
    lon, lat = consensus["longitude"].values, consensus["latitude"].values
    projection = maps.choose_projection(lon, lat)
    methods = [str(m) for m in consensus["clustering"].values]
    fig = Figure(figsize=(6.25 * len(methods), 5.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(methods)))
    n = int(consensus.attrs.get("seeds", 0))
    for ax, method in zip(axes, methods, strict=True):
        values = consensus["agreement"].sel(clustering=method).values
        mesh, proj = maps.draw_map(ax, lon, lat, values, colormaps["viridis"],
                                   Normalize(0.0, 1.0), markers=markers,
                                   projection=projection)
        rows, cols = np.nonzero(values < threshold)
        if rows.size:
            x, y = proj(lon[cols], lat[rows])
            ax.scatter(x, y, s=4 if rows.size < 2000 else 1, c="k", lw=0, zorder=5,
                       label=f"agreement < {threshold:g}")
        fig.colorbar(mesh, ax=ax, shrink=0.8, fraction=0.08, label="agreement")
        finite = np.isfinite(values)
        share = (low_shares or {}).get(method, np.mean(values[finite] < threshold))
        ax.set_title(f"{method}: {n} refits, {share:.1%} of the nodes below {threshold:g}",
                     fontsize=10)
    return fig


#: Colours of the agreement map: the two clusterings disagree, agree.
AGREEMENT_COLOURS = ("#d7301f", "#1a9850")


def plot_agreement(applied: xr.Dataset, run: xr.Dataset, title: str,
                   markers: Sequence[Mapping[str, Any]] = ()) -> Figure:
    """Another model's profiles in a run's clusters (the run's colours) beside the map of
    where that agrees with the run's own cluster at the same place (green) or not (red);
    grey: no profile or no run node within reach."""
    lon, lat = applied["longitude"].values, applied["latitude"].values
    projection = maps.choose_projection(lon, lat)
    ids = run["cluster"].values.astype(int)
    fig = Figure(figsize=(12.5, 5.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    cmap, norm, ticks = discrete_norm(ids, cluster_colour_list(run))
    mesh, _ = maps.draw_map(left, lon, lat, applied["cluster_label"].values, cmap, norm,
                            markers=markers, projection=projection)
    fig.colorbar(mesh, ax=left, ticks=ticks, shrink=0.8, label="run's cluster").minorticks_off()
    left.set_title(title, fontsize=10)
    cmap, norm, _ = discrete_norm(np.array([0, 1]), list(AGREEMENT_COLOURS))
    mesh, _ = maps.draw_map(right, lon, lat, applied["agreement"].values, cmap, norm,
                            markers=markers, projection=projection)
    bar = fig.colorbar(mesh, ax=right, ticks=[0, 1], shrink=0.8)
    bar.ax.set_yticklabels(["differ", "agree"])
    bar.minorticks_off()
    right.set_title(f"same cluster as the run: {100 * applied.attrs['fraction_same']:.1f} % "
                    f"of {applied.attrs['n_compared']} nodes (ARI "
                    f"{applied.attrs['ari']:.2f})", fontsize=10)
    return fig


#: Colours of the tectonic classes (seiscluster.velocity.tectonics.CLASSES order): oceans
#: in blues from young to old, continents from stable (brown) to active (red), margins grey.
TECTONIC_COLOURS = ("#c6dbef", "#6baed6", "#08519c", "#8c510a", "#dfc27d", "#d6604d",
                    "#bdbdbd")


def plot_tectonics(classes: np.ndarray, run: np.ndarray, other: np.ndarray,
                   lat: np.ndarray, lon: np.ndarray, ids: np.ndarray,
                   titles: Sequence[str], class_names: Sequence[str]) -> Figure:
    """Three maps on the grid ``(lat, lon)``: the tectonic class codes ``classes`` (0-based,
    NaN: no node), the run's clusters ``run`` and the other clustering ``other`` (matched to
    the run's colours); ``titles`` of the two clusterings."""
    projection = maps.choose_projection(lon, lat)
    fig = Figure(figsize=(18.0, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    codes = np.arange(len(class_names))
    cmap, norm, ticks = discrete_norm(codes, list(TECTONIC_COLOURS[:len(codes)]))
    mesh, _ = maps.draw_map(axes[0], lon, lat, classes, cmap, norm, projection=projection)
    bar = fig.colorbar(mesh, ax=axes[0], ticks=ticks, shrink=0.8)
    bar.ax.set_yticklabels(class_names, fontsize=7)
    bar.minorticks_off()
    axes[0].set_title("tectonic class (CRUST1.0 types, ocean-floor age)", fontsize=10)
    cmap, norm, ticks = discrete_norm(ids, colours_for_ids(ids))
    for ax, grid, title in zip(axes[1:], (run, other), titles, strict=True):
        mesh, _ = maps.draw_map(ax, lon, lat, grid, cmap, norm, projection=projection)
        fig.colorbar(mesh, ax=ax, ticks=ticks, shrink=0.8, label="cluster").minorticks_off()
        ax.set_title(title, fontsize=10)
    return fig
