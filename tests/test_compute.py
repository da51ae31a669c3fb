"""Scale-out: the stages on a dask.distributed cluster, the compute group and the profiles."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from seiscluster import compute as comp
from seiscluster.config import compose, to_container
from seiscluster.errors import InputError
from seiscluster.tremor import stages as tremor
from seiscluster.velocity import stages as velocity
from seiscluster.velocity.elbow import elbow_scan
from seiscluster.velocity.example import make_example_model
from seiscluster.velocity.io import write_model
from seiscluster.velocity.profiles import extract_profiles

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


@pytest.fixture(scope="module")
def cluster() -> str:
    """Address of a small in-process dask.distributed cluster (two one-thread workers)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as local:
        yield local.scheduler_address


def distributed(address: str, **keys) -> dict:
    return {"scheduler": "distributed", "address": address, **keys}


def profiles_matrix(n=240, n_depth=16, seed=3) -> np.ndarray:
    """Four profile shapes plus noise."""
    rng = np.random.default_rng(seed)
    z = np.linspace(0, 1, n_depth)
    base = np.array([3 + z, 3.5 + 0.5 * z, 4 + 0.2 * np.sin(6 * z), 3 + 1.5 * z**2])
    return base[np.arange(n) % 4] + 0.05 * rng.normal(size=(n, n_depth))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The embedded example model (NaN nodes, provinces) as written by the ingest stage."""
    path = tmp_path_factory.mktemp("model") / "model.nc"
    write_model(make_example_model(n_lat=21, n_lon=17, depth_step=2.0, seed=4), path)
    return path


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> tuple[str, dict]:
    """Two days of the embedded example records (one channel, 25 Hz, with gaps) and the
    default configuration sections of the spectrogram stage."""
    cfg = compose(["data.waveforms.example.days=2"])
    tmp = tmp_path_factory.mktemp("records")
    tremor.make_example(waveforms=str(tmp / "waveforms"), truth=str(tmp / "truth.csv"),
                        example=to_container(cfg.data.waveforms.example))
    return str(tmp / "waveforms"), {
        "waveforms": to_container(cfg.data.waveforms),
        "preprocess": to_container(cfg.tremor.preprocess),
        "spectrogram": to_container(cfg.tremor.spectrogram),
    }


def run_profiles(tmp: Path, name: str, model: Path, compute: dict | None) -> xr.Dataset:
    out = tmp / f"{name}.nc"
    velocity.profiles(model=str(model), profiles=str(out), dz=3.0, compute=compute, threads=2)
    return xr.load_dataset(out)


def run_spectrograms(tmp: Path, name: str, records: tuple[str, dict], compute: dict | None
                     ) -> tuple[xr.Dataset, pd.DataFrame]:
    files, sections = records
    store, skipped = tmp / f"{name}.zarr", tmp / f"{name}.csv"
    tremor.spectrograms(spectrograms=str(store), skipped=str(skipped), files=files, threads=2,
                        compute=compute, **sections)
    return xr.open_zarr(store), pd.read_csv(skipped)


# ------------------------------------------------ the three stages: cluster == local threads


def test_elbow_scan_on_a_cluster_equals_local_threads(cluster):
    X = profiles_matrix()
    local = elbow_scan(X, range(2, 8), n_init=2, random_state=5, n_jobs=2)
    remote = elbow_scan(X, range(2, 8), n_init=2, random_state=5, compute=distributed(cluster))
    pd.testing.assert_frame_equal(local.table, remote.table, check_exact=True)
    assert (local.knee, local.n_clusters) == (remote.knee, remote.n_clusters) == (4, 4)
    for k in range(2, 8):
        np.testing.assert_array_equal(local.models[k].labels_, remote.models[k].labels_)
        np.testing.assert_array_equal(local.models[k].cluster_centers_,
                                      remote.models[k].cluster_centers_)


def test_profiles_on_a_cluster_equal_local_threads(cluster, model_file, tmp_path):
    local = run_profiles(tmp_path, "local", model_file, None)
    remote = run_profiles(tmp_path, "remote", model_file,
                          distributed(cluster, profiles_chunk=40))  # 3 rows a task: 7 tasks
    xr.testing.assert_identical(local, remote)
    assert local.sizes["profile"] == 21 * 17 - local.attrs["n_dropped_nan"] > 300
    assert "province" in local.coords


def test_spectrograms_on_a_cluster_equal_local_threads(cluster, records, tmp_path):
    local, local_skipped = run_spectrograms(tmp_path, "local", records, None)
    remote, remote_skipped = run_spectrograms(tmp_path, "remote", records,
                                              distributed(cluster))
    xr.testing.assert_identical(local.load(), remote.load())
    pd.testing.assert_frame_equal(local_skipped, remote_skipped)
    assert local.sizes["window"] >= 40 and not local_skipped.empty  # the example's gaps


@pytest.mark.slow
def test_processes_scheduler_equals_threads(model_file, records, tmp_path):
    processes = {"scheduler": "processes"}
    X = profiles_matrix(n=120)
    pd.testing.assert_frame_equal(
        elbow_scan(X, range(2, 6), n_init=1, n_jobs=2).table,
        elbow_scan(X, range(2, 6), n_init=1, n_jobs=2, compute=processes).table,
        check_exact=True)
    xr.testing.assert_identical(run_profiles(tmp_path, "threads", model_file, None),
                                run_profiles(tmp_path, "processes", model_file, processes))
    threads_store = run_spectrograms(tmp_path, "threads", records, None)[0].load()
    xr.testing.assert_identical(
        threads_store, run_spectrograms(tmp_path, "processes", records, processes)[0].load())


# ---------------------------------------------------------------------- chunk sizes


def test_profile_tasks_hold_whole_rows_of_at_most_the_chunk_size(model_file):
    with xr.open_dataset(model_file) as model:
        lazy = extract_profiles(model, dz=3.0, chunk_size=3 * 17 + 5)
        whole = extract_profiles(model, dz=3.0, chunk_size=10**6)
        rows_per_chunk = [int(np.unique(c).size) for c in
                          np.split(lazy["lat_index"].values, np.cumsum(lazy.velocity.chunks[0]))
                          if c.size]
        assert len(lazy.velocity.chunks[0]) == math.ceil(21 / 3)  # 3 rows of 17 nodes a task
        assert max(rows_per_chunk) <= 3
        assert len(whole.velocity.chunks[0]) == 1
        xr.testing.assert_identical(lazy.load(), whole.load())


def test_spectrogram_blocks_follow_the_block_setting(records, tmp_path):
    one, _ = run_spectrograms(tmp_path, "one", records, None)
    two, _ = run_spectrograms(tmp_path, "two", records, {"spectrogram_block_days": 2})
    assert one["spectrogram"].encoding["chunks"][0] == 24  # hourly windows, one day a block
    assert two["spectrogram"].encoding["chunks"][0] == two.sizes["window"] > 24  # both days
    # only the linear detrend of each block's span differs: float32 rounding
    np.testing.assert_allclose(one["spectrogram"].values, two["spectrogram"].values,
                               atol=1e-5, rtol=0)


# ---------------------------------------------------------------------- the compute section


def test_settings_defaults_and_worker_count():
    settings = comp.compute_settings(None)
    assert settings.scheduler.value == "threads" and settings.address is None
    assert comp.local_workers(settings, threads=3) == 3
    assert comp.local_workers(comp.compute_settings({"n_workers": 2}), threads=8) == 2
    assert comp.local_workers(comp.compute_settings({"n_workers": 8}), threads=2) == 2


@pytest.mark.parametrize(("section", "fragment"), [
    ({"scheduler": "distributed"}, "compute.address"),
    ({"scheduler": "gpu"}, "compute.scheduler"),
    ({"n_workers": 0}, "compute.n_workers"),
    ({"profiles_chunk": 2.5}, "compute.profiles_chunk"),
    ({"spectrogram_block_days": 0}, "compute.spectrogram_block_days"),
    ({"address": "tcp://head:8786"}, "compute.address"),
    ({"workers": 2}, "compute.workers"),
])
def test_bad_sections_name_the_key(section, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)):
        comp.compute_settings(section)


@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
def test_local_scheduler_is_dasks_default_inside_the_block_only(scheduler):
    before = dask.base.get_scheduler()
    with comp.dask_scheduler({"scheduler": scheduler}, threads=2) as session:
        assert dask.base.get_scheduler() is dask.base.named_schedulers[scheduler]
        assert session.workers == 2 and session.client is None
    assert dask.base.get_scheduler() is before


def test_distributed_client_is_closed_after_the_block(cluster):
    with comp.dask_scheduler(distributed(cluster)) as session:
        assert session.workers == 2
        assert dask.base.get_scheduler() == session.client.get
    assert session.client.status == "closed"


def test_unreachable_scheduler_names_compute_address(monkeypatch):
    monkeypatch.setattr(comp, "CONNECT_TIMEOUT", 1)
    with pytest.raises(InputError, match=r"compute\.address: no dask scheduler answered"), \
            comp.dask_scheduler(distributed("tcp://127.0.0.1:9")):
        pass


RETAINED = """
import sys
import numpy as np
from seiscluster.compute import return_freed_memory

