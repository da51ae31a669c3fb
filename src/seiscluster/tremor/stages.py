"""The tremor branch's workflow stages, file in -> file out.

Each function is what one Snakemake rule runs (through ``workflow/scripts``), takes plain
paths and config sections, and can be called and tested without Snakemake. Outputs are
written atomically, so a failed stage leaves nothing that looks complete.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.fileio import atomic_path
from seiscluster.tremor import spectrogram as spec
from seiscluster.tremor import synthetic
from seiscluster.tremor.waveforms import (
    Preprocess,
    Source,
    check_waveforms,
    open_source,
    read_inventory,
)

log = logging.getLogger(__name__)

# ----------------------------------------------------------- waveforms and spectrograms


def check_config(
    waveforms: Mapping[str, Any], preprocess: Mapping[str, Any],
    spectrogram: Mapping[str, Any], files: Sequence[str] | None = None,
) -> tuple[dict[str, Any], Preprocess, spec.SpectrogramSettings]:
    """``data.waveforms``, ``tremor.preprocess`` and ``tremor.spectrogram`` checked and
    completed (:func:`seiscluster.config.section`), the waveform files looked up (no data
    read); InputError naming the first bad key.

    Rate-dependent checks (fmax below Nyquist, a window longer than one STFT frame) are
    made here when the rate is known without reading data (the example, or a resample
    rate), and otherwise from the files' headers at the start of :func:`spectrograms`.
    """
    wf = section("data.waveforms", {**waveforms, "files": list(files or waveforms.get("files")
                                                               or [])})
    check_waveforms(wf, files)
    prep = Preprocess.from_config(preprocess)
    settings = spec.SpectrogramSettings.from_config(spectrogram)
    fs, channel = None, ""
    if wf["source"] == "example":
        fs = float(wf["example"]["sampling_rate"])
        channel = synthetic.CHANNEL_ID
        prep.check_rate(fs, channel)
        fs = prep.output_rate(fs)
    elif prep.resample is not None:
        fs, channel = float(prep.resample), "the resampled data"
    if fs is not None:
        settings.check_rate(fs, channel)
    return wf, prep, settings


class Records(NamedTuple):
    """The records a stage reads and how: the checked settings, the open source and the
    instrument response (None unless the response is removed)."""

    waveforms: dict[str, Any]
    prep: Preprocess
    settings: spec.SpectrogramSettings
    source: Source
    inventory: Any


def open_records(
    waveforms: Mapping[str, Any], preprocess: Mapping[str, Any],
    spectrogram: Mapping[str, Any], files: Sequence[str] | None = None,
) -> Records:
    """:func:`check_config`, then the waveform source and, when the response is removed,
    the StationXML inventory."""
    wf, prep, settings = check_config(waveforms, preprocess, spectrogram, files)
    source = open_source(wf, files)
    inventory = read_inventory(wf.get("stationxml")) if prep.remove_response else None
    return Records(wf, prep, settings, source, inventory)


def make_example(*, waveforms: str, truth: str, example: Mapping[str, Any],
                 window_length: float = 3600.0) -> None:
    """Write the embedded synthetic records (day-long miniSEED files) and ``truth.csv``."""
    cfg = synthetic.example_config(example)
    start = time.perf_counter()
    ex = synthetic.make_example(cfg, window_length=float(window_length))
    files = synthetic.write_example(ex, waveforms, truth)
    counts = ex.truth["regime"].value_counts().to_dict()
    log.info("example: %d day file(s) of %s at %g Hz, %d windows %s (%d straddle a "
             "change), %d episode(s), %d swarm event(s), %d teleseism(s), %d gap(s), %.1f s",
             len(files), synthetic.CHANNEL_ID, ex.sampling_rate, len(ex.truth), counts,
             int((ex.truth["fraction"] < 1).sum()), len(ex.episodes),
             int(ex.episodes["events"].sum()), len(ex.teleseisms), len(ex.gaps),
             time.perf_counter() - start)


def spectrograms(
    *, spectrograms: str, skipped: str, waveforms: Mapping[str, Any],
    preprocess: Mapping[str, Any], spectrogram: Mapping[str, Any],
    files: Sequence[str] | None = None, threads: int = 1,
    compute: Mapping[str, Any] | None = None,
) -> None:
    """Ingest the waveforms and write the spectrogram stack (Zarr) and skipped_windows.csv;
    one dask task per block of days and channel on the ``compute`` section's scheduler."""
    if isinstance(files, str):
        files = [files]
    start = time.perf_counter()
    rec = open_records(waveforms, preprocess, spectrogram, files)
    source = rec.source
    log.info("source %s: %s, %s - %s", source.description, ", ".join(
        f"{ch} ({source.sampling_rates[ch]:g} Hz)" for ch in source.channels),
        spec.utc(source.start_ns), spec.utc(source.end_ns))
    config = {"waveforms": dict(waveforms)}
    table = spec.build_store(source, rec.prep, rec.settings, spectrograms, threads=threads,
                             inventory=rec.inventory, config=config, compute=compute)
    with atomic_path(skipped) as tmp:
        table.to_csv(tmp, index=False)
    for row in table.itertuples():
        log.info("skipped %s %s: %s (missing %.1f %%)", row.window_start, row.channel,
                 row.reason, 100 * row.missing_fraction)
    log.info("spectrograms done in %.1f s", time.perf_counter() - start)


