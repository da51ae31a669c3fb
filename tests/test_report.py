"""The per-run HTML report, built from small real products of both branches."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from report_products import OVERRIDES, make_products

from seiscluster.config import compose, to_container, to_yaml
from seiscluster.errors import InputError
from seiscluster.report import report_stage
from seiscluster.velocity import stages as velocity

VELOCITY_SECTIONS = ["velocity-profiles", "velocity-elbow", "velocity-kmeans", "velocity-som"]
TREMOR_SECTIONS = ["tremor-spectrograms", "tremor-skipped", "tremor-training", "tremor-kscan",
                   "tremor-dec", "tremor-features", "tremor-tsne", "tremor-timeline",
                   "tremor-examples"]
PROVENANCE = {
    "config": {"run": "products", "seed": 0, "velocity": {"methods": ["kmeans", "som"]}},
    "versions": {"seiscluster": "0.1.0", "numpy": "2.1.3", "snakemake": "9.3.0"},
    "seed": 0,
    "inputs": [{"path": "data/model.nc", "sha256": "ab" * 32, "bytes": 123456}],
    "started": "2025-01-02T03:04:05Z",
    "finished": "2025-01-02T03:09:05Z",
    "host": "node17",
    "python": "3.11.9",
    "overrides": ["velocity.kmeans.n_init=2"],
    "stages": {"velocity_profiles": {"key": "2de3897fd16e", "seconds": 1.49},
               "velocity_kmeans": {"key": "d66e6fe8ad29", "seconds": 1.723}},
}


def sections(page: str) -> dict[str, str]:
    """Section id -> the section's HTML after its heading."""
    return dict(re.findall(r"<section id='([^']+)'><h2>.*?</h2>(.*?)</section>", page, re.S))


def visible_text(fragment: str) -> str:
    return re.sub(r"<[^>]+>", " ", fragment).strip()


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> dict[str, str]:
    return make_products(tmp_path_factory.mktemp("products"))


@pytest.fixture(scope="module")
def page(products, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("report")
    (folder / "provenance.json").write_text(json.dumps(PROVENANCE))
    report_stage(report=str(folder / "report.html"), methods=["kmeans", "som"],
                 provenance=str(folder / "provenance.json"), **products)
    return (folder / "report.html").read_text()


def test_every_section_is_present_and_has_content(page):
    found = sections(page)
    assert list(found) == ["provenance", *VELOCITY_SECTIONS, *TREMOR_SECTIONS, "config"]
    empty = [ident for ident, body in found.items()
             if not visible_text(body) and "<img" not in body]
    assert not empty
    # the table of contents links every section
    assert re.findall(r"<a href='#([^']+)'>", page) == list(found)


def test_figures_are_embedded_byte_for_byte_and_nothing_is_fetched(page, products):
    embedded = {base64.b64decode(data) for data in
                re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)}
    figures = {Path(path).read_bytes() for key, path in products.items()
               if path.endswith(".png")}
    assert len(figures) == 8 and embedded == figures
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", page)
    assert "<link" not in page and "<script" not in page


def test_provenance_is_rendered(page):
    body = sections(page)["provenance"]
    for text in ("node17", "3.11.9", "2025-01-02T03:09:05Z", "data/model.nc", "ab" * 32,
                 "123456", "numpy", "2.1.3", "velocity.methods", "kmeans, som"):
        assert text in body, text
    assert "<h3>Versions</h3>" in body and "<h3>Inputs</h3>" in body
    assert "<li><code>velocity.kmeans.n_init=2</code></li>" in body
    assert re.search(r"<td>velocity_profiles</td>\s*<td>2de3897fd16e</td>\s*<td>1.49</td>", body)


def test_sections_show_their_products(page, products):
    found = sections(page)
    choice = json.loads(Path(products["elbow_choice"]).read_text())
    assert html.escape(choice["message"]) in found["velocity-elbow"]
    assert f"k={choice['n_clusters']} was chosen by the rule {choice['rule']}" \
        in found["velocity-elbow"]
    assert "No knee found" not in found["velocity-elbow"]
    kmeans = json.loads(Path(products["kmeans_metrics"]).read_text())
    assert f"{kmeans['silhouette']:.4g}" in found["velocity-kmeans"]
    assert found["velocity-som"].count("<img") == 3
    skipped = pd.read_csv(products["skipped"])
    assert len(skipped) >= 1  # the day of the example has a gap
    assert skipped["window_start"][0] in found["tremor-skipped"]
    assert found["tremor-spectrograms"].count("<img") == 2
    assert "No losses figure was given" in found["tremor-training"]
    assert "run: products" in found["config"]


