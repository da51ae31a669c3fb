"""Result products of a velocity clustering: seisgo dictionary, cluster map, CF NetCDF.

Cluster numbers are 1-based everywhere, as in seisgo: k-means clusters ``1..k`` in order of
increasing mean centroid velocity, SOM clusters the winning node ``x * ny + y + 1``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from seiscluster import __version__
from seiscluster.velocity.profiles import label_grid, profile_array


def cluster_map_frame(profiles: xr.Dataset, clusters: np.ndarray) -> pd.DataFrame:
    """seisgo's ``cluster_map``: one row per profile with ``lat``, ``lon``, ``cluster``."""
    return pd.DataFrame(
        {
            "lat": profiles["latitude"].values,
            "lon": profiles["longitude"].values,
            "cluster": np.asarray(clusters, dtype=np.int64),
        }
    )


def member_means(X: np.ndarray, clusters: np.ndarray, cluster_ids: np.ndarray) -> np.ndarray:
    """Mean profile of each cluster in ``cluster_ids`` (the red curve of seisgo's SOM plot)."""
    index = np.searchsorted(cluster_ids, clusters)
    counts = np.bincount(index, minlength=cluster_ids.size).astype(np.float64)
    sums = np.zeros((cluster_ids.size, X.shape[1]))
    np.add.at(sums, index, X)
    return sums / counts[:, None]


def kmeans_seisgo_dict(
    profiles: xr.Dataset,
    estimator: Any,
    labels: np.ndarray,
    *,
    source: str,
    tag: str,
    n_jobs: int,
    nrange: Sequence[int] | None,
    sum_square: Sequence[float],
) -> dict[str, Any]:
    """The dictionary seisgo's ``vpcluster_kmean`` pickles, with the same keys and contents.

    ``pred[i]`` is ``ts[labels == i].T`` of the ``(n, depth, 1)`` time-series array, shape
    ``(1, depth, n_i)``, exactly as seisgo stores it. ``labels`` (0-based) are those of
    every profile (the estimator's, restored onto repeated nodes).
    """
    ts = profile_array(profiles)[:, :, None]
    labels = np.asarray(labels)
    k = estimator.cluster_centers_.shape[0]
    return {
        "method": "k-means",
        "source": source,
        "tag": tag,
        "depth": profiles["depth"].values,
        "model": estimator.to_tslearn(),
        "pred": [ts[labels == i].T for i in range(k)],
        "para": {
            "n_clusters": int(k),
            "n_jobs": int(n_jobs),
            "metric": estimator.metric,
            "max_iter_barycenter": int(estimator.max_iter_barycenter),
            "random_state": estimator.random_state,
            "nrange": None if nrange is None else np.asarray(nrange),
            "sum_square": list(sum_square),
        },
        "cluster_map": cluster_map_frame(profiles, labels + 1),
    }


def som_seisgo_dict(
    profiles: xr.Dataset, estimator: Any, labels: np.ndarray, *, source: str, tag: str
) -> dict[str, Any]:
    """The dictionary seisgo's ``vpcluster_som`` pickles: ``pred`` holds one list of member
    profiles per populated node, nodes in ``x``-major order (``labels``: 0-based, of every
    profile)."""
    X = profile_array(profiles)
    labels = np.asarray(labels)
    nx, ny = estimator.grid_shape_
    return {
        "method": "som",
        "source": source,
        "tag": tag,
        "depth": profiles["depth"].values,
        "model": estimator.som_,
        "pred": [list(X[labels == node]) for node in estimator.populated_nodes_],
        "para": {
            "nx": int(nx),
            "ny": int(ny),
            "sigma": estimator.sigma,
            "niteration": int(estimator.niteration),
            "learning_rate": estimator.learning_rate,
        },
        "cluster_map": cluster_map_frame(profiles, labels + 1),
    }


def seisgo_pickle_name(figbase: str | None, label: str) -> str:
    """seisgo's pickle name: ``<figbase>_clusters_k<label>_results.pk`` (label ``5``, ``4x4``).

    Without ``figbase``: ``clusters_k<label>_results.pk``, the name in the stage store; the
    run folder shows it with the run's stem (``stems`` of :mod:`seiscluster.stagekeys`).
    """
    name = f"clusters_k{label}_results.pk"
    return name if figbase is None else f"{figbase}_{name}"


def clusters_dataset(
    profiles: xr.Dataset,
    clusters: np.ndarray,
    centroids: np.ndarray,
    cluster_ids: np.ndarray,
    *,
    method: str,
    attrs: Mapping[str, Any],
    extra: Mapping[str, xr.DataArray] | None = None,
) -> xr.Dataset:
    """CF NetCDF content: the label grid ``cluster(latitude, longitude)`` (NaN where no
    profile), the centroids ``centroid(cluster, depth)`` and the members per cluster."""
    depth = profiles["depth"]
    vel_attrs = dict(profiles["velocity"].attrs)
    counts = np.array([(clusters == c).sum() for c in cluster_ids], dtype=np.int64)
    ds = xr.Dataset(
        {
            "cluster_label": (
                ("latitude", "longitude"),
                label_grid(profiles, clusters).astype(np.float32),
                {"long_name": f"{method} cluster number (1-based)", "units": "1",
                 "comment": "NaN where the node has no profile (NaN in the model or "
                            "outside the subsampled grid)"},
            ),
            "centroid": (
                ("cluster", "depth"),
                centroids,
                {"long_name": f"{method} cluster centroid velocity",
                 "units": vel_attrs.get("units", "km/s")},
            ),
            "cluster_size": (("cluster",), counts, {"long_name": "number of profiles"}),
        },
        coords={
            "cluster": ("cluster", np.asarray(cluster_ids, dtype=np.int32),
                        {"long_name": "cluster number (1-based)"}),
            "depth": ("depth", depth.values, _cf(depth.attrs, units="km", positive="down",
                                                 long_name="depth below sea level")),
            "latitude": ("latitude", profiles["grid_latitude"].values,
                         _cf(profiles["grid_latitude"].attrs, units="degrees_north",
                             standard_name="latitude")),
            "longitude": ("longitude", profiles["grid_longitude"].values,
                          _cf(profiles["grid_longitude"].attrs, units="degrees_east",
                              standard_name="longitude")),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": f"{method} clusters of velocity profiles",
            "history": f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ} "
                       f"seiscluster {__version__}",
            "source_file": profiles.attrs.get("source_file", ""),
            "velocity_variable": profiles.attrs.get("velocity_variable", ""),
            **{k: _attr(v) for k, v in attrs.items()},
        },
    )
    if extra:
        ds = ds.assign(extra)
    return ds


def _cf(attrs: Mapping[str, Any], **defaults: str) -> dict[str, Any]:
    return {**defaults, **dict(attrs)}


def _attr(value: Any) -> Any:
    """NetCDF attributes accept numbers, strings and arrays; None becomes "none"."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return value
