"""ProfileKMeans reproduces tslearn's TimeSeriesKMeans (what seisgo fits), label for label."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from tslearn.clustering import EmptyClusterError, TimeSeriesKMeans
from tslearn.metrics import cdist_dtw

from seiscluster.errors import InputError
from seiscluster.velocity import kmeans as km
from seiscluster.velocity.kmeans import ProfileKMeans, check_profiles


def provinces(n=600, n_depth=30, seed=0):
    """Velocity-like profiles of 4 provinces with lateral noise (overlapping, not trivial)."""
    rng = np.random.default_rng(seed)
    z = np.linspace(0, 60, n_depth)
    moho = np.array([20.0, 28.0, 35.0, 42.0])
    base = np.where(z < moho[:, None], 3.0 + 0.02 * z, 4.3 + 0.003 * z)
    label = rng.integers(0, 4, n)
    X = base[label] + rng.normal(0, 0.08, (n, 1)) + rng.normal(0, 0.05, (n, n_depth))
    return X


def in_our_order(model: TimeSeriesKMeans):
    """tslearn's centers and labels renumbered by ascending centroid mean (our convention)."""
    centers = model.cluster_centers_[:, :, 0]
    order = np.argsort(centers.mean(axis=1), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return centers[order], rank[model.labels_]


@pytest.mark.parametrize("n_clusters", [2, 4, 7])
@pytest.mark.parametrize("seed", [0, 3])
def test_euclidean_single_start_equals_tslearn(n_clusters, seed):
    X = provinces(seed=seed)
    ref = TimeSeriesKMeans(n_clusters=n_clusters, random_state=seed).fit(X[:, :, None])
    ours = ProfileKMeans(n_clusters=n_clusters, n_init=1, random_state=seed).fit(X)
    centers, labels = in_our_order(ref)
    np.testing.assert_array_equal(ours.labels_, labels)
    np.testing.assert_allclose(ours.cluster_centers_, centers, rtol=0, atol=1e-12)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-12)
    assert ours.n_iter_ == ref.n_iter_


def test_n_init_equals_tslearn_and_never_worse_than_seisgo():
    X = provinces(n=400, seed=5)
    ref = TimeSeriesKMeans(n_clusters=6, n_init=10, random_state=1).fit(X[:, :, None])
    best = ProfileKMeans(n_clusters=6, n_init=10, random_state=1).fit(X)
    single = ProfileKMeans(n_clusters=6, n_init=1, random_state=1).fit(X)
    np.testing.assert_array_equal(best.labels_, in_our_order(ref)[1])
    assert best.inertia_ == pytest.approx(ref.inertia_, rel=1e-12)
    assert best.inertia_ <= single.inertia_


def test_empty_cluster_retry_follows_tslearn(monkeypatch):
    """A start that empties a cluster is dropped and the next start continues the stream."""
    X = provinces(n=300, seed=2)
    calls = {"ours": 0, "tslearn": 0}
    lloyd, fit_one = km._lloyd, TimeSeriesKMeans._fit_one_init

    def failing_lloyd(*args):
        calls["ours"] += 1
        if calls["ours"] == 1:
            raise km._EmptyCluster
        return lloyd(*args)

    def failing_fit_one(self, *args):
        calls["tslearn"] += 1
        out = fit_one(self, *args)  # consumes the random stream like a real failure
        if calls["tslearn"] == 1:
            raise EmptyClusterError
        return out

    monkeypatch.setattr(km, "_lloyd", failing_lloyd)
    monkeypatch.setattr(TimeSeriesKMeans, "_fit_one_init", failing_fit_one)
    ref = TimeSeriesKMeans(n_clusters=4, n_init=2, random_state=0).fit(X[:, :, None])
    ours = ProfileKMeans(n_clusters=4, n_init=2, random_state=0).fit(X)
    assert calls == {"ours": 3, "tslearn": 3}
    np.testing.assert_array_equal(ours.labels_, in_our_order(ref)[1])
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-12)


def test_fewer_distinct_profiles_than_clusters_is_reported():
    X = np.repeat(provinces(n=3), 5, axis=0)
    with pytest.raises(InputError, match=r"velocity.kmeans.n_clusters=4 left a cluster empty"):
        ProfileKMeans(n_clusters=4, n_init=1).fit(X)


def test_dtw_equals_tslearn_on_a_tiny_set():
    X = provinces(n=24, n_depth=10, seed=4)
    params = dict(n_clusters=3, metric="dtw", max_iter=4, max_iter_barycenter=4, random_state=0)
    ref = TimeSeriesKMeans(**params).fit(X[:, :, None])
    ours = ProfileKMeans(n_init=1, **params).fit(X)
    centers, labels = in_our_order(ref)
    np.testing.assert_array_equal(ours.labels_, labels)
    np.testing.assert_allclose(ours.cluster_centers_, centers)
    assert ours.inertia_ == pytest.approx(ref.inertia_)
    np.testing.assert_array_equal(ours.predict(X), ours.labels_)


