"""Clustering methods of the embedding (tremor.cluster): probabilities, dendrogram cut,
information criteria and seeded determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from seiscluster.tremor.cluster import (
    METHODS,
    EmbeddingClusterer,
    cluster_means,
    information_criteria,
)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    z, y = make_blobs(240, n_features=5, centers=4, cluster_std=0.7, random_state=2)
    return z.astype(np.float32), y


@pytest.fixture(scope="module")
def fitted(blobs) -> dict[str, EmbeddingClusterer]:
    return {m: EmbeddingClusterer(m, 4, n_init=3, n_components=3, seed=5).fit(blobs[0])
            for m in METHODS}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_the_blobs(blobs, fitted, method):
    z, y = blobs
    model = fitted[method]
    assert model.labels_.shape == (240,) and set(model.labels_) == {0, 1, 2, 3}
    assert adjusted_rand_score(y, model.labels_) == pytest.approx(1.0)
    np.testing.assert_allclose(model.centres_, cluster_means(z, model.labels_, 4), rtol=1e-6)


@pytest.mark.parametrize("method", ["gmm", "umap_gmm"])
def test_mixture_probabilities_sum_to_one(fitted, method):
    p = fitted[method].probabilities_
    assert p.shape == (240, 4) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-10)
    np.testing.assert_array_equal(p.argmax(1), fitted[method].labels_)


def test_only_mixtures_have_probabilities_and_only_umap_a_manifold(fitted):
    assert fitted["kmeans"].probabilities_ is None
    assert fitted["agglomerative"].probabilities_ is None
    assert fitted["umap_gmm"].manifold_.shape == (240, 3) and fitted["gmm"].manifold_ is None


@pytest.mark.parametrize("linkage", ["ward", "complete", "average", "single"])
@pytest.mark.parametrize("k", [2, 3, 6])
def test_dendrogram_cut_gives_k_clusters(blobs, linkage, k):
    model = EmbeddingClusterer("agglomerative", k, linkage=linkage).fit(blobs[0])
    assert model.linkage_.shape == (239, 4) and model.linkage_[-1, 3] == 240
    cut = fcluster(model.linkage_, k, criterion="maxclust")
    assert np.unique(cut).size == k
    assert adjusted_rand_score(cut, model.labels_) == pytest.approx(1.0)


def test_dendrogram_figure_marks_the_cut_of_k_clusters(fitted, tmp_path):
    from seiscluster.plots.dendrogram import plot_dendrogram
    from seiscluster.plots.style import save

    linkage = fitted["agglomerative"].linkage_
    fig = plot_dendrogram(linkage, 4)
    cut = fig.axes[0].lines[-1].get_ydata()[0]
    assert linkage[-4, 2] < cut < linkage[-3, 2]  # above the 4th-last merge, below the 3rd
    save(fig, tmp_path / "d.png", dpi=40)
    assert (tmp_path / "d.png").stat().st_size > 1000 and (tmp_path / "d.svg").exists()


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_result(blobs, fitted, method):
    again = EmbeddingClusterer(method, 4, n_init=3, n_components=3, seed=5).fit(blobs[0])
    np.testing.assert_array_equal(again.labels_, fitted[method].labels_)
    if method == "umap_gmm":
        np.testing.assert_array_equal(again.manifold_, fitted[method].manifold_)
        np.testing.assert_array_equal(again.probabilities_, fitted[method].probabilities_)


def test_bic_is_lowest_at_the_true_k(blobs):
    table = information_criteria(blobs[0], range(2, 8), seed=0)
    assert list(table.columns) == ["k", "bic", "aic"] and list(table["k"]) == list(range(2, 8))
    assert table.loc[table["bic"].idxmin(), "k"] == 4


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="dbscan"):
        EmbeddingClusterer("dbscan")