def store_job(spectrograms: str, files: Sequence[str] | None = None) -> spec.Job:
    """The reading and preprocessing of a spectrogram store's windows, rebuilt from the
    settings it records (``files``: the records it was made from, where those are files)."""
    with xr.open_zarr(spectrograms) as ds:
        settings = json.loads(ds.attrs.get("settings", "{}"))
    if not {"waveforms", "preprocess", "spectrogram"} <= set(settings):
        raise InputError(f"{spectrograms} records no waveform settings (attribute "
                         "'settings'); it was not written by the spectrogram stage.")
    rec = open_records(settings["waveforms"], settings["preprocess"],
                       settings["spectrogram"], files)
    return spec.prepare_job(rec.source, rec.prep, rec.settings, rec.inventory)


def spectrogram_figures(*, spectrograms: str, overview: str, examples: str,
                        dpi: int = 120) -> None:
    """Long-term overview (mean spectrum per window and band amplitude over time) and a grid
    of example windows."""
    from seiscluster.plots import tremor as plots  # matplotlib only where needed

    with xr.open_zarr(spectrograms) as ds:
        plots.save(plots.plot_overview(ds), overview, dpi)
        plots.save(plots.plot_examples(ds), examples, dpi)


# ----------------------------------------------------------------------------- features


def features(
    *, table: str, scan: str, choice: str, labels: str, metrics: str,
    kscan_figure: str | None = None, waveforms: Mapping[str, Any], preprocess: Mapping[str, Any],
    spectrogram: Mapping[str, Any], features: Mapping[str, Any], kscan: Mapping[str, Any],
    channels: str, seed: int, files: Sequence[str] | None = None, truth: str | None = None,
    threads: int = 1, compute: Mapping[str, Any] | None = None,
    diagnostics: Mapping[str, Any] | None = None, cluster: Mapping[str, Any] | None = None,
) -> None:
    """Interpretable features of every window (:mod:`~seiscluster.tremor.features`, from
    the full-resolution STFT frames), standardised, then the same k scan as the embeddings
    and, at its k, the ``tremor.cluster`` clustering (k-means by default), and the windows
    at a regime change relabelled from the features of their parts
    (:mod:`~seiscluster.tremor.boundaries`, ``tremor.features.parts``): ``features.nc``
    (CF), ``kscan.csv``, ``choice.json``, ``labels.csv`` (window start[, channel], cluster
    1-based by mean level ascending, 0 for an outlier under ``diagnostics.small_clusters:
    outliers``, distance to its cluster's mean; with parts ``refined`` and ``change_time``)
    and ``metrics.json`` (sizes, the refinement's counts; ARI / NMI against ``truth`` when
    given, ``ari_unrefined``)."""
    import dask

    from seiscluster import diagnostics as diag
    from seiscluster.compute import compute_settings, dask_scheduler
    from seiscluster.fileio import write_json, write_netcdf
    from seiscluster.tremor import boundaries as bnd
    from seiscluster.tremor import features as feat
    from seiscluster.tremor.cluster import EmbeddingClusterer
    from seiscluster.tremor.deep_stages import order_by_power, run_scan, write_scan

    if isinstance(files, str):
        files = [files]
    kscan, thresholds = section("tremor.kscan", kscan), diag.settings(diagnostics)
    cl = section("tremor.cluster", cluster)
    channels = section("tremor.preprocess", {"channels": channels})["channels"]
    fset = feat.FeatureSettings.from_config(features)
    start = time.perf_counter()
    rec = open_records(waveforms, preprocess, spectrogram, files)
    source, settings = rec.source, rec.settings
    job = feat.prepare(source, rec.prep, settings, fset, rec.inventory)
    starts = spec.source_window_starts(source, settings)
    cfg = compute_settings(compute)
    per_block = max(1, round(cfg.spectrogram_block_days * spec.DAY / settings.window_step))
    with dask_scheduler(cfg, threads) as session:
        shared = session.share(job)
        blocks = dask.compute(*(
            [dask.delayed(feat.block_features)(shared, starts[i:i + per_block], ch, fset)
             for ch in job.channels] for i in range(0, starts.size, per_block)))
    values = np.stack([np.concatenate([b[c].values for b in blocks]) for c in
                       range(len(job.channels))], axis=1)  # (window, channel, feature)
    reason = np.stack([np.concatenate([b[c].reason for b in blocks]) for c in
                       range(len(job.channels))], axis=1)
    parts = (np.stack([np.concatenate([b[c].parts for b in blocks]) for c in
                       range(len(job.channels))], axis=1) if fset.parts else None)
    valid = reason == 0
    keep = valid.all(axis=1) if channels == "stack" else valid.any(axis=1)
    if not keep.any():
        raise InputError(f"{feat.FKEY}: no window could be computed from "
                         f"{source.description} (every window was skipped).")
    names = feat.feature_names(fset)
    w_idx, c_idx = feat.sample_index(valid, channels)
    x = values[w_idx].reshape(w_idx.size, -1) if c_idx is None else values[w_idx, c_idx]
    t_features = time.perf_counter() - start
    z = feat.standardise(x, fset.scaling)
    start = time.perf_counter()
    result = run_scan(z, kscan, seed, threads, thresholds,
                      f"the features of {source.description}")
    t_scan = time.perf_counter() - start
    k = result.n_clusters
    fitted, centres = result.fits[k].labels, result.fits[k].centres
    if cl["method"] != "kmeans":
        model = EmbeddingClusterer.from_config(cl, k, kscan["n_init"], seed).fit(z)
        fitted, centres = model.labels_, model.centres_
    level = [i for i, (n, _, _) in enumerate(names) if n.startswith(("p50_", "rsam_"))]
    per_channel = x.reshape(x.shape[0], -1, len(names))
    power = per_channel[:, :, level or list(range(len(names)))].mean(axis=(1, 2))
    order = order_by_power(power[:, None], fitted, k)
    new = np.empty_like(order)
    new[order] = np.arange(k)
    clustered = new[fitted] + 1
    outliers = thresholds["small_clusters"] == "outliers"
    cluster = (diag.label_outliers(clustered, thresholds["min_cluster_size"]) if outliers
               else clustered)
    times = starts[w_idx].astype("datetime64[ns]")
    unrefined = cluster
    refined = None
    if parts is not None:
        refined = bnd.refine_run(bnd.sample_parts(parts, w_idx, c_idx), cluster, times,
                                 settings.window_step, c_idx, fset.min_separation)
        cluster = refined.labels
    of_label = np.zeros(unrefined.max() + 1, np.int64)  # fitted cluster of each label
    of_label[unrefined] = fitted
    fitted = np.where(cluster > 0, of_label[cluster], fitted)
    distance = np.linalg.norm(z - centres[fitted].astype(np.float64), axis=1)
    out = pd.DataFrame({"window_start": pd.DatetimeIndex(times).strftime("%Y-%m-%dT%H:%M:%S")})
    if c_idx is not None:
        out["channel"] = [job.channels[c] for c in c_idx]
    out["cluster"] = cluster
    out["distance"] = np.round(distance, 6)
    if refined is not None:
        out["refined"] = cluster != unrefined
        out["change_time"] = bnd.change_times(times, refined.change, settings.window_length)
    with atomic_path(labels) as tmp:
        out.to_csv(tmp, index=False)
    write_scan(result, kscan, clustered, thresholds, scan, choice,
               "tremor feature k-means scan", outliers, method=cl["method"],
               n_samples=int(z.shape[0]), n_features=int(z.shape[1]),
               features_seconds=round(t_features, 3), scan_seconds=round(t_scan, 3))
    ds = feature_dataset(values[keep], valid[keep], starts[keep], job.channels, names, fset,
                         settings, None if parts is None else parts[keep])
    # what a later application to new records needs (seiscluster.tremor.apply)
    ds.attrs["settings"] = json.dumps(spec._jsonable({
        "waveforms": dict(waveforms), "preprocess": asdict(rec.prep),
        "spectrogram": asdict(settings), "features": asdict(fset), "channels": channels}))
    write_netcdf(ds, table)
    counts = np.bincount(cluster, minlength=2)
    sizes = counts[1:]
    scores: dict[str, Any] = {"method": cl["method"], "n_samples": int(z.shape[0]),
                              "n_clusters": int(sizes.size),
                              "cluster_sizes": sizes.tolist(), "n_outliers": int(counts[0])}
    if refined is not None:
        scores |= bnd.summary(refined, unrefined, fset.parts, fset.min_separation)
    if truth is not None:
        regime, fraction = synthetic.truth_of(truth, times)
        scores |= synthetic.truth_scores(regime, fraction, cluster)
        if refined is not None:
            scores["ari_unrefined"] = synthetic.truth_scores(regime, fraction, unrefined)["ari"]
        log.info("features: ARI vs %s %.3f", truth, scores["ari"])
    write_json(metrics, scores)
    if kscan_figure is not None:
        from seiscluster.plots import deep as plots  # matplotlib only where needed

        plots.save(plots.plot_kscan(result.table, k, result.message,
                                    thresholds["min_stability"]), kscan_figure, 120)
    log.info("features of %d samples (%d features) in %.1f s; k scan in %.1f s; %s; sizes %s",
             z.shape[0], z.shape[1], t_features, t_scan, result.message, sizes.tolist())


