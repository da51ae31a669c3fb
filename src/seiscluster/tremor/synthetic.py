"""Deterministic synthetic continuous records of known tremor regimes (the embedded example).

One channel (``XX.SYN..HHZ``) of ``days`` days at ``sampling_rate`` Hz, written as day-long
miniSEED files (STEIM2 counts). The strengths are those of real volcano records, so that a
method must find weak, sparse signals, and every one of them is a key of
``data.waveforms.example`` (:class:`ExampleSettings`, defaults documented there and in
``conf/data/example.yaml``).

Always present (the ``background`` regime is only this):

- a secondary microseism whose peak drifts between about 0.12 and 0.3 Hz over days, and
  whose level varies over days (storms);
- a red broadband floor (``BACKGROUND_COUNTS``) with a daily cycle;
- cultural noise: 4-15 Hz noise by day (06-20 h) and emergent passes of vehicles (Gaussian
  envelopes of 10-40 s) by day, ``cultural_amplitude`` times the floor;
- ``teleseisms`` distant earthquakes: body-wave coda (0.3-2 Hz, decaying over minutes) and
  surface waves (0.03-0.1 Hz, half an hour), at random times;
- gaps (``gap_fractions`` of a window each, inside one window).

Regimes come in episodes of ``episode_hours`` (uniform, in seconds: they start and end at
any time, not on window boundaries), cycling through shuffled permutations of the four
regimes (never the same twice in a row); consecutive episodes cross-fade over
``transition_minutes`` (cosine ramps). Each episode has its own level (log-uniform, 0.7 to
1.4 times its regime's amplitude):

- ``harmonic_tremor``: a fundamental (one resonator: 1-1.5 Hz drawn once per record,
  gliding by at most 0.015 Hz over hours) and three overtones, over a 0.8-2 Hz floor;
- ``spasmodic_tremor``: 1.5-2.7 Hz noise swelling and fading in bursts of minutes;
- ``earthquake_swarm``: ``swarm_rate`` volcano-tectonic events per hour (Poisson, the rate
  uniform in the range per episode) with impulsive onsets, exponential codas (e-folding
  ``swarm_coda_seconds``, log-uniform: events last seconds to tens of seconds),
  Gutenberg-Richter amplitudes (Pareto, b = 1, from ``swarm_amplitude`` times the floor up
  to ``swarm_max_amplitude`` times it) and 2-8 Hz or 4-15 Hz content. With the defaults the
  median hourly mean 2-12 Hz power of swarm hours is 1 to 2 times the background hours'
  (1.2 in one 4-day realisation, 2.05 in another; the interquartile ranges overlap),
  while the 99th-percentile / median ratio of their 5 s frame powers is 6-13
  (interquartile; background 1.4-1.7).

Truth (``truth.csv``): per window the share of each regime (the mean of its cross-fade weight
over the window), the majority regime (``regime``) and its share (``fraction``, 1 for a
window inside one episode). Windows straddling a change are labelled by their majority
regime; metrics count them like the others, and ``bench/tremor_quality.py`` also reports
the ARI on the windows with ``fraction >= 0.9``. Everything follows from ``seed``;
generation is vectorised (no per-sample or per-event loops).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from obspy import Stream, Trace, UTCDateTime
from scipy import signal

from seiscluster.errors import InputError
from seiscluster.fileio import atomic_path, temp_dir_beside

log = logging.getLogger(__name__)

KEY = "data.waveforms.example"
REGIMES = ("background", "harmonic_tremor", "spasmodic_tremor", "earthquake_swarm")
NETWORK, STATION, LOCATION, CHANNEL = "XX", "SYN", "", "HHZ"
CHANNEL_ID = f"{NETWORK}.{STATION}.{LOCATION}.{CHANNEL}"
#: Background level (counts, standard deviation of the broadband floor).
BACKGROUND_COUNTS = 150.0
#: Rate (Hz) of the slowly varying parts (microseism, gains, regime weights).
COARSE = 2.0
#: Episode levels relative to the regime's amplitude (log-uniform).
LEVEL_RANGE = (0.7, 1.4)
#: Carriers of the swarm events (Hz): each event takes one.
SWARM_BANDS = ((2.0, 8.0), (4.0, 15.0))
#: Durations (full width at half maximum, s) of the vehicle passes of the cultural noise.
PASS_FWHM = (10.0, 20.0, 30.0, 40.0)


@dataclass(frozen=True)
class ExampleSettings:
    """``data.waveforms.example``: the record and the strengths of its parts (defaults and
    checks: ``seiscluster.config.ExampleWaveformsConfig``, by :meth:`from_config`)."""

    days: int
    sampling_rate: float  # Hz
    starttime: str
    seed: int
    episode_hours: tuple[float, float]  # regime episode durations (uniform)
    transition_minutes: float  # cross-fade between consecutive episodes
    harmonic_amplitude: float  # line amplitude / floor
    spasmodic_amplitude: float  # rms / floor
    swarm_rate: tuple[float, float]  # events per hour (uniform per episode)
    swarm_amplitude: float  # smallest event's peak / floor
    swarm_max_amplitude: float  # largest event's peak / floor
    swarm_coda_seconds: tuple[float, float]  # coda e-folding time (log-uniform)
    cultural_amplitude: float  # daytime cultural noise rms / floor
    microseism_amplitude: float  # microseism rms / floor
    teleseisms: int
    gap_fractions: tuple[float, ...]  # of a window, one gap each
    withheld_regimes: tuple[str, ...]  # regimes with no episode in the first days
    withheld_days: float  # ... of this many days (e.g. to test novelty detection)

    @classmethod
    def from_config(cls, example: Mapping[str, Any] | None) -> ExampleSettings:
        """Settings from ``data.waveforms.example``, checked and completed with the defaults
        of ``seiscluster.config.ExampleWaveformsConfig``; InputError naming the first
        unknown or bad key."""
        from seiscluster.config import section

        return cls(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in section(KEY, example).items()})


@dataclass
class Example:
    """Synthetic samples (NaN in gaps), their start and rate, and the true regimes."""

    data: np.ndarray
    starttime: UTCDateTime
    sampling_rate: float
    truth: pd.DataFrame  # window_start, regime, fraction, then the share of every regime
    gaps: pd.DataFrame  # start, end (UTC ISO strings), window_start, fraction
    episodes: pd.DataFrame  # regime, start, end (s from the start), level, events
    teleseisms: pd.DataFrame  # origin (s from the start), amplitude


def make_example(settings: ExampleSettings | Mapping[str, Any] | None = None, *,
                 window_length: float = 3600.0, **overrides: Any) -> Example:
    """Generate the synthetic record (see the module docstring); keyword ``overrides`` are
    keys of :class:`ExampleSettings`."""
    if not isinstance(settings, ExampleSettings):
        settings = ExampleSettings.from_config({**dict(settings or {}), **overrides})
    elif overrides:
        settings = ExampleSettings.from_config({**asdict(settings), **overrides})
    s = settings
    fs = float(s.sampling_rate)
    t0 = UTCDateTime(s.starttime)
    n = round(s.days * 86400 * fs)
    nwin = round(window_length * fs)
    n_windows = n // nwin
    if n_windows < 1:
        raise InputError(f"{KEY}.days: {s.days} day(s) hold no whole window of "
                         f"{window_length:g} s.")
    rng = np.random.default_rng(s.seed)
    total = n / fs
    episodes = _episodes(total, s, rng)
    tc = np.arange(int(total * COARSE) + 2) / COARSE  # coarse time grid (s)
    width = s.transition_minutes * 60.0
    x = _background(n, fs, tc, s, rng)
    f0 = rng.uniform(1.0, 1.5)  # one resonator: every harmonic episode shares its fundamental
    half = width / 2
    events = np.zeros(len(episodes), dtype=np.int64)
    shares = np.zeros((len(REGIMES), tc.size))  # cross-fade weight of each regime
    for e, ep in enumerate(episodes.itertuples()):
        c0 = max(0, int((ep.start - half) * COARSE))
        c1 = min(tc.size, math.ceil((ep.end + half) * COARSE) + 1)
        w = _episode_weight(tc[c0:c1], ep.start, ep.end, e == 0, e == len(episodes) - 1,
                            width)
        shares[ep.code, c0:c1] += w
        if ep.code == 0:
            continue
        a = max(0, int((ep.start - half) * fs))
        b = min(n, math.ceil((ep.end + half) * fs))
        if ep.code == 1:
            part = _harmonic(b - a, fs, rng, f0, s.harmonic_amplitude)
        elif ep.code == 2:
            part = _spasmodic(b - a, fs, rng, s.spasmodic_amplitude)
        else:
            part, events[e] = _swarm(b - a, fs, rng, s)
        part *= ep.level * np.interp(np.arange(a, b) / fs, tc[c0:c1], w)
        x[a:b] += part
    teles = _teleseisms(x, fs, s.teleseisms, rng)
    gaps = _gaps(n_windows, nwin, rng, s.gap_fractions)
    for a, b in gaps:
        x[a:b] = np.nan
    truth = _truth(tc, shares, n_windows, window_length, t0)
    step = np.timedelta64(round(window_length * 1e9), "ns")
    t_ns = np.datetime64(t0.ns, "ns")
    gap_table = pd.DataFrame({
        "start": [_iso(t_ns + np.timedelta64(int(a * 1e9 / fs), "ns")) for a, _ in gaps],
        "end": [_iso(t_ns + np.timedelta64(int(b * 1e9 / fs), "ns")) for _, b in gaps],
        "window_start": [_iso(t_ns + (a // nwin) * step) for a, _ in gaps],
        "fraction": [(b - a) / nwin for a, b in gaps],
    })
    table = pd.DataFrame({"regime": [REGIMES[c] for c in episodes["code"]],
                          "start": episodes["start"], "end": episodes["end"],
                          "level": episodes["level"], "events": events})
    return Example(x, t0, fs, truth, gap_table, table, teles)


def write_example(example: Example, folder: str | Path, truth: str | Path) -> list[Path]:
    """Write day-long miniSEED files (``XX.SYN..HHZ.<date>.mseed``) and ``truth.csv``.

    The folder is replaced atomically (written beside it, then renamed).
    """
    folder = Path(folder)
    tmp = temp_dir_beside(folder)
    try:
        names = []
        fs, t0 = example.sampling_rate, example.starttime
        per_day = round(86400 * fs)
        for d0 in range(0, example.data.size, per_day):
            day = t0 + d0 / fs
            st = _stream(example.data[d0:d0 + per_day], day, fs)
            name = f"{CHANNEL_ID}.{day.strftime('%Y-%m-%d')}.mseed"
            st.write(str(tmp / name), format="MSEED", encoding="STEIM2", reclen=4096)
            names.append(name)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with atomic_path(truth) as path:
        example.truth.to_csv(path, index=False)
    return [folder / n for n in names]


def example_config(example: Mapping[str, Any] | None) -> ExampleSettings:
    """``data.waveforms.example`` checked, as :class:`ExampleSettings`."""
    return ExampleSettings.from_config(example)


def truth_of(truth: str | Path, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The majority regime (object array, None where the truth has no row) and its share
    (NaN there; 1 where ``truth.csv`` has no ``fraction`` column) of each window start."""
    t = pd.read_csv(truth)
    if not {"window_start", "regime"} <= set(t.columns):
        raise InputError(f"{truth} must have the columns window_start and regime.")
    times = pd.to_datetime(t["window_start"], utc=True).dt.tz_localize(None).to_numpy("M8[ns]")
    fraction = t["fraction"].to_numpy(float) if "fraction" in t else np.ones(len(t))
    table = pd.DataFrame({"regime": t["regime"].astype(str).to_numpy(), "fraction": fraction},
                         index=times)
    table = table[~table.index.duplicated()].reindex(np.asarray(windows).astype("M8[ns]"))
    regime = table["regime"].to_numpy(dtype=object)
    regime[pd.isna(regime)] = None
    return regime, table["fraction"].to_numpy(dtype=float)


