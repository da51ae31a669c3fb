"""Maps (projections, coastlines, graticule, markers), cluster colours and the velocity
figures drawn on small grids."""

from __future__ import annotations

import io

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from seiscluster.config import compose, to_container
from seiscluster.plots import maps
from seiscluster.plots.colours import (
    NO_DATA,
    cluster_colours,
    discrete_norm,
    rgb_to_lab,
    som_node_colours,
)
from seiscluster.velocity import stages

R = maps.R_EARTH


def _lab(hexes):
    from matplotlib.colors import to_rgb

    return rgb_to_lab(np.array([to_rgb(h) for h in hexes]))


@pytest.mark.parametrize("n", [3, 10, 20, 36, 144])
def test_cluster_colours_are_distinct_deterministic_and_not_grey(n):
    colours = cluster_colours(n)
    assert len(colours) == n == len(set(colours))
    assert colours == cluster_colours(n)
    lab = _lab(colours)
    gaps = np.linalg.norm(lab[:, None] - lab[None], axis=-1)[np.triu_indices(n, 1)]
    assert gaps.min() > (10 if n <= 36 else 5)  # CIELAB distance between any two
    assert np.linalg.norm(lab - _lab([NO_DATA]), axis=1).min() > 20
    assert cluster_colours(n)[:3] == cluster_colours(3)  # a cluster keeps its colour


def test_som_node_colours_are_unique_and_follow_the_grid():
    grid = som_node_colours(12, 12)
    assert grid.shape == (12, 12) and len(set(grid.ravel())) == 144
    lab = _lab(grid.ravel()).reshape(12, 12, 3)
    step_x = np.linalg.norm(np.diff(lab, axis=0), axis=-1)
    corner = np.linalg.norm(lab[0, 0] - lab[-1, -1])
    assert step_x.max() < corner / 4  # neighbours alike, far corners far apart


def test_discrete_norm_gives_each_id_its_colour_and_integer_ticks():
    ids = np.array([1, 2, 5, 7, *range(10, 42)])
    _, norm, ticks = discrete_norm(ids, cluster_colours(ids.size))
    assert np.array_equal(norm(ids), np.arange(ids.size))
    assert ticks.dtype.kind == "i" and set(ticks) <= set(ids) and len(ticks) <= 25
    assert np.array_equal(discrete_norm(ids[:5], cluster_colours(5))[2], ids[:5])


@pytest.mark.parametrize(("lon", "lat", "name", "lon0"), [
    (np.arange(0, 360, 10.0), np.arange(-80, 81, 10.0), "Robinson", 180.0),
    (np.arange(-180, 181, 10.0), np.arange(-80, 81, 10.0), "Robinson", 0.0),
    (np.arange(-124.8, -119.9, 0.2), np.arange(40, 49.1, 0.2), "Lambert", -122.4),
    (np.arange(160, 185, 1.0), np.arange(-47, -33, 1.0), "Lambert", 172.0),
    (np.arange(95, 140, 1.0), np.arange(-10, 10, 1.0), "Mercator", 117.0),
    (np.arange(330, 390, 2.0) % 360, np.arange(30, 60, 2.0), "Lambert", 359.0),
])
def test_the_projection_suits_the_extent(lon, lat, name, lon0):
    proj = maps.choose_projection(lon, lat)
    assert proj.name.startswith(name)
    assert np.isclose(maps.wrap(proj.lon0 - lon0, 0.0), 0.0, atol=0.51)


def test_robinson_is_centred_and_has_its_published_scale():
    proj = maps.robinson(180.0)
    x, y = proj([180.0, 0.0, 180.0], [0.0, 0.0, 90.0])
    assert np.allclose([x[0], y[0]], 0.0)
    assert np.isclose(abs(x[1]), 0.8487 * R * np.pi)  # the antimeridian: the map's edge
    assert np.isclose(y[2], 1.3523 * R)


