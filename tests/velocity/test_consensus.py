"""Consensus over seeds: label matching, agreement, determinism, the stage's products."""

import json

import numpy as np
import pandas as pd
import xarray as xr

from seiscluster.velocity import consensus as cons
from seiscluster.velocity import stages
from seiscluster.velocity.kmeans import ProfileKMeans


def kmeans_refit(k, n_init=1):
    def refit(X, w, seed, idx):
        est = ProfileKMeans(n_clusters=k, n_init=n_init, random_state=seed)
        return est.fit(X[idx], sample_weight=None if w is None else w[idx]).predict(X)
    return refit


def test_matching_undoes_a_renaming_and_counts_agreement():
    final = np.array([1, 1, 2, 2, 3, 3, 3])
    renamed = np.array([2, 2, 0, 0, 1, 1, 1])
    assert np.array_equal(cons.match_labels(final, renamed), final)
    moved = np.array([2, 2, 0, 1, 1, 1, 1])  # node 3 moved to the third cluster
    assert np.array_equal(cons.match_labels(final, moved), [1, 1, 2, 3, 3, 3, 3])
    np.testing.assert_allclose(cons.agreement(final, [renamed, moved]),
                               [1, 1, 1, 0.5, 1, 1, 1])
    # a refit with more clusters than the final one: the extra cluster matches nothing
    assert cons.match_labels(np.array([1, 1, 2, 2]), np.array([0, 1, 2, 2])).tolist() \
        == [1, -1, 2, 2]


def test_agreement_is_one_for_separated_clusters_and_lower_between_them():
    rng = np.random.default_rng(0)
    separated = np.concatenate([rng.normal(m, 0.2, (60, 3)) for m in (0, 5, 10)])
    final = ProfileKMeans(n_clusters=3, random_state=0).fit(separated).labels_ + 1
    result = cons.consensus(separated, final, kmeans_refit(3), seeds=5, first_seed=1,
                            fraction=0.8)
    assert np.all(result["agreement"] == 1.0) and result["ari"] == [1.0] * 5
    assert result["seeds"] == [1, 2, 3, 4, 5]
    # a continuum cut in two: nodes near the cut fall either way, the ends never
    line = np.repeat(np.linspace(0, 1, 200)[:, None], 3, axis=1)
    line += rng.normal(0, 0.01, line.shape)
    final = ProfileKMeans(n_clusters=2, random_state=0).fit(line).labels_ + 1
    result = cons.consensus(line, final, kmeans_refit(2), seeds=8, first_seed=1,
                            fraction=0.5)
    agreement = result["agreement"]
    assert agreement.min() < 1.0 and np.all(agreement[:40] == 1) and np.all(agreement[-40:] == 1)
    assert np.argmin(agreement) in range(80, 120)
    again = cons.consensus(line, final, kmeans_refit(2), seeds=8, first_seed=1, fraction=0.5)
    assert np.array_equal(again["agreement"], agreement)
    stats = cons.summary(agreement, 0.8)
    assert 0 < stats["low_share"] < 0.5 and stats["n_low"] == int((agreement < 0.8).sum())


def test_draws_are_seeded_and_complete_at_one():
    assert np.array_equal(cons.draw(10, 1.0, 3), np.arange(10))
    a, b = cons.draw(100, 0.8, 3), cons.draw(100, 0.8, 3)
    assert np.array_equal(a, b) and a.size == 80 and not np.array_equal(a, cons.draw(100, 0.8, 4))


def test_consensus_stage_writes_agreement_map_and_low_nodes(tmp_path):
    stages.ingest(model=str(tmp_path / "m.nc"),
                  example={"n_lat": 12, "n_lon": 14, "depth_step": 4})
    stages.profiles(model=str(tmp_path / "m.nc"), profiles=str(tmp_path / "p.nc"))
    files = {}
    for method in ("kmeans", "agglomerative"):
        out = tmp_path / method
        common = dict(profiles=str(tmp_path / "p.nc"), cluster_map=str(out / "map.csv"),
                      clusters=str(out / "clusters.nc"), model=str(out / "model.pkl"),
                      metrics=str(out / "metrics.json"), source="s", tag="t")
        if method == "kmeans":
            stages.fit_kmeans(**common, seisgo=str(out / "seisgo"), kmeans={
                "n_clusters": 5, "metric": "euclidean", "metric_params": {},
                "max_iter_barycenter": 100, "n_init": 2, "max_iter": 50, "tol": 1e-6,
                "random_state": 0})
        else:
            stages.fit_agglomerative(**common, dendrogram=str(out / "d.png"),
                                     agglomerative={"n_clusters": 5,
                                                    "connectivity": "neighbours"})
        files[f"{method}_clusters"] = str(out / "clusters.nc")
    paths = {name: str(tmp_path / f"consensus/{name}") for name in
             ("consensus.nc", "metrics.json", "low.csv", "map.png")}
    stages.consensus(profiles=str(tmp_path / "p.nc"), agreement=paths["consensus.nc"],
                     metrics=paths["metrics.json"], low_nodes=paths["low.csv"],
                     figure=paths["map.png"], consensus={"seeds": 3, "low_agreement": 0.9},
                     methods=["kmeans", "agglomerative"], kmeans={"n_init": 2}, gmm={},
                     agglomerative={"connectivity": "neighbours"}, **files)
    metrics = json.loads((tmp_path / "consensus/metrics.json").read_text())
    assert set(metrics["methods"]) == {"kmeans", "agglomerative"}
    assert metrics["methods"]["kmeans"]["seeds"] == [1, 2, 3]
    with xr.open_dataset(paths["consensus.nc"]) as ds:
        assert ds["agreement"].dims == ("clustering", "latitude", "longitude")
        values = ds["agreement"].values
        assert np.nanmin(values) >= 0 and np.nanmax(values) <= 1
        for i, method in enumerate(ds["clustering"].values):
            finite = values[i][np.isfinite(values[i])]
            assert np.mean(finite < 0.9) == metrics["methods"][method]["low_share"]
        vote = ds["method_agreement"].values  # k-means against agglomerative, matched
        finals = ds["cluster_label"].values
    between = metrics["between_methods"]
    assert between["reference"] == "kmeans" and set(between["ari"]) == {"agglomerative"}
    assert set(np.unique(vote[np.isfinite(vote)])) <= {0.0, 1.0}
    same = vote[np.isfinite(vote)] == 1
    assert 0 < same.mean() <= 1 and (vote[np.isnan(finals[0])] != vote[np.isnan(finals[0])]).all()
    low = pd.read_csv(paths["low.csv"])
    assert list(low.columns) == ["method", "lat", "lon", "cluster", "agreement"]
    assert (low["agreement"] < 0.9).all()
    assert (tmp_path / "consensus/map.png").stat().st_size > 0
