"""Another model's profiles against a finished run's regionalization.

A tomographer clusters one model, then asks how a second model of the same region (another
author, another inversion, a perturbed copy) falls into those clusters. Three steps, each
vectorised:

- :func:`assign_to_centroids`: every profile of the second model, resampled linearly onto
  the run's centroid depths inside the depth range both share, goes to the nearest centroid
  (Euclidean over those depths, as the run's k-means); its distance is the RMS velocity
  difference (km/s) over the common depths.
- :func:`transfer_labels`: the run's label at the nearest run node of every node of the
  second model (great-circle nearest neighbour), 0 where no run node lies within
  ``max_distance_km`` (no counterpart: outside the run's grid or a no-data node).
- :func:`agreement`: where both have a label, whether they are equal, per node (the
  agreement map), with the share that agree and the adjusted Rand index.

Clusters keep the run's numbers on both sides, so equal labels mean the same cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.spatial import cKDTree

from seiscluster.errors import InputError

#: Earth's mean radius (km), for great-circle distances between grid nodes.
EARTH_RADIUS_KM = 6371.0


def common_depths(depth_run: np.ndarray, depth_other: np.ndarray, what: str) -> np.ndarray:
    """Mask over the run's centroid depths that lie inside the other model's depth range;
    InputError unless at least two do."""
    depth_run = np.asarray(depth_run, dtype=float)
    depth_other = np.asarray(depth_other, dtype=float)
    tol = 1e-6 * max(float(np.ptp(depth_run)), 1.0)
    mask = (depth_run >= depth_other.min() - tol) & (depth_run <= depth_other.max() + tol)
    if mask.sum() < 2:
        raise InputError(
            f"{what}: its depths {depth_other.min():g}-{depth_other.max():g} km share fewer "
            f"than two of the run's centroid depths ({depth_run.min():g}-"
            f"{depth_run.max():g} km); the profiles cannot be compared.")
    return mask


def interpolate_columns(depth: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Linear interpolation of every row of ``values`` (n, len(depth)) at depths ``at``
    (inside ``depth``'s range), as ``np.interp`` row by row, without a loop."""
    depth = np.asarray(depth, dtype=float)
    order = np.argsort(depth, kind="stable")
    depth, values = depth[order], np.asarray(values, dtype=float)[:, order]
    i = np.clip(np.searchsorted(depth, at, side="right") - 1, 0, depth.size - 2)
    w = np.clip((at - depth[i]) / (depth[i + 1] - depth[i]), 0.0, 1.0)
    return values[:, i] * (1.0 - w) + values[:, i + 1] * w


