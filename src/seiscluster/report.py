"""Self-contained HTML report of a run: figures embedded, no network needed.

The report is a list of ``<section>`` blocks, one per product of the run (provenance,
each branch's stages, the resolved configuration). A section is only emitted with
content: where a product is absent, the section says why instead of staying empty.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from seiscluster import __version__
from seiscluster.errors import InputError
from seiscluster.fileio import write_text
from seiscluster.resources import workflow_root

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #bbb}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}figure{margin:1em 0}
figcaption{color:#555;font-size:.9em}nav ul{columns:2}
table{border-collapse:collapse;margin:.5em 0;display:block;overflow-x:auto}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}th{background:#f3f3f3}
.warn{background:#fff3cd;border:1px solid #e0c060;
padding:.6em}.note{color:#555}pre{background:#f6f6f6;padding:1em;overflow-x:auto}
"""

METHOD_TITLES = {"kmeans": "k-means", "som": "Self-organizing map", "gmm": "Gaussian mixture",
                 "agglomerative": "Agglomerative clustering"}
#: Low-agreement nodes listed in the consensus section (all in ``low_agreement.csv``).
LOW_AGREEMENT_ROWS = 50

#: Tremor sections made of figures: (section id, title, figure names); a figure's caption
#: is the one its stage declares (:func:`caption`).
FigureSection = tuple[str, str, tuple[str, ...]]
SPECTROGRAM_SECTION: FigureSection = ("tremor-spectrograms", "Tremor: Spectrograms",
                                      ("overview", "spectrogram_examples"))
TRAINING_SECTION: FigureSection = ("tremor-training", "Tremor: Autoencoder training",
                                   ("losses",))
KSCAN_SECTION: FigureSection = ("tremor-kscan", "Tremor: Number of clusters (k scan)",
                                ("kscan",))
CLUSTER_SECTIONS: tuple[FigureSection, ...] = (
    ("tremor-tsne", "Tremor: t-SNE of the embeddings", ("tsne",)),
    ("tremor-timeline", "Tremor: Clusters over time", ("clusters_over_time",)),
    ("tremor-examples", "Tremor: Per-cluster examples",
     ("cluster_spectrograms", "reconstructions")),
)
#: The tremor figures, in the report's order (inputs ``figure_<name>``).
TREMOR_FIGURES = tuple(name for spec in (SPECTROGRAM_SECTION, TRAINING_SECTION, KSCAN_SECTION,
                                         *CLUSTER_SECTIONS) for name in spec[2])
#: Velocity figures of each method: (input key, alt text); input ``<method>_<key>``.
VELOCITY_FIGURES = (("cluster_figure", "cluster profiles"), ("map_figure", "cluster map"),
                    ("som_figure", "SOM maps"), ("probability_figure", "probability map"),
                    ("scan_figure", "BIC and AIC"), ("dendrogram_figure", "dendrogram"))


@functools.cache
def _captions() -> dict[str, str]:
    from seiscluster.stagekeys import STAGES

    return {product.report: product.caption for stage in STAGES.values()
            for product in stage.outputs.values() if product.report and product.caption}


def caption(report: str, default: str = "") -> str:
    """The caption of the figure that a stage declares as the report input ``report``
    (``seiscluster.stagekeys.Product``): the text of ``workflow/report/<caption>.rst``,
    which Snakemake's report shows too, without its markup; ``default`` for another."""
    name = _captions().get(report)
    return default if name is None else rst_caption(name)


def rst_caption(name: str) -> str:
    """The text of ``workflow/report/<name>.rst`` without its markup."""
    text = (workflow_root() / "workflow" / "report" / f"{name}.rst").read_text()
    return " ".join(text.replace("``", "").split())


def image(path: str | Path, alt: str) -> str:
    """An ``<img>`` with the file embedded as a data URI (PNG or SVG)."""
    path = Path(path)
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:{mime};base64,{data}" alt="{html.escape(alt)}">'


