"""Diagnostics: each warning fires on data built to trigger it and stays silent otherwise."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.datasets import make_blobs

from seiscluster import diagnostics as diag
from seiscluster.config import compose, to_container
from seiscluster.tremor.deep_stages import _dec_warnings
from seiscluster.tremor.kscan import kscan
from seiscluster.velocity.som import ProfileSOM

T = diag.settings(None)


def codes(warnings):
    return [w["code"] for w in warnings]


def blobs(k, n=240, dim=5, seed=0, std=0.4):
    return make_blobs(n, dim, centers=k, cluster_std=std, center_box=(-10, 10),
                      random_state=seed)[0]


def scan_warn(X, **kw):
    res = kscan(X, n_init=3, seed=0, gap_references=3, **kw)
    fit = res.fits[res.n_clusters]
    return res, diag.scan_warnings(res.table, res.n_clusters, fit.labels, thresholds=T,
                                   chosen=kw.get("n_clusters") is None, n_seeds=5, what="t")


def test_defaults_are_the_config_defaults():
    assert to_container(compose().diagnostics) == T
    assert diag.settings({"min_stability": 0.5})["min_stability"] == 0.5


def test_clean_blobs_raise_no_warning():
    res, warnings = scan_warn(blobs(4), k_min=2, k_max=7)
    assert res.n_clusters == 4 and warnings == []


def test_k_at_the_upper_bound_warns_unless_fixed():
    X = blobs(6, seed=1)
    res, warnings = scan_warn(X, k_min=2, k_max=4, criterion="silhouette", rule="criterion")
    assert res.n_clusters == 4 and "k_at_bound" in codes(warnings)
    assert "upper bound" in warnings[codes(warnings).index("k_at_bound")]["message"]
    _, fixed = scan_warn(X, k_min=2, k_max=4, n_clusters=4)
    assert "k_at_bound" not in codes(fixed)
    assert codes(diag.k_at_bound(2, [2, 3, 4], "x")) == ["k_at_bound"]
    assert diag.k_at_bound(3, [2, 3, 4], "x") == []


def test_a_single_outlier_cluster_is_flagged():
    X = np.vstack([blobs(3, seed=2), np.full((1, 5), 60.0)])
    res, warnings = scan_warn(X, k_min=2, k_max=6, criterion="calinski_harabasz",
                              rule="criterion")
    sizes = np.bincount(res.fits[res.n_clusters].labels)
    assert sizes.min() == 1 and "small_cluster" in codes(warnings)
    assert diag.small_clusters(np.array([1, 1, 2, 2]), 2, "x") == []
    assert "fewer than 3" in diag.small_clusters(np.array([1, 1, 2, 2]), 3, "x")[0]["message"]


def test_label_outliers_renumbers_the_other_clusters():
    labels = np.array([1, 2, 2, 3, 4, 4, 4, 1, 3, 2])
    assert diag.label_outliers(labels, 3).tolist() == [0, 1, 1, 0, 2, 2, 2, 0, 0, 1]
    assert diag.label_outliers(labels, 1).tolist() == labels.tolist()
    assert diag.label_outliers(np.array([1, 2]), 2).tolist() == [0, 0]
    w = diag.small_clusters(labels, 3, "x", outliers=True)[0]["message"]
    assert "labelled as outliers, cluster 0" in w and "diagnostics.small_clusters" in w


def test_structureless_data_is_unstable_and_weakly_separated():
    X = np.random.default_rng(0).uniform(size=(300, 8))
    res, warnings = scan_warn(X, k_min=6, k_max=8, n_clusters=7)
    assert res.table.loc[res.table.k == 7, "stability"].item() < T["min_stability"]
    assert {"unstable_k", "low_silhouette"} <= set(codes(warnings))


@pytest.mark.parametrize("value", [None, float("nan"), 0.95])
def test_stability_and_silhouette_checks_stay_silent(value):
    assert diag.unstable_k(3, value, 0.9, 5, "x") == []
    assert diag.low_silhouette(value, 0.25, "x") == []


def test_dec_that_changed_no_label_warns():
    labels = np.array([1, 1, 2, 2, 3, 3])
    asg = xr.Dataset(attrs={"method": "IDEC"})
    w = _dec_warnings({"changed_fraction": 0.0, "silhouette": 0.6}, labels, asg, T)
    assert codes(w) == ["dec_unchanged"] and "IDEC changed 0.00%" in w[0]["message"]
    assert _dec_warnings({"changed_fraction": 0.2, "silhouette": 0.6}, labels, asg, T) == []
    assert _dec_warnings({"changed_fraction": None}, labels, asg, T) == []


def test_a_folded_som_has_a_high_topographic_error():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(300, 12))
    som = ProfileSOM(grid_size=[6, 6], niteration=50, sigma=0.3, random_state=0).fit(X)
    assert codes(diag.high_topographic_error(som.topographic_error_, 0.2)) == [
        "high_topographic_error"]
    line = np.linspace(0, 1, 300)[:, None] * np.ones((1, 3))
    smooth = ProfileSOM(grid_size=[1, 6], niteration=5000, sigma=1.0, random_state=0).fit(line)
    assert diag.high_topographic_error(smooth.topographic_error_, 0.2) == []


def test_log_warnings(caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        diag.log_warnings(logging.getLogger("x"), [diag.warning("k_at_bound", "msg")])
    assert "[k_at_bound] msg" in caplog.text


def test_warnings_are_json_records():
    w = diag.small_clusters(np.array([1, 2, 2]), 2, "x")
    assert json.loads(json.dumps(w)) == w and set(w[0]) == {"code", "message"}
    assert isinstance(pd.DataFrame(w), pd.DataFrame)


def test_low_agreement_names_the_branch_settings():
    assert diag.low_agreement(0.1, 0.1, 0.8, 5, "x") == []
    velocity = diag.low_agreement(0.3, 0.1, 0.8, 5, "x")[0]["message"]
    assert "of the nodes" in velocity and "(velocity.consensus.low_agreement" in velocity
    tremor = diag.low_agreement(0.3, 0.1, 0.8, 5, "x", "tremor.consensus", "windows")
    assert "of the windows" in tremor[0]["message"]
    assert "(tremor.consensus.low_agreement" in tremor[0]["message"]