def feature_dataset(values: np.ndarray, valid: np.ndarray, starts: np.ndarray,
                    channels: Sequence[str], names: Sequence[tuple[str, str, str]],
                    fset: Any, settings: spec.SpectrogramSettings,
                    parts: np.ndarray | None = None) -> xr.Dataset:
    """The features as a CF-annotated dataset: ``feature(window, channel, name)`` with the
    long name and units of every feature, NaN where a window-channel was skipped, and
    ``part_feature(window, channel, part, name)`` when ``parts`` (the features of equal
    parts of each window, ``tremor.features.parts``) are given."""
    ds = xr.Dataset(
        {"feature": (("window", "channel", "name"), values.astype(np.float64), {
            "long_name": "interpretable window features (see feature_long_name)"}),
         "valid": (("window", "channel"), valid,
                   {"long_name": "window computed for this channel"}),
         "feature_long_name": (("name",), np.array([n[1] for n in names], dtype=str)),
         "feature_units": (("name",), np.array([n[2] for n in names], dtype=str))},
        coords={"window": ("window", starts.astype("datetime64[ns]"),
                           {"long_name": "window start (UTC)"}),
                "channel": ("channel", np.array(channels, dtype=str),
                            {"long_name": "NET.STA.LOC.CHA"}),
                "name": ("name", np.array([n[0] for n in names], dtype=str),
                         {"long_name": "feature name"})},
        attrs={"title": "Interpretable features of each window (seiscluster tremor branch)",
               "Conventions": "CF-1.8",
               "frame_seconds": fset.frame_seconds,
               "bands": json.dumps([list(b) for b in fset.bands]),
               "percentiles": json.dumps(list(fset.percentiles)),
               "sets": json.dumps(list(fset.sets)), "scaling": fset.scaling,
               "window_length": settings.window_length, "window_step": settings.window_step,
               "parts": fset.parts, "min_separation": fset.min_separation},
    )
    if parts is not None:
        ds["part_feature"] = (("window", "channel", "part", "name"), parts.astype(np.float64),
                              {"long_name": "the features of equal consecutive parts of "
                               "the window (tremor.features.parts)"})
    return ds


