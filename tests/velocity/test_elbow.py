"""Elbow scan: seisgo's distortion curve and knee, plus reported fallbacks when there is none."""

import numpy as np
import pandas as pd
import pytest
from kneed import KneeLocator
from sklearn.metrics import calinski_harabasz_score, silhouette_score
from sklearn.metrics.pairwise import euclidean_distances
from tslearn.clustering import TimeSeriesKMeans
from tslearn.clustering import silhouette_score as ts_silhouette_score

from seiscluster.errors import InputError
from seiscluster.velocity.elbow import (
    calinski_harabasz,
    elbow_scan,
    find_knee,
    mean_silhouettes,
    smooth_curve,
)

COLUMNS = ["k", "distortion", "distortion_smoothed", "silhouette", "calinski_harabasz",
           "stability", "gap", "gap_sk"]


def four_provinces(n=400, n_depth=20, seed=0):
    """Four clearly distinct profile shapes plus noise: the knee is at k=4."""
    rng = np.random.default_rng(seed)
    z = np.linspace(0, 1, n_depth)
    base = np.array([3 + z, 3.5 + 0.5 * z, 4 + 0.2 * np.sin(6 * z), 3 + 1.5 * z**2])
    return base[np.arange(n) % 4] + 0.03 * rng.normal(size=(n, n_depth))


def simplex_groups(m=10, per=20, seed=0):
    """m equidistant tight groups: merging g of them costs g-1 units, so the distortion
    falls linearly with k (no knee for kneed)."""
    rng = np.random.default_rng(seed)
    return np.repeat(np.eye(m), per, axis=0) + 0.01 * rng.normal(size=(m * per, m))


def test_smooth_curve_is_seisgo_box_smoothing():
    np.testing.assert_allclose(smooth_curve([1, 2, 3, 10, 5]), [1, 2, 5, 6, 5])
    np.testing.assert_allclose(smooth_curve([4, 1, 1, 7], n=1), [4, 1, 1, 7])
    with pytest.raises(InputError, match=r"velocity\.elbow\.smooth_n"):
        smooth_curve([1, 2, 3], n=5)


def test_find_knee_on_a_textbook_curve_and_none_on_a_line():
    k = list(range(1, 11))
    y = [10, 5, 3.3, 2.5, 2, 1.7, 1.4, 1.25, 1.1, 1.0]
    locator = KneeLocator(k, y, S=1, curve="convex", direction="decreasing")
    assert find_knee(k, y) == 3 == list(locator.all_knees)[0] == locator.knee  # noqa: RUF015
    assert find_knee(k, list(range(10, 0, -1))) is None
    assert find_knee(k, [2.0] * 10) is None  # flat: kneed divides by zero, we stay quiet


def test_scan_finds_four_clusters():
    X = four_provinces()
    result = elbow_scan(X, n_init=1)
    assert list(result.table.columns) == COLUMNS
    assert result.table["k"].tolist() == list(range(2, 21))
    assert (result.knee, result.n_clusters, result.fallback_used) == (4, 4, None)
    assert result.message == ("kneed found the knee of the distortion curve at k=4 for "
                              "k=2..20; stable (stability 1.000 >= 0.9) (rule stable_criterion).")
    pd.testing.assert_series_equal(
        result.table["distortion"], result.table["distortion_smoothed"], check_names=False
    )
    assert result.table["silhouette"].idxmax() == 2  # k=4 also has the best silhouette
    assert result.models[4].inertia_ == result.table["distortion"][2]


def test_scan_equals_a_seisgo_style_loop():
    """seisgo: TimeSeriesKMeans(k, random_state) per k, then KneeLocator(...).all_knees[0]."""
    X = four_provinces(n=200, seed=3) + np.random.default_rng(1).normal(0, 0.3, (200, 1))
    ks = list(range(2, 12))
    distortion = [
        TimeSeriesKMeans(n_clusters=k, random_state=5).fit(X[:, :, None]).inertia_ for k in ks
    ]
    for smooth in (False, True):
        curve = smooth_curve(distortion) if smooth else distortion
        locator = KneeLocator(ks, curve, S=1, curve="convex", direction="decreasing")
        knee = list(locator.all_knees)[0]  # noqa: RUF015 - seisgo's expression
        result = elbow_scan(X, ks, n_init=1, random_state=5, smooth=smooth)
        np.testing.assert_allclose(result.table["distortion"], distortion, rtol=1e-12)
        np.testing.assert_allclose(result.table["distortion_smoothed"], curve, rtol=1e-12)
        assert result.knee == knee


def test_no_knee_falls_back_to_the_silhouette_and_says_so():
    result = elbow_scan(simplex_groups(), range(2, 9), n_init=1)
    table = result.table
    assert result.knee is None
    assert result.fallback_used == "silhouette"
    assert result.n_clusters == table["k"][table["silhouette"].idxmax()] == 8
    assert result.message == (
        "kneed found no knee in the distortion curve for k=2..8; chose k=8 by the "
        "silhouette fallback (velocity.elbow.fallback); no k reaches stability 0.9 (k=8: "
        "0.625); k=8 is kept (rule stable_criterion)."
    )


