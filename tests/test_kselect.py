"""Choosing k: stability, gap statistic and the rules that combine them."""

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from seiscluster import kselect
from seiscluster.config import KRule
from seiscluster.errors import InputError
from seiscluster.tremor.kscan import kscan, scan_k
from seiscluster.velocity.elbow import elbow_scan

RULES = [rule.value for rule in KRule]


def blobs(k=4, n=300, dim=6, seed=0, std=0.5):
    return make_blobs(n, dim, centers=k, cluster_std=std, center_box=(-10, 10),
                      random_state=seed)[0]


def test_mean_pairwise_ari_ignores_label_names():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert kselect.mean_pairwise_ari([a, 2 - a, (a + 1) % 3]) == 1.0
    assert kselect.mean_pairwise_ari([a, np.array([0, 1, 0, 1, 0, 1])]) < 0
    assert np.isnan(kselect.mean_pairwise_ari([a]))


def test_within_ss_is_the_kmeans_inertia():
    X = blobs()
    km = KMeans(4, n_init=2, random_state=0).fit(X)
    assert kselect.within_ss(X, km.labels_) == pytest.approx(km.inertia_, rel=1e-9)


def test_reference_sets_fill_the_principal_box_of_the_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) @ np.array([[3, 0, 0], [1, 1, 0], [0, 0, 0.1]])
    refs = kselect.reference_sets(X, 4, seed=1)
    assert refs.shape == (4, 200, 3)
    np.testing.assert_array_equal(refs, kselect.reference_sets(X, 4, seed=1))
    _, _, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    proj, rproj = (X - X.mean(0)) @ vt.T, (refs - X.mean(0)) @ vt.T
    assert (rproj.min(axis=(0, 1)) >= proj.min(0) - 1e-9).all()
    assert (rproj.max(axis=(0, 1)) <= proj.max(0) + 1e-9).all()


@pytest.mark.parametrize(("k", "seed"), [(3, 0), (4, 1), (6, 2)])
def test_gap_statistic_finds_k_of_well_separated_blobs(k, seed):
    X = blobs(k=k, seed=seed)
    labels = {j: [KMeans(j, n_init=3, random_state=r).fit_predict(X) for r in range(2)]
              for j in range(2, 9)}
    table = kselect.gap_statistic(X, labels, n_refs=8, seed=seed)
    assert list(table.columns) == ["k", "gap", "gap_sk"]
    assert (table["gap_sk"] > 0).all()
    assert kselect.gap_choice(table)[0] == k


def test_gap_choice_takes_the_largest_gap_when_no_k_passes():
    table = pd.DataFrame({"k": [2, 3, 4], "gap": [0.1, 0.5, 0.9], "gap_sk": [0.01] * 3})
    k, why = kselect.gap_choice(table)
    assert k == 4 and "largest gap" in why
    table["gap"] = [0.1, 0.5, 0.4]
    assert kselect.gap_choice(table)[0] == 3


STAB = pd.DataFrame({"k": [2, 3, 4, 5, 6], "stability": [1.0, 0.95, 0.6, 0.92, 0.5],
                     "gap": [0.1, 0.2, 0.3, 0.35, 0.2], "gap_sk": [0.01] * 5})


@pytest.mark.parametrize(("base", "expected", "fragment"), [
    (3, 3, "stable"), (4, 3, "largest smaller"), (6, 5, "largest smaller"),
])
def test_stable_choice_moves_an_unstable_k_to_a_stable_one(base, expected, fragment):
    k, why = kselect.stable_choice(STAB, base, 0.9)
    assert k == expected and fragment in why


def test_stable_choice_goes_up_or_keeps_k_when_nothing_smaller_is_stable():
    table = STAB.assign(stability=[0.5, 0.95, 0.6, 0.92, 0.5])
    assert kselect.stable_choice(table, 2, 0.9)[0] == 3
    k, why = kselect.stable_choice(table.assign(stability=0.1), 4, 0.9)
    assert k == 4 and "no k reaches" in why


def test_choose_applies_each_rule():
    got = {rule: kselect.choose(STAB, rule, 4, "crit", 0.9)[0]
           for rule in RULES}
    assert got == {"criterion": 4, "gap": 5, "stable_criterion": 3, "stable_gap": 5}


def test_tremor_scan_stability_is_deterministic_for_a_seed_and_high_at_the_true_k():
    X = blobs(k=3, n=240, seed=3, std=1.0)
    a, _ = scan_k(X, range(2, 7), n_init=3, seed=5, n_jobs=1)
    b, _ = scan_k(X, range(2, 7), n_init=3, seed=5, n_jobs=2)
    pd.testing.assert_frame_equal(a, b)
    assert a.loc[a.k == 3, "stability"].item() == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noise, _ = scan_k(rng.uniform(size=(240, 6)), [6], n_init=3, seed=5)
    assert noise["stability"].item() < 0.9


def test_velocity_scan_scores_and_rules():
    X = blobs(k=4, n=200, dim=20, seed=4)
    runs = [elbow_scan(X, [2, 3, 4, 5, 6], n_init=2, random_state=1, rule=rule,
                       sample_size=150, stability_seeds=3) for rule in RULES]
    for other in runs[1:]:
        pd.testing.assert_frame_equal(runs[0].table, other.table)
    assert [r.n_clusters for r in runs] == [4, 4, 4, 4]
    assert runs[0].table.loc[runs[0].table.k == 4, "stability"].item() == pytest.approx(1.0)
    assert all(f"(rule {rule})" in r.message for r, rule in zip(runs, RULES, strict=True))


def test_kscan_rule_and_fixed_k():
    X = blobs(k=4, n=200, seed=6)
    res = kscan(X, k_min=2, k_max=7, n_init=2, rule="gap", gap_references=5)
    assert (res.n_clusters, res.rule, res.criterion_k) == (4, "gap", 4)
    fixed = kscan(X, k_min=2, k_max=7, n_init=2, n_clusters=6, rule="gap")
    assert (fixed.n_clusters, fixed.rule) == (6, "fixed")


def test_velocity_scan_stability_uses_the_clustering_metric():
    z = np.linspace(0, 1, 12)
    rng = np.random.default_rng(2)
    shapes = np.array([3 + z, 4 - z, 3.5 + np.sin(6 * z)])
    X = shapes[np.arange(45) % 3] + 0.02 * rng.normal(size=(45, 12))
    res = elbow_scan(X, [2, 3, 4], metric="dtw", n_init=1, stability_seeds=2,
                     gap_references=2, metric_params={"global_constraint": "sakoe_chiba",
                                                      "sakoe_chiba_radius": 1})
    assert res.table["stability"].between(-1, 1).all()
    assert res.table.loc[res.table.k == 3, "stability"].item() == pytest.approx(1.0)
    assert res.n_clusters == 3


@pytest.mark.parametrize(("kw", "key"), [
    ({"rule": "best"}, "rule"), ({"stability_seeds": 1}, "stability_seeds"),
    ({"stability_fraction": 0.0}, "stability_fraction"), ({"sample_size": 1}, "sample_size"),
    ({"gap_references": 0}, "gap_references"),
])
def test_scans_check_their_settings_before_fitting(kw, key):
    X = blobs(k=2, n=30)
    with pytest.raises(InputError, match=rf"velocity\.elbow\.{key}: expected"):
        elbow_scan(X, [2, 3, 4], **kw)
    with pytest.raises(InputError, match=rf"tremor\.kscan\.{key}: expected"):
        kscan(X, k_min=2, k_max=4, **kw)