@pytest.mark.parametrize("parallels", [(41.5, 47.5), (-45.0, -36.0)])
def test_lambert_conformal_is_conformal_and_true_on_its_standard_parallels(parallels):
    lat1, lat2 = parallels
    proj = maps.lambert_conformal(10.0, (lat1 + lat2) / 2, lat1, lat2)
    h = 1e-4
    for lat in (lat1, (lat1 + lat2) / 2, lat2):
        x0, y0 = proj(11.0, lat)
        xe, ye = proj(11.0 + h, lat)
        xn, yn = proj(11.0, lat + h)
        along_parallel = np.hypot(xe - x0, ye - y0) / (R * np.deg2rad(h) * np.cos(np.deg2rad(lat)))
        along_meridian = np.hypot(xn - x0, yn - y0) / (R * np.deg2rad(h))
        assert np.isclose(along_parallel, along_meridian, rtol=1e-4)  # conformal
        if lat in parallels:
            assert np.isclose(along_parallel, 1.0, rtol=1e-4)


def test_coastlines_and_borders_come_from_the_shipped_files():
    coast = maps.boundary_lines("gshhs", "i", levels=(1, 5))
    assert coast.shape[1] == 2 and np.isnan(coast[:, 0]).any()
    pts = coast[np.isfinite(coast[:, 0])]
    assert pts[:, 0].min() >= -180 and pts[:, 0].max() <= 180
    # the Oregon coast near 45 N lies near 124 W
    oregon = pts[(np.abs(pts[:, 1] - 45.0) < 0.05) & (pts[:, 0] > -125) & (pts[:, 0] < -123)]
    assert oregon.size and np.all(np.abs(oregon[:, 0] + 123.95) < 0.2)
    # no seam of the files' polygon splits (the 180 meridian, Antarctica through the pole)
    seg = np.stack([coast[:-1], coast[1:]], axis=1)
    seg = seg[np.isfinite(seg).all(axis=(1, 2))]
    on_seam = np.isin(np.abs(seg[..., 0]), (0.0, 180.0)) | (seg[..., 1] <= -89.99)
    assert not on_seam.all(axis=1).any()
    for kind in ("countries", "states"):
        lines = maps.boundary_lines(kind, "l")
        assert np.isfinite(lines).sum() > 1000


