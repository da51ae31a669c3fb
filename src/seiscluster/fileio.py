"""Atomic file output: a failed or interrupted write never leaves a partial file."""

from __future__ import annotations

import contextlib
import contextvars
import glob
import json
import os
import pickle
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from seiscluster.hidden_imports import hidden

#: Global attributes added to every NetCDF file written in the current context.
_NETCDF_ATTRS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "netcdf_attrs", default=MappingProxyType({}))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _hidden_beside(path, "", ".tmp", _new_file)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def temp_dir_beside(path: str | Path, tag: str = "") -> Path:
    """Create and return a new empty folder ``.NAME.<tag><random>`` beside ``path`` (made
    if needed), for a folder written whole and then renamed onto ``path``.

    Its mode is what :func:`os.mkdir` gives (``0o777`` less the umask), not
    :func:`tempfile.mkdtemp`'s ``0o700``, so the renamed folder is as readable as any other.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _hidden_beside(path, tag, "", lambda p: os.mkdir(p, 0o777))


def _new_file(path: Path) -> None:
    """Create an empty file, failing if it exists; mode ``0o666`` less the umask, as
    :func:`open` gives (:func:`tempfile.mkstemp` would give ``0o600``)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _hidden_beside(path: Path, tag: str, suffix: str, create: Callable[[Path], None]) -> Path:
    """Create a fresh hidden name ``.NAME.<tag><random><suffix>`` beside ``path`` with
    ``create`` (which must fail with :class:`FileExistsError` on a taken name)."""
    for _ in range(100):
        candidate = path.parent / f".{path.name}.{tag}{secrets.token_hex(6)}{suffix}"
        try:
            create(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {path}")


def remove_leftovers(path: str | Path) -> list[Path]:
    """Remove, and return, what interrupted writes of ``path`` left beside it.

    Every write of the package goes through a hidden name beside its target, ``.NAME.*``
    (:func:`atomic_path`'s files, the temporary folders of the Zarr store and of the example
    records), renamed onto it only when complete; a hard kill (SIGKILL, power loss) leaves
    that name behind. Only for a caller that owns ``path`` (a Snakemake job owns its
    outputs), as another process may be writing it.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*"))
    for p in stale:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return stale


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_pickle(path: str | Path, obj: Any) -> None:
    """Pickle an object atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(obj, fh)


@contextlib.contextmanager
def netcdf_attributes(attrs: dict[str, Any]) -> Iterator[None]:
    """Add ``attrs`` to the global attributes of every NetCDF file written in the block
    (a dataset's own attributes of the same name win); used for provenance records."""
    token = _NETCDF_ATTRS.set({**_NETCDF_ATTRS.get(), **attrs})
    try:
        yield
    finally:
        _NETCDF_ATTRS.reset(token)


def write_netcdf(ds: Any, path: str | Path) -> None:
    """Write an xarray Dataset to NetCDF-4 atomically.

    Float data variables get a NaN ``_FillValue``; coordinates get none (CF: coordinates
    have no missing values); encodings inherited from a source file are dropped so that its
    fill values or packing never leak into the copy. Attributes set by
    :func:`netcdf_attributes` are added.
    """
    import numpy as np  # here: the jobs that only link or record files need no numpy

    out = ds.drop_encoding()
    extra = _NETCDF_ATTRS.get()
    if extra:
        out = out.assign_attrs({**extra, **out.attrs})
    encoding = {
        name: {"_FillValue": np.nan if np.issubdtype(var.dtype, np.floating)
               and name not in out.coords else None}
        for name, var in out.variables.items()
    }
    with atomic_path(path) as tmp, _distributed_unless_imported():
        out.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)


@contextlib.contextmanager
def _distributed_unless_imported() -> Iterator[None]:
    """Inside the block, ``dask.distributed`` cannot be imported unless it already was.

    Before every write xarray asks whether a ``dask.distributed`` client is the active
    scheduler, importing the package to ask (0.15-0.3 s of a small stage). No client can
    exist while the package is not imported, so the failed import gives the same answer;
    once a client or cluster has imported it, nothing is hidden.
    """
    if "distributed" in sys.modules:  # a client may be active: xarray must see it
        yield
        return
    try:
        with hidden("distributed", "dask.distributed"):
            yield
    finally:
        # dask caches "not installed" when a string scheduler asked in the block: forget
        # it, so that a client started later in the process is found
        base = sys.modules.get("dask.base")
        if getattr(base, "_DISTRIBUTED_AVAILABLE", None) is False:
            base._DISTRIBUTED_AVAILABLE = None  # type: ignore[union-attr]


def read_pickle(path: str | Path) -> Any:
    """Load a pickle written by :func:`write_pickle` (trusted, our own output)."""
    with open(path, "rb") as fh:
        return pickle.load(fh)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