def truth_scores(regime: np.ndarray, fraction: np.ndarray, labels: np.ndarray,
                 pure: float = 0.9) -> dict[str, Any]:
    """ARI and NMI of ``labels`` against the majority regimes (every window with a truth),
    and the ARI on the windows at least ``pure`` inside one regime."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    ok = np.array([r is not None for r in regime], dtype=bool)
    if not ok.any():
        raise InputError("no window has a regime in the truth.")
    truth = regime[ok].astype(str)
    clean = fraction[ok] >= pure
    return {
        "n_with_truth": int(ok.sum()),
        "ari": float(adjusted_rand_score(truth, labels[ok])),
        "nmi": float(normalized_mutual_info_score(truth, labels[ok])),
        "n_pure": int(clean.sum()),
        "ari_pure": float(adjusted_rand_score(truth[clean], labels[ok][clean]))
        if clean.any() else float("nan"),
        "contingency": pd.crosstab(pd.Series(truth, name="regime"),
                                   pd.Series(labels[ok], name="cluster"))
        .rename(columns=str).to_dict(orient="index"),
    }


# ----------------------------------------------------------------------------- the parts


def _episodes(total: float, s: ExampleSettings, rng: np.random.Generator) -> pd.DataFrame:
    """Regime episodes covering [0, total] s: code, start, end, level."""
    lo, hi = (h * 3600.0 for h in s.episode_hours)
    lengths = rng.uniform(lo, hi, int(total / lo) + 2)
    ends = np.cumsum(lengths)
    m = int(np.searchsorted(ends, total)) + 1
    ends = np.minimum(ends[:m], total)
    codes: list[int] = []
    while len(codes) < m:
        perm = list(rng.permutation(len(REGIMES)))
        if codes and perm[0] == codes[-1]:
            perm.reverse()
        codes.extend(perm)
    levels = np.exp(rng.uniform(*np.log(LEVEL_RANGE), m))
    if s.withheld_regimes and s.withheld_days > 0:
        codes = _withhold(codes[:m], ends, s)
    return pd.DataFrame({"code": np.asarray(codes[:m], dtype=np.int64),
                         "start": np.concatenate([[0.0], ends[:-1]]), "end": ends,
                         "level": levels})


def _withhold(codes: list[int], ends: np.ndarray, s: ExampleSettings) -> list[int]:
    """Episodes of a ``withheld_regimes`` regime starting in the first ``withheld_days``
    days become another regime, neither withheld nor that of a neighbour where possible
    (no random draw: the rest of the record is the one without the option)."""
    starts = np.concatenate([[0.0], ends[:-1]])
    withheld = {REGIMES.index(r) for r in s.withheld_regimes}
    kept = [c for c in range(len(REGIMES)) if c not in withheld]
    out = list(codes)
    for e, start in enumerate(starts):
        if out[e] not in withheld or start >= s.withheld_days * 86400.0:
            continue
        near = {out[e - 1] if e else -1, out[e + 1] if e + 1 < len(out) else -1}
        allowed = ([c for c in kept if c not in near]
                   or [c for c in kept if not e or c != out[e - 1]] or kept)
        out[e] = allowed[e % len(allowed)]
    return out


def _ramp(u: np.ndarray, width: float) -> np.ndarray:
    """Cosine step from 0 (u <= -width/2) to 1 (u >= width/2)."""
    if width <= 0:
        return (u >= 0).astype(np.float64)
    v = np.clip(u / width + 0.5, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * v)


def _episode_weight(t: np.ndarray, start: float, end: float, first: bool, last: bool,
                    width: float) -> np.ndarray:
    """Cross-fade weight of one episode at times ``t``: rising around its start (unless it
    is the first), falling around its end (unless the last); consecutive episodes' weights
    sum to 1."""
    up = np.ones(t.size) if first else _ramp(t - start, width)
    return up if last else up * (1.0 - _ramp(t - end, width))


def _truth(tc: np.ndarray, per_regime: np.ndarray, n_windows: int, window_length: float,
           t0: UTCDateTime) -> pd.DataFrame:
    """Per window: the share of each regime, its majority regime and that share."""
    w = np.minimum((tc // window_length).astype(np.int64), n_windows)
    share = np.stack([np.bincount(w, weights=r, minlength=n_windows + 1)[:n_windows]
                      for r in per_regime], axis=1)
    share /= share.sum(axis=1, keepdims=True)
    step = np.timedelta64(round(window_length * 1e9), "ns")
    t_ns = np.datetime64(t0.ns, "ns")
    table = pd.DataFrame({
        "window_start": [_iso(t_ns + i * step) for i in range(n_windows)],
        "regime": [REGIMES[r] for r in share.argmax(axis=1)],
        "fraction": np.round(share.max(axis=1), 4),
    })
    for r, name in enumerate(REGIMES):
        table[f"share_{name}"] = np.round(share[:, r], 4)
    return table


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def _smooth_noise(n: int, fs: float, period: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise varying on a time scale of ``period`` s: smoothed random knots
    every period / 4 s, linearly interpolated (cheap for long records)."""
    step = period / 4.0 * fs  # samples between knots
    m = max(int(n / step) + 4, 32)
    knots = signal.sosfiltfilt(signal.butter(2, 0.25, output="sos"), rng.standard_normal(m))
    knots /= knots.std() or 1.0
    return np.interp(np.arange(n, dtype=np.float64), np.arange(m) * step, knots)


