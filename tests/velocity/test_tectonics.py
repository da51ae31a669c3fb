"""Tectonic context: the shipped classes, their shares per cluster and the stage."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from seiscluster.config import compose
from seiscluster.errors import InputError
from seiscluster.velocity import stages
from seiscluster.velocity import tectonics as tec


def test_classify_oceans_by_age_and_continents_by_crust_type():
    codes = np.array([25, 26, 25, 3, 5, 0, 23, 19, 22, 28, 25])
    age = np.array([3.0, 24.9, 25.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan,
                    150.0])
    assert "".join(tec.classify(codes, age)) == "AABSSPPQQMC"
    assert len(tec.CRUST_TYPES) == 36


@pytest.mark.parametrize(("place", "lat", "lon", "expected"), [
    ("Kaapvaal craton", -27.0, 26.0, "S"), ("Canadian Shield", 60.0, -100.0, "S"),
    ("East Pacific Rise", -20.0, -113.0, "A"), ("Atlantic, 30 N", 30.0, -55.0, "B"),
    ("west Pacific", 20.0, 150.0, "C"), ("Himalaya", 30.0, 85.0, "Q"),
    ("west Pacific, longitude 0..360", 20.0, 510.0, "C")])
def test_shipped_classes_at_known_places(place, lat, lon, expected):
    assert tec.classes_at([lat], [lon])[0] == expected, place


def test_shipped_grid_area_shares():
    regions = tec.load_regions()
    assert regions["tectonic_class"].shape == (180, 360)
    w = np.cos(np.radians(regions["latitude"].values))[:, None] * np.ones((1, 360))
    keys = regions["class_key"].values.astype(str)[regions["tectonic_class"].values]
    ocean = w[np.isin(keys, ["A", "B", "C"])].sum() / w.sum()
    assert 0.55 < ocean < 0.62  # dated ocean floor; shelves and plateaus are M
    assert "Muller et al. 2008" in regions.attrs["source"]


def test_class_shares_purity_and_matching():
    labels = np.array([1, 1, 1, 2, 2, 2])
    classes = np.array(["A", "A", "S", "S", "S", "S"])
    area = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 2.0])
    table = tec.class_shares(labels, classes, area).set_index("cluster")
    assert table.loc[1, "A"] == pytest.approx(50.0) and table.loc[2, "S"] == 100.0
    assert table.loc[1, "area_share"] == pytest.approx(50.0)
    assert table.loc[2, "dominant"] == "shield / craton"
    assert tec.purity(labels, classes, area) == pytest.approx(6 / 8)


def tectonic_model(step: float = 4.0) -> xr.Dataset:
    """A global model whose profiles are those of their node's tectonic class (a seeded
    perturbation each), so that k-means at k = 7 finds the classes."""
    lat = np.arange(-88.0, 89.0, step)
    lon = np.arange(-180.0, 180.0, step)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    codes = {c: n for n, c in enumerate(tec.CLASSES)}
    k = np.vectorize(codes.get)(tec.classes_at(la.ravel(), lo.ravel())).reshape(la.shape)
    depth = np.arange(50.0, 301.0, 25.0)
    rng = np.random.default_rng(0)
    v = (4.2 + 0.002 * depth[:, None, None] + 0.12 * k[None]
         * np.sin(depth / 120.0)[:, None, None]
         + rng.normal(0.0, 0.01, (depth.size, *la.shape)))
    return xr.Dataset({"v": (("depth", "latitude", "longitude"), v, {"units": "km/s"})},
                      coords={"depth": depth, "latitude": lat, "longitude": lon},
                      attrs={"velocity_variable": "v"})


def test_stage_reads_clusters_against_the_classes(tmp_path):
    tectonic_model().to_netcdf(tmp_path / "model.nc")
    prof = str(tmp_path / "profiles.nc")
    stages.profiles(model=str(tmp_path / "model.nc"), profiles=prof)
    kmeans = {"n_clusters": 7, "n_init": 3, "metric": "euclidean", "metric_params": {},
              "max_iter_barycenter": 10, "max_iter": 100, "tol": 1e-6, "random_state": 0}
    stages.fit_kmeans(profiles=prof, cluster_map=str(tmp_path / "map.csv"),
                      clusters=str(tmp_path / "clusters.nc"),
                      model=str(tmp_path / "model.pkl"), seisgo=str(tmp_path / "seisgo"),
                      metrics=str(tmp_path / "fit.json"), source="v", tag="v", kmeans=kmeans)
    out = {k: str(tmp_path / f) for k, f in (("table", "classes.csv"),
                                             ("metrics", "metrics.json"),
                                             ("figure", "maps.png"))}
    stages.tectonics(profiles=prof, clusters=str(tmp_path / "clusters.nc"), kmeans=kmeans,
                     **out)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert (record["run_weights"], record["other_weights"]) == ("cos_lat", "none")
    assert min(record["purity"].values()) > 0.99 and record["ari_between"] > 0.99
    assert sum(record["class_area"].values()) == pytest.approx(1.0)
    table = pd.read_csv(out["table"])
    assert len(table) == 14 and set(table["dominant"]) == set(tec.CLASSES.values())
    assert (tmp_path / "maps.png").stat().st_size > 10_000


def test_tectonics_needs_euclidean_kmeans():
    assert compose(["velocity.tectonics=true"]).velocity.tectonics
    for bad in (["velocity.methods=[som]"], ["velocity.kmeans.metric=dtw"]):
        with pytest.raises(InputError, match=r"velocity\.tectonics: expected false unless"):
            compose(["velocity.tectonics=true", *bad])
