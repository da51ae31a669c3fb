"""Agglomerative clustering of profiles: the dendrogram's cut, neighbouring nodes only,
longitude wrap and poles, repeated nodes, the sample of large grids, the config checks."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.cluster.hierarchy import cut_tree, fcluster
from scipy.ndimage import label as connected_regions
from sklearn.metrics import adjusted_rand_score

from seiscluster.config import compose
from seiscluster.errors import InputError
from seiscluster.velocity import stages
from seiscluster.velocity.agglomerative import (
    ProfileAgglomerative,
    fill_by_neighbours,
    grid_connectivity,
    wraps_around,
)
from seiscluster.velocity.grid import grid_nodes


def blobs(seed=0, n=40):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(m, 0.5, (n, 4)) for m in (0, 5, 10, 15)])


def grid_profiles(values, lat, lon):
    """A profiles dataset of one profile per finite node of ``values`` (lat, lon, depth)."""
    rows, cols = np.nonzero(np.isfinite(values[..., 0]))
    return xr.Dataset(
        {"velocity": (("profile", "depth"), values[rows, cols], {"units": "km/s"})},
        coords={"depth": np.arange(values.shape[2], dtype=float),
                "latitude": ("profile", lat[rows]), "longitude": ("profile", lon[cols]),
                "lat_index": ("profile", rows), "lon_index": ("profile", cols),
                "grid_latitude": ("grid_latitude", lat),
                "grid_longitude": ("grid_longitude", lon)},
        attrs={"velocity_variable": "vs"})


def map_of(prof, labels):
    out = np.zeros((prof.sizes["grid_latitude"], prof.sizes["grid_longitude"]), dtype=int)
    out[prof["lat_index"].values, prof["lon_index"].values] = labels + 1
    return out


def pieces(grid, cluster):
    return connected_regions(grid == cluster, structure=np.ones((3, 3)))[1]


@pytest.mark.parametrize("linkage", ["ward", "average", "complete", "single"])
def test_dendrogram_cut_gives_k_clusters(linkage):
    X = blobs()
    est = ProfileAgglomerative(n_clusters=4, linkage=linkage).fit(X)
    assert np.unique(est.labels_).size == 4
    assert est.linkage_.shape == (X.shape[0] - 1, 4)
    # the tree cut at 4 clusters is the clustering, and so is the height that
    # plots.dendrogram draws (halfway between the merges that give 4 and 3 clusters)
    assert adjusted_rand_score(cut_tree(est.linkage_, n_clusters=4).ravel(), est.labels_) == 1
    height = est.linkage_[[-4, -3], 2].mean()
    assert np.unique(fcluster(est.linkage_, height, criterion="distance")).size == 4
    # clusters numbered by increasing mean of their mean profile
    assert np.all(np.diff(est.cluster_centers_.mean(axis=1)) > 0)
    assert np.array_equal(est.predict(X), est.labels_)


def built_grid(seed=0):
    """Profiles of three kinds on a 10 x 24 grid: kind A in two patches (columns 0-5 and
    12-17) cut apart by kind B (6-11); kind C in columns 18-23."""
    rng = np.random.default_rng(seed)
    kinds = np.repeat([0, 1, 0, 2], 6)
    base = np.array([[3.0, 3.5, 4.0], [3.6, 4.0, 4.4], [4.2, 4.4, 4.6]])
    values = base[kinds][None, :, :] + rng.normal(0, 0.03, (10, 24, 3))
    return grid_profiles(values, np.linspace(40, 49, 10), np.linspace(-125, -113.5, 24))


def test_neighbours_give_connected_clusters_where_the_free_tree_does_not():
    prof = built_grid()
    X = prof["velocity"].values
    free = ProfileAgglomerative(n_clusters=3).fit(X)
    graph = grid_connectivity(prof)
    joined = ProfileAgglomerative(n_clusters=3).fit(X, connectivity=graph)
    free_map, joined_map = map_of(prof, free.labels_), map_of(prof, joined.labels_)
    assert max(pieces(free_map, c) for c in (1, 2, 3)) == 2  # kind A in two patches
    assert [pieces(joined_map, c) for c in (1, 2, 3)] == [1, 1, 1]
    assert joined.n_connected_components_ == 1


def test_connectivity_wraps_longitude_and_joins_a_pole_and_repeated_nodes():
    lat = np.array([-90.0, -80.0, 0.0, 80.0, 90.0])
    lon = np.arange(-180.0, 181.0, 30.0)  # 13 columns: -180 and 180 are one
    prof = grid_profiles(np.ones((lat.size, lon.size, 2)), lat, lon)
    assert wraps_around(lon) and wraps_around(np.arange(0.0, 360.0, 10.0))
    assert not wraps_around(np.linspace(-125, -113, 20))
    nodes = grid_nodes(prof, weights="none")
    graph = grid_connectivity(prof, nodes)
    assert graph.shape == (nodes.keep.size, nodes.keep.size) == (2 + 3 * 12,) * 2
    assert (graph != graph.T).nnz == 0 and graph.diagonal().sum() == 0
    node = nodes.inverse.reshape(lat.size, lon.size)
    north = node[4, 0]
    assert set(graph[north].indices) == set(node[3])  # the pole: every node of 80 N
    # 150 E and 180 (= -180) are neighbours through the wrap, and 180 is -180
    assert graph[node[2, 11], node[2, 12]] == 1 and node[2, 12] == node[2, 0]
    assert graph[node[2, 11], node[2, 1]] == 0
    regional = grid_connectivity(built_grid())
    assert regional[0, 23] == 0 and regional[0, 1] == 1 and regional[0, 25] == 1


def test_repeated_nodes_are_clustered_once(tmp_path):
    rng = np.random.default_rng(0)
    lat, lon = np.linspace(-60, 60, 7), np.arange(-180.0, 181.0, 20.0)
    values = np.where(lon[None, :, None] < 0, 3.0, 4.5) + rng.normal(0, 0.05, (7, 19, 5))
    values[:, -1] = values[:, 0]  # the column at 180 repeats the one at -180
    prof = grid_profiles(values, lat, lon)
    prof.to_netcdf(tmp_path / "p.nc")
    out = {name: str(tmp_path / name) for name in ("cluster_map.csv", "clusters.nc",
                                                   "model.pkl", "metrics.json", "d.png")}
    for connectivity in ("none", "neighbours"):
        stages.fit_agglomerative(
            profiles=str(tmp_path / "p.nc"), cluster_map=out["cluster_map.csv"],
            clusters=out["clusters.nc"], model=out["model.pkl"], metrics=out["metrics.json"],
            dendrogram=out["d.png"], agglomerative={"n_clusters": 2,
                                                   "connectivity": connectivity},
            source="s", tag="t", grid={"weights": "none"})
        metrics = json.loads((tmp_path / "metrics.json").read_text())
        assert metrics["repeated_nodes"] == 7 and metrics["fit_size"] == 7 * 18
        with open(tmp_path / "model.pkl", "rb") as f:
            assert pickle.load(f).linkage_.shape[0] == 7 * 18 - 1  # one leaf per point
        table = pd.read_csv(tmp_path / "cluster_map.csv")
        first, last = table[table.lon == -180], table[table.lon == 180]
        assert first.cluster.tolist() == last.cluster.tolist()
        assert (tmp_path / "d.png").stat().st_size > 0


def test_large_grids_build_the_tree_on_a_seeded_draw():
    X = blobs(n=100)
    est = ProfileAgglomerative(n_clusters=4, max_fit_size=120, random_state=3).fit(X)
    assert est.fit_indices_.size == 120 and est.linkage_.shape[0] == 119
    assert est.labels_.size == X.shape[0] and np.unique(est.labels_).size == 4
    again = ProfileAgglomerative(n_clusters=4, max_fit_size=120, random_state=3).fit(X)
    assert np.array_equal(est.labels_, again.labels_)
    truth = np.repeat(np.arange(4), 100)
    assert adjusted_rand_score(truth, est.labels_) == 1
    # with a connectivity graph every profile is in the tree
    prof = built_grid()
    joined = ProfileAgglomerative(n_clusters=3, max_fit_size=10).fit(
        prof["velocity"].values, connectivity=grid_connectivity(prof))
    assert joined.fit_indices_ is None


def test_weights_weigh_the_cluster_means_not_the_tree():
    X = blobs()
    w = np.random.default_rng(0).uniform(0.5, 2.0, X.shape[0])
    plain = ProfileAgglomerative(n_clusters=4).fit(X)
    weighted = ProfileAgglomerative(n_clusters=4).fit(X, sample_weight=w)
    assert np.array_equal(plain.labels_, weighted.labels_)
    members = weighted.labels_ == 0
    np.testing.assert_allclose(weighted.cluster_centers_[0],
                               np.average(X[members], axis=0, weights=w[members]))


def test_unlabelled_nodes_take_their_neighbours_cluster():
    prof = built_grid()
    graph = grid_connectivity(prof)
    truth = np.repeat([0, 1, 2, 3], 6)[prof["lon_index"].values]
    known = np.random.default_rng(0).random(truth.size) < 0.5
    filled = fill_by_neighbours(graph, np.where(known, truth, 0), known)
    assert np.mean(filled == truth) > 0.95 and np.array_equal(filled[known], truth[known])


def test_bad_settings_are_one_sentence():
    with pytest.raises(InputError, match=r"^velocity\.agglomerative\.n_clusters: expected at "
                                         r"most the number of distinct profiles \(160\)"):
        ProfileAgglomerative(n_clusters=200).fit(blobs())
    with pytest.raises(InputError, match=r"^velocity\.agglomerative\.linkage: expected one "):
        ProfileAgglomerative(linkage="median").fit(blobs())
    for overrides, start in (
            (["velocity.consensus.seeds=2", "velocity.consensus.methods=[gmm]"],
             "velocity.consensus.methods: expected methods that velocity.methods runs"),
            (["velocity.consensus.seeds=2", "velocity.methods=[som]"],
             "velocity.consensus.seeds: expected 0 when velocity.methods (som)")):
        with pytest.raises(InputError) as err:
            compose(overrides)
        message = str(err.value)
        assert message.startswith(start) and message.endswith(".") and "\n" not in message
