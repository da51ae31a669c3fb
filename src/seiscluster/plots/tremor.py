"""Figures of the spectrogram stack: long-term overview and example windows.

Drawn with matplotlib's object-oriented API (no pyplot state). Only reductions of the store
are loaded (mean spectrum per window, band amplitude per time cell), so months of windows
plot without loading the stack.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from seiscluster.plots.style import save

__all__ = ["amplitude_label", "amplitude_trace", "band_amplitude", "log_power", "plot_examples",
           "plot_overview", "save"]


def log_power(ds: xr.Dataset) -> xr.DataArray:
    """The stack's spectrograms in log power (the normalisation undone), lazily."""
    x = ds["spectrogram"].where(ds["valid"])
    mode = ds.attrs.get("normalise", "none")
    if mode == "global":
        channels = json.loads(ds.attrs["channels"])
        mean = dict(zip(channels, ds.attrs["norm_mean"], strict=True))
        std = dict(zip(channels, ds.attrs["norm_std"], strict=True))
        ch = ds["channel"].values
        x = x * xr.DataArray([std[c] for c in ch], dims="channel", coords={"channel": ch}) \
            + xr.DataArray([mean[c] for c in ch], dims="channel", coords={"channel": ch})
    elif mode == "per_window":
        x = x * ds["norm_std"] + ds["norm_mean"]
    return x


def band_amplitude(ds: xr.Dataset) -> xr.DataArray:
    """RSAM-like amplitude in the spectrogram band per time cell: sqrt of the integral of
    the PSD over fmin..fmax (units of the data), ``(window, channel, time)``."""
    logp = log_power(ds)
    power = 10.0 ** (logp / 10.0 if ds.attrs.get("power") == "db" else logp)
    edges = np.asarray(json.loads(ds.attrs["settings"])["derived"]["frequency_edges"])
    width = xr.DataArray(np.diff(edges), dims="frequency",
                         coords={"frequency": ds["frequency"].values})
    return np.sqrt((power * width).sum("frequency", min_count=1))


def _regular(da: xr.DataArray, ds: xr.Dataset) -> xr.DataArray:
    """Reindex to every window start (skipped windows appear as NaN gaps)."""
    step = np.timedelta64(round(json.loads(ds.attrs["settings"])["spectrogram"]
                                    ["window_step"] * 1e9), "ns")
    w = ds["window"].values
    full = np.arange(w[0], w[-1] + step, step) if w.size else w
    return da.reindex(window=full)


