"""Interpretable features of each window, from its full-resolution STFT frames.

The autoencoder sees a window squeezed to ``n_time`` cells; a swarm of a few tens of small
earthquakes an hour barely moves such a picture, nor the hour's mean spectrum. These
features keep what a seismologist reads off a record: per frequency band (``bands``), from
the power of every STFT frame of ``frame_seconds`` (half-overlapping, the spectrogram's
taper, gap and taper frames left out):

- ``level``: percentiles (``percentiles``) of the band power over the window's frames,
  log10 — the quiet floor, the typical and the loud moments;
- impulsiveness: ``spikiness``, log10 of the 99th percentile / median of the band power;
  ``kurtosis``, log10 of the kurtosis of the band amplitude (its square root) — both high
  for sparse transients, low for stationary noise (kurtosis about 3: 0.5); ``onset``, the
  99th percentile of the rise of log10 band power from one frame to the next: high for
  sudden onsets (earthquakes), lower for emergent ones (vehicles, tremor swelling);
- ``ratios``: RSAM (log10 mean band amplitude) and DSAR-style ratios, log10 of the mean
  amplitude of each band over that of the next band up;
- ``flatness``: log10 spectral flatness (geometric / arithmetic mean) of the window's
  median spectrum within each band: near 0 for broadband noise, negative for spectral
  lines (harmonic tremor).

``sets`` chooses the groups. Before the k scan every feature is standardised over the
samples (``scaling``: ``zscore``, or ``robust``: median and interquartile range), so each
feature weighs the same whatever its units.

With ``parts`` > 0 the same features are also computed on ``parts`` equal runs of each
window's frames (:func:`compute_part_features`): they label the windows at a regime change
(:mod:`~seiscluster.tremor.boundaries`, ``min_separation``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.tremor import spectrogram as spec

log = logging.getLogger(__name__)

FKEY = "tremor.features"
#: Fewest frames in a part of a window (``parts``).
MIN_PART_FRAMES = 8
#: Percentiles of the impulsiveness ratio.
IMPULSE_PERCENTILES = (99.0, 50.0)


@dataclass(frozen=True)
class FeatureSettings:
    """The ``tremor.features`` settings, checked."""

    frame_seconds: float
    bands: tuple[tuple[float, float], ...]
    percentiles: tuple[float, ...]
    sets: tuple[str, ...]
    scaling: str
    parts: int = 0
    min_separation: float = 0.85

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> FeatureSettings:
        values = section(FKEY, cfg)
        return cls(float(values["frame_seconds"]),
                   tuple((float(a), float(b)) for a, b in values["bands"]),
                   tuple(float(q) for q in values["percentiles"]),
                   tuple(str(v) for v in values["sets"]), str(values["scaling"]),
                   int(values["parts"]), float(values["min_separation"]))

    def band_names(self) -> list[str]:
        return [f"{a:g}-{b:g}Hz" for a, b in self.bands]

    def check_rate(self, fs: float, channel: str) -> None:
        """The bands must lie below Nyquist and a frame must hold a few periods of the
        lowest band's lower edge."""
        top = max(b for _, b in self.bands)
        if top >= fs / 2:
            raise InputError(f"{FKEY}.bands: {top:g} Hz is not below the Nyquist frequency "
                             f"{fs / 2:g} Hz of {channel}; set bands below it (e.g. in the "
                             "experiment's config).")
        n = round(self.frame_seconds * fs)
        if n < 4:
            raise InputError(f"{FKEY}.frame_seconds: {self.frame_seconds:g} s is only {n} "
                             f"sample(s) at {fs:g} Hz ({channel}); use a longer frame.")


@dataclass
class FeatureTable:
    """Features of some windows of one channel: (n, n_features), NaN where skipped."""

    values: np.ndarray
    reason: np.ndarray  # int8 index into spectrogram.REASONS; 0 = used
    missing_fraction: np.ndarray
    parts: np.ndarray | None = None  # (n, parts, n_features) with FeatureSettings.parts


def feature_names(fs: FeatureSettings) -> list[tuple[str, str, str]]:
    """(name, long name, units) of every feature, in the order of the columns."""
    out: list[tuple[str, str, str]] = []
    bands = fs.band_names()
    for group in fs.sets:
        if group == "level":
            out += [(f"p{q:g}_{b}", f"{q:g}th percentile over frames of the {b} band power",
                     "log10(units**2)") for q in fs.percentiles for b in bands]
        elif group == "spikiness":
            out += [(f"p99_p50_{b}", f"99th percentile / median of the {b} band power",
                     "log10(1)") for b in bands]
        elif group == "kurtosis":
            out += [(f"kurtosis_{b}", f"kurtosis of the {b} band amplitude over frames",
                     "log10(1)") for b in bands]
        elif group == "onset":
            out += [(f"onset_{b}", f"99th percentile of the rise of the {b} band power "
                     "from one frame to the next", "log10(1)") for b in bands]
        elif group == "ratios":
            out += [(f"rsam_{b}", f"mean {b} band amplitude (RSAM)", "log10(units)")
                    for b in bands]
            out += [(f"dsar_{a}_{b}", f"mean {a} / {b} band amplitude (DSAR-style ratio)",
                     "log10(1)") for a, b in itertools.pairwise(bands)]
        elif group == "flatness":
            out += [(f"flatness_{b}", f"spectral flatness of the median spectrum in {b}",
                     "log10(1)") for b in bands]
        else:
            raise InputError(f"{FKEY}.sets: unknown group {group!r}.")
    return out


