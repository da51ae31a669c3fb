"""seiscluster.fileio: atomic writes give the permissions a plain ``open()`` would."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from seiscluster import fileio
from seiscluster.tremor.synthetic import make_example, write_example


@pytest.fixture(params=[0o002, 0o022], ids=["umask002", "umask022"])
def umask(request):
    """Run the test under the given umask, restoring the previous one after."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_files_get_the_mode_of_a_plain_open(tmp_path, umask):
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as fh:
        fh.write("x")
    expected = 0o666 & ~umask
    assert mode(plain) == expected  # the reference itself: 0664 under 002, 0644 under 022
    written = {
        "text": tmp_path / "a.txt", "json": tmp_path / "a.json",
        "pickle": tmp_path / "a.pkl", "netcdf": tmp_path / "sub" / "a.nc",
    }
    fileio.write_text(written["text"], "x")
    fileio.write_json(written["json"], {"a": np.int64(1)})
    fileio.write_pickle(written["pickle"], [1, 2])
    fileio.write_netcdf(xr.Dataset({"v": ("x", np.arange(3.0))}), written["netcdf"])
    with fileio.atomic_path(tmp_path / "b.csv") as tmp:
        assert mode(tmp) == expected  # the temporary already has it
        tmp.write_text("a\n1\n")
    written["atomic_path"] = tmp_path / "b.csv"
    assert {k: oct(mode(p)) for k, p in written.items()} == \
        {k: oct(expected) for k in written}
    assert mode(tmp_path / "sub") == 0o777 & ~umask
    assert not list(tmp_path.rglob(".*"))  # no temporary left


def test_folders_written_whole_get_the_mode_of_a_plain_mkdir(tmp_path, umask):
    folder = fileio.temp_dir_beside(tmp_path / "store")
    assert folder.parent == tmp_path and folder.name.startswith(".store.")
    assert mode(folder) == 0o777 & ~umask
    assert fileio.remove_leftovers(tmp_path / "store") == [folder]
    # the example records are such a folder, renamed onto its target
    files = write_example(make_example(days=1, sampling_rate=32.0), tmp_path / "waveforms",
                          tmp_path / "truth.csv")
    assert mode(tmp_path / "waveforms") == 0o777 & ~umask
    assert {mode(p) for p in [*files, tmp_path / "truth.csv"]} == {0o666 & ~umask}


def test_temporary_names_are_fresh_and_hidden(tmp_path):
    names = {fileio.temp_dir_beside(tmp_path / "x", "raw-").name for _ in range(20)}
    assert len(names) == 20
    assert all(n.startswith(".x.raw-") for n in names)


def test_a_netcdf_write_leaves_dask_distributed_unimported_and_importable(tmp_path):
    """xarray asks dask.distributed for an active client before every write; none can be
    active while it is not imported, so a write of in-memory data does not import it (a
    fresh interpreter: the test session has imported it), and a client works afterwards."""
    import subprocess
    import sys

    code = f"""
import sys
import numpy as np, xarray as xr, dask
from seiscluster.fileio import write_netcdf
dask.config.set(scheduler="threads")  # a named scheduler: dask caches what it finds
write_netcdf(xr.Dataset({{"v": ("x", np.arange(3.0))}}), {str(tmp_path / "a.nc")!r})
assert "distributed" not in sys.modules and "dask.distributed" not in sys.modules
from distributed import Client
with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None):
    assert dask.base.get_scheduler().__self__.__class__.__name__ == "Client"
    print(float(xr.Dataset({{"v": ("x", np.arange(3.0))}}).chunk()["v"].sum().compute()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "3.0"
