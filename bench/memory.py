"""Peak memory of the profile and spectrogram stages: bounded by the chunk size, not the input.

    python bench/memory.py [--threads 2] [--days 30] [--rate 100] [--workdir DIR]
                           [--stages velocity tremor]

Every case runs the stage function in a fresh Python process that imports only that stage's
module, and reports that process's peak resident set size (``VmHWM``), the part above its
peak after the imports, and its RSS once the stage has returned (``VmRSS``: what the process
still holds, freed memory that the allocator kept or data that something still refers to).
Both are read from ``/proc/self/status`` (Linux), not ``ru_maxrss``: Linux carries the
parent's peak into a child's ``ru_maxrss`` across fork and exec, which would hide any case
whose peak is below this script's own (making the inputs).

1. velocity: ``seiscluster.velocity.stages.profiles`` (model.nc -> profiles.nc, local
   threads) on synthetic float32 models of 50 depths with 5 % NaN nodes, 500 x 500 and
   1000 x 1000 nodes (250,000 and 1,000,000 profiles), at two ``compute.profiles_chunk``
   sizes, and with the whole model as one chunk (the reference: what holding the model costs);
2. tremor: ``seiscluster.tremor.stages.spectrograms`` (day-long miniSEED files -> Zarr) on
   ``--days / 3`` and ``--days`` days of one channel at ``--rate`` Hz (bench/spectrogram.py's
   synthetic records), at ``compute.spectrogram_block_days`` 1 and 3.

The inputs are made first (not measured). Peak memory should change with the chunk size and
stay flat as the input grows four-fold (velocity) or three-fold (tremor).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_DEPTH = 50
NAN_FRACTION = 0.05


def make_model(path: Path, n: int, seed: int = 0) -> None:
    """An n x n x 50 float32 netCDF model (vs in km/s, depth km), written slab by slab."""
    import netCDF4

    rng = np.random.default_rng(seed)
    depth = np.linspace(0.0, 98.0, N_DEPTH)
    with netCDF4.Dataset(path, "w") as nc:
        nc.velocity_variable = "vs"
        for dim, size in (("depth", N_DEPTH), ("latitude", n), ("longitude", n)):
            nc.createDimension(dim, size)
        coords = {"depth": depth, "latitude": np.linspace(30, 50, n),
                  "longitude": np.linspace(-130, -110, n)}
        for dim, values in coords.items():
            nc.createVariable(dim, "f8", (dim,))[:] = values
        var = nc.createVariable("vs", "f4", ("depth", "latitude", "longitude"),
                                fill_value=np.float32(np.nan))
        var.units = "km/s"
        for a in range(0, n, 100):
            rows = min(100, n - a)
            slab = 3.0 + depth[:, None, None] / 40 + rng.normal(0, 0.05, (N_DEPTH, rows, n))
            slab[:, rng.random((rows, n)) < NAN_FRACTION] = np.nan
            var[:, a:a + rows, :] = slab.astype(np.float32)


def child(args: argparse.Namespace) -> None:
    """Run one case in this (fresh) process; print its memory figures as JSON."""
    case = json.loads(args.case)
    if case["kind"] == "velocity":
        from seiscluster.velocity import stages as velocity
    else:
        from seiscluster.tremor import stages as tremor

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from spectrogram import PREPROCESS, SPECTROGRAM, WAVEFORMS

    baseline = memory_mb("VmHWM")
    start = time.perf_counter()
    if case["kind"] == "velocity":
        velocity.profiles(model=case["model"], profiles=case["out"], threads=case["threads"],
                          compute={"profiles_chunk": case["chunk"]})
    else:
        tremor.spectrograms(spectrograms=case["out"], skipped=case["out"] + ".csv",
                            waveforms={**WAVEFORMS, "files": case["files"]},
                            preprocess=PREPROCESS, spectrogram=SPECTROGRAM,
                            files=case["files"], threads=case["threads"],
                            compute={"spectrogram_block_days": case["block_days"]})
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_mb": memory_mb("VmHWM"), "imports_mb": baseline,
                      "after_mb": memory_mb("VmRSS"), "seconds": seconds}))


def memory_mb(field: str) -> float:
    """This process's ``VmHWM`` (peak resident set size) or ``VmRSS`` (now), in MB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status
                    if line.startswith(field + ":")) / 1024


