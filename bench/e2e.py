"""End to end: seisgo's one call against the whole Snakemake velocity run, in one run.

    pip install -c constraints.txt -e ".[dev,bench]"   # seisgo==1.0.0 and its plot stack
    python bench/e2e.py [--models cascadia 40000] [--k 6] [--cores 2] [--n-init N] [--repeat R]

For each model, in this order and in fresh processes:

- **seisgo**: one Python process that imports seisgo, reads the model file with xarray and
  calls ``vpcluster_kmean(lat, lon, dep, vs, ncluster=k)`` with its defaults: figures
  (profiles per cluster and the plotly cluster map, written through kaleido) and the
  result pickle on. seisgo's map draws USGS web tiles under the points; offline (as here)
  kaleido fails on them ("Mapbox error"), so the bench drops that one tile layer from the
  figure (the points, the map and the PNG are still made). With tiles to download seisgo
  would only be slower.
- **workflow**: ``snakemake --cores N`` in an empty scratch folder on the same file,
  ``branches=[velocity]``, ``velocity.methods=[kmeans]``, ``velocity.kmeans.n_clusters=k``
  and everything else the default configuration (n_init 10 unless ``--n-init``): ingest,
  profiles, k-means, figures, run folder, provenance and the HTML report.

Both are timed as whole processes (start-up and imports included); seisgo's call alone is
printed too. Models: ``cascadia`` is the Delph et al. (2018) Cascadia model of
../shared/data, 0..80 km on both sides (966 profiles x 81 depths); a number N is a
synthetic EMC-style netCDF file (``vs(depth, latitude, longitude)`` float32, 109 depths,
NaN outside coverage) with about N profiles, from
:func:`seiscluster.velocity.example.make_example_model`. Timings on a shared machine vary:
compare within one run (the load average is printed).
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

ROOT = Path(__file__).resolve().parents[1]
CASCADIA = ROOT.parent / "shared" / "data" / "velocity" / "Cascadia-ANT+RF-Delph2018.r0.1.nc"

#: The seisgo process: read the file, call vpcluster_kmean with figures and pickle on.
SEISGO = r"""
import sys, time, json
start = time.perf_counter()
import matplotlib
matplotlib.use("Agg")
import plotly.graph_objects as go
_update = go.Figure.update_layout
def _no_tiles(self, *args, **kwargs):  # offline: no web tiles under the map (see bench doc)
    kwargs.pop("mapbox_layers", None)
    return _update(self, *args, **kwargs)