def primary_labels(*, features: str, dec: str, labels: str, primary: str) -> None:
    """The run's primary tremor labels (``tremor.primary_labels``: the interpretable
    features' k-means or the DEC labels): window start[, channel], cluster, and which
    representation gave them."""
    primary = section("tremor", {"primary_labels": primary})["primary_labels"]
    table = pd.read_csv(features if primary == "features" else dec)
    keep = [c for c in ("window_start", "channel", "cluster") if c in table]
    out = table[keep].assign(representation=primary)
    with atomic_path(labels) as tmp:
        out.to_csv(tmp, index=False)
    log.info("primary labels: %s (%d samples, %d clusters)", primary, len(out),
             out["cluster"].nunique())


def consensus(
    *, embeddings: str, agreement: str, metrics: str, figure: str,
    consensus: Mapping[str, Any], cluster: Mapping[str, Any], kscan: Mapping[str, Any],
    seed: int = 0, channels: str = "stack", dpi: int = 120,
) -> None:
    """Consensus over seeds of the embedding's clustering (``tremor.cluster`` at the chosen
    k, DEC's start; the scan's k-means for ``kmeans``), see :func:`_window_consensus`.
    Writes the agreement per window (CSV), the summary with ``warnings`` (JSON) and the
    agreement over time (figure). DEC's fine-tuned labels are not refitted (that is a
    training per seed)."""
    with xr.open_dataset(embeddings) as ds:
        ds.load()
    valid = ds["valid"].values
    name = "cluster_label" if "cluster_label" in ds else "kmeans_label"
    index = np.nonzero(valid)
    keys = pd.DataFrame({"window_start": pd.DatetimeIndex(ds["window"].values[index[0]])})
    if valid.ndim == 2:
        keys["channel"] = ds["channel"].values[index[1]]
    method = str(ds.attrs.get("cluster_method", "kmeans"))
    table, record = _window_consensus(
        ds["embedding"].values[valid].astype(np.float64), ds[name].values[valid], keys,
        method, consensus, cluster, kscan, seed, f"the embedding's {method}")
    _write_consensus(table, {**record, "labels": name}, agreement, metrics, figure, dpi)