def figure(path: str | Path | None, alt: str, caption: str) -> str:
    """An embedded image with its caption, or a note that the run did not produce it."""
    if not path:
        return note(f"No {alt} figure was given to the report.")
    return f"<figure>{image(path, alt)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def table(frame: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    """A compact HTML table."""
    return frame.to_html(index=False, border=0, float_format=floatfmt.format, na_rep="–")


def section(ident: str, title: str, parts: Sequence[str]) -> str:
    """One ``<section>`` with its heading; ``parts`` must not be empty."""
    if not parts:
        raise ValueError(f"report section {ident!r} has no content")
    return (f"<section id='{ident}'><h2>{html.escape(title)}</h2>\n" + "\n".join(parts)
            + "\n</section>")


def note(text: str, css: str = "note") -> str:
    """A paragraph of escaped text."""
    return f"<p class='{css}'>{html.escape(text)}</p>"


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """Key/value table of one fit's scalar metrics (nested values and warnings are left
    out)."""
    rows = [(key.replace("_", " "), _fmt(key, value)) for key, value in metrics.items()
            if key not in ("method", "warnings") and not isinstance(value, Mapping)]
    return table(pd.DataFrame(rows, columns=["metric", "value"]))


def warnings_block(record: Mapping[str, Any]) -> list[str]:
    """The ``warnings`` of a stage record as one highlighted list (nothing when none)."""
    items = "".join(f"<li><code>{html.escape(str(w.get('code', '')))}</code> "
                    f"{html.escape(str(w.get('message', '')))}</li>"
                    for w in record.get("warnings") or [])
    if not items:
        return []
    return [f"<div class='warn'><strong>Warnings</strong><ul>{items}</ul></div>"]


#: What each rule of :mod:`seiscluster.kselect` does, for the report.
RULE_TEXT = {
    "criterion": "the branch's own criterion",
    "gap": "Tibshirani's gap-statistic rule (the smallest k with Gap(k) >= Gap(k+1) - s(k+1))",
    "stable_criterion": "the branch's own criterion, moved to the nearest stable k (largest "
                        "smaller, else smallest larger) when its stability is below "
                        "diagnostics.min_stability",
    "stable_gap": "the gap-statistic rule, moved to the nearest stable k (largest smaller, "
                  "else smallest larger) when its stability is below "
                  "diagnostics.min_stability",
    "fixed": "fixed by the configuration",
}


def k_choice(record: Mapping[str, Any]) -> list[str]:
    """How k was chosen: the rule, its sentence, the criterion's own k and the scores of
    the chosen k; then the warnings."""
    k, rule = record.get("n_clusters"), record.get("rule")
    parts = []
    if rule:
        text = (f"k={k} was chosen by the rule {rule}: {RULE_TEXT.get(rule, rule)}. "
                f"{record.get('message', '')}")
        if record.get("criterion_k") is not None and record["criterion_k"] != k:
            text += f" The criterion alone gave k={record['criterion_k']}."
        parts.append(f"<p><strong>Choice of k.</strong> {html.escape(text)}</p>")
        scores = record.get("scores") or {}
        if scores:
            parts.append(table(pd.DataFrame([{"k": k, **scores}])))
    elif record.get("message"):
        parts.append(note(str(record["message"])))
    return parts + warnings_block(record)


def _fmt(key: str, value: Any) -> str:
    """A cell's text: floats to four significant digits, lists joined, None/NaN as a dash."""
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list):
        return (" x " if key == "grid_size" else ", ").join(str(v) for v in value)
    return "–" if value is None else str(value)


def load_json(path: str | Path, what: str | None = None) -> dict[str, Any]:
    """A JSON object from ``path``; InputError naming the file (and ``what`` it should
    hold) when it is not valid JSON or not an object."""
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        expected = f"; expected the {what}" if what else ""
        raise InputError(f"{path} is not valid JSON ({err.msg}){expected}.") from None
    if not isinstance(record, dict):
        raise InputError(f"{path} must hold a JSON object{f' (the {what})' if what else ''}.")
    return record


# --------------------------------------------------------------------------- provenance

