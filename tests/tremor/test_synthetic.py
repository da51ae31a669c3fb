"""The embedded synthetic tremor records: determinism, regimes, gaps, files."""

from __future__ import annotations

import time

import numpy as np
import obspy
import pandas as pd
import pytest

from seiscluster.errors import InputError
from seiscluster.tremor import synthetic
from seiscluster.tremor.synthetic import REGIMES, make_example, write_example


@pytest.fixture(scope="module")
def default():
    start = time.perf_counter()
    ex = make_example()  # the defaults of data.waveforms.example
    return ex, time.perf_counter() - start


@pytest.fixture(scope="module")
def small():
    return make_example(days=2, sampling_rate=25.0, seed=3)


def test_default_is_fast_and_has_the_documented_shape(default):
    ex, seconds = default
    assert seconds < 15.0  # "a few seconds" (3-4 s here), generous for loaded machines
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


def test_regimes_switch_in_blocks_of_whole_windows(default):
    regime = default[0].truth["regime"].to_numpy()
    change = np.flatnonzero(regime[1:] != regime[:-1]) + 1
    lengths = np.diff(np.concatenate([[0], change, [regime.size]]))
    assert lengths[:-1].min() >= 3 and lengths.max() <= 12  # the last block may be cut
    assert lengths[:-1].mean() == pytest.approx(7.5, abs=1.5)


def test_gaps_below_and_above_the_default_threshold(default):
    ex = default[0]
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


def test_noise_is_everywhere_and_amplitudes_differ_by_regime(default):
    ex = default[0]
    hours = ex.data[: 336 * 90000].reshape(336, 90000)
    std = np.nanstd(hours, axis=1)
    assert (std > 50).all()  # nothing is silent
    by = pd.Series(std).groupby(ex.truth["regime"].to_numpy()).median()
    assert by["background"] < by["earthquake_swarm"] and by["background"] < by["spasmodic_tremor"]
    assert by["harmonic_tremor"] > 3 * by["background"]


def test_harmonic_tremor_has_a_fundamental_and_overtones(default):
    from scipy import signal

    ex = default[0]
    ratios = []
    for i in np.flatnonzero(ex.truth["regime"] == "harmonic_tremor")[:12]:
        x = ex.data[i * 90000:i * 90000 + 15000]  # 10 minutes: the glide is small
        f, p = signal.welch(x[np.isfinite(x)], 25.0, nperseg=2048)
        band = (f > 0.9) & (f < 1.6)
        f0 = f[band][p[band].argmax()]
        floor = np.median(p[(f > 1) & (f < 5)])
        ratios.append([p[np.abs(f - k * f0) < 0.15].max() / floor for k in (1, 2, 3)])
    assert (np.median(ratios, axis=0) > [20, 10, 5]).all()


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
