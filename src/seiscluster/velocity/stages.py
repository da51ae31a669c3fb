"""The velocity branch's workflow stages, file in → file out.

Each function is what one Snakemake rule runs (through ``workflow/scripts``), takes plain
paths and config values, and can be called and tested without Snakemake. Outputs are
written atomically, so a failed stage leaves nothing that looks complete.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from seiscluster import diagnostics as diag
from seiscluster.config import check_metric_params, n_init_for, section
from seiscluster.errors import InputError
from seiscluster.fileio import atomic_path, write_json, write_netcdf, write_pickle
from seiscluster.velocity.grid import GridNodes, grid_nodes
from seiscluster.velocity.profiles import label_grid, profile_array

# Each stage is a fresh process: a stage imports what only it needs (scikit-learn, tslearn,
# MiniSom, dask, matplotlib) inside its function, so no stage pays for the others' imports.

log = logging.getLogger(__name__)

#: Model files up to this size are read at once by the ingest stage, larger ones lazily
#: (dask, chunk by chunk): for a small file, dask's task graph and threads (about 0.1 s of
#: the stage) save no memory.
EAGER_READ_BYTES = 32 * 2**20


def ingest(
    *,
    model: str,
    path: str | None = None,
    format: str = "auto",
    variable: str | None = None,
    example: Mapping[str, Any] | None = None,
) -> None:
    """Read (or make, when ``path`` is None) the model, check it and write it as NetCDF."""
    from seiscluster.velocity.example import make_example_model
    from seiscluster.velocity.io import open_model, validate_model, write_model

    if path is None:
        log.info("no data.velocity.path: making the embedded example model %s", dict(example or {}))
        ds = make_example_model(**dict(example or {}))
    else:
        log.info("reading %s (format %s, variable %s)", path, format, variable or "auto")
        small = Path(path).is_file() and Path(path).stat().st_size <= EAGER_READ_BYTES
        ds = open_model(path, fmt=format, variable=variable, chunks=None if small else "auto")
    validate_model(ds)
    name = ds.attrs["velocity_variable"]
    log.info("model variable %r, %s", name, dict(ds[name].sizes))
    write_model(ds, model)


def profiles(
    *, model: str, profiles: str, zrange: Sequence[float] | None = None, spacing: int = 1,
    dz: float | None = None, compute: Mapping[str, Any] | None = None, threads: int = 1,
) -> None:
    """Subsample and interpolate the model's depth profiles (``profiles.nc``), chunk by
    chunk on the ``compute`` section's scheduler (memory bounded by the chunk size)."""
    _write_profiles(model, profiles, zrange=zrange, spacing=spacing, dz=dz, compute=compute,
                    threads=threads)


def ingest_profiles(
    *, model: str, profiles: str, path: str | None = None, format: str = "auto",
    variable: str | None = None, example: Mapping[str, Any] | None = None,
    zrange: Sequence[float] | None = None, spacing: int = 1, dz: float | None = None,
    compute: Mapping[str, Any] | None = None, threads: int = 1,
) -> None:
    """:func:`ingest` then :func:`profiles`, in one job (the workflow's ``velocity_profiles``
    stage): each job is a fresh process whose start-up and imports (about 0.9 s) cost more
    than both steps' work on a model of a few thousand profiles."""
    ingest(model=model, path=path, format=format, variable=variable, example=example)
    _write_profiles(model, profiles, zrange=zrange, spacing=spacing, dz=dz, compute=compute,
                    threads=threads)


def _write_profiles(
    model: str, profiles: str, *, zrange: Sequence[float] | None, spacing: int,
    dz: float | None, compute: Mapping[str, Any] | None, threads: int,
) -> None:
    from seiscluster.compute import dask_scheduler
    from seiscluster.velocity.profiles import extract_profiles

    with dask_scheduler(compute, threads) as session, xr.open_dataset(model) as ds:
        prof = extract_profiles(ds, zrange=zrange, spacing=spacing, dz=dz,
                                chunk_size=session.settings.profiles_chunk)
        log.info(
            "%d profiles of %d depths (%d of %d nodes dropped for NaN), %d chunk(s)",
            prof.sizes["profile"], prof.sizes["depth"], prof.attrs["n_dropped_nan"],
            prof.attrs["n_nodes"], len(prof["velocity"].chunks[0]),
        )
        write_netcdf(prof, profiles)


def elbow(
    *, profiles: str, table: str, choice: str, figure: str, kmeans: Mapping[str, Any],
    elbow: Mapping[str, Any], grid: Mapping[str, Any] | None = None, dpi: int = 120,
    threads: int = 1,
    compute: Mapping[str, Any] | None = None, diagnostics: Mapping[str, Any] | None = None,
) -> None:
    """Elbow scan over ``nrange`` (one dask task per k on the ``compute`` section's
    scheduler) with stability and gap scores: table (CSV), choice (JSON, with the rule, the
    scores of the chosen k and the ``warnings`` of :mod:`seiscluster.diagnostics`) and
    figure. Repeated nodes are scanned once, weighted as ``grid`` says
    (:mod:`seiscluster.velocity.grid`)."""
    from seiscluster.velocity.elbow import elbow_scan

    prof, X = _load_profiles(profiles)
    nodes = _grid_nodes(prof, grid, kmeans["metric"])
    thresholds, elbow = diag.settings(diagnostics), section("velocity.elbow", elbow)
    start = time.perf_counter()
    result = elbow_scan(X[nodes.keep], **_kmeans_kwargs(kmeans), **elbow, n_jobs=threads,
                        compute=compute, min_stability=thresholds["min_stability"],
                        sample_weight=nodes.weights)
    seconds = time.perf_counter() - start
    (log.warning if result.fallback_used else log.info)(result.message)
    k = int(result.n_clusters)
    warnings = diag.scan_warnings(
        result.table, k, result.models[k].labels_ + 1, chosen=True, thresholds=thresholds,
        n_seeds=elbow["stability_seeds"], what="velocity k-means scan")
    diag.log_warnings(log, warnings)
    with atomic_path(table) as tmp:
        result.table.to_csv(tmp, index=False)
    write_json(choice, {
        "n_clusters": k,
        "knee": None if result.knee is None else int(result.knee),
        "fallback_used": result.fallback_used,
        "rule": result.rule,
        "criterion_k": result.criterion_k,
        "message": result.message,
        "weights": nodes.mode,
        "repeated_nodes": nodes.n_duplicates,
        "scores": _row(result.table, k),
        "warnings": warnings,
        "seconds": round(seconds, 3),
    })
    from seiscluster.plots.elbow import plot_elbow
    from seiscluster.plots.style import save

    save(plot_elbow(result.table, result.knee, result.n_clusters, result.message,
                    thresholds["min_stability"]), figure, dpi)