def test_every_fallback_rule():
    X = simplex_groups(seed=1)
    ks = [2, 3, 4, 6, 7]
    table = elbow_scan(X, ks, n_init=1, fallback="k_min").table
    y = table["distortion"].to_numpy()
    second = y[:-2] - 2 * y[1:-1] + y[2:]
    expected = {
        "k_min": 2,
        "k_max": 7,
        "silhouette": ks[int(table["silhouette"].argmax())],
        "calinski_harabasz": ks[int(table["calinski_harabasz"].argmax())],
        "second_difference": ks[int(second.argmax()) + 1],
    }
    for rule, k in expected.items():
        result = elbow_scan(X, ks, n_init=1, fallback=rule)
        assert (result.n_clusters, result.fallback_used) == (k, rule)
        assert f"chose k={k} by the {rule} fallback" in result.message
        assert "k in [2, 3, 4, 6, 7]" in result.message


def test_scores_match_scikit_learn():
    X = four_provinces(n=300, seed=2)
    result = elbow_scan(X, [2, 3, 4, 5], n_init=2, silhouette_sample_size=120, random_state=4)
    idx = np.sort(np.random.RandomState(4).choice(300, 120, replace=False))
    for k, row in result.table.set_index("k").iterrows():
        labels = result.models[k].labels_
        assert row["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(X, labels))
        assert row["silhouette"] == pytest.approx(
            silhouette_score(X[idx], labels[idx]), rel=1e-9
        )


def test_mean_silhouettes_equals_scikit_learn_with_singletons_and_gaps():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    D = euclidean_distances(X)
    label_sets = [rng.integers(0, 2, 60), rng.integers(0, 7, 60), np.arange(60) % 9 * 3]
    label_sets[1][:3] = [7, 8, 9]  # singleton clusters score 0
    expected = [silhouette_score(D, lab, metric="precomputed") for lab in label_sets]
    np.testing.assert_allclose(mean_silhouettes(D, label_sets), expected, rtol=1e-12)
    assert np.isnan(mean_silhouettes(D, [np.zeros(60, int), np.arange(60)])).all()


def test_parallel_scan_equals_serial_scan():
    X = four_provinces(n=200, seed=6)
    serial = elbow_scan(X, range(2, 8), n_init=2, n_jobs=1)
    parallel = elbow_scan(X, range(2, 8), n_init=2, n_jobs=2)
    pd.testing.assert_frame_equal(serial.table, parallel.table)


@pytest.mark.parametrize(
    ("nrange", "pattern"),
    [
        ([2, 3], r"velocity\.elbow\.nrange: expected a list of at least 3"),
        ([1, 2, 3], r"velocity\.elbow\.nrange"),
        ([2, 4, 3], r"velocity\.elbow\.nrange"),
        ([2, 2, 3], r"velocity\.elbow\.nrange"),
        ([2.0, 3, 4], r"velocity\.elbow\.nrange"),
        ([2, 3, 51], r"velocity\.elbow\.nrange goes up to k=51, .*number of profiles \(50\)"),
    ],
)
def test_bad_nrange_is_named(nrange, pattern):
    with pytest.raises(InputError, match=pattern):
        elbow_scan(four_provinces(n=50), nrange)


def test_bad_options_are_named():
    X = four_provinces(n=50)
    with pytest.raises(InputError, match=r"velocity\.elbow\.fallback: expected one of silhouette"):
        elbow_scan(X, [2, 3, 4], fallback="gap")
    with pytest.raises(InputError, match=r"velocity\.elbow\.silhouette_sample_size"):
        elbow_scan(X, [2, 3, 4], silhouette_sample_size=1)
    with pytest.raises(InputError, match=r"velocity\.elbow\.sensitivity"):
        elbow_scan(X, [2, 3, 4], sensitivity=-1)
    with pytest.raises(InputError, match=r"velocity\.kmeans\.metric"):
        elbow_scan(X, [2, 3, 4], metric="cosine")


def test_dtw_scan_scores_in_the_dtw_metric():
    X = four_provinces(n=24, n_depth=8, seed=5)
    params = dict(metric="dtw", n_init=1, max_iter=3, max_iter_barycenter=3, random_state=2)
    result = elbow_scan(X, [2, 3, 4], **params)
    for k, row in result.table.set_index("k").iterrows():
        ref = TimeSeriesKMeans(n_clusters=k, **params).fit(X[:, :, None])
        assert row["distortion"] == pytest.approx(ref.inertia_)
        labels = result.models[k].labels_
        assert row["silhouette"] == pytest.approx(
            ts_silhouette_score(X[:, :, None], labels, metric="dtw")
        )


@pytest.mark.parametrize("k", [2, 3, 7])
def test_calinski_harabasz_equals_sklearn(k):
    rng = np.random.default_rng(k)
    X = rng.normal(size=(300, 9)) + rng.integers(0, 4, size=(300, 1))
    labels = rng.integers(0, k, size=300) * 3 + 1  # non-contiguous label values
    centred = X - X.mean(axis=0)
    got = calinski_harabasz(centred, float((centred**2).sum()), labels)
    assert got == pytest.approx(calinski_harabasz_score(X, labels), rel=1e-10)
    assert np.isnan(calinski_harabasz(centred, 1.0, np.zeros(300, dtype=int)))
