"""Tests of seiscluster.velocity.example: the embedded synthetic model."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from seiscluster.errors import InputError
from seiscluster.velocity.example import PROVINCES, make_example_model
from seiscluster.velocity.io import DIMS, open_model, validate_model, write_model


@pytest.fixture(scope="module")
def model():
    return make_example_model()


def test_contract_shapes_and_attributes(model):
    validate_model(model)
    assert model.attrs["velocity_variable"] == "vs"
    assert model.vs.dims == DIMS
    assert model.vs.shape == (81, 36, 48)
    assert model.province.dims == ("latitude", "longitude")
    assert model.province.dtype == np.int32
    assert model.vs.attrs["units"] == "km/s"
    assert "synthetic" in model.attrs["title"].lower()
    assert "Synthetic" in model.attrs["comment"]
    assert model.depth.attrs["positive"] == "down"
    np.testing.assert_allclose(model.depth.values, np.arange(81.0))
    assert model.latitude.values[[0, -1]].tolist() == [40.0, 49.0]
    assert model.longitude.values[[0, -1]].tolist() == [-125.0, -117.0]
    for dim in DIMS:
        assert model[dim].dtype == np.float64
        assert (np.diff(model[dim].values) > 0).all()


def test_deterministic_from_seed(model):
    again = make_example_model()
    np.testing.assert_array_equal(again.vs.values, model.vs.values)
    np.testing.assert_array_equal(again.province.values, model.province.values)
    other = make_example_model(seed=1)
    assert not np.array_equal(other.province.values, model.province.values)
    assert np.nanmax(np.abs(other.vs.values - model.vs.values)) > 0.1


def test_provinces_and_nan_pattern(model):
    vs, province = model.vs.values, model.province.values
    any_nan, all_nan = np.isnan(vs).any(axis=0), np.isnan(vs).all(axis=0)
    assert any_nan.mean() == pytest.approx(0.05, abs=0.002)
    partial = any_nan & ~all_nan
    assert partial.sum() >= 10
    assert np.isnan(vs[:, partial]).sum(axis=0).max() <= 5
    assert all_nan[0, 0]  # the south-west "offshore" corner
    np.testing.assert_array_equal(province == 0, any_nan)
    counts = np.bincount(province.ravel(), minlength=6)
    assert counts.size == 6 and (counts[1:] > 100).all()
    assert np.nanmin(vs) > 1.2 and np.nanmax(vs) < 5.0


def test_profiles_are_plausible(model):
    vs, province = model.vs.values, model.province.values
    means = np.array([vs[:, province == k].mean(axis=1) for k in range(1, 6)])
    names = list(PROVINCES)
    basin, thick = names.index("sedimentary_basin"), names.index("thick_continental_crust")
    assert means[basin, 0] < 2.0 < means[thick, 0]  # low-velocity sediments at the surface
    assert (means[:, 10] > 3.0).all() and (means[:, 10] < 4.0).all()  # crust
    assert (means[:, -1] > 4.1).all() and (means[:, -1] < 4.8).all()  # mantle at 80 km
    assert means[thick, 40] < 4.0 < means[names.index("forearc_basin"), 40]  # Moho depths


@pytest.mark.parametrize(("seed", "n_provinces", "min_ari"),
                         [(0, 5, 0.9), (1, 5, 0.9), (2, 3, 0.9), (3, 8, 0.85)])
def test_kmeans_recovers_provinces_but_not_trivially(seed, n_provinces, min_ari):
    ds = make_example_model(seed=seed, n_provinces=n_provinces)
    province = ds.province.values.ravel()
    keep = province > 0
    profiles = ds.vs.values.reshape(ds.sizes["depth"], -1).T[keep]
    labels = KMeans(n_provinces, n_init=10, random_state=0).fit_predict(profiles)
    score = adjusted_rand_score(province[keep], labels)
    assert set(np.unique(province[keep])) == set(range(1, n_provinces + 1))
    assert min_ari < score < 0.999  # graded boundaries and noise: never perfect


def test_no_nan_and_noise_free():
    ds = make_example_model(n_lat=5, n_lon=7, noise=0.0, nan_fraction=0.0, depth_max=10,
                            depth_step=2.5)
    assert ds.vs.shape == (5, 5, 7)
    assert np.isfinite(ds.vs.values).all() and (ds.province.values > 0).all()


def test_large_grid_is_fast():
    start = time.perf_counter()
    ds = make_example_model(n_lat=100, n_lon=240, depth_max=100.0)
    assert time.perf_counter() - start < 2.0
    assert ds.vs.shape == (101, 100, 240)
    assert np.mean(ds.province.values == 0) == pytest.approx(0.05, abs=0.001)


def test_write_and_read_back(tmp_path, model):
    path = tmp_path / "example.nc"
    write_model(model, path)
    back = open_model(path)
    np.testing.assert_array_equal(back.vs.values, model.vs.values)
    assert back.attrs["velocity_variable"] == "vs"
    assert "province" not in back  # the reader keeps only the velocity variable


@pytest.mark.parametrize(
    ("key", "value"),
    [("n_lat", 1), ("n_lon", 2.5), ("depth_max", 0.0), ("depth_step", -1.0),
     ("depth_step", 100.0), ("n_provinces", 1), ("n_provinces", len(PROVINCES) + 1),
     ("noise", -0.1), ("nan_fraction", 1.0), ("nan_fraction", -0.01)],
)
def test_bad_arguments(key, value):
    with pytest.raises(InputError, match=rf"data\.velocity\.example\.{key}: expected .*got"):
        make_example_model(**{key: value})
