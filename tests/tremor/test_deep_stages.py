"""Deep-clustering stages end to end on small spectrogram stacks (tiny model, few epochs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.tremor import deep_stages as st

REGIMES = np.array(["background", "harmonic_tremor", "earthquake_swarm"])
MODEL = dict(channels=[4, 8], kernels=[[3, 3], [3, 3]], strides=[2, 2], latent_dim=4,
             activation="elu")
PRETRAIN = dict(val_fraction=0.2, split_seed=46, batch_size=16, lr=3e-3, lr_decay_rate=0.5,
                lr_decay_steps=1000, max_epochs=20, patience=30)
KSCAN = dict(k_min=2, k_max=5, n_init=3, criterion="calinski_harabasz", n_clusters=None)
DEC = dict(alpha=1.0, update_interval=5, kl_weight=0.1, reconstruction_weight=0.0, lr=0.01,
           momentum=0.9, batch_size=16, maxiter=40, tol=1e-4)
TRAINER = dict(accelerator="cpu", devices=1, precision="32-true", deterministic=True,
               compile=False, channels_last=True, num_threads=None)


def make_stack(path: Path, n: int = 45, shape: tuple[int, int] = (20, 24),
               channels: tuple[str, ...] = ("XX.AAA..HHZ", "XX.AAA..HHE"),
               invalid: tuple[tuple[int, int], ...] = ((3, 1), (10, 1)), seed: int = 0,
               truth: Path | None = None) -> xr.Dataset:
    """A spectrogram stack per the data contract: three regimes (a band at three heights)."""
    rng = np.random.default_rng(seed)
    nf, nt = shape
    regime = np.arange(n) % 3
    x = rng.normal(0, 0.3, (n, len(channels), nf, nt)).astype(np.float32)
    rows = np.arange(nf)[:, None]
    for i in range(n):
        centre = (0.2, 0.5, 0.8)[regime[i]] * nf
        x[i] += (np.exp(-0.5 * ((rows - centre) / 2.0) ** 2) * (1 + 0.5 * regime[i]))
    valid = np.ones((n, len(channels)), bool)
    for w, c in invalid:
        valid[w, c] = False
        x[w, c] = np.nan
    window = pd.date_range("2021-03-12", periods=n, freq="h").to_numpy()
    # what the amplitude below the clusters over time reads (the spectrogram stage's record)
    settings = json.dumps({
        "spectrogram": {"window_length": 3600.0, "window_step": 3600.0, "fmin": 1.0, "fmax": 4.0},
        "derived": {"frequency_edges": np.linspace(0.92, 4.08, nf + 1).tolist()}})
    ds = xr.Dataset(
        {"spectrogram": (("window", "channel", "frequency", "time"), x),
         "valid": (("window", "channel"), valid)},
        coords={"window": window, "channel": list(channels),
                "frequency": np.linspace(1, 4, nf), "time": (np.arange(nt) + 0.5) * 3600 / nt},
        attrs={"settings": settings, "power": "log10", "norm_mean": "none", "norm_std": "none"},
    )
    ds.chunk({"window": 16}).to_zarr(path, mode="w", zarr_format=2, consolidated=True)
    if truth is not None:
        pd.DataFrame({"window_start": pd.DatetimeIndex(window).strftime("%Y-%m-%dT%H:%M:%S"),
                      "regime": REGIMES[regime]}).to_csv(truth, index=False)
    return ds


def run_pretrain(spec: Path, out: Path, channels: str = "stack", **pre) -> None:
    st.pretrain(spectrograms=str(spec), checkpoint_dir=str(out / "ckpt"),
                best=str(out / "best.ckpt"), losses=str(out / "losses.csv"), model=MODEL,
                pretrain={**PRETRAIN, **pre}, trainer=TRAINER, channels=channels, seed=0,
                threads=1)


def run_embed(spec: Path, out: Path, channels: str = "stack", cluster: dict | None = None,
              **ks) -> None:
    st.embed_kscan(spectrograms=str(spec), best=str(out / "best.ckpt"),
                   embeddings=str(out / "emb.nc"), scan=str(out / "scan.csv"),
                   choice=str(out / "choice.json"), clusters=str(out / "clusters"),
                   kscan={**KSCAN, **ks}, cluster=cluster, channels=channels, seed=0,
                   threads=1)


def run_finetune(spec: Path, out: Path, channels: str = "stack", tag: str = "") -> None:
    st.finetune(spectrograms=str(spec), best=str(out / "best.ckpt"),
                embeddings=str(out / "emb.nc"), choice=str(out / "choice.json"),
                labels=str(out / f"labels{tag}.csv"), assignments=str(out / f"asg{tag}.nc"),
                final_model=str(out / f"dec{tag}.pt"), history=str(out / f"hist{tag}.csv"),
                dec=DEC, trainer=TRAINER, channels=channels, seed=0, threads=1)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stack")
    make_stack(root / "spec.zarr", truth=root / "truth.csv")
    return root / "spec.zarr"


@pytest.fixture(scope="module")
def pipeline(spec, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run_pretrain(spec, out)
    run_embed(spec, out)
    run_finetune(spec, out)
    figures = {name: str(out / f"{name}.png") for name in (
        "loss_figure", "kscan_figure", "tsne_figure", "timeline_figure",
        "reconstruction_figure", "spectra_figure")}
    st.deep_figures(
        spectrograms=str(spec), embeddings=str(out / "emb.nc"), assignments=str(out / "asg.nc"),
        labels=str(out / "labels.csv"), history=str(out / "hist.csv"),
        losses=str(out / "losses.csv"), scan=str(out / "scan.csv"), final_model=str(out / "dec.pt"),
        best=str(out / "best.ckpt"), metrics=str(out / "metrics.json"), **figures,
        tsne={"perplexity": 30.0},
        plot={"events": [{"time": "2021-03-13T02:00:00", "label": "onset"}], "dpi": 50},
        channels="stack", truth=str(spec.parent / "truth.csv"), seed=0,
    )
    return out


def test_pipeline_outputs(pipeline):
    out = pipeline
    losses = pd.read_csv(out / "losses.csv")
    assert list(losses.columns) == ["epoch", "train_loss", "val_loss", "lr", "seconds"]
    assert list(losses["epoch"]) == list(range(20)) and losses["val_loss"].notna().all()
    scan = pd.read_csv(out / "scan.csv")
    assert list(scan.columns) == ["k", "calinski_harabasz", "silhouette", "davies_bouldin",
                                  "inertia", "stability", "gap", "gap_sk"]
    assert list(scan["k"]) == [2, 3, 4, 5]
    assert scan["stability"].between(-1, 1).all() and (scan["gap_sk"] >= 0).all()
    choice = json.loads((out / "choice.json").read_text())
    k = choice["n_clusters"]
    assert {"n_clusters", "criterion", "rule", "criterion_k", "message", "scores",
            "warnings"} <= set(choice)
    assert choice["rule"] == "stable_criterion"
    assert choice["scores"]["stability"] == scan.loc[scan.k == k, "stability"].item()
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels.columns) == ["window_start", "cluster", "max_assignment"]
    assert len(labels) == 43  # windows 3 and 10 are invalid on one channel: dropped
    assert labels["cluster"].between(1, k).all()
    with xr.open_dataset(out / "asg.nc") as asg, xr.open_dataset(out / "emb.nc") as emb:
        assert asg["assignment"].dims == ("window", "cluster")
        assert emb["embedding"].dims == ("window", "latent")
        assert emb.sizes["latent"] == 4 and asg.sizes["cluster"] == k
        assert not asg["valid"].values[[3, 10]].any()
        assert np.isnan(asg["assignment"].values[3]).all()
        q = asg["assignment"].values[asg["valid"].values]
        np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-5)
    hist = pd.read_csv(out / "hist.csv")
    assert {"iteration", "delta_label", "kl_loss", "reconstruction_loss"} <= set(hist.columns)
    for name in ("loss_figure", "kscan_figure", "tsne_figure", "timeline_figure",
                 "reconstruction_figure", "spectra_figure"):
        assert (out / f"{name}.png").stat().st_size > 1000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_with_truth"] == 43 and metrics["ari"] > 0.9
    assert not (out / "dec_last_good.pt").exists()
    with xr.open_dataset(out / "asg.nc") as asg, xr.open_dataset(out / "emb.nc") as emb:
        valid = asg["valid"].values
        changed = np.mean(asg["label"].values[valid] != emb["kmeans_label"].values[valid])
    assert metrics["changed_fraction"] == pytest.approx(changed)  # same power order here
    assert isinstance(metrics["warnings"], list)
    assert ("dec_unchanged" in [w["code"] for w in metrics["warnings"]]) == (
        metrics["changed_fraction"] < 0.01)


def test_clusters_are_numbered_by_mean_power(pipeline, spec):
    labels = pd.read_csv(pipeline / "labels.csv")
    with xr.open_zarr(spec) as ds:
        keep = ds["valid"].values.all(axis=1)
        power = ds["spectrogram"].values[keep].mean(axis=(1, 2, 3))
    means = pd.Series(power).groupby(labels["cluster"].to_numpy()).mean()
    assert means.is_monotonic_increasing


def test_final_model_reproduces_the_assignments(pipeline, spec):
    from seiscluster.tremor.datamodule import as_tensor, load_samples
    from seiscluster.tremor.dec import load_dec, predict

    samples = load_samples(spec, "stack")
    model, ckpt = load_dec(pipeline / "dec.pt")
    _, q = predict(model, as_tensor(samples.x, False))
    labels = pd.read_csv(pipeline / "labels.csv")
    np.testing.assert_array_equal(q.argmax(1).numpy() + 1, labels["cluster"].to_numpy())
    assert ckpt["dec"]["update_interval"] == DEC["update_interval"]


def test_same_seed_same_labels(pipeline, spec, tmp_path):
    for name in ("best.ckpt",):
        (tmp_path / name).write_bytes((pipeline / name).read_bytes())
    run_embed(spec, tmp_path)
    run_finetune(spec, tmp_path)
    assert (tmp_path / "labels.csv").read_text() == (pipeline / "labels.csv").read_text()
    with xr.open_dataset(tmp_path / "asg.nc") as a, xr.open_dataset(pipeline / "asg.nc") as b:
        np.testing.assert_array_equal(a["assignment"].values, b["assignment"].values)


@pytest.mark.parametrize("method", ["gmm", "agglomerative"])
def test_cluster_method_starts_dec(pipeline, spec, tmp_path, method):
    (tmp_path / "best.ckpt").write_bytes((pipeline / "best.ckpt").read_bytes())
    run_embed(spec, tmp_path, cluster={"method": method})
    run_finetune(spec, tmp_path)
    choice = json.loads((tmp_path / "choice.json").read_text())
    k = choice["n_clusters"]
    assert choice["method"] == method and choice["cluster"]["method"] == method
    scan = pd.read_csv(tmp_path / "scan.csv")
    assert ({"bic", "aic"} <= set(scan)) == (method == "gmm")
    assert (tmp_path / "clusters" / "dendrogram.png").exists() == (method == "agglomerative")
    with xr.open_dataset(tmp_path / "emb.nc") as emb:
        assert emb.attrs["cluster_method"] == method
        valid = emb["valid"].values
        labels = emb["cluster_label"].values[valid]
        assert set(labels) == set(range(1, k + 1))
        assert emb["cluster_centroid"].shape == (k, 4)
        if method == "gmm":
            p = emb["cluster_probability"].values[valid]
            np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
            np.testing.assert_array_equal(p.argmax(1) + 1, labels)
    assert pd.read_csv(tmp_path / "labels.csv")["cluster"].between(1, k).all()


def test_separate_mode_has_one_sample_per_valid_channel_window(spec, tmp_path):
    run_pretrain(spec, tmp_path, channels="separate", max_epochs=1)
    run_embed(spec, tmp_path, channels="separate", n_clusters=3)
    run_finetune(spec, tmp_path, channels="separate")
    labels = pd.read_csv(tmp_path / "labels.csv")
    assert list(labels.columns) == ["window_start", "channel", "cluster", "max_assignment"]
    assert len(labels) == 2 * 45 - 2
    assert set(labels["channel"]) == {"XX.AAA..HHZ", "XX.AAA..HHE"}
    with xr.open_dataset(tmp_path / "emb.nc") as emb:
        assert emb["embedding"].dims == ("window", "channel", "latent")
        assert int(emb["valid"].sum()) == 88


def test_interrupted_pretraining_resumes_to_the_same_result(spec, tmp_path, monkeypatch):
    from seiscluster.tremor.autoencoder import EpochLog

    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_pretrain(spec, whole, max_epochs=4)
    original = EpochLog.on_train_epoch_end

    def crash(self, trainer, pl_module):
        original(self, trainer, pl_module)
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated interruption")

    monkeypatch.setattr(EpochLog, "on_train_epoch_end", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        run_pretrain(spec, parts, max_epochs=4)
    assert (parts / "ckpt" / "last.ckpt").exists() and not (parts / "best.ckpt").exists()
    monkeypatch.setattr(EpochLog, "on_train_epoch_end", original)
    run_pretrain(spec, parts, max_epochs=4)
    a = torch.load(whole / "best.ckpt", weights_only=False)
    b = torch.load(parts / "best.ckpt", weights_only=False)
    assert a["epoch"] == b["epoch"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    la, lb = pd.read_csv(whole / "losses.csv"), pd.read_csv(parts / "losses.csv")
    assert list(lb["epoch"]) == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(la[["epoch", "train_loss", "val_loss", "lr"]],
                                  lb[["epoch", "train_loss", "val_loss", "lr"]])
    # a rerun of the completed pretraining reuses it; a new setting starts afresh
    stamp = (parts / "ckpt" / "last.ckpt").stat().st_mtime_ns
    run_pretrain(spec, parts, max_epochs=4)
    assert (parts / "ckpt" / "last.ckpt").stat().st_mtime_ns == stamp
    run_pretrain(spec, parts, max_epochs=1, lr=1e-3)
    assert list(pd.read_csv(parts / "losses.csv")["epoch"]) == [0]


@pytest.mark.parametrize(("sections", "match"), [
    ({"model": {**MODEL, "channels": []}}, "tremor.model.channels"),
    ({"model": {**MODEL, "kernels": [[3, 3]]}}, "tremor.model.kernels"),
    ({"model": {**MODEL, "strides": [2, 0]}}, "tremor.model.strides"),
    ({"model": {**MODEL, "activation": "swish"}}, "tremor.model.activation"),
    ({"model": {**MODEL, "latent_dim": 0}}, "tremor.model.latent_dim"),
    ({"pretrain": {**PRETRAIN, "val_fraction": 1.0}}, "tremor.pretrain.val_fraction"),
    ({"pretrain": {**PRETRAIN, "lr": -1}}, "tremor.pretrain.lr"),
    ({"pretrain": {**PRETRAIN, "max_epochs": 0}}, "tremor.pretrain.max_epochs"),
    ({"pretrain": {**PRETRAIN, "batch_size": 2.5}}, "tremor.pretrain.batch_size"),
    ({"kscan": {**KSCAN, "k_min": 1}}, "tremor.kscan.k_min"),
    ({"kscan": {**KSCAN, "k_max": 1, "k_min": 2}}, "tremor.kscan.k_max"),
    ({"kscan": {**KSCAN, "criterion": "elbow"}}, "tremor.kscan.criterion"),
    ({"kscan": {**KSCAN, "n_clusters": 1}}, "tremor.kscan.n_clusters"),
    ({"dec": {**DEC, "alpha": 0}}, "tremor.dec.alpha"),
    ({"dec": {**DEC, "tol": -1}}, "tremor.dec.tol"),
    ({"dec": {**DEC, "momentum": 1.0}}, "tremor.dec.momentum"),
    ({"dec": {**DEC, "kl_weight": 0.0}}, "tremor.dec.kl_weight"),
    ({"dec": {**DEC, "update_interval": 0}}, "tremor.dec.update_interval"),
    ({"trainer": {**TRAINER, "accelerator": "tpu"}}, "trainer.accelerator"),
    ({"trainer": {**TRAINER, "devices": 2}}, "trainer.devices"),
    ({"trainer": {**TRAINER, "precision": "8-bit"}}, "trainer.precision"),
    ({"trainer": {**TRAINER, "compile": "maybe"}}, "trainer.compile"),
    ({"trainer": {**TRAINER, "num_threads": 0}}, "trainer.num_threads"),
])
def test_bad_config_is_an_input_error(sections, match):
    with pytest.raises(InputError, match=match.replace(".", r"\.")):
        check_sections(**sections)


def check_sections(**sections):
    """The stages' sections checked as the stages check them (seiscluster.config.section)."""
    paths = {"model": "tremor.model", "pretrain": "tremor.pretrain", "kscan": "tremor.kscan",
             "dec": "tremor.dec", "trainer": "trainer"}
    for name, values in sections.items():
        section(paths[name], values)


