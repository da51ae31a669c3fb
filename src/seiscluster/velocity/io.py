"""Read, check and write 3-D velocity models.

Every reader returns the *Model* contract: an :class:`xarray.Dataset` with one velocity
variable of dims exactly ``("depth", "latitude", "longitude")``, strictly increasing float64
coordinates (depth in km, positive down), NaN for missing values, the file's attributes
kept, and the dataset attributes ``velocity_variable`` and ``source_file``. Formats: netCDF
in the IRIS EMC convention (read lazily with dask), a ``lon lat depth value`` text table
(optionally gzipped), IRIS EMC GeoCSV (``.csv`` starting with ``# dataset: GeoCSV``, on a
latitude-longitude grid) and a seisgo-style ``.npz`` (``lat``, ``lon``, ``dep`` and a
``(n_depth, n_lat, n_lon)`` array). Each reader only turns its file into a Dataset; the
renaming, transposing, sorting and checking are shared (:func:`_normalise`,
:func:`validate_model`): depths declared in metres are converted to km (a depth range deeper
than the Earth's radius without such units is an error), and longitudes given as 0..360 are
converted to -180..180, each said in the log.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import logging
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.fileio import write_netcdf

log = logging.getLogger(__name__)

#: Dimension names of the Model contract, in order.
DIMS = ("depth", "latitude", "longitude")
#: Accepted spellings (lower case) of each dimension, renamed to the contract's name.
ALIASES = {
    "depth": ("depth", "z", "dep"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "long"),
}
#: Variable names (lower case) taken to be a velocity when several 3-D variables qualify.
VELOCITY_NAMES = ("vs", "vp", "v", "vsv", "vsh", "vpv", "vph", "dvs", "dvp", "dvsv", "dvsh",
                  "dlnvs", "dlnvp", "velocity", "vel", "s_velocity", "p_velocity")
#: Units (lower case, spaces removed) that look like a velocity: km/s, then m/s spellings.
KM_PER_S_UNITS = ("km/s", "kmps", "km.s-1", "kms-1", "km.s^-1", "km/sec")
M_PER_S_UNITS = ("m/s", "mps", "m.s-1", "ms-1", "m.s^-1", "m/sec")
VELOCITY_UNITS = KM_PER_S_UNITS + M_PER_S_UNITS
METRE_UNITS = ("m", "meter", "meters", "metre", "metres")
SUFFIXES = {".nc": "netcdf", ".nc4": "netcdf", ".cdf": "netcdf", ".netcdf": "netcdf",
            ".txt": "text", ".dat": "text", ".csv": "text", ".xyz": "text", ".npz": "npz"}
_FORMAT_NAMES = {"netcdf": "netCDF", "text": "text-table", "npz": "npz", "geocsv": "GeoCSV"}
#: Formats that name their variables and give their units (see :func:`_pick_variable`).
_SELF_DESCRIBING = ("netcdf", "geocsv")
_LIBRARY_ERRORS = (OSError, ValueError, EOFError, RuntimeError, KeyError, TypeError,
                   zipfile.BadZipFile, zlib.error)
#: Mean radius of the Earth (km): no model is deeper.
EARTH_RADIUS_KM = 6371.0


def open_model(
    path: str | os.PathLike[str],
    fmt: str = "auto",
    variable: str | None = None,
    chunks: str | int | dict | None = "auto",
) -> xr.Dataset:
    """Read a velocity model file into the Model contract and check it.

    ``fmt`` is ``auto`` (decided by the file suffix and a GeoCSV header), ``netcdf``,
    ``text``, ``geocsv`` or ``npz``;
    ``variable`` picks the velocity variable (``None`` detects it); ``chunks`` is passed to
    xarray so that netCDF data stay lazy (dask) until used.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"Velocity model file {path} does not exist (data.velocity.path); "
            "give an existing netCDF, text or npz file, or null for the embedded example."
        )
    fmt = section("data.velocity", {"format": fmt})["format"]
    fmt = _format_of(path) if fmt == "auto" else fmt
    ds = _normalise(_READERS[fmt](path, variable, chunks), variable, path,
                    named=fmt in _SELF_DESCRIBING)
    validate_model(ds)
    return ds