go.Figure.update_layout = _no_tiles
import xarray as xr
from seisgo import clustering
path, variable, k, figbase = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
zrange = json.loads(sys.argv[5])
ds = xr.open_dataset(path)
lat, lon, dep = (ds[c].values for c in ("latitude", "longitude", "depth"))
v = ds[variable].values
call = time.perf_counter()
clustering.vpcluster_kmean(lat, lon, dep, v, ncluster=k, figbase=figbase, zrange=zrange)
end = time.perf_counter()
print(json.dumps({"call": end - call, "inside": end - start}))
"""


def make_model(n_profiles: int, path: Path, n_depth: int = 109) -> int:
    """An EMC-style netCDF file with about ``n_profiles`` complete profiles; returns the
    exact count."""
    from seiscluster.velocity.example import make_example_model

    nan_fraction = 0.1
    nodes = n_profiles / (1 - nan_fraction)
    n_lat = round(np.sqrt(nodes * 0.75))
    n_lon = round(nodes / n_lat)
    ds = make_example_model(n_lat=n_lat, n_lon=n_lon, depth_max=float(n_depth - 1),
                            depth_step=1.0, nan_fraction=nan_fraction, seed=1)
    ds = ds.drop_vars("province")
    ds["vs"] = ds["vs"].astype(np.float32)
    ds.attrs = {"title": f"synthetic EMC-style model, {n_lat} x {n_lon} nodes",
                "Conventions": "CF-1.0", "geospatial_vertical_units": "km"}
    ds.to_netcdf(path, encoding={"vs": {"_FillValue": np.float32(99999.0)}})
    return int((~np.isnan(ds["vs"].values).any(axis=0)).sum())


def run_seisgo(path: Path, variable: str, k: int, folder: Path,
               zrange: list[float] | None) -> dict[str, float]:
    folder.mkdir(parents=True)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", SEISGO, str(path), variable, str(k),
                          str(folder / "kmean"), json.dumps(zrange)], capture_output=True,
                         text=True,
                         cwd=folder, check=False)
    wall = time.perf_counter() - start
    if out.returncode:
        sys.exit(f"seisgo failed:\n{out.stderr[-3000:]}")
    times = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall": wall, **times}


def run_workflow(path: Path, variable: str, k: int, folder: Path, cores: int,
                 n_init: int | None, zrange: list[float] | None) -> tuple[float, int]:
    folder.mkdir(parents=True)
    overrides = ["branches=[velocity]", "velocity.methods=[kmeans]",
                 f"velocity.kmeans.n_clusters={k}", f"data.velocity.path={path}",
                 f"data.velocity.variable={variable}"]
    if zrange is not None:
        overrides.append(f"velocity.profiles.zrange=[{zrange[0]},{zrange[1]}]")
    if n_init is not None:
        overrides.append(f"velocity.kmeans.n_init={n_init}")
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile",
           str(ROOT / "Snakefile"), "--directory", str(folder), "--cores", str(cores),
           "--config", "run=e2e", f"overrides={json.dumps(overrides)}"]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if out.returncode:
        sys.exit(f"workflow failed:\n{out.stderr[-3000:]}")
    jobs = sum(line.startswith("Finished job") or "Finished jobid" in line
               for line in out.stderr.splitlines())
    return wall, jobs


def stage_times(folder: Path) -> str:
    """Wall time of each stage from Snakemake's benchmark files."""
    parts = []
    for tsv in sorted((folder / "results" / "stages").glob("*/*/benchmark.tsv")):
        seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
        parts.append(f"{tsv.parent.parent.name.removeprefix('velocity_')} {seconds:.1f}")
    return ", ".join(parts)


def load() -> str:
    return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cascadia", "40000"],
                        help="'cascadia' and/or approximate profile counts")
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--n-init", type=int, default=None,
                        help="velocity.kmeans.n_init of the workflow (default: the config's)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the scratch folders here")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run seisgo and the workflow this many times, alternating, and "
                             "compare their medians (timings on a shared machine vary 10-30 %%)")
    args = parser.parse_args()
    scratch = Path(args.keep or tempfile.mkdtemp(prefix="e2e-"))
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, --cores {args.cores}, k={args.k}, workflow n_init "
          f"{args.n_init or 'default (10)'}; {load()}")
    try:
        for name in args.models:
            if name == "cascadia":
                if not CASCADIA.is_file():
                    print(f"skipped cascadia: {CASCADIA} is absent")
                    continue
                # 0..80 km: above 0 km (topography) nearly every profile has a NaN
                path, n, zrange = CASCADIA, 966, [0.0, 80.0]
            else:
                path, zrange = scratch / f"model_{name}.nc", None
                n = make_model(int(name), path)
            refs, walls = [], []
            for i in range(args.repeat):
                refs.append(run_seisgo(path, "vs", args.k, scratch / f"seisgo_{name}_{i}",
                                       zrange))
                wall, jobs = run_workflow(path, "vs", args.k, scratch / f"workflow_{name}_{i}",
                                          args.cores, args.n_init, zrange)
                walls.append(wall)
            ref = {key: float(np.median([r[key] for r in refs])) for key in ("wall", "call")}
            wall = float(np.median(walls))
            seconds = " ".join(f"{r['wall']:.2f}" for r in refs)
            each = "" if args.repeat == 1 else (
                f"; each run: seisgo {seconds}, workflow {' '.join(f'{w:.2f}' for w in walls)}")
            print(f"\n{name}: {n} profiles" + ("" if args.repeat == 1 else
                                                f", median of {args.repeat} runs{each}"))
            print(f"  seisgo process {ref['wall']:7.2f} s (vpcluster_kmean call "
                  f"{ref['call']:.2f} s)")
            print(f"  workflow       {wall:7.2f} s ({jobs} jobs; stages: "
                  f"{stage_times(scratch / f'workflow_{name}_{args.repeat - 1}')})")
            print(f"  ratio seisgo process / workflow {ref['wall'] / wall:5.2f}x, "
                  f"seisgo call / workflow {ref['call'] / wall:5.2f}x   ({load()})",
                  flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
