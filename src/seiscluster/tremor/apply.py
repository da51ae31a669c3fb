"""Monitoring: label new records with a finished run's clustering, without retraining.

A trained run is a results folder (``results/<run>``, or the ``tremor_features`` stage
folder it links to). Everything the application needs comes from it, never from the new
configuration: the preprocessing, spectrogram and feature settings (recorded in
``features.nc``'s ``settings`` attribute; ``config.yaml`` of the run for runs made before
that attribute), the training features (their mean and scale standardise the new windows)
and the training labels (each cluster's centre is the mean of its members' standardised
features: the fixed point of the k-means fit). Only the interpretable-features clustering
(``tremor.primary_labels: features``) is applied; a run whose primary labels are DEC's is
refused.

For each new window (the trained run's window length, step and origin):

- ``nearest``: the nearest training centre (Euclidean, standardised features, as the
  k-means that made the clusters);
- ``p_1 .. p_k``: soft assignments, Student's t kernel of DEC (alpha = 1):
  ``q_j ∝ 1 / (1 + d_j**2)``, normalised over the clusters;
- ``distance``: the window's distance to that centre in the cluster's own spread, a
  diagonal Mahalanobis distance (root mean square over the features of the difference
  divided by the cluster's standard deviation of that feature; each variance shrunk by
  :data:`~seiscluster.tremor.spread.SHRINKAGE` towards the variance pooled over the
  clusters, and at least :data:`~seiscluster.tremor.spread.MIN_SPREAD`): a regime that
  differs from a cluster only in features that the cluster holds tight (a tremor's
  spectral peak) is far from it, while differences in features that vary within the
  cluster count less;
- ``novel``: ``distance > threshold(nearest)``, where a cluster's threshold is
  ``novelty_factor`` times the ``novelty_quantile`` quantile of its training members'
  distances to it. With the defaults (0.99, 1.5) about none of the training windows is
  novel; a window of a regime the training never saw lies far from every centre;
- ``cluster``: ``nearest``, or 0 where the window is novel; then, when the trained run
  kept the features of the parts of its windows (``tremor.features.parts``), the windows
  at a change of label within a processed day get the regime that fills most of them
  (:mod:`~seiscluster.tremor.boundaries`, templates from the trained run's parts), and a
  novel window next to a window of a known cluster whose parts belong to that cluster more
  than half of the time takes it (only its smaller part is new): ``novel`` is then false.

Incremental mode (``incremental``): the labels are a time series (``labels.csv``) with a
record of the labelled days (``days.csv``); a run processes only the complete UTC days of
the records that are not in the record yet (logging ``processing day YYYY-MM-DD``), appends
their windows and leaves the rows of the days already labelled as they were. A day is
complete when the records reach its end; the last, incomplete day waits for a later run.
Without it every day of the records is processed and the series rewritten.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from seiscluster.errors import InputError
from seiscluster.fileio import atomic_path, write_json
from seiscluster.tremor import boundaries as bnd
from seiscluster.tremor import features as feat
from seiscluster.tremor import spectrogram as spec
from seiscluster.tremor.boundaries import BoundaryRefiner
from seiscluster.tremor.spread import cluster_spread, spread_distance
from seiscluster.tremor.waveforms import plain

log = logging.getLogger(__name__)

AKEY = "apply"
DAY_NS = round(spec.DAY * 1e9)
#: Where a run folder keeps the features stage's products.
RUN_FEATURES = Path("tremor") / "features"
DAY_COLUMNS = ["day", "windows", "novel", "processed"]


@dataclass(frozen=True)
class ApplySettings:
    """The ``apply`` settings, checked."""

    novelty_quantile: float = 0.99
    novelty_factor: float = 1.5
    incremental: bool = True

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> ApplySettings:
        values = dict(plain(cfg) or {})
        values.pop("run", None)
        unknown = sorted(set(values) - {"novelty_quantile", "novelty_factor", "incremental"})
        if unknown:
            raise InputError(f"{AKEY}.{unknown[0]}: unknown key; expected run, "
                             "novelty_quantile, novelty_factor or incremental.")
        s = cls(**values)
        q, f = s.novelty_quantile, s.novelty_factor
        if not isinstance(q, (int, float)) or isinstance(q, bool) or not 0 < q <= 1:
            raise InputError(f"{AKEY}.novelty_quantile must be in (0, 1], got {q!r}.")
        if not isinstance(f, (int, float)) or isinstance(f, bool) or f <= 0:
            raise InputError(f"{AKEY}.novelty_factor must be a number > 0, got {f!r}.")
        if not isinstance(s.incremental, bool):
            raise InputError(f"{AKEY}.incremental must be true or false, got "
                             f"{s.incremental!r}.")
        return s


@dataclass
class Trained:
    """What the application takes from a trained run."""

    source: str  # the folder it was read from
    waveforms: dict[str, Any]  # the training records' settings (for the record only)
    preprocess: dict[str, Any]
    spectrogram: dict[str, Any]
    features: feat.FeatureSettings
    channels_mode: str  # stack | separate
    channels: tuple[str, ...]
    names: tuple[str, ...]
    centre: np.ndarray  # standardisation: (d,) centre and scale of the training features
    scale: np.ndarray
    centres: np.ndarray  # (k, d) cluster centres in standardised features
    spread: np.ndarray  # (k, d) per-cluster standard deviations of the novelty distance
    thresholds: np.ndarray  # (k,) novelty distance per cluster
    quantiles: np.ndarray  # (k,) the quantile of the training distances per cluster
    sizes: np.ndarray  # (k,) training windows per cluster
    window_step: float = 0.0  # s, between consecutive windows
    boundaries: BoundaryRefiner | None = None  # templates of the parts of the windows

    @property
    def k(self) -> int:
        return int(self.centres.shape[0])

    def fingerprint(self) -> str:
        """Short hash of what decides the labels (a series is only extended by the same)."""
        h = hashlib.sha256()
        parts = ([] if self.boundaries is None else
                 [self.boundaries.centres_, self.boundaries.spread_])
        for a in (self.centre, self.scale, self.centres, self.spread, self.thresholds, *parts):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        h.update(json.dumps([self.preprocess, self.spectrogram, list(self.names),
                             self.channels_mode], sort_keys=True).encode())
        return h.hexdigest()[:16]

    def record(self) -> dict[str, Any]:
        return {"trained_run": self.source, "fingerprint": self.fingerprint(),
                "n_clusters": self.k, "cluster_sizes": self.sizes.tolist(),
                "channels": self.channels_mode, "trained_channels": list(self.channels),
                "features": list(self.names), "thresholds": np.round(self.thresholds,
                                                                      6).tolist(),
                "training_distance_quantiles": np.round(self.quantiles, 6).tolist(),
                "preprocess": self.preprocess, "spectrogram": self.spectrogram}


# ------------------------------------------------------------------------ the trained run


def _features_folder(run: str | Path) -> Path:
    """The folder holding ``features.nc`` and ``labels.csv`` of a trained run."""
    run = Path(run)
    if not run.exists():
        raise InputError(f"{AKEY}.run: {run} does not exist (the folder of a finished run, "
                         "e.g. results/default, was expected).")
    for folder in (run / RUN_FEATURES, run):
        if (folder / "features.nc").exists() and (folder / "labels.csv").exists():
            return folder
    raise InputError(f"{AKEY}.run: {run} is not a finished tremor run: it has no "
                     f"{RUN_FEATURES}/features.nc and labels.csv (run the tremor branch "
                     "with it first).")


def load_trained(run: str | Path, settings: ApplySettings | None = None) -> Trained:
    """Read a trained run (see the module docstring); InputError in one sentence when it is
    missing, unfinished or incompatible."""
    settings = settings or ApplySettings()
    run = Path(run)
    folder = _features_folder(run)
    primary = run / "tremor" / "labels.csv"
    if primary.exists():
        rep = pd.read_csv(primary, nrows=1).get("representation")
        if rep is not None and len(rep) and str(rep.iloc[0]) != "features":
            raise InputError(f"{AKEY}.run: the primary labels of {run} come from "
                             f"{rep.iloc[0]}; only a run whose tremor.primary_labels is "
                             "features can be applied to new records.")
    try:
        with xr.open_dataset(folder / "features.nc") as ds:
            ds = ds.load()
    except Exception as err:
        raise InputError(f"{AKEY}.run: {folder / 'features.nc'} cannot be read "
                         f"({type(err).__name__}); rerun the trained run.") from None
    recorded = _recorded_settings(ds, run)
    try:
        fset = feat.FeatureSettings.from_config(recorded["features"])
    except InputError as err:
        raise InputError(f"{AKEY}.run: the feature settings of {run} are not understood "
                         f"by this version ({err})") from None
    names = tuple(str(n) for n in ds["name"].values)
    if names != tuple(n for n, _, _ in feat.feature_names(fset)):
        raise InputError(f"{AKEY}.run: the features of {run} ({len(names)}) are not those "
                         "its settings give in this version; rerun the trained run.")
    mode = str(recorded["channels"])
    channels = tuple(str(c) for c in ds["channel"].values)
    x, keys = feat.feature_matrix(ds, mode)
    labels = pd.read_csv(folder / "labels.csv")
    if not feat.labels_match(keys, labels):
        raise InputError(f"{AKEY}.run: {folder / 'labels.csv'} does not label the windows of "
                         f"{folder / 'features.nc'} one by one; the run is incomplete or "
                         "mixed, rerun it.")
    centre, scale = feat.scaling_statistics(x, fset.scaling)
    z = (x - centre) / scale
    cluster = labels["cluster"].to_numpy(int)
    inlier = cluster != 0  # 0: an outlier of the training (diagnostics.small_clusters)
    z, cluster = z[inlier], cluster[inlier]
    k = int(cluster.max(initial=0))
    sizes = np.bincount(np.maximum(cluster, 0), minlength=k + 1)[1:]
    if k == 0 or cluster.min() < 1 or (sizes == 0).any():
        raise InputError(f"{AKEY}.run: the clusters of {folder / 'labels.csv'} are not "
                         "numbered 1..k (0 for outliers); rerun the trained run.")
    centres = np.stack([z[cluster == j].mean(axis=0) for j in range(1, k + 1)])
    spread = cluster_spread(z, cluster, centres)
    dist = spread_distance(z, centres[cluster - 1], spread[cluster - 1])
    quantiles = np.array([np.quantile(dist[cluster == j], settings.novelty_quantile)
                          for j in range(1, k + 1)])
    step = float(recorded["spectrogram"]["window_step"])
    return Trained(str(run), dict(recorded.get("waveforms") or {}),
                   dict(recorded["preprocess"]), dict(recorded["spectrogram"]), fset, mode,
                   channels, names, centre, scale, centres, spread,
                   settings.novelty_factor * quantiles, quantiles, sizes, step,
                   _boundaries(ds, mode, fset, keys, labels["cluster"].to_numpy(int), step))


def _boundaries(ds: xr.Dataset, mode: str, fset: feat.FeatureSettings, keys: pd.DataFrame,
                cluster: np.ndarray, step: float) -> BoundaryRefiner | None:
    """The part templates of the trained run (:mod:`~seiscluster.tremor.boundaries`), None
    when it has no part features (``tremor.features.parts: 0``, or an older run)."""
    if not fset.parts or "part_feature" not in ds:
        return None
    w, c = feat.sample_index(ds["valid"].values.astype(bool), mode)
    parts = bnd.sample_parts(ds["part_feature"].values, w, c)
    prev, nxt = _neighbours(keys, step)
    return BoundaryRefiner(fset.min_separation).fit(parts, cluster, prev, nxt)


def _neighbours(keys: pd.DataFrame, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Previous and next sample of each sample (window start[, channel]) one step away."""
    return bnd.neighbours(pd.to_datetime(keys["window_start"]).to_numpy("M8[ns]"), step,
                          keys["channel"].to_numpy() if "channel" in keys else None)


