"""The whole default run under faults: determinism, and interruption of every long stage.

Both tests run README command 1 (``snakemake --cores 2``, the default configuration: both
branches on the embedded example) in fresh working directories and compare with one
uninterrupted run, shared through a module fixture, so the file costs about three default
runs (a default run takes about 2 minutes on two quiet cores).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
from workflow_runs import default_command

from seiscluster.workflow import clear_leftovers

RUN = "default"
#: Seconds a whole default run may take on a busy machine.
RUN_TIMEOUT = 3600
#: Products that must be found in a default run folder (so no comparison is vacuous): the
#: label tables, the datasets holding the tremor k-means and DEC labels, and the stores.
EXPECTED = {
    "velocity/kmeans/cluster_map.csv", "velocity/som/cluster_map.csv",
    "tremor/dec/labels.csv", "velocity/model.nc", "velocity/profiles.nc",
    "velocity/kmeans/clusters.nc", "velocity/som/clusters.nc", "tremor/kscan/embeddings.nc",
    "tremor/dec/assignments.nc", "tremor/spectrograms.zarr",
}
#: Table columns holding wall times (they differ between runs by nature).
WALL_TIME = ("seconds",)
#: Hidden names that are part of finished products (Zarr metadata, Snakemake's marker of a
#: directory output); any other hidden entry under results/ is a temporary of a write.
HIDDEN_PRODUCTS = {".zattrs", ".zarray", ".zgroup", ".zmetadata", ".snakemake_timestamp"}


def run_to_end(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """README command 1 in ``workdir``, to its end."""
    return subprocess.run(default_command(workdir, *args), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """Run folder of an uninterrupted default run in a fresh working directory."""
    workdir = tmp_path_factory.mktemp("default")
    start = time.monotonic()
    proc = run_to_end(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"uninterrupted default run: {time.monotonic() - start:.0f} s")
    return workdir / "results" / RUN


# ------------------------------------------------------------------------ comparing runs


def products(run: Path) -> dict[str, Path]:
    """The tables (CSV) and datasets (NetCDF, Zarr) of a run folder by relative path, found
    by walking it through its links into the stage store. Lightning's logs under
    ``checkpoints/`` are not products: they record each attempt of the pretraining."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(run, followlinks=True):
        here = Path(folder)
        rel = here.relative_to(run)
        found |= {(rel / d).as_posix(): here / d for d in dirs if d.endswith(".zarr")}
        dirs[:] = [d for d in dirs if not d.endswith(".zarr") and d != "checkpoints"]
        found |= {(rel / f).as_posix(): here / f for f in files
                  if f.endswith((".csv", ".nc"))}
    return found


def read_product(path: Path) -> pd.DataFrame | xr.Dataset:
    """A table less its wall times, or a dataset (data variables, coordinates and their
    attributes) less its global attributes, which hold provenance, times and hosts."""
    if path.suffix == ".csv":
        table = pd.read_csv(path)
        return table.drop(columns=[c for c in WALL_TIME if c in table])
    opener = xr.open_zarr if path.suffix == ".zarr" else xr.open_dataset
    with opener(path) as ds:
        data = ds.load()
    data.attrs = {}
    return data


def differences(first: Path, second: Path) -> list[str]:
    """Products of run folder ``first`` that ``second`` lacks or holds with other values."""
    a, b = products(first), products(second)
    missing = set(EXPECTED) - set(a)
    assert not missing, f"the walk of {first} did not find {sorted(missing)}"
    found = [f"{rel}: only in one run" for rel in sorted(set(a) ^ set(b))]
    for rel in sorted(set(a) & set(b)):
        x, y = read_product(a[rel]), read_product(b[rel])
        try:
            if isinstance(x, pd.DataFrame):
                pd.testing.assert_frame_equal(x, y, check_exact=True)
            else:
                xr.testing.assert_identical(x, y)
        except AssertionError as err:
            found.append(f"{rel}: {str(err)[:500]}")
    return found


def leftovers(results: Path) -> list[Path]:
    """Temporaries under ``results``: every write of the package goes through a hidden
    name beside its target (``.NAME.*``), renamed onto it when complete."""
    return sorted(p for p in results.rglob(".*") if p.name not in HIDDEN_PRODUCTS)