def band_matrix(freqs: np.ndarray, bands: Sequence[tuple[float, float]]) -> np.ndarray:
    """(n_bins, n_bands) weights summing the PSD bins of each band times the bin width
    (the band power); bins on a band edge count half."""
    df = float(freqs[1] - freqs[0]) if freqs.size > 1 else 1.0
    w = np.zeros((freqs.size, len(bands)))
    for j, (lo, hi) in enumerate(bands):
        inside = (freqs > lo) & (freqs < hi)
        edge = np.isclose(freqs, lo) | np.isclose(freqs, hi)
        w[inside, j] = df
        w[edge, j] = df / 2
        if not w[:, j].any():
            raise InputError(f"{FKEY}.bands: the band {lo:g}-{hi:g} Hz holds no frequency "
                             f"of the STFT (bins every {df:g} Hz); widen it or lengthen "
                             f"{FKEY}.frame_seconds.")
    return w


def compute_features(frames: np.ndarray, ok: np.ndarray, freqs: np.ndarray,
                     fs: FeatureSettings) -> np.ndarray:
    """Features (n, n_features) of windows given their frame PSDs (n, n_frames, n_bins)
    over ``freqs`` and which frames are complete (n, n_frames); vectorised over windows."""
    feature_names(fs)  # every group known
    weights = band_matrix(freqs, fs.bands)
    power = frames @ weights  # (n, k, B) band power
    power = np.where(ok[:, :, None], power, np.nan)
    tiny = np.finfo(np.float64).tiny
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log10(np.maximum(power, tiny))
        amp = np.sqrt(power)
        cols: list[np.ndarray] = []
        for group in fs.sets:
            if group == "level":
                q = np.nanpercentile(logp, fs.percentiles, axis=1)  # (Q, n, B)
                cols += [q.transpose(1, 0, 2).reshape(q.shape[1], -1)]
            elif group == "spikiness":
                hi, mid = np.nanpercentile(logp, IMPULSE_PERCENTILES, axis=1)
                cols += [hi - mid]
            elif group == "kurtosis":
                centred = amp - np.nanmean(amp, axis=1, keepdims=True)
                m2 = np.nanmean(centred ** 2, axis=1)
                m4 = np.nanmean(centred ** 4, axis=1)
                kurt = np.where(m2 > 0, m4 / np.maximum(m2, tiny) ** 2, 1.0)
                cols += [np.log10(np.maximum(kurt, tiny))]
            elif group == "onset":
                cols += [np.nanpercentile(np.diff(logp, axis=1), 99.0, axis=1)]
            elif group == "ratios":
                rsam = np.log10(np.maximum(np.nanmean(amp, axis=1), tiny))
                cols += [rsam, rsam[:, :-1] - rsam[:, 1:]]
            elif group == "flatness":
                median = np.nanmedian(np.where(ok[:, :, None], frames, np.nan), axis=1)
                cols += [_flatness(median, weights)]
    return np.concatenate(cols, axis=1)


