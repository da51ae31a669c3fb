"""Clustering of the autoencoder embedding by the method of ``tremor.cluster``.

``kmeans`` (the default, what DEC starts from), ``gmm`` (Gaussian mixture with its posterior
probabilities and BIC / AIC), ``agglomerative`` (hierarchical, with its merge tree for a
dendrogram) and ``umap_gmm`` (UMAP of the embedding, then a Gaussian mixture, as N2D:
McConville et al. 2019). Every method is seeded by one seed; UMAP with a ``random_state``
runs single-threaded and is deterministic. umap-learn is imported only by ``umap_gmm``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.mixture import GaussianMixture

from seiscluster.hierarchy import linkage_matrix

#: ``tremor.cluster.method`` values.
METHODS = ("kmeans", "gmm", "agglomerative", "umap_gmm")
#: Restarts of a Gaussian mixture (k-means initialisations).
GMM_N_INIT = 5


def gaussian_mixture(k: int, covariance_type: str, seed: int) -> GaussianMixture:
    """The seeded Gaussian mixture every method and the scan use."""
    return GaussianMixture(n_components=k, covariance_type=covariance_type, n_init=GMM_N_INIT,
                           reg_covar=1e-5, random_state=seed)


def information_criteria(z: np.ndarray, ks: Sequence[int], covariance_type: str = "full",
                         seed: int = 0) -> pd.DataFrame:
    """BIC and AIC (lower is better) of a Gaussian mixture of ``z`` for every k of ``ks``."""
    z = np.asarray(z, dtype=np.float64)
    rows = []
    for k in ks:
        gmm = gaussian_mixture(int(k), covariance_type, seed).fit(z)
        rows.append({"k": int(k), "bic": float(gmm.bic(z)), "aic": float(gmm.aic(z))})
    return pd.DataFrame(rows, columns=["k", "bic", "aic"])


class EmbeddingClusterer:
    """k clusters of embeddings ``z`` by ``method`` (sklearn-style: ``fit`` returns self).

    Fitted attributes: ``labels_`` (0-based), ``centres_`` (mean embedding of each
    cluster, in ``z``'s space: DEC starts from them), ``probabilities_`` (posterior
    probabilities of the Gaussian mixtures, rows sum to one; None otherwise),
    ``linkage_`` (SciPy linkage matrix of ``agglomerative``; None otherwise),
    ``manifold_`` (the UMAP coordinates of ``umap_gmm``; None otherwise).
    """

    def __init__(self, method: str = "kmeans", n_clusters: int = 8, *, n_init: int = 20,
                 covariance_type: str = "full", linkage: str = "ward", n_neighbors: int = 10,
                 n_components: int = 10, min_dist: float = 0.0, seed: int = 0) -> None:
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
        self.method, self.n_clusters, self.n_init = method, n_clusters, n_init
        self.covariance_type, self.linkage = covariance_type, linkage
        self.n_neighbors, self.n_components, self.min_dist = n_neighbors, n_components, min_dist
        self.seed = seed

    @classmethod
    def from_config(cls, cluster: Mapping[str, Any], k: int, n_init: int,
                    seed: int) -> EmbeddingClusterer:
        """The clusterer of a checked ``tremor.cluster`` section at ``k``."""
        return cls(cluster["method"], k, n_init=n_init, seed=int(seed),
                   **{key: cluster[key] for key in ("covariance_type", "linkage",
                                                    "n_neighbors", "n_components",
                                                    "min_dist")})

    def fit(self, z: np.ndarray) -> EmbeddingClusterer:
        z = np.asarray(z, dtype=np.float64)
        k = int(self.n_clusters)
        self.probabilities_ = self.linkage_ = self.manifold_ = None
        if self.method == "kmeans":
            labels = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.seed) \
                .fit(z).labels_
        elif self.method == "agglomerative":
            model = AgglomerativeClustering(n_clusters=k, linkage=self.linkage,
                                            compute_full_tree=True, compute_distances=True)
            labels = model.fit(z).labels_
            self.linkage_ = linkage_matrix(model)
        else:
            x = z if self.method == "gmm" else self._umap(z)
            gmm = gaussian_mixture(k, self.covariance_type, self.seed).fit(x)
            self.probabilities_ = gmm.predict_proba(x)
            labels = self.probabilities_.argmax(1)
        self.labels_ = np.asarray(labels, dtype=np.int64)
        self.centres_ = cluster_means(z, self.labels_, k)
        return self

    def _umap(self, z: np.ndarray) -> np.ndarray:
        import umap  # numba-compiled: imported only where used

        self.manifold_ = umap.UMAP(n_neighbors=self.n_neighbors, n_components=self.n_components,
                                   min_dist=self.min_dist, random_state=self.seed,
                                   n_jobs=1).fit_transform(z).astype(np.float64)
        return self.manifold_


def cluster_means(z: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``z`` over each of the ``k`` clusters (zeros for an empty cluster)."""
    sums = np.zeros((k, z.shape[1]))
    np.add.at(sums, labels, z)
    return (sums / np.maximum(np.bincount(labels, minlength=k), 1)[:, None]).astype(np.float32)