@pytest.mark.slow
def test_two_default_runs_give_identical_labels_and_data(uninterrupted, tmp_path):
    proc = run_to_end(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert differences(uninterrupted, tmp_path / "results" / RUN) == []


# ------------------------------------------------------------------------- interruptions

#: A write through seiscluster.fileio.atomic_path that waits to be killed.
WRITER = """
import sys, time
from seiscluster.fileio import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half")
    print("writing", flush=True)
    time.sleep(600)
"""


def test_a_job_removes_what_a_killed_attempt_left_beside_its_outputs(tmp_path, caplog):
    out = tmp_path / "stage" / "table[1].csv"  # a name with glob characters
    with subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE,
                          text=True) as writer:
        assert writer.stdout.readline() == "writing\n"
        writer.kill()
    (left,) = out.parent.iterdir()
    assert left.name.startswith(".table[1].csv.") and not out.exists()
    store = out.parent / "spectrograms.zarr"
    (out.parent / ".spectrograms.zarr.raw-x1y2" / "logpower").mkdir(parents=True)
    kept = [out.parent / ".other.csv.abc.tmp", out.parent / "table1.csv"]  # not its outputs'
    for path in kept:
        path.write_text("")
    with caplog.at_level(logging.INFO, logger="seiscluster"):
        clear_leftovers([str(out), str(store)])
    assert sorted(out.parent.iterdir()) == sorted(kept)
    assert caplog.text.count("left by an interrupted earlier attempt") == 2
    clear_leftovers([str(tmp_path / "absent" / "x.nc")])  # no folder yet: nothing to do


@dataclass(frozen=True)
class Kill:
    """Interrupt the run with ``signal`` once ``marker`` (a glob in the stage's keyed
    folder) shows that the stage's job is under way."""

    stage: str
    marker: str
    signal: signal.Signals


#: The long stages of the default run and the signs that their job is under way: a
#: temporary being written, a training checkpoint, or the stage's log, which the job opens
#: when its stage function starts (after the imports that take most of a velocity job).
#: The velocity stages then compute for 0.5 to 2.5 s, which a 20 ms poll catches; a stage
#: that finished before it could be killed fails the test (it is never counted as killed).
#: SIGKILL is a hard crash (the OOM killer, a cluster's time limit), SIGINT a Ctrl-C.
KILLS = (
    Kill("tremor_example", ".waveforms.*", signal.SIGKILL),  # writing the day files
    Kill("velocity_profiles", "velocity_profiles.log", signal.SIGINT),
    Kill("velocity_som", "velocity_som.log", signal.SIGKILL),
    Kill("tremor_spectrograms", ".spectrograms.zarr.tmp-*", signal.SIGKILL),  # the store
    Kill("tremor_pretrain", "checkpoints/last.ckpt", signal.SIGKILL),  # after an epoch
    Kill("velocity_elbow", "velocity_elbow.log", signal.SIGINT),
    Kill("velocity_kmeans", "velocity_kmeans.log", signal.SIGKILL),
    Kill("tremor_embed_kscan", "tremor_embed_kscan.log", signal.SIGINT),
    Kill("tremor_finetune", "dec_last_good.pt", signal.SIGINT),  # between DEC updates
    Kill("tremor_deep_figures", "tremor_deep_figures.log", signal.SIGKILL),
)
POLL = 0.02


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def finished(stages: Path, stage: str) -> bool:
    """Whether a job of ``stage`` finished (its provenance record is its last output)."""
    return any(stages.glob(f"{stage}/*/provenance.json"))


def markers(stages: Path, kills: list[Kill]) -> dict[Path, int]:
    """The markers of ``kills`` there are, with their modification times."""
    found = {}
    for kill in kills:
        for path in stages.glob(f"{kill.stage}/*/{kill.marker}"):
            with contextlib.suppress(FileNotFoundError):
                found[path] = path.stat().st_mtime_ns
    return found


def under_way(stages: Path, kills: list[Kill], before: dict[Path, int]) -> list[Kill]:
    """The stages of ``kills`` whose job shows a marker made or changed since ``before``
    (a job's log is removed by Snakemake and made again when the job reruns; a checkpoint
    is rewritten) and has not finished."""
    return [k for k in kills if not finished(stages, k.stage) and any(
        before.get(path) != mtime for path, mtime in markers(stages, [k]).items())]


