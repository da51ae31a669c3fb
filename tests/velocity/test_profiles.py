"""Profile extraction against a literal port of seisgo's per-node loop."""

import numpy as np
import pytest
import xarray as xr

from seiscluster.errors import InputError
from seiscluster.velocity.profiles import (
    extract_profiles,
    interpolate_profiles,
    label_grid,
    profile_array,
)


def seisgo_profiles(lat, lon, dep, vmodel, spacing=1, zrange=None, dz=None):
    """seisgo 1.0.0 vpcluster_kmean's extraction loop, verbatim in logic."""
    if zrange is None:
        zrange = [np.min(dep), np.max(dep)]
    didx = np.where((dep >= zrange[0]) & (dep <= zrange[1]))[0]
    v = vmodel[didx]
    depth = dep[didx]
    zvec = np.arange(np.min(depth), np.max(depth) + 0.5 * dz, dz) if dz is not None else depth
    all_v, lat0, lon0 = [], [], []
    for i in range(0, len(lat), spacing):
        for j in range(0, len(lon), spacing):
            v0 = np.array([v[pp, i, j] for pp in range(v.shape[0])])
            if not np.isnan(v0).any():
                all_v.append(np.interp(zvec, depth, v0) if dz is not None else v0)
                lat0.append(lat[i])
                lon0.append(lon[j])
    return np.array(all_v), np.array(lat0), np.array(lon0), zvec


def random_model(seed: int, n_depth=17, n_lat=9, n_lon=11) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    dep = np.sort(rng.choice(np.arange(0.0, 60.0, 0.5), n_depth, replace=False))
    lat = np.linspace(40, 45, n_lat)
    lon = np.linspace(-124, -118, n_lon)
    v = 2.5 + dep[:, None, None] / 30 + rng.normal(0, 0.1, (n_depth, n_lat, n_lon))
    holes = rng.random(v.shape) < 0.02
    v[holes] = np.nan
    return xr.Dataset(
        {"vs": (("depth", "latitude", "longitude"), v, {"units": "km/s"})},
        coords={"depth": dep, "latitude": lat, "longitude": lon},
        attrs={"velocity_variable": "vs"},
    )


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("spacing", "zrange", "dz"),
    [(1, None, None), (2, None, None), (3, [5.0, 40.0], None), (1, None, 2.0),
     (2, [10.0, 50.0], 0.7), (4, [3.0, 33.0], 5.0)],
)
def test_matches_seisgo_loop(seed, spacing, zrange, dz):
    model = random_model(seed)
    lat, lon, dep = (model[c].values for c in ("latitude", "longitude", "depth"))
    ref, lat0, lon0, zvec = seisgo_profiles(lat, lon, dep, model.vs.values, spacing, zrange, dz)
    got = extract_profiles(model, zrange=zrange, spacing=spacing, dz=dz)
    np.testing.assert_allclose(profile_array(got), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got.latitude.values, lat0)
    np.testing.assert_array_equal(got.longitude.values, lon0)
    np.testing.assert_array_equal(got.depth.values, zvec)


def test_drops_any_nan_profile_and_records_counts():
    model = random_model(0)
    model.vs[3, 2, 4] = np.nan  # one NaN drops node (2, 4) entirely
    got = extract_profiles(model)
    assert not ((got.lat_index == 2) & (got.lon_index == 4)).any()
    nodes = model.sizes["latitude"] * model.sizes["longitude"]
    assert got.attrs["n_nodes"] == nodes
    assert got.attrs["n_dropped_nan"] == nodes - got.sizes["profile"]
    assert np.isfinite(profile_array(got)).all()


def test_nan_outside_zrange_is_ignored():
    model = random_model(1)
    model["vs"][:] = model.vs.fillna(3.0)
    model.vs[-1, 0, 0] = np.nan  # only the deepest level is NaN
    zmax = float(model.depth[-2])
    assert extract_profiles(model, zrange=[0, zmax]).sizes["profile"] == 99
    assert extract_profiles(model).sizes["profile"] == 98


def test_interpolation_is_np_interp_including_clamping():
    rng = np.random.default_rng(5)
    depth = np.array([0.0, 1.0, 2.5, 7.0, 8.0])
    rows = rng.normal(size=(6, depth.size))
    new = np.array([-1.0, 0.0, 0.3, 2.5, 6.9, 8.0, 8.4])
    expected = np.array([np.interp(new, depth, r) for r in rows])
    np.testing.assert_allclose(interpolate_profiles(rows, depth, new), expected, rtol=1e-14)


def test_label_grid_scatters_back_with_nan_elsewhere():
    model = random_model(2)
    got = extract_profiles(model, spacing=2)
    grid = label_grid(got, np.arange(got.sizes["profile"], dtype=float))
    assert grid.shape == (got.sizes["grid_latitude"], got.sizes["grid_longitude"])
    assert np.isnan(grid).sum() == got.attrs["n_dropped_nan"]
    assert grid[got.lat_index.values[-1], got.lon_index.values[-1]] == got.sizes["profile"] - 1


def test_province_truth_is_carried():
    model = random_model(3)
    model["province"] = (("latitude", "longitude"), np.arange(99).reshape(9, 11))
    got = extract_profiles(model, spacing=2)
    expected = model.province.values[got.lat_index.values * 2, got.lon_index.values * 2]
    np.testing.assert_array_equal(got.province.values, expected)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"zrange": [100.0, 200.0]}, "velocity.profiles.zrange"),
        ({"zrange": [10.0, 10.2]}, "velocity.profiles.zrange"),
        ({"spacing": 0}, "velocity.profiles.spacing"),
        ({"dz": 0.0}, "velocity.profiles.dz"),
        ({"dz": -2.0}, "velocity.profiles.dz"),
    ],
)
def test_bad_parameters_name_the_key(kwargs, fragment):
    with pytest.raises(InputError, match=fragment.replace(".", r"\.")):
        extract_profiles(random_model(0), **kwargs)


def test_all_nan_selection_is_an_error():
    model = random_model(0)
    model["vs"][:] = np.nan
    with pytest.raises(InputError, match="free of NaN"):
        extract_profiles(model)


def test_lazy_model_reads_only_the_selection():
    model = random_model(0).chunk({"latitude": 3, "longitude": 4})
    got = extract_profiles(model, spacing=2, zrange=[10.0, 40.0])
    eager = extract_profiles(random_model(0), spacing=2, zrange=[10.0, 40.0])
    xr.testing.assert_identical(got, eager)


def test_the_workflow_stage_writes_what_ingest_then_profiles_write(tmp_path):
    """``ingest_profiles`` (the workflow's one job) against the two stage functions."""
    from seiscluster.velocity import stages

    example = {"n_lat": 8, "n_lon": 9, "depth_step": 5.0, "seed": 3}
    settings = {"zrange": [0.0, 60.0], "spacing": 2, "dz": 3.0}
    stages.ingest(model=str(tmp_path / "m1.nc"), example=example)
    stages.profiles(model=str(tmp_path / "m1.nc"), profiles=str(tmp_path / "p1.nc"),
                    **settings)
    stages.ingest_profiles(model=str(tmp_path / "m2.nc"), profiles=str(tmp_path / "p2.nc"),
                           example=example, threads=2, **settings)
    for name in ("m", "p"):
        xr.testing.assert_identical(xr.load_dataset(tmp_path / f"{name}1.nc"),
                                    xr.load_dataset(tmp_path / f"{name}2.nc"))
