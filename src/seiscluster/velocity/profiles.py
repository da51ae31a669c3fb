"""Subsample and interpolate the 1-D depth profiles of a 3-D velocity model.

Reproduces seisgo's profile extraction (REFERENCE.md part A) without its per-node loop:
``zrange`` keeps depths ``zmin <= depth <= zmax``, ``spacing`` keeps every Nth latitude and
longitude index from 0, a node with any NaN in the kept depths is dropped, and ``dz``
resamples every profile linearly (as ``np.interp``) onto
``arange(min(depth), max(depth) + dz/2, dz)``. Profiles keep seisgo's order (latitude
outer, longitude inner), which matters because k-means++ seeding draws profile indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from seiscluster.config import check_value, section
from seiscluster.errors import InputError

if TYPE_CHECKING:
    import dask.array as da

# dask is imported where the extraction runs: the other velocity stages import this module
# for profile_array and label_grid only, and dask.array (with the scipy modules it loads)
# took about half of their import time.

#: Per-profile coordinates written next to ``velocity(profile, depth)``.
PROFILE_COORDS = ("latitude", "longitude", "lat_index", "lon_index")
#: Model nodes per extraction task (``compute.profiles_chunk``).
DEFAULT_CHUNK = 50_000


def extract_profiles(
    model: xr.Dataset,
    zrange: Sequence[float] | None = None,
    spacing: int = 1,
    dz: float | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> xr.Dataset:
    """Profiles ``velocity(profile, depth)`` of a model, subsampled and interpolated.

    ``model`` follows the model contract of :mod:`seiscluster.velocity.io` (dims depth,
    latitude, longitude; attribute ``velocity_variable``). The work is split into dask tasks
    of whole latitude rows of about ``chunk_size`` nodes (``compute.profiles_chunk``): a
    first pass finds the nodes free of NaN (one byte per node is kept), then the result is
    returned lazily, one chunk of profiles per task, so that writing it
    (:func:`seiscluster.fileio.write_netcdf`) never holds more than a few chunks, and a
    lazily opened model is only read chunk by chunk. Both passes run on dask's current
    scheduler (:func:`seiscluster.compute.dask_scheduler`).
    """
    import dask
    import dask.array as da

    section("velocity.profiles", {"zrange": None if zrange is None else list(zrange),
                                  "spacing": spacing, "dz": dz})
    check_value("compute.profiles_chunk", chunk_size)
    name = model.attrs.get("velocity_variable") or next(iter(model.data_vars))
    depth = model["depth"].values
    keep = _depth_selection(depth, zrange)
    grid = model.isel(depth=slice(keep[0], keep[-1] + 1),  # zrange: a contiguous range
                      latitude=slice(None, None, spacing), longitude=slice(None, None, spacing))
    n_lat, n_lon = grid.sizes["latitude"], grid.sizes["longitude"]
    rows = max(1, int(chunk_size) // n_lon)
    values = _row_chunks(grid[name], rows, ("latitude", "longitude", "depth"))
    finite = da.isfinite(values).all(axis=2).compute()
    if not finite.any():
        raise InputError(
            f"No profile of {model.attrs.get('source_file', 'the model')} is free of NaN in "
            f"the selected depths {depth[keep][0]:g}..{depth[keep][-1]:g} km: check "
            "velocity.profiles.zrange and the model's coverage."
        )
    kept_depth = depth[keep]
    new_depth = None if dz is None else resample_depths(kept_depth, dz)
    out_depth = kept_depth if new_depth is None else new_depth
    firsts = range(0, n_lat, rows)
    masks = [finite[a:a + rows] for a in firsts]
    counts = [int(m.sum()) for m in masks]
    nodes = [dask.delayed(_nodes)(m, a) for m, a in zip(masks, firsts, strict=True)]
    lat_index = _stack([node[0] for node in nodes], counts, np.int64)
    lon_index = _stack([node[1] for node in nodes], counts, np.int64)
    velocity = _stack(
        [dask.delayed(_block_profiles)(slab, m, kept_depth, new_depth)
         for slab, m in zip(values.to_delayed().ravel(), masks, strict=True)],
        counts, np.float64, out_depth.size)
    lat = grid["latitude"].values
    lon = grid["longitude"].values
    n_profiles = sum(counts)
    ds = xr.Dataset(
        {"velocity": (("profile", "depth"), velocity, dict(model[name].attrs))},
        coords={
            "depth": ("depth", out_depth, dict(model["depth"].attrs)),
            "latitude": ("profile", lat_index.map_blocks(lat.take, dtype=lat.dtype),
                         dict(model["latitude"].attrs)),
            "longitude": ("profile", lon_index.map_blocks(lon.take, dtype=lon.dtype),
                          dict(model["longitude"].attrs)),
            "lat_index": ("profile", lat_index, {"long_name": "index into grid_latitude"}),
            "lon_index": ("profile", lon_index, {"long_name": "index into grid_longitude"}),
            "grid_latitude": ("grid_latitude", lat, dict(model["latitude"].attrs)),
            "grid_longitude": ("grid_longitude", lon, dict(model["longitude"].attrs)),
        },
        attrs={
            "velocity_variable": name,
            "source_file": model.attrs.get("source_file", ""),
            "zrange": [float(kept_depth[0]), float(kept_depth[-1])],
            "spacing": int(spacing),
            "dz": float(dz) if dz is not None else "none",
            "n_nodes": int(n_lat * n_lon),
            "n_dropped_nan": int(n_lat * n_lon - n_profiles),
        },
    )
    if "province" in model:
        slabs = _row_chunks(grid["province"], rows).to_delayed().ravel()
        province = _stack([dask.delayed(_select)(slab, m) for slab, m in zip(slabs, masks,
                                                                               strict=True)],
                          counts, grid["province"].dtype)
        ds = ds.assign_coords(province=("profile", province, dict(model["province"].attrs)))
    return ds


def _row_chunks(var: xr.DataArray, rows: int, dims: Sequence[str] = ("latitude", "longitude")
                ) -> da.Array:
    """The variable as a dask array in chunks of ``rows`` latitude rows (other dims whole),
    dims in the given order. A lazily opened variable is read chunk by chunk: it is chunked
    before it is transposed (a lazy transpose would make every chunk read the whole array)."""
    chunked = var.chunk({dim: rows if dim == "latitude" else -1 for dim in var.dims})
    return chunked.transpose(*dims).data


def _stack(parts: list[Any], counts: list[int], dtype: Any, width: int | None = None
           ) -> da.Array:
    """One dask array from one delayed part per row chunk, part i holding ``counts[i]``
    profiles (of ``width`` values each, or one value)."""
    import dask.array as da

    return da.concatenate([
        da.from_delayed(part, shape=(n,) if width is None else (n, width), dtype=dtype)
        for part, n in zip(parts, counts, strict=True)
    ])


def _nodes(mask: np.ndarray, row0: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude grid indices of the kept nodes of the row chunk starting at
    row ``row0``, in seisgo's order (latitude outer, longitude inner)."""
    i, j = np.nonzero(mask)
    return i.astype(np.int64) + row0, j.astype(np.int64)