def test_missing_provenance_says_not_recorded(products, tmp_path):
    inputs = {k: v for k, v in products.items() if not k.startswith(("spectrograms", "skipped",
                                                                      "figure_"))}
    report_stage(report=str(tmp_path / "r.html"), methods=["kmeans", "som"], **inputs)
    found = sections((tmp_path / "r.html").read_text())
    assert "Provenance not recorded" in found["provenance"]
    assert not [ident for ident in found if ident.startswith("tremor")]


def test_no_knee_is_a_visible_warning(products, tmp_path):
    cfg = compose([*OVERRIDES, "velocity.elbow.sensitivity=20"])  # S too strict: no knee
    out = {"table": tmp_path / "elbow.csv", "choice": tmp_path / "choice.json",
           "figure": tmp_path / "elbow.png"}
    velocity.elbow(profiles=products["profiles"], **{k: str(v) for k, v in out.items()},
                   kmeans=to_container(cfg.velocity.kmeans),
                   elbow=to_container(cfg.velocity.elbow))
    assert json.loads(out["choice"].read_text())["knee"] is None
    report_stage(report=str(tmp_path / "r.html"), methods=["kmeans"], config=products["config"],
                 profiles=products["profiles"], elbow_choice=str(out["choice"]),
                 elbow_table=str(out["table"]), elbow_figure=str(out["figure"]),
                 kmeans_metrics=products["kmeans_metrics"])
    body = sections((tmp_path / "r.html").read_text())["velocity-elbow"]
    assert "<p class='warn'><strong>No knee found.</strong> kneed found no knee" in body