def _row(table: pd.DataFrame, k: int) -> dict[str, float]:
    """The scores of one k of a scan table, as plain floats (NaN as None)."""
    row = table[table["k"] == k].iloc[0]
    return {c: (None if pd.isna(row[c]) else float(row[c])) for c in table.columns if c != "k"}


def fit_kmeans(
    *, profiles: str, cluster_map: str, clusters: str, model: str, seisgo: str,
    metrics: str, kmeans: Mapping[str, Any], source: str, tag: str,
    choice: str | None = None, table: str | None = None, threads: int = 1,
    silhouette_sample_size: int = 2000, diagnostics: Mapping[str, Any] | None = None,
    grid: Mapping[str, Any] | None = None,
) -> None:
    """k-means fit with k from the config or the elbow choice; writes all its products.

    The seisgo pickle is named with ``kmeans["figbase"]`` when given; the workflow gives
    none (its run folder shows the pickle under the run's stem), as for :func:`fit_som`.
    """
    from seiscluster.velocity import outputs
    from seiscluster.velocity.kmeans import ProfileKMeans

    prof, X = _load_profiles(profiles)
    nodes = _grid_nodes(prof, grid, kmeans["metric"])
    n_clusters = kmeans["n_clusters"]
    nrange, sum_square = None, []
    if n_clusters is None:
        n_clusters = json.loads(Path(choice).read_text())["n_clusters"]
        scan = pd.read_csv(table)
        nrange, sum_square = scan["k"].to_numpy(), scan["distortion_smoothed"].tolist()
    start = time.perf_counter()
    est = ProfileKMeans(n_clusters=n_clusters, **_kmeans_kwargs(kmeans), n_jobs=threads,
                        fit_sample_size=kmeans.get("fit_sample_size")
                        ).fit(X[nodes.keep], sample_weight=nodes.weights)
    seconds = time.perf_counter() - start
    fitted = nodes.keep.size if est.fit_indices_ is None else len(est.fit_indices_)
    log.info("k-means k=%d (%s, n_init=%d) fitted on %d of %d distinct profiles: inertia "
             "%.6g in %.2f s", n_clusters, est.metric, est.n_init, fitted, nodes.keep.size,
             est.inertia_, seconds)
    ids = np.arange(1, n_clusters + 1)
    labels = nodes.restore(est.labels_) + 1
    ds = outputs.clusters_dataset(
        prof, labels, est.cluster_centers_, ids, method="k-means",
        attrs={"metric": est.metric, "n_init": est.n_init, "random_state": est.random_state,
               "inertia": float(est.inertia_), "source": source, "tag": tag},
    )
    record = outputs.kmeans_seisgo_dict(prof, est, labels - 1, source=source, tag=tag,
                                        n_jobs=threads, nrange=nrange, sum_square=sum_square)
    _write_products(prof, nodes, labels, ds, est, record,
                    outputs.seisgo_pickle_name(kmeans.get("figbase"), str(n_clusters)),
                    {"method": "kmeans", "n_clusters": int(n_clusters),
                     "inertia": float(est.inertia_), "fit_seconds": round(seconds, 3)},
                    cluster_map=cluster_map, clusters=clusters, model=model, seisgo=seisgo,
                    metrics=metrics, sample_size=silhouette_sample_size,
                    diagnostics=diagnostics)


