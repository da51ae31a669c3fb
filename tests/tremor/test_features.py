"""Interpretable window features: values on built signals, settings, and the stage."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from seiscluster.config import compose, to_container
from seiscluster.errors import InputError
from seiscluster.tremor import features as feat
from seiscluster.tremor import spectrogram as sp
from seiscluster.tremor import stages, synthetic

FS = 50.0


def settings(**kw) -> feat.FeatureSettings:
    return feat.FeatureSettings.from_config(kw)


def frames_of(x: np.ndarray, fs: float = FS, frame_seconds: float = 5.0):
    """Frame PSDs of a signal (half-overlapping hann frames), as the stage computes them."""
    n = round(frame_seconds * fs)
    s = sp.SpectrogramSettings.from_config({"window_length": x.size / fs,
                                            "window_step": x.size / fs, "nperseg": n,
                                            "fmin": 0.5, "fmax": 16.0})
    plan = sp.Plan(s, fs)
    seg = [_segment(x, fs)]
    wf = sp.window_frames(seg, np.array([0], dtype=np.int64), plan, 0.05)
    return wf.frames, wf.frame_ok, plan.bin_frequencies


def _segment(x: np.ndarray, fs: float):
    from seiscluster.tremor.waveforms import Segment

    return Segment("XX.A..HHZ", 0, fs, x.astype(np.float64), 0, 0, round(x.size / fs * 1e9))


@pytest.fixture(scope="module")
def built():
    """One hour of stationary noise, the same with 30 impulsive events, and a pure tone."""
    rng = np.random.default_rng(1)
    n = round(3600 * FS)
    noise = rng.standard_normal(n)
    events = noise.copy()
    onsets = rng.integers(0, n - 500, 30)
    t = np.arange(500) / FS
    for a in onsets:  # a test signal, not a hot path
        events[a:a + 500] += 30 * np.exp(-t / 2.0) * rng.standard_normal(500)
    tone = noise + 20 * np.sin(2 * np.pi * 3.0 * np.arange(n) / FS)
    return {name: frames_of(x) for name, x in
            (("noise", noise), ("events", events), ("tone", tone))}


def values(built, name: str, fs: feat.FeatureSettings) -> pd.Series:
    frames, ok, freqs = built[name]
    v = feat.compute_features(frames, ok, freqs, fs)[0]
    return pd.Series(v, index=[n for n, _, _ in feat.feature_names(fs)])


def test_impulsive_window_has_high_impulsiveness_stationary_low(built):
    fs = settings(sets=["spikiness", "kurtosis", "onset"])
    noise, events = values(built, "noise", fs), values(built, "events", fs)
    for band in fs.band_names()[1:]:
        assert noise[f"p99_p50_{band}"] < np.log10(4.0)  # p99 / median of chi2-like power
        assert events[f"p99_p50_{band}"] > np.log10(30.0)
        assert noise[f"kurtosis_{band}"] < np.log10(4.0)
        assert events[f"kurtosis_{band}"] > np.log10(10.0)
        assert events[f"onset_{band}"] > noise[f"onset_{band}"] + 1.0


def test_levels_ratios_and_flatness(built):
    fs = settings(sets=["level", "ratios", "flatness"])
    noise, tone = values(built, "noise", fs), values(built, "tone", fs)
    bands = fs.band_names()
    # white noise: band power proportional to band width, so each octave doubles
    for a, b in itertools.pairwise(bands):
        assert noise[f"p50_{b}"] - noise[f"p50_{a}"] == pytest.approx(np.log10(2), abs=0.05)
        assert noise[f"dsar_{a}_{b}"] == pytest.approx(-np.log10(2) / 2, abs=0.05)
    assert (noise[[f"p10_{b}" for b in bands]].to_numpy()
            < noise[[f"p90_{b}" for b in bands]].to_numpy()).all()
    assert noise[[f"flatness_{b}" for b in bands]].abs().max() < 0.1
    assert tone["flatness_2-4Hz"] < -0.5  # a spectral line
    assert tone["p50_2-4Hz"] > noise["p50_2-4Hz"] + 1.0


def test_sets_select_the_columns(built):
    frames, ok, freqs = built["noise"]
    for sets in (["level"], ["kurtosis", "onset", "flatness"], ["spikiness", "ratios"]):
        fs = settings(sets=sets)
        x = feat.compute_features(frames, ok, freqs, fs)
        names = [n for n, _, _ in feat.feature_names(fs)]
        assert x.shape == (1, len(names)) and np.isfinite(x).all()
    assert len(feat.feature_names(settings(sets=["level"]))) == 4 * 5  # percentiles x bands


def test_gap_frames_are_left_out(built):
    frames, ok, freqs = built["events"]
    fs = settings()
    gappy = ok.copy()
    gappy[:, 100:300] = False
    spoiled = frames.copy()
    spoiled[:, 100:300] = np.nan  # what window_frames leaves there
    x = feat.compute_features(spoiled, gappy, freqs, fs)
    assert np.isfinite(x).all()


def test_band_matrix_and_errors():
    freqs = np.arange(0, 10.01, 0.2)
    w = feat.band_matrix(freqs, [(1.0, 2.0)])
    assert w[:, 0].sum() == pytest.approx(1.0)  # power density x width
    with pytest.raises(InputError, match=r"tremor\.features\.bands"):
        feat.band_matrix(freqs, [(1.01, 1.1)])
    with pytest.raises(InputError, match=r"tremor\.features\.bands"):
        settings().check_rate(25.0, "XX.A..HHZ")  # 16 Hz above Nyquist 12.5 Hz
    with pytest.raises(InputError, match=r"tremor\.features\.frame_seconds"):
        settings(frame_seconds=0.01).check_rate(100.0, "XX.A..HHZ")


def test_standardise():
    x = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]])
    z = feat.standardise(x, "zscore")
    assert np.allclose(z.mean(0), 0) and np.allclose(z[:, [0, 2]].std(0), 1)
    assert (z[:, 1] == 0).all()  # constant column
    r = feat.standardise(x, "robust")
    assert np.allclose(np.median(r, 0), 0)


@pytest.mark.parametrize(("cfg", "key"), [
    ({"frame_seconds": -1}, "frame_seconds"), ({"bands": [[3, 2]]}, "bands"),
    ({"percentiles": [-1]}, "percentiles"), ({"sets": ["nope"]}, "sets"),
    ({"scaling": "max"}, "scaling"), ({"colour": 1}, "colour"),
])
def test_bad_feature_settings(cfg, key):
    with pytest.raises(InputError, match=rf"tremor\.features\.{key}"):
        feat.FeatureSettings.from_config(cfg)


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    """Two days of the example written to files, its truth and the config on them."""
    folder = tmp_path_factory.mktemp("two_days")
    ex = synthetic.make_example(days=2, seed=3)
    synthetic.write_example(ex, folder / "wf", folder / "truth.csv")
    cfg = compose(["data.waveforms.source=files",
                   f"data.waveforms.files=['{folder}/wf/*.mseed']", "tremor.kscan.k_max=5"])
    return folder, cfg


def run_feature_stage(two_days, out, diagnostics=None, cluster=None) -> dict[str, str]:
    """The features stage on the two days, outputs in ``out``."""
    folder, cfg = two_days
    paths = {k: str(out / f) for k, f in (
        ("table", "features.nc"), ("scan", "kscan.csv"), ("choice", "choice.json"),
        ("labels", "labels.csv"), ("metrics", "metrics.json"), ("kscan_figure", "kscan.png"))}
    stages.features(**paths, waveforms=to_container(cfg.data.waveforms),
                    preprocess=to_container(cfg.tremor.preprocess),
                    spectrogram=to_container(cfg.tremor.spectrogram),
                    features=to_container(cfg.tremor.features),
                    kscan=to_container(cfg.tremor.kscan), channels="stack", seed=0,
                    truth=str(folder / "truth.csv"), diagnostics=diagnostics,
                    cluster=cluster)
    return paths


def test_feature_stage_on_a_small_example(two_days, tmp_path):
    """Two days of the example: every output written, CF attributes, the labels file like
    the DEC labels, ARI against the truth, identical on a second run."""
    outs = {run: run_feature_stage(two_days, tmp_path / run) for run in ("a", "b")}
    labels = pd.read_csv(outs["a"]["labels"])
    assert list(labels.columns) == ["window_start", "cluster", "distance", "refined",
                                    "change_time"]
    choice = json.loads((tmp_path / "a/choice.json").read_text())
    assert 2 <= choice["n_clusters"] <= 5 and len(labels) == choice["n_samples"]
    assert sorted(labels["cluster"].unique()) == list(range(1, choice["n_clusters"] + 1))
    assert len(labels) == 48 - 1  # one window holds the 50 % gap (skipped)
    metrics = json.loads((tmp_path / "a/metrics.json").read_text())
    assert {"ari", "nmi", "ari_pure", "n_pure", "contingency"} <= set(metrics)
    assert metrics["n_outliers"] == 0
    with xr.open_dataset(outs["a"]["table"]) as ds:
        assert ds["feature"].dims == ("window", "channel", "name")
        assert ds["feature_units"].size == ds.sizes["name"]
        assert ds.attrs["Conventions"].startswith("CF")
        assert ds["window"].attrs["long_name"]
    pd.testing.assert_frame_equal(labels, pd.read_csv(outs["b"]["labels"]))


def test_stage_writes_part_features_and_refinement(two_days, tmp_path):
    """With tremor.features.parts the stage keeps the part features (CF variable) and
    says what the refinement did; parts: 0 turns it off; too many parts for the window is
    one sentence."""
    _folder, cfg = two_days
    paths = run_feature_stage(two_days, tmp_path / "on")
    metrics = json.loads(Path(paths["metrics"]).read_text())
    assert {"n_refined", "n_change_fitted", "ari_unrefined", "refine_parts"} <= set(metrics)
    labels = pd.read_csv(paths["labels"])
    assert labels["refined"].sum() == metrics["n_refined"]
    with xr.open_dataset(paths["table"]) as ds:
        assert ds["part_feature"].dims == ("window", "channel", "part", "name")
        assert ds.sizes["part"] == cfg.tremor.features.parts == ds.attrs["parts"]
    off = tmp_path / "off"
    off.mkdir()
    stages.features(**{k: str(off / Path(v).name) for k, v in paths.items()},
                    waveforms=to_container(cfg.data.waveforms),
                    preprocess=to_container(cfg.tremor.preprocess),
                    spectrogram=to_container(cfg.tremor.spectrogram),
                    features={**to_container(cfg.tremor.features), "parts": 0},
                    kscan=to_container(cfg.tremor.kscan), channels="stack", seed=0)
    assert "refined" not in pd.read_csv(off / "labels.csv")
    with xr.open_dataset(off / "features.nc") as ds:
        assert "part_feature" not in ds
    with pytest.raises(InputError, match=r"tremor\.features\.parts: 12 parts"):
        stages.features(**{k: str(off / Path(v).name) for k, v in paths.items()},
                        waveforms=to_container(cfg.data.waveforms),
                        preprocess=to_container(cfg.tremor.preprocess),
                        spectrogram=to_container(cfg.tremor.spectrogram),
                        features={**to_container(cfg.tremor.features),
                                  "frame_seconds": 600.0},
                        kscan=to_container(cfg.tremor.kscan), channels="stack", seed=0)


@pytest.mark.parametrize("method", ["gmm", "agglomerative"])
def test_feature_clustering_follows_tremor_cluster(two_days, tmp_path, method):
    """``tremor.cluster.method`` clusters the features at the scan's k too."""
    base = pd.read_csv(run_feature_stage(two_days, tmp_path / "kmeans")["labels"])
    paths = run_feature_stage(two_days, tmp_path / method, cluster={"method": method})
    labels = pd.read_csv(paths["labels"])
    metrics = json.loads(Path(paths["metrics"]).read_text())
    assert metrics["method"] == method and metrics["n_clusters"] == base["cluster"].max()
    assert sorted(labels["cluster"].unique()) == list(range(1, metrics["n_clusters"] + 1))
    assert metrics["ari"] > 0.5  # the two days' regimes are found by every method


