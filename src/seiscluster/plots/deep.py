"""Figures of the deep clustering of tremor (matplotlib object-oriented API, no pyplot).

Loss curves, k-scan scores, t-SNE maps before and after fine-tuning, the cluster label
over time (ClusTremor's key figure, with optional event markers), input/reconstruction
examples per cluster and the mean spectrogram of each cluster. Clusters are numbered
1..k and keep one colour in every figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from seiscluster.plots.colours import NO_DATA
from seiscluster.plots.colours import cluster_colours as palette
from seiscluster.plots.elbow import plot_kselect
from seiscluster.plots.style import save

__all__ = [
    "cluster_colours", "plot_cluster_spectra", "plot_kscan", "plot_losses",
    "plot_reconstructions", "plot_timeline", "plot_tsne", "save", "tsne_2d",
]


def cluster_colours(k: int) -> list[str]:
    """One colour per cluster 1..k, never repeated (the palette of every figure,
    :func:`seiscluster.plots.colours.cluster_colours`)."""
    return palette(k)


def tsne_2d(z: np.ndarray, perplexity: float = 30.0, seed: int = 0, n_jobs: int = 1) -> np.ndarray:
    """Seeded 2-D t-SNE of embeddings (perplexity capped below the sample count)."""
    from sklearn.manifold import TSNE

    n = z.shape[0]
    if n < 4:
        return np.zeros((n, 2))
    perp = float(min(perplexity, max((n - 1) / 3.0, 1.0)))
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed,
                n_jobs=n_jobs).fit_transform(np.asarray(z, dtype=np.float64))


def plot_losses(losses: pd.DataFrame, history: pd.DataFrame, stop_reason: str = "") -> Figure:
    """Pretraining losses per epoch (left) and the fine-tuning's record per update (right);
    where fine-tuning stopped at its first target update, the right panel says so."""
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    if len(losses):
        epoch = losses["epoch"].to_numpy() + 1
        left.plot(epoch, losses["train_loss"], "-", color="tab:blue", label="training")
        left.plot(epoch, losses["val_loss"], "-", color="tab:orange", label="validation")
        i = int(np.nanargmin(losses["val_loss"].to_numpy(dtype=float)))
        left.plot(epoch[i], losses["val_loss"].iloc[i], "o", color="tab:orange",
                  label=f"best (epoch {epoch[i]})")
        left.set_yscale("log")
    left.set_xlabel("epoch")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylabel("reconstruction loss (MSE)")
    left.set_title("Autoencoder pretraining")
    left.legend(fontsize=8)
    it = history["iteration"].to_numpy()
    right.plot(it, history["delta_label"], "o-", color="k", ms=3, label="delta-label")
    right.set_yscale("symlog", linthresh=1e-4)
    right.set_ylim(bottom=0)
    right.set_xlabel("iteration (batches)")
    right.set_ylabel("fraction of labels changed")
    twin = right.twinx()
    handles = [Line2D([], [], color="k", marker="o", ms=3, label="delta-label")]
    for column, colour, name in (("kl_loss", "tab:red", "KL(P||Q)"),
                                 ("reconstruction_loss", "tab:green", "reconstruction")):
        if column in history and history[column].notna().any():
            twin.plot(it, history[column], "-", marker=".", color=colour)
            handles.append(Line2D([], [], color=colour, label=name))
    twin.set_ylabel("loss (mean over the interval)")
    right.legend(handles=handles, fontsize=8)
    right.set_title("Clustering fine-tuning")
    if int((it > 0).sum()) <= 1:
        last = history.iloc[-1] if len(history) else None
        text = ("Fine-tuning stopped at its first target-distribution update"
                if last is not None and int(last["iteration"]) > 0 else
                "Fine-tuning made no update")
        if last is not None:
            text += (f"\n(iteration {int(last['iteration'])}, delta-label "
                     f"{float(last['delta_label']):.3g})")
        if stop_reason:
            text += f":\n{stop_reason}"
        text += ("\nso the clusters are those of k-means on the\npretrained embeddings, "
                 "barely changed.")
        right.text(0.5, 0.5, text, transform=right.transAxes, ha="center", va="center",
                   fontsize=9, bbox={"boxstyle": "round", "fc": "#fff3cd", "ec": "#e0c060"},
                   zorder=10)
    fig.tight_layout()
    return fig


def plot_kscan(table: pd.DataFrame, chosen: int, message: str = "",
               min_stability: float | None = None) -> Figure:
    """Calinski-Harabasz, silhouette, Davies-Bouldin and inertia per k (and the stability
    and gap statistic where the table has them); chosen k marked."""
    extra = "stability" in table
    fig = Figure(figsize=(14 if extra else 10, 6))
    axes = fig.subplots(2, 3 if extra else 2, sharex=True).ravel()
    if extra:
        plot_kselect(axes[2], table, chosen, min_stability)
        axes[5].remove()
        axes = axes[[0, 1, 3, 4]]
    k = table["k"].to_numpy()
    for ax, (column, label) in zip(axes, (
            ("calinski_harabasz", "Calinski-Harabasz (higher is better)"),
            ("silhouette", "silhouette (higher is better)"),
            ("davies_bouldin", "Davies-Bouldin (lower is better)"),
            ("inertia", "inertia (within-cluster sum of squares)")), strict=True):
        ax.plot(k, table[column], "o-", color="k", ms=4)
        ax.axvline(chosen, color="tab:red", ls="--", lw=1)
        ax.set_title(label, fontsize=9)
        ax.set_xticks(k)
    for ax in axes[2:]:
        ax.set_xlabel("number of clusters k")
    fig.suptitle(message or f"chosen k = {chosen}", fontsize=10)
    fig.tight_layout()
    return fig


def _scatter_clusters(ax, xy: np.ndarray, labels: np.ndarray, k: int, title: str) -> None:
    colours = cluster_colours(k)
    for c in range(1, k + 1):
        m = labels == c
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], s=6, color=colours[c - 1], label=f"{c} ({m.sum()})",
                       linewidths=0)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1 (no unit)")
    ax.set_ylabel("t-SNE 2 (no unit)")
    ax.legend(fontsize=7, markerscale=2, title="cluster (n)", title_fontsize=7, loc="best")


def plot_tsne(t0: np.ndarray, y0: np.ndarray, t1: np.ndarray, y1: np.ndarray, k: int,
              method: str = "DEC") -> Figure:
    """t-SNE of the pretrained embeddings (k-means labels) and the fine-tuned ones."""
    fig = Figure(figsize=(11, 5))
    a, b = fig.subplots(1, 2)
    _scatter_clusters(a, t0, y0, k, "before fine-tuning: autoencoder + k-means")
    _scatter_clusters(b, t1, y1, k, f"after fine-tuning: {method}")
    fig.tight_layout()
    return fig


#: An event marker: (start, label, end or None); with an end it is a phase (shaded span).
Event = tuple[np.datetime64, str, "np.datetime64 | None"]


def plot_timeline(
    windows: np.ndarray,
    labels: np.ndarray,
    confidence: np.ndarray,
    k: int,
    channel: np.ndarray | None = None,
    events: Sequence[Event] = (),
    amplitude: tuple[np.ndarray, np.ndarray] | None = None,
    amplitude_label: str = "band amplitude",
    window_length: float | None = None,
) -> Figure:
    """ClusTremor's key figure: the cluster of every window (one row of dots per cluster),
    the band amplitude below it (``amplitude``: times and values per time cell, NaN in
    gaps; each window's median as a dot in its cluster's colour), and the assignment's
    confidence; gaps and skipped windows shaded grey, ``events`` as lines (with an end: a
    shaded phase) across all panels."""
    heights = [3, 2.5, 1] if amplitude is not None else [3, 1]
    fig = Figure(figsize=(12, 7.5 if amplitude is not None else 5), layout="constrained")
    axes = fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    top, bottom = axes[0], axes[-1]
    colours = cluster_colours(k)
    t = np.asarray(windows, dtype="M8[ns]")
    half = np.timedelta64(round((window_length or 0.0) * 5e8), "ns")
    channels = [None] if channel is None else list(dict.fromkeys(channel.tolist()))
    offsets = np.linspace(-0.25, 0.25, len(channels)) if len(channels) > 1 else [0.0]
    markers = "o^sDv<>ph*"
    for j, ch in enumerate(channels):
        sel = np.ones(t.size, bool) if ch is None else channel == ch
        for c in range(1, k + 1):
            m = sel & (labels == c)
            if m.any():
                top.scatter(t[m] + half, np.full(m.sum(), c + offsets[j]), s=16,
                            color=colours[c - 1], marker=markers[j % len(markers)],
                            linewidths=0)
        bottom.plot(t[sel] + half, confidence[sel], ".", ms=2,
                    label=str(ch) if ch is not None else None)
    handles = []
    if len(channels) > 1:
        handles = [Line2D([], [], ls="", marker=markers[j % len(markers)], color="grey",
                          label=str(ch)) for j, ch in enumerate(channels)]
    top.set_yticks(range(1, k + 1))
    top.set_ylim(0.4, k + 0.6)
    top.set_ylabel("cluster")
    top.grid(axis="y", lw=0.3)
    for c in range(1, k + 1):
        top.get_yticklabels()[c - 1].set_color(colours[c - 1])
    if amplitude is not None:
        _amplitude_panel(axes[1], amplitude, amplitude_label, t, labels, k, half,
                         channel, channels[0])
        gaps = _gaps(*amplitude)
        for i, (start, end) in enumerate(gaps):
            for ax in axes:
                ax.axvspan(start, end, color=NO_DATA, alpha=0.8, lw=0, zorder=0,
                           label="gap / skipped window" if i == 0 and ax is top else None)
        if gaps:
            handles.append(Patch(color=NO_DATA, label="gap / skipped window"))
    bottom.set_ylabel("max q")
    bottom.set_ylim(0, 1.02)
    bottom.set_xlabel("time (UTC)")
    for i, (when, label, end) in enumerate(events):
        for ax in axes:
            if end is not None:
                ax.axvspan(when, end, color="#ffe08a", alpha=0.35, lw=0, zorder=0)
            ax.axvline(when, color="k", ls="--", lw=1)
        top.annotate(label, (when, k + 0.55), rotation=90, va="top", ha="right", fontsize=8)
        if end is not None and i == next(j for j, e in enumerate(events) if e[2] is not None):
            handles.append(Patch(color="#ffe08a", alpha=0.6, label="phase"))
    if handles:
        top.legend(handles=handles, fontsize=7, loc="upper right")
    top.set_title("Cluster of each window over time")
    for label in bottom.get_xticklabels():
        label.set_rotation(20)
        label.set_horizontalalignment("right")
    return fig


def _amplitude_panel(ax, amplitude: tuple[np.ndarray, np.ndarray], label: str,
                     t: np.ndarray, labels: np.ndarray, k: int, half: np.timedelta64,
                     channel: np.ndarray | None, first) -> None:
    """Band amplitude per time cell (black), each window's median as a dot coloured by
    its cluster (first channel only where there are several)."""
    times, values = amplitude
    times = np.asarray(times, dtype="M8[ns]")
    ax.plot(times, values, lw=0.4, color="k")
    finite = np.isfinite(values) & (values > 0)
    if finite.any():
        ax.set_yscale("log")
    sel = np.ones(t.size, bool) if channel is None else channel == first
    ends = t[sel] + 2 * half
    lo = np.searchsorted(times, t[sel])
    hi = np.searchsorted(times, ends, side="left") if half else lo + 1
    medians = np.array([np.nanmedian(values[a:b]) if b > a and np.isfinite(values[a:b]).any()
                        else np.nan for a, b in zip(lo, hi, strict=True)])
    colours = cluster_colours(k)
    for c in range(1, k + 1):
        m = labels[sel] == c
        if m.any():
            ax.scatter(t[sel][m] + half, medians[m], s=30, color=colours[c - 1], zorder=3,
                       linewidths=0.6, edgecolors="k")
    ax.set_ylabel(label)
    ax.set_title("band amplitude (RSAM-like); dots: median of each window, in its "
                 "cluster's colour", fontsize=9)


def _gaps(times: np.ndarray, values: np.ndarray) -> list[tuple[np.datetime64, np.datetime64]]:
    """Spans of consecutive NaN values (gaps, skipped windows) of a trace."""
    times = np.asarray(times, dtype="M8[ns]")
    missing = ~np.isfinite(np.asarray(values, dtype=float))
    if not missing.any():
        return []
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    step = np.median(np.diff(times)) if times.size > 1 else np.timedelta64(0, "ns")
    return [(times[a], times[b] if b < times.size else times[-1] + step)
            for a, b in zip(starts, stops, strict=True)]


def _extent(frequency: np.ndarray, time: np.ndarray) -> list[float]:
    return [float(time[0]) / 60, float(time[-1]) / 60, float(frequency[0]), float(frequency[-1])]


def plot_reconstructions(
    x: np.ndarray, r: np.ndarray, clusters: np.ndarray, confidence: np.ndarray,
    frequency: np.ndarray, time: np.ndarray,
    waveforms: Sequence[tuple[np.ndarray, np.ndarray]] | None = None, units: str = "counts",
) -> Figure:
    """Input and reconstruction of the representative examples of each cluster (first
    channel; the caller picks them, the workflow those nearest the cluster's centre), one
    row per cluster; with ``waveforms`` ((times s, values) per example), each example's
    preprocessed record below its spectrograms, drawn as its min-max envelope."""
    ids = list(dict.fromkeys(clusters.tolist()))
    per = max((np.sum(clusters == c) for c in ids), default=1)
    rows = max(len(ids), 1)
    heights = [2.0, 1.1] * rows if waveforms is not None else [2.0] * rows
    fig = Figure(figsize=(3.2 * per, sum(heights) + 0.5))
    grid = fig.add_gridspec(len(heights), 2 * per, height_ratios=heights)
    step = len(heights) // rows
    lo, hi = (np.percentile(x[:, 0], [1, 99]) if x.size else (0, 1))
    ext = _extent(frequency, time)
    for row, c in enumerate(ids):
        for j, i in enumerate(np.flatnonzero(clusters == c)):
            for col, (img, name) in enumerate(((x[i, 0], "input"), (r[i, 0], "reconstruction"))):
                ax = fig.add_subplot(grid[step * row, 2 * j + col])
                ax.imshow(img, origin="lower", aspect="auto", extent=ext, vmin=lo, vmax=hi,
                          cmap="viridis")
                ax.set_title(f"cluster {c}: {name}" + (f" (q={confidence[i]:.2f})"
                                                       if col == 0 else ""), fontsize=7)
                ax.tick_params(labelsize=6)
                ax.set_xlabel("time (min)", fontsize=7)
                if j == 0 and col == 0:
                    ax.set_ylabel("frequency (Hz)", fontsize=7)
            if waveforms is not None:
                _envelope(fig.add_subplot(grid[step * row + 1, 2 * j:2 * j + 2]),
                          *waveforms[i], units if j == 0 else None)
    fig.tight_layout()
    return fig


def _envelope(ax, t: np.ndarray, y: np.ndarray, units: str | None, bins: int = 800) -> None:
    """A long record as the minimum and maximum of each of ``bins`` time bins (what a
    plotted line of every sample would show, at a fraction of the vector size)."""
    n = t.size // bins * bins
    if n == 0:
        ax.plot(t / 60, y, lw=0.5, color="k")
    else:
        blocks = y[:n].reshape(bins, -1)
        ok = np.isfinite(blocks).any(axis=1)
        with np.errstate(all="ignore"):
            low = np.where(ok, np.nanmin(np.where(ok[:, None], blocks, 0), axis=1), np.nan)
            high = np.where(ok, np.nanmax(np.where(ok[:, None], blocks, 0), axis=1), np.nan)
        ax.fill_between(t[:n].reshape(bins, -1)[:, 0] / 60, low, high, color="k", lw=0.3,
                        step="post")
    ax.set_xlim(t[0] / 60 if t.size else 0, t[-1] / 60 if t.size else 1)
    ax.tick_params(labelsize=6)
    ax.set_xlabel("time (min)", fontsize=7)
    if units is not None:
        ax.set_ylabel(f"record ({units})", fontsize=7)


def plot_cluster_spectra(
    x: np.ndarray, labels: np.ndarray, k: int, frequency: np.ndarray, time: np.ndarray,
    channels: Sequence[str] | None = None,
) -> Figure:
    """Mean spectrogram of each cluster (columns); one row per input channel."""
    n_ch = x.shape[1]
    fig = Figure(figsize=(2.6 * k + 0.8, 2.3 * n_ch + 0.4))
    axes = fig.subplots(n_ch, k, squeeze=False)
    sums = np.zeros((k, *x.shape[1:]))
    np.add.at(sums, labels - 1, x.astype(np.float64))
    counts = np.bincount(labels - 1, minlength=k)
    means = sums / np.maximum(counts, 1)[:, None, None, None]
    present = means[counts > 0]
    lo, hi = (np.percentile(present, [1, 99]) if present.size else (0, 1))
    ext = _extent(frequency, time)
    image = None
    for c in range(k):
        for ch in range(n_ch):
            ax = axes[ch, c]
            if counts[c] == 0:
                ax.set_axis_off()
                continue
            image = ax.imshow(means[c, ch], origin="lower", aspect="auto", extent=ext,
                              vmin=lo, vmax=hi, cmap=ListedColormap(colormaps["magma"](
                                  np.linspace(0, 1, 256))))
            title = f"cluster {c + 1} (n={counts[c]})"
            if channels is not None and n_ch > 1:
                title += f"\n{channels[ch]}"
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=6)
            if c == 0:
                ax.set_ylabel("frequency (Hz)", fontsize=7)
            if ch == n_ch - 1:
                ax.set_xlabel("time (min)", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="mean input value")
    return fig