def provenance_section(provenance: str | None) -> str:
    """Inputs and provenance of the run: what ``provenance.json`` records, as tables."""
    title = "Inputs and provenance"
    if not provenance:
        return section("provenance", title, [note(
            "Provenance not recorded: no provenance.json was given to the report.", "warn")])
    record = load_json(provenance, "provenance record of the run")
    flat = {k: v for k, v in record.items() if not isinstance(v, (Mapping, list))}
    parts = [_key_values(flat)] if flat else []
    for key, value in record.items():
        if isinstance(value, (Mapping, list)):
            parts += [f"<h3>{html.escape(key.replace('_', ' ').capitalize())}</h3>",
                      _structured(value)]
    return section("provenance", title, parts or [note(
        f"{provenance} records nothing (an empty object).", "warn")])


def _key_values(mapping: Mapping[str, Any]) -> str:
    """Two-column table of a mapping, nested keys flattened to dotted names."""
    if not mapping:
        return note("(none)")
    flat = pd.json_normalize(dict(mapping), sep=".").iloc[0]
    rows = [(key, _fmt(key, value)) for key, value in flat.items()]
    return _collapsed(table(pd.DataFrame(rows, columns=["key", "value"])), len(rows))


def _structured(value: Mapping[str, Any] | list[Any]) -> str:
    """A mapping of records (e.g. per stage) or a list of records as a table, another
    mapping as a key/value table, a list of plain values as a list."""
    if isinstance(value, Mapping) and value and all(isinstance(v, Mapping)
                                                    for v in value.values()):
        frame = pd.json_normalize(list(value.values()), sep=".")
        frame.insert(0, "name", list(value))
        return _collapsed(table(frame.map(lambda v: _fmt("", v))), len(frame))
    if isinstance(value, Mapping):
        return _key_values(value)
    if value and all(isinstance(item, Mapping) for item in value):
        return _collapsed(table(pd.DataFrame(value), floatfmt="{}"), len(value))
    items = "".join(f"<li><code>{html.escape(str(item))}</code></li>" for item in value)
    return f"<ul>{items}</ul>" if items else note("(none)")


def _collapsed(content: str, rows: int, limit: int = 20) -> str:
    """Long tables folded into a ``<details>`` element (one click shows them)."""
    if rows <= limit:
        return content
    return f"<details><summary>{rows} rows</summary>{content}</details>"


# --------------------------------------------------------------------------- velocity

def velocity_sections(
    *, profiles_log: str, elbow_choice: str | None, elbow_table: str | None,
    elbow_figure: str | None, methods: Mapping[str, Mapping[str, str]],
    no_elbow_reason: str = "",
) -> list[str]:
    """Sections of the velocity branch: profiles, elbow scan, one section per method."""
    parts = [section("velocity-profiles", "Velocity: Profiles", [note(profiles_log)])]
    if elbow_choice:
        parts.append(elbow_section(elbow_choice, elbow_table, elbow_figure))
    elif no_elbow_reason:
        parts.append(section("velocity-elbow", "Velocity: Elbow scan", [note(no_elbow_reason)]))
    for method, files in methods.items():
        metrics = load_json(files["metrics"], f"metrics of the {method} fit")
        body = [*warnings_block(metrics), metrics_table(metrics)] + [
            figure(files[key], f"{method} {alt}", caption(f"{method}_{key}"))
            for key, alt in VELOCITY_FIGURES if files.get(key)]
        if files.get("scan"):
            body.append(table(pd.read_csv(files["scan"])))
        parts.append(section(f"velocity-{method}",
                             f"Velocity: {METHOD_TITLES.get(method, method)}", body))
    return parts


