"""The embedded synthetic tremor records: determinism, regimes and their strengths,
transitions, truth, gaps, files, settings, and the default tremor run finding its four
regimes (slow)."""

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
from seiscluster.tremor.synthetic import REGIMES, ExampleSettings, make_example, write_example

ROOT = Path(__file__).resolve().parents[2]
#: A second setting: other seed, days, rate and strengths (as bench/tremor_quality.py's).
SECOND = {"days": 4, "sampling_rate": 40.0, "seed": 7, "episode_hours": [2.0, 6.0],
          "transition_minutes": 30.0, "swarm_rate": [15.0, 30.0], "swarm_amplitude": 2.5,
          "swarm_max_amplitude": 15.0, "teleseisms": 2, "gap_fractions": [0.01, 0.03, 0.6]}


@pytest.fixture(scope="module", params=["default", "second"])
def ex(request):
    """Four days of the default setting, and the second setting."""
    return make_example(days=4) if request.param == "default" else make_example(SECOND)


def hourly(ex) -> np.ndarray:
    n = round(3600 * ex.sampling_rate)
    return np.nan_to_num(ex.data[:len(ex.truth) * n]).reshape(len(ex.truth), n)


def test_default_settings_are_the_documented_ones():
    s = ExampleSettings.from_config(None)
    assert (s.days, s.sampling_rate, s.swarm_rate, s.teleseisms) == (14, 50.0, (10.0, 40.0), 1)
    small = make_example(days=1, seed=5)
    assert small.data.shape == (86400 * 50,) and small.sampling_rate == 50.0
    assert str(small.starttime) == "2021-03-12T00:00:00.000000Z"
    assert list(small.truth.columns[:3]) == ["window_start", "regime", "fraction"]
    assert len(small.truth) == 24 and small.truth["window_start"].iloc[-1] == \
        "2021-03-12T23:00:00"


def test_same_seed_same_record_other_seed_other_record():
    a, b = make_example(days=1, seed=3), make_example(days=1, seed=3)
    np.testing.assert_array_equal(a.data, b.data)  # NaN in the same places
    pd.testing.assert_frame_equal(a.truth, b.truth)
    other = make_example(days=1, seed=4)
    assert not np.array_equal(np.nan_to_num(a.data), np.nan_to_num(other.data))


def test_episodes_start_anywhere_and_cover_every_regime(ex):
    ep = ex.episodes
    lo, hi = (SECOND["episode_hours"] if ex.sampling_rate == 40.0 else (3.0, 12.0))
    inner = np.diff(ep["start"].to_numpy()) / 3600.0
    assert inner.min() >= lo - 1e-9 and inner.max() <= hi + 1e-9
    assert (ep["start"].to_numpy()[1:] % 3600.0 > 0).all()  # not on window boundaries
    assert (ep["regime"].to_numpy()[1:] != ep["regime"].to_numpy()[:-1]).all()
    assert set(ep["regime"]) == set(REGIMES)


def test_truth_is_the_majority_regime_and_its_share(ex):
    t = ex.truth
    shares = t[[f"share_{r}" for r in REGIMES]].to_numpy()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-3)
    assert (t["regime"].to_numpy() == np.array(REGIMES)[shares.argmax(axis=1)]).all()
    np.testing.assert_allclose(t["fraction"], shares.max(axis=1), atol=1e-4)
    # every change inside a window makes it mixed; windows far from changes are pure
    mixed = t["fraction"] < 0.999
    assert mixed.sum() >= len(ex.episodes) - 1 - 2  # two changes may share a window
    assert (t["fraction"] >= 0.5 - 1e-9).all() or len(ex.episodes) > 3


def test_swarm_rates_in_range(ex):
    s = ExampleSettings.from_config(SECOND if ex.sampling_rate == 40.0 else {"days": 4})
    sw = ex.episodes[ex.episodes["regime"] == "earthquake_swarm"]
    hours = (sw["end"] - sw["start"]).to_numpy() / 3600.0 + s.transition_minutes / 60.0
    rate = sw["events"].sum() / hours.sum()
    assert s.swarm_rate[0] * 0.7 <= rate <= s.swarm_rate[1] * 1.3
    assert (ex.episodes.loc[ex.episodes["regime"] != "earthquake_swarm", "events"] == 0).all()