def _recorded_settings(ds: xr.Dataset, run: Path) -> dict[str, Any]:
    """The trained run's settings: ``features.nc``'s record, else its ``config.yaml``."""
    if "settings" in ds.attrs:
        return json.loads(ds.attrs["settings"])
    config = run / "config.yaml"
    if not config.exists():
        raise InputError(f"{AKEY}.run: {run} records neither its settings (features.nc) nor "
                         "its configuration (config.yaml); rerun the trained run.")
    import yaml

    cfg = yaml.safe_load(config.read_text())
    tremor = cfg.get("tremor") or {}
    return {"waveforms": (cfg.get("data") or {}).get("waveforms"),
            "preprocess": tremor.get("preprocess"), "spectrogram": tremor.get("spectrogram"),
            "features": tremor.get("features"),
            "channels": (tremor.get("preprocess") or {}).get("channels", "stack")}


# --------------------------------------------------------------------------- assignment


def assign(trained: Trained, x: np.ndarray) -> dict[str, np.ndarray]:
    """Nearest centre, distance, novelty, cluster (0 = novel) and soft assignments of raw
    feature rows ``x`` (n, d)."""
    z = (x - trained.centre) / trained.scale
    d = np.linalg.norm(z[:, None, :] - trained.centres[None, :, :], axis=2)
    nearest = d.argmin(axis=1)
    distance = spread_distance(z, trained.centres[nearest], trained.spread[nearest])
    novel = distance > trained.thresholds[nearest]
    q = 1.0 / (1.0 + d ** 2)
    q /= q.sum(axis=1, keepdims=True)
    return {"nearest": nearest + 1, "distance": distance, "novel": novel,
            "cluster": np.where(novel, 0, nearest + 1), "soft": q}


