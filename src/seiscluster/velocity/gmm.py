"""Gaussian mixture of velocity profiles, with sample weights, posterior probabilities and a
BIC / AIC scan over k.

scikit-learn's ``GaussianMixture`` takes no sample weights. :class:`WeightedGaussianMixture`
makes its EM weighted: the M step takes the responsibilities times the weights (a profile
of weight 2 counts as two copies of it), the convergence criterion is the weighted mean
log-likelihood, and the BIC / AIC are ``-2 sum_i w_i log p(x_i)`` plus the usual penalties
(weights of mean 1, so that ``sum_i w_i`` is the number of profiles). The initial
responsibilities (``init_params``, e.g. one k-means) are scikit-learn's, unweighted; EM
moves on from them weighted. With no weights it is ``GaussianMixture`` itself.

It overrides three private methods of scikit-learn's EM (``_initialize``, ``_e_step``,
``_m_step``), pinned by the tests (integer weights equal repeated profiles).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.mixture import GaussianMixture
from sklearn.utils.validation import check_is_fitted

from seiscluster.config import section
from seiscluster.velocity.kmeans import check_profiles, check_weights


class WeightedGaussianMixture(GaussianMixture):
    """``GaussianMixture`` whose ``fit(X, sample_weight=w)`` runs a weighted EM."""

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> WeightedGaussianMixture:
        """Fit the mixture by weighted EM (None: unweighted); returns self."""
        X = np.asarray(X, dtype=np.float64)
        w = check_weights(sample_weight, X.shape[0])
        self._fit_weights = None if w is None else w / w.mean()
        try:
            return super().fit(X)
        finally:
            del self._fit_weights

    def _initialize(self, X: np.ndarray, resp: np.ndarray | None, xp: Any = None) -> None:
        if resp is not None and self._fit_weights is not None:
            resp = resp * self._fit_weights[:, None]
        super()._initialize(X, resp, xp=xp)

    def _e_step(self, X: np.ndarray, xp: Any = None) -> tuple[float, np.ndarray]:
        log_prob_norm, log_resp = self._estimate_log_prob_resp(X, xp=xp)
        return float(np.average(log_prob_norm, weights=self._fit_weights)), log_resp

    def _m_step(self, X: np.ndarray, log_resp: np.ndarray, xp: Any = None) -> None:
        # log(resp * w): scikit-learn's M step then weighs every profile by w
        if self._fit_weights is not None:
            log_resp = log_resp + np.log(self._fit_weights)[:, None]
        super()._m_step(X, log_resp, xp=xp)

    def information_criteria(self, X: np.ndarray, sample_weight: np.ndarray | None = None
                             ) -> tuple[float, float, float]:
        """(BIC, AIC, weighted mean log-likelihood) of X (weights of mean 1)."""
        log_p = self.score_samples(X)
        mean = float(np.average(log_p, weights=sample_weight))
        n, p = X.shape[0], self._n_parameters()
        return -2 * mean * n + p * np.log(n), -2 * mean * n + 2 * p, mean


class ProfileGMM(ClusterMixin, BaseEstimator):
    """Gaussian mixture of velocity profiles (config keys ``velocity.gmm.*``).

    Parameters are ``GaussianMixture``'s (``n_clusters`` its ``n_components``). Fitted
    attributes: ``labels_`` (0-based: the most probable component), ``probabilities_``
    (n_profiles, n_clusters; rows sum to one), ``means_`` (n_clusters, n_depth),
    ``mixture_weights_``, ``covariances_``, ``bic_``, ``aic_``, ``log_likelihood_``
    (weighted mean per profile), ``converged_``, ``n_iter_``, ``gmm_`` (the fitted
    :class:`WeightedGaussianMixture`, components in its own order), ``n_features_in_``.
    Components are numbered by ascending mean of their mean profile, as k-means clusters.
    """

    def __init__(
        self,
        n_clusters: int = 3,
        covariance_type: str = "full",
        n_init: int = 3,
        max_iter: int = 200,
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        init_params: str = "kmeans",
        random_state: int | None = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.init_params = init_params
        self.random_state = random_state

    def _mixture(self, n_clusters: int) -> WeightedGaussianMixture:
        return WeightedGaussianMixture(
            n_components=n_clusters, covariance_type=self.covariance_type, n_init=self.n_init,
            max_iter=self.max_iter, tol=self.tol, reg_covar=self.reg_covar,
            init_params=self.init_params, random_state=self.random_state)

    def _check_params(self) -> None:
        section("velocity.gmm", {key: getattr(self, key) for key in (
            "n_clusters", "covariance_type", "n_init", "max_iter", "tol", "reg_covar",
            "init_params")})

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> ProfileGMM:
        """Fit the mixture to the profiles X (n_profiles, n_depth), weighted by
        ``sample_weight`` (None: unweighted); returns self."""
        X = check_profiles(X)
        self._check_params()
        w = check_weights(sample_weight, X.shape[0])
        w = None if w is None else w / w.mean()
        gmm = self._mixture(self.n_clusters).fit(X, sample_weight=w)
        self._order = np.argsort(gmm.means_.mean(axis=1), kind="stable")
        self.gmm_ = gmm
        self.means_ = gmm.means_[self._order]
        self.mixture_weights_ = gmm.weights_[self._order]
        self.covariances_ = (gmm.covariances_ if self.covariance_type == "tied"
                             else gmm.covariances_[self._order])
        self.probabilities_ = self.predict_proba(X)
        self.labels_ = self.probabilities_.argmax(axis=1).astype(np.intp)
        self.bic_, self.aic_, self.log_likelihood_ = gmm.information_criteria(X, w)
        self.converged_, self.n_iter_ = bool(gmm.converged_), int(gmm.n_iter_)
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of every component (columns in cluster order)."""
        check_is_fitted(self, "gmm_")
        return self.gmm_.predict_proba(check_profiles(X))[:, self._order]

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component (0-based) of each profile."""
        return self.predict_proba(X).argmax(axis=1).astype(np.intp)

    def scan(self, X: Any, ks: Sequence[int], sample_weight: Any = None) -> pd.DataFrame:
        """BIC, AIC and weighted mean log-likelihood of a mixture of each k in ``ks`` (same
        settings and seed): one row per k."""
        X = check_profiles(X)
        self._check_params()
        w = check_weights(sample_weight, X.shape[0])
        w = None if w is None else w / w.mean()
        rows = [(int(k), *self._mixture(int(k)).fit(X, sample_weight=w)
                 .information_criteria(X, w)) for k in ks]
        return pd.DataFrame(rows, columns=["k", "bic", "aic", "log_likelihood"])
