"""Self-contained HTML report of a run: figures embedded, no network needed."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from seiscluster import __version__
from seiscluster.fileio import write_text

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #bbb}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:right}th{background:#f3f3f3}.warn{background:#fff3cd;border:1px solid #e0c060;
padding:.6em}.note{color:#555}pre{background:#f6f6f6;padding:1em;overflow-x:auto}
"""

METHOD_TITLES = {"kmeans": "k-means", "som": "Self-organizing map"}


def image(path: str | Path, alt: str) -> str:
    """An ``<img>`` with the file embedded as a data URI (PNG or SVG)."""
    path = Path(path)
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:{mime};base64,{data}" alt="{html.escape(alt)}">'


def table(frame: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    """A compact HTML table."""
    return frame.to_html(index=False, border=0, float_format=floatfmt.format, na_rep="–")


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """Key/value table of one fit's metrics."""
    rows = [(key.replace("_", " "), _fmt(value)) for key, value in metrics.items()
            if key != "method"]
    return table(pd.DataFrame(rows, columns=["metric", "value"]))


def velocity_sections(
    *, profiles_log: str | None, elbow_choice: str | None, elbow_table: str | None,
    elbow_figure: str | None, methods: Mapping[str, Mapping[str, str]],
) -> list[str]:
    """Report sections of the velocity branch: elbow scan, then one section per method."""
    parts = ["<h2>Velocity profiles</h2>"]
    if profiles_log:
        parts.append(f"<p class='note'>{html.escape(profiles_log)}</p>")
    if elbow_choice:
        choice = json.loads(Path(elbow_choice).read_text())
        css = "warn" if choice.get("fallback_used") else "note"
        parts += [
            "<h3>Elbow scan (number of k-means clusters)</h3>",
            f"<p class='{css}'>{html.escape(choice['message'])}</p>",
            image(elbow_figure, "elbow curve"),
            table(pd.read_csv(elbow_table)),
        ]
    for method, files in methods.items():
        metrics = json.loads(Path(files["metrics"]).read_text())
        parts += [f"<h2>{METHOD_TITLES.get(method, method)}</h2>", metrics_table(metrics)]
        parts += [image(files[key], f"{method} {key}") for key in
                  ("cluster_figure", "map_figure", "som_figure") if files.get(key)]
    return parts


def write_report(path: str | Path, title: str, sections: Sequence[str], config_yaml: str) -> None:
    """Assemble the sections and the resolved config into one HTML file."""
    stamp = f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}"
    body = "\n".join([
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>seiscluster {__version__}, {stamp}</p>",
        *sections,
        "<h2>Resolved configuration</h2>",
        f"<pre>{html.escape(config_yaml)}</pre>",
    ])
    write_text(path, f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
                     f"{html.escape(title)}</title><style>{STYLE}</style></head>"
                     f"<body>{body}</body></html>\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return " x ".join(str(v) for v in value)
    return "–" if value is None else str(value)


def tremor_sections(
    *, spectrograms: str, skipped: str, figures: Mapping[str, str],
    kscan_choice: str | None = None, dec_metrics: str | None = None,
) -> list[str]:
    """Report sections of the tremor branch: the spectrogram stack, skipped windows, the
    cluster count and the deep-clustering metrics, then the figures."""
    import xarray as xr

    with xr.open_zarr(spectrograms) as ds:
        n_valid = int(ds["valid"].sum())
        summary = (
            f"{ds.sizes['window']} windows x {ds.sizes['channel']} channel(s) "
            f"({', '.join(map(str, ds['channel'].values))}), {n_valid} valid, each "
            f"{ds.sizes['frequency']} frequencies ({float(ds.frequency[0]):g}-"
            f"{float(ds.frequency[-1]):g} Hz) x {ds.sizes['time']} time bins, from "
            f"{str(ds.window.values[0])[:16]} to {str(ds.window.values[-1])[:16]}."
        )
    table_skipped = pd.read_csv(skipped)
    parts = ["<h2>Tremor: spectrograms</h2>", f"<p class='note'>{html.escape(summary)}</p>"]
    if len(table_skipped):
        parts += [f"<p class='warn'>{len(table_skipped)} window(s) skipped "
                  "(tremor.preprocess.max_gap_fraction):</p>", table(table_skipped)]
    else:
        parts.append("<p class='note'>No window was skipped.</p>")
    if kscan_choice:
        choice = json.loads(Path(kscan_choice).read_text())
        parts += ["<h2>Tremor: deep embedded clustering</h2>",
                  f"<p class='note'>{html.escape(str(choice.get('message', '')))}</p>"]
    if dec_metrics:
        parts.append(metrics_table(json.loads(Path(dec_metrics).read_text())))
    parts += [image(path, name.replace("_", " ")) for name, path in figures.items()]
    return parts


def report_stage(
    *, report: str, config: str, methods: Sequence[str] = (), **inputs: str
) -> None:
    """The workflow's report stage, from the named inputs of the report rule.

    Velocity inputs: ``profiles``, ``elbow_*`` and per clustering method ``<method>_<key>``;
    tremor inputs: ``spectrograms``, ``skipped`` and its figures ``figure_<name>``.
    """
    config_yaml = Path(config).read_text()
    run = next((line.split(":", 1)[1].strip() for line in config_yaml.splitlines()
                if line.startswith("run:")), "")
    method_files = {m: {key[len(m) + 1:]: value for key, value in inputs.items()
                        if key.startswith(f"{m}_")} for m in methods}
    sections: list[str] = []
    if "profiles" in inputs:
        sections += velocity_sections(
            profiles_log=profiles_summary(inputs["profiles"]),
            elbow_choice=inputs.get("elbow_choice"), elbow_table=inputs.get("elbow_table"),
            elbow_figure=inputs.get("elbow_figure"), methods=method_files)
    if "spectrograms" in inputs:
        figures = {key.removeprefix("figure_"): value for key, value in inputs.items()
                   if key.startswith("figure_")}
        sections += tremor_sections(spectrograms=inputs["spectrograms"],
                                    skipped=inputs["skipped"], figures=figures,
                                    kscan_choice=inputs.get("kscan_choice"),
                                    dec_metrics=inputs.get("dec_metrics"))
    write_report(report, f"seiscluster run '{run}'", sections, config_yaml)


def profiles_summary(profiles: str) -> str:
    """One sentence on the profiles that were clustered."""
    import xarray as xr

    with xr.open_dataset(profiles) as prof:
        return (
            f"{prof.sizes['profile']} profiles of {prof.sizes['depth']} depths "
            f"({float(prof.depth[0]):g}..{float(prof.depth[-1]):g} km) from "
            f"{prof.attrs.get('source_file') or 'the embedded example model'}, variable "
            f"{prof.attrs.get('velocity_variable')}; {prof.attrs.get('n_dropped_nan')} of "
            f"{prof.attrs.get('n_nodes')} nodes dropped because of NaN."
        )