def _bandpassed(n: int, fs: float, lo: float, hi: float | None, rng: np.random.Generator,
                order: int = 4) -> np.ndarray:
    white = rng.standard_normal(n)
    if hi is None or hi >= fs / 2 * 0.95:
        sos = signal.butter(order, lo, btype="highpass", fs=fs, output="sos")
    else:
        sos = signal.butter(order, [lo, hi], btype="bandpass", fs=fs, output="sos")
    y = signal.sosfilt(sos, white)
    return y / (y.std() or 1.0)


def _background(n: int, fs: float, tc: np.ndarray, s: ExampleSettings,
                rng: np.random.Generator) -> np.ndarray:
    """Drifting microseism + red floor with a daily cycle + cultural noise; always there."""
    m = tc.size
    # microseism: two narrow bands whose balance drifts over days, so its peak moves
    low = _bandpassed(m, COARSE, 0.11, 0.18, rng, order=2)
    high = _bandpassed(m, COARSE, 0.18, 0.30, rng, order=2)
    balance = 0.5 + 0.5 * np.tanh(1.5 * _smooth_noise(m, COARSE, 3 * 86400.0, rng))
    micro = np.sqrt(balance) * low + np.sqrt(1.0 - balance) * high
    micro *= s.microseism_amplitude * np.exp(0.4 * _smooth_noise(m, COARSE, 2 * 86400.0, rng))
    hour = (tc / 3600.0) % 24.0
    daily = 1.0 + 0.3 * np.sin(2 * np.pi * (hour / 24.0 - 0.25))  # noisier by day
    gain = daily * np.exp(0.15 * _smooth_noise(m, COARSE, 6 * 3600.0, rng))
    white = rng.standard_normal(n + 1, dtype=np.float32)
    x = white[1:] + 0.8 * white[:-1]  # red (MA(1)) broadband floor, variance 1.64
    x = x.astype(np.float64) / np.sqrt(1.64)
    pos = np.arange(n, dtype=np.float64) * (COARSE / fs)
    x *= gain[pos.astype(np.int64)]  # piecewise constant over 1/COARSE s: it varies slowly
    x += np.interp(pos, np.arange(m), micro)
    if s.cultural_amplitude > 0:
        x += s.cultural_amplitude * _cultural(n, fs, tc, hour, rng)
    return x * BACKGROUND_COUNTS


