"""Sweep summary: the table of runs, its figures and the sweep's index page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_products import make_products
from sklearn.metrics import adjusted_rand_score

from seiscluster.errors import InputError
from seiscluster.plots.sweep import plot_metrics
from seiscluster.summary import summarise_runs, write_sweep_outputs

#: Header of a Snakemake benchmark file.
BENCHMARK_HEADER = "\t".join(["s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in",
                              "io_out", "mean_load", "cpu_time"])
GRID = pd.DataFrame({"lat": np.repeat([40.0, 40.5, 41.0], 4),
                     "lon": np.tile([-120.0, -119.5, -119.0, -118.5], 3)})


def write(path: Path, content: str | dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content) if isinstance(content, dict) else content)


def velocity_run(folder: Path, k: int, labels, *, inertia: float, seconds=(1.5,)) -> None:
    """A velocity-only run folder in the documented layout (products as the stages write)."""
    write(folder / "velocity/elbow/choice.json", {
        "n_clusters": k, "knee": k, "fallback_used": None, "message": "knee", "seconds": 1.0})
    write(folder / "velocity/kmeans/metrics.json", {
        "method": "kmeans", "n_clusters": k, "inertia": inertia, "fit_seconds": 0.4,
        "n_profiles": len(labels), "silhouette": 0.5 + k / 100, "calinski_harabasz": 100.0 * k,
        "ari_vs_truth": 0.9})
    write(folder / "velocity/som/metrics.json", {
        "method": "som", "grid_size": [2, 2], "n_clusters": 4, "quantization_error": 0.3,
        "topographic_error": 0.1, "silhouette": 0.2, "calinski_harabasz": 50.0})
    cluster_map = GRID.iloc[:len(labels)].assign(cluster=labels)
    write(folder / "velocity/kmeans/cluster_map.csv", cluster_map.to_csv(index=False))
    rows = "\n".join(f"{s}\t0:00:0{int(s)}\t100\t200\t90\t95\t0.1\t0.2\t50\t{s / 2}"
                     for s in seconds)
    write(folder / "logs/benchmarks/velocity_kmeans.tsv", f"{BENCHMARK_HEADER}\n{rows}\n")
    write(folder / "report.html", "<!DOCTYPE html><title>run</title>")


def tremor_run(folder: Path, labels) -> None:
    write(folder / "tremor/kscan/choice.json", {"n_clusters": 3, "criterion": "calinski_harabasz",
                                                "message": "k=3", "n_samples": len(labels)})
    write(folder / "tremor/dec/metrics.json", {
        "n_samples": len(labels), "n_clusters": 3, "cluster_sizes": [2, 2, 2],
        "dec_iterations": 40, "dec_converged": True, "ari_kmeans_vs_dec": 0.8,
        "n_with_truth": 6, "ari": 0.75, "nmi": 0.7, "ari_kmeans": 0.6, "nmi_kmeans": 0.5,
        "contingency": {"a": {"1": 2}}})
    write(folder / "tremor/dec/history.csv",
          "iteration,delta_label,kl_loss\n0,0.0,0.2\n20,0.1,0.1\n40,0.0125,0.05\n")
    windows = pd.date_range("2021-03-12", periods=len(labels), freq="h")
    write(folder / "tremor/dec/labels.csv", pd.DataFrame({
        "window_start": windows.strftime("%Y-%m-%dT%H:%M:%S"), "cluster": labels,
        "max_assignment": 0.9}).to_csv(index=False))
    write(folder / "logs/benchmarks/tremor_finetune.tsv",
          f"{BENCHMARK_HEADER}\n30.0\t0:00:30\t1\t1\t1\t1\t0\t0\t50\t20\n")


@pytest.fixture
def sweep(tmp_path) -> tuple[list[dict], Path]:
    """Four runs under results/: k-means labels equal up to renumbering (a, b), different
    (c), on other samples (d); d also has the tremor branch; plus a run with no output."""
    results = tmp_path / "results"
    base = [1, 1, 2, 2, 3, 3, 1, 2, 3, 1, 2, 3]
    velocity_run(results / "a", 3, base, inertia=0.5, seconds=(1.0, 2.0))
    velocity_run(results / "b", 4, [{1: 2, 2: 3, 3: 1}[c] for c in base], inertia=0.4)
    velocity_run(results / "c", 5, [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2], inertia=0.3)
    velocity_run(results / "d", 6, base[:8], inertia=0.2)
    tremor_run(results / "d", [1, 1, 2, 2, 3, 3])
    runs = [{"name": name, "folder": str(results / name),
             "overrides": {"velocity.kmeans.n_clusters": k, "velocity.profiles.zrange": [0, 60]}}
            for name, k in zip("abcde", (3, 4, 5, 6, 7), strict=True)]
    return runs, results


def test_one_row_per_run_with_swept_values_and_results(sweep):
    runs, _ = sweep
    table = summarise_runs(runs)
    assert table["run"].tolist() == list("abcde")
    assert table.columns[:3].tolist() == ["run", "velocity.kmeans.n_clusters",
                                          "velocity.profiles.zrange"]
    assert table["velocity.kmeans.n_clusters"].tolist() == [3, 4, 5, 6, 7]
    assert table["velocity.profiles.zrange"][0] == "[0, 60]"
    assert table["velocity_elbow_k"].tolist()[:4] == [3, 4, 5, 6]
    assert table["velocity_kmeans_inertia"].tolist()[:4] == [0.5, 0.4, 0.3, 0.2]
    assert table["velocity_kmeans_silhouette"][2] == pytest.approx(0.55)
    assert table["velocity_kmeans_calinski_harabasz"][1] == 400.0
    assert table["velocity_kmeans_ari_vs_truth"][0] == 0.9
    assert table["velocity_som_quantization_error"][0] == 0.3
    d = table.set_index("run").loc["d"]
    assert (d["tremor_kscan_k"], d["tremor_dec_ari"], d["tremor_dec_iterations"]) == (3, 0.75, 40)
    assert d["tremor_dec_final_delta_label"] == 0.0125


def test_warnings_of_every_product_in_one_column(sweep):
    runs, results = sweep
    warned = {"code": "k_at_bound", "message": "k=3 is the scan's lower bound"}
    choice = json.loads((results / "a/velocity/elbow/choice.json").read_text())
    write(results / "a/velocity/elbow/choice.json", {**choice, "warnings": [warned]})
    som = json.loads((results / "a/velocity/som/metrics.json").read_text())
    write(results / "a/velocity/som/metrics.json", {**som, "warnings": [
        {"code": "high_topographic_error", "message": "0.3 > 0.2"},
        {"code": "small_cluster", "message": "cluster 2 has 1 member"}]})
    table = summarise_runs(runs).set_index("run")
    assert table.loc["a", "warnings"] == ("velocity elbow: k_at_bound; velocity som: "
                                          "high_topographic_error; velocity som: small_cluster")
    assert table.loc["a", "n_warnings"] == 3
    assert (table.loc["b", "warnings"], table.loc["b", "n_warnings"]) == ("", 0)


def test_missing_files_leave_empty_cells(sweep):
    runs, _ = sweep
    table = summarise_runs(runs).set_index("run")
    results = table.drop(columns=["velocity.kmeans.n_clusters", "velocity.profiles.zrange"])
    assert results.loc["e"].isna().all()  # a run with no output at all
    # run a: velocity only, and its SOM metrics have no ARI vs a truth
    assert table.loc["a", ["tremor_kscan_k", "tremor_dec_ari", "tremor_dec_final_delta_label",
                           "tremor_dec_ari_vs_first", "velocity_som_ari_vs_truth"]].isna().all()
    assert table.loc["a", "velocity_som_silhouette"] == 0.2


def test_ari_between_runs_only_on_the_same_samples(sweep):
    runs, results = sweep
    table = summarise_runs(runs).set_index("run")
    ari = table["velocity_kmeans_ari_vs_first"]
    expected_c = adjusted_rand_score(
        pd.read_csv(results / "a/velocity/kmeans/cluster_map.csv")["cluster"],
        pd.read_csv(results / "c/velocity/kmeans/cluster_map.csv")["cluster"])
    assert ari["a"] == 1.0 and ari["b"] == pytest.approx(1.0)  # same partition, renumbered
    assert ari["c"] == pytest.approx(expected_c) and ari["c"] < 0.5
    assert np.isnan(ari["d"]) and np.isnan(ari["e"])  # other samples; no labels
    # the first run with tremor labels is the reference of the tremor column
    assert table["tremor_dec_ari_vs_first"].isna().tolist() == [True, True, True, False, True]
    assert table.loc["d", "tremor_dec_ari_vs_first"] == 1.0


def test_wall_time_per_stage_from_benchmark_files(sweep):
    runs, _ = sweep
    table = summarise_runs(runs).set_index("run")
    assert [c for c in table.columns if c.startswith("time_")] == [
        "time_tremor_finetune_s", "time_velocity_kmeans_s"]
    assert table.loc["a", "time_velocity_kmeans_s"] == 1.5  # mean over the repeats
    assert table.loc["d", "time_tremor_finetune_s"] == 30.0
    assert np.isnan(table.loc["a", "time_tremor_finetune_s"])
    assert np.isnan(table.loc["e", "time_velocity_kmeans_s"])


def test_unreadable_products_are_input_errors(sweep):
    runs, results = sweep
    (results / "a/velocity/kmeans/metrics.json").write_text("{not json")
    with pytest.raises(InputError, match=r"a/velocity/kmeans/metrics\.json is not valid JSON"):
        summarise_runs(runs)
    (results / "a/velocity/kmeans/metrics.json").write_text("{}")
    (results / "b/logs/benchmarks/velocity_kmeans.tsv").write_text("seconds\n1\n")
    with pytest.raises(InputError, match="has no column 's'"):
        summarise_runs(runs)


def test_sweep_outputs_link_every_run_and_embed_the_figures(sweep):
    runs, results = sweep
    table = summarise_runs(runs)
    folder = results / "sweeps/k"
    write_sweep_outputs(table, runs, str(folder / "summary.csv"), str(folder / "index.html"),
                        str(folder / "figures"))
    written = pd.read_csv(folder / "summary.csv")
    assert written["run"].tolist() == list("abcde")
    np.testing.assert_allclose(written["velocity_kmeans_inertia"],
                               table["velocity_kmeans_inertia"])
    assert sorted(p.name for p in (folder / "figures").iterdir()) == [
        "metrics.png", "metrics.svg", "wall_time.png", "wall_time.svg"]
    page = (folder / "index.html").read_text()
    links = re.findall(r"<a href='([^']+)'", page)
    assert links[:5] == [f"../../{name}/report.html" for name in "abcde"]
    assert "summary.csv" in links and "figures/metrics.png" in links
    assert all((folder / link).is_file() for link in links if not link.startswith("../../e/"))
    assert "(not written yet)" in page  # run e has no report
    assert page.count("data:image/png;base64,") == 2
    assert "tremor_dec_final_delta_label" in page and "0.0125" in page
    assert "velocity_som_ari_vs_truth" not in page  # an empty column is not shown
    # the page shows one column per run
    row = r"<td>velocity_kmeans_inertia</td>\s*" + r"\s*".join(
        f"<td>{v}</td>" for v in ("0.5", "0.4", "0.3", "0.2", "–"))
    assert re.search(row, page)
    assert not list(folder.rglob("*.tmp"))


def test_sweep_without_results_writes_the_table_and_says_so(tmp_path):
    runs = [{"name": "x", "folder": str(tmp_path / "results/x"), "overrides": {"seed": 1}}]
    folder = tmp_path / "results/sweeps/empty"
    write_sweep_outputs(summarise_runs(runs), runs, str(folder / "summary.csv"),
                        str(folder / "index.html"), str(folder / "figures"))
    assert pd.read_csv(folder / "summary.csv")["seed"].tolist() == [1]
    assert list((folder / "figures").iterdir()) == []
    assert "No result of any run to compare." in (folder / "index.html").read_text()


def test_one_numeric_swept_key_is_the_x_axis(sweep):
    runs, _ = sweep
    table = summarise_runs(runs)
    fig = plot_metrics(table, ["velocity_kmeans_inertia"], ["velocity.kmeans.n_clusters"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "velocity.kmeans.n_clusters"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [3, 4, 5, 6, 7])
    fig = plot_metrics(table, ["velocity_kmeans_inertia"], ["velocity.profiles.zrange"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list("abcde")


def test_real_run_products(tmp_path):
    make_products(tmp_path / "results/products")
    runs = [{"name": "products", "folder": str(tmp_path / "results/products"), "overrides": {}}]
    row = summarise_runs(runs).iloc[0]
    for method in ("kmeans", "som"):
        metrics = json.loads((tmp_path / f"results/products/velocity/{method}/metrics.json")
                             .read_text())
        for key in ("n_clusters", "silhouette", "calinski_harabasz", "ari_vs_truth"):
            assert row[f"velocity_{method}_{key}"] == metrics[key]
        assert row[f"velocity_{method}_ari_vs_first"] == 1.0
    choice = json.loads((tmp_path / "results/products/velocity/elbow/choice.json").read_text())
    assert row["velocity_elbow_k"] == choice["n_clusters"]
    assert row["velocity_elbow_knee"] == choice["knee"]