def test_clusters_are_numbered_by_mean_velocity_and_labels_follow():
    X = provinces(seed=7)
    model = ProfileKMeans(n_clusters=5, n_init=3, random_state=7).fit(X)
    means = model.cluster_centers_.mean(axis=1)
    assert np.all(np.diff(means) > 0)
    np.testing.assert_array_equal(model.labels_, cdist(X, model.cluster_centers_).argmin(axis=1))
    np.testing.assert_allclose(model.transform(X), cdist(X, model.cluster_centers_))
    for k in range(5):  # each centroid is the mean of its members
        np.testing.assert_allclose(model.cluster_centers_[k], X[model.labels_ == k].mean(0))


def test_fit_is_deterministic_and_accepts_tslearn_shape():
    X = provinces(seed=8)
    a = ProfileKMeans(n_clusters=4, n_init=4, random_state=11).fit(X)
    b = ProfileKMeans(n_clusters=4, n_init=4, random_state=11).fit(X[:, :, None])
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_
    np.testing.assert_array_equal(a.fit_predict(X), a.labels_)


def test_to_tslearn_is_a_working_fitted_model():
    X = provinces(seed=9)
    model = ProfileKMeans(n_clusters=4, n_init=2).fit(X)
    ts = pickle.loads(pickle.dumps(model.to_tslearn()))  # as in seisgo's results pickle
    assert isinstance(ts, TimeSeriesKMeans)
    assert ts.cluster_centers_.shape == (4, X.shape[1], 1)
    np.testing.assert_array_equal(ts.labels_, model.labels_)
    assert ts.inertia_ == model.inertia_
    np.testing.assert_array_equal(ts.predict(X[:, :, None]), model.labels_)
    np.testing.assert_array_equal(model.predict(X[:50]), model.labels_[:50])


def test_tslearn_model_made_without_importing_torch_or_pytest():
    """A stage's process imports tslearn with torch and pytest hidden (seconds of imports
    that tslearn's numpy backend does not use), and can import them afterwards."""
    code = (
        "import sys, numpy as np\n"
        "from seiscluster.velocity.kmeans import ProfileKMeans\n"
        "X = np.random.default_rng(0).normal(size=(40, 8))\n"
        "ProfileKMeans(n_clusters=3, n_init=1).fit(X).to_tslearn()\n"
        "assert 'tslearn.clustering' in sys.modules\n"
        "assert not {'torch', 'pytest'} & set(sys.modules), sorted(sys.modules)\n"
        "import pytest\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"n_clusters": 0}, r"velocity\.kmeans\.n_clusters .*number of profiles \(20\), got 0"),
        ({"n_clusters": 21}, r"velocity\.kmeans\.n_clusters .*\(20\), got 21"),
        ({"n_clusters": 2.5}, r"velocity\.kmeans\.n_clusters"),
        ({"metric": "cosine"},
         r"velocity\.kmeans\.metric: expected one of euclidean, dtw, softdtw"),
        ({"n_init": 0}, r"velocity\.kmeans\.n_init: expected an integer >= 1 or null, got 0"),
        ({"max_iter": 0}, r"velocity\.kmeans\.max_iter"),
        ({"tol": -1.0}, r"velocity\.kmeans\.tol"),
    ],
)
def test_bad_parameters_are_named(params, pattern):
    with pytest.raises(InputError, match=pattern):
        ProfileKMeans(**params).fit(provinces(n=20))


