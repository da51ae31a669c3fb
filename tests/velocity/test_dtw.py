"""The compiled DTW engine against tslearn: distances, pruned assignments, DBA, seeding."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from tslearn.barycenters.dba import dtw_barycenter_averaging_petitjean
from tslearn.clustering.kmeans import _k_init_metric
from tslearn.metrics import cdist_dtw

from seiscluster.config import n_init_for
from seiscluster.velocity import dtw
from seiscluster.velocity.elbow import elbow_scan
from seiscluster.velocity.kmeans import ProfileKMeans

CONSTRAINTS = [
    {},
    {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": 3},
    {"sakoe_chiba_radius": 0},
    {"global_constraint": "itakura"},
    {"itakura_max_slope": 1.5},
]


def profiles(n: int = 80, n_depth: int = 25, seed: int = 0) -> np.ndarray:
    """Velocity-like profiles: a step (Moho) at one of three depths, plus noise."""
    rng = np.random.default_rng(seed)
    z = np.arange(n_depth)
    moho = rng.choice([6, 12, 18], n) + rng.integers(-2, 3, n)
    return np.where(z < moho[:, None], 3.2, 4.4) + 0.02 * z + rng.normal(0, 0.05, (n, n_depth))


@pytest.mark.parametrize("params", CONSTRAINTS)
def test_distances_equal_tslearn_with_the_same_constraint(params):
    X = profiles()
    band = dtw.dtw_band(X.shape[1], **params)
    np.testing.assert_allclose(dtw.cdist_dtw(X, None, band, n_jobs=2),
                               cdist_dtw(X[:, :, None], **params), rtol=0, atol=1e-9)
    centres = X[[3, 40, 77]]
    np.testing.assert_allclose(dtw.cdist_dtw(X, centres, band),
                               cdist_dtw(X[:, :, None], centres[:, :, None], **params),
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize("params", CONSTRAINTS)
def test_pruned_assignment_equals_the_full_argmin(params):
    X = profiles(n=150, seed=1)
    centres = X[[0, 5, 9, 5, 60, 61]]  # a duplicate centre: the first index wins the tie
    band = dtw.dtw_band(X.shape[1], **params)
    full = cdist_dtw(X[:, :, None], centres[:, :, None], **params)
    labels, distances = dtw.assign(X, centres, band, n_jobs=2)
    np.testing.assert_array_equal(labels, full.argmin(axis=1))
    np.testing.assert_array_equal(distances, full.min(axis=1))
    assert not np.any(labels == 3)


@pytest.mark.parametrize("params", [{}, {"sakoe_chiba_radius": 2}, {"itakura_max_slope": 2.0}])
def test_dba_equals_tslearn(params):
    X = profiles(n=30, seed=2)
    members = np.arange(0, 30, 2)
    start = X[members].mean(axis=0)
    ref = dtw_barycenter_averaging_petitjean(X[members][:, :, None], init_barycenter=start[:, None],
                                             metric_params=params)[:, 0]
    ours = dtw.dba(X, members, start, dtw.dtw_band(X.shape[1], **params))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_kmeans_plusplus_draws_tslearn_seeds():
    X = profiles(n=60, seed=3)
    band = dtw.dtw_band(X.shape[1])
    ref = _k_init_metric(X[:, :, None], 4, cdist_metric=lambda a, b: cdist_dtw(a, b),
                         random_state=np.random.RandomState(5))
    ours = dtw.kmeans_plusplus(X, 4, band, np.random.RandomState(5))
    np.testing.assert_array_equal(ours, ref[:, :, 0])


def test_auto_constraint_is_a_tenth_of_the_profile_length():
    assert dtw.tslearn_params(81, {"global_constraint": "auto"}) == {
        "global_constraint": "sakoe_chiba", "sakoe_chiba_radius": 9}
    assert dtw.tslearn_params(81, {"global_constraint": "auto", "sakoe_chiba_radius": 4}) == {
        "global_constraint": "sakoe_chiba", "sakoe_chiba_radius": 4}
    for got, want in zip(dtw.dtw_band(40, "auto"), dtw.dtw_band(40, "sakoe_chiba", 4),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    assert (n_init_for("dtw", None), n_init_for("euclidean", None), n_init_for("dtw", 7)) == (
        3, 10, 7)


def test_dtw_fit_is_seeded_threaded_alike_and_logs_every_start(caplog):
    X = profiles(n=120, seed=4)
    params = dict(n_clusters=3, metric="dtw", n_init=2, random_state=3,
                  metric_params={"global_constraint": "auto"})
    with caplog.at_level(logging.INFO, logger="seiscluster.velocity.kmeans"):
        one = ProfileKMeans(**params).fit(X)
    two = ProfileKMeans(**params, n_jobs=2).fit(X)
    np.testing.assert_array_equal(one.labels_, two.labels_)
    np.testing.assert_array_equal(one.cluster_centers_, two.cluster_centers_)
    starts = [r.getMessage() for r in caplog.records if "start" in r.getMessage()]
    assert len(starts) == 2 and starts[1].startswith("k-means k=3 (dtw, 120 profiles) start 2/2")


def test_elbow_scan_logs_every_k_and_stability_fit(caplog):
    X = profiles(n=60, seed=5)
    with caplog.at_level(logging.INFO, logger="seiscluster.velocity.elbow"):
        elbow_scan(X, [2, 3, 4], metric="dtw", n_init=None, max_iter=3,
                   metric_params={"global_constraint": "auto"}, stability_seeds=2,
                   sample_size=40, silhouette_sample_size=30, gap_references=2)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("elbow scan k=2..4 (dtw, n_init=3) of 60 profiles, then 6 "
                               "stability fits on 32")
    for k in (2, 3, 4):
        assert sum(m.startswith(f"elbow scan k={k} (dtw, n_init=3): inertia") for m in lines) == 1
        assert sum(m.startswith(f"stability k={k} seed") for m in lines) == 2