def consensus_section(metrics: str, figure_path: str | None, low: str | None) -> str:
    """The consensus over seeds (``velocity.consensus``): per method the mean agreement,
    the share of low-agreement nodes and the refits' ARI, the maps, and the nodes of
    lowest agreement."""
    m = load_json(metrics, "consensus metrics")
    threshold = m.get("low_agreement")
    lead = note(f"Each method refitted {m.get('seeds')} times with its k (other seeds, each "
                f"on a draw of {100 * float(m.get('fraction', 1)):.0f} % of the nodes); a "
                f"node's agreement is the share of refits that put it in its final cluster "
                f"(clusters matched by the Hungarian method). Low agreement: below "
                f"{threshold} (velocity.consensus.low_agreement).")
    rows = [{"method": method, **{key: value for key, value in record.items()
                                  if not isinstance(value, list)}}
            for method, record in (m.get("methods") or {}).items()]
    parts = [lead, *warnings_block(m), table(pd.DataFrame(rows)),
             figure(figure_path, "consensus map", rst_caption("velocity_consensus"))]
    between = m.get("between_methods")
    if between:
        parts.append(note(
            f"Across methods (each matched to {between['reference']}): a node agrees with "
            f"{100 * between['mean_agreement']:.1f} % of the other methods on average "
            "(method_agreement in consensus.nc); ARI against "
            f"{between['reference']}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in between["ari"].items()) + "."))
    if low:
        nodes = pd.read_csv(low)
        if nodes.empty:
            parts.append(note(f"No node has an agreement below {threshold}."))
        else:
            shown = nodes.groupby("method", sort=False).head(LOW_AGREEMENT_ROWS)
            parts.append(note(f"{len(nodes)} low-agreement nodes (all in low_agreement.csv); "
                              f"the {LOW_AGREEMENT_ROWS} lowest of each method:"))
            parts.append(_collapsed(table(shown), len(shown)))
    return section("velocity-consensus", "Velocity: Consensus over seeds", parts)


def tremor_consensus_section(metrics: str, figure_path: str | None,
                             agreement: str | None, features: bool = False) -> str:
    """The consensus over seeds (``tremor.consensus``) of the embedding's clustering or,
    with ``features``, of the interpretable features' (the default run's labels): the
    summary, the agreement over time and the windows of lowest agreement."""
    m = load_json(metrics, "tremor consensus metrics")
    threshold = m.get("low_agreement")
    what = ("The interpretable features'" if features else "The embedding's")
    tail = (f" {m.get('n_outliers', 0)} outlier windows left out." if features
            else " DEC's fine-tuned labels are not refitted.")
    lead = note(f"{what} {m.get('method')} clustering (k={m.get('n_clusters')}) "
                f"refitted {len(m.get('seeds') or [])} times (other seeds, each on a draw of "
                f"{100 * float(m.get('fraction', 1)):.0f} % of the windows); a window's "
                f"agreement is the share of refits that put it in its final cluster. Low "
                f"agreement: below {threshold} (tremor.consensus.low_agreement).{tail}")
    parts = [lead, *warnings_block(m), metrics_table(m),
             figure(figure_path, "agreement over time", rst_caption("tremor_consensus"))]
    if agreement:
        windows = pd.read_csv(agreement)
        low = windows[windows["agreement"] < threshold].sort_values("agreement", kind="stable")
        if low.empty:
            parts.append(note(f"No window has an agreement below {threshold}."))
        else:
            shown = low.head(LOW_AGREEMENT_ROWS)
            parts.append(note(f"{len(low)} low-agreement windows (all in agreement.csv); the "
                              f"{len(shown)} lowest:"))
            parts.append(_collapsed(table(shown), len(shown)))
    ident, title = (("tremor-features-consensus", "Tremor: Consensus of the feature clusters")
                    if features else ("tremor-consensus", "Tremor: Consensus over seeds"))
    return section(ident, title, parts)


def elbow_section(choice: str, elbow_table: str | None, elbow_figure: str | None) -> str:
    """The elbow curve with its knee, or a visible warning when kneed found none."""
    record = load_json(choice, "elbow choice")
    message = str(record.get("message", ""))
    lead = []
    if record.get("knee") is None:
        lead = [f"<p class='warn'><strong>No knee found.</strong> "
                f"{html.escape(message)}</p>"]
    parts = [*lead, *k_choice(record),
             figure(elbow_figure, "elbow curve", caption("elbow_figure"))]
    if elbow_table:
        parts.append(table(pd.read_csv(elbow_table)))
    return section("velocity-elbow", "Velocity: Elbow scan (number of k-means clusters)", parts)


def profiles_summary(profiles: str) -> str:
    """One sentence on the profiles that were clustered (read with netCDF4: two sizes, the
    depths and a few attributes do not need xarray, which also loads dask.array, most of a
    second of the report job)."""
    import netCDF4

    with netCDF4.Dataset(profiles) as prof:
        attrs, sizes = prof.__dict__, {name: len(d) for name, d in prof.dimensions.items()}
        depth = prof.variables["depth"][:]
        return (
            f"{sizes['profile']} profiles of {sizes['depth']} depths "
            f"({float(depth[0]):g}..{float(depth[-1]):g} km) from "
            f"{attrs.get('source_file') or 'the embedded example model'}, variable "
            f"{attrs.get('velocity_variable')}; {attrs.get('n_dropped_nan')} of "
            f"{attrs.get('n_nodes')} nodes dropped because of NaN."
        )


# --------------------------------------------------------------------------- tremor

def spectrogram_summary(spectrograms: str) -> str:
    """One sentence on the spectrogram stack."""
    import xarray as xr

    with xr.open_zarr(spectrograms) as ds:
        return (
            f"{ds.sizes['window']} windows x {ds.sizes['channel']} channel(s) "
            f"({', '.join(map(str, ds['channel'].values))}), {int(ds['valid'].sum())} valid, "
            f"each {ds.sizes['frequency']} frequencies ({float(ds.frequency[0]):g}-"
            f"{float(ds.frequency[-1]):g} Hz) x {ds.sizes['time']} time bins, from "
            f"{str(ds.window.values[0])[:16]} to {str(ds.window.values[-1])[:16]}."
        )


def tremor_sections(
    *, spectrograms: str, skipped: str, figures: Mapping[str, str],
    kscan_choice: str | None = None, dec_metrics: str | None = None,
    dec_history: str | None = None, features_choice: str | None = None,
    features_metrics: str | None = None, features_kscan: str | None = None,
    labels: str | None = None, cluster_figures: str | None = None,
) -> list[str]:
    """Sections of the tremor branch: spectrograms, skipped windows, training, k scan (and
    the clustering of the embedding DEC starts from), DEC metrics, the interpretable
    features beside the embedding, t-SNE, clusters over time and per-cluster examples."""
    choice = load_json(kscan_choice, "k-scan choice") if kscan_choice else None
    kscan_lead = [*k_choice(choice), *cluster_lead(choice, cluster_figures)] if choice else []
    parts = [
        figure_section(SPECTROGRAM_SECTION, figures, [note(spectrogram_summary(spectrograms))]),
        skipped_section(skipped),
        figure_section(TRAINING_SECTION, figures),
        figure_section(KSCAN_SECTION, figures, kscan_lead),
        dec_section(dec_metrics, dec_history),
        features_section(features_choice, features_metrics, features_kscan, kscan_choice,
                         dec_metrics, labels),
        *(figure_section(spec, figures) for spec in CLUSTER_SECTIONS),
    ]
    other = tuple(name for name in figures if name not in TREMOR_FIGURES)
    if other:
        parts.append(figure_section(("tremor-other", "Tremor: Other figures", other), figures))
    return parts


def cluster_lead(choice: Mapping[str, Any], folder: str | None) -> list[str]:
    """The ``tremor.cluster`` method of the embedding at the chosen k (nothing for the
    scan's k-means), with its dendrogram where there is one."""
    method = choice.get("method", "kmeans")
    if method == "kmeans":
        return []
    settings = ", ".join(f"{key} {value}" for key, value in choice.get("cluster", {}).items()
                         if key != "method")
    parts = [note(f"At k={choice['n_clusters']} the embedding was clustered by {method} "
                  f"({settings}) in {choice.get('cluster_seconds', float('nan')):.2f} s; "
                  "DEC / IDEC start from the means of its clusters.")]
    dendrogram = Path(folder, "dendrogram.png") if folder else None
    if dendrogram is not None and dendrogram.exists():
        parts.append(figure(dendrogram, "dendrogram", "Agglomerative clustering of the "
                            "embedding: the top of the merge tree; the dashed line cuts it "
                            "into k clusters."))
    return parts


def figure_section(spec: FigureSection, figures: Mapping[str, str],
                   lead: Sequence[str] = ()) -> str:
    """A section of figures (a note in place of each one not given), after ``lead``."""
    ident, title, shown = spec
    return section(ident, title, [*lead, *(
        figure(figures.get(name), name.replace("_", " "),
               caption(f"figure_{name}", name.replace("_", " "))) for name in shown)])


def skipped_section(skipped: str) -> str:
    """The windows left out of the spectrogram stack, and why."""
    frame = pd.read_csv(skipped)
    if frame.empty:
        body = [note("No window was skipped: every window had less missing data than "
                     "tremor.preprocess.max_gap_fraction.")]
    else:
        body = [note(f"{len(frame)} window(s) skipped (more missing data than "
                     "tremor.preprocess.max_gap_fraction):", "warn"), table(frame)]
    return section("tremor-skipped", "Tremor: Skipped windows", body)


def dec_section(metrics: str | None, history: str | None) -> str:
    """DEC / IDEC metrics: sizes, iterations, final delta-label, ARI against the truth."""
    parts: list[str] = []
    if history:
        frame = pd.read_csv(history)
        if len(frame) and "delta_label" in frame:
            parts.append(note(f"Fine-tuning ran {int(frame['iteration'].iloc[-1])} "
                              f"iterations; final delta-label "
                              f"{float(frame['delta_label'].iloc[-1]):.4g}."))
            if int((frame["iteration"] > 0).sum()) == 1:
                parts.append(note("Fine-tuning stopped at its first target-distribution "
                                  "update: the clusters are those of k-means on the "
                                  "pretrained embeddings, barely changed.", "warn"))
    if metrics:
        record = load_json(metrics, "DEC metrics")
        parts += [*warnings_block(record), metrics_table(record)]
        if record.get("contingency"):
            parts += ["<h3>Regimes (rows) against clusters (columns)</h3>",
                      table(pd.DataFrame(record["contingency"]).T.rename_axis("regime")
                            .reset_index())]
    return section("tremor-dec", "Tremor: Deep embedded clustering (DEC / IDEC)", parts or [
        note("No DEC metrics were given to the report.")])


#: Rows of the side-by-side table of the two representations: (metrics key, label).
COMPARED = (("n_clusters", "clusters (k)"), ("cluster_sizes", "cluster sizes"),
            ("n_outliers", "outliers (cluster 0, diagnostics.small_clusters)"),
            ("n_refined", "windows relabelled at regime changes (tremor.features.parts)"),
            ("ari_unrefined", "ARI vs truth before that relabelling"),
            ("ari", "ARI vs truth (majority regime)"),
            ("ari_pure", "ARI vs truth (windows >= 90 % one regime)"), ("nmi", "NMI vs truth"))


def features_section(choice: str | None, metrics: str | None, kscan_figure: str | None,
                     dec_choice: str | None, dec_metrics: str | None,
                     labels: str | None) -> str:
    """The interpretable features' k scan and clusters, side by side with the embedding's
    (DEC) result, and which of the two gives the run's primary labels."""
    if not (choice and metrics):
        return section("tremor-features", "Tremor: Interpretable features", [
            note("No feature clustering was given to the report.")])
    parts = k_choice(load_json(choice, "feature k-scan choice"))
    if labels:
        primary = pd.read_csv(labels, nrows=1)
        if "representation" in primary and len(primary):
            parts.append(note(f"The run's primary labels (tremor/labels.csv) come from "
                              f"the {primary['representation'].iloc[0]} "
                              "(tremor.primary_labels)."))
    feat = load_json(metrics, "feature metrics")
    dec = load_json(dec_metrics, "DEC metrics") if dec_metrics else {}
    if dec_choice and "n_clusters" not in dec:
        dec["n_clusters"] = load_json(dec_choice, "k-scan choice").get("n_clusters")
    rows = [{"": label, "features (k-means)": _fmt(key, feat.get(key, "")),
             "embedding (DEC)": _fmt(key, dec.get(key, ""))}
            for key, label in COMPARED if key in feat or key in dec]
    parts.append(table(pd.DataFrame(rows)))
    if feat.get("contingency"):
        parts += ["<h3>Regimes (rows) against feature clusters (columns)</h3>",
                  table(pd.DataFrame(feat["contingency"]).T.rename_axis("regime")
                        .reset_index())]
    parts.append(figure(kscan_figure, "feature k scan", caption("features_kscan")))
    return section("tremor-features", "Tremor: Interpretable features", parts)


def apply_section(metrics: str, timeline: str | None, trained_run: str | None) -> str:
    """Monitoring: the labels of this run's records with a trained run's clusters
    (``apply.run``), the novel share and the timeline."""
    m = load_json(metrics, "apply metrics")
    parts = [note(f"The records were labelled with the clusters of the trained run "
                  f"{trained_run} (apply.run), without retraining; cluster 0 = novel (far "
                  f"from every training centre, and not mostly a neighbouring window's "
                  f"cluster part by part). Days processed by the last run: "
                  f"{', '.join(m.get('days_processed', [])) or 'none (all labelled)'}.")]
    parts.append(metrics_table({k: v for k, v in m.items() if k != "days_processed"}))
    if m.get("novel_fraction_by_regime"):
        parts += ["<h3>Share of novel windows per true regime</h3>",
                  table(pd.DataFrame([m["novel_fraction_by_regime"]]))]
    parts.append(figure(timeline, "monitoring timeline", "Cluster of every labelled window "
                        "over time (novel on the top row) and the largest soft assignment."))
    return section("tremor-apply", "Tremor: Monitoring (trained run applied)", parts)


def compare_section(metrics: str, figure_path: str | None) -> str:
    """Model comparison: this run's model in a finished run's clusters
    (``velocity.compare.run``), the shares that agree and the agreement map."""
    m = load_json(metrics, "comparison metrics")
    parts = [note(f"The profiles of this run's model were assigned to the centroids of "
                  f"{m.get('run')} (velocity.compare.run) over "
                  f"{m.get('common_depth_min_km', 0):g}-{m.get('common_depth_max_km', 0):g} "
                  "km, the depths both share; agreement compares that cluster with the "
                  "finished run's cluster at the nearest node."),
             metrics_table({k: v for k, v in m.items() if k not in ("model", "run")}),
             figure(figure_path, "agreement map", rst_caption("velocity_compare"))]
    return section("velocity-compare", "Velocity: Model comparison", parts)


# --------------------------------------------------------------------------- assembly

def tectonics_section(metrics: str, shares: str | None, figure_path: str | None) -> str:
    """The run's k-means against the tectonic classes, weighted beside unweighted."""
    record = load_json(metrics, "tectonic comparison")
    lead = (f"k = {record['n_clusters']}: the run's k-means (weights {record['run_weights']}) "
            f"and k-means with weights {record['other_weights']} agree at ARI "
            f"{record['ari_between']:.3f} ({100 * record['same_cluster_area']:.1f} % of the "
            "area in the same cluster after matching). Purity against the tectonic classes: "
            + "; ".join(f"{name} {value:.3f}" for name, value in record["purity"].items())
            + ".")
    parts = [note(lead), figure(figure_path, "tectonic context", caption("tectonics_figure"))]
    if shares:
        frame = pd.read_csv(shares).rename(columns=record.get("classes", {}))
        parts += ["<h3>Area of each cluster (% of the total) and its classes (% of the "
                  "cluster)</h3>", table(frame, "{:.1f}")]
    return section("velocity-tectonics", "Velocity: Tectonic context", parts)


def write_report(path: str | Path, title: str, sections: Sequence[str], config_yaml: str) -> None:
    """Assemble the sections, a table of contents and the resolved config into one file."""
    stamp = f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}"
    sections = [*sections, section("config", "Resolved configuration",
                                   [f"<pre>{html.escape(config_yaml)}</pre>"])]
    write_text(path, html_page(title, [
        note(f"seiscluster {__version__}, {stamp}"), _contents(sections),
        *sections]))


def html_page(title: str, parts: Sequence[str]) -> str:
    """A standalone HTML page (inline style, no external resource) with a heading."""
    body = "\n".join([f"<h1>{html.escape(title)}</h1>", *parts])
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
            f"{html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>\n")


