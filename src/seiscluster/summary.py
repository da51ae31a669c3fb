"""Summary of a sweep: one table row per run, comparison figures and an index page.

Results are read from the documented products of each run folder (``results/<run>/``);
a product a run does not have (a branch that was off, a stage not run yet) leaves its
cells empty (NaN). The table's result columns are fixed, so that sweeps compare:

- ``velocity_elbow_k``, ``velocity_elbow_knee``, ``velocity_elbow_fallback``
  (``velocity/elbow/choice.json``);
- ``velocity_<method>_<metric>`` (``velocity/<method>/metrics.json``);
- ``velocity_consensus_<method>_<metric>`` (mean agreement, share of low-agreement nodes,
  mean ARI of the refits: ``velocity/consensus/metrics.json``);
- ``tremor_kscan_k`` (``tremor/kscan/choice.json``), ``tremor_dec_<metric>``
  (``tremor/dec/metrics.json``) and ``tremor_dec_final_delta_label`` (last row of
  ``tremor/dec/history.csv``);
- ``<labels>_ari_vs_first``: the adjusted Rand index of the run's labels against those of
  the first run that has them (1 for that run), when both label the same samples;
- ``warnings``: every warning of the run's choices and fits (:mod:`seiscluster.diagnostics`),
  ``<product>: <code>`` joined by ``; `` (products in :data:`WARNED`), and ``n_warnings``;
- ``time_<rule>_s``: wall time of each rule, from Snakemake's benchmark files
  ``logs/benchmarks/<rule>.tsv`` (mean of the column ``s`` over repeats).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seiscluster.errors import InputError
from seiscluster.fileio import atomic_path, write_text
from seiscluster.report import html_page, image, load_json, note, section
from seiscluster.report import table as html_table

#: Metrics of each velocity method's ``metrics.json`` kept in the table.
VELOCITY_METRICS = {
    "kmeans": ("n_clusters", "inertia", "silhouette", "calinski_harabasz", "ari_vs_truth"),
    "som": ("n_clusters", "quantization_error", "topographic_error", "silhouette",
            "calinski_harabasz", "ari_vs_truth"),
    "gmm": ("n_clusters", "bic", "mean_max_probability", "silhouette", "calinski_harabasz",
            "ari_vs_truth"),
    "agglomerative": ("n_clusters", "silhouette", "calinski_harabasz", "ari_vs_truth"),
}
#: Metrics of each method of ``velocity/consensus/metrics.json`` kept in the table.
CONSENSUS_METRICS = ("mean_agreement", "low_share", "mean_ari")
#: Metrics of ``tremor/dec/metrics.json`` kept in the table.
DEC_METRICS = ("n_clusters", "dec_iterations", "dec_converged", "ari", "nmi", "ari_kmeans")
#: Metrics of ``tremor/features/metrics.json`` (the interpretable features) kept.
FEATURE_METRICS = ("n_clusters", "n_outliers", "ari", "ari_pure", "nmi")
#: Labels compared between runs: column prefix -> labels file in the run folder.
LABELS = {
    "velocity_kmeans": "velocity/kmeans/cluster_map.csv",
    "velocity_som": "velocity/som/cluster_map.csv",
    "velocity_gmm": "velocity/gmm/cluster_map.csv",
    "velocity_agglomerative": "velocity/agglomerative/cluster_map.csv",
    "tremor_dec": "tremor/dec/labels.csv",
    "tremor_features": "tremor/features/labels.csv",
}
#: Products whose ``warnings`` list the table gathers: name in the cell -> file in the run.
WARNED = {
    "velocity elbow": "velocity/elbow/choice.json",
    "velocity kmeans": "velocity/kmeans/metrics.json",
    "velocity som": "velocity/som/metrics.json",
    "velocity gmm": "velocity/gmm/metrics.json",
    "velocity agglomerative": "velocity/agglomerative/metrics.json",
    "velocity consensus": "velocity/consensus/metrics.json",
    "tremor kscan": "tremor/kscan/choice.json",
    "tremor dec": "tremor/dec/metrics.json",
    "tremor features scan": "tremor/features/choice.json",
    "tremor features": "tremor/features/metrics.json",
}
#: Columns of a labels file that are not the sample's key.
NOT_KEYS = ("cluster", "max_assignment", "distance")
BENCHMARKS = "logs/benchmarks"
#: Result columns drawn in the metrics figure (those with a value in some run).
PLOTTED = (
    "velocity_elbow_k", "velocity_kmeans_inertia", "velocity_kmeans_silhouette",
    "velocity_kmeans_calinski_harabasz", "velocity_kmeans_ari_vs_truth",
    "velocity_kmeans_ari_vs_first", "velocity_som_quantization_error",
    "velocity_som_silhouette", "velocity_som_ari_vs_truth", "velocity_gmm_ari_vs_truth",
    "velocity_agglomerative_silhouette", "velocity_agglomerative_ari_vs_truth",
    "velocity_consensus_kmeans_mean_agreement",
    "velocity_consensus_agglomerative_mean_agreement", "tremor_kscan_k", "tremor_dec_ari",
    "tremor_dec_final_delta_label", "tremor_dec_ari_vs_first", "tremor_features_n_clusters",
    "tremor_features_ari",
)


def summarise_runs(runs: list[dict]) -> pd.DataFrame:
    """One row per run: its name, the swept values and its key results (see the module)."""
    rows = []
    for run in runs:
        folder = Path(run["folder"])
        rows.append({"run": run["name"],
                     **{key: _cell(value) for key, value in run.get("overrides", {}).items()},
                     **_velocity_results(folder), **_tremor_results(folder),
                     **_warnings(folder)})
    frame = pd.DataFrame(rows)
    for prefix, relative in LABELS.items():
        frame[f"{prefix}_ari_vs_first"] = _ari_vs_first(
            [Path(run["folder"]) / relative for run in runs])
    times = pd.DataFrame([_wall_times(Path(run["folder"])) for run in runs],
                         index=frame.index)
    return pd.concat([frame, times.reindex(columns=sorted(times.columns))], axis=1)


def _cell(value: Any) -> Any:
    """A swept value as a table cell (lists and mappings as their JSON text)."""
    return json.dumps(value) if isinstance(value, (list, tuple, Mapping)) else value


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object, or an empty one when the file is absent."""
    return load_json(path) if path.is_file() else {}


