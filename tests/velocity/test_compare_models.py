"""Another model's profiles against a run's clusters: assignment over the common depths,
label transfer between grids, the agreement map, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from seiscluster.errors import InputError
from seiscluster.velocity import apply, outputs
from seiscluster.velocity.example import make_example_model
from seiscluster.velocity.kmeans import ProfileKMeans
from seiscluster.velocity.profiles import extract_profiles, profile_array


def _profiles(model: xr.Dataset) -> xr.Dataset:
    return extract_profiles(model).load()


@pytest.fixture(scope="module")
def run():
    """The example model's k-means (k=5) as the run's clusters.nc holds it."""
    prof = _profiles(make_example_model(seed=0))
    est = ProfileKMeans(n_clusters=5, n_init=2, random_state=0).fit(profile_array(prof))
    ids = np.arange(1, 6)
    ds = outputs.clusters_dataset(prof, est.labels_ + 1, est.cluster_centers_, ids,
                                  method="k-means", attrs={})
    return ds, prof, est.labels_ + 1


def test_the_model_itself_falls_into_its_own_clusters(run):
    clusters, prof, _ = run
    ds, summary = apply.apply_to_model(clusters, prof)
    assert summary["fraction_same"] == 1.0 and summary["ari"] == 1.0
    assert summary["n_compared"] == prof.sizes["profile"]
    np.testing.assert_array_equal(ds["cluster_label"].values, clusters["cluster_label"].values)
    assert np.nanmedian(ds["rms_distance"].values) < 0.1  # km/s: mostly the noise


def test_a_perturbed_copy_on_fewer_depths_mostly_agrees_and_a_changed_region_does_not(run):
    clusters, _, _ = run
    model = make_example_model(seed=0)
    rng = np.random.default_rng(1)
    other = model.copy(deep=True)
    other["vs"] = other["vs"] + rng.normal(0, 0.01, other["vs"].shape)
    other = other.isel(depth=slice(0, None, 2)).sel(depth=slice(0, 60))  # coarser, shallower
    changed = (other["latitude"] > other["latitude"].values[20]).values
    other["vs"] = other["vs"] + xr.DataArray(0.6 * changed, dims="latitude")  # faster north
    ds, summary = apply.apply_to_model(clusters, _profiles(other))
    assert ds.attrs["common_depth_max_km"] == pytest.approx(60.0)
    same = ds["agreement"].values
    south = same[: 20][np.isfinite(same[: 20])]
    north = same[21:][np.isfinite(same[21:])]
    assert south.mean() > 0.95 and north.mean() < south.mean() - 0.3
    assert summary["contingency"].values.sum() == summary["n_compared"]


def test_interpolation_is_np_interp_row_by_row():
    rng = np.random.default_rng(0)
    depth = np.array([0.0, 5.0, 12.0, 30.0, 31.0])
    values = rng.normal(size=(7, 5))
    at = np.array([0.0, 1.0, 12.0, 20.0, 30.5, 31.0])
    expect = np.array([np.interp(at, depth, row) for row in values])
    np.testing.assert_allclose(apply.interpolate_columns(depth, values, at), expect)
    np.testing.assert_allclose(apply.interpolate_columns(depth[::-1], values[:, ::-1], at),
                               expect)


def test_labels_cross_the_longitude_conventions_and_stop_beyond_the_distance():
    labels, km = apply.transfer_labels(np.array([10.0, 10.0]), np.array([-170.0, 20.0]),
                                       np.array([3, 4]), np.array([10.0, 10.0, 60.0]),
                                       np.array([190.0, 21.0, 20.0]), 200.0)
    assert labels.tolist() == [3, 4, 0]
    assert km[0] == pytest.approx(0.0, abs=1e-6) and 100 < km[1] < 120


def test_depths_that_do_not_overlap_are_refused(run):
    clusters, prof, _ = run
    deep = prof.assign_coords(depth=prof["depth"] + 500.0)
    deep.attrs["source_file"] = "deep.nc"
    with pytest.raises(InputError, match=r"^deep.nc: its depths 500-580 km share fewer than "
                                         r"two of the run's centroid depths \(0-80 km\)"):
        apply.apply_to_model(clusters, deep)


def test_an_incompatible_run_is_refused(run, tmp_path):
    clusters, prof, _ = run
    path = tmp_path / "model.nc"
    clusters.drop_vars("centroid").to_netcdf(path)
    with pytest.raises(InputError, match=r"is not a velocity run's clusters.nc: it has no "
                                         "centroid"):
        apply.open_run(str(path))
    (tmp_path / "text.nc").write_text("not netcdf")
    with pytest.raises(InputError, match=r"cannot be read as a run's clusters\.nc"):
        apply.open_run(str(tmp_path / "text.nc"))
    unknown = prof.copy()
    unknown["velocity"] = prof["velocity"].assign_attrs(units="furlongs/fortnight")
    with pytest.raises(InputError, match=r"velocities in 'furlongs/fortnight', but the run "
                                         r"run\.nc is in "):
        apply.in_run_units(clusters, unknown, "run.nc", "other.nc")


def test_velocities_in_another_spelling_or_in_m_per_s_are_converted(run):
    clusters, prof, _ = run
    metres = prof.copy()
    metres["velocity"] = (prof["velocity"] * 1000).assign_attrs(units="m s-1")
    kmps = clusters.copy()
    kmps["centroid"] = clusters["centroid"].assign_attrs(units="kmps")
    out = apply.in_run_units(kmps, metres, "run.nc", "other.nc")
    np.testing.assert_allclose(out["velocity"].values, prof["velocity"].values)
    assert out["velocity"].attrs["units"] == "kmps"
    _, summary = apply.apply_to_model(kmps, out)
    assert summary["fraction_same"] == 1.0


def test_grids_that_do_not_overlap_share_no_node():
    with pytest.raises(InputError, match="share no node"):
        apply.agreement(np.array([0, 0]), np.array([1, 2]))


def test_the_stage_writes_the_agreement_products(run, tmp_path):
    """Cascadia-style use: another model file, profiled like the run, against its clusters."""
    import json

    from seiscluster.velocity import stages

    clusters, _, _ = run
    clusters.to_netcdf(tmp_path / "clusters.nc")
    other = make_example_model(seed=0, noise=0.05)
    other.to_netcdf(tmp_path / "other.nc")
    out = {k: str(tmp_path / f"{k}{ext}") for k, ext in (
        ("applied", ".nc"), ("contingency", ".csv"), ("metrics", ".json"), ("figure", ".png"))}
    stages.compare(clusters=str(tmp_path / "clusters.nc"), path=str(tmp_path / "other.nc"),
                   dpi=50, **out)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["fraction_same"] > 0.9 and metrics["common_depth_max_km"] == 80.0
    with xr.open_dataset(out["applied"]) as ds:
        assert set(ds.data_vars) >= {"cluster_label", "agreement", "rms_distance",
                                     "run_cluster_label", "centroid"}
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "figure.svg").exists()


def test_a_global_model_is_cropped_to_the_run_region(run):
    clusters, _, _ = run
    lat = np.arange(-90.0, 91.0, 2.0)
    lon = np.arange(-180.0, 180.0, 2.0)
    world = xr.Dataset({"vs": (("depth", "latitude", "longitude"),
                               np.ones((3, lat.size, lon.size)))},
                       coords={"depth": [0.0, 40.0, 80.0], "latitude": lat, "longitude": lon})
    part = apply.crop_to_run(world, clusters, "world.nc")
    rlat, rlon = clusters["latitude"].values, clusters["longitude"].values
    assert rlat.min() - 2 <= part["latitude"].min() <= rlat.min()
    assert rlon.max() <= part["longitude"].max() <= rlon.max() + 2
    far = world.assign_coords(latitude=lat / 10 - 80)  # -89..-71: none in the run's box
    with pytest.raises(InputError, match=r"^world\.nc: no node inside the run's region"):
        apply.crop_to_run(far, clusters, "world.nc")


def test_a_missing_or_unfitted_run_is_one_sentence(run, tmp_path):
    with pytest.raises(InputError, match=r"^velocity\.compare\.run: .*nothere has no "
                                         r"velocity/kmeans/clusters\.nc; expected the folder"):
        apply.run_clusters(str(tmp_path / "nothere"), "kmeans")
    clusters, _, _ = run
    (tmp_path / "done" / "velocity" / "kmeans").mkdir(parents=True)
    clusters.to_netcdf(tmp_path / "done" / "velocity" / "kmeans" / "clusters.nc")
    assert apply.run_clusters(str(tmp_path / "done"), "kmeans").endswith("clusters.nc")
    with pytest.raises(InputError, match=r"has no velocity/som/clusters\.nc"):
        apply.run_clusters(str(tmp_path / "done"), "som")


def test_compare_needs_the_velocity_branch():
    from seiscluster.config import compose

    with pytest.raises(InputError, match=r"^velocity\.compare\.run: expected null when the "
                                         "velocity branch does not run"):
        compose(["branches=[tremor]", "velocity.compare.run=results/default"])


def test_workflow_compares_a_second_model_with_a_finished_run(tmp_path_factory):
    """Two runs: a base run, then a noisier copy of its model compared with it (products,
    log line, report section)."""
    import json

    from workflow_runs import FAST, snakemake

    settings = [*FAST, "velocity.methods=[kmeans]", "velocity.kmeans.n_clusters=4"]
    workdir = tmp_path_factory.mktemp("compare")
    proc = snakemake(workdir, settings, run="base")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = snakemake(workdir, [*settings, "data.velocity.example.noise=0.15",
                               "velocity.compare.run=results/base"], run="other")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = workdir / "results" / "other"
    metrics = json.loads((out / "velocity" / "compare" / "metrics.json").read_text())
    assert metrics["model"] == "embedded example model"
    assert metrics["run"] == "results/base/velocity/kmeans/clusters.nc"
    assert 0.8 < metrics["fraction_same"] <= 1 and metrics["n_compared"] > 0
    assert "shared nodes in the same cluster" in (out / "logs" / "velocity_compare.log"
                                                  ).read_text()
    assert (out / "velocity" / "compare" / "agreement.png").stat().st_size > 0
    assert "<section id='velocity-compare'>" in (out / "report.html").read_text()
