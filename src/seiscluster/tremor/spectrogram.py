"""Fixed-size spectrograms of origin-aligned windows, computed day by day into a Zarr store.

Windows start at ``origin + n * window_step`` (whole hours by default), so windows of
different days and runs are comparable. Inside a window the power spectral density is
estimated on a fixed grid of STFT frames (``nperseg`` samples every ``nperseg - noverlap``,
``taper`` window, mean removed per frame, one-sided density as ``scipy.signal.spectrogram``)
and resampled to exactly ``n_freq x n_time`` cells over ``fmin..fmax`` and the window's
length: each cell is the mean, over the cell, of the piecewise-linear interpolant of the
frame powers (in frequency, then in time). This is one pair of small matrices per sampling
rate, so every window of a day is resampled by two matrix products.

Gap policy (nothing becomes zeros):
- A window's ``missing_fraction`` is the fraction of its span not covered by samples (gaps,
  masked overlaps, NaN samples, the ends of the data). A window missing more than
  ``tremor.preprocess.max_gap_fraction`` is skipped: its entries are NaN, ``valid`` is
  False and it is listed in skipped_windows.csv (reason ``missing_data``).
- Otherwise only STFT frames lying entirely in one contiguous, preprocessed segment, clear of
  the taper at the segment's ends, are computed. The power of every other frame (touching a
  gap or a taper) is interpolated linearly in time between the nearest complete frames of
  the same window (the nearest one at the window's ends), before the log. The fraction of
  frames so interpolated is stored as ``interpolated_fraction(window, channel)``. A window
  with no complete frame is skipped (reason ``no_complete_frame``), as is one whose power is
  identically zero (``flat_data``, e.g. a dead channel).

Long archives: the windows are cut into blocks of ``compute.spectrogram_block_days`` days
(of window starts); one dask task per block and channel reads its data plus a margin on
either side (:func:`~.waveforms.pad_seconds`), preprocesses it and writes its log power into
its own chunk of a temporary Zarr store, on the scheduler of the ``compute`` config group
(:mod:`seiscluster.compute`). Only per-window statistics stay in memory, so the memory of a
task is bounded by the block length, not by the length of the records; the normalisation is
then applied lazily (dask) while the final store is written, and the temporary one removed.
glibc is made to return each task's freed arrays to the OS
(:func:`~seiscluster.compute.return_freed_memory`); otherwise its heaps keep them resident
and the process grows from block to block.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sfft
from scipy import signal

from seiscluster.compute import compute_settings, dask_scheduler, return_freed_memory
from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.tremor.waveforms import (
    NS,
    Preprocess,
    Segment,
    Source,
    pad_seconds,
    plain,
    preprocess_stream,
    to_ns,
    utc,
)

log = logging.getLogger(__name__)

SKEY = "tremor.spectrogram"
#: Reasons a window is skipped (the code stored per window and channel; 0 = used).
REASONS = ("", "missing_data", "no_complete_frame", "flat_data", "skipped_on_another_channel")
#: Block length: one day of window starts per task and per Zarr chunk.
DAY = 86_400.0
#: Dynamic range kept below a window's strongest cell before the log (power ratio).
POWER_FLOOR = 1e-20
#: STFT frames transformed at once, and windows resampled at once (bound a task's memory).
FRAME_CHUNK = 4096
WINDOW_CHUNK = 128
SKIPPED_COLUMNS = ["window_start", "channel", "missing_fraction", "reason"]


@dataclass(frozen=True)
class SpectrogramSettings:
    """The checked ``tremor.spectrogram`` settings."""

    window_length: float
    window_step: float
    origin: str
    nperseg: int
    noverlap: int | None
    taper: str
    fmin: float
    fmax: float
    n_freq: int
    n_time: int
    frequency_scale: str
    power: str
    normalise: str
    pooling: str
    pooling_percentile: float

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> SpectrogramSettings:
        """The settings from ``tremor.spectrogram``, checked and completed with the defaults
        of ``seiscluster.config.SpectrogramConfig`` (:func:`seiscluster.config.section`)."""
        return cls(**section(SKEY, cfg))

    @property
    def hop(self) -> int:
        """Samples between the starts of consecutive STFT frames."""
        return self.nperseg - (self.nperseg // 2 if self.noverlap is None else self.noverlap)

    @property
    def origin_ns(self) -> int:
        return to_ns(self.origin, f"{SKEY}.origin")

    @property
    def length_ns(self) -> int:
        return round(self.window_length * NS)

    @property
    def step_ns(self) -> int:
        return round(self.window_step * NS)

    def frequency_edges(self) -> np.ndarray:
        """Edges of the ``n_freq`` frequency cells (Hz)."""
        if self.frequency_scale == "log":
            return np.geomspace(self.fmin, self.fmax, self.n_freq + 1)
        return np.linspace(self.fmin, self.fmax, self.n_freq + 1)

    def frequencies(self) -> np.ndarray:
        """Centres of the frequency cells (Hz; geometric centres on a log scale)."""
        e = self.frequency_edges()
        return np.sqrt(e[:-1] * e[1:]) if self.frequency_scale == "log" else (e[:-1] + e[1:]) / 2

    def times(self) -> np.ndarray:
        """Centres of the time cells (s from the window start)."""
        return (np.arange(self.n_time) + 0.5) * self.window_length / self.n_time

    def check_rate(self, fs: float, channel: str) -> None:
        """Raise when the channel's (preprocessed) rate cannot give these spectrograms."""
        if self.fmax >= fs / 2:
            raise InputError(f"{SKEY}.fmax: {self.fmax} Hz is not below the Nyquist "
                             f"frequency {fs / 2:g} Hz of {channel} ({fs:g} Hz after "
                             "preprocessing).")
        if round(self.window_length * fs) < self.nperseg:
            raise InputError(f"{SKEY}.window_length: {self.window_length:g} s is shorter than "
                             f"one STFT frame ({SKEY}.nperseg {self.nperseg} samples = "
                             f"{self.nperseg / fs:g} s at {fs:g} Hz for {channel}).")