def _value(record: Mapping[str, Any], key: str) -> Any:
    value = record.get(key)
    return np.nan if value is None else value


def _velocity_results(folder: Path) -> dict[str, Any]:
    choice = _read_json(folder / "velocity/elbow/choice.json")
    out = {f"velocity_elbow_{name}": _value(choice, key) for name, key in
           (("k", "n_clusters"), ("knee", "knee"), ("fallback", "fallback_used"))}
    for method, keys in VELOCITY_METRICS.items():
        metrics = _read_json(folder / f"velocity/{method}/metrics.json")
        out |= {f"velocity_{method}_{key}": _value(metrics, key) for key in keys}
    consensus = _read_json(folder / "velocity/consensus/metrics.json").get("methods") or {}
    for method in VELOCITY_METRICS:
        if method != "som":
            out |= {f"velocity_consensus_{method}_{key}": _value(consensus.get(method, {}), key)
                    for key in CONSENSUS_METRICS}
    return out


def _tremor_results(folder: Path) -> dict[str, Any]:
    out = {"tremor_kscan_k": _value(_read_json(folder / "tremor/kscan/choice.json"),
                                    "n_clusters")}
    metrics = _read_json(folder / "tremor/dec/metrics.json")
    out |= {f"tremor_dec_{key.removeprefix('dec_')}": _value(metrics, key)
            for key in DEC_METRICS}
    features = _read_json(folder / "tremor/features/metrics.json")
    out |= {f"tremor_features_{key}": _value(features, key) for key in FEATURE_METRICS}
    history = folder / "tremor/dec/history.csv"
    delta = np.nan
    if history.is_file():
        frame = pd.read_csv(history)
        if "delta_label" not in frame:
            raise InputError(f"{history} has no delta_label column.")
        delta = float(frame["delta_label"].iloc[-1]) if len(frame) else np.nan
    return out | {"tremor_dec_final_delta_label": delta}


def _warnings(folder: Path) -> dict[str, Any]:
    """The run's warnings as one cell (``<product>: <code>; ...``) and their count; empty
    cells when the run has none of the products that carry warnings."""
    present = [(name, folder / relative) for name, relative in WARNED.items()
               if (folder / relative).is_file()]
    if not present:
        return {"warnings": np.nan, "n_warnings": np.nan}
    found = [f"{name}: {w.get('code', '?')}" for name, path in present
             for w in load_json(path).get("warnings") or []]
    return {"warnings": "; ".join(found), "n_warnings": len(found)}


def _labels(path: Path) -> pd.Series | None:
    """Cluster of every sample, indexed by the sample's key columns (sorted)."""
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if "cluster" not in frame:
        raise InputError(f"{path} has no cluster column.")
    keys = [c for c in frame.columns if c not in NOT_KEYS]
    return frame.set_index(keys)["cluster"].sort_index()


