"""Agglomerative (hierarchical) clustering of velocity profiles, with a merge tree for the
dendrogram and, optionally, merges only between neighbouring grid nodes.

:class:`ProfileAgglomerative` wraps scikit-learn's ``AgglomerativeClustering`` (Euclidean
distances; ``linkage`` ward, average, complete or single) and keeps the whole tree
(``linkage_``, SciPy's format). With ``connectivity`` (:func:`grid_connectivity`: a sparse
graph of the grid's neighbouring nodes) two clusters merge only when some of their nodes
are neighbours, so every cluster is one connected region of the map (scikit-learn joins
the separate pieces of a graph, e.g. islands of nodes cut off by missing ones, at their
nearest profiles first: a cluster may then jump such a gap).

Sample weights (``velocity.grid.weights``): scikit-learn's agglomerative clustering takes
none, and the tree is unweighted: a polar node merges as a tropical one does. The weights
enter the cluster means (area-weighted mean profiles), the scores of ``metrics.json`` and,
when a sample is drawn (below), the draw (probability proportional to the weight).
Repeated nodes are clustered once, as by every method (:mod:`seiscluster.velocity.grid`).

Size: without connectivity scikit-learn computes every pairwise distance (Ward, average
and complete: SciPy's linkage on ``n (n - 1) / 2`` doubles, 0.4 GB for 10,000 profiles,
40 GB for 100,000). So without connectivity the tree is built on a seeded draw of at most
``max_fit_size`` distinct profiles (``random_state``); the drawn profiles keep the tree's
cluster and every other profile joins the cluster whose mean profile (over the drawn
members) is nearest (Euclidean). With connectivity the graph is sparse (at most 8
neighbours a node) and every profile is in the tree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from scipy import sparse
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted

from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.hierarchy import linkage_matrix
from seiscluster.velocity.grid import GridNodes
from seiscluster.velocity.kmeans import check_profiles, check_weights

#: Offsets (rows, columns) to the neighbours of a node that each pair is found once from:
#: east, and the three nodes of the next row (8 neighbours in all, diagonals included).
_STEPS = ((0, 1), (1, -1), (1, 0), (1, 1))


def wraps_around(longitude: np.ndarray) -> bool:
    """Whether a grid's longitudes close the circle: their count times the (median) step
    reaches 360 degrees (a column repeated at -180 and 180 counts too)."""
    lon = np.sort(np.mod(np.asarray(longitude, dtype=np.float64), 360.0))
    if lon.size < 3:
        return False
    step = float(np.median(np.diff(np.unique(lon))))
    return step > 0 and lon.size * step >= 360.0 - 0.5 * step


def grid_connectivity(profiles: xr.Dataset, nodes: GridNodes | None = None
                      ) -> sparse.csr_matrix:
    """Adjacency of the profiles' grid nodes: nodes one row and / or one column apart
    (``lat_index``, ``lon_index``: 8 neighbours, diagonals included) among the nodes that
    have a profile, the first and last columns joined when the longitudes close the circle
    (:func:`wraps_around`). With ``nodes`` the graph is that of its distinct points
    (``nodes.keep`` order): a repeated node is one node, so a pole neighbours every node of
    the next row and the -180 / 180 columns are one. A symmetric 0/1 CSR matrix without
    its diagonal."""
    i = profiles["lat_index"].values.astype(np.int64)
    j = profiles["lon_index"].values.astype(np.int64)
    n_lat, n_lon = profiles.sizes["grid_latitude"], profiles.sizes["grid_longitude"]
    wrap = wraps_around(profiles["grid_longitude"].values)
    where = np.full((n_lat, n_lon), -1, dtype=np.int64)
    where[i, j] = np.arange(i.size)
    first, second = [], []
    for di, dj in _STEPS:
        ii, jj = i + di, j + dj
        if wrap:
            jj = np.mod(jj, n_lon)
        inside = (ii < n_lat) & (jj >= 0) & (jj < n_lon)
        other = np.full(i.size, -1, dtype=np.int64)
        other[inside] = where[ii[inside], jj[inside]]
        has = other >= 0
        first.append(np.flatnonzero(has))
        second.append(other[has])
    a, b = np.concatenate(first), np.concatenate(second)
    size = i.size
    if nodes is not None:
        a, b, size = nodes.inverse[a], nodes.inverse[b], nodes.keep.size
    distinct = a != b
    graph = sparse.coo_matrix((np.ones(int(distinct.sum())), (a[distinct], b[distinct])),
                              shape=(size, size)).tocsr()
    graph = graph + graph.T
    graph.data[:] = 1.0
    return graph


def weighted_means(X: np.ndarray, labels: np.ndarray, k: int,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """Mean profile (weighted by ``weights``) of each of the clusters ``0..k-1``."""
    w = np.ones(X.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    sums = np.zeros((k, X.shape[1]))
    np.add.at(sums, labels, X * w[:, None])
    mass = np.bincount(labels, weights=w, minlength=k)
    return sums / np.maximum(mass, np.finfo(float).tiny)[:, None]


class ProfileAgglomerative(ClusterMixin, BaseEstimator):
    """Agglomerative clustering of velocity profiles (config keys
    ``velocity.agglomerative.*``; see the module for weights and large grids).

    ``fit(X, sample_weight=None, connectivity=None)``: ``connectivity`` a sparse
    (n_profiles, n_profiles) adjacency (:func:`grid_connectivity`) or None. Fitted
    attributes: ``labels_`` (0-based, clusters numbered by increasing mean of their mean
    profile, as k-means clusters), ``cluster_centers_`` (weighted mean profile of every
    cluster's members), ``linkage_`` (SciPy linkage matrix of the tree: of the drawn
    profiles when ``fit_indices_`` is not None), ``fit_indices_`` (the profiles the tree
    was built on; None = all), ``n_connected_components_`` (pieces of the connectivity
    graph; 1 without one), ``n_features_in_``.
    """

    def __init__(self, n_clusters: int = 3, linkage: str = "ward",
                 max_fit_size: int = 10_000, random_state: int | None = 0) -> None:
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.max_fit_size = max_fit_size
        self.random_state = random_state

    def _check_params(self, n: int) -> None:
        section("velocity.agglomerative", {"n_clusters": self.n_clusters,
                                           "linkage": self.linkage,
                                           "max_fit_size": self.max_fit_size,
                                           "random_state": self.random_state or 0})
        if self.n_clusters > n:
            raise InputError(f"velocity.agglomerative.n_clusters: expected at most the "
                             f"number of distinct profiles ({n}), got {self.n_clusters!r}.")

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None,
            connectivity: Any = None) -> ProfileAgglomerative:
        """Build the tree of the profiles X (n_profiles, n_depth) and cut it at
        ``n_clusters``; returns self."""
        from scipy.sparse.csgraph import connected_components
        from sklearn.cluster import AgglomerativeClustering

        X = check_profiles(X)
        n = X.shape[0]
        self._check_params(n)
        w = check_weights(sample_weight, n)
        k = int(self.n_clusters)
        if connectivity is not None:
            connectivity = sparse.csr_matrix(connectivity)
            if connectivity.shape != (n, n):
                raise InputError(f"the connectivity graph must be ({n}, {n}) for {n} "
                                 f"profiles, got {connectivity.shape}.")
            self.n_connected_components_ = int(connected_components(connectivity)[0])
        else:
            self.n_connected_components_ = 1
        self.fit_indices_ = None
        if connectivity is None and n > self.max_fit_size:
            rng = np.random.default_rng(self.random_state)
            p = None if w is None else w / w.sum()
            self.fit_indices_ = np.sort(rng.choice(n, self.max_fit_size, replace=False, p=p))
        part = slice(None) if self.fit_indices_ is None else self.fit_indices_
        model = AgglomerativeClustering(n_clusters=k, linkage=self.linkage,
                                        connectivity=connectivity, compute_full_tree=True,
                                        compute_distances=True)
        tree_labels = model.fit(X[part]).labels_.astype(np.intp)
        self.linkage_ = linkage_matrix(model)
        if self.fit_indices_ is None:
            labels = tree_labels
        else:
            means = weighted_means(X[part], tree_labels, k, None if w is None else w[part])
            labels = cdist(X, means).argmin(axis=1).astype(np.intp)
            labels[self.fit_indices_] = tree_labels
        means = weighted_means(X, labels, k, w)
        order = np.argsort(means.mean(axis=1), kind="stable")
        rank = np.empty(k, dtype=np.intp)
        rank[order] = np.arange(k)
        self.labels_ = rank[labels]
        self.cluster_centers_ = np.ascontiguousarray(means[order])
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Cluster (0-based) of the nearest cluster mean, for new profiles (Euclidean)."""
        check_is_fitted(self, "cluster_centers_")
        return cdist(check_profiles(X), self.cluster_centers_).argmin(axis=1).astype(np.intp)


def fill_by_neighbours(graph: sparse.csr_matrix, labels: np.ndarray, known: np.ndarray
                       ) -> np.ndarray:
    """``labels`` where ``known``; elsewhere, round by round, the most common label of a
    node's labelled neighbours in ``graph`` (ties: the smallest label), so an unlabelled
    node takes its region's cluster. Nodes no labelled node reaches keep their label."""
    labels = np.asarray(labels).copy()
    known = np.asarray(known, dtype=bool).copy()
    k = int(labels.max()) + 1
    graph = sparse.csr_matrix(graph)
    while not known.all():
        onehot = sparse.csr_matrix((np.ones(int(known.sum())),
                                    (np.flatnonzero(known), labels[known])),
                                   shape=(labels.size, k))
        votes = (graph @ onehot).toarray()
        reach = ~known & (votes.sum(axis=1) > 0)
        if not reach.any():
            break
        labels[reach] = votes[reach].argmax(axis=1)
        known |= reach
    return labels