def test_good_config_passes():
    check_sections(model=MODEL, pretrain=PRETRAIN, kscan=KSCAN, dec=DEC, trainer=TRAINER)


def test_enum_config_values_are_accepted():
    from enum import Enum

    class Accelerator(str, Enum):
        cpu = "cpu"

    check_sections(trainer={**TRAINER, "accelerator": Accelerator.cpu})
    with pytest.raises(InputError, match=r"trainer\.devices"):
        check_sections(trainer={**TRAINER, "accelerator": Accelerator.cpu, "devices": 0})


def test_runtime_input_errors(spec, tmp_path, pipeline):
    with pytest.raises(InputError, match=r"too small for tremor\.model\.strides"):
        st.pretrain(spectrograms=str(spec), checkpoint_dir=str(tmp_path / "c"),
                    best=str(tmp_path / "b"), losses=str(tmp_path / "l"),
                    model={**MODEL, "channels": [2] * 5, "kernels": [[3, 3]] * 5,
                           "strides": [2] * 5}, pretrain=PRETRAIN, trainer=TRAINER,
                    channels="stack", seed=0)
    (tmp_path / "best.ckpt").write_bytes((pipeline / "best.ckpt").read_bytes())
    with pytest.raises(InputError, match=r"k_max \(50\).*43"):
        run_embed(spec, tmp_path, k_max=50)
    with pytest.raises(InputError, match="channels"):
        run_embed(spec, tmp_path, channels="mixed")
    empty = tmp_path / "empty.zarr"
    make_stack(empty, n=4, invalid=((0, 0), (1, 1), (2, 0), (3, 1)))
    with pytest.raises(InputError, match="no valid spectrogram"):
        run_embed(empty, tmp_path)
    ds = make_stack(tmp_path / "nan.zarr", n=6, invalid=())
    ds["spectrogram"][2, 0, 0, 0] = np.nan
    ds.to_zarr(tmp_path / "nan2.zarr", zarr_format=2, consolidated=True)
    with pytest.raises(InputError, match="NaN or infinite values in 1"):
        run_embed(tmp_path / "nan2.zarr", tmp_path)
    other = tmp_path / "other.zarr"
    make_stack(other, n=12, shape=(16, 16))
    with pytest.raises(InputError, match="trained on inputs of shape"):
        run_embed(other, tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match=r"trainer\.accelerator"):
            st.pretrain(spectrograms=str(spec), checkpoint_dir=str(tmp_path / "g"),
                        best=str(tmp_path / "b"), losses=str(tmp_path / "l"), model=MODEL,
                        pretrain=PRETRAIN, trainer={**TRAINER, "accelerator": "gpu"},
                        channels="stack", seed=0)


def test_order_by_power_puts_empty_clusters_last():
    x = np.array([3.0, 1.0, 2.0, 1.5]).reshape(4, 1, 1, 1)
    labels = np.array([0, 1, 3, 1])
    order = st.order_by_power(x, labels, 4)
    assert order.tolist() == [1, 3, 0, 2]  # means 1.25, 2, 3, empty


def test_collect_losses_keeps_the_latest_attempt(tmp_path):
    for v, rows in enumerate(([(0, 1.0, None), (0, None, 2.0), (1, 0.9, None)],
                              [(1, None, 1.5), (1, 0.8, None), (2, 0.7, 1.2)])):
        d = tmp_path / f"version_{v}"
        d.mkdir()
        pd.DataFrame(rows, columns=["epoch", "train_loss", "val_loss"]).to_csv(
            d / "metrics.csv", index=False)
    table = st.collect_losses(tmp_path)
    assert table["epoch"].tolist() == [0, 1, 2]
    assert table["train_loss"].tolist() == [1.0, 0.8, 0.7]
    assert table["val_loss"].tolist() == [2.0, 1.5, 1.2]