@dataclass
class Attempt:
    """One start of the command: the stages caught under way and killed (none when the
    command ended by itself), the kill time, and what the command printed."""

    killed: list[Kill]
    at_ns: int
    returncode: int
    output: str


def attempt(workdir: Path, kills: list[Kill], out: Path, *args: str) -> Attempt:
    """Start the command; kill its process group when one of ``kills`` is under way."""
    stages = workdir / "results" / "stages"
    before = markers(stages, kills)  # left by earlier attempts
    with open(out, "w+") as log, subprocess.Popen(
            default_command(workdir, *args), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True) as proc:
        deadline = time.monotonic() + RUN_TIMEOUT
        caught: list[Kill] = []
        while not caught and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL)
            caught = under_way(stages, kills, before)
        at_ns = time.time_ns()
        if caught:
            os.killpg(proc.pid, caught[0].signal)
        proc.wait(timeout=300)
        stop = time.monotonic() + 300
        while group_members(proc.pid) and time.monotonic() < stop:  # jobs shutting down
            time.sleep(0.2)
        alive = group_members(proc.pid)
        if alive:
            os.killpg(proc.pid, signal.SIGKILL)
        assert not alive, f"processes {alive} outlived the kill"
        log.seek(0)
        return Attempt(caught, at_ns, proc.returncode, log.read())


def rerun_as_documented(workdir: Path, kills: list[Kill], out: Path,
                        after: Kill | None) -> Attempt:
    """The README's way to finish an interrupted run: the same command; after a hard kill,
    ``snakemake --unlock`` first; ``--rerun-incomplete`` added if Snakemake asks for it."""
    if after is not None and after.signal == signal.SIGKILL:
        locked = run_to_end(workdir)
        assert locked.returncode != 0 and "--unlock" in locked.stderr, locked.stderr[-2000:]
        assert run_to_end(workdir, "--unlock").returncode == 0
    plain = attempt(workdir, kills, out)
    if plain.killed or plain.returncode == 0 or "--rerun-incomplete" not in plain.output:
        return plain
    print(f"  Snakemake asked for --rerun-incomplete after {after}")
    return attempt(workdir, kills, out, "--rerun-incomplete")


def stage_files(folder: Path) -> dict[Path, int]:
    """Modification times of a keyed stage folder's files."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_killed_during_each_long_stage_then_rerun_gives_the_same_results(
        uninterrupted, tmp_path):
    workdir = tmp_path / "work"
    stages = workdir / "results" / "stages"
    remaining = list(KILLS)
    completed_earlier: dict[Path, int] = {}
    kill_times: dict[str, int] = {}
    last: Kill | None = None
    for number in range(len(KILLS) + 1):
        result = rerun_as_documented(workdir, remaining, tmp_path / f"attempt{number}.log", last)
        if not result.killed:
            break
        assert result.returncode != 0, result.output[-2000:]
        for kill in result.killed:  # the jobs were running: started, and never finished
            assert not finished(stages, kill.stage), f"{kill.stage} finished before the kill"
            kill_times[kill.stage] = result.at_ns
            remaining.remove(kill)
        last = result.killed[0]
        print(f"  attempt {number}: {last.signal.name} during "
              f"{', '.join(k.stage for k in result.killed)}")
        for record in stages.glob("*/*/benchmark.tsv"):  # Snakemake's, after the job
            completed_earlier |= stage_files(record.parent)
    assert result.returncode == 0, result.output[-3000:]
    assert not remaining, f"never caught under way: {[k.stage for k in remaining]}"

    run = workdir / "results" / RUN
    assert differences(uninterrupted, run) == []
    assert leftovers(workdir / "results") == []
    # stages completed before a kill were not redone ...
    assert {p: p.stat().st_mtime_ns for p in completed_earlier} == completed_earlier
    # ... and nothing a killed job wrote was kept: its products were all written afterwards
    for stage, at_ns in kill_times.items():
        (folder,) = (stages / stage).iterdir()
        written = {p: t for p, t in stage_files(folder).items()
                   if "checkpoints" not in p.relative_to(folder).parts and p.suffix != ".log"}
        assert written and min(written.values()) > at_ns, stage
    dry = run_to_end(workdir, "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr
