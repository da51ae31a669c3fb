"""Cluster colours shared by every figure and the report (one cluster, one colour).

- :func:`cluster_colours`: ``n`` discrete colours, matplotlib's ``tab10`` up to ten, then
  colours added one at a time, each the candidate farthest (CIELAB distance) from all those
  already chosen: deterministic, never repeated, and none close to the grey that marks
  missing data.
- :func:`som_node_colours`: a colour per SOM node from its place on the node grid (a plane
  of CIELAB at constant lightness), so nodes with similar weights, which the SOM puts side
  by side, get similar colours and the node grid beside a map is its legend.
- :func:`discrete_norm`: colour map, norm and integer ticks for a colour bar of cluster ids.
"""

from __future__ import annotations

import functools

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap, to_hex

__all__ = ["NO_DATA", "cluster_colours", "colours_for_ids", "discrete_norm", "lab_to_rgb",
           "rgb_to_lab", "som_node_colours"]

#: Colour of map cells without data (no profile, no coverage).
NO_DATA = "#d9d9d9"
_WHITE = np.array([0.95047, 1.0, 1.08883])  # D65
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in 0..1, shape ``(..., 3)``, to CIELAB (D65)."""
    rgb = np.asarray(rgb, dtype=float)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65), shape ``(..., 3)``, to sRGB in 0..1 (out-of-gamut values clipped)."""
    lab = np.asarray(lab, dtype=float)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    linear = np.clip(xyz @ np.linalg.inv(_RGB_TO_XYZ).T, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * linear ** (1 / 2.4) - 0.055).clip(0.0, 1.0)


@functools.lru_cache(maxsize=8)
def _candidates(levels: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """sRGB grid colours that read on white and are not greyish (far from NO_DATA)."""
    axis = np.linspace(0.0, 1.0, levels)
    rgb = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = rgb_to_lab(rgb)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    keep = (lab[:, 0] >= 30) & (lab[:, 0] <= 85) & (chroma >= 25)
    return rgb[keep], lab[keep]


@functools.lru_cache(maxsize=64)
def _palette(n: int) -> tuple[str, ...]:
    base = [to_hex(c) for c in colormaps["tab10"].colors]
    if n <= len(base):
        return tuple(base[:n])
    rgb, lab = _candidates()
    chosen = rgb_to_lab(np.array([colormaps["tab10"].colors[i] for i in range(len(base))]))
    nearest = np.min(np.linalg.norm(lab[:, None, :] - chosen[None, :, :], axis=-1), axis=1)
    out = list(base)
    for _ in range(n - len(base)):
        i = int(np.argmax(nearest))
        out.append(to_hex(rgb[i]))
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[i], axis=1))
    return tuple(out)


def cluster_colours(n: int) -> list[str]:
    """``n`` distinct colours (hex) for clusters 1..n, the same for the same ``n``."""
    if n < 0:
        raise ValueError(f"number of colours must be >= 0, got {n}")
    return list(_palette(int(n)))


def colours_for_ids(ids: np.ndarray | list[int]) -> list[str]:
    """The colours of cluster ids (1-based): ``cluster_colours(max id)[id - 1]``."""
    ids = np.asarray(ids, dtype=int)
    palette = cluster_colours(int(ids.max()) if ids.size else 0)
    return [palette[i - 1] for i in ids]


def som_node_colours(nx: int, ny: int, lightness: float = 62.0, radius: float = 48.0
                     ) -> np.ndarray:
    """Colour (hex strings, shape ``(nx, ny)``) of each node of an ``nx`` x ``ny`` SOM:
    its grid position mapped onto the a*-b* plane of CIELAB at one lightness."""
    ax = np.linspace(-radius, radius, nx) if nx > 1 else np.zeros(1)
    by = np.linspace(-radius, radius, ny) if ny > 1 else np.zeros(1)
    a, b = np.meshgrid(ax, by, indexing="ij")
    rgb = lab_to_rgb(np.stack([np.full_like(a, lightness), a, b], axis=-1))
    return np.array([[to_hex(c) for c in row] for row in rgb]).reshape(nx, ny)


def discrete_norm(ids: np.ndarray, colours: list[str] | np.ndarray
                  ) -> tuple[ListedColormap, BoundaryNorm, np.ndarray]:
    """Colour map and norm that give cluster ``ids[i]`` the colour ``colours[i]``, and the
    colour-bar ticks: integers only, every id up to 25 ids, else an evenly spaced subset."""
    ids = np.asarray(ids, dtype=int)
    if ids.size == 0:
        return ListedColormap([NO_DATA]), BoundaryNorm([0.0, 1.0], 1), np.array([], int)
    # boundaries between consecutive ids, so that gaps between ids do not shift colours
    mids = (ids[:-1] + ids[1:]) / 2.0
    bounds = np.concatenate([[ids[0] - 0.5], mids, [ids[-1] + 0.5]])
    cmap = ListedColormap(list(colours)[: ids.size])
    step = 1 if ids.size <= 25 else int(np.ceil(ids.size / 20))
    return cmap, BoundaryNorm(bounds, cmap.N), ids[::step]
