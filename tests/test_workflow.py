"""End-to-end runs of the Snakemake workflow (small settings, real processes)."""

import json
import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from omegaconf import OmegaConf
from workflow_runs import FAST, TREMOR_FAST, command, completed_run, snakemake, stage_jobs


@pytest.fixture(scope="module")
def example_run(tmp_path_factory) -> Path:
    return completed_run(tmp_path_factory, FAST)


def test_run_writes_every_documented_output(example_run):
    expected = [
        "config.yaml", "report.html", "velocity/model.nc", "velocity/profiles.nc",
        "velocity/elbow/elbow.csv", "velocity/elbow/choice.json", "velocity/elbow/elbow.png",
        *(f"velocity/{m}/{f}" for m in ("kmeans", "som") for f in (
            "cluster_map.csv", "clusters.nc", "metrics.json", "model.pkl", "clusters.png",
            "cluster_map.png")),
        "velocity/som/som_maps.png",
        "logs/velocity_elbow.log", "logs/benchmarks/velocity_elbow.tsv", "provenance.json",
    ]
    missing = [p for p in expected if not (example_run / p).is_file()]
    assert not missing
    assert (example_run / "velocity/kmeans/seisgo").is_dir()
    leftovers = list(example_run.parent.rglob("*.tmp"))
    assert not leftovers


def test_run_folder_links_to_the_keyed_stage_store(example_run):
    link = example_run / "velocity/kmeans/clusters.nc"
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    target = link.resolve()
    stages = example_run.parent / "stages"
    assert target.parent.parent == (stages / "velocity_kmeans").resolve()
    assert len(target.parent.name) == 12  # the stage key
    assert (target.parent / "provenance.json").is_file()


def test_provenance_record_of_the_run(example_run):
    record = json.loads((example_run / "provenance.json").read_text())
    assert record["run"] == "test" and record["seed"] == 0
    assert record["config"]["velocity"]["elbow"]["nrange"] == [2, 3, 4, 5, 6, 7, 8]
    assert "velocity.kmeans.n_init=3" in record["overrides"]
    assert record["versions"]["numpy"] == np.__version__
    assert record["versions"]["snakemake"] and record["versions"]["tslearn"]
    assert record["host"] and record["python"]
    assert record["start"] <= record["end"] <= record["recorded"]
    stages = record["stages"]
    assert set(stages) == {"velocity_profiles", "velocity_elbow",
                           "velocity_kmeans", "velocity_som", "velocity_kmeans_figures",
                           "velocity_som_figures"}
    kmeans = (example_run / "velocity/kmeans/clusters.nc").resolve()
    assert stages["velocity_kmeans"]["key"] == kmeans.parent.name
    assert stages["velocity_kmeans"]["seconds"] > 0
    assert record["products"]["velocity/kmeans/clusters.nc"].endswith(
        f"velocity_kmeans/{kmeans.parent.name}/clusters.nc")


def test_netcdf_outputs_carry_their_provenance(example_run):
    record = json.loads((example_run / "provenance.json").read_text())
    with xr.open_dataset(example_run / "velocity/kmeans/clusters.nc") as ds:
        attrs = dict(ds.attrs)
    assert attrs["provenance_stage"] == "velocity_kmeans"
    assert attrs["provenance_key"] == record["stages"]["velocity_kmeans"]["key"]
    assert attrs["provenance_seed"] == "0"
    assert json.loads(attrs["provenance_config"])["kmeans"]["n_init"] == 3
    assert json.loads(attrs["provenance_versions"])["xarray"] == xr.__version__
    assert attrs["provenance_start"] == record["stages"]["velocity_kmeans"]["start"]
    assert attrs["Conventions"].startswith("CF")  # the product's own attributes are kept


def test_resolved_config_records_the_overrides(example_run):
    cfg = OmegaConf.load(example_run / "config.yaml")
    assert cfg.run == "test"
    assert list(cfg.velocity.elbow.nrange) == [2, 3, 4, 5, 6, 7, 8]
    assert cfg.velocity.kmeans.random_state == 0