def measure(case: dict) -> dict:
    """Memory figures of one case, run in a fresh process."""
    proc = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    out = Path(case["out"])
    if out.is_dir():
        shutil.rmtree(out)
    out.unlink(missing_ok=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def velocity_cases(work: Path, threads: int) -> None:
    print(f"velocity profiles stage: model.nc (float32, {N_DEPTH} depths, "
          f"{NAN_FRACTION:.0%} NaN nodes) -> profiles.nc (float64), {threads} threads")
    print(f"{'nodes':>10} {'model MB':>9} {'chunk':>10} {'peak RSS MB':>12} "
          f"{'above imports MB':>17} {'RSS after MB':>13} {'seconds':>8}")
    above = {}
    for n in (500, 1000):
        model = work / f"model{n}.nc"
        make_model(model, n)
        for chunk in (10_000, 100_000, n * n):
            r = measure({"kind": "velocity", "model": str(model), "chunk": chunk,
                         "threads": threads, "out": str(work / "profiles.nc")})
            above[n, chunk] = r["peak_mb"] - r["imports_mb"]
            label = "whole" if chunk == n * n else f"{chunk:,}"
            print(f"{n * n:>10,} {model.stat().st_size / 2**20:>9.0f} {label:>10} "
                  f"{r['peak_mb']:>12.0f} {above[n, chunk]:>17.0f} {r['after_mb']:>13.0f} "
                  f"{r['seconds']:>8.1f}")
        model.unlink()
    for chunk in (10_000, 100_000):
        print(f"chunk {chunk:,}: 4x the model -> {above[1000, chunk] / above[500, chunk]:.2f}x "
              "the memory above the imports")
    print(f"whole model as one chunk: 4x the model -> "
          f"{above[1000, 1000**2] / above[500, 500**2]:.2f}x; at 1,000,000 nodes the 10,000 "
          f"chunks use {above[1000, 1000**2] / above[1000, 10_000]:.1f}x less than one chunk\n")


def tremor_cases(work: Path, days: int, rate: float, threads: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from spectrogram import synthesise

    start = time.perf_counter()
    files = synthesise(work / "mseed", days, rate)
    size = sum(Path(f).stat().st_size for f in files) / 2**20
    print(f"spectrogram stage: {days} day-long miniSEED files of one channel at {rate:g} Hz "
          f"({size:.0f} MiB, made in {time.perf_counter() - start:.0f} s) -> Zarr, "
          f"hourly 96 x 128 windows, {threads} threads")
    print(f"{'days':>6} {'block days':>11} {'peak RSS MB':>12} {'above imports MB':>17} "
          f"{'RSS after MB':>13} {'seconds':>8}")
    above = {}
    short = max(1, days // 3)
    for n in (short, days):
        for block in (1, 3):
            r = measure({"kind": "tremor", "files": files[:n], "block_days": block,
                         "threads": threads, "out": str(work / "spectrograms.zarr")})
            above[n, block] = r["peak_mb"] - r["imports_mb"]
            print(f"{n:>6} {block:>11} {r['peak_mb']:>12.0f} {above[n, block]:>17.0f} "
                  f"{r['after_mb']:>13.0f} {r['seconds']:>8.1f}")
    for block in (1, 3):
        print(f"block {block} day(s): {days / short:.0f}x the days -> "
              f"{above[days, block] / above[short, block]:.2f}x the memory above the imports")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="work folder (default: temporary)")
    parser.add_argument("--stages", nargs="+", choices=("velocity", "tremor"),
                        default=["velocity", "tremor"], help="which stages to measure")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case
    args = parser.parse_args()
    if args.case:
        child(args)
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="seiscluster-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"{os.cpu_count()} CPU(s); peak RSS (VmHWM) of a fresh process per case\n")
        if "velocity" in args.stages:
            velocity_cases(work, args.threads)
        if "tremor" in args.stages:
            tremor_cases(work, args.days, args.rate, args.threads)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