def features_consensus(
    *, table: str, labels: str, agreement: str, metrics: str, figure: str,
    consensus: Mapping[str, Any], cluster: Mapping[str, Any], kscan: Mapping[str, Any],
    seed: int = 0, channels: str = "stack", dpi: int = 120,
) -> None:
    """Consensus over seeds of the interpretable features' clustering (``tremor.cluster``
    at their scan's k: the default run's labels), as :func:`consensus` does for the
    embedding; outlier windows (cluster 0, ``diagnostics.small_clusters``) are left out."""
    from seiscluster.tremor import features as feat

    mode = section("tremor.preprocess", {"channels": channels})["channels"]
    with xr.open_dataset(table) as ds:
        x, keys = feat.feature_matrix(ds.load(), mode)
        scaling = str(ds.attrs["scaling"])
    found = pd.read_csv(labels)
    if not feat.labels_match(keys, found):
        raise InputError(f"{labels} does not label the windows of {table} one by one; "
                         "rerun the tremor_features stage.")
    final = found["cluster"].to_numpy(np.int64)
    inlier = final > 0
    method = section("tremor.cluster", cluster)["method"]
    out, record = _window_consensus(
        feat.standardise(x, scaling)[inlier], final[inlier],
        keys[inlier].reset_index(drop=True), method, consensus, cluster, kscan, seed,
        f"the features' {method}")
    _write_consensus(out, {**record, "labels": "features", "n_outliers": int((~inlier).sum())},
                     agreement, metrics, figure, dpi)


