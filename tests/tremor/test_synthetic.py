"""The embedded synthetic tremor records: determinism, regimes, gaps, files, and the
default tremor run finding its four regimes (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
import pytest
from scipy import signal

from seiscluster.errors import InputError
from seiscluster.tremor import synthetic
from seiscluster.tremor.synthetic import REGIMES, make_example, write_example

ROOT = Path(__file__).resolve().parents[2]
#: Sub-bands of the default analysis band (tremor.spectrogram fmin..fmax), Hz.
SUB_BANDS = ((1.0, 2.0), (2.0, 3.0), (3.0, 4.0))


@pytest.fixture(scope="module")
def ex():
    return make_example()  # the defaults of data.waveforms.example


@pytest.fixture(scope="module")
def hours(ex):
    """The default record as (window, sample) rows of one hour, gaps as zeros."""
    return np.nan_to_num(ex.data).reshape(len(ex.truth), -1)


@pytest.fixture(scope="module")
def small():
    return make_example(days=2, sampling_rate=25.0, seed=3)


def test_default_has_the_documented_shape(ex):
    assert ex.data.shape == (14 * 86400 * 25,) and ex.sampling_rate == 25.0
    assert str(ex.starttime) == "2021-03-12T00:00:00.000000Z"
    assert len(ex.truth) == 336 and list(ex.truth.columns) == ["window_start", "regime"]
    assert ex.truth["window_start"].iloc[0] == "2021-03-12T00:00:00"
    assert ex.truth["window_start"].iloc[-1] == "2021-03-25T23:00:00"
    counts = ex.truth["regime"].value_counts()
    assert set(counts.index) == set(REGIMES) and counts.min() >= 40


def test_same_seed_same_record_other_seed_other_record(small):
    again = make_example(days=2, sampling_rate=25.0, seed=3)
    np.testing.assert_array_equal(small.data, again.data)  # NaN in the same places
    pd.testing.assert_frame_equal(small.truth, again.truth)
    other = make_example(days=2, sampling_rate=25.0, seed=4)
    assert not np.array_equal(np.nan_to_num(small.data), np.nan_to_num(other.data))


def test_regimes_switch_in_blocks_of_whole_windows(ex):
    regime = ex.truth["regime"].to_numpy()
    change = np.flatnonzero(regime[1:] != regime[:-1]) + 1
    lengths = np.diff(np.concatenate([[0], change, [regime.size]]))
    assert lengths[:-1].min() >= 3 and lengths.max() <= 12  # the last block may be cut
    assert lengths[:-1].mean() == pytest.approx(7.5, abs=1.5)


def test_gaps_below_and_above_the_default_threshold(ex):
    fractions = ex.gaps["fraction"].to_numpy()
    assert (fractions < 0.05).sum() == 3 and (fractions > 0.05).sum() == 1
    assert np.isnan(ex.data).sum() == round(sum(fractions) * 3600 * 25)
    nwin = 3600 * 25
    starts = pd.to_datetime(ex.gaps["start"], format="ISO8601")
    ends = pd.to_datetime(ex.gaps["end"], format="ISO8601")
    for start, end in zip(starts, ends, strict=True):
        assert start.floor("h") == (end - pd.Timedelta("1ns")).floor("h")  # one window
        assert start.hour not in (0, 23) or start.minute > 0
    assert np.isfinite(ex.data[:nwin]).all()


def test_each_regime_stands_out_in_its_own_part_of_the_analysis_band(ex, hours):
    """Every regime is above the background across 1-4 Hz (power x3) and owns a third of it
    (harmonic 1-2 Hz, spasmodic 2-3 Hz, swarm 3-4 Hz): strongest there, and there the
    strongest regime. So none looks like the background, nor like another one, by level."""
    assert (hours.std(axis=1) > 50).all()  # nothing is silent
    f, p = signal.welch(hours, 25.0, nperseg=1024, axis=1)
    power = np.stack([p[:, (f >= lo) & (f < hi)].mean(axis=1) for lo, hi in SUB_BANDS], 1)
    by = pd.DataFrame(power).groupby(ex.truth["regime"].to_numpy()).median()
    gain = by / by.loc["background"]
    signals = ["harmonic_tremor", "spasmodic_tremor", "earthquake_swarm"]
    assert (gain.loc[signals] > 3).all(axis=None)
    owner = gain.loc[signals].to_numpy()
    assert owner.argmax(axis=1).tolist() == [0, 1, 2] == owner.argmax(axis=0).tolist()
    assert (gain.loc[signals].max(axis=1) > 100).all()


def test_swarms_are_impulsive(ex, hours):
    """Counted per one-second RMS above 1 Hz: sudden threefold rises are many in swarm hours,
    few elsewhere."""
    x = signal.sosfilt(signal.butter(4, 1.0, "highpass", fs=25.0, output="sos"), hours)
    rms = np.sqrt((x.reshape(len(hours), 3600, 25) ** 2).mean(axis=2))
    onsets = (rms[:, 1:] > 3 * rms[:, :-1]).sum(axis=1)
    by = pd.Series(onsets).groupby(ex.truth["regime"].to_numpy()).median()
    assert by["earthquake_swarm"] > 100
    assert by["earthquake_swarm"] > 3 * by.drop("earthquake_swarm").max()


def test_harmonic_tremor_has_one_fundamental_and_overtones(ex):
    ratios, f0s = [], []
    for i in np.flatnonzero(ex.truth["regime"] == "harmonic_tremor"):
        x = ex.data[i * 90000:i * 90000 + 15000]  # 10 minutes: the glide is small
        f, p = signal.welch(x[np.isfinite(x)], 25.0, nperseg=2048)
        band = (f > 0.9) & (f < 1.6)
        f0 = f[band][p[band].argmax()]
        floor = np.median(p[(f > 1) & (f < 5)])
        ratios.append([p[np.abs(f - k * f0) < 0.15].max() / floor for k in (1, 2, 3)])
        f0s.append(f0)
    assert (np.median(ratios, axis=0) > [20, 10, 5]).all()
    assert np.ptp(f0s) < 0.08  # one resonator: every episode has (nearly) the same lines


def test_write_example_day_files(tmp_path, small):
    files = write_example(small, tmp_path / "waveforms", tmp_path / "truth.csv")
    assert [f.name for f in files] == ["XX.SYN..HHZ.2021-03-12.mseed",
                                       "XX.SYN..HHZ.2021-03-13.mseed"]
    st = obspy.read(str(files[0]))
    assert {tr.id for tr in st} == {synthetic.CHANNEL_ID}
    assert st[0].stats.mseed.encoding == "STEIM2" and st[0].data.dtype == np.int32
    starts = pd.to_datetime(small.gaps["start"], format="ISO8601")
    gaps_day0 = int(sum(starts < pd.Timestamp("2021-03-13")))
    assert len(st) == 1 + gaps_day0  # one trace per contiguous run
    total = sum(tr.stats.npts for tr in obspy.read(str(tmp_path / "waveforms" / "*.mseed")))
    assert total == np.isfinite(small.data).sum()
    truth = pd.read_csv(tmp_path / "truth.csv")
    pd.testing.assert_frame_equal(truth, small.truth)
    write_example(small, tmp_path / "waveforms", tmp_path / "truth.csv")  # replaces
    assert sorted(p.name for p in (tmp_path / "waveforms").iterdir()) == [f.name for f in files]


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"days": 0}, "days"),
    ({"days": 1.5}, "days"),
    ({"sampling_rate": 5.0}, "sampling_rate"),
    ({"starttime": "soon"}, "starttime"),
])
def test_bad_example_settings(kwargs, key):
    with pytest.raises(InputError, match=rf"data\.waveforms\.example\.{key}"):
        make_example(**kwargs)


def test_unknown_example_key():
    with pytest.raises(InputError, match=r"data\.waveforms\.example\.weeks"):
        synthetic.example_config({"weeks": 2})


@pytest.mark.slow
def test_default_tremor_run_finds_the_four_regimes(tmp_path):
    """The README's main command on the tremor branch with the default configuration: the
    k scan (Calinski-Harabasz on the embeddings) chooses k = 4, the number of regimes, and
    the DEC labels match the truth (adjusted Rand index >= 0.9)."""
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(ROOT / "Snakefile"),
           "-d", str(tmp_path), "--cores", "2", "--config", "run=example",
           'overrides=["branches=[tremor]"]']
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tremor = tmp_path / "results/example/tremor"
    choice = json.loads((tremor / "kscan/choice.json").read_text())
    metrics = json.loads((tremor / "dec/metrics.json").read_text())
    assert choice["criterion"] == "calinski_harabasz" and choice["n_clusters"] == 4, choice
    assert metrics["n_with_truth"] == metrics["n_samples"] == 335
    assert metrics["ari"] >= 0.9, metrics