def _day_features(job: spec.Job, starts: np.ndarray, fset: feat.FeatureSettings,
                  threads: int, compute: Mapping[str, Any] | None) \
        -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Features (window, channel, feature), validity and part features (window, channel,
    part, feature; None without parts) of one day's windows."""
    import dask

    from seiscluster.compute import compute_settings, dask_scheduler

    with dask_scheduler(compute_settings(compute), threads) as session:
        shared = session.share(job)
        tables = dask.compute(*(dask.delayed(feat.block_features)(shared, starts, ch, fset)
                                for ch in job.channels))
    values = np.stack([t.values for t in tables], axis=1)
    valid = np.stack([t.reason == 0 for t in tables], axis=1)
    parts = (np.stack([t.parts for t in tables], axis=1) if tables[0].parts is not None
             else None)
    return values, valid, parts


def _rows(trained: Trained, channels: Sequence[str], starts: np.ndarray,
          values: np.ndarray, valid: np.ndarray, parts: np.ndarray | None) \
        -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """The samples of a day as the trained run made them: keys, feature rows and part
    features (n, parts, d)."""
    w, c = feat.sample_index(valid, trained.channels_mode)
    keys = pd.DataFrame({"window_start": _iso(starts[w])})
    if c is not None:
        keys["channel"] = [channels[i] for i in c]
    x = values[w].reshape(w.size, -1) if c is None else values[w, c]
    return keys, x, None if parts is None else bnd.sample_parts(parts, w, c)