def test_fixed_cluster_count_says_why_there_is_no_elbow(products, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(to_yaml(compose([*OVERRIDES, "velocity.kmeans.n_clusters=4"])))
    report_stage(report=str(tmp_path / "r.html"), methods=["som"], config=str(config),
                 profiles=products["profiles"], som_metrics=products["som_metrics"])
    body = sections((tmp_path / "r.html").read_text())["velocity-elbow"]
    assert "k-means is not among velocity.methods" in body
    report_stage(report=str(tmp_path / "r.html"), methods=["kmeans"], config=str(config),
                 profiles=products["profiles"], kmeans_metrics=products["kmeans_metrics"])
    body = sections((tmp_path / "r.html").read_text())["velocity-elbow"]
    assert "velocity.kmeans.n_clusters=4" in body


def test_dec_section_shows_metrics_delta_label_and_contingency(products, tmp_path):
    metrics = {"n_samples": 23, "n_clusters": 2, "cluster_sizes": [15, 8],
               "dec_iterations": 40, "dec_converged": True, "ari_kmeans_vs_dec": 0.91,
               "n_with_truth": 23, "ari": 0.8125, "nmi": 0.77, "changed_fraction": 0.0,
               "warnings": [{"code": "dec_unchanged", "message": "DEC changed 0.00% <x>"}],
               "contingency": {"background": {"1": 14, "2": 1}, "tremor": {"1": 1, "2": 7}}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame({"iteration": [0, 20, 40], "delta_label": [0.0, 0.087, 0.0434],
                  "kl_loss": [0.1, 0.05, 0.04]}).to_csv(tmp_path / "history.csv", index=False)
    inputs = {k: v for k, v in products.items() if not k.startswith(("profiles", "elbow",
                                                                      "kmeans", "som"))}
    report_stage(report=str(tmp_path / "r.html"), dec_metrics=str(tmp_path / "metrics.json"),
                 dec_history=str(tmp_path / "history.csv"), **inputs)
    body = sections((tmp_path / "r.html").read_text())["tremor-dec"]
    assert "ran 40 iterations; final delta-label 0.0434" in body
    assert "0.8125" in body and "15, 8" in body
    assert re.search(r"<td>background</td>\s*<td>14</td>\s*<td>1</td>", body)
    assert "first target-distribution update" not in body
    pd.DataFrame({"iteration": [0, 20], "delta_label": [0.0, 5e-5],
                  "kl_loss": [0.1, 0.05]}).to_csv(tmp_path / "history.csv", index=False)
    report_stage(report=str(tmp_path / "r.html"), dec_metrics=str(tmp_path / "metrics.json"),
                 dec_history=str(tmp_path / "history.csv"), **inputs)
    body = sections((tmp_path / "r.html").read_text())["tremor-dec"]
    assert re.search(r"class='warn'>Fine-tuning stopped at its first target-distribution "
                     r"update", body)
    assert ("<div class='warn'><strong>Warnings</strong><ul><li><code>dec_unchanged</code> "
            "DEC changed 0.00% &lt;x&gt;</li></ul></div>") in body
    assert "dec_unchanged" not in body.split("</div>", 1)[1]  # not again in the table


def test_the_k_scan_explains_its_choice_and_warns(products, tmp_path):
    choice = {"n_clusters": 6, "criterion": "calinski_harabasz", "rule": "stable_criterion",
              "criterion_k": 6, "message": "k=6: highest calinski-harabasz score (12.5); stable",
              "scores": {"calinski_harabasz": 12.5, "stability": 0.97, "gap": 0.3},
              "warnings": [{"code": "k_at_bound", "message": "k=6 is the largest k"},
                           {"code": "small_cluster", "message": "4 of 6 clusters ..."}]}
    (tmp_path / "choice.json").write_text(json.dumps(choice))
    inputs = {k: v for k, v in products.items() if not k.startswith(("profiles", "elbow",
                                                                      "kmeans", "som"))}
    inputs["kscan_choice"] = str(tmp_path / "choice.json")
    report_stage(report=str(tmp_path / "r.html"), **inputs)
    body = sections((tmp_path / "r.html").read_text())["tremor-kscan"]
    assert "<strong>Choice of k.</strong> k=6 was chosen by the rule stable_criterion" in body
    assert re.search(r"<td>6</td>\s*<td>12.5</td>\s*<td>0.97</td>", body)
    assert "<code>k_at_bound</code>" in body and "<code>small_cluster</code>" in body


def test_features_section_sits_beside_the_embedding(products, tmp_path):
    dec = {"n_samples": 23, "n_clusters": 2, "cluster_sizes": [15, 8], "ari": 0.5,
           "nmi": 0.4}
    feat = {"n_samples": 23, "n_clusters": 3, "cluster_sizes": [10, 8, 5], "ari": 0.9375,
            "ari_pure": 0.99, "nmi": 0.9,
            "contingency": {"background": {"1": 10, "2": 0, "3": 0}}}
    choice = {"n_clusters": 3, "message": "k=3: highest calinski-harabasz score (42)"}
    for name, record in (("dec.json", dec), ("feat.json", feat), ("choice.json", choice)):
        (tmp_path / name).write_text(json.dumps(record))
    pd.DataFrame({"window_start": ["2021-03-12T00:00:00"], "cluster": [1],
                  "representation": ["features"]}).to_csv(tmp_path / "labels.csv", index=False)
    inputs = {k: v for k, v in products.items() if not k.startswith(("profiles", "elbow",
                                                                      "kmeans", "som"))}
    report_stage(report=str(tmp_path / "r.html"), dec_metrics=str(tmp_path / "dec.json"),
                 features_metrics=str(tmp_path / "feat.json"),
                 features_choice=str(tmp_path / "choice.json"),
                 labels=str(tmp_path / "labels.csv"), **inputs)
    body = sections((tmp_path / "r.html").read_text())["tremor-features"]
    assert "k=3: highest calinski-harabasz score (42)" in body
    assert "come from the features" in body
    assert re.search(r"<td>ARI vs truth \(majority regime\)</td>\s*<td>0.9375</td>\s*"
                     r"<td>0.5</td>", body)
    assert "10, 8, 5" in body and "15, 8" in body
    assert "No feature k scan figure was given to the report." in body


def test_bad_provenance_is_an_input_error(products, tmp_path):
    bad = tmp_path / "provenance.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match=r"provenance\.json must hold a JSON object"):
        report_stage(report=str(tmp_path / "r.html"), config=products["config"],
                     provenance=str(bad))
    assert not (tmp_path / "r.html").exists()


def test_cluster_lead_names_the_method_and_embeds_the_dendrogram(tmp_path):
    import matplotlib.pyplot as plt

    from seiscluster.report import cluster_lead

    assert cluster_lead({"n_clusters": 4, "method": "kmeans"}, str(tmp_path)) == []
    fig = plt.figure(figsize=(1, 1))
    fig.savefig(tmp_path / "dendrogram.png")
    plt.close(fig)
    choice = {"n_clusters": 4, "method": "agglomerative", "cluster_seconds": 0.5,
              "cluster": {"method": "agglomerative", "linkage": "ward"}}
    lead = cluster_lead(choice, str(tmp_path))
    assert "agglomerative (linkage ward)" in lead[0] and "k=4" in lead[0]
    assert len(lead) == 2 and "<img" in lead[1]
    assert len(cluster_lead({**choice, "method": "gmm"}, str(tmp_path / "none"))) == 1