def _ari_vs_first(paths: Sequence[Path]) -> list[float]:
    """ARI of each run's labels against the first run's that has labels (NaN where a run
    has none or labels other samples)."""
    from sklearn.metrics import adjusted_rand_score

    labels = [_labels(path) for path in paths]
    reference = next((lab for lab in labels if lab is not None), None)
    return [float(adjusted_rand_score(reference.to_numpy(), lab.to_numpy()))
            if lab is not None and lab.index.equals(reference.index) else np.nan
            for lab in labels]


def _wall_times(folder: Path) -> dict[str, float]:
    """Mean wall time (s) of every rule with a benchmark file in the run folder."""
    out = {}
    for path in sorted((folder / BENCHMARKS).glob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        if "s" not in frame:
            raise InputError(f"{path} has no column 's' (a Snakemake benchmark file).")
        out[f"time_{path.stem}_s"] = float(frame["s"].mean()) if len(frame) else np.nan
    return out


# --------------------------------------------------------------------------- outputs

def write_sweep_outputs(table: pd.DataFrame, runs: list[dict], summary_csv: str,
                        index_html: str, figures_dir: str) -> None:
    """Write the summary CSV, the comparison figures (PNG) and the sweep's index page.

    The index links every run's ``report.html`` and the CSV by paths relative to its own
    folder, and embeds the figures, so the sweep folder can be opened in place.
    """
    with atomic_path(summary_csv) as tmp:
        table.to_csv(tmp, index=False)
    figures = write_sweep_figures(table, runs, figures_dir)
    index = Path(index_html)
    swept = _swept_keys(runs)
    sections = [
        section("runs", "Runs", [_run_links(runs, index.parent)]),
        section("summary", "Summary table", [
            f"<p><a href='{_relative(summary_csv, index.parent)}'>summary CSV</a> "
            f"(one row per run; shown here with one column per run, empty rows left "
            "out)</p>", html_table(_transposed(table))]),
        section("figures", "Comparison figures", [
            f"<figure>{image(path, path.stem)}<figcaption><a href='"
            f"{_relative(path, index.parent)}'>{html.escape(path.name)}</a></figcaption>"
            "</figure>" for path in figures] or [note("No result of any run to compare.")]),
    ]
    lead = note(f"{len(runs)} runs; swept keys: {', '.join(swept) or 'none'}.")
    write_text(index, html_page(f"seiscluster sweep '{index.parent.name}'", [lead, *sections]))


def write_sweep_figures(table: pd.DataFrame, runs: list[dict], figures_dir: str) -> list[Path]:
    """``metrics.png`` and ``wall_time.png`` in ``figures_dir`` where there is something to
    draw; returns the paths written."""
    from seiscluster.plots import sweep as plots

    folder = Path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    swept = _swept_keys(runs)
    metrics = [c for c in PLOTTED if c in table and
               pd.to_numeric(table[c], errors="coerce").notna().any()]
    stages = [c for c in table.columns if c.startswith("time_") and table[c].notna().any()]
    written = []
    if metrics:
        plots.save(plots.plot_metrics(table, metrics, swept), folder / "metrics.png")
        written.append(folder / "metrics.png")
    if stages:
        labels = [c.removeprefix("time_").removesuffix("_s") for c in stages]
        plots.save(plots.plot_wall_times(table, stages, labels), folder / "wall_time.png")
        written.append(folder / "wall_time.png")
    return written


def _swept_keys(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The config keys that the sweep varies, sorted."""
    return sorted({key for run in runs for key in run.get("overrides", {})})


def _transposed(table: pd.DataFrame) -> pd.DataFrame:
    """The summary with one column per run (readable with many results), numbers to four
    significant digits, results that no run has left out."""
    shown = table.dropna(axis=1, how="all").set_index("run")
    cells = shown.map(lambda v: "–" if pd.isna(v) else f"{v:.4g}" if isinstance(v, float)
                      else str(v))
    return cells.T.rename_axis("result").reset_index()


def _relative(path: str | Path, start: Path) -> str:
    return html.escape(Path(os.path.relpath(Path(path), start)).as_posix(), quote=True)


def _run_links(runs: Sequence[Mapping[str, Any]], start: Path) -> str:
    """A list of links to every run's report, with the run's swept values."""
    items = []
    for run in runs:
        report = Path(run["folder"]) / "report.html"
        values = ", ".join(f"{k}={v}" for k, v in run.get("overrides", {}).items())
        missing = "" if report.is_file() else " <span class='warn'>(not written yet)</span>"
        items.append(f"<li><a href='{_relative(report, start)}'>{html.escape(run['name'])}"
                     f"</a> {html.escape(values)}{missing}</li>")
    return f"<ul>{''.join(items)}</ul>"
