"""A small, deterministic, synthetic Vs model so that the workflow runs without user data.

The box (latitude 40..49, longitude -125..-117) is cut into ``n_provinces`` Voronoi cells
around well-spread random centres; each cell gets the 1-D profile of one tectonic setting
(:data:`PROVINCES`: sediment layer, crust with a gradient, smooth Moho step to the mantle,
optional low-velocity zone). Smooth lateral perturbations of the Moho depth and of the crustal
velocity, plus white noise per value, keep k-means from being trivially perfect. Missing data:
a contiguous "offshore" corner in the south-west and a random scatter of nodes, some of them
NaN at only a few depths, so that seisgo's rule "a profile with any NaN is dropped" is
exercised. Everything follows from ``seed``; nothing loops over nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from seiscluster.config import section

if TYPE_CHECKING:
    import xarray as xr

# xarray and scipy.ndimage are imported where used: the configuration check reads
# PROVINCES at every Snakemake start-up.

#: Columns of :data:`PROVINCES`: sediment thickness (km), sediment Vs at top and bottom,
#: crustal Vs at top and above the Moho, Moho depth (km), mantle Vs below the Moho, and a
#: Gaussian low-velocity zone (centre km, half-width km, amplitude km/s; 0 = none).
PROFILE_KEYS = ("sed_thickness", "sed_top", "sed_bottom", "crust_top", "crust_bottom",
                "moho", "mantle", "lvz_depth", "lvz_width", "lvz_amplitude")
#: Tectonic settings, one per province (the first ``n_provinces`` are used).
PROVINCES = {
    "forearc_basin": (4.0, 1.8, 2.6, 3.3, 3.7, 24.0, 4.25, 0.0, 1.0, 0.0),
    "sedimentary_basin": (8.0, 1.5, 2.5, 3.5, 3.8, 32.0, 4.45, 0.0, 1.0, 0.0),
    "volcanic_arc": (0.5, 2.2, 2.8, 3.45, 3.75, 40.0, 4.2, 15.0, 4.0, 0.35),
    "thin_continental_crust": (1.5, 2.0, 2.8, 3.55, 3.75, 28.0, 4.35, 0.0, 1.0, 0.0),
    "thick_continental_crust": (0.5, 2.4, 3.0, 3.6, 3.9, 45.0, 4.6, 0.0, 1.0, 0.0),
    "accreted_mafic_terrane": (1.0, 2.2, 2.9, 3.75, 3.95, 35.0, 4.5, 0.0, 1.0, 0.0),
    "back_arc_mantle_lvz": (1.0, 2.0, 2.8, 3.5, 3.8, 33.0, 4.45, 60.0, 10.0, 0.3),
    "rift": (3.0, 1.7, 2.6, 3.4, 3.7, 25.0, 4.15, 0.0, 1.0, 0.0),
}
LAT_RANGE = (40.0, 49.0)
LON_RANGE = (-125.0, -117.0)
#: Standard deviations of the smooth lateral perturbations (Moho km, crustal Vs km/s).
MOHO_JITTER_KM = 1.5
CRUST_JITTER = 0.04
#: Width of the transition between provinces (squared distance in the unit box).
BOUNDARY_SOFTNESS = 0.006
MANTLE_GRADIENT = 0.003  # km/s per km below the Moho


def make_example_model(
    n_lat: int = 36,
    n_lon: int = 48,
    depth_max: float = 80.0,
    depth_step: float = 1.0,
    n_provinces: int = 5,
    noise: float = 0.03,
    nan_fraction: float = 0.05,
    seed: int = 0,
) -> xr.Dataset:
    """The synthetic model: ``vs(depth, latitude, longitude)`` and ``province(lat, lon)``.

    ``nan_fraction`` is the fraction of nodes whose profile has at least one NaN (they are
    the nodes a profile extraction drops); ``province`` is 0 there, else 1..``n_provinces``.
    """
    import xarray as xr

    _check(n_lat, n_lon, depth_max, depth_step, n_provinces, noise, nan_fraction)
    rng = np.random.default_rng(seed)
    lat = np.linspace(*LAT_RANGE, n_lat)
    lon = np.linspace(*LON_RANGE, n_lon)
    depth = np.arange(0.0, depth_max + 0.5 * depth_step, depth_step)
    y, x = np.meshgrid(np.linspace(0, 1, n_lat), np.linspace(0, 1, n_lon), indexing="ij")
    weights = _province_weights(x, y, n_provinces, rng)  # (n_lat, n_lon, n_provinces)
    province = np.argmax(weights, axis=-1)
    params = weights @ np.array(list(PROVINCES.values()))[:n_provinces]
    param = dict(zip(PROFILE_KEYS, np.moveaxis(params, -1, 0), strict=True))
    param["moho"] = param["moho"] + MOHO_JITTER_KM * _smooth_field(rng, y.shape)
    crust_shift = CRUST_JITTER * _smooth_field(rng, y.shape)
    param["crust_top"] = param["crust_top"] + crust_shift
    param["crust_bottom"] = param["crust_bottom"] + crust_shift
    vs = _profiles(depth, param) + rng.normal(0.0, noise, (depth.size, *y.shape))
    vs[_nan_mask(x, y, depth.size, nan_fraction, rng)] = np.nan
    province = np.where(np.isnan(vs).any(axis=0), 0, province + 1).astype(np.int32)
    names = list(PROVINCES)[:n_provinces]
    return xr.Dataset(
        {
            "vs": (("depth", "latitude", "longitude"), vs,
                   {"long_name": "Shear-wave velocity", "units": "km/s"}),
            "province": (("latitude", "longitude"), province,
                         {"long_name": "true tectonic province (synthetic)",
                          "flag_values": np.arange(n_provinces + 1, dtype=np.int32),
                          "flag_meanings": " ".join(["no_data", *names]),
                          "comment": "1-based; 0 where the node's profile has a NaN"}),
        },
        coords={
            "depth": ("depth", depth, {"units": "km", "positive": "down",
                                       "standard_name": "depth", "long_name": "depth"}),
            "latitude": ("latitude", lat, {"units": "degrees_north",
                                           "standard_name": "latitude"}),
            "longitude": ("longitude", lon, {"units": "degrees_east",
                                             "standard_name": "longitude"}),
        },
        attrs={
            "title": "seiscluster synthetic example Vs model",
            "comment": (f"Synthetic, not real data: {n_provinces} tectonic provinces "
                        f"({', '.join(names)}) made by "
                        f"seiscluster.velocity.example.make_example_model(seed={seed})."),
            "Conventions": "CF-1.8",
            "velocity_variable": "vs",
            "source_file": "embedded example (seiscluster.velocity.example)",
        },
    )


def _profiles(depth: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """Vs of every node at every depth, ``(n_depth, n_lat, n_lon)``, by broadcasting.

    Sediments grade linearly into the crust, the crust linearly into its base, and a smooth
    (logistic, ~1.5 km) Moho step leads to a mantle with a small gradient.
    """
    z = depth[:, None, None]
    sed = p["sed_top"] + (p["sed_bottom"] - p["sed_top"]) * np.clip(z / p["sed_thickness"], 0, 1)
    crust_frac = np.clip((z - p["sed_thickness"]) / (p["moho"] - p["sed_thickness"]), 0, 1)
    crust = p["crust_top"] + (p["crust_bottom"] - p["crust_top"]) * crust_frac
    mantle = p["mantle"] + MANTLE_GRADIENT * np.maximum(z - p["moho"], 0)
    in_crust = _step(z - p["sed_thickness"], 0.3)
    in_mantle = _step(z - p["moho"], 1.5)
    vs = sed + (crust - sed) * in_crust
    vs = vs + (mantle - vs) * in_mantle
    return vs - p["lvz_amplitude"] * np.exp(-(((z - p["lvz_depth"]) / p["lvz_width"]) ** 2))


def _step(distance: np.ndarray, width: float) -> np.ndarray:
    """Smooth 0 -> 1 step (logistic) of the given width, without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(distance / (2.0 * width)))