def _contents(sections: Sequence[str]) -> str:
    """A list of links to the sections (their id and the text of their heading)."""
    items = re.findall(r"<section id='([^']+)'><h2>(.*?)</h2>", "\n".join(sections))
    links = "".join(f"<li><a href='#{ident}'>{title}</a></li>" for ident, title in items)
    return f"<nav><ul>{links}</ul></nav>"


def report_stage(
    *, report: str, config: str, methods: Sequence[str] = (), provenance: str | None = None,
    **inputs: str,
) -> None:
    """The workflow's report stage, from the named inputs of the report rule.

    ``provenance`` (optional): the run's ``provenance.json``. Velocity inputs: ``profiles``,
    ``elbow_*`` and per clustering method ``<method>_<key>``; tremor inputs:
    ``spectrograms``, ``skipped``, ``kscan_choice``, ``dec_metrics``, ``dec_history``
    (optional) and its figures ``figure_<name>``.
    """
    config_yaml = Path(config).read_text()
    cfg = yaml.safe_load(config_yaml) or {}
    sections = [provenance_section(provenance)]
    if "profiles" in inputs:
        sections += velocity_sections(
            profiles_log=profiles_summary(inputs["profiles"]),
            elbow_choice=inputs.get("elbow_choice"), elbow_table=inputs.get("elbow_table"),
            elbow_figure=inputs.get("elbow_figure"),
            methods={m: {key[len(m) + 1:]: value for key, value in inputs.items()
                         if key.startswith(f"{m}_")} for m in methods},
            no_elbow_reason=_no_elbow_reason(cfg, methods))
    if "tectonics_metrics" in inputs:
        sections.append(tectonics_section(inputs["tectonics_metrics"],
                                          inputs.get("tectonics_table"),
                                          inputs.get("tectonics_figure")))
    if "consensus_metrics" in inputs:
        sections.append(consensus_section(inputs["consensus_metrics"],
                                          inputs.get("consensus_figure"),
                                          inputs.get("consensus_low")))
    if "compare_metrics" in inputs:
        sections.append(compare_section(inputs["compare_metrics"],
                                        inputs.get("compare_agreement")))
    if "spectrograms" in inputs:
        sections += tremor_sections(
            spectrograms=inputs["spectrograms"], skipped=inputs["skipped"],
            figures={key.removeprefix("figure_"): value for key, value in inputs.items()
                     if key.startswith("figure_")},
            kscan_choice=inputs.get("kscan_choice"), dec_metrics=inputs.get("dec_metrics"),
            dec_history=inputs.get("dec_history"),
            features_choice=inputs.get("features_choice"),
            features_metrics=inputs.get("features_metrics"),
            features_kscan=inputs.get("features_kscan"), labels=inputs.get("labels"),
            cluster_figures=inputs.get("cluster_figures"))
    for prefix, features in (("tremor_consensus", False), ("features_consensus", True)):
        if f"{prefix}_metrics" in inputs:
            sections.append(tremor_consensus_section(
                inputs[f"{prefix}_metrics"], inputs.get(f"{prefix}_figure"),
                inputs.get(f"{prefix}_agreement"), features))
    if "apply_metrics" in inputs:
        sections.append(apply_section(inputs["apply_metrics"], inputs.get("apply_timeline"),
                                      (cfg.get("apply") or {}).get("run")))
    write_report(report, f"seiscluster run '{cfg.get('run', '')}'", sections, config_yaml)


def _no_elbow_reason(cfg: Mapping[str, Any], methods: Sequence[str]) -> str:
    """Why a run has no elbow scan, from its resolved configuration."""
    if "kmeans" not in methods:
        return "No elbow scan: k-means is not among velocity.methods."
    k = ((cfg.get("velocity") or {}).get("kmeans") or {}).get("n_clusters")
    if k is not None:
        return f"No elbow scan: the number of clusters is fixed (velocity.kmeans.n_clusters={k})."
    return "No elbow scan was given to the report."
