"""Global grids: repeated nodes clustered once and restored, area weights where they count."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from seiscluster.errors import InputError
from seiscluster.velocity import stages
from seiscluster.velocity.elbow import calinski_harabasz_scores, mean_silhouettes
from seiscluster.velocity.grid import area_weights, distinct_points, grid_nodes
from seiscluster.velocity.kmeans import ProfileKMeans
from seiscluster.velocity.profiles import extract_profiles
from seiscluster.velocity.som import ProfileSOM


def global_model(step: float = 10.0, lon0: float = -180.0) -> xr.Dataset:
    """A global model with pole rows and a longitude column repeated at both ends; the
    velocity is a smooth function of the point, so repeated nodes hold equal profiles."""
    lat = np.arange(-90, 90 + step / 2, step)
    lon = np.arange(lon0, lon0 + 360 + step / 2, step)
    depth = np.arange(0.0, 50.0, 10.0)
    la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    pattern = np.sin(la) + np.cos(la) * np.cos(lo)  # one value per point of the sphere
    v = 3.0 + 0.02 * depth[:, None, None] + 0.5 * pattern[None]
    return xr.Dataset({"v": (("depth", "latitude", "longitude"), v, {"units": "km/s"})},
                      coords={"depth": depth, "latitude": lat, "longitude": lon},
                      attrs={"velocity_variable": "v"})


@pytest.mark.parametrize("lon0", [-180.0, 0.0])
def test_repeated_nodes_found_once(lon0):
    prof = extract_profiles(global_model(lon0=lon0)).load()
    n_lat, n_lon = 19, 37
    nodes = grid_nodes(prof)
    # two pole rows of n_lon nodes each one point, and the repeated column on the other rows
    assert nodes.n_duplicates == 2 * (n_lon - 1) + (n_lat - 2)
    assert nodes.keep.size == (n_lat - 2) * (n_lon - 1) + 2
    assert np.array_equal(np.sort(nodes.keep), nodes.keep)
    X = prof["velocity"].values
    np.testing.assert_allclose(nodes.restore(X[nodes.keep]), X, atol=1e-12)


def test_distinct_points_keep_the_first_node_in_order():
    keep, inverse = distinct_points(np.array([90, 90, 0, 0, 0]),
                                    np.array([0, 10, -180, 0, 180]))
    assert keep.tolist() == [0, 2, 3]
    assert inverse.tolist() == [0, 0, 1, 2, 1]


def test_area_weights_are_cos_latitude_and_a_polar_cap():
    prof = extract_profiles(global_model(step=2.0)).load()
    nodes = grid_nodes(prof, weights="cos_lat")
    lat = prof["latitude"].values[nodes.keep]
    w = nodes.weights
    inner = np.abs(lat) < 90
    ratio = w[inner] / np.cos(np.radians(lat[inner]))
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    # the pole's one node holds the whole cap: 2 pi (1 - cos 1 deg) against 2 deg x 2 sin 1 deg
    half = np.radians(1.0)
    cap = 2 * np.pi * (1 - np.cos(half)) / (2 * half * 2 * np.sin(half))
    np.testing.assert_allclose(w[~inner] / ratio[0], cap, rtol=1e-12)
    # the weights add up to the sphere: every point counted once
    np.testing.assert_allclose(w.mean(), 1.0)
    assert area_weights(prof, nodes.keep).size == nodes.keep.size


def test_auto_weights_only_for_wide_grids_and_euclidean():
    wide = extract_profiles(global_model()).load()
    regional = wide.isel(profile=np.flatnonzero(np.abs(wide["latitude"].values) <= 10))
    assert grid_nodes(wide).mode == "cos_lat"
    assert grid_nodes(regional).mode == "none" and grid_nodes(regional).weights is None
    assert grid_nodes(regional, weights="cos_lat").mode == "cos_lat"
    assert grid_nodes(wide, weights="none").weights is None
    assert grid_nodes(wide, weights_lat_span=180).mode == "none"
    assert grid_nodes(wide, metric="dtw").mode == "none"
    with pytest.raises(InputError, match=r"velocity\.grid\.weights"):
        grid_nodes(wide, weights="area")


def built_example() -> xr.Dataset:
    """Many profiles of value 0 near the pole (little area), 10 of value 1.5 and 10 of 3
    at the equator: unweighted k=2 splits off the polar crowd, weighted it splits the
    equatorial profiles."""
    lat = np.arange(-80.0, 81.0, 10.0)
    lon = np.arange(0.0, 360.0, 9.0)
    rows = [(16, j, 0.0) for j in range(40)] + [(8, j, 1.5) for j in range(10)] \
        + [(8, j, 3.0) for j in range(10, 20)]
    i, j, value = (np.array(c) for c in zip(*rows, strict=True))
    noise = np.random.default_rng(0).normal(0, 0.01, (i.size, 3))
    return xr.Dataset(
        {"velocity": (("profile", "depth"), value[:, None] + noise)},
        coords={"depth": [0.0, 1.0, 2.0], "latitude": ("profile", lat[i]),
                "longitude": ("profile", lon[j]), "lat_index": ("profile", i),
                "lon_index": ("profile", j), "grid_latitude": lat, "grid_longitude": lon})


def test_weights_move_the_partition_as_expected():
    prof = built_example()
    X = prof["velocity"].values
    nodes = grid_nodes(prof, weights="cos_lat")
    plain = ProfileKMeans(n_clusters=2, n_init=5).fit(X).labels_
    weighted = ProfileKMeans(n_clusters=2, n_init=5).fit(X, sample_weight=nodes.weights).labels_
    polar, low, high = plain[:40], plain[40:50], plain[50:]
    assert len({*polar}) == 1 and len({*low, *high}) == 1 and polar[0] != low[0]
    polar, low, high = weighted[:40], weighted[40:50], weighted[50:]
    assert len({*polar, *low}) == 1 and len({*high}) == 1 and low[0] != high[0]


def test_integer_weights_equal_repeated_profiles():
    X = np.random.default_rng(1).normal(0, 1, (60, 4)) + np.repeat(np.eye(4)[:3] * 6, 20, 0)
    w = np.random.default_rng(2).integers(1, 4, 60)
    weighted = ProfileKMeans(n_clusters=3, n_init=3).fit(X, sample_weight=w)
    repeated = ProfileKMeans(n_clusters=3, n_init=3).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_)
    np.testing.assert_allclose(weighted.inertia_, repeated.inertia_)
    labels = weighted.labels_
    # the same dispersion ratio; the (n - k) / (k - 1) factor counts the profiles, not weights
    n, total = X.shape[0], int(w.sum())
    np.testing.assert_allclose(
        calinski_harabasz_scores(X, [labels], w.astype(float)) * (total - 3) / (n - 3),
        calinski_harabasz_scores(np.repeat(X, w, axis=0), [np.repeat(labels, w)]))
    D = np.abs(X[:, None, 0] - X[None, :, 0])
    np.testing.assert_array_equal(mean_silhouettes(D, [labels], np.ones(60)),
                                  mean_silhouettes(D, [labels]))


def test_weights_refused_for_dtw_and_bad_shapes():
    X = np.random.default_rng(0).normal(size=(20, 5))
    with pytest.raises(InputError, match="euclidean"):
        ProfileKMeans(n_clusters=2, metric="dtw").fit(X, sample_weight=np.ones(20))
    with pytest.raises(InputError, match="one per profile"):
        ProfileKMeans(n_clusters=2).fit(X, sample_weight=np.ones(19))
    with pytest.raises(InputError, match="positive"):
        ProfileKMeans(n_clusters=2).fit(X, sample_weight=np.zeros(20))


def test_som_weighted_training_order_is_seeded():
    prof = built_example()
    X = prof["velocity"].values
    w = grid_nodes(prof, weights="cos_lat").weights
    som = dict(grid_size=[2, 1], niteration=400, sigma=0.3)
    a = ProfileSOM(**som).fit(X, sample_weight=w)
    b = ProfileSOM(**som).fit(X, sample_weight=w)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    assert not np.array_equal(a.weights_, ProfileSOM(**som).fit(X).weights_)


@pytest.mark.parametrize("method", ["kmeans", "som"])
def test_stage_clusters_repeated_nodes_once_and_restores_them(tmp_path, method):
    model = tmp_path / "model.nc"
    global_model().to_netcdf(model)
    stages.profiles(model=str(model), profiles=str(tmp_path / "profiles.nc"))
    section = ({"kmeans": {"n_clusters": 3, "n_init": 2, "metric": "euclidean",
                           "metric_params": {}, "max_iter_barycenter": 10, "max_iter": 50,
                           "tol": 1e-6, "random_state": 0}}
               if method == "kmeans" else {"som": {"grid_size": [2, 2], "niteration": 500}})
    fit = stages.fit_kmeans if method == "kmeans" else stages.fit_som
    fit(profiles=str(tmp_path / "profiles.nc"), cluster_map=str(tmp_path / "map.csv"),
        clusters=str(tmp_path / "clusters.nc"), model=str(tmp_path / "model.pkl"),
        seisgo=str(tmp_path / "seisgo"), metrics=str(tmp_path / "metrics.json"),
        source="vmodel", tag="v", **section)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["repeated_nodes"] == 2 * 36 + 17 and metrics["weights"] == "cos_lat"
    table = pd.read_csv(tmp_path / "map.csv")
    assert len(table) == 19 * 37
    with xr.open_dataset(tmp_path / "clusters.nc") as ds:
        grid = ds["cluster_label"].values
        assert int(ds["cluster_size"].sum()) == 19 * 37
    assert (grid[0] == grid[0, 0]).all() and (grid[-1] == grid[-1, 0]).all()
    np.testing.assert_array_equal(grid[:, 0], grid[:, -1])