def _province_weights(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator
                      ) -> np.ndarray:
    """Soft Voronoi membership ``(n_lat, n_lon, n)`` of each node in ``n`` provinces.

    Centres are picked by farthest-point sampling among random candidates inside the box
    (away from its edges), so that every province gets a fair share of nodes. Weights are a
    softmax of minus the squared distance to each centre: the nearest centre dominates, but
    across a boundary the profile parameters grade over a few per cent of the box, as in a
    smooth tomographic model (which also makes boundary nodes ambiguous).
    """
    candidates = 0.1 + 0.8 * rng.random((32 * n, 2))
    centres = [candidates[0]]
    nearest = np.linalg.norm(candidates - centres[0], axis=1)
    for _ in range(n - 1):
        centres.append(candidates[np.argmax(nearest)])
        nearest = np.minimum(nearest, np.linalg.norm(candidates - centres[-1], axis=1))
    centres = np.array(centres)
    dist = (x[..., None] - centres[:, 0]) ** 2 + (y[..., None] - centres[:, 1]) ** 2
    weights = np.exp(-(dist - dist.min(axis=-1, keepdims=True)) / BOUNDARY_SOFTNESS)
    return weights / weights.sum(axis=-1, keepdims=True)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Spatially smooth random field with zero mean and unit standard deviation."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(shape), sigma=max(shape) / 8, mode="reflect")
    return (field - field.mean()) / (field.std() or 1.0)


def _nan_mask(x: np.ndarray, y: np.ndarray, n_depth: int, fraction: float,
              rng: np.random.Generator) -> np.ndarray:
    """Missing values ``(n_depth, n_lat, n_lon)`` on ``round(fraction * n_nodes)`` nodes.

    About 60 % are the south-west corner (nodes with the smallest ``x + y``, a contiguous
    "offshore" patch), the rest a random scatter, half of it NaN at all depths and half
    NaN over a short run of 1-5 depths only.
    """
    n_nodes = x.size
    n_nan = round(fraction * n_nodes)
    n_corner = round(0.6 * n_nan)
    order = np.argsort((x + y).ravel(), kind="stable")
    scatter = rng.choice(order[n_corner:], size=n_nan - n_corner, replace=False)
    partial = scatter[: scatter.size // 2]
    full = np.concatenate([order[:n_corner], scatter[scatter.size // 2:]])
    mask = np.zeros((n_depth, n_nodes), dtype=bool)
    mask[:, full] = True
    length = rng.integers(1, min(5, n_depth - 1) + 1, size=partial.size)
    start = rng.integers(0, n_depth - length + 1)
    run = np.arange(n_depth)[:, None]
    mask[:, partial] = (run >= start) & (run < start + length)
    return mask.reshape(n_depth, *x.shape)


def _check(n_lat: int, n_lon: int, depth_max: float, depth_step: float, n_provinces: int,
           noise: float, nan_fraction: float) -> None:
    """One :class:`InputError` naming the first bad ``data.velocity.example`` key."""
    section("data.velocity.example", {
        "n_lat": n_lat, "n_lon": n_lon, "depth_max": depth_max, "depth_step": depth_step,
        "n_provinces": n_provinces, "noise": noise, "nan_fraction": nan_fraction})