def amplitude_trace(ds: xr.Dataset, channel: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Band amplitude of one channel per time cell over the whole span (times, values):
    every window start of the regular grid, skipped and missing windows as NaN (gaps)."""
    sub = ds.isel(channel=[channel])
    full = _regular(band_amplitude(sub).isel(channel=0).compute(), sub)
    cell = full["window"].values[:, None] + (full["time"].values * 1e9).astype(
        "timedelta64[ns]")[None, :]
    return cell.ravel(), full.values.ravel()


def amplitude_label(ds: xr.Dataset) -> str:
    """Axis label of :func:`amplitude_trace`: band and units."""
    spec = json.loads(ds.attrs["settings"])["spectrogram"]
    return (f"{spec['fmin']:g}-{spec['fmax']:g} Hz amplitude "
            f"({ds.attrs.get('units', 'counts')})")


def plot_overview(ds: xr.Dataset, channel: int = 0) -> Figure:
    """Whole-span view of one channel: mean log power per frequency per window (top), and
    the band amplitude per time cell, RSAM-like (bottom). Skipped windows are blank."""
    ch = str(ds["channel"].values[channel])
    sub = ds.isel(channel=[channel])
    settings = json.loads(ds.attrs["settings"])
    spec = _regular(log_power(sub).isel(channel=0).mean("time").compute(), sub)
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, gridspec_kw={"height_ratios": [3, 2], "width_ratios": [60, 1]})
    top, cax, bottom = axes[0, 0], axes[0, 1], axes[1, 0]
    axes[1, 1].set_visible(False)
    bottom.sharex(top)
    t = spec["window"].values
    length = np.timedelta64(round(settings["spectrogram"]["window_length"] * 1e9), "ns")
    tedges = np.append(t, t[-1] + length)
    fedges = np.asarray(settings["derived"]["frequency_edges"])
    values = spec.values.T
    finite = values[np.isfinite(values)]
    vmin, vmax = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    mesh = top.pcolormesh(tedges, fedges, values, shading="flat", cmap="magma",
                          vmin=vmin, vmax=vmax)
    fig.colorbar(mesh, cax=cax, label=f"mean {ds.attrs.get('power_units', 'log power')}")
    if settings["spectrogram"].get("frequency_scale") == "log":
        top.set_yscale("log")
    top.set_ylim(fedges[0], fedges[-1])
    top.set_ylabel("frequency (Hz)")
    top.set_title(f"{ch}: mean power per window ({ds.sizes['window']} windows)")
    top.tick_params(labelbottom=False)
    bottom.plot(*amplitude_trace(ds, channel), lw=0.5, color="k")  # NaN: gaps
    bottom.set_yscale("log")
    bottom.set_ylabel(amplitude_label(ds))
    bottom.set_xlabel("time (UTC)")
    bottom.set_xlim(tedges[0], tedges[-1])
    for label in bottom.get_xticklabels():
        label.set_rotation(20)
        label.set_horizontalalignment("right")
    return fig


def plot_examples(ds: xr.Dataset, n: int = 12, ncols: int = 4, channel: int = 0) -> Figure:
    """A grid of ``n`` valid windows evenly spread over the span (one channel)."""
    valid = np.flatnonzero(ds["valid"].isel(channel=channel).values)
    pick = valid[np.unique(np.linspace(0, valid.size - 1, min(n, valid.size)).round()
                           .astype(int))] if valid.size else valid
    nrows = max(1, -(-pick.size // ncols))
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True))
    images = ds["spectrogram"].isel(window=pick, channel=channel).values
    finite = images[np.isfinite(images)]
    vmin, vmax = np.percentile(finite, [1, 99]) if finite.size else (0, 1)
    length = float(json.loads(ds.attrs["settings"])["spectrogram"]["window_length"])
    fedges = np.asarray(json.loads(ds.attrs["settings"])["derived"]["frequency_edges"])
    tedges = np.linspace(0, length, ds.sizes["time"] + 1)
    scale = 60.0 if length >= 600 else 1.0
    image = None
    for ax, i, img in zip(axes.flat, pick, images, strict=False):
        image = ax.pcolormesh(tedges / scale, fedges, img, shading="flat", cmap="magma",
                              vmin=vmin, vmax=vmax)
        ax.set_title(str(ds["window"].values[i].astype("datetime64[s]")).replace("T", " "),
                     fontsize=8)
    for ax in axes.flat[pick.size:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("frequency (Hz)")
    for ax in axes[-1, :]:
        ax.set_xlabel("time in window (min)" if scale == 60 else "time in window (s)")
    if image is not None:
        mode = ds.attrs.get("normalise", "none")
        label = ds.attrs.get("power_units", "power") if mode == "none" else \
            f"{ds.attrs.get('power', 'log')} power, {mode.replace('_', ' ')} normalised"
        fig.colorbar(image, ax=axes, shrink=0.8, label=label)
    fig.suptitle(f"{ds['channel'].values[channel]}: example windows "
                 f"({ds.attrs.get('normalise', 'none')} normalisation)")
    return fig


def plot_agreement_over_time(table, threshold: float, method: str) -> Figure:
    """The consensus of the embedding's clustering over seeds: each window's agreement (share
    of refits that put it in its final cluster) against its start time, in its cluster's
    colour, the low-agreement threshold dashed."""
    import pandas as pd

    from seiscluster.plots.colours import cluster_colours

    times = pd.to_datetime(table["window_start"]).to_numpy()
    clusters = table["cluster"].to_numpy()
    ids = np.unique(clusters)
    colours = cluster_colours(int(ids.max()))
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.subplots()
    for c in ids:
        at = clusters == c
        ax.scatter(times[at], table["agreement"].to_numpy()[at], s=9, color=colours[c - 1],
                   label=f"cluster {c}", lw=0)
    ax.axhline(threshold, color="0.3", ls="--", lw=0.8, label=f"low agreement < {threshold:g}")
    low = float(np.mean(table["agreement"].to_numpy() < threshold))
    ax.set(ylim=(-0.03, 1.03), ylabel="agreement", xlabel="window start (UTC)",
           title=f"{method} of the embedding over seeds: {low:.1%} of the windows below "
                 f"{threshold:g}")
    ax.legend(loc="lower left", fontsize=7, ncols=min(len(ids) + 1, 6))
    return fig