def _label_table(keys: pd.DataFrame, result: Mapping[str, np.ndarray], k: int) -> pd.DataFrame:
    """The labels of some samples as text (so that appended rows never change)."""
    out = keys.copy()
    out["cluster"] = result["cluster"].astype(str)
    out["nearest"] = result["nearest"].astype(str)
    out["novel"] = np.where(result["novel"], "true", "false")
    out["distance"] = [f"{v:.6f}" for v in result["distance"]]
    for j in range(k):
        out[f"p_{j + 1}"] = [f"{v:.6f}" for v in result["soft"][:, j]]
    return out


# ------------------------------------------------------------------------------- the stage


def apply(
    *, labels: str, days: str, metrics: str, model: str, run: str,
    waveforms: Mapping[str, Any], apply: Mapping[str, Any] | None = None,
    files: Sequence[str] | None = None, timeline: str | None = None,
    truth: str | None = None, threads: int = 1, compute: Mapping[str, Any] | None = None,
    history: str | None = None,
) -> dict[str, Any]:
    """Label the windows of new records (``waveforms``, ``files``) with the trained run
    ``run``: ``labels.csv`` (window start[, channel], cluster (0 = novel), nearest,
    novel, distance, p_1..p_k), ``days.csv`` (labelled days), ``model.json`` (what was
    applied: the trained run, its centres' thresholds and settings), ``metrics.json``
    (this run's days, counts, novel shares; ARI and per-regime novel shares against
    ``truth`` when given) and the timeline figure; ``history``: a log kept across runs,
    to which this run's log lines are appended. Returns the metrics."""
    if history is None:
        return _apply(labels=labels, days=days, metrics=metrics, model=model, run=run,
                      waveforms=waveforms, apply=apply, files=files, timeline=timeline,
                      truth=truth, threads=threads, compute=compute)
    Path(history).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(history, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        return _apply(labels=labels, days=days, metrics=metrics, model=model, run=run,
                      waveforms=waveforms, apply=apply, files=files, timeline=timeline,
                      truth=truth, threads=threads, compute=compute)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        handler.close()


def _apply(
    *, labels: str, days: str, metrics: str, model: str, run: str,
    waveforms: Mapping[str, Any], apply: Mapping[str, Any] | None,
    files: Sequence[str] | None, timeline: str | None, truth: str | None, threads: int,
    compute: Mapping[str, Any] | None,
) -> dict[str, Any]:
    from seiscluster.tremor.stages import open_records

    if isinstance(files, str):
        files = [files]
    settings = ApplySettings.from_config(apply)
    trained = load_trained(run, settings)
    # the trained run's settings, the new records' source
    start = time.perf_counter()
    rec = open_records(waveforms, trained.preprocess, trained.spectrogram, files)
    source, spec_settings = rec.source, rec.settings
    channels = tuple(source.channels)
    if trained.channels_mode == "stack" and len(channels) != len(trained.channels):
        raise InputError(f"{AKEY}: the trained run {run} stacks {len(trained.channels)} "
                         f"channel(s) ({', '.join(trained.channels)}), the new records have "
                         f"{len(channels)} ({', '.join(channels)}); select as many channels.")
    if trained.channels_mode == "stack" and channels != trained.channels:
        log.warning("new channels %s stand for the trained %s, in this order",
                    ", ".join(channels), ", ".join(trained.channels))
    job = feat.prepare(source, rec.prep, spec_settings, trained.features, rec.inventory)
    starts = spec.source_window_starts(source, spec_settings)
    day_of = (starts // DAY_NS) * DAY_NS
    all_days = np.unique(day_of)

    fingerprint = trained.fingerprint()
    old, done = _previous(labels, days, model, fingerprint, settings.incremental)
    todo = []
    for d in all_days:
        name = _day(d)
        if name in done:
            log.info("day %s already labelled, skipped", name)
        elif settings.incremental and source.end_ns < d + DAY_NS:
            log.info("day %s incomplete (records end %s), left for a later run", name,
                     spec.utc(source.end_ns))
        else:
            todo.append(d)
    new_tables, day_rows = [], []
    for d in todo:
        name = _day(d)
        sel = starts[day_of == d]
        log.info("processing day %s (%d windows)", name, sel.size)
        values, valid, parts = _day_features(job, sel, trained.features, threads, compute)
        keys, x, parts = _rows(trained, channels, sel, values, valid, parts)
        if len(keys):
            result = assign(trained, x)
            if trained.boundaries is not None and parts is not None:
                prev, nxt = _neighbours(keys, trained.window_step)
                refined = trained.boundaries.refine(parts, result["cluster"], prev,
                                                    nxt).labels
                result["cluster"] = trained.boundaries.resolve_novel(
                    parts, refined, prev, nxt, settings.novelty_quantile,
                    settings.novelty_factor)
                result["novel"] = result["cluster"] == 0
            new_tables.append(_label_table(keys, result, trained.k))
            n_novel = int(result["novel"].sum())
        else:
            n_novel = 0
        day_rows.append({"day": name, "windows": len(keys), "novel": n_novel,
                         "processed": pd.Timestamp.now("UTC").strftime("%Y-%m-%dT%H:%M:%S")})
        log.info("day %s: %d sample(s) labelled, %d novel", name, len(keys), n_novel)
    series = pd.concat([old, *new_tables], ignore_index=True) if new_tables else old
    if len(series):
        order = ["window_start", "channel"] if "channel" in series else ["window_start"]
        series = series.sort_values(order, kind="stable").reset_index(drop=True)
    record = pd.concat([_read_days(days) if settings.incremental else
                        pd.DataFrame(columns=DAY_COLUMNS), pd.DataFrame(day_rows,
                                                                        columns=DAY_COLUMNS)],
                       ignore_index=True).sort_values("day").reset_index(drop=True)
    if series.empty:
        series = pd.DataFrame(columns=_label_table(pd.DataFrame({"window_start": []}), {
            k: np.zeros(0) for k in ("cluster", "nearest", "novel", "distance")} | {
            "soft": np.zeros((0, trained.k))}, trained.k).columns)
    with atomic_path(labels) as tmp:
        series.to_csv(tmp, index=False)
    with atomic_path(days) as tmp:
        record.to_csv(tmp, index=False)
    write_json(model, trained.record())
    scores = _metrics(series, [_day(d) for d in todo], trained, truth)
    scores |= {"records": source.description, "seconds": round(time.perf_counter() - start,
                                                                3)}
    write_json(metrics, scores)
    if timeline is not None:
        _timeline(series, trained.k, timeline, spec_settings.window_length)
    log.info("applied %s to %s: %d day(s) processed, %d day(s) labelled in all, %d novel "
             "sample(s) in all", run, source.description, len(todo), len(record),
             scores["novel"])
    return scores


def _previous(labels: str, days: str, model: str, fingerprint: str, incremental: bool) \
        -> tuple[pd.DataFrame, set[str]]:
    """The labels and days already there (incremental mode), checked to come from the
    same trained model."""
    if not incremental or not Path(labels).exists() or not Path(days).exists():
        return pd.DataFrame(), set()
    if Path(model).exists():
        before = json.loads(Path(model).read_text()).get("fingerprint")
        if before != fingerprint:
            raise InputError(f"{AKEY}: {labels} was labelled with another trained model "
                             f"({model}); remove it (and {days}) or set {AKEY}.incremental "
                             "false to label every day again.")
    old = pd.read_csv(labels, dtype=str, keep_default_na=False)
    return old, set(_read_days(days)["day"].astype(str))


def _read_days(days: str) -> pd.DataFrame:
    if not Path(days).exists():
        return pd.DataFrame(columns=DAY_COLUMNS)
    return pd.read_csv(days, dtype=str, keep_default_na=False)


def _metrics(series: pd.DataFrame, processed: list[str], trained: Trained,
             truth: str | None) -> dict[str, Any]:
    cluster = series["cluster"].astype(int).to_numpy() if len(series) else np.zeros(0, int)
    out: dict[str, Any] = {
        "days_processed": processed, "n_samples": int(cluster.size),
        "novel": int((cluster == 0).sum()),
        "novel_fraction": float((cluster == 0).mean()) if cluster.size else 0.0,
        "cluster_sizes": np.bincount(cluster, minlength=trained.k + 1)[1:].tolist(),
        "novelty_thresholds": np.round(trained.thresholds, 6).tolist()}
    if truth is not None and cluster.size:
        from seiscluster.tremor import synthetic

        times = pd.to_datetime(series["window_start"]).to_numpy("M8[ns]")
        regime, fraction = synthetic.truth_of(truth, times)
        out |= synthetic.truth_scores(regime, fraction, cluster)
        ok = np.array([r is not None for r in regime], dtype=bool)
        out["novel_fraction_by_regime"] = {
            str(r): float((cluster[ok][regime[ok] == r] == 0).mean())
            for r in sorted(set(regime[ok]))}
        log.info("against %s: ARI %.3f; novel share by regime %s", truth, out["ari"],
                 {r: round(v, 3) for r, v in out["novel_fraction_by_regime"].items()})
    return out


def _timeline(series: pd.DataFrame, k: int, path: str, window_length: float) -> None:
    """Clusters over time (novel windows on their own row, above), with the confidence."""
    from seiscluster.plots import deep as plots  # matplotlib only where needed

    if len(series):
        t = pd.to_datetime(series["window_start"]).to_numpy("M8[ns]")
        cluster = series["cluster"].astype(int).to_numpy()
        soft = series[[f"p_{j + 1}" for j in range(k)]].astype(float).to_numpy()
        channel = series["channel"].to_numpy() if "channel" in series else None
    else:
        t, cluster, soft, channel = np.zeros(0, "M8[ns]"), np.zeros(0, int), np.zeros(
            (0, k)), None
    shown = np.where(cluster == 0, k + 1, cluster)
    fig = plots.plot_timeline(t, shown, soft.max(axis=1) if len(soft) else np.zeros(0),
                              k + 1, channel=channel, window_length=window_length)
    top = fig.axes[0]
    top.set_yticks(range(1, k + 2), [*map(str, range(1, k + 1)), "novel"])
    top.set_title("Labels of the new records (trained clusters; novel: far from all)")
    plots.save(fig, path, 120)


def _day(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[D]"))


def _iso(times: np.ndarray) -> list[str]:
    return list(pd.DatetimeIndex(np.asarray(times).astype("M8[ns]"))
                .strftime("%Y-%m-%dT%H:%M:%S"))


# ------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seiscluster.tremor.apply RUN OUT FILE ...``: label new record files with
    a trained run, outside the workflow."""
    parser = argparse.ArgumentParser(prog="python -m seiscluster.tremor.apply",
                                     description=main.__doc__)
    parser.add_argument("run", help="the trained run's folder, e.g. results/default")
    parser.add_argument("out", help="folder of the labels (kept between runs)")
    parser.add_argument("files", nargs="+", help="new record files (any obspy format)")
    parser.add_argument("--novelty-quantile", type=float, default=0.99)
    parser.add_argument("--novelty-factor", type=float, default=1.5)
    parser.add_argument("--no-incremental", action="store_true")
    parser.add_argument("--truth", default=None, help="truth.csv of a synthetic archive")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        apply(labels=str(out / "labels.csv"), days=str(out / "days.csv"),
              metrics=str(out / "metrics.json"), model=str(out / "model.json"),
              timeline=str(out / "timeline.png"), run=args.run,
              waveforms={"source": "files", "files": list(args.files)}, files=args.files,
              apply={"novelty_quantile": args.novelty_quantile,
                     "novelty_factor": args.novelty_factor,
                     "incremental": not args.no_incremental},
              truth=args.truth, threads=args.threads, history=str(out / "history.log"))
    except InputError as err:
        print(f"seiscluster apply: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