def test_swarm_is_weak_on_average_but_impulsive(ex):
    """A swarm hour's mean 2-12 Hz power is close to the background's (0.7 to 2.5 times, in
    the median of four days) while its frame powers are spiky (p99 / median several times the
    background's)."""
    x = signal.sosfilt(signal.butter(4, [2, 12], "bandpass", fs=ex.sampling_rate,
                                     output="sos"), hourly(ex), axis=1)
    n = round(5 * ex.sampling_rate)
    p = (x[:, :x.shape[1] // n * n].reshape(len(x), -1, n) ** 2).mean(axis=2)
    gap = pd.to_datetime(ex.truth["window_start"]).isin(pd.to_datetime(ex.gaps["window_start"]))
    pure = (ex.truth["fraction"].to_numpy() == 1) & ~gap.to_numpy()
    regime = ex.truth["regime"].to_numpy()
    mean = pd.Series(p.mean(axis=1)[pure]).groupby(regime[pure]).median()
    spiky = pd.Series(np.percentile(p[pure], 99, axis=1) / np.median(p[pure], axis=1)) \
        .groupby(regime[pure]).median()
    assert 0.7 < mean["earthquake_swarm"] / mean["background"] < 2.5
    assert spiky["earthquake_swarm"] > 3 * spiky["background"]
    assert mean["harmonic_tremor"] > mean["background"]  # (its lines sit below 2 Hz)


def test_harmonic_tremor_has_one_fundamental_and_overtones():
    ex = make_example(days=4)
    fs, ratios, f0s = ex.sampling_rate, [], []
    for ep in ex.episodes[ex.episodes["regime"] == "harmonic_tremor"].itertuples():
        a = int((ep.start + 1800) * fs)
        x = ex.data[a:a + int(600 * fs)]  # 10 minutes inside the episode
        f, p = signal.welch(x[np.isfinite(x)], fs, nperseg=4096)
        band = (f > 0.9) & (f < 1.6)
        f0 = f[band][p[band].argmax()]
        floor = np.median(p[(f > 1) & (f < 5)])
        ratios.append([p[np.abs(f - k * f0) < 0.15].max() / floor for k in (1, 2, 3)])
        f0s.append(f0)
    assert (np.median(ratios, axis=0) > [10, 5, 3]).all()
    assert np.ptp(f0s) < 0.08  # one resonator: every episode has (nearly) the same lines


def test_teleseisms_and_gaps(ex):
    s = ExampleSettings.from_config(SECOND if ex.sampling_rate == 40.0 else {"days": 4})
    assert len(ex.teleseisms) == s.teleseisms
    fractions = ex.gaps["fraction"].to_numpy()
    np.testing.assert_allclose(np.sort(fractions), np.sort(s.gap_fractions), atol=1e-6)
    nwin = round(3600 * ex.sampling_rate)
    assert np.isnan(ex.data).sum() == sum(max(1, int(f * nwin)) for f in s.gap_fractions)
    starts = pd.to_datetime(ex.gaps["start"], format="ISO8601")
    ends = pd.to_datetime(ex.gaps["end"], format="ISO8601")
    for start, end in zip(starts, ends, strict=True):
        assert start.floor("h") == (end - pd.Timedelta("1ns")).floor("h")  # one window
    assert np.isfinite(ex.data[:nwin]).all()


def test_write_example_day_files(tmp_path):
    small = make_example(days=2, seed=3)
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


def test_truth_of_and_scores(tmp_path):
    small = make_example(days=1, seed=3)
    small.truth.to_csv(tmp_path / "truth.csv", index=False)
    windows = pd.to_datetime(small.truth["window_start"]).to_numpy("M8[ns]")
    extra = np.concatenate([windows, [windows[-1] + np.timedelta64(3600, "s")]])
    regime, fraction = synthetic.truth_of(tmp_path / "truth.csv", extra)
    assert regime[-1] is None and np.isnan(fraction[-1])
    codes = pd.factorize(regime[:-1])[0]
    scores = synthetic.truth_scores(regime, fraction, np.append(codes, 0))
    assert scores["ari"] == pytest.approx(1.0) and scores["n_with_truth"] == 24


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"days": 0}, "days"),
    ({"days": 1.5}, "days"),
    ({"sampling_rate": 25.0}, "sampling_rate"),
    ({"starttime": "soon"}, "starttime"),
    ({"swarm_rate": [5.0, 1.0]}, "swarm_rate"),
    ({"swarm_max_amplitude": 0.5}, "swarm_max_amplitude"),
    ({"gap_fractions": [1.5]}, "gap_fractions"),
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
    interpretable features' k scan (Calinski-Harabasz) chooses k = 4, the number of
    regimes, and their labels, the run's primary ones, match the truth on the windows
    inside one regime (adjusted Rand index >= 0.95)."""
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(ROOT / "Snakefile"),
           "-d", str(tmp_path), "--cores", "2", "--config", "run=example",
           'overrides=["branches=[tremor]"]']
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tremor = tmp_path / "results/example/tremor"
    choice = json.loads((tremor / "features/choice.json").read_text())
    metrics = json.loads((tremor / "features/metrics.json").read_text())
    assert choice["criterion"] == "calinski_harabasz" and choice["n_clusters"] == 4, choice
    assert metrics["n_with_truth"] == metrics["n_samples"] == 335
    assert metrics["ari_pure"] >= 0.95, metrics
    labels = pd.read_csv(tremor / "labels.csv")
    assert len(labels) == 335 and set(labels["representation"]) == {"features"}