def test_kmeans_products_agree_with_each_other(example_run):
    km = example_run / "velocity/kmeans"
    choice = json.loads((example_run / "velocity/elbow/choice.json").read_text())
    table = pd.read_csv(km / "cluster_map.csv")
    assert list(table.columns) == ["lat", "lon", "cluster"]
    k = choice["n_clusters"]
    assert sorted(table.cluster.unique()) == list(range(1, k + 1))
    with xr.open_dataset(km / "clusters.nc") as ds:
        assert ds.cluster_label.dims == ("latitude", "longitude")
        assert ds.centroid.dims == ("cluster", "depth")
        assert ds.attrs["Conventions"].startswith("CF")
        assert int(ds.cluster_size.sum()) == len(table)
        assert np.isnan(ds.cluster_label.values).any()  # NaN nodes of the example
        means = ds.centroid.mean("depth").values
        assert np.all(np.diff(means) > 0)  # clusters numbered by mean velocity
    (pk,) = (km / "seisgo").glob("kmean_clusters_k*_results.pk")
    assert pk.name == f"kmean_clusters_k{k}_results.pk"
    with open(pk, "rb") as fh:
        record = pickle.load(fh)
    assert set(record) == {"method", "source", "tag", "depth", "model", "pred", "para",
                           "cluster_map"}
    assert record["method"] == "k-means" and len(record["pred"]) == k
    assert list(record["para"]["nrange"]) == [2, 3, 4, 5, 6, 7, 8]
    pd.testing.assert_frame_equal(record["cluster_map"], table)
    metrics = json.loads((km / "metrics.json").read_text())
    assert metrics["ari_vs_truth"] > 0.9


def test_som_products(example_run):
    som = example_run / "velocity/som"
    (pk,) = (som / "seisgo").glob("som_clusters_k*x*_results.pk")
    with open(pk, "rb") as fh:
        record = pickle.load(fh)
    nx, ny = record["para"]["nx"], record["para"]["ny"]
    table = pd.read_csv(som / "cluster_map.csv")
    assert table.cluster.between(1, nx * ny).all()
    assert len(record["pred"]) == table.cluster.nunique()
    with xr.open_dataset(som / "clusters.nc") as ds:
        assert ds.som_hits.shape == (nx, ny)
        assert int(ds.som_hits.sum()) == len(table)


