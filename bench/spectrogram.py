"""Spectrogram throughput: days of single-channel data -> 96 x 128 hourly spectrograms.

    python bench/spectrogram.py [--days 30] [--rate 100] [--threads 2] [--short-days 3]

Synthesises ``--days`` day-long miniSEED files at ``--rate`` Hz (the embedded example's
generator, one seed per day, four gaps a day; not timed), then measures in one run:

1. full path: miniSEED files -> read, preprocess (linear detrend, 5 % taper, 0.5 Hz
   high-pass), spectrograms, global normalisation -> Zarr store and skipped_windows.csv:
   the ``spectrograms`` stage, dask over days on ``--threads`` threads; once with
   seiscluster's vectorised kernel and once with the kernel swapped for a straightforward
   per-window ``scipy.signal.spectrogram`` loop doing the same band selection and resampling
   to 96 x 128 (windows with a gap fall back to seiscluster's code in both runs);
2. kernel only (one thread, the same preprocessed days in memory): hourly windows, and
   60 s windows (``--short-days`` days; nperseg 512) where the per-window loop pays its
   Python overhead 1440 times a day;
3. the largest difference between the two kernels (log10 power, float32 as stored).

Reported: days of data per second of wall time and the ratios (scipy loop / seiscluster).
Target: 30 days of 100 Hz through the full path in under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import xarray as xr
from obspy import UTCDateTime
from scipy import signal
from threadpoolctl import threadpool_limits

from seiscluster.tremor import spectrogram as sp
from seiscluster.tremor import stages, synthetic
from seiscluster.tremor import waveforms as wf

WAVEFORMS = {"source": "files", "files": [], "format": None, "network": "*", "station": "*",
             "location": "*", "channel": "*", "starttime": None, "endtime": None,
             "stationxml": None}
PREPROCESS = {"detrend": "linear", "taper": 0.05, "freqmin": 0.5, "freqmax": None,
              "resample": None, "decimate": None, "remove_response": False,
              "response_output": "VEL", "pre_filt": None, "water_level": 60.0,
              "max_gap_fraction": 0.05, "channels": "stack"}
SPECTROGRAM = {"window_length": 3600.0, "window_step": 3600.0,
               "origin": "2000-01-01T00:00:00", "nperseg": 1024, "noverlap": None,
               "taper": "hann", "fmin": 1.0, "fmax": 4.0, "n_freq": 96, "n_time": 128,
               "frequency_scale": "linear", "power": "log10", "normalise": "global"}
SHORT = {**SPECTROGRAM, "window_length": 60.0, "window_step": 60.0, "nperseg": 512}
_VECTORISED = sp.compute_windows


def synthesise(folder: Path, days: int, rate: float) -> list[str]:
    """Day-long miniSEED files (one synthetic day per seed, gaps included)."""
    files = []
    for d in range(days):
        start = UTCDateTime("2021-03-12") + d * 86400
        ex = synthetic.make_example(days=1, sampling_rate=rate, starttime=str(start), seed=d)
        files += map(str, synthetic.write_example(ex, folder / f"day{d:03d}",
                                                  folder / f"truth{d:03d}.csv"))
    return files


def scipy_loop(segments: list[wf.Segment], starts: np.ndarray, plan: sp.Plan) -> np.ndarray:
    """Per-window scipy.signal.spectrogram, the same band bins and resampling matrices:
    linear power of the windows lying in one segment clear of its taper, others NaN."""
    s = plan.settings
    n = round(s.window_length * plan.fs)
    out = np.full((starts.size, s.n_freq, s.n_time), np.nan)
    for i, t0 in enumerate(starts):
        for seg in segments:
            a = round((int(t0) - seg.start_ns) * plan.fs / 1e9)
            if seg.edge <= a and a + n <= seg.data.size - seg.edge:
                _, _, sxx = signal.spectrogram(seg.data[a:a + n], plan.fs, window=s.taper,
                                               nperseg=s.nperseg, noverlap=s.nperseg - s.hop)
                out[i] = plan.frequency_matrix @ sxx[plan.bins] @ plan.time_matrix.T
                break
    return out


def scipy_compute_windows(segments, starts, plan, max_gap_fraction) -> sp.Windows:
    """``compute_windows`` with the per-window scipy loop as its kernel."""
    values = sp.to_log(scipy_loop(segments, starts, plan), plan.settings.power) \
        .astype(np.float32)
    done = np.isfinite(values).all(axis=(1, 2))
    res = _VECTORISED(segments, starts[~done], plan, max_gap_fraction)  # windows with gaps
    mean, m2 = sp.normalisation_statistics(values)
    values[~done], mean[~done], m2[~done] = res.log_power, res.mean, res.m2
    reason = np.zeros(starts.size, np.int8)
    reason[~done] = res.reason
    interp = np.zeros(starts.size)
    interp[~done] = res.interpolated_fraction
    missing = sp.missing_fraction(segments, starts, plan.settings.length_ns)
    return sp.Windows(values, missing, interp, reason, mean, m2)


def full_path(work: Path, name: str, files: list[str], threads: int, kernel) -> float:
    sp.compute_windows = kernel
    try:
        t0 = time.perf_counter()
        stages.spectrograms(spectrograms=str(work / f"{name}.zarr"),
                            skipped=str(work / f"{name}.csv"),
                            waveforms={**WAVEFORMS, "files": files}, preprocess=PREPROCESS,
                            spectrogram=SPECTROGRAM, threads=threads)
        return time.perf_counter() - t0
    finally:
        sp.compute_windows = _VECTORISED


def kernels(files: list[str], config: dict, days: int) -> tuple[float, float, float, int]:
    """One thread, the preprocessed days in memory: (ours s, scipy s, max diff, windows)."""
    settings = sp.SpectrogramSettings.from_config(config)
    source = wf.FileSource(files, None, wf.codes_of(WAVEFORMS))
    job = sp.prepare_job(source, wf.Preprocess.from_config(PREPROCESS), settings)
    plan = job.plans[job.channels[0]]
    per_day = round(86400 / settings.window_step)
    starts = sp.window_starts(source.start_ns, source.end_ns - 1, settings)[:days * per_day]
    ours = ref = diff = 0.0
    n = 0
    with threadpool_limits(1):
        for i in range(0, starts.size, per_day):
            block = starts[i:i + per_day]
            stream = source.read(int(block[0]) - job.pad_ns,
                                 int(block[-1]) + settings.length_ns + job.pad_ns)
            segments = wf.preprocess_stream(stream, job.channels[0], job.prep,
                                            job.pad_ns / 1e9, settings.nperseg)
            for which in ("ours", "scipy") if i % 2 == 0 else ("scipy", "ours"):  # fair order
                t0 = time.perf_counter()
                if which == "ours":
                    res = _VECTORISED(segments, block, plan, job.prep.max_gap_fraction)
                    ours += time.perf_counter() - t0
                else:
                    loop = sp.to_log(scipy_loop(segments, block, plan), settings.power)
                    loop = loop.astype(np.float32)
                    ref += time.perf_counter() - t0
            both = np.isfinite(loop).all(axis=(1, 2)) & (res.interpolated_fraction == 0)
            n += int(both.sum())
            if both.any():
                diff = max(diff, float(np.abs(res.log_power[both] - loop[both]).max()))
    return ours, ref, diff, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--short-days", type=int, default=3,
                        help="days for the 60 s window kernel comparison")
    parser.add_argument("--workdir", default=None, help="keep the files here (default: temp)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="seiscluster-bench-"))
    try:
        run(work, args)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def row(label: str, days: float, ours: float, ref: float) -> None:
    print(f"{label:<46} seiscluster {ours:7.2f} s = {days / ours:6.2f} days/s   "
          f"scipy loop {ref:7.2f} s = {days / ref:6.2f} days/s   ratio {ref / ours:5.2f}x")


def run(work: Path, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    files = synthesise(work / "mseed", args.days, args.rate)
    print(f"input: {args.days} day-long miniSEED files, 1 channel at {args.rate:g} Hz "
          f"({sum(Path(f).stat().st_size for f in files) / 2**20:.0f} MiB, made in "
          f"{time.perf_counter() - start:.0f} s, not timed); {args.threads} thread(s), "
          f"{os.cpu_count()} CPU(s)\n")
    for kernel in (_VECTORISED, scipy_compute_windows):  # warm-up (imports, caches)
        full_path(work, "warm", files[:1], args.threads, kernel)
    ours_full = full_path(work, "ours", files, args.threads, _VECTORISED)
    scipy_full = full_path(work, "scipy", files, args.threads, scipy_compute_windows)
    a = xr.open_zarr(work / "ours.zarr")["spectrogram"].values
    b = xr.open_zarr(work / "scipy.zarr")["spectrogram"].values
    ours_k, scipy_k, diff, n = kernels(files, SPECTROGRAM, args.days)
    short = min(args.short_days, args.days)
    ours_s, scipy_s, diff_s, n_s = kernels(files, SHORT, short)

    d = args.days
    row(f"full path, miniSEED -> Zarr ({args.threads} threads)", d, ours_full, scipy_full)
    row("kernel only, 1 h windows (1 thread)", d, ours_k, scipy_k)
    row(f"kernel only, 60 s windows (1 thread, {short} d)", short, ours_s, scipy_s)
    print(f"\nlargest |log10 power| difference between the kernels (float32): {diff:.1e} "
          f"over {n} hourly windows, {diff_s:.1e} over {n_s} 60 s windows; final stores "
          f"{'identical' if np.array_equal(a, b, equal_nan=True) else 'differ'} "
          f"(max {np.nanmax(np.abs(a - b)):.1e} after normalisation, float32)")
    print(f"target: {d} days of {args.rate:g} Hz in under {60 * d / 30:g} s: "
          f"{'met' if ours_full < 60 * d / 30 else 'NOT met'} ({ours_full:.1f} s)")


if __name__ == "__main__":
    main()
