"""Monitoring: a trained run's feature clustering applied to new records (tremor.apply)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seiscluster.config import compose, to_container
from seiscluster.errors import InputError
from seiscluster.tremor import stages, synthetic
from seiscluster.tremor.apply import apply, load_trained

DAYS, TRAIN, FS = 6, 4, 40.0
WITHHELD = "harmonic_tremor"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 6-day archive at 40 Hz whose harmonic tremor starts after day 4; the features
    stage trained on the first 4 days, laid out as a run folder."""
    root = tmp_path_factory.mktemp("apply")
    ex = synthetic.make_example(days=DAYS, sampling_rate=FS, withheld_regimes=[WITHHELD],
                                withheld_days=TRAIN)
    files = [str(f) for f in synthetic.write_example(ex, root / "wf", root / "truth.csv")]
    cfg = compose(["data.waveforms.source=files", "data.waveforms.files=[placeholder]"])
    run = root / "run"
    out = run / "tremor" / "features"
    out.mkdir(parents=True)
    train = files[:TRAIN]
    stages.features(
        **{k: str(out / f) for k, f in (("table", "features.nc"), ("scan", "kscan.csv"),
                                        ("choice", "choice.json"), ("labels", "labels.csv"),
                                        ("metrics", "metrics.json"))},
        waveforms={**to_container(cfg.data.waveforms), "files": train}, files=train,
        preprocess=to_container(cfg.tremor.preprocess),
        spectrogram=to_container(cfg.tremor.spectrogram),
        features=to_container(cfg.tremor.features), kscan=to_container(cfg.tremor.kscan),
        channels="stack", seed=0)
    return {"root": root, "run": run, "files": files, "truth": str(root / "truth.csv")}


def run_apply(trained, out, files, **settings):
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: str(out / f"{k}.{ext}") for k, ext in (
        ("labels", "csv"), ("days", "csv"), ("metrics", "json"), ("model", "json"))}
    scores = apply(**paths, run=str(trained["run"]), files=files,
                   waveforms={"source": "files", "files": files}, apply=settings,
                   truth=trained["truth"])
    return scores, paths


def test_training_days_have_no_withheld_regime(trained):
    truth = pd.read_csv(trained["truth"])
    day = truth["window_start"].str[:10]
    first = sorted(day.unique())[:TRAIN]
    assert (truth.loc[day.isin(first), f"share_{WITHHELD}"] == 0).all()
    assert (truth.loc[~day.isin(first), "regime"] == WITHHELD).sum() >= 4


def test_applied_labels_match_truth_and_flag_the_new_regime(trained, tmp_path):
    scores, paths = run_apply(trained, tmp_path, trained["files"][TRAIN:],
                              incremental=False)
    labels = pd.read_csv(paths["labels"])
    model = load_trained(trained["run"])
    assert list(labels.columns[:5]) == ["window_start", "cluster", "nearest", "novel",
                                        "distance"]
    soft = labels[[f"p_{j + 1}" for j in range(model.k)]].to_numpy()
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    assert ((labels["cluster"] == 0) == labels["novel"]).all()
    # the windows inside one regime: the applied clusters are the regimes
    assert scores["ari_pure"] >= 0.9
    by_regime = scores["novel_fraction_by_regime"]
    assert by_regime[WITHHELD] >= 0.9
    truth = pd.read_csv(trained["truth"]).set_index("window_start")
    pure = truth.loc[labels["window_start"], "fraction"].to_numpy() >= 0.9
    regime = truth.loc[labels["window_start"], "regime"].to_numpy()
    for r in set(regime) - {WITHHELD}:
        sel = pure & (regime == r)
        assert labels["novel"].to_numpy()[sel].mean() <= 0.1, r
    days = pd.read_csv(paths["days"])
    assert days["day"].tolist() == ["2021-03-16", "2021-03-17"]


def test_incremental_processes_each_day_once(trained, tmp_path, caplog):
    files = trained["files"][TRAIN:]
    caplog.set_level(logging.INFO, logger="seiscluster.tremor.apply")
    _, paths = run_apply(trained, tmp_path, files[:1])
    first = pd.read_csv(paths["labels"], dtype=str)
    _, paths = run_apply(trained, tmp_path, files)  # the archive has grown by a day
    _, paths = run_apply(trained, tmp_path, files)  # nothing new
    processed = [r.getMessage().split()[2] for r in caplog.records
                 if r.getMessage().startswith("processing day")]
    assert processed == ["2021-03-16", "2021-03-17"]
    second = pd.read_csv(paths["labels"], dtype=str)
    assert second["window_start"].str[:10].unique().tolist() == processed
    pd.testing.assert_frame_equal(second.iloc[:len(first)], first)
    assert pd.read_csv(paths["days"])["day"].tolist() == processed