def test_report_embeds_every_figure(example_run):
    html = (example_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6
    assert "Elbow scan" in html and "Resolved configuration" in html


def test_rerun_with_same_config_has_nothing_to_do(example_run):
    proc = snakemake(example_run.parents[1], FAST, "-n")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changed_parameter_reruns_only_downstream(example_run):
    proc = snakemake(example_run.parents[1], [*FAST, "velocity.som.sigma=0.5"], "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stage_jobs(proc.stdout) == {"velocity_som": 1, "velocity_som_figures": 1}


def test_changed_profile_spacing_reruns_profiles_and_after_not_before(example_run):
    proc = snakemake(example_run.parents[1], [*FAST, "velocity.profiles.dz=4"], "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stage_jobs(proc.stdout) == {
        "velocity_profiles": 1, "velocity_elbow": 1, "velocity_kmeans": 1, "velocity_som": 1,
        "velocity_kmeans_figures": 1, "velocity_som_figures": 1}


def test_new_pickle_stems_rename_the_run_files_without_rerunning_a_stage(example_run):
    """figbase only names files: a run that changes it shares every stage and shows the
    seisgo pickles under its stems."""
    workdir = example_run.parents[1]
    overrides = [*FAST, "velocity.kmeans.figbase=mine", "velocity.som.figbase=ours"]
    proc = snakemake(workdir, overrides, run="stems")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stage_jobs(proc.stdout + proc.stderr) == {}
    assert "link_velocity_kmeans" in proc.stdout + proc.stderr
    k = json.loads((example_run / "velocity/elbow/choice.json").read_text())["n_clusters"]
    run = workdir / "results" / "stems"
    for method, stem, label in (("kmeans", "mine", k), ("som", "ours", None)):
        theirs, = (example_run / f"velocity/{method}/seisgo").glob("[!.]*")
        mine, = (run / f"velocity/{method}/seisgo").glob("[!.]*")
        assert mine.name == theirs.name.replace(theirs.name.split("_")[0], stem, 1)
        if label is not None:
            assert mine.name == f"{stem}_clusters_k{label}_results.pk"
        assert mine.is_symlink() and mine.resolve() == theirs.resolve()


def test_bad_configuration_stops_before_any_rule(tmp_path):
    proc = snakemake(tmp_path, ["velocity.kmeans.nclusters=3"])
    assert proc.returncode != 0
    assert "Unknown configuration key 'velocity.kmeans.nclusters'" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_invalid_sweep_stops_before_any_rule(tmp_path):
    proc = snakemake(tmp_path, FAST, sweep=["velocity.kmeans.n_init=range(1,"])
    assert proc.returncode != 0
    assert "Invalid override 'velocity.kmeans.n_init=range(1,'" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_bad_input_leaves_no_partial_output(tmp_path):
    model = tmp_path / "flat.nc"
    xr.Dataset({"vs": (("latitude", "longitude"), np.ones((3, 4)))},
               coords={"latitude": [1.0, 2, 3], "longitude": [1.0, 2, 3, 4]}).to_netcdf(model)
    proc = snakemake(tmp_path, ["branches=[velocity]", f"data.velocity.path={model}"],
                     run="bad")
    assert proc.returncode != 0
    assert "seiscluster:" in proc.stderr
    assert not list((tmp_path / "results").rglob("model.nc"))
    assert not list((tmp_path / "results").rglob("*.tmp"))


@pytest.mark.shared_data
def test_cascadia_runs_through_the_pipeline(shared_data, tmp_path):
    # conf/data/cascadia.yaml names ../shared relative to the repository root; this run's
    # working directory is a temporary folder, so the path is given absolutely.
    path = shared_data / "velocity/Cascadia-ANT+RF-Delph2018.r0.1.nc"
    overrides = ["branches=[velocity]", "data=cascadia", f"data.velocity.path={path}",
                 "velocity.profiles.zrange=[0,60]", "velocity.profiles.dz=2",
                 "velocity.elbow.nrange=[2,3,4,5,6,7,8,9,10]", "velocity.som.niteration=5000"]
    proc = snakemake(tmp_path, overrides, run="cascadia")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results/cascadia/velocity"
    with xr.open_dataset(out / "profiles.nc") as prof:
        assert prof.sizes["depth"] == 31
        assert prof.attrs["velocity_variable"] == "vs"
    table = pd.read_csv(out / "kmeans/cluster_map.csv")
    assert table.lat.between(40, 49).all() and table.lon.between(-124.8, -120).all()


@pytest.mark.shared_data
def test_global_model_with_fill_value_runs(shared_data, tmp_path):
    path = shared_data / "velocity/S362ANI+M_vs.nc"
    overrides = ["branches=[velocity]", "data=s362ani", f"data.velocity.path={path}",
                 "velocity.kmeans.n_clusters=6",
                 "velocity.profiles.spacing=2",
                 "velocity.som.niteration=5000"]
    proc = snakemake(tmp_path, overrides, run="global")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with xr.open_dataset(tmp_path / "results/global/velocity/profiles.nc") as prof:
        assert prof.attrs["velocity_variable"] == "v"
        assert prof.sizes["profile"] == 46 * 91  # every other node of the 91 x 181 grid
    assert not (tmp_path / "results/global/velocity/elbow").exists()


@pytest.mark.parametrize("method", ["kmeans", "som"])
def test_same_config_and_seed_give_identical_labels(example_run, tmp_path, method):
    from seiscluster.config import compose, to_container
    from seiscluster.velocity import stages

    cfg = compose(FAST)
    fit = stages.fit_kmeans if method == "kmeans" else stages.fit_som
    section = {"kmeans": {**to_container(cfg.velocity.kmeans), "n_clusters": 5}} \
        if method == "kmeans" else {"som": to_container(cfg.velocity.som)}
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        fit(profiles=str(example_run / "velocity/profiles.nc"),
            cluster_map=str(out / "map.csv"), clusters=str(out / "clusters.nc"),
            model=str(out / "model.pkl"), seisgo=str(out / "seisgo"),
            metrics=str(out / "metrics.json"), source="vmodel", tag="v", **section)
    first, second = (pd.read_csv(tmp_path / a / "map.csv") for a in ("a", "b"))
    pd.testing.assert_frame_equal(first, second)
    with xr.open_dataset(tmp_path / "a/clusters.nc") as a, \
            xr.open_dataset(tmp_path / "b/clusters.nc") as b:
        xr.testing.assert_equal(a.drop_attrs(), b.drop_attrs())


@pytest.fixture(scope="module")
def tremor_run(tmp_path_factory) -> Path:
    return completed_run(tmp_path_factory, [*TREMOR_FAST, "tremor.consensus.seeds=3"])


def test_tremor_run_writes_every_documented_output(tremor_run):
    tre = tremor_run / "tremor"
    expected = [
        "example/truth.csv", "skipped_windows.csv", "pretrain/best.ckpt", "pretrain/losses.csv",
        "kscan/embeddings.nc", "kscan/kscan.csv", "kscan/choice.json", "dec/labels.csv",
        "dec/assignments.nc", "dec/model.ckpt", "dec/history.csv", "dec/metrics.json",
        *(f"figures/{name}.png" for name in (
            "overview", "spectrogram_examples", "losses", "kscan", "tsne",
            "clusters_over_time", "cluster_spectrograms", "reconstructions")),
        "consensus/agreement.csv", "consensus/metrics.json", "consensus/agreement.png",
        *(f"features/consensus/{name}" for name in ("agreement.csv", "metrics.json",
                                                    "agreement.png")),
    ]
    assert not [p for p in expected if not (tre / p).is_file()]
    assert (tre / "spectrograms.zarr").is_dir()
    assert not list(tremor_run.rglob("*.tmp"))


def test_tremor_products_agree(tremor_run):
    tre = tremor_run / "tremor"
    with xr.open_zarr(tre / "spectrograms.zarr") as ds:
        assert ds.spectrogram.dims == ("window", "channel", "frequency", "time")
        assert ds.sizes["frequency"] == 96 and ds.sizes["time"] == 128
        n_valid = int(ds.valid.sum())
    labels = pd.read_csv(tre / "dec/labels.csv")
    assert len(labels) == n_valid
    k = json.loads((tre / "kscan/choice.json").read_text())["n_clusters"]
    assert labels.cluster.between(1, k).all()
    skipped = pd.read_csv(tre / "skipped_windows.csv")
    assert list(skipped.columns) == ["window_start", "channel", "missing_fraction", "reason"]
    assert n_valid + len(skipped) == 72  # 3 days of hourly windows: kept or listed
    features = pd.read_csv(tre / "features/labels.csv")
    assert len(features) == n_valid and list(features.columns) == [
        "window_start", "cluster", "distance", "refined", "change_time"]
    primary = pd.read_csv(tre / "labels.csv")
    assert set(primary["representation"]) == {"features"}
    assert primary["cluster"].tolist() == features["cluster"].tolist()
    html = (tremor_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 11  # the features' k scan, 2 consensus
    assert "<section id='tremor-consensus'>" in html
    assert "<section id='tremor-features-consensus'>" in html
    for folder in ("consensus", "features/consensus"):
        agreement = pd.read_csv(tre / folder / "agreement.csv")
        assert len(agreement) == n_valid and agreement["agreement"].between(0, 1).all()
    assert "id='tremor-features'" in html


@pytest.mark.shared_data
def test_real_record_spectrograms_through_the_workflow(shared_data, tmp_path):
    path = shared_data / "waveforms/MV.MBWH..EHZ.2001-02-28T13.mseed"
    proc = snakemake(tmp_path, ["experiment=montserrat", f"data.waveforms.files=[{path}]"],
                     "results/montserrat/tremor/figures/overview.png",
                     "results/montserrat/tremor/spectrograms.zarr", run="montserrat")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with xr.open_zarr(tmp_path / "results/montserrat/tremor/spectrograms.zarr") as ds:
        assert ds.sizes["window"] == 10
        assert str(ds.channel.values[0]) == "MV.MBWH..EHZ"


def _wait_for(folder: Path, pattern: str, proc: subprocess.Popen, timeout: float = 900):
    """The first file matching ``pattern`` under ``folder``, waiting while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no {pattern} under {folder} (snakemake exit code {proc.poll()})")


@pytest.mark.slow
def test_interrupted_training_finishes_on_rerun_without_redoing_stages(tmp_path):
    overrides = [*TREMOR_FAST, "tremor.pretrain.max_epochs=60", "tremor.pretrain.patience=60"]
    stages = tmp_path / "results/stages"
    with subprocess.Popen(command(tmp_path, overrides), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True) as proc:
        try:
            _wait_for(stages, "tremor_pretrain/*/checkpoints/last.ckpt", proc)
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C during the training
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert not list(stages.glob("tremor_pretrain/*/best.ckpt"))
    finished = {p: p.stat().st_mtime_ns for stage in ("tremor_example", "tremor_spectrograms")
                for p in stages.glob(f"{stage}/*/*") if p.is_file()}
    assert any(p.name == "provenance.json" for p in finished)

    rerun = snakemake(tmp_path, overrides)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not redone
    (log,) = stages.glob("tremor_pretrain/*/tremor_pretrain.log")
    assert "resuming the pretraining" in log.read_text()
    run = tmp_path / "results/test"
    labels = pd.read_csv(run / "tremor/dec/labels.csv")
    assert len(labels) > 0 and labels.cluster.min() >= 1
    assert (run / "report.html").is_file() and (run / "provenance.json").is_file()
    assert not list((tmp_path / "results").rglob("*.tmp"))


@pytest.mark.slow
def test_agglomerative_and_consensus_run_through_the_workflow(tmp_path_factory):
    """velocity.methods=[kmeans,agglomerative] with neighbouring nodes only and consensus
    over 3 seeds (about a minute on two shared cores)."""
    run = completed_run(tmp_path_factory, [
        "branches=[velocity]", "data.velocity.example.n_lat=12",
        "data.velocity.example.n_lon=14", "data.velocity.example.depth_step=4",
        "velocity.kmeans.n_clusters=5", "velocity.kmeans.n_init=2",
        "velocity.methods=[kmeans,agglomerative]", "velocity.agglomerative.n_clusters=5",
        "velocity.agglomerative.connectivity=neighbours", "velocity.consensus.seeds=3"])
    velocity = run / "velocity"
    for name in ("cluster_map.csv", "clusters.nc", "metrics.json", "model.pkl",
                 "clusters.png", "cluster_map.png", "dendrogram.png"):
        assert (velocity / "agglomerative" / name).is_file(), name
    for name in ("consensus.nc", "metrics.json", "low_agreement.csv", "consensus_map.png"):
        assert (velocity / "consensus" / name).is_file(), name
    metrics = json.loads((velocity / "consensus/metrics.json").read_text())
    assert set(metrics["methods"]) == {"kmeans", "agglomerative"}
    assert json.loads((velocity / "agglomerative/metrics.json").read_text())[
        "connectivity"] == "neighbours"
    page = (run / "report.html").read_text()
    for ident in ("velocity-agglomerative", "velocity-consensus"):
        assert f"<section id='{ident}'>" in page
    assert page.count("<img") == 6  # 2 k-means, 3 agglomerative figures, consensus map
