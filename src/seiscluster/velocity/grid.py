"""Global grids done right: area weights of the nodes and nodes that repeat.

On a latitude-longitude grid the nodes do not stand for equal areas: a node's cell shrinks
with the cosine of its latitude, so an unweighted clustering of a global model gives the
polar caps (S362ANI: 35 % of the profiles poleward of 60 degrees, 14 % of the area) the
weight of the tropics. And some nodes are one point of the sphere: every longitude of a
pole row, and a longitude column repeated at -180 and 180 (or 0 and 360).

:func:`grid_nodes` finds the distinct points (each clustered once: the first profile of a
point, in profile order, stands for it) and their area weights; the clustering's labels of
the distinct points are carried back to every profile by :meth:`GridNodes.restore`. On a
grid without repeated nodes and with weights off, the clustering sees exactly the
profiles of today, so its labels do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from seiscluster.config import section

#: Tolerance (degrees) under which two node coordinates are one.
_DECIMALS = 6


@dataclass(frozen=True)
class GridNodes:
    """The distinct points of a profile set and their weights.

    ``keep``: indices of the profiles clustered (one per distinct point, in profile order);
    ``inverse``: for every profile, the position in ``keep`` of its point; ``weights``: one
    per kept profile (mean 1), or None when unweighted; ``mode``: ``cos_lat`` or ``none``.
    """

    keep: np.ndarray
    inverse: np.ndarray
    weights: np.ndarray | None
    mode: str

    @property
    def n_duplicates(self) -> int:
        """Profiles that repeat a point clustered through another profile."""
        return int(self.inverse.size - self.keep.size)

    def restore(self, values: np.ndarray) -> np.ndarray:
        """Values of the kept profiles carried to every profile (along the first axis)."""
        return np.asarray(values)[self.inverse]


def distinct_points(latitude: np.ndarray, longitude: np.ndarray) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """(keep, inverse) of the distinct points of the sphere among the nodes: a pole is one
    point whatever its longitude, longitudes are taken modulo 360. ``keep`` lists the first
    node of each point, in node order; ``inverse`` maps every node to its position there."""
    lat = np.round(np.asarray(latitude, dtype=np.float64), _DECIMALS)
    lon = np.round(np.mod(np.asarray(longitude, dtype=np.float64), 360.0), _DECIMALS)
    lon = np.where((np.abs(lat) == 90.0) | (lon == 360.0), 0.0, lon)
    _, first, inverse = np.unique(np.column_stack([lat, lon]), axis=0, return_index=True,
                                  return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order], rank[inverse.ravel()]


def cell_widths(centres: np.ndarray, lo: float | None = None, hi: float | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) cell edges of grid coordinates: halfway to the neighbours, the end
    cells as wide as their inner neighbour gap, clipped to ``[lo, hi]``."""
    c = np.asarray(centres, dtype=np.float64)
    if c.size == 1:
        return c - 0.5, c + 0.5
    mid = (c[1:] + c[:-1]) / 2
    edges = np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
    edges = np.clip(edges, lo, hi) if lo is not None else edges
    return edges[:-1], edges[1:]


def area_weights(profiles: xr.Dataset, keep: np.ndarray) -> np.ndarray:
    """Area of the cell of every kept profile, mean 1: ``cos(latitude)`` times the cell's
    latitude and longitude widths (exactly ``cos(latitude)`` on a regular grid), except at a
    pole, whose one node stands for the whole polar cap (``1 - cos(dlat/2)`` around the
    circle). Only kept profiles are weighed: a repeated node adds no area."""
    lat_lo, lat_hi = cell_widths(profiles["grid_latitude"].values, -90.0, 90.0)
    lon_lo, lon_hi = cell_widths(profiles["grid_longitude"].values)
    i = profiles["lat_index"].values[keep]
    j = profiles["lon_index"].values[keep]
    band = np.sin(np.radians(lat_hi[i])) - np.sin(np.radians(lat_lo[i]))
    pole = np.abs(profiles["grid_latitude"].values[i]) == 90.0
    width = np.where(pole, 2 * np.pi, np.radians(lon_hi[j] - lon_lo[j]))
    area = band * width
    return area / area.mean()


def grid_nodes(profiles: xr.Dataset, weights: str = "auto", weights_lat_span: float = 30.0,
               metric: str = "euclidean") -> GridNodes:
    """The distinct points of ``profiles`` (:func:`distinct_points`) and their weights.

    ``weights`` (``velocity.grid.weights``): ``cos_lat`` weighs every point by the area of
    its cell (:func:`area_weights`), ``none`` gives every point the same weight, ``auto``
    is ``cos_lat`` when the profiles' latitudes span more than ``weights_lat_span`` degrees
    (``velocity.grid.weights_lat_span``) and the clustering ``metric`` is Euclidean (DTW
    barycenters take no weights), ``none`` otherwise.
    """
    checked = section("velocity.grid", {"weights": weights,
                                        "weights_lat_span": weights_lat_span})
    lat = profiles["latitude"].values
    keep, inverse = distinct_points(lat, profiles["longitude"].values)
    mode = checked["weights"]
    if mode == "auto":
        wide = float(np.ptp(lat)) > checked["weights_lat_span"]
        mode = "cos_lat" if wide and metric == "euclidean" else "none"
    w = area_weights(profiles, keep) if mode == "cos_lat" else None
    return GridNodes(keep=keep, inverse=inverse, weights=w, mode=mode)
