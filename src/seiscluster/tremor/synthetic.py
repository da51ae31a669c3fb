"""Deterministic synthetic continuous records of known tremor regimes (the embedded example).

One channel (``XX.SYN..HHZ``) of ``days`` days at ``sampling_rate`` Hz, written as day-long
miniSEED files (STEIM2 counts), made of four regimes that switch in blocks of 3 to 12 whole
windows (hours), so that every window belongs to exactly one regime (``truth.csv``):

- ``background``: coloured noise only: a microseism peak (0.1-0.35 Hz), a red broadband
  floor with a daily (cultural) cycle and slowly varying levels. It is present everywhere.
- ``harmonic_tremor``: a fundamental and three overtones over a 0.8-2 Hz noise floor. One
  resonator makes every episode: the fundamental (1-1.5 Hz) is drawn once per record and
  glides by at most 0.015 Hz over hours, plus a little phase noise.
- ``spasmodic_tremor``: band-limited 1.5-2.7 Hz noise whose amplitude swells and fades in
  bursts of tens of seconds to minutes (log-normal envelope).
- ``earthquake_swarm``: 150 to 300 events per hour with impulsive onsets, exponential codas
  (e-folding 1.5, 3 or 6 s) and Gutenberg-Richter-like amplitudes; a 3-10 Hz carrier (3rd
  order), so the power rises with frequency through the 1-4 Hz band, volcano-tectonic-like.

In the default analysis band (1-4 Hz) each regime is thus distinct from the others by about
as much as from the background, in where its power lies (harmonic: below 2 Hz and on lines,
spasmodic: 1.5-2.7 Hz, swarm: rising to 4 Hz) and in its time structure (steady lines,
swells of minutes, dense vertical stripes, smooth), so that the k scan of the example can
find four clusters. Each block has its own amplitude (log-uniform, 1 to 1.5 times its
regime's level). A few short gaps (0.5 %, 2 % and 4 % of a window) and one long one (half a
window) are cut out so that the gap handling is exercised. Everything follows from
``seed``; generation is vectorised (no per-sample loops).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
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
#: Block lengths, in windows (inclusive).
BLOCK_WINDOWS = (3, 12)
#: Gap lengths as fractions of a window: three below the default max_gap_fraction (0.05),
#: one above it.
GAP_FRACTIONS = (0.005, 0.02, 0.04, 0.5)
#: Background level (counts, standard deviation of the 1-4 Hz floor).
BACKGROUND_COUNTS = 150.0


@dataclass
class Example:
    """Synthetic samples (NaN in gaps), their start and rate, and the true regimes."""

    data: np.ndarray
    starttime: UTCDateTime
    sampling_rate: float
    truth: pd.DataFrame  # window_start, regime
    gaps: pd.DataFrame  # start, end (UTC ISO strings), window_start, fraction


def make_example(days: int = 14, sampling_rate: float = 25.0,
                 starttime: str = "2021-03-12T00:00:00", seed: int = 0,
                 window_length: float = 3600.0) -> Example:
    """Generate the synthetic record (see the module docstring)."""
    fs = float(sampling_rate)
    if not isinstance(days, (int, np.integer)) or days < 1:
        raise InputError(f"{KEY}.days: expected a whole number of days >= 1, got {days!r}.")
    if fs < 12.0:
        raise InputError(f"{KEY}.sampling_rate: {fs:g} Hz is too low for the example's "
                         "1-10 Hz signals; use at least 12 Hz (the default is 25 Hz).")
    try:
        t0 = UTCDateTime(starttime)
    except Exception:
        raise InputError(f"{KEY}.starttime: {starttime!r} is not an ISO 8601 time.") from None
    n = round(days * 86400 * fs)
    nwin_samples = round(window_length * fs)
    n_windows = n // nwin_samples
    if n_windows < 1:
        raise InputError(f"{KEY}.days: {days} day(s) hold no whole window of "
                         f"{window_length:g} s.")
    rng = np.random.default_rng(seed)
    regime = _schedule(n_windows, rng)
    x = _background(n, fs, rng)
    f0 = rng.uniform(1.0, 1.5)  # one resonator: every harmonic episode shares its fundamental
    for code, make in ((1, partial(_harmonic, f0=f0)), (2, _spasmodic), (3, _swarm)):
        for a, b in _runs(regime == code):
            a, b = a * nwin_samples, b * nwin_samples
            x[a:b] += _fade(make(b - a, fs, rng) * _level(rng), fs)
    gaps = _gaps(n_windows, nwin_samples, rng, days)
    for a, b in gaps:
        x[a:b] = np.nan
    step = np.timedelta64(round(window_length * 1e9), "ns")
    t_ns = np.datetime64(t0.ns, "ns")
    truth = pd.DataFrame({
        "window_start": [_iso(t_ns + i * step) for i in range(n_windows)],
        "regime": [REGIMES[r] for r in regime],
    })
    gap_table = pd.DataFrame({
        "start": [_iso(t_ns + np.timedelta64(int(a * 1e9 / fs), "ns")) for a, _ in gaps],
        "end": [_iso(t_ns + np.timedelta64(int(b * 1e9 / fs), "ns")) for _, b in gaps],
        "window_start": [_iso(t_ns + (a // nwin_samples) * step) for a, _ in gaps],
        "fraction": [(b - a) / nwin_samples for a, b in gaps],
    })
    return Example(x, t0, fs, truth, gap_table)


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


def example_config(example: Mapping[str, Any] | None) -> dict[str, Any]:
    """``data.waveforms.example`` as keyword arguments of :func:`make_example`."""
    cfg = dict(example or {})
    unknown = sorted(set(cfg) - {"days", "sampling_rate", "starttime", "seed"})
    if unknown:
        raise InputError(f"{KEY}.{unknown[0]}: unknown key; expected days, sampling_rate, "
                         "starttime, seed.")
    return cfg


# ----------------------------------------------------------------------------- the parts


def _schedule(n_windows: int, rng: np.random.Generator) -> np.ndarray:
    """Regime code per window: blocks of 3-12 windows, regimes cycling through shuffled
    permutations (balanced, never the same regime twice in a row)."""
    lengths = []
    while sum(lengths) < n_windows:
        lengths.append(int(rng.integers(BLOCK_WINDOWS[0], BLOCK_WINDOWS[1] + 1)))
    codes: list[int] = []
    while len(codes) < len(lengths):
        perm = list(rng.permutation(len(REGIMES)))
        if codes and perm[0] == codes[-1]:
            perm.reverse()
        codes.extend(perm)
    return np.repeat(codes[:len(lengths)], lengths)[:n_windows].astype(np.int64)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def _level(rng: np.random.Generator) -> float:
    """Amplitude of one block, relative to the background (log-uniform)."""
    return float(np.exp(rng.uniform(np.log(1.0), np.log(1.5))))


def _fade(x: np.ndarray, fs: float, seconds: float = 20.0) -> np.ndarray:
    n = min(int(seconds * fs), x.size // 2)
    if n > 0:
        ramp = 0.5 * (1 - np.cos(np.pi * np.arange(n) / n))
        x[:n] *= ramp
        x[x.size - n:] *= ramp[::-1]
    return x


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


def _background(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Microseism + red broadband floor with a daily cycle; always present."""
    coarse = 2.0  # Hz: the microseism and the slow gains are made at 2 Hz and interpolated
    m = int(n / fs * coarse) + 2
    t = np.arange(m) / coarse
    micro = _bandpassed(m, coarse, 0.1, 0.35, rng, order=2)
    micro *= 4.0 * np.exp(0.4 * _smooth_noise(m, coarse, 2 * 86400.0, rng))
    daily = 1.0 + 0.3 * np.sin(2 * np.pi * (t / 86400.0 - 0.25))  # noisier by day
    gain = daily * np.exp(0.15 * _smooth_noise(m, coarse, 6 * 3600.0, rng))
    white = rng.standard_normal(n + 1, dtype=np.float32)
    x = white[1:] + 0.8 * white[:-1]  # red (MA(1)) broadband floor, variance 1.64
    x = x.astype(np.float64) / np.sqrt(1.64)
    pos = np.arange(n, dtype=np.float64) * (coarse / fs)
    x *= gain[pos.astype(np.int64)]  # piecewise constant over 1/coarse s: it varies slowly
    x += np.interp(pos, np.arange(m), micro)
    x *= BACKGROUND_COUNTS
    return x