@pytest.mark.parametrize(("lon", "lat", "kind"), [
    (np.arange(-124.8, -119.9, 0.4), np.arange(40, 49.1, 0.4), "Lambert"),
    (np.arange(0, 360, 20.0), np.arange(-80, 81, 20.0), "Robinson"),
    (np.arange(-180, 181, 20.0), np.arange(-80, 81, 20.0), "Robinson"),
    (np.arange(95, 140, 3.0), np.arange(-10, 10, 3.0), "Mercator"),
])
def test_each_map_kind_draws_coastlines_graticule_no_data_and_markers(lon, lat, kind):
    grid = (np.arange(lat.size)[:, None] + np.arange(lon.size)[None, :]) % 4 + 1.0
    grid[0, 1:4] = np.nan  # (column 0 may sit on a world map's edge and show twice)
    ids = np.arange(1, 5)
    cmap, norm, _ = discrete_norm(ids, cluster_colours(4))
    marker = {"lon": float(lon[len(lon) // 2]), "lat": float(lat[len(lat) // 2]),
              "label": "here", "kind": "volcano"}
    fig = Figure()
    ax = fig.subplots()
    mesh, proj = maps.draw_map(ax, lon, lat, grid, cmap, norm, markers=[marker])
    assert proj.name.startswith(kind) and kind in ax.get_xlabel()
    corners = mesh.get_coordinates()  # no cell may wrap across the map
    widths = np.diff(corners[..., 0], axis=1)
    assert (widths >= 0).all() and widths.max() < 0.2 * np.ptp(corners[..., 0])
    data = mesh.get_array()
    assert np.ma.count_masked(data) == 3  # the NaN cells are masked, grey below
    labels = [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    assert len(labels) >= 4 and all("°" in t for t in labels)
    coast = [line for line in ax.get_lines() if line.get_color() == "k" and
             np.isfinite(line.get_xydata()).all(axis=1).sum() > 50]
    assert coast, "no coastline drawn"
    x, y = proj(marker["lon"], marker["lat"])
    assert any(np.allclose(line.get_xydata(), [[x, y]]) for line in ax.get_lines())
    assert "here" in [t.get_text() for t in ax.texts]
    fig.savefig(io.BytesIO(), format="png")


@pytest.fixture(scope="module")
def small_fits(tmp_path_factory):
    """A small example model with k-means (3 clusters) and a 6 x 6 SOM fitted."""
    out = tmp_path_factory.mktemp("fits")
    cfg = compose(["data.velocity.example.n_lat=10", "data.velocity.example.n_lon=12",
                   "data.velocity.example.depth_step=5"])
    stages.ingest(model=str(out / "model.nc"), example=to_container(cfg.data.velocity.example))
    stages.profiles(model=str(out / "model.nc"), profiles=str(out / "profiles.nc"))
    vel = to_container(cfg.velocity)
    kmeans = {**vel["kmeans"], "n_clusters": 3, "n_init": 1}
    som = {**vel["som"], "grid_size": [6, 6], "niteration": 300}
    for method, fit, section in (("kmeans", stages.fit_kmeans, {"kmeans": kmeans}),
                                 ("som", stages.fit_som, {"som": som})):
        folder = out / method
        fit(profiles=str(out / "profiles.nc"), cluster_map=str(folder / "cluster_map.csv"),
            clusters=str(folder / "clusters.nc"), model=str(folder / "model.pkl"),
            seisgo=str(folder / "seisgo"), metrics=str(folder / "metrics.json"),
            source="vmodel", tag="v", **section)
    return out


@pytest.mark.parametrize("method", ["kmeans", "som"])
def test_velocity_figures_as_png_and_svg_with_markers(small_fits, method):
    folder = small_fits / method
    figures = {"cluster_figure": folder / "clusters.png", "map_figure": folder / "map.png"}
    if method == "som":
        figures["som_figure"] = folder / "som_maps.png"
    stages.figures(profiles=str(small_fits / "profiles.nc"), clusters=str(folder / "clusters.nc"),
                   markers=[{"lon": -122.18, "lat": 46.2, "label": "St. Helens",
                             "kind": "volcano"}], **{k: str(v) for k, v in figures.items()})
    for path in figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = path.with_suffix(".svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    assert "St. Helens" in (folder / "map.svg").read_text()


def test_figures_drawn_side_by_side_are_the_figures_drawn_one_by_one(small_fits, tmp_path):
    folder = small_fits / "som"
    written = {}
    for threads in (1, 2):
        out = tmp_path / str(threads)
        figures = {"cluster_figure": out / "clusters.png", "map_figure": out / "map.png",
                   "som_figure": out / "som_maps.png"}
        stages.figures(profiles=str(small_fits / "profiles.nc"),
                       clusters=str(folder / "clusters.nc"), threads=threads,
                       **{k: str(v) for k, v in figures.items()})
        written[threads] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert len(written[1]) == 6  # three figures, PNG and SVG
    assert written[2] == written[1]


def test_a_figure_that_fails_in_a_forked_worker_stops_with_its_name(tmp_path):
    from seiscluster.plots.style import save_all

    def good() -> Figure:
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([0, 1], [1, 0])
        return fig

    def bad() -> Figure:
        raise ValueError("no data")

    with pytest.raises(RuntimeError, match=r"bad\.png"):
        save_all([(good, tmp_path / "good.png"), (bad, tmp_path / "bad.png")], workers=2)
    assert (tmp_path / "good.png").is_file() and (tmp_path / "good.svg").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.png", "good.svg"]


def test_a_cluster_has_one_colour_in_every_velocity_figure(small_fits):
    from seiscluster.plots.velocity import cluster_colour_list

    with xr.open_dataset(small_fits / "som" / "clusters.nc") as ds:
        colours = cluster_colour_list(ds)
        node = som_node_colours(6, 6).ravel()
        assert colours == [node[i - 1] for i in ds["cluster"].values]
    with xr.open_dataset(small_fits / "kmeans" / "clusters.nc") as ds:
        assert cluster_colour_list(ds) == cluster_colours(3)