def _cultural(n: int, fs: float, tc: np.ndarray, hour: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """Daytime cultural noise: 4-15 Hz hum (06-20 h) plus emergent vehicle passes (Gaussian
    envelopes of ``PASS_FWHM`` s, about 6 per daytime hour)."""
    day = _ramp(hour - 6.0, 1.0) * (1.0 - _ramp(hour - 20.0, 1.0))
    days = tc[-1] / 86400.0
    n_pass = rng.poisson(6 * 14 * days)
    centres = rng.uniform(0, tc[-1], n_pass)
    centres = centres[day[np.minimum((centres * COARSE).astype(np.int64), tc.size - 1)] > 0.5]
    widths = rng.choice(PASS_FWHM, centres.size) / 2.355  # Gaussian sigma (s)
    amps = rng.uniform(0.8, 2.0, centres.size)
    # pulses on the coarse grid: each a Gaussian, summed by a histogram + per-width blur
    envelope = 0.7 * day
    for sigma in np.unique(widths):
        pick = widths == sigma
        impulses = np.bincount((centres[pick] * COARSE).astype(np.int64), weights=amps[pick],
                               minlength=tc.size)[:tc.size]
        k = np.arange(-4 * sigma * COARSE, 4 * sigma * COARSE + 1) / COARSE
        envelope += signal.oaconvolve(impulses, np.exp(-0.5 * (k / sigma) ** 2), "same")
    carrier = _bandpassed(n, fs, 4.0, min(15.0, 0.45 * fs), rng, order=3)
    return carrier * np.interp(np.arange(n) * (COARSE / fs), np.arange(tc.size), envelope)


def _harmonic(n: int, fs: float, rng: np.random.Generator, f0: float, amplitude: float) \
        -> np.ndarray:
    """Fundamental ``f0`` and three overtones, gliding slightly, over a 0.8-2 Hz floor."""
    t = np.arange(n) / fs
    glide = rng.uniform(0.005, 0.015) * np.sin(2 * np.pi * t / rng.uniform(2, 6) / 3600.0
                                             + rng.uniform(0, 2 * np.pi))
    jitter = 0.02 * _smooth_noise(n, fs, 20.0, rng)
    phase = 2 * np.pi * np.cumsum(f0 + glide + jitter) / fs
    amps = (1.0, 0.7, 0.5, 0.3)
    x = sum(a * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
            for k, a in enumerate(amps, start=1))
    wobble = np.exp(0.2 * _smooth_noise(n, fs, 600.0, rng))
    floor = _bandpassed(n, fs, 0.8, 2.0, rng)
    return BACKGROUND_COUNTS * amplitude * (x * wobble + 0.8 * floor)


def _spasmodic(n: int, fs: float, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Band-limited (1.5-2.7 Hz) noise swelling and fading in bursts of about minutes."""
    carrier = _bandpassed(n, fs, 1.5, 2.7, rng)
    envelope = np.exp(0.8 * _smooth_noise(n, fs, rng.uniform(90.0, 240.0), rng))
    return amplitude * BACKGROUND_COUNTS * carrier * envelope / np.sqrt(np.mean(envelope ** 2))


def _swarm(n: int, fs: float, rng: np.random.Generator, s: ExampleSettings) \
        -> tuple[np.ndarray, int]:
    """Volcano-tectonic events: impulsive onsets, exponential codas, Gutenberg-Richter
    amplitudes, 2-8 or 4-15 Hz content (see the module docstring); and their count."""
    rate = rng.uniform(*s.swarm_rate)
    n_events = int(rng.poisson(rate * n / fs / 3600.0))
    onsets = rng.integers(0, n, n_events)
    ratio = s.swarm_max_amplitude / s.swarm_amplitude
    u = rng.random(n_events)  # Pareto (b = 1) truncated at the largest amplitude
    amps = s.swarm_amplitude / (1.0 - u * (1.0 - 1.0 / ratio))
    lo, hi = np.log(s.swarm_coda_seconds)
    taus = np.exp(rng.uniform(lo, hi, n_events))
    # codas on a few e-folding classes (each one recursive filter over the whole span)
    classes = np.geomspace(*s.swarm_coda_seconds, 6)
    cls = np.abs(np.log(taus)[:, None] - np.log(classes)[None, :]).argmin(axis=1)
    band = rng.integers(0, len(SWARM_BANDS), n_events)
    x = np.zeros(n)
    for b, (flo, fhi) in enumerate(SWARM_BANDS):
        envelope = np.zeros(n)
        for c, tau in enumerate(classes):
            pick = (cls == c) & (band == b)
            if pick.any():
                impulses = np.bincount(onsets[pick], weights=amps[pick], minlength=n)
                envelope += signal.lfilter([1.0], [1.0, -np.exp(-1.0 / (tau * fs))], impulses)
        x += _bandpassed(n, fs, flo, min(fhi, 0.45 * fs), rng, order=3) * envelope
    return BACKGROUND_COUNTS * x, n_events


def _teleseisms(x: np.ndarray, fs: float, count: int, rng: np.random.Generator) \
        -> pd.DataFrame:
    """Add ``count`` distant earthquakes to ``x`` (in place): a 0.3-2 Hz P coda decaying
    over minutes and 0.03-0.1 Hz surface waves lasting about half an hour."""
    n = x.size
    origins, amps = [], []
    for _ in range(count):
        length = int(min(5400.0 * fs, n))
        a = int(rng.integers(0, max(1, n - length)))
        t = np.arange(length) / fs
        amp = float(np.exp(rng.uniform(np.log(5.0), np.log(30.0))))
        body = _bandpassed(length, fs, 0.3, 2.0, rng) * np.exp(-t / 300.0) * (t < 1800)
        ts = 900.0  # surface waves arrive after 15 min
        shape = np.exp(-0.5 * ((t - ts - 900.0) / 500.0) ** 2)
        m = int(length / fs * COARSE) + 2
        surface = np.interp(t * COARSE, np.arange(m),
                            _bandpassed(m, COARSE, 0.03, 0.1, rng, order=2))
        x[a:a + length] += BACKGROUND_COUNTS * amp * (body + 4.0 * surface * shape)
        origins.append(a / fs)
        amps.append(amp)
    return pd.DataFrame({"origin": origins, "amplitude": amps})


def _gaps(n_windows: int, nwin: int, rng: np.random.Generator,
          fractions: tuple[float, ...]) -> list[tuple[int, int]]:
    """(start, end) samples of the gaps, each inside one window, away from its ends."""
    count = len(fractions)
    if count == 0:
        return []
    candidates = np.arange(1, n_windows - 1) if n_windows > count + 2 else np.arange(n_windows)
    chosen = np.sort(rng.choice(candidates, size=min(count, candidates.size), replace=False))
    out = []
    for w, frac in zip(chosen, fractions, strict=False):
        length = max(1, int(frac * nwin))
        a = int(w) * nwin + int(rng.integers(nwin // 10, max(nwin // 10 + 1, nwin - length
                                                            - nwin // 10)))
        out.append((a, a + length))
    return sorted(out)


def _stream(day: np.ndarray, t0: UTCDateTime, fs: float) -> Stream:
    """Integer counts of one day, one trace per contiguous (non-NaN) run."""
    st = Stream()
    for a, b in _runs(~np.isnan(day)):
        tr = Trace(np.round(day[a:b]).astype(np.int32), header={
            "network": NETWORK, "station": STATION, "location": LOCATION,
            "channel": CHANNEL, "sampling_rate": fs, "starttime": t0 + a / fs})
        st.append(tr)
    return st


def _iso(t: np.datetime64) -> str:
    return str(t.astype("datetime64[ms]")).removesuffix(".000")