def _harmonic(n: int, fs: float, rng: np.random.Generator, f0: float) -> np.ndarray:
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
    return BACKGROUND_COUNTS * (5.0 * x * wobble + 4.0 * floor)


def _spasmodic(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Band-limited (1.5-2.7 Hz) noise swelling and fading in bursts of about minutes."""
    carrier = _bandpassed(n, fs, 1.5, 2.7, rng)
    envelope = np.exp(0.8 * _smooth_noise(n, fs, rng.uniform(90.0, 240.0), rng))
    return 6.0 * BACKGROUND_COUNTS * carrier * envelope / np.sqrt(np.mean(envelope ** 2))


def _swarm(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Many short events: impulsive onsets, exponential codas, power rising with frequency
    from 1 Hz (volcano-tectonic events are richer above 3 Hz than tremor)."""
    hours = n / fs / 3600.0
    n_events = max(1, int(rng.poisson(rng.uniform(150, 300) * hours)))
    onsets = rng.integers(0, n, n_events)
    amps = np.minimum((1.0 - rng.random(n_events)) ** -1.0, 10.0)  # Pareto, b ~ 1
    taus = rng.choice([1.5, 3.0, 6.0], n_events)
    envelope = np.zeros(n)
    for tau in (1.5, 3.0, 6.0):
        pick = taus == tau
        impulses = np.bincount(onsets[pick], weights=amps[pick], minlength=n)
        envelope += signal.lfilter([1.0], [1.0, -np.exp(-1.0 / (tau * fs))], impulses)
    carrier = _bandpassed(n, fs, 3.0, min(10.0, 0.45 * fs), rng, order=3)
    return 10.0 * BACKGROUND_COUNTS * carrier * envelope


def _gaps(n_windows: int, nwin: int, rng: np.random.Generator, days: int) \
        -> list[tuple[int, int]]:
    """(start, end) samples of the gaps, each inside one window, away from midnight."""
    count = len(GAP_FRACTIONS)
    candidates = np.arange(1, n_windows - 1) if n_windows > count + 2 else np.arange(n_windows)
    chosen = np.sort(rng.choice(candidates, size=min(count, candidates.size), replace=False))
    out = []
    for w, frac in zip(chosen, GAP_FRACTIONS, strict=False):
        length = max(1, int(frac * nwin))
        a = int(w) * nwin + int(rng.integers(nwin // 10, max(nwin // 10 + 1, nwin - length
                                                            - nwin // 10)))
        out.append((a, a + length))
    return out


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