def assign_to_centroids(
    velocity: np.ndarray, depth_other: np.ndarray, centroids: np.ndarray,
    depth_run: np.ndarray, cluster_ids: Sequence[int], what: str = "the other model",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (the run's cluster numbers) and RMS distances (velocity units) of the
    profiles ``velocity(n, depth_other)`` to the nearest of ``centroids(k, depth_run)``
    over the common depths; also the mask of the run depths used."""
    velocity = np.asarray(velocity, dtype=float)
    if velocity.ndim != 2 or velocity.shape[0] == 0:
        raise InputError(f"{what}: no profile to assign (expected profiles x depths, "
                         f"got shape {velocity.shape}).")
    if not np.isfinite(velocity).all():
        raise InputError(f"{what}: profiles with missing values must be dropped first.")
    mask = common_depths(depth_run, depth_other, what)
    x = interpolate_columns(depth_other, velocity, np.asarray(depth_run, float)[mask])
    c = np.asarray(centroids, dtype=float)[:, mask]
    d2 = (np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * x @ c.T
          + np.einsum("ij,ij->i", c, c)[None, :])
    nearest = np.argmin(d2, axis=1)
    rms = np.sqrt(np.maximum(d2[np.arange(x.shape[0]), nearest], 0.0) / mask.sum())
    return np.asarray(cluster_ids)[nearest], rms, mask


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def transfer_labels(
    lat_src: np.ndarray, lon_src: np.ndarray, labels_src: np.ndarray,
    lat_dst: np.ndarray, lon_dst: np.ndarray, max_distance_km: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The label of the nearest source node of every destination node (either longitude
    convention) and that distance (km); label 0 beyond ``max_distance_km``."""
    tree = cKDTree(_unit_vectors(lat_src, lon_src))
    chord, idx = tree.query(_unit_vectors(lat_dst, lon_dst))
    km = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
    labels = np.where(km <= max_distance_km, np.asarray(labels_src)[idx], 0)
    return labels.astype(np.int64), km


def grid_spacing_km(lat: np.ndarray, lon: np.ndarray) -> float:
    """The largest node spacing (km) of a regular latitude-longitude grid, along either
    axis at the grid's middle latitude: the farthest a node's nearest neighbour can lie."""
    dlat = float(np.median(np.diff(np.sort(lat)))) if len(lat) > 1 else 0.0
    dlon = float(np.median(np.diff(np.sort(lon)))) if len(lon) > 1 else 0.0
    mid = np.radians(float(np.median(lat)))
    return float(np.radians(max(dlat, dlon * np.cos(mid))) * EARTH_RADIUS_KM)


def agreement(run_labels: np.ndarray, other_labels: np.ndarray) -> dict[str, Any]:
    """Per node 1 where the labels are equal, 0 where not, NaN where either is 0 (no
    label); the share that agree, the ARI and the contingency table (run x other)."""
    from sklearn.metrics import adjusted_rand_score

    a, b = np.asarray(run_labels), np.asarray(other_labels)
    both = (a > 0) & (b > 0)
    if not both.any():
        raise InputError("the two clusterings share no node: the other model's grid does "
                         "not overlap the run's.")
    same = np.where(both, (a == b).astype(float), np.nan)
    table = pd.crosstab(pd.Series(a[both], name="run"), pd.Series(b[both], name="other"))
    return {"same": same, "n_compared": int(both.sum()),
            "fraction_same": float(np.nanmean(same)),
            "ari": float(adjusted_rand_score(a[both], b[both])), "contingency": table}


def apply_to_model(clusters: xr.Dataset, profiles: xr.Dataset,
                   max_distance_km: float | None = None) -> tuple[xr.Dataset, dict[str, Any]]:
    """A run's clusters (``clusters.nc``) applied to another model's profiles
    (``profiles.nc`` of the profiles stage): a CF dataset on the other model's grid with
    the assigned cluster, its RMS distance, the run's cluster at the nearest run node and
    the agreement map; and the summary (shares, ARI, contingency)."""
    from seiscluster.velocity.profiles import label_grid, profile_array

    ids = clusters["cluster"].values.astype(int)
    assigned, rms, mask = assign_to_centroids(
        profile_array(profiles), profiles["depth"].values, clusters["centroid"].values,
        clusters["depth"].values, ids, str(profiles.attrs.get("source_file", "the other model")))
    grid = clusters["cluster_label"].values
    lat_g, lon_g = np.meshgrid(clusters["latitude"].values, clusters["longitude"].values,
                               indexing="ij")
    has = np.isfinite(grid)
    limit = max_distance_km if max_distance_km is not None else grid_spacing_km(
        clusters["latitude"].values, clusters["longitude"].values)
    run_at, _ = transfer_labels(lat_g[has], lon_g[has], grid[has].astype(int),
                                 profiles["latitude"].values, profiles["longitude"].values,
                                 limit)
    summary = agreement(run_at, assigned)
    depths = clusters["depth"].values[mask]
    ds = xr.Dataset(
        {
            "cluster_label": (("latitude", "longitude"), label_grid(profiles, assigned),
                              {"long_name": "the run's cluster nearest each profile of "
                               "this model", "units": "1"}),
            "rms_distance": (("latitude", "longitude"), label_grid(profiles, rms),
                             {"long_name": "RMS velocity difference to that centroid over "
                              "the common depths",
                              "units": str(clusters["centroid"].attrs.get("units", "km/s"))}),
            "run_cluster_label": (("latitude", "longitude"),
                                  label_grid(profiles, np.where(run_at > 0, run_at, np.nan)),
                                  {"long_name": "the run's cluster at the nearest run node",
                                   "units": "1"}),
            "agreement": (("latitude", "longitude"), label_grid(profiles, summary["same"]),
                          {"long_name": "1 where both clusterings agree, 0 where not",
                           "units": "1"}),
        },
        coords={"latitude": ("latitude", profiles["grid_latitude"].values,
                             {"units": "degrees_north", "standard_name": "latitude"}),
                "longitude": ("longitude", profiles["grid_longitude"].values,
                              {"units": "degrees_east", "standard_name": "longitude"}),
                "cluster": ("cluster", ids)},
        attrs={"Conventions": "CF-1.8",
               "title": "another model's profiles assigned to a run's centroids",
               "common_depth_min_km": float(depths.min()),
               "common_depth_max_km": float(depths.max()),
               "max_distance_km": float(limit), "fraction_same": summary["fraction_same"],
               "ari": summary["ari"], "n_compared": summary["n_compared"]},
    )
    ds["centroid"] = clusters["centroid"]
    return ds, summary


def crop_to_run(model: xr.Dataset, run: xr.Dataset, path: str) -> xr.Dataset:
    """The model's nodes inside the run's latitude-longitude box, widened by one node
    spacing of the model (a global model compared with a regional run keeps the region);
    InputError when none is inside."""
    lat, lon = model["latitude"].values, model["longitude"].values
    pad_lat = float(np.median(np.abs(np.diff(lat)))) if lat.size > 1 else 0.0
    pad_lon = float(np.median(np.abs(np.diff(lon)))) if lon.size > 1 else 0.0
    rlat, rlon = run["latitude"].values, run["longitude"].values
    keep_lat = (lat >= rlat.min() - pad_lat) & (lat <= rlat.max() + pad_lat)
    keep_lon = (lon >= rlon.min() - pad_lon) & (lon <= rlon.max() + pad_lon)
    if not keep_lat.any() or not keep_lon.any():
        raise InputError(f"{path}: no node inside the run's region (latitude "
                         f"{rlat.min():g} to {rlat.max():g}, longitude {rlon.min():g} to "
                         f"{rlon.max():g}); set velocity.compare.crop: false to compare "
                         "anyway.")
    return model.isel(latitude=np.flatnonzero(keep_lat), longitude=np.flatnonzero(keep_lon))


def open_run(path: str) -> xr.Dataset:
    """A finished run's ``clusters.nc`` (k-means or SOM), loaded; InputError naming the
    file when it is not one."""
    try:
        with xr.open_dataset(path) as ds:
            run = ds.load()
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot be read as a run's clusters.nc ({err}).") from None
    missing = [v for v in ("cluster_label", "centroid") if v not in run]
    if missing or "depth" not in run.coords:
        raise InputError(f"{path} is not a velocity run's clusters.nc: it has no "
                         f"{' or '.join(missing or ['depth coordinate'])}; give "
                         "results/<run>/velocity/<method>/clusters.nc of a finished run.")
    return run


def run_clusters(run: str, method: str) -> str:
    """The ``clusters.nc`` of ``method`` in the finished run folder ``run``
    (``velocity.compare``), checked readable; InputError naming the key otherwise."""
    path = Path(run) / "velocity" / method / "clusters.nc"
    if not path.is_file():
        raise InputError(f"velocity.compare.run: {run} has no velocity/{method}/clusters.nc; "
                         f"expected the folder of a finished run whose velocity.methods "
                         f"include {method} (velocity.compare.method).")
    open_run(str(path))
    return str(path)


def km_per_s(units: str) -> float | None:
    """The factor from ``units`` to km/s (any spelling the reader accepts), None if
    ``units`` is not a velocity unit."""
    from seiscluster.velocity.io import KM_PER_S_UNITS, M_PER_S_UNITS

    key = str(units).lower().replace(" ", "")
    return 1.0 if key in KM_PER_S_UNITS else 1e-3 if key in M_PER_S_UNITS else None


def in_run_units(run: xr.Dataset, profiles: xr.Dataset, run_path: str, other: str
                 ) -> xr.Dataset:
    """The profiles in the run's velocity units (km/s and m/s in any spelling convert);
    InputError where either unit is unknown and they differ."""
    a = str(run["centroid"].attrs.get("units", "km/s"))
    b = str(profiles["velocity"].attrs.get("units", "km/s"))
    fa, fb = km_per_s(a), km_per_s(b)
    if fa is None or fb is None:
        if a == b:
            return profiles
        raise InputError(f"{other}: velocities in {b!r}, but the run {run_path} is in "
                         f"{a!r}; convert one model so that both use the same units.")
    out = profiles.copy()
    out["velocity"] = (profiles["velocity"] * (fb / fa)).assign_attrs(
        {**profiles["velocity"].attrs, "units": a})
    return out