def fit_som(
    *, profiles: str, cluster_map: str, clusters: str, model: str, seisgo: str,
    metrics: str, som: Mapping[str, Any], source: str, tag: str,
    silhouette_sample_size: int = 2000, diagnostics: Mapping[str, Any] | None = None,
    grid: Mapping[str, Any] | None = None,
) -> None:
    """Self-organizing map fit; the winning node of each profile is its cluster."""
    from seiscluster.velocity import outputs
    from seiscluster.velocity.som import ProfileSOM

    prof, X = _load_profiles(profiles)
    nodes = _grid_nodes(prof, grid)
    start = time.perf_counter()
    est = ProfileSOM(**{k: v for k, v in som.items() if k != "figbase"}).fit(
        X[nodes.keep], sample_weight=nodes.weights)
    seconds = time.perf_counter() - start
    nx, ny = est.grid_shape_
    labels = nodes.restore(est.labels_) + 1
    ids = np.asarray(est.populated_nodes_) + 1
    log.info("SOM %dx%d: %d populated nodes, quantization error %.4g in %.2f s", nx, ny,
             ids.size, est.quantization_error_, seconds)
    node_dims = ("som_x", "som_y")
    extra = {
        "som_weights": xr.DataArray(est.weights_, dims=(*node_dims, "depth"),
                                    attrs={"long_name": "SOM node weight vectors"}),
        "som_hits": xr.DataArray(est.hits_, dims=node_dims,
                                 attrs={"long_name": "profiles won by each node"}),
        "som_u_matrix": xr.DataArray(est.u_matrix_, dims=node_dims,
                                     attrs={"long_name": "U-matrix: normalised mean distance "
                                                         "of a node to its neighbours"}),
    }
    ds = outputs.clusters_dataset(
        prof, labels, outputs.member_means(X[nodes.keep], est.labels_ + 1, ids), ids,
        method="SOM",
        attrs={"grid_size": [nx, ny], "sigma": est.sigma, "learning_rate": est.learning_rate,
               "niteration": est.niteration, "random_state": est.random_state,
               "quantization_error": float(est.quantization_error_),
               "source": source, "tag": tag},
        extra=extra,
    )
    record = outputs.som_seisgo_dict(prof, est, labels - 1, source=source, tag=tag)
    _write_products(prof, nodes, labels, ds, est, record,
                    outputs.seisgo_pickle_name(som.get("figbase"), f"{nx}x{ny}"),
                    {"method": "som", "grid_size": [int(nx), int(ny)],
                     "n_clusters": int(ids.size),
                     "quantization_error": float(est.quantization_error_),
                     "topographic_error": _maybe_float(est.topographic_error_),
                     "fit_seconds": round(seconds, 3)},
                    cluster_map=cluster_map, clusters=clusters, model=model, seisgo=seisgo,
                    metrics=metrics, sample_size=silhouette_sample_size,
                    diagnostics=diagnostics)


def figures(
    *, profiles: str, clusters: str, cluster_figure: str, map_figure: str,
    som_figure: str | None = None, probability_figure: str | None = None,
    figsize: Sequence[float] | None = None, dpi: int = 120,
    markers: Sequence[Mapping[str, Any]] = (), threads: int = 1,
) -> None:
    """Cluster-profile panels and the cluster map (and the SOM maps for a SOM fit, the map
    of the most probable cluster's probability for a Gaussian mixture), one colour per
    cluster; ``markers`` (``velocity.plot.markers``) on the maps. The figures are drawn
    side by side on the rule's ``threads``."""
    from functools import partial

    from seiscluster.plots import velocity as plots

    prof, X = _load_profiles(profiles)
    with xr.open_dataset(clusters) as ds:
        ds.load()
    labels = ds["cluster_label"].values[prof["lat_index"].values, prof["lon_index"].values]
    is_som = "som_hits" in ds
    units = prof["velocity"].attrs.get("units", "km/s")
    name = prof.attrs.get("velocity_variable", "v")
    truth = None
    if "province" in prof.coords:
        truth = label_grid(prof, prof["province"].values)
    markers = list(markers or ())
    todo = [
        (partial(plots.plot_cluster_profiles,
                 prof["depth"].values, X, labels, ds["cluster"].values, ds["centroid"].values,
                 colours=plots.cluster_colour_list(ds), ylabel=f"{name} ({units})",
                 centroid_label="mean" if is_som else "centroid", figsize=figsize),
         cluster_figure),
        (partial(plots.plot_cluster_map, ds, ds.attrs["title"], truth, markers), map_figure),
    ]
    if is_som and som_figure:
        todo.append((partial(plots.plot_som_maps, ds["som_u_matrix"].values,
                             ds["som_hits"].values), som_figure))
    if "probability" in ds and probability_figure:
        todo.append((partial(plots.plot_probability_map, ds, markers), probability_figure))
    plots.save_all(todo, dpi, threads)


def _write_products(
    prof: xr.Dataset, nodes: GridNodes, labels: np.ndarray, ds: xr.Dataset, estimator: Any,
    record: dict[str, Any] | None, pickle_name: str | None, summary: dict[str, Any], *,
    cluster_map: str, clusters: str, model: str, seisgo: str | None, metrics: str,
    sample_size: int, diagnostics: Mapping[str, Any] | None = None,
) -> None:
    """The products of every fit: cluster map (CSV), clusters (NetCDF), model pickle,
    metrics (JSON) and, for the seisgo methods, seisgo's pickle (``record``)."""
    from seiscluster.velocity.outputs import cluster_map_frame

    X = profile_array(prof)
    seed = int(getattr(estimator, "random_state", 0) or 0)
    summary = {**summary, "n_profiles": int(X.shape[0]),
               "repeated_nodes": nodes.n_duplicates, "weights": nodes.mode,
               **_scores(X, labels, prof, nodes, sample_size, seed)}
    thresholds = diag.settings(diagnostics)
    what = f"velocity {summary['method']}"
    warnings = diag.small_clusters(labels, thresholds["min_cluster_size"], what) \
        + diag.low_silhouette(summary.get("silhouette"), thresholds["min_silhouette"], what) \
        + diag.high_topographic_error(summary.get("topographic_error"),
                                      thresholds["max_topographic_error"])
    diag.log_warnings(log, warnings)
    summary["warnings"] = warnings
    with atomic_path(cluster_map) as tmp:
        cluster_map_frame(prof, labels).to_csv(tmp, index=False)
    write_netcdf(ds.assign_attrs({k: int(v) if isinstance(v, bool) else v
                                  for k, v in summary.items()
                                  if isinstance(v, (int, float, str))}), clusters)
    write_pickle(model, estimator)
    if record is not None and seisgo is not None and pickle_name is not None:
        folder = Path(seisgo)
        folder.mkdir(parents=True, exist_ok=True)
        write_pickle(folder / pickle_name, record)
    write_json(metrics, summary)


