"""Self-organising map of velocity profiles: seisgo's ``vpcluster_som``, seeded and vectorised.

seisgo builds ``MiniSom(som_x, som_y, n_depth, sigma, learning_rate=rate)`` (square grid of
side ``ceil(sqrt(sqrt(n_profiles)))`` by default), calls ``random_weights_init(data)`` and
``train(data, niteration)`` (samples in data order, cyclically), and numbers the cluster of
a profile by its winning node, ``x*som_y + y + 1``. It passes no seed, so its map is not
reproducible; :class:`ProfileSOM` passes ``random_seed=random_state`` and trains with
MiniSom itself, so the same seed gives the same weights. seisgo then finds winners with one
``win_map`` call per profile; here one matrix product gives all winners, and the rare
profiles whose two best nodes are within rounding of each other are settled by MiniSom's
own ``winner``, so the labels are exactly MiniSom's.

MiniSom takes no sample weights. ``fit(X, sample_weight=w)`` weighs the training instead
by the order it feeds MiniSom: ``niteration`` profiles drawn with replacement, with
probability proportional to ``w``, from ``numpy.random.default_rng(random_state)``, so a
profile of twice the weight (e.g. twice the area, :mod:`seiscluster.velocity.grid`)
updates the map twice as often on average. The initial weights are drawn as MiniSom does
(unweighted); winners, hits and errors are those of the profiles themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from minisom import MiniSom
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted

from seiscluster.config import section
from seiscluster.velocity.kmeans import check_profiles, check_weights

#: Relative rounding margin under which the two best nodes count as tied.
_TIE_MARGIN = 1e-12
#: Elements per block when a distance needs a (profiles, nodes, depth) broadcast.
_BLOCK = 1 << 22


def auto_grid(n_profiles: int) -> tuple[int, int]:
    """seisgo's default grid: square, side ``ceil(sqrt(sqrt(n_profiles)))``."""
    side = math.ceil(math.sqrt(math.sqrt(n_profiles)))
    return side, side