def test_missing_or_incompatible_trained_run_is_one_sentence(trained, tmp_path):
    files = trained["files"][TRAIN:]
    with pytest.raises(InputError, match=r"apply\.run: .*does not exist") as err:
        load_trained(tmp_path / "nowhere")
    message = str(err.value).replace("e.g. ", "")
    assert message.count(". ") == 0 and "\n" not in message and message.endswith(".")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is not a finished tremor run"):
        load_trained(tmp_path / "empty")
    bad = tmp_path / "bad"
    shutil.copytree(trained["run"], bad)
    labels = bad / "tremor" / "features" / "labels.csv"
    pd.read_csv(labels).iloc[:-1].to_csv(labels, index=False)
    with pytest.raises(InputError, match="does not label the windows"):
        load_trained(bad)
    dec = tmp_path / "dec"
    shutil.copytree(trained["run"], dec)
    pd.DataFrame({"window_start": ["2021-03-12T00:00:00"], "cluster": [1],
                  "representation": ["dec"]}).to_csv(dec / "tremor" / "labels.csv",
                                                     index=False)
    with pytest.raises(InputError, match=r"primary labels .* come from dec"):
        load_trained(dec)
    with pytest.raises(InputError, match="novelty_quantile"):
        run_apply(trained, tmp_path / "q", files, novelty_quantile=1.5)


def test_outliers_of_the_training_are_left_out(trained, tmp_path):
    """Windows labelled 0 (diagnostics.small_clusters: outliers) shape no centre."""
    run = tmp_path / "outliers"
    shutil.copytree(trained["run"], run)
    path = run / "tremor" / "features" / "labels.csv"
    labels = pd.read_csv(path)
    base = load_trained(trained["run"])
    labels.loc[labels.index[:3], "cluster"] = 0
    labels.to_csv(path, index=False)
    model = load_trained(run)
    assert model.k == base.k and model.sizes.sum() == base.sizes.sum() - 3
    assert not np.allclose(model.centres, base.centres)
    labels.loc[labels.index[3], "cluster"] = -1
    labels.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"not numbered 1\.\.k \(0 for outliers\)"):
        load_trained(run)


def test_series_of_another_trained_model_is_not_extended(trained, tmp_path):
    files = trained["files"][TRAIN:TRAIN + 1]
    _, paths = run_apply(trained, tmp_path, files)
    model = Path(paths["model"])
    record = json.loads(model.read_text())
    model.write_text(json.dumps({**record, "fingerprint": "other"}))
    with pytest.raises(InputError, match="another trained model"):
        run_apply(trained, tmp_path, files)


def test_workflow_applies_a_trained_run_incrementally(trained, tmp_path):
    """`apply.run` in the workflow: a run with no branch of its own labels a growing
    folder of records; the second invocation processes only the new day (history.log)."""
    root = Path(__file__).resolve().parents[2]
    new = tmp_path / "new"
    new.mkdir()
    files = trained["files"][TRAIN:]
    shutil.copy(files[0], new)
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(root / "Snakefile"),
           "-d", str(tmp_path), "--cores", "1", "--config", "run=mon",
           'overrides=["branches=[]","data.waveforms.source=files",'
           f'"data.waveforms.files=[{new}/*.mseed]","apply.run={trained["run"]}"]']
    for _ in range(2):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        shutil.copy(files[1], new)
    out = tmp_path / "results/mon/apply"
    history = (out / "history.log").read_text()
    assert [line.split("processing day ")[1][:10] for line in history.splitlines()
            if "processing day" in line] == ["2021-03-16", "2021-03-17"]
    assert "day 2021-03-16 already labelled, skipped" in history
    assert pd.read_csv(out / "days.csv")["day"].tolist() == ["2021-03-16", "2021-03-17"]
    report = (tmp_path / "results/mon/report.html").read_text()
    assert "Monitoring (trained run applied)" in report
    bad = [*cmd[:-1], cmd[-1].replace(str(trained["run"]), str(tmp_path / "missing"))]
    proc = subprocess.run([*bad, "-n"], capture_output=True, text=True)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "apply.run:" in message and "does not exist" in message


def test_run_without_recorded_settings_uses_its_config_yaml(trained, tmp_path):
    """A run made before features.nc recorded its settings: its config.yaml gives them."""
    import xarray as xr

    from seiscluster.config import to_yaml

    old = tmp_path / "old"
    shutil.copytree(trained["run"], old)
    path = old / "tremor" / "features" / "features.nc"
    ds = xr.load_dataset(path)
    del ds.attrs["settings"]
    ds.to_netcdf(path)
    with pytest.raises(InputError, match="records neither its settings"):
        load_trained(old)
    (old / "config.yaml").write_text(to_yaml(compose(["data.waveforms.source=files",
                                                      "data.waveforms.files=[placeholder]"])))
    assert load_trained(old).fingerprint() == load_trained(trained["run"]).fingerprint()