def _scores(
    X: np.ndarray, labels: np.ndarray, prof: xr.Dataset, nodes: GridNodes, sample_size: int,
    seed: int,
) -> dict[str, Any]:
    """Silhouette and Calinski-Harabasz scores of the distinct profiles (weighted as the
    fit was), ARI against the example's provinces (every profile)."""
    from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score, silhouette_score

    scores: dict[str, Any] = {}
    Xu, lu, w = X[nodes.keep], labels[nodes.keep], nodes.weights
    if 1 < np.unique(lu).size < Xu.shape[0] and w is None:
        scores["silhouette"] = float(silhouette_score(
            Xu, lu, sample_size=min(sample_size, len(Xu)), random_state=seed))
        scores["calinski_harabasz"] = float(calinski_harabasz_score(Xu, lu))
    elif 1 < np.unique(lu).size < Xu.shape[0]:
        from seiscluster.velocity.elbow import quality

        silhouette, ch = quality(Xu, [lu], "euclidean", None, seed, sample_size, 1, w)
        scores["silhouette"], scores["calinski_harabasz"] = float(silhouette[0]), float(ch[0])
    if "province" in prof.coords:
        scores["ari_vs_truth"] = float(adjusted_rand_score(prof["province"].values, labels))
    return scores


def fit_gmm(
    *, profiles: str, cluster_map: str, clusters: str, model: str, metrics: str, scan: str,
    scan_figure: str, gmm: Mapping[str, Any], source: str, tag: str,
    nrange: Sequence[int] | None = None, choice: str | None = None, table: str | None = None,
    silhouette_sample_size: int = 2000, diagnostics: Mapping[str, Any] | None = None,
    grid: Mapping[str, Any] | None = None, dpi: int = 120,
) -> None:
    """Gaussian mixture (:class:`~seiscluster.velocity.gmm.ProfileGMM`, weighted EM under
    ``grid``): the BIC / AIC scan over the elbow scan's k (its table, with ``bic``, ``aic``
    and ``log_likelihood`` added, or ``nrange`` without one) and its figure; the mixture of
    k ``gmm["n_clusters"]``, else the elbow scan's choice (``select: elbow``) or the scan's
    smallest BIC / AIC; labels (most probable cluster) and posterior probabilities."""
    from seiscluster.plots.elbow import plot_information_criteria
    from seiscluster.plots.style import save
    from seiscluster.velocity import outputs
    from seiscluster.velocity.elbow import check_nrange
    from seiscluster.velocity.gmm import ProfileGMM

    prof, X = _load_profiles(profiles)
    nodes = _grid_nodes(prof, grid)
    gmm = section("velocity.gmm", gmm)
    est = ProfileGMM(**{k: v for k, v in gmm.items() if k not in ("n_clusters", "select")})
    Xu = X[nodes.keep]
    elbow_table = None if table is None else pd.read_csv(table)
    ks = (elbow_table["k"].tolist() if elbow_table is not None
          else check_nrange(nrange, Xu.shape[0]))
    start = time.perf_counter()
    ic = est.scan(Xu, ks, sample_weight=nodes.weights)
    scan_seconds = time.perf_counter() - start
    n_clusters = gmm["n_clusters"]
    if n_clusters is None and gmm["select"] == "elbow":
        if choice is None:
            raise InputError("velocity.gmm.select=elbow needs the elbow scan: set "
                             "velocity.gmm.n_clusters or velocity.gmm.select=bic or aic.")
        n_clusters = json.loads(Path(choice).read_text())["n_clusters"]
    elif n_clusters is None:
        n_clusters = int(ic["k"][ic[gmm["select"]].idxmin()])
    table_out = ic if elbow_table is None else elbow_table.merge(ic, on="k")
    with atomic_path(scan) as tmp:
        table_out.to_csv(tmp, index=False)
    save(plot_information_criteria(ic, n_clusters), scan_figure, dpi)
    start = time.perf_counter()
    est.set_params(n_clusters=n_clusters).fit(Xu, sample_weight=nodes.weights)
    seconds = time.perf_counter() - start
    log.info("Gaussian mixture k=%d (%s, n_init=%d) on %d distinct profiles: BIC %.6g, "
             "converged %s in %.2f s (scan over %d k: %.2f s)", n_clusters,
             est.covariance_type, est.n_init, Xu.shape[0], est.bic_, est.converged_,
             seconds, len(ks), scan_seconds)
    ids = np.arange(1, n_clusters + 1)
    labels = nodes.restore(est.labels_) + 1
    probability = nodes.restore(est.probabilities_)
    extra = {"probability": xr.DataArray(
        np.stack([label_grid(prof, p) for p in probability.T]).astype(np.float32),
        dims=("cluster", "latitude", "longitude"),
        attrs={"long_name": "posterior probability of the Gaussian mixture cluster",
               "units": "1", "comment": "sums to one over clusters; NaN where no profile"})}
    ds = outputs.clusters_dataset(
        prof, labels, est.means_, ids, method="Gaussian mixture",
        attrs={"covariance_type": est.covariance_type, "n_init": est.n_init,
               "random_state": est.random_state, "bic": float(est.bic_),
               "aic": float(est.aic_), "source": source, "tag": tag},
        extra=extra)
    _write_products(prof, nodes, labels, ds, est, None, None,
                    {"method": "gmm", "n_clusters": int(n_clusters),
                     "select": gmm["select"] if gmm["n_clusters"] is None else "fixed",
                     "covariance_type": est.covariance_type, "bic": float(est.bic_),
                     "aic": float(est.aic_), "log_likelihood": float(est.log_likelihood_),
                     "converged": est.converged_,
                     "mean_max_probability": float(est.probabilities_.max(axis=1).mean()),
                     "fit_seconds": round(seconds, 3), "scan_seconds": round(scan_seconds, 3)},
                    cluster_map=cluster_map, clusters=clusters, model=model, seisgo=None,
                    metrics=metrics, sample_size=silhouette_sample_size,
                    diagnostics=diagnostics)


