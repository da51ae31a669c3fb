"""Gaussian mixture of profiles: probabilities, weighted EM, BIC / AIC scan."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from seiscluster.errors import InputError
from seiscluster.velocity.gmm import ProfileGMM, WeightedGaussianMixture


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(m, 1, (50, 3)) for m in (0, 4, 9)])


def test_probabilities_sum_to_one_and_clusters_ordered():
    X = blobs()
    est = ProfileGMM(n_clusters=3).fit(X)
    np.testing.assert_allclose(est.probabilities_.sum(axis=1), 1.0)
    assert np.array_equal(est.labels_, est.predict(X))
    assert np.all(np.diff(est.means_.mean(axis=1)) > 0)
    assert est.labels_[0] == 0 and est.labels_[-1] == 2


def test_weighted_em_equals_repeated_profiles_and_none_is_sklearn():
    X = blobs()
    w = np.random.default_rng(1).integers(1, 4, X.shape[0])
    a = WeightedGaussianMixture(3, random_state=0, tol=1e-10, max_iter=500).fit(
        X, sample_weight=w)
    b = GaussianMixture(3, random_state=0, tol=1e-10, max_iter=500).fit(np.repeat(X, w, 0))
    np.testing.assert_allclose(np.sort(a.means_[:, 0]), np.sort(b.means_[:, 0]), rtol=1e-6)
    c = WeightedGaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_array_equal(c.means_, GaussianMixture(3, random_state=0).fit(X).means_)


def test_scan_has_bic_and_aic_per_k():
    table = ProfileGMM().scan(blobs(), [2, 3, 4])
    assert table["k"].tolist() == [2, 3, 4]
    assert int(table["k"][table["bic"].idxmin()]) == 3


def test_bad_parameters():
    with pytest.raises(InputError, match="covariance_type"):
        ProfileGMM(covariance_type="round").fit(blobs())