def test_small_clusters_labelled_as_outliers(two_days, tmp_path):
    """``diagnostics.small_clusters: outliers``: the members of the clusters below the
    minimum size get cluster 0, the other clusters keep their members, numbered 1..k'."""
    warned = pd.read_csv(run_feature_stage(two_days, tmp_path / "warn")["labels"])
    sizes = warned["cluster"].value_counts()
    limit = int(sizes.max())  # every cluster but the largest (and its equals) is small
    small = sizes.index[sizes < limit]
    assert small.size >= 1
    settings = {"min_cluster_size": limit, "small_clusters": "outliers"}
    paths = run_feature_stage(two_days, tmp_path / "out", settings)
    labelled = pd.read_csv(paths["labels"])
    outlier = warned["cluster"].isin(small).to_numpy()
    assert (labelled["cluster"].to_numpy()[outlier] == 0).all()
    kept = labelled["cluster"].to_numpy()[~outlier]
    assert sorted(set(kept)) == list(range(1, (sizes >= limit).sum() + 1))
    pd.testing.assert_series_equal(  # same partition of the other windows
        pd.Series(kept).groupby(warned["cluster"].to_numpy()[~outlier]).nunique(),
        pd.Series(1, index=sorted(set(warned["cluster"].to_numpy()[~outlier]))),
        check_names=False, check_index_type=False)
    metrics = json.loads(Path(paths["metrics"]).read_text())
    assert metrics["n_outliers"] == outlier.sum()
    assert metrics["n_clusters"] == len(metrics["cluster_sizes"]) == (sizes >= limit).sum()
    choice = json.loads(Path(paths["choice"]).read_text())
    message = [w["message"] for w in choice["warnings"] if w["code"] == "small_cluster"]
    assert message and "labelled as outliers, cluster 0" in message[0]