def tectonics(
    *, profiles: str, clusters: str, table: str, metrics: str, figure: str,
    kmeans: Mapping[str, Any], grid: Mapping[str, Any] | None = None, dpi: int = 120,
    threads: int = 1,
) -> None:
    """The run's k-means clusters against the tectonic classes of
    :mod:`~seiscluster.velocity.tectonics`, beside k-means of the same k, settings and seed
    with the other area weighting (``velocity.grid.weights``: unweighted when the run was
    weighted, ``cos_lat`` when it was not): per clustering and cluster, its share of the
    area and the share of its area in every class (``table``); the purity of each
    clustering against the classes and their agreement (ARI over the distinct nodes) in
    ``metrics``; the class map beside both clusterings (``figure``)."""
    from sklearn.metrics import adjusted_rand_score

    from seiscluster.velocity import tectonics as tec
    from seiscluster.velocity.consensus import match_labels
    from seiscluster.velocity.grid import area_weights
    from seiscluster.velocity.kmeans import ProfileKMeans

    prof, X = _load_profiles(profiles)
    nodes = _grid_nodes(prof, grid, kmeans["metric"])
    with xr.open_dataset(clusters) as ds:
        run_grid, ids = ds["cluster_label"].values, ds["cluster"].values.astype(int)
    i, j = prof["lat_index"].values, prof["lon_index"].values
    run_labels = run_grid[i, j].astype(int)[nodes.keep]
    other_mode = "none" if nodes.mode == "cos_lat" else "cos_lat"
    weights = area_weights(prof, nodes.keep)
    start = time.perf_counter()
    est = ProfileKMeans(n_clusters=ids.size, **_kmeans_kwargs(kmeans), n_jobs=threads).fit(
        X[nodes.keep], sample_weight=weights if other_mode == "cos_lat" else None)
    other = match_labels(run_labels, est.labels_ + 1)
    log.info("k-means k=%d with weights %s (the run: %s) in %.2f s", ids.size, other_mode,
             nodes.mode, time.perf_counter() - start)
    every = tec.classes_at(prof["latitude"].values, prof["longitude"].values)
    classes = every[nodes.keep]
    names = {f"weights {nodes.mode} (the run)": run_labels, f"weights {other_mode}": other}
    shares = pd.concat([tec.class_shares(labels, classes, weights).assign(clustering=name)
                        for name, labels in names.items()])
    with atomic_path(table) as tmp:
        shares[["clustering", *shares.columns[:-1]]].to_csv(tmp, index=False,
                                                            float_format="%.2f")
    ari = float(adjusted_rand_score(run_labels, other))
    record = {"n_clusters": int(ids.size), "run_weights": nodes.mode,
              "other_weights": other_mode, "ari_between": ari,
              "same_cluster_area": float(weights[run_labels == other].sum() / weights.sum()),
              "purity": {name: tec.purity(labels, classes, weights)
                         for name, labels in names.items()},
              "class_area": {tec.CLASSES[c]: float(weights[classes == c].sum()
                                                   / weights.sum())
                             for c in tec.CLASSES},
              "classes": tec.CLASSES}
    write_json(metrics, record)
    log.info("weights %s vs %s: ARI %.3f; purity against the tectonic classes %s", nodes.mode,
             other_mode, ari, {k: round(v, 3) for k, v in record["purity"].items()})
    from seiscluster.plots import velocity as plots  # matplotlib only where needed

    codes = {c: n for n, c in enumerate(tec.CLASSES)}
    fig = plots.plot_tectonics(
        label_grid(prof, np.array([codes[c] for c in every], dtype=float)), run_grid,
        label_grid(prof, nodes.restore(other)), prof["grid_latitude"].values,
        prof["grid_longitude"].values, ids,
        [f"{title}: purity {record['purity'][title]:.2f}" for title in names],
        list(tec.CLASSES.values()))
    plots.save(fig, figure, dpi)