def test_bad_profiles_are_rejected():
    X = provinces(n=20)
    X[3, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        ProfileKMeans(n_clusters=2).fit(X)
    with pytest.raises(InputError, match=r"shape \(n_profiles, n_depth\)"):
        check_profiles(np.zeros((2, 3, 2)))


# ------------------------------------------------------------------ DTW levers and subsample


def test_constrained_dtw_equals_tslearn_with_the_same_metric_params():
    X = provinces(n=24, n_depth=12, seed=6)
    band = {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": 2}
    params = dict(n_clusters=3, metric="dtw", max_iter=4, random_state=1)
    # tslearn 0.10's DBA ignores a constraint given by name (it passes the name where its
    # kernel expects a code) but honours a radius alone; its assignments honour both
    ref = TimeSeriesKMeans(**params, metric_params={"sakoe_chiba_radius": 2}) \
        .fit(X[:, :, None])
    unbanded_dba = TimeSeriesKMeans(**params, metric_params=band).fit(X[:, :, None])
    ours = ProfileKMeans(n_init=1, **params, metric_params=band).fit(X)
    assert not np.allclose(in_our_order(unbanded_dba)[0], in_our_order(ref)[0])
    centers, labels = in_our_order(ref)
    np.testing.assert_array_equal(ours.labels_, labels)
    np.testing.assert_allclose(ours.cluster_centers_, centers)
    # distances and assignments use the band, which lengthens some alignments
    centres = ours.cluster_centers_[:, :, None]
    np.testing.assert_allclose(ours.transform(X), cdist_dtw(X[:, :, None], centres, **band))
    free = cdist_dtw(X[:, :, None], centres)
    assert np.all(ours.transform(X) >= free - 1e-12) and np.any(ours.transform(X) > free + 1e-9)


def test_fit_sample_size_fits_on_a_seeded_subsample_and_assigns_every_profile():
    X = provinces(n=500, seed=10)
    est = ProfileKMeans(n_clusters=4, n_init=2, random_state=3, fit_sample_size=120).fit(X)
    idx = est.fit_indices_
    assert idx.size == 120 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, np.sort(np.random.RandomState(3).choice(500, 120,
                                                                             replace=False)))
    on_sample = ProfileKMeans(n_clusters=4, n_init=2, random_state=3).fit(X[idx])
    np.testing.assert_array_equal(est.cluster_centers_, on_sample.cluster_centers_)
    distances = cdist(X, est.cluster_centers_)
    np.testing.assert_array_equal(est.labels_, distances.argmin(axis=1))
    assert est.inertia_ == pytest.approx(np.mean(distances.min(axis=1) ** 2), rel=1e-12)
    again = ProfileKMeans(n_clusters=4, n_init=2, random_state=3, fit_sample_size=120).fit(X)
    np.testing.assert_array_equal(again.labels_, est.labels_)


def test_fit_sample_size_of_all_profiles_is_the_plain_fit():
    X = provinces(n=200, seed=12)
    plain = ProfileKMeans(n_clusters=3, n_init=3).fit(X)
    full = ProfileKMeans(n_clusters=3, n_init=3, fit_sample_size=200).fit(X)
    assert full.fit_indices_ is None
    np.testing.assert_array_equal(full.cluster_centers_, plain.cluster_centers_)
    np.testing.assert_array_equal(full.labels_, plain.labels_)
    assert full.inertia_ == plain.inertia_


def test_dtw_subsample_assigns_by_dtw():
    X = provinces(n=40, n_depth=10, seed=13)
    est = ProfileKMeans(n_clusters=3, metric="dtw", n_init=1, max_iter=3, fit_sample_size=15,
                        metric_params={"global_constraint": "itakura"}).fit(X)
    np.testing.assert_array_equal(est.labels_, est.predict(X))
    np.testing.assert_array_equal(est.labels_, est.transform(X).argmin(axis=1))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"metric": "dtw", "metric_params": {"global_constraint": "sakoe"}},
         "velocity.kmeans.metric_params.global_constraint: expected one of sakoe_chiba, "
         "itakura, auto or null, got 'sakoe'."),
        ({"metric": "dtw", "metric_params": {"radius": 3}},
         "Unknown configuration key 'velocity.kmeans.metric_params.radius': check its "
         "spelling against conf/ (Key 'radius' not in 'MetricParamsConfig')."),
        ({"metric": "dtw", "metric_params": {"global_constraint": "itakura",
                                             "sakoe_chiba_radius": 3}},
         "velocity.kmeans.metric_params.sakoe_chiba_radius: expected null with "
         "global_constraint itakura (it goes with sakoe_chiba), got 3."),
        ({"metric": "dtw", "metric_params": {"itakura_max_slope": 0.5}},
         "velocity.kmeans.metric_params.itakura_max_slope: expected a number >= 1 or null, "
         "got 0.5."),
        ({"metric": "softdtw", "metric_params": {"gamma": 0}},
         "velocity.kmeans.metric_params.gamma: expected a number > 0 or null, got 0.0."),
        ({"metric": "softdtw", "metric_params": {"global_constraint": "itakura"}},
         "velocity.kmeans.metric_params.global_constraint: expected null with the softdtw "
         "metric (tslearn takes gamma), got 'itakura'."),
        ({"fit_sample_size": 1},
         "velocity.kmeans.fit_sample_size: expected an integer >= 2 or null, got 1."),
        ({"n_clusters": 3, "fit_sample_size": 2},
         "velocity.kmeans.fit_sample_size: expected null (fit on every profile) or an integer "
         ">= n_clusters (3), got 2."),
    ],
)
def test_bad_dtw_levers_are_named(params, message):
    with pytest.raises(InputError) as err:
        ProfileKMeans(**{"n_clusters": 2, **params}).fit(provinces(n=20, n_depth=8))
    assert str(err.value) == message