def compute_part_features(frames: np.ndarray, ok: np.ndarray, freqs: np.ndarray,
                          fs: FeatureSettings) -> np.ndarray:
    """Features (n, parts, n_features) of ``fs.parts`` equal runs of consecutive frames of
    each window (the last run shorter when the frames do not divide; NaN for a run
    without a complete frame)."""
    import warnings

    n, k, bins = frames.shape
    length = -(-k // fs.parts)
    pad = length * fs.parts - k
    frames = np.concatenate([frames, np.zeros((n, pad, bins), frames.dtype)], axis=1)
    ok = np.concatenate([ok, np.zeros((n, pad), bool)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN runs (gaps)
        values = compute_features(frames.reshape(n * fs.parts, length, bins),
                                  ok.reshape(n * fs.parts, length), freqs, fs)
    return values.reshape(n, fs.parts, -1)


def _flatness(spectrum: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """log10 of geometric / arithmetic mean of ``spectrum`` (n, bins) within each band."""
    inside = (weights > 0).astype(np.float64)
    count = inside.sum(axis=0)
    tiny = np.finfo(np.float64).tiny
    logs = np.log10(np.maximum(spectrum, tiny)) @ inside / count
    arith = np.log10(np.maximum(spectrum @ inside / count, tiny))
    return logs - arith


def scaling_statistics(x: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of each column over the samples (``zscore``: mean and standard
    deviation; ``robust``: median and interquartile range); a constant column's scale is 1."""
    if scaling == "robust":
        centre = np.median(x, axis=0)
        q75, q25 = np.percentile(x, [75, 25], axis=0)
        scale = q75 - q25
    else:
        centre, scale = x.mean(axis=0), x.std(axis=0)
    return centre, np.where(scale > 0, scale, 1.0)


def standardise(x: np.ndarray, scaling: str) -> np.ndarray:
    """Columns centred and scaled over the samples (constant columns become 0)."""
    centre, scale = scaling_statistics(x, scaling)
    return (x - centre) / scale


def sample_index(valid: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The windows (and channels, unless ``mode`` is ``stack``) of the samples that the
    features stage clusters, given which window-channels are ``valid`` (window, channel):
    ``stack`` joins the channels of every window valid on all of them, else each valid
    window-channel is a sample."""
    if mode == "stack":
        return np.flatnonzero(valid.all(axis=1)), None
    return np.nonzero(valid)


def feature_matrix(ds: Any, mode: str) -> tuple[np.ndarray, Any]:
    """The samples of a ``features.nc`` dataset as the stage clustered them, (n, d), and
    their keys (``window_start`` and, unless ``mode`` is ``stack``, ``channel``); see
    :func:`sample_index`."""
    import pandas as pd

    values = ds["feature"].values
    w, c = sample_index(ds["valid"].values.astype(bool), mode)
    times = pd.DatetimeIndex(ds["window"].values.astype("M8[ns]"))
    keys = pd.DataFrame({"window_start": times[w].strftime("%Y-%m-%dT%H:%M:%S")})
    if c is None:
        return values[w].reshape(w.size, -1), keys
    channels = [str(ch) for ch in ds["channel"].values]
    keys["channel"] = [channels[i] for i in c]
    return values[w, c], keys


def labels_match(keys: Any, labels: Any) -> bool:
    """Whether the ``labels.csv`` table ``labels`` gives a ``cluster`` to the samples of
    :func:`feature_matrix` (their ``keys``) one by one, in their order."""
    on = list(keys.columns)
    return ({*on, "cluster"} <= set(labels.columns) and len(labels) == len(keys)
            and keys.equals(labels[on].astype(str).reset_index(drop=True)))


def block_features(job: spec.Job, starts_ns: np.ndarray, channel: str,
                   fs: FeatureSettings) -> FeatureTable:
    """Read, preprocess and compute the features of one block of windows of one channel."""
    segments = spec.channel_segments(job, starts_ns, channel)
    plan = job.plans[channel]
    wf = spec.window_frames(segments, starts_ns, plan, job.prep.max_gap_fraction)
    n = starts_ns.size
    names = feature_names(fs)
    out = np.full((n, len(names)), np.nan)
    parts = np.full((n, fs.parts, len(names)), np.nan) if fs.parts else None
    reason = wf.reason.copy()
    use = np.flatnonzero(reason == 0)
    if use.size:
        values = compute_features(wf.frames, wf.frame_ok[use], plan.bin_frequencies, fs)
        bad = ~np.isfinite(values).all(axis=1)  # e.g. dead data: log of zero power
        reason[use[bad]] = 3
        out[use[~bad]] = values[~bad]
        if parts is not None:
            parts[use[~bad]] = compute_part_features(wf.frames, wf.frame_ok[use],
                                                     plan.bin_frequencies, fs)[~bad]
    return FeatureTable(out, reason, wf.missing_fraction, parts)


def prepare(source: Any, prep: Any, settings: spec.SpectrogramSettings,
            fs: FeatureSettings, inventory: Any = None) -> spec.Job:
    """The spectrogram job with the features' frames (``frame_seconds`` at each channel's
    rate, half-overlapping) and band edges."""
    plans = {}
    for ch in source.channels:
        rate = prep.output_rate(source.sampling_rates[ch])
        fs.check_rate(rate, ch)
        n = round(fs.frame_seconds * rate)
        lo, hi = min(a for a, _ in fs.bands), max(b for _, b in fs.bands)
        s = replace(settings, nperseg=n, noverlap=None, fmin=lo, fmax=hi,
                    frequency_scale="linear")
        if round(s.window_length * rate) < n:
            raise InputError(f"{FKEY}.frame_seconds: {fs.frame_seconds:g} s is longer than "
                             f"a window (tremor.spectrogram.window_length "
                             f"{s.window_length:g} s).")
        frames = 2 * (s.window_length / fs.frame_seconds) - 1  # half-overlapping
        if fs.parts and frames < MIN_PART_FRAMES * fs.parts:
            raise InputError(f"{FKEY}.parts: {fs.parts} parts of a window of "
                             f"{s.window_length:g} s hold fewer than {MIN_PART_FRAMES} frames "
                             f"of {fs.frame_seconds:g} s each; use fewer parts (or 0).")
        plans[ch] = spec.Plan(s, rate)
    base = spec.prepare_job(source, prep, replace(settings, fmin=min(a for a, _ in fs.bands)),
                            inventory)
    shortest = min(p.settings.nperseg for p in plans.values())
    return replace(base, plans=plans, settings=replace(settings, nperseg=shortest))