def fit_agglomerative(
    *, profiles: str, cluster_map: str, clusters: str, model: str, metrics: str,
    dendrogram: str, agglomerative: Mapping[str, Any], source: str, tag: str,
    choice: str | None = None, silhouette_sample_size: int = 2000,
    diagnostics: Mapping[str, Any] | None = None, grid: Mapping[str, Any] | None = None,
    dpi: int = 120,
) -> None:
    """Agglomerative clustering (``velocity.agglomerative``) of the distinct profiles with
    k from the config or the elbow choice, optionally joining only neighbouring grid nodes;
    the products of every fit plus the dendrogram (:mod:`seiscluster.velocity.agglomerative`
    says how weights and large grids are handled)."""
    from seiscluster.plots.dendrogram import plot_dendrogram
    from seiscluster.plots.style import save
    from seiscluster.velocity import outputs
    from seiscluster.velocity.agglomerative import ProfileAgglomerative, grid_connectivity

    prof, X = _load_profiles(profiles)
    nodes = _grid_nodes(prof, grid)
    agg = section("velocity.agglomerative", agglomerative)
    n_clusters = agg["n_clusters"]
    if n_clusters is None:
        if choice is None:
            raise InputError("velocity.agglomerative.n_clusters: expected a number of clusters "
                             "when there is no elbow scan to give it, got None.")
        n_clusters = json.loads(Path(choice).read_text())["n_clusters"]
    neighbours = agg["connectivity"] == "neighbours"
    graph = grid_connectivity(prof, nodes) if neighbours else None
    est = ProfileAgglomerative(n_clusters=n_clusters, linkage=agg["linkage"],
                               max_fit_size=agg["max_fit_size"],
                               random_state=agg["random_state"])
    start = time.perf_counter()
    est.fit(X[nodes.keep], sample_weight=nodes.weights, connectivity=graph)
    seconds = time.perf_counter() - start
    fitted = nodes.keep.size if est.fit_indices_ is None else est.fit_indices_.size
    log.info("agglomerative k=%d (%s linkage, connectivity %s%s) tree of %d of %d distinct "
             "profiles in %.2f s", n_clusters, est.linkage, agg["connectivity"],
             f", {est.n_connected_components_} piece(s) of the graph" if neighbours else "",
             fitted, nodes.keep.size, seconds)
    if est.fit_indices_ is not None:
        log.info("more distinct profiles than velocity.agglomerative.max_fit_size (%d): the "
                 "other %d joined the nearest cluster mean", agg["max_fit_size"],
                 nodes.keep.size - fitted)
    ids = np.arange(1, n_clusters + 1)
    labels = nodes.restore(est.labels_) + 1
    ds = outputs.clusters_dataset(
        prof, labels, est.cluster_centers_, ids, method="agglomerative",
        attrs={"linkage": est.linkage, "connectivity": agg["connectivity"],
               "fit_size": int(fitted), "random_state": est.random_state,
               "source": source, "tag": tag})
    title = (f"agglomerative clustering ({est.linkage} linkage"
             f"{', neighbouring nodes only' if neighbours else ''}"
             f"{f', tree of {fitted} drawn profiles' if est.fit_indices_ is not None else ''})")
    save(plot_dendrogram(est.linkage_, int(n_clusters), title), dendrogram, dpi)
    _write_products(prof, nodes, labels, ds, est, None, None,
                    {"method": "agglomerative", "n_clusters": int(n_clusters),
                     "linkage": est.linkage, "connectivity": agg["connectivity"],
                     "fit_size": int(fitted),
                     "connected_components": est.n_connected_components_,
                     "fit_seconds": round(seconds, 3)},
                    cluster_map=cluster_map, clusters=clusters, model=model, seisgo=None,
                    metrics=metrics, sample_size=silhouette_sample_size,
                    diagnostics=diagnostics)


def consensus(
    *, profiles: str, agreement: str, metrics: str, low_nodes: str, figure: str,
    consensus: Mapping[str, Any], methods: Sequence[str], kmeans: Mapping[str, Any],
    gmm: Mapping[str, Any], agglomerative: Mapping[str, Any],
    grid: Mapping[str, Any] | None = None, dpi: int = 120,
    markers: Sequence[Mapping[str, Any]] = (), threads: int = 1,
    kmeans_clusters: str | None = None, gmm_clusters: str | None = None,
    agglomerative_clusters: str | None = None,
) -> None:
    """Consensus over seeds (``velocity.consensus``) of each method it names: every method's
    final clustering (``<method>_clusters``) refitted ``seeds`` times with its k, the
    agreement of every node (:mod:`seiscluster.velocity.consensus`) as CF NetCDF, the
    summary and ``warnings`` (JSON), the low-agreement nodes (CSV) and the maps."""
    from seiscluster.config import CONSENSUS_METHODS
    from seiscluster.plots import velocity as plots
    from seiscluster.velocity import consensus as cons

    cs = section("velocity.consensus", consensus)
    settings = {"kmeans": section("velocity.kmeans", kmeans), "gmm": section("velocity.gmm", gmm),
                "agglomerative": section("velocity.agglomerative", agglomerative)}
    chosen = cs["methods"] or [m for m in methods if m in CONSENSUS_METHODS]
    files = {"kmeans": kmeans_clusters, "gmm": gmm_clusters,
             "agglomerative": agglomerative_clusters}
    missing = [m for m in chosen if files.get(m) is None]
    if missing:
        raise InputError(f"velocity.consensus.methods: expected methods whose clusters this "
                         f"run has, got {missing[0]!r}.")
    prof, X = _load_profiles(profiles)
    thresholds = {"low": cs["low_agreement"], "share": cs["max_low_share"]}
    grids, finals, summaries, rows, warnings = {}, {}, {}, [], []
    euclidean = _grid_nodes(prof, grid)
    for method in chosen:
        with xr.open_dataset(files[method]) as ds:
            ds.load()
        final = ds["cluster_label"].values[prof["lat_index"].values,
                                           prof["lon_index"].values].astype(np.int64)
        k = int(ds.sizes["cluster"])
        metric = settings["kmeans"]["metric"] if method == "kmeans" else "euclidean"
        nodes = euclidean if metric == "euclidean" else _grid_nodes(prof, grid, metric)
        refit = _refit(method, k, prof, nodes, **settings, threads=threads)
        first = settings[method]["random_state"] + 1
        start = time.perf_counter()
        result = cons.consensus(X[nodes.keep], final[nodes.keep], refit, seeds=cs["seeds"],
                                first_seed=first, fraction=cs["fraction"],
                                weights=nodes.weights)
        seconds = time.perf_counter() - start
        values = nodes.restore(result["agreement"])
        stats = cons.summary(result["agreement"], cs["low_agreement"], nodes.weights)
        summaries[method] = {
            "n_clusters": k, **stats, "mean_ari": float(np.mean(result["ari"])),
            "ari": result["ari"], "seeds": result["seeds"], "seconds": round(seconds, 3)}
        log.info("consensus of %s (k=%d) over %d refits on %.0f %% draws: mean agreement "
                 "%.3f, %d of %d distinct nodes below %.2f (%.1f %%), mean ARI %.3f, %.2f s",
                 method, k, cs["seeds"], 100 * cs["fraction"], stats["mean_agreement"],
                 stats["n_low"], nodes.keep.size, cs["low_agreement"],
                 100 * stats["low_share"], summaries[method]["mean_ari"], seconds)
        warnings += diag.low_agreement(stats["low_share"], thresholds["share"],
                                       thresholds["low"], cs["seeds"],
                                       f"velocity consensus {method}")
        grids[method] = label_grid(prof, values).astype(np.float32)
        finals[method] = label_grid(prof, final.astype(np.float64)).astype(np.float32)
        low = np.flatnonzero(values < cs["low_agreement"])
        rows.append(pd.DataFrame({"method": method, "lat": prof["latitude"].values[low],
                                  "lon": prof["longitude"].values[low],
                                  "cluster": final[low], "agreement": values[low]}))
    diag.log_warnings(log, warnings)
    out = _consensus_dataset(prof, chosen, grids, finals, cs)
    between = _between_methods(prof, chosen, finals, euclidean)
    if between is not None:
        vote, between = between
        out["method_agreement"] = (("latitude", "longitude"), vote, {
            "long_name": f"share of the other methods whose (matched) cluster is the node's "
                         f"{chosen[0]} cluster", "units": "1"})
    write_netcdf(out, agreement)
    table = pd.concat(rows, ignore_index=True).sort_values(["method", "agreement"],
                                                           kind="stable")
    with atomic_path(low_nodes) as tmp:
        table.to_csv(tmp, index=False)
    write_json(metrics, {"seeds": cs["seeds"], "fraction": cs["fraction"],
                         "low_agreement": cs["low_agreement"],
                         "max_low_share": cs["max_low_share"], "methods": summaries,
                         "between_methods": between, "warnings": warnings})
    plots.save(plots.plot_consensus_map(out, cs["low_agreement"], list(markers or ()),
                                        {m: r["low_share"] for m, r in summaries.items()}),
               figure, dpi)