def window_starts(t0_ns: int, t1_ns: int, settings: SpectrogramSettings) -> np.ndarray:
    """Window starts ``origin + n * step`` from the step at or before t0 to before t1 (ns)."""
    origin, step = settings.origin_ns, settings.step_ns
    first = (t0_ns - origin) // step
    last = -((origin - t1_ns) // step)  # ceil((t1 - origin) / step)
    return origin + np.arange(first, last, dtype=np.int64) * step


def source_window_starts(source: Source, settings: SpectrogramSettings) -> np.ndarray:
    """Window starts over a source's span; windows start before its last sample (a window
    holding only it is no window)."""
    last = source.end_ns - round(NS / max(source.sampling_rates.values()))
    return window_starts(source.start_ns, max(last, source.start_ns + 1), settings)


# ------------------------------------------------------------------------- the computation


@dataclass(frozen=True)
class Plan:
    """Everything about the spectrogram of one window that depends only on the rate."""

    settings: SpectrogramSettings
    fs: float

    @cached_property
    def n_frames(self) -> int:
        return (round(self.settings.window_length * self.fs) - self.settings.nperseg) \
            // self.settings.hop + 1

    @cached_property
    def frame_offsets(self) -> np.ndarray:
        """First sample of each frame, relative to the window's first sample."""
        return np.arange(self.n_frames, dtype=np.int64) * self.settings.hop

    @cached_property
    def taper(self) -> np.ndarray:
        return signal.get_window(self.settings.taper, self.settings.nperseg)

    @cached_property
    def bins(self) -> slice:
        """STFT bins needed to interpolate over fmin..fmax."""
        df = self.fs / self.settings.nperseg
        lo = max(math.floor(self.settings.fmin / df), 0)
        hi = min(math.ceil(self.settings.fmax / df), self.settings.nperseg // 2)
        return slice(lo, hi + 1)

    @cached_property
    def bin_frequencies(self) -> np.ndarray:
        return np.arange(self.bins.start, self.bins.stop) * self.fs / self.settings.nperseg

    @cached_property
    def scale(self) -> np.ndarray:
        """PSD scaling per bin: one-sided density, as ``scipy.signal.spectrogram``."""
        n = self.settings.nperseg
        s = np.full(self.bin_frequencies.size, 2.0 / (self.fs * np.sum(self.taper ** 2)))
        idx = np.arange(self.bins.start, self.bins.stop)
        s[(idx == 0) | ((n % 2 == 0) & (idx == n // 2))] /= 2.0
        return s

    @cached_property
    def taper_spectrum(self) -> np.ndarray:
        """Band bins of the taper's DFT (to remove each frame's mean after the FFT)."""
        return sfft.rfft(self.taper)[self.bins]

    @cached_property
    def frequency_matrix(self) -> np.ndarray:
        """(n_freq, n_bins): cell means of the interpolated bin powers."""
        return cell_average_matrix(self.bin_frequencies, self.settings.frequency_edges())

    @cached_property
    def frame_centres(self) -> np.ndarray:
        """Centre of each frame (s from the window start)."""
        return (self.frame_offsets + self.settings.nperseg / 2) / self.fs

    @cached_property
    def time_edges(self) -> np.ndarray:
        return np.linspace(0.0, self.settings.window_length, self.settings.n_time + 1)

    @cached_property
    def time_matrix(self) -> np.ndarray:
        """(n_time, n_frames): cell means of the interpolated frame powers."""
        return cell_average_matrix(self.frame_centres, self.time_edges)

    @cached_property
    def pool_index(self) -> np.ndarray:
        """(n_time, m) frames pooled into each time cell for ``max`` / ``percentile``
        pooling: those whose centre lies in the cell, padded with -1; a cell holding no
        frame centre takes the frame nearest to its centre."""
        return pool_index(self.frame_centres, self.time_edges)


def pool_index(centres: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Frames (by centre) falling in each cell ``[edges[j], edges[j+1])``, padded with -1;
    the nearest frame for a cell holding none (see :attr:`Plan.pool_index`)."""
    cell = np.clip(np.searchsorted(edges, centres, side="right") - 1, 0, edges.size - 2)
    counts = np.bincount(cell, minlength=edges.size - 1)
    width = max(int(counts.max()), 1)
    index = np.full((edges.size - 1, width), -1, dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    index[cell, np.arange(centres.size) - first[cell]] = np.arange(centres.size)
    empty = np.flatnonzero(counts == 0)
    mid = (edges[empty] + edges[empty + 1]) / 2
    index[empty, 0] = np.abs(centres[None, :] - mid[:, None]).argmin(axis=1)
    return index


def pool_time(cells: np.ndarray, index: np.ndarray, how: str, percentile: float) -> np.ndarray:
    """Pool frame powers ``cells`` (..., n_frames, n_freq) into time cells by ``index``
    (:func:`pool_index`): their maximum or a percentile -> (..., n_time, n_freq)."""
    gathered = cells[..., np.maximum(index, 0), :]  # (..., n_time, width, n_freq)
    pad = (index < 0)[:, :, None]
    if how == "max":
        return np.where(pad, -np.inf, gathered).max(axis=-2)
    # percentile with linear interpolation over each cell's own frames (pads sort last)
    ordered = np.sort(np.where(pad, np.inf, gathered), axis=-2)
    count = (index >= 0).sum(axis=1)  # (n_time,)
    pos = (count - 1) * percentile / 100.0
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, count - 1)
    frac = (pos - lo)[:, None]
    shape = (*ordered.shape[:-3], index.shape[0], 1, ordered.shape[-1])
    a, b = (np.take_along_axis(ordered, np.broadcast_to(i[:, None, None], shape),
                               axis=-2)[..., 0, :] for i in (lo, hi))
    return a + frac * (b - a)


def cell_average_matrix(points: np.ndarray, edges: np.ndarray, oversample: int = 16) \
        -> np.ndarray:
    """Matrix giving the mean over each cell [edges[j], edges[j+1]] of the piecewise-linear
    interpolant through values at ``points`` (held constant beyond the end points).

    Computed once per rate by the midpoint rule with at least ``oversample`` sub-points per
    cell and per interval of ``points``, so it both averages (many points per cell) and
    interpolates (few points per cell).
    """
    points = np.asarray(points, dtype=np.float64)
    matrix = np.zeros((edges.size - 1, points.size))
    spacing = np.min(np.diff(points)) if points.size > 1 else np.inf
    for j, (a, b) in enumerate(itertools.pairwise(edges)):
        m = max(oversample, math.ceil(oversample * (b - a) / spacing))
        x = a + (np.arange(m) + 0.5) * (b - a) / m
        if points.size == 1:
            matrix[j, 0] = 1.0
            continue
        i = np.clip(np.searchsorted(points, x, side="right") - 1, 0, points.size - 2)
        w = np.clip((x - points[i]) / (points[i + 1] - points[i]), 0.0, 1.0)
        np.add.at(matrix[j], i, (1.0 - w) / m)
        np.add.at(matrix[j], i + 1, w / m)
    return matrix


@dataclass
class Windows:
    """Spectrograms of some windows of one channel."""

    log_power: np.ndarray  # (n, n_freq, n_time) float32, log10 or dB (NaN where skipped)
    missing_fraction: np.ndarray  # (n,)
    interpolated_fraction: np.ndarray  # (n,) NaN where skipped
    reason: np.ndarray  # (n,) int8 index into REASONS; 0 = valid
    mean: np.ndarray  # (n,) mean of the float32 log power (NaN where skipped)
    m2: np.ndarray  # (n,) its sum of squared deviations (float64)


@dataclass
class WindowFrames:
    """The full-resolution STFT frames of some windows of one channel."""

    frames: np.ndarray  # (n_used, n_frames, n_bins) band PSD of the used windows
    frame_ok: np.ndarray  # (n, n_frames) frame in untapered, gap-free data
    reason: np.ndarray  # (n,) int8 index into REASONS (no flat_data check); 0 = used
    missing_fraction: np.ndarray  # (n,)


def window_frames(
    segments: Sequence[Segment], starts_ns: np.ndarray, plan: Plan, max_gap_fraction: float,
    fill: float = np.nan,
) -> WindowFrames:
    """PSD (band bins of ``plan``) of every STFT frame of the windows starting at
    ``starts_ns``: frames touching a gap or a taper hold ``fill``. Windows missing more than
    ``max_gap_fraction`` or without a complete frame are skipped (``reason``) and have no
    row in ``frames`` (it holds the windows with ``reason == 0``, in order)."""
    starts_ns = np.asarray(starts_ns, dtype=np.int64)
    s = plan.settings
    missing = missing_fraction(segments, starts_ns, s.length_ns)
    frame_ok, seg_idx, sample_idx, segs = _locate_frames(segments, starts_ns, plan)
    frame_ok &= (missing <= max_gap_fraction)[:, None]
    n_ok = frame_ok.sum(axis=1)
    reason = np.where(missing > max_gap_fraction, 1, np.where(n_ok == 0, 2, 0)).astype(np.int8)
    use = np.flatnonzero(reason == 0)
    frames = np.full((use.size, plan.n_frames, plan.bin_frequencies.size), fill)
    if use.size:
        flat_ok = np.flatnonzero(frame_ok[use])
        frame_powers(segs, seg_idx[use].ravel()[flat_ok], sample_idx[use].ravel()[flat_ok],
                     plan, out=frames.reshape(-1, frames.shape[-1]), rows=flat_ok)
    return WindowFrames(frames, frame_ok, reason, missing)


def compute_windows(
    segments: Sequence[Segment], starts_ns: np.ndarray, plan: Plan, max_gap_fraction: float,
) -> Windows:
    """Spectrograms of the windows starting at ``starts_ns`` from one channel's segments.

    Vectorised over all frames of all windows: frames are gathered from the segments,
    transformed in chunks, interpolated over frames touching gaps, resampled by two matrix
    products and turned into log power (:func:`to_log`), a chunk of windows at a time.
    """
    starts_ns = np.asarray(starts_ns, dtype=np.int64)
    nw, nk = starts_ns.size, plan.n_frames
    s = plan.settings
    wf = window_frames(segments, starts_ns, plan, max_gap_fraction, fill=0.0)
    missing, reason, frame_ok = wf.missing_fraction, wf.reason, wf.frame_ok
    n_ok = frame_ok.sum(axis=1)
    out = np.full((nw, s.n_freq, s.n_time), np.nan, dtype=np.float32)
    mean, m2 = np.full(nw, np.nan), np.full(nw, np.nan)
    use = np.flatnonzero(reason == 0)
    if use.size:
        ok = frame_ok[use]
        frames = wf.frames
        gappy = np.flatnonzero(~ok.all(axis=1))
        if gappy.size:
            frames[gappy] = interpolate_frames(frames[gappy], ok[gappy])
        for c in range(0, use.size, WINDOW_CHUNK):
            rows = use[c:c + WINDOW_CHUNK]
            cells = resample_cells(frames[c:c + WINDOW_CHUNK], plan)  # (m, F, T)
            values = to_log(cells, s.power).astype(np.float32)
            mean[rows], m2[rows] = normalisation_statistics(values)
            out[rows] = values
        flat = np.flatnonzero(reason == 0)[~(m2[reason == 0] > 0)]  # dead or constant data
        reason[flat] = 3
        out[flat] = np.nan
        mean[flat] = m2[flat] = np.nan
    interp = np.where(reason == 0, 1.0 - n_ok / nk, np.nan)
    return Windows(out, missing, interp, reason, mean, m2)


def resample_cells(frames: np.ndarray, plan: Plan) -> np.ndarray:
    """(m, n_frames, n_bins) frame powers -> (m, n_freq, n_time) cells: cell means of the
    interpolant in frequency, then in time the cell means (``pooling: mean``) or the
    maximum / a percentile of the frames of each cell."""
    s = plan.settings
    if s.pooling == "mean":
        cells = plan.time_matrix @ frames  # (m, n_time, n_bins)
        return np.matmul(plan.frequency_matrix, cells.transpose(0, 2, 1))
    cells = frames @ plan.frequency_matrix.T  # (m, n_frames, n_freq)
    pooled = pool_time(cells, plan.pool_index, s.pooling, s.pooling_percentile)
    return pooled.transpose(0, 2, 1)


def missing_fraction(segments: Sequence[Segment], starts_ns: np.ndarray, length_ns: int) \
        -> np.ndarray:
    """Fraction of each window [start, start + length) not covered by raw samples."""
    if not segments:
        return np.ones(starts_ns.size)
    seg0 = np.array([s.raw_start_ns for s in segments], dtype=np.int64)
    seg1 = np.array([s.raw_end_ns for s in segments], dtype=np.int64)
    w0, w1 = starts_ns[:, None], starts_ns[:, None] + length_ns
    covered = np.clip(np.minimum(w1, seg1) - np.maximum(w0, seg0), 0, None).sum(axis=1)
    # rounded to 1e-9 so that a threshold such as 0.05 is met exactly
    return np.clip(np.round(1.0 - covered / length_ns, 9), 0.0, 1.0)


def _locate_frames(segments: Sequence[Segment], starts_ns: np.ndarray, plan: Plan) \
        -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Segment]]:
    """Per frame (window, k): whether it lies in untapered data, the index of its segment
    (among the returned segments long enough for a frame) and its first sample there."""
    nw, nk, n = starts_ns.size, plan.n_frames, plan.settings.nperseg
    segs = [s for s in segments if s.data.size >= n]
    if not segs:
        zeros = np.zeros((nw, nk), np.int64)
        return np.zeros((nw, nk), bool), zeros, zeros, segs
    seg_start = np.array([s.start_ns for s in segs], dtype=np.int64)
    sizes = np.array([s.data.size for s in segs], dtype=np.int64)
    edges = np.array([s.edge for s in segs], dtype=np.int64)
    # the frame's time decides its segment; its sample index is the window start's sample
    # in that segment plus k * hop, so all frames of a window in one segment are evenly spaced
    t_frame = starts_ns[:, None] + np.rint(plan.frame_offsets * (NS / plan.fs)).astype(np.int64)
    s = np.clip(np.searchsorted(seg_start, t_frame, side="right") - 1, 0, len(segs) - 1)
    first = np.rint((starts_ns[:, None] - seg_start[s]) * (plan.fs / NS)).astype(np.int64)
    idx = first + plan.frame_offsets[None, :]
    ok = (idx >= edges[s]) & (idx + n <= sizes[s] - edges[s])
    return ok, s, np.where(ok, idx, 0), segs


def frame_powers(segments: Sequence[Segment], seg_idx: np.ndarray, first: np.ndarray,
                 plan: Plan, out: np.ndarray | None = None, rows: np.ndarray | None = None) \
        -> np.ndarray:
    """PSD in the band bins of the frames starting at sample ``first`` of segment
    ``seg_idx`` (each frame's mean removed, as scipy's default 'constant' detrend), written
    to ``out[rows]`` (a new array by default)."""
    if out is None:
        out = np.empty((first.size, plan.bin_frequencies.size))
        rows = np.arange(first.size)
    order = np.argsort(seg_idx, kind="stable")
    bounds = np.searchsorted(seg_idx[order], np.arange(len(segments) + 1))
    for j, seg in enumerate(segments):
        sel = order[bounds[j]:bounds[j + 1]]
        if sel.size:
            view = sliding_window_view(seg.data, plan.settings.nperseg)
            for c in range(0, sel.size, FRAME_CHUNK):
                part = sel[c:c + FRAME_CHUNK]
                out[rows[part]] = _psd(view[first[part]], plan)
    return out


def _psd(frames: np.ndarray, plan: Plan) -> np.ndarray:
    """Band PSD of a (copied) block of frames; the copy is modified."""
    mean = frames.mean(axis=1)
    frames *= plan.taper
    spec = sfft.rfft(frames, axis=1, overwrite_x=True)[:, plan.bins]
    spec -= mean[:, None] * plan.taper_spectrum[None, :]
    return (spec.real ** 2 + spec.imag ** 2) * plan.scale


def interpolate_frames(frames: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Replace frames where ``ok`` is False by linear interpolation in time (per window)
    between the nearest valid frames; constant beyond the first and last valid frame."""
    if ok.all():
        return frames
    nk = ok.shape[1]
    k = np.arange(nk)
    prev = np.maximum.accumulate(np.where(ok, k, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(ok, k, nk)[:, ::-1], axis=1)[:, ::-1]
    lo = np.where(prev < 0, nxt, prev)
    hi = np.where(nxt >= nk, prev, nxt)
    w = np.where(hi > lo, (k - lo) / np.maximum(hi - lo, 1), 0.0)
    a = np.take_along_axis(frames, lo[:, :, None], axis=1)
    b = np.take_along_axis(frames, hi[:, :, None], axis=1)
    return a + w[:, :, None] * (b - a)


def to_log(power: np.ndarray, kind: str) -> np.ndarray:
    """log10 (or dB) of the power, floored at ``POWER_FLOOR`` times each window's maximum
    (the last two axes); all-zero windows give the floor's log of 0 (-inf), NaN stays NaN."""
    peak = np.fmax.reduce(power.reshape(*power.shape[:-2], -1), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.maximum(power, (peak * POWER_FLOOR)[..., None, None])
        np.log10(out, out=out)
    if kind == "db":
        out *= 10.0
    return out


# ------------------------------------------------------------------------- normalisation


def normalisation_statistics(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sum of squared deviations over the last two axes (float64)."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # -inf (all-zero power) gives NaN: flagged flat
        mean = v.mean(axis=(-2, -1))
        m2 = ((v - mean[..., None, None]) ** 2).sum(axis=(-2, -1))
    return mean, m2


def combine_statistics(mean: np.ndarray, m2: np.ndarray, n: int) -> tuple[float, float]:
    """Mean and (population) standard deviation of the union of equal-size groups."""
    if mean.size == 0:
        return float("nan"), float("nan")
    total = float(np.mean(mean))
    ss = float(np.sum(m2) + n * np.sum((mean - total) ** 2))
    return total, math.sqrt(ss / (n * mean.size))


def apply_normalisation(
    spectrogram: xr.DataArray, reference: xr.Dataset | Mapping[str, Any],
) -> xr.DataArray:
    """Normalise new, un-normalised spectrograms the way ``reference`` (a store written by
    :func:`build_store`, or its attributes) was normalised.

    ``global``: the reference's per-channel mean and standard deviation; ``per_window``:
    each new window's own statistics (that is the definition); ``none``: unchanged.
    """
    attrs = reference.attrs if isinstance(reference, xr.Dataset) else reference
    mode = attrs["normalise"]
    if mode == "none":
        return spectrogram
    if mode == "per_window":
        mean = spectrogram.mean(("frequency", "time"))
        std = spectrogram.std(("frequency", "time"))
        return ((spectrogram - mean) / std.where(std > 0, 1.0)).astype(spectrogram.dtype)
    channels = list(json.loads(attrs["channels"]))
    mean = dict(zip(channels, attrs["norm_mean"], strict=True))
    std = dict(zip(channels, attrs["norm_std"], strict=True))
    missing = sorted(set(spectrogram["channel"].values.tolist()) - set(channels))
    if missing:
        raise InputError(f"channel {missing[0]} has no saved normalisation statistics "
                         f"(the reference holds {', '.join(channels)}).")
    ch = spectrogram["channel"].values
    m = xr.DataArray([mean[c] for c in ch], dims="channel", coords={"channel": ch})
    s = xr.DataArray([std[c] for c in ch], dims="channel", coords={"channel": ch})
    return ((spectrogram - m) / s).astype(spectrogram.dtype)


# -------------------------------------------------------------------------- the pipeline


@dataclass
class Block:
    """Per-window results kept in memory: (windows, channels) arrays, one column per task."""

    missing: np.ndarray  # (n, C)
    interpolated: np.ndarray  # (n, C)
    reason: np.ndarray  # (n, C) int8
    mean: np.ndarray  # (n, C) mean of the log power
    m2: np.ndarray  # (n, C) sum of squared deviations of the log power


@dataclass(frozen=True)
class Job:
    """What every block needs (shared, read-only)."""

    source: Source
    channels: tuple[str, ...]
    prep: Preprocess
    settings: SpectrogramSettings
    plans: dict[str, Plan]
    pad_ns: int
    inventory: Any = None


def channel_segments(job: Job, starts_ns: np.ndarray, channel: str) -> list[Segment]:
    """Read and preprocess one channel's data for a block of windows (with the margins)."""
    s = job.settings
    stream = job.source.read(int(starts_ns[0]) - job.pad_ns,
                             int(starts_ns[-1]) + s.length_ns + job.pad_ns, channel)
    return preprocess_stream(stream, channel, job.prep, job.pad_ns / NS, s.nperseg,
                             job.inventory)


def window_waveform(job: Job, start_ns: int, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """The preprocessed record of one window of one channel, as the spectrogram saw it:
    times (s from the window start) and values, NaN where data are missing or tapered."""
    fs = job.plans[channel].fs
    n = round(job.settings.window_length * fs)
    out = np.full(n, np.nan)
    for seg in channel_segments(job, np.array([start_ns], dtype=np.int64), channel):
        offset = round((seg.start_ns - start_ns) * fs / NS)
        use = np.arange(seg.edge, seg.data.size - seg.edge)
        at = use + offset
        inside = (at >= 0) & (at < n)
        out[at[inside]] = seg.data[use[inside]]
    return np.arange(n) / fs, out


def channel_block(job: Job, starts_ns: np.ndarray, channel: str) -> Windows:
    """Read, preprocess and compute one block of windows of one channel."""
    segments = channel_segments(job, starts_ns, channel)
    return compute_windows(segments, starts_ns, job.plans[channel], job.prep.max_gap_fraction)


def _block_task(job: Job, raw: str, first: int, starts_ns: np.ndarray, c: int) -> Block:
    """One task: the block of windows ``first, first + 1, ...`` of channel ``c``; writes its
    log power into its own chunk of the raw Zarr array and returns its statistics."""
    res = channel_block(job, starts_ns, job.channels[c])
    zarr.open_array(raw, mode="r+")[first:first + starts_ns.size, c] = res.log_power
    return Block(*(v[:, None] for v in (res.missing_fraction, res.interpolated_fraction,
                                         res.reason, res.mean, res.m2)))


def prepare_job(source: Source, prep: Preprocess, settings: SpectrogramSettings,
                inventory: Any = None) -> Job:
    """Check every channel's rate against the settings and build the per-rate plans."""
    plans = {}
    for ch in source.channels:
        fs = source.sampling_rates[ch]
        prep.check_rate(fs, ch)
        fs_out = prep.output_rate(fs)
        settings.check_rate(fs_out, ch)
        plans[ch] = Plan(settings, fs_out)
    pad = pad_seconds(prep, settings.fmin)
    return Job(source, tuple(source.channels), prep, settings, plans, round(pad * NS), inventory)


def build_store(
    source: Source, prep: Preprocess, settings: SpectrogramSettings, store: str | Path, *,
    threads: int = 1, inventory: Any = None, config: Mapping[str, Any] | None = None,
    compute: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Compute every window's spectrogram and write the Zarr store atomically.

    One dask task per block of ``compute.spectrogram_block_days`` days and channel, on the
    ``compute`` section's scheduler (default: ``threads`` local threads). Returns the
    skipped windows (``SKIPPED_COLUMNS``). Raises InputError (and writes nothing) when no
    window at all can be computed.
    """
    job = prepare_job(source, prep, settings, inventory)
    starts = source_window_starts(source, settings)
    if starts.size == 0:
        raise InputError(f"{SKEY}.window_length: no window fits the data span "
                         f"{utc(source.start_ns)} - {utc(source.end_ns)}.")
    cfg = compute_settings(compute)
    per_block = max(1, round(cfg.spectrogram_block_days * DAY / settings.window_step))
    firsts = range(0, starts.size, per_block)
    C = len(job.channels)
    store = Path(store)
    store.parent.mkdir(parents=True, exist_ok=True)
    raw_dir = Path(tempfile.mkdtemp(prefix=f".{store.name}.raw-", dir=store.parent))
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{store.name}.tmp-", dir=store.parent))
    try:
        raw_path = str(raw_dir / "logpower")
        raw = zarr.open_array(
            raw_path, mode="w", zarr_format=2, dtype="float32",
            shape=(starts.size, C, settings.n_freq, settings.n_time),
            chunks=(per_block, 1, settings.n_freq, settings.n_time), fill_value=np.nan)
        log.info("%d windows of %s on %d channel(s) (%s), %d block(s) of %d window(s)",
                 starts.size, _duration(settings.window_length), C, ", ".join(job.channels),
                 len(firsts), per_block)
        return_freed_memory()  # else glibc keeps the tasks' freed arrays resident
        with dask_scheduler(cfg, threads) as session:
            shared = session.share(job)
            results = dask.compute(*(
                [dask.delayed(_block_task)(shared, raw_path, i, starts[i:i + per_block], c)
                 for c in range(C)]
                for i in firsts))
            stats = Block(*(np.concatenate([np.concatenate([getattr(r, f) for r in row], axis=1)
                                            for row in results])
                            for f in Block.__dataclass_fields__))
            _log_blocks(stats, starts, firsts, per_block)
            keep, skipped = _select_windows(stats, starts, job)
            if not keep.any():
                raise InputError(f"{SKEY}: no window could be computed: every window of "
                                 f"{', '.join(job.channels)} was skipped (see the reasons: "
                                 f"{_reason_summary(skipped)}).")
            ds = _dataset(da.from_zarr(raw), stats, starts, keep, job, per_block, config)
            ds.to_zarr(str(tmp_dir / "store.zarr"), mode="w", zarr_format=2,
                       consolidated=True)
        if store.exists():
            shutil.rmtree(store)
        os.replace(tmp_dir / "store.zarr", store)
    finally:
        shutil.rmtree(raw_dir, ignore_errors=True)
        shutil.rmtree(tmp_dir, ignore_errors=True)
    log.info("wrote %s: %d windows kept, %d window-channel(s) skipped", store,
             int(keep.sum()), len(skipped))
    return skipped


def _log_blocks(stats: Block, starts: np.ndarray, firsts: range, per_block: int) -> None:
    """One log line per block (first windows ``firsts``): its first day and how many
    window-channels are valid."""
    for b, i in enumerate(firsts):
        reason = stats.reason[i:i + per_block]
        log.info("block %d/%d (%s): %d of %d window-channels valid", b + 1, len(firsts),
                 utc(int(starts[i])).date, int((reason == 0).sum()), reason.size)


def _select_windows(stats: Block, starts: np.ndarray, job: Job) \
        -> tuple[np.ndarray, pd.DataFrame]:
    """Windows kept (stack: valid on every channel; separate: on at least one) and the
    table of skipped window-channels."""
    valid = stats.reason == 0
    if job.prep.channels == "stack":
        keep = valid.all(axis=1)
        stats.reason[~keep[:, None] & valid] = 4
    else:
        keep = valid.any(axis=1)
    w, c = np.nonzero(stats.reason != 0)
    skipped = pd.DataFrame({
        "window_start": [iso(t) for t in starts[w]],
        "channel": [job.channels[i] for i in c],
        "missing_fraction": np.round(stats.missing[w, c], 6),
        "reason": [REASONS[r] for r in stats.reason[w, c]],
    }, columns=SKIPPED_COLUMNS)
    return keep, skipped


def _dataset(raw: da.Array, stats: Block, starts: np.ndarray, keep: np.ndarray, job: Job,
             per_block: int, config: Mapping[str, Any] | None) -> xr.Dataset:
    s, prep = job.settings, job.prep
    idx = np.flatnonzero(keep)
    valid = stats.reason[idx] == 0
    values = raw[idx]
    n = s.n_freq * s.n_time
    attrs: dict[str, Any] = {"normalise": s.normalise}
    extra: dict[str, Any] = {}
    if s.normalise == "global":
        pairs = [combine_statistics(stats.mean[:, c][stats.reason[:, c] == 0],
                                    stats.m2[:, c][stats.reason[:, c] == 0], n)
                 for c in range(len(job.channels))]
        mean, std = (np.array(v) for v in zip(*pairs, strict=True))
        values = (values - mean[None, :, None, None].astype(np.float32)) \
            / std[None, :, None, None].astype(np.float32)
        attrs |= {"norm_mean": mean.tolist(), "norm_std": std.tolist()}
    elif s.normalise == "per_window":
        mean = np.where(valid, stats.mean[idx], np.nan)
        std = np.where(valid, np.sqrt(stats.m2[idx] / n), np.nan)
        values = (values - mean[:, :, None, None].astype(np.float32)) \
            / np.where(valid, std, 1.0)[:, :, None, None].astype(np.float32)
        attrs |= {"norm_mean": "per_window", "norm_std": "per_window"}
        extra = {"norm_mean": (("window", "channel"), mean, {"long_name": "window mean of "
                                                                 "the log power"}),
                 "norm_std": (("window", "channel"), std, {"long_name": "window standard "
                                                               "deviation of the log power"})}
    else:
        attrs |= {"norm_mean": "none", "norm_std": "none"}
    values = da.where(da.from_array(valid[:, :, None, None]), values, np.float32(np.nan))
    values = values.astype(np.float32).rechunk((per_block, -1, -1, -1))
    squared = f"({prep.units})**2/Hz" if "/" in prep.units else f"{prep.units}**2/Hz"
    power_units = f"log10({squared})" if s.power == "log10" else f"dB re 1 {squared}"
    ds = xr.Dataset(
        {
            "spectrogram": (("window", "channel", "frequency", "time"), values, {
                "long_name": "power spectral density" + ("" if s.normalise == "none"
                                                         else f" ({s.normalise} normalised)"),
                "units": power_units if s.normalise == "none" else "1",
                "power_units": power_units}),
            "valid": (("window", "channel"), valid, {
                "long_name": "window computed for this channel (False: skipped, NaN)"}),
            "missing_fraction": (("window", "channel"), stats.missing[idx].astype(np.float32),
                                 {"long_name": "fraction of the window without samples"}),
            "interpolated_fraction": (("window", "channel"),
                                      stats.interpolated[idx].astype(np.float32),
                                      {"long_name": "fraction of STFT frames interpolated "
                                                    "in time (touching a gap or taper)"}),
            **extra,
        },
        coords={
            "window": ("window", starts[idx].astype("datetime64[ns]"),
                       {"long_name": "window start (UTC)"}),
            "channel": ("channel", np.array(job.channels, dtype=str),
                        {"long_name": "NET.STA.LOC.CHA"}),
            "frequency": ("frequency", s.frequencies(), {"units": "Hz",
                                                         "long_name": "cell centre"}),
            "time": ("time", s.times(), {"units": "s", "long_name": "cell centre from the "
                                                                  "window start"}),
        },
    )
    rates = {ch: job.source.sampling_rates[ch] for ch in job.channels}
    settings = {
        **{k: _jsonable(v) for k, v in dict(config or {}).items()},
        "preprocess": asdict(prep), "spectrogram": asdict(s),
        "derived": {
            "sampling_rate": rates,
            "output_sampling_rate": {ch: job.plans[ch].fs for ch in job.channels},
            "n_frames": {ch: job.plans[ch].n_frames for ch in job.channels},
            "pad_seconds": job.pad_ns / NS, "frequency_edges": s.frequency_edges().tolist(),
            "source": job.source.description,
        },
    }
    attrs |= {
        "title": "Spectrograms of origin-aligned windows (seiscluster tremor branch)",
        "channels": json.dumps(list(job.channels)),
        "stations": json.dumps(sorted({".".join(c.split(".")[:2]) for c in job.channels})),
        "power": s.power, "power_units": power_units, "units": prep.units,
        "channel_mode": prep.channels, "settings": json.dumps(settings, default=_jsonable),
        "gap_policy": GAP_POLICY,
    }
    ds.attrs = attrs
    return ds


GAP_POLICY = (
    "Windows missing more than max_gap_fraction of their samples are skipped (NaN, valid "
    "False, listed in skipped_windows.csv). In the others, only STFT frames lying fully in "
    "contiguous untapered data are computed; frames touching a gap or a segment's taper are "
    "replaced by linear interpolation in time of the neighbouring complete frames' power "
    "(interpolated_fraction). No sample is ever zero-filled."
)


def iso(ns: int) -> str:
    """ISO 8601 of a time in ns (UTC, no zone suffix), as in the CSV outputs."""
    return str(np.datetime64(int(ns), "ns").astype("datetime64[ms]")).removesuffix(".000")


def _reason_summary(skipped: pd.DataFrame) -> str:
    counts = skipped["reason"].value_counts()
    return ", ".join(f"{k} x{v}" for k, v in counts.items())


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"


def _jsonable(value: Any) -> Any:
    value = plain(value)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
