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

import numpy as np
import xarray as xr

from seiscluster.errors import InputError

#: Per-profile coordinates written next to ``velocity(profile, depth)``.
PROFILE_COORDS = ("latitude", "longitude", "lat_index", "lon_index")


def extract_profiles(
    model: xr.Dataset,
    zrange: Sequence[float] | None = None,
    spacing: int = 1,
    dz: float | None = None,
) -> xr.Dataset:
    """Profiles ``velocity(profile, depth)`` of a model, subsampled and interpolated.

    ``model`` follows the model contract of :mod:`seiscluster.velocity.io` (dims depth,
    latitude, longitude; attribute ``velocity_variable``). Only the selected depths and the
    strided nodes are read, so a lazily opened model is never loaded whole.
    """
    name = model.attrs.get("velocity_variable") or next(iter(model.data_vars))
    depth = model["depth"].values
    keep = _depth_selection(depth, zrange)
    _check_spacing(spacing)
    grid = model.isel(depth=keep, latitude=slice(None, None, spacing),
                      longitude=slice(None, None, spacing))
    values = np.asarray(grid[name].transpose("latitude", "longitude", "depth").values,
                        dtype=np.float64)
    n_lat, n_lon, n_depth = values.shape
    flat = values.reshape(n_lat * n_lon, n_depth)
    finite = np.isfinite(flat).all(axis=1)
    if not finite.any():
        raise InputError(
            f"No profile of {model.attrs.get('source_file', 'the model')} is free of NaN in "
            f"the selected depths {depth[keep][0]:g}..{depth[keep][-1]:g} km: check "
            "velocity.profiles.zrange and the model's coverage."
        )
    kept_depth = depth[keep]
    profiles = flat[finite]
    new_depth = kept_depth
    if dz is not None:
        new_depth = resample_depths(kept_depth, dz)
        profiles = interpolate_profiles(profiles, kept_depth, new_depth)
    node = np.flatnonzero(finite)
    lat_index, lon_index = np.divmod(node, n_lon)
    lat = grid["latitude"].values
    lon = grid["longitude"].values
    ds = xr.Dataset(
        {"velocity": (("profile", "depth"), profiles, dict(model[name].attrs))},
        coords={
            "depth": ("depth", new_depth, dict(model["depth"].attrs)),
            "latitude": ("profile", lat[lat_index], dict(model["latitude"].attrs)),
            "longitude": ("profile", lon[lon_index], dict(model["longitude"].attrs)),
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
            "n_dropped_nan": int(n_lat * n_lon - node.size),
        },
    )
    if "province" in model:
        truth = np.asarray(model["province"].isel(latitude=slice(None, None, spacing),
                                                  longitude=slice(None, None, spacing)).values)
        ds = ds.assign_coords(province=("profile", truth.reshape(-1)[node],
                                        dict(model["province"].attrs)))
    return ds


def resample_depths(depth: np.ndarray, dz: float) -> np.ndarray:
    """seisgo's interpolation grid: ``arange(min(depth), max(depth) + 0.5*dz, dz)``."""
    if not dz > 0:
        raise InputError(f"velocity.profiles.dz must be > 0 km, got {dz}.")
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


def _check_spacing(spacing: int) -> None:
    if int(spacing) != spacing or spacing < 1:
        raise InputError(f"velocity.profiles.spacing must be an integer >= 1, got {spacing}.")