def _window_consensus(
    z: np.ndarray, final: np.ndarray, keys: pd.DataFrame, method: str,
    consensus: Mapping[str, Any], cluster: Mapping[str, Any], kscan: Mapping[str, Any],
    seed: int, what: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Agreement of the windows ``z`` (keys ``keys``) with their ``final`` clusters: the
    ``tremor.cluster`` method refitted ``tremor.consensus.seeds`` times (seeds ``seed + 1``
    ...) on seeded draws of ``fraction`` of the windows (the others join the nearest
    cluster mean), each refit's clusters matched to the final ones (Hungarian method), a
    window's agreement the share of refits that put it in its final cluster
    (:mod:`seiscluster.velocity.consensus`). Returns the table (keys, cluster, agreement)
    and the summary with ``warnings``."""
    from scipy.spatial.distance import cdist

    from seiscluster import diagnostics as diag
    from seiscluster.tremor.cluster import EmbeddingClusterer, cluster_means
    from seiscluster.velocity import consensus as cons

    cs = section("tremor.consensus", consensus)
    cl, ks = section("tremor.cluster", cluster), section("tremor.kscan", kscan)
    final = np.asarray(final, dtype=np.int64)
    k = int(np.unique(final).size)

    def refit(X: np.ndarray, w: Any, seed_: int, idx: np.ndarray) -> np.ndarray:
        model = EmbeddingClusterer.from_config({**cl, "method": method}, k, ks["n_init"],
                                               seed_).fit(X[idx])
        centres = cluster_means(X[idx], model.labels_, k).astype(np.float64)
        labels = cdist(X, centres).argmin(axis=1)
        labels[idx] = model.labels_
        return labels

    start = time.perf_counter()
    result = cons.consensus(z, final, refit, seeds=cs["seeds"], first_seed=int(seed) + 1,
                            fraction=cs["fraction"])
    seconds = time.perf_counter() - start
    values = result["agreement"]
    stats = cons.summary(values, cs["low_agreement"])
    warnings = diag.low_agreement(stats["low_share"], cs["max_low_share"],
                                  cs["low_agreement"], cs["seeds"], f"tremor consensus {what}",
                                  "tremor.consensus", "windows")
    diag.log_warnings(log, warnings)
    log.info("consensus of %s (k=%d) over %d refits on %.0f %% draws: mean agreement %.3f, "
             "%d of %d windows below %.2f, mean ARI %.3f, %.2f s", what, k, cs["seeds"],
             100 * cs["fraction"], stats["mean_agreement"], stats["n_low"], values.size,
             cs["low_agreement"], float(np.mean(result["ari"])), seconds)
    table = keys.assign(cluster=final, agreement=values)
    return table, {"method": method, "n_clusters": k, "seeds": result["seeds"],
                   "fraction": cs["fraction"], "low_agreement": cs["low_agreement"],
                   "max_low_share": cs["max_low_share"], **stats,
                   "mean_ari": float(np.mean(result["ari"])), "ari": result["ari"],
                   "seconds": round(seconds, 3), "warnings": warnings}


def _write_consensus(table: pd.DataFrame, record: Mapping[str, Any], agreement: str,
                     metrics: str, figure: str, dpi: int) -> None:
    """A consensus's agreement per window (CSV), summary (JSON) and figure."""
    from seiscluster.fileio import write_json
    from seiscluster.plots.style import save
    from seiscluster.plots.tremor import plot_agreement_over_time

    with atomic_path(agreement) as tmp:
        table.to_csv(tmp, index=False)
    write_json(metrics, dict(record))
    save(plot_agreement_over_time(table, record["low_agreement"], record["method"]), figure,
         dpi)