def _refit(method: str, k: int, prof: xr.Dataset, nodes: GridNodes, *,
           kmeans: Mapping[str, Any], gmm: Mapping[str, Any],
           agglomerative: Mapping[str, Any], threads: int) -> Any:
    """The refit of ``method`` at k for :func:`seiscluster.velocity.consensus.consensus`:
    the final fit's settings with another seed, on the drawn profiles, every distinct
    profile labelled (0-based)."""
    def part(w: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
        return None if w is None else w[idx]

    if method == "kmeans":
        from seiscluster.velocity.kmeans import ProfileKMeans

        settings = _kmeans_kwargs(kmeans)

        def refit(X: np.ndarray, w: np.ndarray | None, seed: int, idx: np.ndarray
                  ) -> np.ndarray:
            est = ProfileKMeans(n_clusters=k, **{**settings, "random_state": seed},
                                n_jobs=threads, fit_sample_size=kmeans.get("fit_sample_size"))
            return est.fit(X[idx], sample_weight=part(w, idx)).predict(X)
        return refit
    if method == "gmm":
        from seiscluster.velocity.gmm import ProfileGMM

        settings = {key: v for key, v in section("velocity.gmm", gmm).items()
                    if key not in ("n_clusters", "select", "random_state")}

        def refit(X: np.ndarray, w: np.ndarray | None, seed: int, idx: np.ndarray
                  ) -> np.ndarray:
            est = ProfileGMM(n_clusters=k, random_state=seed, **settings)
            return est.fit(X[idx], sample_weight=part(w, idx)).predict(X)
        return refit
    from seiscluster.velocity.agglomerative import (
        ProfileAgglomerative,
        fill_by_neighbours,
        grid_connectivity,
    )

    agg = section("velocity.agglomerative", agglomerative)
    graph = grid_connectivity(prof, nodes) if agg["connectivity"] == "neighbours" else None

    def refit(X: np.ndarray, w: np.ndarray | None, seed: int, idx: np.ndarray) -> np.ndarray:
        est = ProfileAgglomerative(n_clusters=k, linkage=agg["linkage"],
                                   max_fit_size=agg["max_fit_size"], random_state=seed)
        est.fit(X[idx], sample_weight=part(w, idx),
                connectivity=None if graph is None else graph[idx][:, idx])
        labels = est.predict(X)
        labels[idx] = est.labels_
        if graph is not None:  # the others: the cluster of their drawn neighbours
            known = np.zeros(X.shape[0], dtype=bool)
            known[idx] = True
            labels = fill_by_neighbours(graph, labels, known)
        return labels
    return refit


def _between_methods(prof: xr.Dataset, methods: Sequence[str],
                     finals: Mapping[str, np.ndarray], nodes: GridNodes
                     ) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Consensus across methods (a vote map, as Cottaar & Lekic 2016 over models): the
    other methods' final clusters matched to the first method's (Hungarian method, on the
    distinct ``nodes`` and their Euclidean-fit weights) and, for every node, the share of
    them that put it in its cluster of the first method; None with a single method."""
    from sklearn.metrics import adjusted_rand_score

    from seiscluster.velocity import consensus as cons

    if len(methods) < 2:
        return None
    i, j = prof["lat_index"].values, prof["lon_index"].values
    labels = {m: finals[m][i, j].astype(np.int64)[nodes.keep] for m in methods}
    reference, others = labels[methods[0]], [labels[m] for m in methods[1:]]
    vote = cons.agreement(reference, others, nodes.weights)
    record = {"reference": methods[0],
              "mean_agreement": float(np.average(vote, weights=nodes.weights)),
              "ari": {m: float(adjusted_rand_score(reference, labels[m]))
                      for m in methods[1:]}}
    log.info("consensus across methods (reference %s): mean agreement %.3f, ARI %s",
             methods[0], record["mean_agreement"], record["ari"])
    return label_grid(prof, nodes.restore(vote)).astype(np.float32), record


def _consensus_dataset(prof: xr.Dataset, methods: Sequence[str],
                       grids: Mapping[str, np.ndarray], finals: Mapping[str, np.ndarray],
                       cs: Mapping[str, Any]) -> xr.Dataset:
    """CF NetCDF of the consensus: ``agreement`` and the final ``cluster_label`` of every
    method on the model's grid (NaN where no profile)."""
    coords = {"clustering": ("clustering", list(methods)),
              "latitude": ("latitude", prof["grid_latitude"].values,
                           {"units": "degrees_north", "standard_name": "latitude"}),
              "longitude": ("longitude", prof["grid_longitude"].values,
                            {"units": "degrees_east", "standard_name": "longitude"})}
    dims = ("clustering", "latitude", "longitude")
    return xr.Dataset(
        {"agreement": (dims, np.stack([grids[m] for m in methods]),
                       {"long_name": "share of refits that put the node in its final cluster",
                        "units": "1", "comment": "NaN where the node has no profile"}),
         "cluster_label": (dims, np.stack([finals[m] for m in methods]),
                           {"long_name": "final cluster number (1-based)", "units": "1"})},
        coords=coords,
        attrs={"Conventions": "CF-1.8", "title": "consensus of velocity clusterings over seeds",
               "seeds": int(cs["seeds"]), "fraction": float(cs["fraction"]),
               "low_agreement": float(cs["low_agreement"]),
               "source_file": prof.attrs.get("source_file", "")})


def _grid_nodes(prof: xr.Dataset, grid: Mapping[str, Any] | None,
                metric: str = "euclidean") -> GridNodes:
    """The distinct nodes and weights of the profiles (``velocity.grid``), logged."""
    nodes = grid_nodes(prof, **dict(grid or {}), metric=metric)
    log.info("%d profiles: %d repeat a node and are clustered once; weights %s",
             nodes.inverse.size, nodes.n_duplicates, nodes.mode)
    return nodes


def _load_profiles(path: str) -> tuple[xr.Dataset, np.ndarray]:
    with xr.open_dataset(path) as ds:
        prof = ds.load()
    return prof, profile_array(prof)


def _kmeans_kwargs(kmeans: Mapping[str, Any]) -> dict[str, Any]:
    """ProfileKMeans' settings from ``velocity.kmeans`` (null ``n_init``: the metric's
    default, :data:`~seiscluster.config.N_INIT_DEFAULTS`)."""
    keys = ("metric", "max_iter_barycenter", "max_iter", "tol", "random_state")
    params = check_metric_params(kmeans["metric"], kmeans["metric_params"])  # nulls dropped
    n_init = n_init_for(kmeans["metric"], kmeans["n_init"])
    return {**{k: kmeans[k] for k in keys}, "n_init": n_init, "metric_params": params}


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)