def validate_model(ds: xr.Dataset) -> None:
    """Raise :class:`InputError` unless ``ds`` follows the Model contract.

    Checks the velocity variable, its dimensions, finite strictly increasing coordinates and
    that some value is not NaN; the last is a (dask-friendly) reduction, never a full load.
    """
    source = ds.attrs.get("source_file", "the velocity model")
    name = ds.attrs.get("velocity_variable")
    if name not in ds.data_vars:
        raise InputError(
            f"{source} has no velocity variable {name!r} (dataset attribute "
            f"velocity_variable); its variables are {sorted(map(str, ds.data_vars))}."
        )
    if ds[name].dims != DIMS:
        raise InputError(
            f"Velocity variable {name!r} of {source} has dimensions {ds[name].dims}, "
            f"expected {DIMS}."
        )
    for dim in DIMS:
        if dim not in ds.coords:
            raise InputError(f"{source} has no {dim} coordinate values.")
        values = np.asarray(ds[dim].values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise InputError(f"The {dim} coordinate of {source} has non-finite values.")
        steps = np.diff(values)
        if (steps == 0).any():
            raise InputError(
                f"The {dim} coordinate of {source} has duplicated values "
                f"(e.g. {values[1:][steps == 0][0]:g}); every grid node must appear once."
            )
        if (steps < 0).any():
            raise InputError(f"The {dim} coordinate of {source} is not strictly increasing.")
    if not bool(ds[name].notnull().any()):
        raise InputError(f"Velocity variable {name!r} of {source} is NaN everywhere.")


def write_model(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write a model to CF-style netCDF-4, atomically (temporary file, then rename).

    Coordinates get CF units and standard names, depth ``positive: down``; the writing
    (NaN ``_FillValue``, source encodings dropped) is :func:`seiscluster.fileio.write_netcdf`.
    """
    validate_model(ds)
    out = ds.copy()
    for dim, attrs in _CF_COORD_ATTRS.items():
        out.variables[dim].attrs.update(attrs)
    for var in out.variables.values():
        var.attrs.pop("_FillValue", None)
        var.attrs.pop("missing_value", None)
    write_netcdf(out, path)


_CF_COORD_ATTRS = {
    "depth": {"units": "km", "positive": "down", "standard_name": "depth",
              "long_name": "depth below surface"},
    "latitude": {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"},
    "longitude": {"units": "degrees_east", "standard_name": "longitude",
                  "long_name": "longitude"},
}


# --------------------------------------------------------------------------- readers


@contextlib.contextmanager
def _reading(path: Path, fmt: str) -> Iterator[None]:
    """Turn a library's failure to read ``path`` into one clear :class:`InputError`."""
    try:
        yield
    except InputError:
        raise
    except _LIBRARY_ERRORS as exc:
        raise InputError(
            f"{path} is not a readable {_FORMAT_NAMES[fmt]} file ({_reason(exc, path)}); "
            "check data.velocity.path and data.velocity.format."
        ) from exc


def _reason(exc: BaseException, path: Path) -> str:
    """The library's complaint in a few words: its first line, without the file name."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if text.startswith("did not find a match in any of xarray's"):
        return "neither netCDF-3 nor netCDF-4/HDF5 data: the file is damaged or another format"
    if "HDF error" in text:
        return "its netCDF-4/HDF5 data are truncated or damaged"
    text = text.replace(f": {str(Path(path).resolve())!r}", "").replace(f": {str(path)!r}", "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_netcdf(path: Path, variable: str | None, chunks: str | int | dict | None
                 ) -> xr.Dataset:
    """Open lazily; CF decoding turns ``_FillValue`` and ``missing_value`` into NaN."""
    _check_netcdf3_size(path)
    with _reading(path, "netcdf"):
        return xr.open_dataset(path, chunks=chunks, mask_and_scale=True, decode_times=False)


def _check_netcdf3_size(path: Path) -> None:
    """Refuse a truncated netCDF-3 file: the netCDF library reads its missing tail as zeros.

    scipy's reader maps every variable onto the file's bytes without reading them, and
    fails when a variable lies beyond the end (netCDF-4/HDF5 files fail to open instead).
    """
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic not in (b"CDF\x01", b"CDF\x02"):
        return
    from scipy.io import netcdf_file  # here: netCDF-4 files do not need it

    with warnings.catch_warnings():  # scipy warns when its failed, half-made map is freed
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            nc = netcdf_file(path, mmap=True)  # maps every variable: fails past the end
        except (ValueError, TypeError, OSError, EOFError):
            nc = None
        if nc is None:
            gc.collect()
    if nc is None:
        raise InputError(
            f"{path} is not a readable netCDF file (truncated or damaged: its netCDF-3 header "
            f"describes more data than its {path.stat().st_size} bytes hold); check "
            "data.velocity.path and data.velocity.format."
        )
    nc.variables.clear()  # drop the mapped arrays so that the file closes cleanly
    nc.close()


def _read_text(path: Path, variable: str | None, chunks: object) -> xr.Dataset:
    """Pivot a ``lon lat depth value`` table onto its grid; absent nodes become NaN."""
    header, header_line = _text_header(path)
    with _reading(path, "text"):
        table = pd.read_csv(path, sep="," if _base_suffix(path)[0] == ".csv" else r"\s+",
                            comment="#", header=None, skiprows=header_line + 1,
                            dtype=np.float64)
    if table.shape[1] != 4:
        raise InputError(
            f"Text model {path} has {table.shape[1]} columns; expected 4: lon lat depth value."
        )
    if table.empty:
        raise InputError(f"Text model {path} has no data rows.")
    columns = table.to_numpy().T
    name = variable or (header[3] if header and len(header) == 4 else "v")
    return _grid(columns[0], columns[1], columns[2], {name: (columns[3], {})},
                 f"Text model {path}")


def _grid(lon: np.ndarray, lat: np.ndarray, depth: np.ndarray,
          values: dict[str, tuple[np.ndarray, dict[str, Any]]], what: str) -> xr.Dataset:
    """Pivot one row per node (columns ``lon``, ``lat``, ``depth`` and each of ``values``,
    with its attributes) onto the grid of their distinct coordinates; absent nodes: NaN."""
    coords, index = {}, []
    for dim, column in zip(("longitude", "latitude", "depth"), (lon, lat, depth), strict=True):
        coords[dim], inverse = np.unique(column, return_inverse=True)
        index.append(inverse)
    shape = tuple(coords[dim].size for dim in DIMS)
    flat = np.ravel_multi_index((index[2], index[1], index[0]), shape)
    counts = np.bincount(flat, minlength=int(np.prod(shape)))
    if (counts > 1).any():
        row = int(np.flatnonzero(counts[flat] > 1)[0])
        raise InputError(
            f"{what} lists the node lon={lon[row]:g}, lat={lat[row]:g},"
            f" depth={depth[row]:g} more than once (e.g. data row {row + 1})."
        )
    data = {}
    for name, (column, attrs) in values.items():
        grid = np.full(shape, np.nan)
        grid.flat[flat] = column
        data[name] = (DIMS, grid, attrs)
    return xr.Dataset(data, coords=coords)


def _text_header(path: Path) -> tuple[list[str] | None, int]:
    """Column names and line index of a header line (first non-comment line, not numbers).

    Without a header: ``(None, -1)``.
    """
    opener: Callable = gzip.open if _base_suffix(path)[1] else open
    with _reading(path, "text"), opener(path, "rt") as handle:
        for number, line in enumerate(handle):
            tokens = line.split("#", 1)[0].replace(",", " ").split()
            if tokens:
                try:
                    [float(token) for token in tokens]
                except ValueError:
                    return tokens, number
                break
    return None, -1


def _read_geocsv(path: Path, variable: str | None, chunks: object) -> xr.Dataset:
    """IRIS EMC GeoCSV: ``# key: value`` header lines (``delimiter``, ``<name>_column``,
    ``<name>_units``, ``<name>_missing_value``, ...), then a table with a line of column
    names and one row per node (``latitude``, ``longitude``, ``depth`` and the variables).

    Models on a projected grid (``global_grid_ref: projected``, ``x``/``y`` columns) are
    refused: the Model contract is a regular latitude-longitude grid.
    """
    meta, skip = _geocsv_header(path)
    if meta.get("global_grid_ref", "").lower() == "projected" or "x_column" in meta:
        raise _projected(f"GeoCSV model {path}")
    with _reading(path, "geocsv"):
        table = pd.read_csv(path, sep=meta.get("delimiter", ","), skiprows=skip,
                            skipinitialspace=True)
    table.columns = [str(c).strip() for c in table.columns]
    columns = {name.lower(): name for name in table.columns}
    where = {}
    for dim in ("longitude", "latitude", "depth"):
        found = [columns[a] for a in ALIASES[dim] if a in columns]
        if not found:
            raise InputError(
                f"GeoCSV model {path} has no {dim} column (one of {ALIASES[dim]}); its "
                f"columns are {list(table.columns)}.")
        where[dim] = found[0]
    if table.empty:
        raise InputError(f"GeoCSV model {path} has no data rows.")
    values = {}
    for name in table.columns:
        if name in where.values():
            continue
        attrs = {key: meta[f"{name}_{key}"] for key in ("units", "long_name")
                 if f"{name}_{key}" in meta}
        with _reading(path, "geocsv"):
            column = pd.to_numeric(table[name], errors="raise").to_numpy(np.float64)
        for key in ("missing_value", "_FillValue"):
            if f"{name}_{key}" in meta:
                column = np.where(column == float(meta[f"{name}_{key}"]), np.nan, column)
        values[name] = (column, attrs)
    with _reading(path, "geocsv"):
        lon, lat, depth = (pd.to_numeric(table[where[d]], errors="raise").to_numpy(np.float64)
                           for d in ("longitude", "latitude", "depth"))
    ds = _grid(lon, lat, depth, values, f"GeoCSV model {path}")
    depth_units = meta.get("depth_units") or meta.get("z_units")
    if depth_units:
        ds["depth"].attrs["units"] = depth_units
    return ds


def _projected(what: str) -> InputError:
    return InputError(
        f"{what} is on a projected grid (x, y with 2-D latitude and longitude); seiscluster "
        "reads models on a regular latitude-longitude grid: interpolate it onto one first.")


def _geocsv_header(path: Path) -> tuple[dict[str, str], int]:
    """The ``# key: value`` lines of a GeoCSV file, and how many lines they take."""
    meta: dict[str, str] = {}
    skip = 0
    with _reading(path, "geocsv"), open(path) as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            skip += 1
            key, sep, value = line[1:].partition(":")
            if sep:
                meta[key.strip()] = value.strip()
    return meta, skip


def _is_geocsv(path: Path) -> bool:
    """Whether a ``.csv`` file starts with GeoCSV's ``# dataset: GeoCSV`` line."""
    try:
        with open(path, errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return False
    return first.lstrip("# ").lower().startswith("dataset: geocsv")


def _read_npz(path: Path, variable: str | None, chunks: object) -> xr.Dataset:
    """seisgo layout: 1-D ``lat``, ``lon``, ``dep`` and a ``(n_depth, n_lat, n_lon)`` array."""
    with _reading(path, "npz"), np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    coords = {}
    for dim in DIMS:
        key = next((k for k in arrays if k.lower() in ALIASES[dim]), None)
        if key is None:
            raise InputError(
                f"npz model {path} has no {dim} array (one of {ALIASES[dim]}); "
                f"its arrays are {sorted(arrays)}."
            )
        coords[dim] = np.asarray(arrays.pop(key), dtype=np.float64).ravel()
    name = variable or _single_3d_array(arrays, path)
    if name not in arrays:
        raise InputError(
            f"npz model {path} has no array {name!r} (data.velocity.variable); "
            f"its arrays are {sorted(arrays)}."
        )
    values = arrays[name]
    expected = tuple(coords[dim].size for dim in DIMS)
    if values.ndim != 3:
        raise InputError(
            f"Array {name!r} of npz model {path} has {values.ndim} dimensions, expected 3 "
            f"(depth, latitude, longitude) of shape {expected}."
        )
    for axis, dim in enumerate(DIMS):
        if values.shape[axis] != expected[axis]:
            raise InputError(
                f"Array {name!r} of npz model {path} has {values.shape[axis]} values along "
                f"axis {axis} ({dim}) but the {dim} array has {expected[axis]}; expected shape "
                f"(n_depth, n_lat, n_lon) = {expected}."
            )
    return xr.Dataset({name: (DIMS, values)}, coords=coords)


def _single_3d_array(arrays: dict[str, np.ndarray], path: Path) -> str:
    names = [key for key, value in arrays.items() if value.ndim == 3]
    if len(names) != 1:
        raise InputError(
            f"npz model {path} has {len(names)} 3-D arrays {names}; set "
            "data.velocity.variable to the velocity array's name."
        )
    return names[0]


_READERS = {"netcdf": _read_netcdf, "text": _read_text, "npz": _read_npz,
            "geocsv": _read_geocsv}


# --------------------------------------------------------------------------- normalisation


def _format_of(path: Path) -> str:
    suffix, gzipped = _base_suffix(path)
    if suffix == ".csv" and not gzipped and _is_geocsv(path):
        return "geocsv"
    fmt = SUFFIXES.get(suffix)
    if fmt is None or (gzipped and fmt != "text"):
        raise InputError(
            f"Cannot tell the format of {path} from its suffix; set data.velocity.format to "
            "netcdf (.nc, .nc4, .cdf), text (.txt, .dat, .csv, .xyz, optionally .gz), geocsv "
            "(.csv with a GeoCSV header) or npz."
        )
    return fmt


def _base_suffix(path: Path) -> tuple[str, bool]:
    """The suffix that names the format (``.gz`` looked through) and whether it is gzipped."""
    suffixes = [s.lower() for s in path.suffixes] or [""]
    gzipped = suffixes[-1] == ".gz"
    return (suffixes[-2] if gzipped and len(suffixes) > 1 else suffixes[-1]), gzipped


def _normalise(ds: xr.Dataset, variable: str | None, path: Path, named: bool = False
               ) -> xr.Dataset:
    """Shared by every format: rename, pick the variable, transpose, float64, km, sort.

    ``named``: the file names its variables and gives their units (netCDF), so a detected
    variable must look like a velocity (see :func:`_pick_variable`).
    """
    ds = _rename_aliases(ds, path)
    if any(str(n).lower() in (*ALIASES["latitude"], *ALIASES["longitude"]) and v.ndim > 1
           for n, v in ds.variables.items()):
        raise _projected(str(path))
    name = _pick_variable(ds, variable, path, named)
    ds = ds[[name]].transpose(*DIMS, ...)
    ds = ds.assign_coords({dim: ds[dim].astype(np.float64) for dim in DIMS if dim in ds.coords})
    ds = _depth_to_km(ds, path)
    ds = _longitude_to_180(ds, path)
    for dim in DIMS:  # descending (e.g. latitude) or unordered; validate_model finds the rest
        if dim in ds.coords and (np.diff(ds[dim].values) < 0).any():
            ds = ds.sortby(dim)
    ds.attrs.update(velocity_variable=name, source_file=str(path))
    return ds


def _rename_aliases(ds: xr.Dataset, path: Path) -> xr.Dataset:
    renames = {}
    for dim, aliases in ALIASES.items():
        found = [str(d) for d in ds.dims if str(d).lower() in aliases]
        if len(found) > 1:
            raise InputError(f"{path} has several {dim} dimensions {found}; expected one.")
        if found and found[0] != dim:
            renames[found[0]] = dim
    return ds.rename(renames)


def _pick_variable(ds: xr.Dataset, variable: str | None, path: Path, named: bool = False
                   ) -> str:
    """The named variable, else the single 3-D one, preferring velocity names then units.

    With ``named`` (a self-describing file), a detected variable with neither a velocity
    name nor velocity units is refused (netCDF, GeoCSV): a temperature or density model is
    not clustered as a velocity model unless ``data.velocity.variable`` asks for it. Text
    tables and npz arrays are velocities by their layout (``lon lat depth value``, seisgo's
    ``vmodel``).
    """
    available = sorted(map(str, ds.data_vars))
    if variable is not None:
        if variable not in ds.data_vars:
            raise InputError(
                f"{path} has no variable {variable!r} (data.velocity.variable); "
                f"its variables are {available}."
            )
        if set(ds[variable].dims) != set(DIMS):
            raise InputError(
                f"Variable {variable!r} of {path} has dimensions {ds[variable].dims}, "
                f"expected the three dimensions {DIMS}."
            )
        return variable
    candidates = [str(n) for n, v in ds.data_vars.items() if set(v.dims) == set(DIMS)]
    if not candidates:
        raise InputError(
            f"{path} has no 3-D velocity variable with dimensions {DIMS} (its variables: "
            + ", ".join(f"{n}{tuple(map(str, ds[n].dims))}" for n in available)
            + "); set data.velocity.variable."
        )
    pool = candidates
    for prefer in (_has_velocity_name, _has_velocity_units):
        pool = [n for n in pool if prefer(ds[n])] or pool
    if len(pool) == 1:
        if named and not (_has_velocity_name(ds[pool[0]]) or _has_velocity_units(ds[pool[0]])):
            raise InputError(
                f"{path} has no variable named or measured as a velocity (a name such as vs, "
                "vp or v, or units such as km/s or m/s); its variables are "
                + ", ".join(_describe(ds[n]) for n in available)
                + ": set data.velocity.variable to cluster one of them all the same."
            )
        return pool[0]
    raise InputError(
        f"{path} has several candidate velocity variables {candidates}; "
        "set data.velocity.variable to the one to cluster."
    )


def _describe(var: xr.DataArray) -> str:
    """``name (dims; units 'u')`` of a variable, for messages."""
    units = var.attrs.get("units")
    return (f"{var.name} ({', '.join(map(str, var.dims))}; "
            + (f"units {units!r})" if units is not None else "no units)"))


def _has_velocity_name(var: xr.DataArray) -> bool:
    return str(var.name).lower() in VELOCITY_NAMES


def _has_velocity_units(var: xr.DataArray) -> bool:
    return str(var.attrs.get("units", "")).lower().replace(" ", "") in VELOCITY_UNITS


def _depth_to_km(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """Convert a depth coordinate declared in metres to km (said in the log and in its
    attributes); refuse depths deeper than the Earth's radius, which are metres unlabelled."""
    if "depth" not in ds.coords:
        return ds
    attrs = dict(ds["depth"].attrs)
    units = str(attrs.get("units", "")).strip().lower()
    depth = ds["depth"].values
    if units not in METRE_UNITS:
        finite = depth[np.isfinite(depth)]  # non-finite depths: validate_model says so
        deepest = float(finite.max()) if finite.size else 0.0
        if deepest > EARTH_RADIUS_KM:
            raise InputError(
                f"The depths of {path} reach {deepest:g}, deeper than the Earth's radius "
                f"({EARTH_RADIUS_KM:g} km), so they look like metres: give depths in km, or "
                "units 'm' on the depth coordinate of a netCDF file to have them converted."
            )
        return ds
    log.info("the depth coordinate of %s is in %s (units %r): converted to km", path,
             "metres", attrs["units"])
    attrs.update(units="km", comment=f"converted by seiscluster from {attrs['units']} to km")
    return ds.assign_coords(depth=("depth", depth / 1000.0, attrs))


def _longitude_to_180(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """Longitudes given as 0..360 become -180..180 (east of 180 minus 360; a 360 column
    repeating 0 is dropped), said in the log; a range fitting neither is an error."""
    if "longitude" not in ds.coords or ds["longitude"].size == 0:
        return ds
    lon = ds["longitude"].values
    lo, hi = float(np.nanmin(lon)), float(np.nanmax(lon))
    if lo >= -180 and hi <= 180:
        return ds
    if lo < 0 or hi > 360:
        raise InputError(
            f"The longitudes of {path} span {lo:g}..{hi:g} degrees; expected -180..180 or "
            "0..360 (degrees east)."
        )
    if 0 in lon and 360 in lon:
        ds = ds.isel(longitude=lon != 360)
        lon = ds["longitude"].values
    ds = ds.assign_coords(longitude=("longitude", np.where(lon > 180, lon - 360, lon),
                                     dict(ds["longitude"].attrs)))
    log.info("the longitudes of %s span %g..%g (0..360): converted to -180..180 and sorted",
             path, lo, hi)
    return ds
