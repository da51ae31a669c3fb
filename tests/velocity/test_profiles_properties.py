"""Property tests: profile extraction against seisgo's per-node loop, written slowly here,
on random grids, NaN patterns, zrange, spacing and dz."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seiscluster.errors import InputError
from seiscluster.velocity.profiles import extract_profiles

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def models(draw) -> xr.Dataset:
    """A small model with irregular depths and a random mix of NaN patterns: whole
    profiles, single nodes, whole depth levels and nothing."""
    n_depth, n_lat, n_lon = draw(st.integers(2, 12)), draw(st.integers(1, 7)), \
        draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    depth = np.cumsum(np.round(rng.uniform(0.1, 10.0, n_depth), 2)) - draw(st.integers(0, 5))
    values = np.round(rng.uniform(1.0, 8.0, (n_depth, n_lat, n_lon)), 3)
    pattern = draw(st.sampled_from(["none", "nodes", "profiles", "levels", "mixed"]))
    if pattern in ("nodes", "mixed"):
        values[rng.random(values.shape) < draw(st.floats(0.0, 0.3))] = np.nan
    if pattern in ("profiles", "mixed"):
        values[:, rng.random((n_lat, n_lon)) < 0.3] = np.nan
    if pattern == "levels":
        values[rng.integers(0, n_depth)] = np.nan
    return xr.Dataset(
        {"vs": (("depth", "latitude", "longitude"), values, {"units": "km/s"})},
        coords={"depth": depth, "latitude": np.linspace(40, 45, n_lat),
                "longitude": np.linspace(-125, -120, n_lon)},
        attrs={"velocity_variable": "vs"},
    )


def slow_reference(model: xr.Dataset, zrange, spacing: int, dz):
    """seisgo's extraction, node by node: keep zmin <= depth <= zmax, every spacing-th
    latitude and longitude from index 0 (latitude outer), drop a node with any NaN in the
    kept depths, then np.interp onto arange(min, max + dz/2, dz)."""
    depth = model.depth.values
    v = model.vs.values
    keep = [i for i, z in enumerate(depth)
            if zrange is None or zrange[0] <= z <= zrange[1]]
    kept = depth[keep]
    new = kept if dz is None else np.arange(kept.min(), kept.max() + 0.5 * dz, dz)
    rows, lats, lons = [], [], []
    for i in range(0, v.shape[1], spacing):
        for j in range(0, v.shape[2], spacing):
            profile = v[keep, i, j]
            if any(np.isnan(x) for x in profile):
                continue
            rows.append(profile if dz is None else np.interp(new, kept, profile))
            lats.append(model.latitude.values[i])
            lons.append(model.longitude.values[j])
    return new, np.array(rows), np.array(lats), np.array(lons)


@given(model=models(), data=st.data())
@SETTINGS
def test_extraction_equals_the_slow_loop(model, data):
    depth = model.depth.values
    # ends on model depths half the time: inclusive bounds must keep them
    end = st.sampled_from(depth.tolist()) | st.floats(depth.min() - 5, depth.max() + 5)
    zrange = data.draw(st.none() | st.tuples(end, end).map(sorted), label="zrange")
    spacing = data.draw(st.integers(1, 4), label="spacing")
    span = depth.max() - depth.min()
    dz = data.draw(st.none() | st.floats(span / 60, span + 5, allow_nan=False), label="dz")

    n_kept = 0 if zrange is None else int(((depth >= zrange[0]) & (depth <= zrange[1])).sum())
    if zrange is not None and zrange[0] >= zrange[1]:  # refused by the key's rule
        with pytest.raises(InputError, match=r"^velocity\.profiles\.zrange: expected "
                                             r"\[zmin, zmax\] in km with zmin < zmax"):
            extract_profiles(model, zrange=zrange, spacing=spacing, dz=dz)
        return
    if zrange is not None and n_kept < 2:
        with pytest.raises(InputError, match=r"velocity\.profiles\.zrange .* selects "
                                             rf"{n_kept} depth\(s\)"):
            extract_profiles(model, zrange=zrange, spacing=spacing, dz=dz)
        return
    new, rows, lats, lons = slow_reference(model, zrange, spacing, dz)
    if rows.size == 0:
        with pytest.raises(InputError, match=r"No profile of .* is free of NaN"):
            extract_profiles(model, zrange=zrange, spacing=spacing, dz=dz)
        return
    prof = extract_profiles(model, zrange=zrange, spacing=spacing, dz=dz)
    np.testing.assert_array_equal(prof.depth.values, new)
    np.testing.assert_allclose(prof.velocity.values, rows, rtol=1e-13, atol=1e-13)
    if dz is None:
        np.testing.assert_array_equal(prof.velocity.values, rows)
    np.testing.assert_array_equal(prof.latitude.values, lats)
    np.testing.assert_array_equal(prof.longitude.values, lons)
    grid = model.isel(latitude=slice(None, None, spacing), longitude=slice(None, None, spacing))
    assert prof.attrs["n_nodes"] == grid.sizes["latitude"] * grid.sizes["longitude"]
    assert prof.attrs["n_dropped_nan"] == prof.attrs["n_nodes"] - len(rows)
    # lat_index/lon_index point back at each profile's node of the strided grid
    back = grid.vs.values[:, prof.lat_index.values, prof.lon_index.values].T
    if dz is None:
        kept = (depth >= zrange[0]) & (depth <= zrange[1]) if zrange else slice(None)
        np.testing.assert_array_equal(back[:, kept], rows)