def compare(
    *, clusters: str, path: str, applied: str, contingency: str, metrics: str, figure: str,
    format: str = "auto", variable: str | None = None, zrange: Sequence[float] | None = None,
    spacing: int = 1, dz: float | None = None, max_distance_km: float | None = None,
    crop: bool = True, markers: Sequence[Mapping[str, Any]] = (), dpi: int = 120,
    model_name: str | None = None,
) -> None:
    """Another model (``path``; with ``crop`` only its nodes in the run's region), profiled
    with the run's profile settings, assigned to the run's centroids (``clusters``): its
    labels and the agreement map (``applied``, CF NetCDF), the run x other contingency
    table (CSV), the shares and ARI (JSON) and the maps (:mod:`seiscluster.velocity.apply`).
    ``model_name`` names the model in the outputs (default: ``path``; the workflow passes
    the user's file, as ``path`` is then its ingested copy)."""
    from seiscluster.plots import velocity as plots
    from seiscluster.velocity import apply
    from seiscluster.velocity.io import open_model, validate_model
    from seiscluster.velocity.profiles import extract_profiles

    run = apply.open_run(clusters)
    name = model_name or str(path)
    start = time.perf_counter()
    model = open_model(path, fmt=format, variable=variable)
    validate_model(model)
    if crop:
        model = apply.crop_to_run(model, run, name)
    prof = extract_profiles(model, zrange=zrange, spacing=spacing, dz=dz).load()
    prof = apply.in_run_units(run, prof, clusters, name)
    ds, summary = apply.apply_to_model(run, prof, max_distance_km)
    log.info("%s: %d profiles assigned to the %d clusters of %s over %g-%g km; %.1f %% of "
             "%d shared nodes in the same cluster (ARI %.3f) in %.2f s", name,
             prof.sizes["profile"], run.sizes["cluster"], clusters,
             ds.attrs["common_depth_min_km"], ds.attrs["common_depth_max_km"],
             100 * summary["fraction_same"], summary["n_compared"], summary["ari"],
             time.perf_counter() - start)
    write_netcdf(ds.assign_attrs(source_file=name, run_clusters=str(clusters)), applied)
    with atomic_path(contingency) as tmp:
        summary["contingency"].to_csv(tmp)
    write_json(metrics, {"model": name, "run": str(clusters),
                         "n_profiles": int(prof.sizes["profile"]),
                         **{k: summary[k] for k in ("n_compared", "fraction_same", "ari")},
                         **{k: ds.attrs[k] for k in ("common_depth_min_km",
                                                     "common_depth_max_km",
                                                     "max_distance_km")}})
    plots.save(plots.plot_agreement(ds, run, f"{Path(name).name} in the run's clusters",
                                    list(markers or ())), figure, dpi)