def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

if sys.argv[1] == "fixed":
    assert return_freed_memory()
np.ones(2 << 20)  # 16 MiB: mapped; freeing it raises glibc's own threshold to 16 MiB
before = rss_kb()
array = np.ones(1 << 20)  # 8 MiB, written
del array
print(rss_kb() - before)
"""


def retained_kb(mode: str) -> int:
    """Resident kB an 8 MiB array leaves behind when freed, in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in comp.MALLOC_ENVIRONMENT}
    proc = subprocess.run([sys.executable, "-c", RETAINED, mode], capture_output=True,
                          text=True, env=env, timeout=120, check=True)
    return int(proc.stdout.split()[-1])


@pytest.mark.skipif(not comp.on_glibc() or not Path("/proc/self/status").exists(),
                    reason="needs Linux and glibc")
def test_freed_arrays_go_back_to_the_os():
    assert retained_kb("default") > 6 * 1024  # glibc's dynamic threshold keeps it resident
    assert retained_kb("fixed") < 1024


def test_user_malloc_settings_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert not comp.return_freed_memory()


# ---------------------------------------------------------------------- Snakemake profiles


def dry_run(tmp_path: Path, profile: str, *overrides: str) -> str:
    """Output of a dry run of the workflow with one of workflow/profiles/."""
    quoted = "[" + ",".join(f'"{o}"' for o in overrides) + "]"
    proc = subprocess.run(
        [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n",
         "--profile", str(ROOT / "workflow" / "profiles" / profile),
         "--config", f"overrides={quoted}"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def job_resources(text: str) -> dict[str, str]:
    """rule name -> its resources line, from a dry run's job listing."""
    return dict(re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", text,
                           flags=re.MULTILINE))


def test_slurm_profile_dry_run_sets_per_rule_resources(tmp_path):
    resources = job_resources(dry_run(tmp_path, "slurm", "trainer=gpu"))
    assert {"tremor_pretrain", "tremor_finetune", "velocity_elbow", "all"} <= set(resources)
    for rule in ("tremor_pretrain", "tremor_finetune"):
        assert "gpu=1" in resources[rule] and "mem_mb=32000" in resources[rule]
    assert "runtime=480" in resources["velocity_elbow"]
    assert "gpu" not in resources["tremor_spectrograms"]
    assert "runtime=30" in resources["velocity_kmeans_figures"]  # default-resources


def test_local_profile_dry_run(tmp_path):
    text = dry_run(tmp_path, "local", "branches=[velocity]")
    assert "velocity_elbow" in text and "tremor_pretrain" not in text