def test_primary_labels(tmp_path):
    pd.DataFrame({"window_start": ["2021-01-01T00:00:00"], "cluster": [2],
                  "distance": [0.5]}).to_csv(tmp_path / "f.csv", index=False)
    pd.DataFrame({"window_start": ["2021-01-01T00:00:00"], "cluster": [1],
                  "max_assignment": [0.9]}).to_csv(tmp_path / "d.csv", index=False)
    for primary, cluster in (("features", 2), ("dec", 1)):
        stages.primary_labels(features=str(tmp_path / "f.csv"), dec=str(tmp_path / "d.csv"),
                              labels=str(tmp_path / "out.csv"), primary=primary)
        out = pd.read_csv(tmp_path / "out.csv")
        assert out.to_dict("records") == [{"window_start": "2021-01-01T00:00:00",
                                           "cluster": cluster, "representation": primary}]
    with pytest.raises(InputError, match=r"tremor\.primary_labels"):
        stages.primary_labels(features=str(tmp_path / "f.csv"), dec=str(tmp_path / "d.csv"),
                              labels=str(tmp_path / "out.csv"), primary="som")


def test_consensus_of_the_feature_clusters(two_days, tmp_path):
    """tremor_features_consensus: an agreement per window of the features' clusters,
    outliers left out, the same for the same seed; labels of other windows refused."""
    limit = int(pd.read_csv(run_feature_stage(two_days, tmp_path / "w")["labels"])
                ["cluster"].value_counts().min()) + 1
    paths = run_feature_stage(two_days, tmp_path / "o",
                              {"min_cluster_size": limit, "small_clusters": "outliers"})
    labels = pd.read_csv(paths["labels"])
    outliers = int((labels["cluster"] == 0).sum())
    assert outliers > 0
    out = {}
    for run in ("a", "b"):
        out[run] = {k: str(tmp_path / f"{run}.{ext}") for k, ext in (
            ("agreement", "csv"), ("metrics", "json"), ("figure", "png"))}
        stages.features_consensus(table=paths["table"], labels=paths["labels"], **out[run],
                                  consensus={"seeds": 3}, cluster={}, kscan={"n_init": 2},
                                  seed=0)
    table = pd.read_csv(out["a"]["agreement"])
    assert len(table) == len(labels) - outliers and table["agreement"].between(0, 1).all()
    assert (table["cluster"] > 0).all()
    metrics = json.loads(Path(out["a"]["metrics"]).read_text())
    assert metrics["n_outliers"] == outliers and metrics["labels"] == "features"
    assert metrics["seeds"] == [1, 2, 3] and 0 < metrics["mean_agreement"] <= 1
    pd.testing.assert_frame_equal(table, pd.read_csv(out["b"]["agreement"]))
    labels.iloc[:-1].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(InputError, match="does not label the windows"):
        stages.features_consensus(table=paths["table"], labels=str(tmp_path / "short.csv"),
                                  **out["a"], consensus={"seeds": 2}, cluster={},
                                  kscan={"n_init": 2})