def _scores(X: np.ndarray, W: np.ndarray, distance: str) -> tuple[np.ndarray, np.ndarray]:
    """Activation of every node for every profile, monotone in MiniSom's activation, and
    a per-profile bound on its rounding error (two nodes closer than it may be swapped)."""
    if distance == "euclidean":  # squared distances by BLAS, on centred data
        mean = X.mean(axis=0)
        Xc, Wc = X - mean, W - mean
        x_sq = np.einsum("ij,ij->i", Xc, Xc)
        w_sq = np.einsum("ij,ij->i", Wc, Wc)
        scores = Xc @ Wc.T
        scores *= -2.0
        scores += x_sq[:, None]
        scores += w_sq
        return scores, _TIE_MARGIN * (x_sq + w_sq.max())
    if distance == "cosine":
        num = X @ W.T
        den = np.linalg.norm(X, axis=1)[:, None] * np.linalg.norm(W, axis=1) + 1e-8
        return 1.0 - num / den, np.full(X.shape[0], _TIE_MARGIN)
    if distance == "manhattan":
        scale = np.abs(X).sum(axis=1) + np.abs(W).sum(axis=1).max()
        return cdist(X, W, metric="cityblock"), _TIE_MARGIN * scale
    # MiniSom's chebyshev is max(x - w) (no absolute value); a max has no rounding error.
    step = max(1, _BLOCK // W.size)
    scores = np.concatenate(
        [(X[i : i + step, None, :] - W).max(axis=-1) for i in range(0, X.shape[0], step)]
    )
    return scores, np.zeros(X.shape[0])


def som_winners(som: MiniSom, X: np.ndarray, activation_distance: str = "euclidean") -> np.ndarray:
    """Flat index (``x*som_y + y``) of MiniSom's winning node for every profile of X.

    ``activation_distance`` must be the one the MiniSom was built with.
    """
    shape = som.get_weights().shape
    W = som.get_weights().reshape(-1, shape[2])
    if W.shape[0] == 1:
        return np.zeros(X.shape[0], dtype=np.intp)
    scores, tol = _scores(X, W, activation_distance)
    best = scores.argmin(axis=1)
    two = np.partition(scores, 1, axis=1)
    for i in np.flatnonzero(two[:, 1] - two[:, 0] <= tol):
        best[i] = np.ravel_multi_index(som.winner(X[i]), shape[:2])
    return best


class ProfileSOM(ClusterMixin, BaseEstimator):
    """Self-organising map of velocity profiles (config keys ``velocity.som.*``).

    Fitted attributes: ``som_`` (the trained MiniSom), ``grid_shape_`` (som_x, som_y),
    ``weights_`` (som_x, som_y, n_depth), ``winners_`` (n_profiles, 2) node coordinates,
    ``labels_`` (0-based node index ``x*som_y + y``; seisgo's cluster is ``labels_ + 1``),
    ``hits_`` (som_x, som_y) profiles per node, ``u_matrix_`` (MiniSom ``distance_map``;
    NaN on a 1x1 grid),
    ``quantization_error_``, ``topographic_error_`` (None on a 1x1 grid) and
    ``populated_nodes_`` (sorted indices of the nodes with members: seisgo's ``pred`` order).
    """

    def __init__(
        self,
        grid_size: Sequence[int] | None = None,
        niteration: int = 50000,
        sigma: float = 0.3,
        learning_rate: float = 0.1,
        neighborhood_function: str = "gaussian",
        topology: str = "rectangular",
        activation_distance: str = "euclidean",
        random_state: int | None = 0,
    ) -> None:
        self.grid_size = grid_size
        self.niteration = niteration
        self.sigma = sigma
        self.learning_rate = learning_rate
        self.neighborhood_function = neighborhood_function
        self.topology = topology
        self.activation_distance = activation_distance
        self.random_state = random_state

    def _grid(self, n_profiles: int) -> tuple[int, int]:
        if self.grid_size is None:
            return auto_grid(n_profiles)
        return int(self.grid_size[0]), int(self.grid_size[1])

    def _check_params(self) -> None:
        """The parameters as ``velocity.som`` (:func:`seiscluster.config.section`)."""
        params = {key: getattr(self, key) for key in (
            "grid_size", "niteration", "sigma", "learning_rate", "neighborhood_function",
            "topology", "activation_distance", "random_state")}
        if params["random_state"] is None:  # unseeded, as MiniSom's default
            del params["random_state"]
        if isinstance(params["grid_size"], str):  # a string is a sequence of letters
            params["grid_size"] = [params["grid_size"]]
        section("velocity.som", params)

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> ProfileSOM:
        """Train the map on the profiles X (n_profiles, n_depth) as seisgo does, in a
        weighted draw of the profiles when ``sample_weight`` is given; returns self."""
        X = check_profiles(X)
        self._check_params()
        weights = check_weights(sample_weight, X.shape[0])
        som_x, som_y = self._grid(X.shape[0])
        som = MiniSom(
            som_x, som_y, X.shape[1], sigma=self.sigma, learning_rate=self.learning_rate,
            neighborhood_function=self.neighborhood_function, topology=self.topology,
            activation_distance=self.activation_distance, random_seed=self.random_state,
        )
        som.random_weights_init(X)
        if weights is None:
            som.train(X, int(self.niteration))
        else:
            order = np.random.default_rng(self.random_state).choice(
                X.shape[0], int(self.niteration), p=weights / weights.sum())
            som.train(X[order], int(self.niteration))
        self.som_ = som
        self.grid_shape_ = (som_x, som_y)
        self.weights_ = som.get_weights()
        self.labels_ = som_winners(som, X, self.activation_distance)
        self.winners_ = np.column_stack(np.divmod(self.labels_, som_y))
        self.hits_ = np.bincount(self.labels_, minlength=som_x * som_y).reshape(som_x, som_y)
        self.populated_nodes_ = np.flatnonzero(self.hits_.ravel())
        with np.errstate(invalid="ignore"):  # a 1x1 map has no neighbours: NaN
            self.u_matrix_ = som.distance_map()
        self.quantization_error_ = float(som.quantization_error(X))
        self.topographic_error_ = (
            float(som.topographic_error(X)) if som_x * som_y > 1 else None
        )
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Winning node index (``x*som_y + y``) of each profile."""
        check_is_fitted(self, "som_")
        return som_winners(self.som_, check_profiles(X), self.activation_distance)
