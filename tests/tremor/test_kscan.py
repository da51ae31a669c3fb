"""k scan on embeddings: scores, choice of k, determinism and bad requests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from seiscluster.config import KCriterion
from seiscluster.errors import InputError
from seiscluster.tremor.kscan import choose_k, kscan, scan_k


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    z, _ = make_blobs(400, n_features=6, centers=4, cluster_std=0.6, random_state=3)
    return z.astype(np.float32)


@pytest.mark.parametrize("criterion", [c.value for c in KCriterion])
def test_every_criterion_finds_four_blobs(blobs, criterion):
    res = kscan(blobs, k_min=2, k_max=8, n_init=5, criterion=criterion, seed=0)
    assert res.n_clusters == 4
    assert criterion.replace("_", "-") in res.message
    assert list(res.table["k"]) == list(range(2, 9))
    assert {"calinski_harabasz", "silhouette", "davies_bouldin", "inertia"} <= set(res.table)
    assert res.table["inertia"].is_monotonic_decreasing
    fit = res.fits[4]
    assert fit.labels.shape == (400,) and fit.centres.shape == (4, 6)


def test_parallel_scan_equals_serial_scan(blobs):
    a, fa = scan_k(blobs, range(2, 7), n_init=4, seed=7, n_jobs=1)
    b, fb = scan_k(blobs, range(2, 7), n_init=4, seed=7, n_jobs=2)
    pd.testing.assert_frame_equal(a, b)
    for k in fa:
        np.testing.assert_array_equal(fa[k].labels, fb[k].labels)


def test_fixed_k_outside_the_range_is_fitted(blobs):
    res = kscan(blobs, k_min=2, k_max=3, n_init=2, n_clusters=5, seed=0)
    assert res.n_clusters == 5 and "fixed" in res.message
    assert res.fits[5].centres.shape == (5, 6)


def test_choose_k_directions():
    table = pd.DataFrame({"k": [2, 3, 4], "calinski_harabasz": [1.0, 3.0, 2.0],
                          "silhouette": [0.1, 0.2, 0.5], "davies_bouldin": [0.9, 0.3, 0.4]})
    assert choose_k(table, "calinski_harabasz")[0] == 3
    assert choose_k(table, "silhouette")[0] == 4
    assert choose_k(table, "davies_bouldin")[0] == 3
    table["silhouette"] = np.nan
    assert choose_k(table, "silhouette")[0] == 2
    with pytest.raises(InputError, match=r"tremor\.kscan\.criterion: expected one of"):
        kscan(table[["k"]].to_numpy(float), k_min=2, k_max=2, criterion="elbow")


def test_k_larger_than_the_samples_is_an_input_error():
    z = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(InputError, match=r"k_max \(15\).*10"):
        kscan(z, k_min=2, k_max=15)
    with pytest.raises(InputError, match=r"n_clusters \(12\)"):
        kscan(z, k_min=2, k_max=5, n_clusters=12)
