"""ProfileSOM: seisgo's MiniSom map, seeded, with MiniSom's own winners."""

import math

import numpy as np
import pytest
from minisom import MiniSom

from seiscluster.errors import InputError
from seiscluster.velocity.som import ProfileSOM, auto_grid, som_winners


def profiles(n=300, n_depth=15, seed=0):
    rng = np.random.default_rng(seed)
    z = np.linspace(0, 1, n_depth)
    base = np.array([3 + z, 3.5 + 0.5 * z, 4 + 0.2 * np.sin(6 * z)])
    return base[rng.integers(0, 3, n)] + 0.05 * rng.normal(size=(n, n_depth))


def minisom_winners(som, X):
    return np.array([np.ravel_multi_index(som.winner(x), som.get_weights().shape[:2]) for x in X])


def test_same_seed_same_map_as_seeded_seisgo_recipe():
    X = profiles()
    model = ProfileSOM(niteration=3000, random_state=3).fit(X)
    # seisgo: MiniSom(x, y, n_depth, sigma, learning_rate=rate), random_weights_init, train
    som = MiniSom(5, 5, X.shape[1], sigma=0.3, learning_rate=0.1, random_seed=3)
    som.random_weights_init(X)
    som.train(X, 3000)
    assert model.grid_shape_ == (5, 5)  # ceil(sqrt(sqrt(300)))
    np.testing.assert_array_equal(model.weights_, som.get_weights())
    again = ProfileSOM(niteration=3000, random_state=3).fit(X)
    np.testing.assert_array_equal(again.weights_, model.weights_)
    np.testing.assert_array_equal(again.labels_, model.labels_)
    other = ProfileSOM(niteration=3000, random_state=4).fit(X)
    assert not np.array_equal(other.weights_, model.weights_)


@pytest.mark.parametrize("distance", ["euclidean", "cosine", "manhattan", "chebyshev"])
def test_labels_are_minisom_winners(distance):
    X = profiles(seed=1)
    model = ProfileSOM(grid_size=(4, 6), niteration=2000, activation_distance=distance).fit(X)
    np.testing.assert_array_equal(model.labels_, minisom_winners(model.som_, X))
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    np.testing.assert_array_equal(model.winners_, np.column_stack(np.divmod(model.labels_, 6)))


def test_near_ties_are_settled_by_minisom():
    X = profiles(n=50, seed=2)
    som = MiniSom(3, 3, X.shape[1], random_seed=0)
    som.random_weights_init(X)
    weights = som.get_weights()
    weights[2, 1] = weights[0, 1]  # two identical nodes: MiniSom picks the first
    expected = minisom_winners(som, X)
    asked = []
    winner = som.winner
    som.winner = lambda x: asked.append(x) or winner(x)
    np.testing.assert_array_equal(som_winners(som, X), expected)
    flat = weights.reshape(9, -1)
    twins = [k for k in range(9) if (flat == flat[k]).all(axis=1).sum() > 1]
    assert 1 in twins
    assert len(asked) == np.isin(expected, twins).sum()  # only the tied rows
    assert som_winners(som, weights[0, 1][None, :]).tolist() == [1]


@pytest.mark.parametrize(("n", "side"), [(1, 1), (16, 2), (17, 3), (300, 5), (18000, 12)])
def test_auto_grid_is_seisgo_rule(n, side):
    assert auto_grid(n) == (side, side) == (math.ceil(math.sqrt(math.sqrt(n))),) * 2


def test_fitted_summaries():
    X = profiles(seed=3)
    model = ProfileSOM(grid_size=[3, 4], niteration=2000, random_state=0).fit(X)
    assert model.hits_.shape == (3, 4) and model.hits_.sum() == X.shape[0]
    np.testing.assert_array_equal(model.hits_.ravel(), np.bincount(model.labels_, minlength=12))
    np.testing.assert_array_equal(model.populated_nodes_, np.unique(model.labels_))
    np.testing.assert_array_equal(model.u_matrix_, model.som_.distance_map())
    assert model.u_matrix_.shape == (3, 4)
    assert model.quantization_error_ == pytest.approx(
        np.linalg.norm(X - model.weights_.reshape(12, -1)[model.labels_], axis=1).mean()
    )
    assert 0 <= model.topographic_error_ <= 1


def test_one_node_map():
    X = profiles(n=20)
    model = ProfileSOM(grid_size=(1, 1), niteration=50).fit(X)
    assert model.labels_.tolist() == [0] * 20
    assert model.topographic_error_ is None
    assert model.populated_nodes_.tolist() == [0]
    assert np.isnan(model.u_matrix_).all()


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"grid_size": [0, 3]},
         r"velocity\.som\.grid_size: expected \[nx, ny\] with both >= 1 or null"),
        ({"grid_size": [3]}, r"velocity\.som\.grid_size"),
        ({"grid_size": "33"}, r"velocity\.som\.grid_size"),
        ({"grid_size": [2.5, 2]}, r"velocity\.som\.grid_size"),
        ({"sigma": 0}, r"velocity\.som\.sigma: expected a number > 0, got 0"),
        ({"learning_rate": -0.1}, r"velocity\.som\.learning_rate: expected a number > 0"),
        ({"niteration": 0}, r"velocity\.som\.niteration: expected an integer >= 1"),
        ({"topology": "torus"}, r"velocity\.som\.topology: expected one of rectangular"),
        ({"neighborhood_function": "box"}, r"velocity\.som\.neighborhood_function"),
        ({"activation_distance": "dtw"}, r"velocity\.som\.activation_distance"),
    ],
)
def test_bad_parameters_are_named(params, pattern):
    with pytest.raises(InputError, match=pattern):
        ProfileSOM(**params).fit(profiles(n=20))


def test_nan_profiles_are_rejected():
    X = profiles(n=20)
    X[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        ProfileSOM().fit(X)