def _select(slab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The kept nodes' values of a per-node variable's row chunk."""
    return np.asarray(slab)[mask]


def _block_profiles(slab: np.ndarray, mask: np.ndarray, depth: np.ndarray,
                    new_depth: np.ndarray | None) -> np.ndarray:
    """Float64 profiles of the kept nodes of a row chunk ``(rows, lon, depth)``, resampled
    onto ``new_depth`` unless it is None."""
    profiles = np.asarray(slab, dtype=np.float64)[mask]
    return profiles if new_depth is None else interpolate_profiles(profiles, depth, new_depth)


def resample_depths(depth: np.ndarray, dz: float) -> np.ndarray:
    """seisgo's interpolation grid: ``arange(min(depth), max(depth) + 0.5*dz, dz)`` (``dz``
    a checked ``velocity.profiles.dz``)."""
    return np.arange(np.min(depth), np.max(depth) + 0.5 * dz, dz)


def interpolate_profiles(
    profiles: np.ndarray, depth: np.ndarray, new_depth: np.ndarray
) -> np.ndarray:
    """Linear interpolation of every row of ``profiles`` at once, exactly as ``np.interp``.

    Depths beyond the ends take the end values (``np.interp`` clamps the same way).
    """
    right = np.clip(np.searchsorted(depth, new_depth, side="right"), 1, depth.size - 1)
    left = right - 1
    frac = np.clip((new_depth - depth[left]) / (depth[right] - depth[left]), 0.0, 1.0)
    lower = profiles[:, left]
    return lower + (profiles[:, right] - lower) * frac


def profile_array(profiles: xr.Dataset) -> np.ndarray:
    """The profiles as a C-contiguous float64 array ``(n_profiles, n_depth)`` for fitting."""
    return np.ascontiguousarray(profiles["velocity"].values, dtype=np.float64)


def label_grid(profiles: xr.Dataset, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Scatter one value per profile back onto the ``(grid_latitude, grid_longitude)`` grid."""
    grid = np.full((profiles.sizes["grid_latitude"], profiles.sizes["grid_longitude"]), fill,
                   dtype=np.float64)
    grid[profiles["lat_index"].values, profiles["lon_index"].values] = values
    return grid


def _depth_selection(depth: np.ndarray, zrange: Sequence[float] | None) -> np.ndarray:
    if zrange is None:
        return np.arange(depth.size)
    zmin, zmax = (float(z) for z in zrange)
    keep = np.flatnonzero((depth >= zmin) & (depth <= zmax))
    if keep.size < 2:
        raise InputError(
            f"velocity.profiles.zrange [{zmin:g}, {zmax:g}] km selects {keep.size} depth(s) "
            f"of the model (depths {depth[0]:g}..{depth[-1]:g} km); at least 2 are needed."
        )
    return keep
