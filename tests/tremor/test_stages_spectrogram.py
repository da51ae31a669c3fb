"""The spectrogram stages end to end: example, store contract, options, bad input, real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from obspy import Stream, Trace, UTCDateTime

from seiscluster.config import compose
from seiscluster.errors import InputError
from seiscluster.tremor import stages
from seiscluster.tremor.spectrogram import SKIPPED_COLUMNS, apply_normalisation

WAVEFORMS = {"source": "example", "files": [], "format": None, "sds_root": None,
             "fdsn_client": "IRIS", "fdsn_cache": "data/fdsn_cache", "network": "*",
             "station": "*", "location": "*", "channel": "*", "starttime": None,
             "endtime": None, "stationxml": None,
             "example": {"days": 14, "sampling_rate": 50.0,
                         "starttime": "2021-03-12T00:00:00", "seed": 0}}
PREPROCESS = {"detrend": "linear", "taper": 0.05, "freqmin": 0.5, "freqmax": None,
              "resample": None, "decimate": None, "remove_response": False,
              "response_output": "VEL", "pre_filt": None, "water_level": 60.0,
              "max_gap_fraction": 0.05, "channels": "stack"}
SPECTROGRAM = {"window_length": 3600.0, "window_step": 3600.0,
               "origin": "2000-01-01T00:00:00", "nperseg": 1024, "noverlap": None,
               "taper": "hann", "fmin": 1.0, "fmax": 4.0, "n_freq": 96, "n_time": 128,
               "frequency_scale": "linear", "power": "log10", "normalise": "global"}
T0 = UTCDateTime("2021-03-12T00:00:00")


def run(tmp: Path, name: str = "out", *, waveforms=None, preprocess=None, spectrogram=None,
        files=None, threads: int = 2) -> tuple[xr.Dataset, pd.DataFrame]:
    store, skipped = tmp / f"{name}.zarr", tmp / f"{name}_skipped.csv"
    stages.spectrograms(spectrograms=str(store), skipped=str(skipped),
                        waveforms={**WAVEFORMS, **(waveforms or {})},
                        preprocess={**PREPROCESS, **(preprocess or {})},
                        spectrogram={**SPECTROGRAM, **(spectrogram or {})},
                        files=files, threads=threads)
    return xr.open_zarr(store), pd.read_csv(skipped)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """Three days of the embedded example, through both stages."""
    tmp = tmp_path_factory.mktemp("example")
    ex = {**WAVEFORMS["example"], "days": 3}
    stages.make_example(waveforms=str(tmp / "waveforms"), truth=str(tmp / "truth.csv"),
                        example=ex)
    files = sorted(str(p) for p in (tmp / "waveforms").iterdir())
    ds, skipped = run(tmp, waveforms={"example": ex}, files=str(tmp / "waveforms"))
    return tmp, files, ds, skipped, pd.read_csv(tmp / "truth.csv")


def test_store_contract(example):
    _, _, ds, _, truth = example
    s = ds["spectrogram"]
    assert s.dims == ("window", "channel", "frequency", "time")
    assert s.dtype == np.float32 and ds["valid"].dtype == bool
    assert s.shape[1:] == (1, 96, 128)
    assert s.chunks[0][0] == 24 and s.chunks[1:] == ((1,), (96,), (128,))  # dask, by window
    assert ds["window"].dtype == np.dtype("datetime64[ns]")
    assert ds["channel"].values.tolist() == ["XX.SYN..HHZ"]
    np.testing.assert_allclose(ds["frequency"].values[[0, -1]], [1.015625, 3.984375])
    np.testing.assert_allclose(ds["time"].values[[0, -1]], [3600 / 256, 3600 - 3600 / 256])
    minutes = ds["window"].values.astype("datetime64[m]").astype(np.int64)
    assert (minutes % 60 == 0).all()  # whole hours
    assert ds["valid"].values.all()  # stack mode keeps windows valid on every channel
    assert np.isfinite(s.values).all()
    attrs = ds.attrs
    settings = json.loads(attrs["settings"])
    assert settings["spectrogram"]["n_freq"] == 96 and settings["preprocess"]["taper"] == 0.05
    assert settings["waveforms"]["source"] == "example"
    assert settings["derived"]["sampling_rate"] == {"XX.SYN..HHZ": 50.0}
    assert attrs["normalise"] == "global" and len(attrs["norm_mean"]) == 1
    assert attrs["power_units"] == "log10(counts**2/Hz)" and attrs["power"] == "log10"
    assert json.loads(attrs["channels"]) == ["XX.SYN..HHZ"]
    assert "zero" in attrs["gap_policy"]
    v = s.values.astype(np.float64)
    assert abs(v.mean()) < 1e-3 and abs(v.std() - 1) < 1e-3  # global normalisation
    assert set(ds["window"].values.astype("datetime64[s]").astype(str)) \
        <= set(truth["window_start"])


def test_gaps_are_listed_or_recorded(example):
    _, _, ds, skipped, truth = example
    assert list(skipped.columns) == SKIPPED_COLUMNS
    assert len(ds["window"]) + len(skipped) == len(truth) == 72
    kept = ds["missing_fraction"].values
    assert (kept <= 0.05).all()
    assert (skipped["reason"] == "missing_data").all() and (skipped["missing_fraction"]
                                                           > 0.05).all()
    gap_windows = kept[:, 0] > 0
    assert gap_windows.sum() >= 1  # a small gap, kept
    assert (ds["interpolated_fraction"].values[gap_windows] > 0).all()


def test_same_input_same_bits(example, tmp_path):
    _, files, ds, _, _ = example
    again, _ = run(tmp_path, waveforms={"example": {**WAVEFORMS["example"], "days": 3}},
                   files=files, threads=1)
    for name in ("spectrogram", "valid", "missing_fraction", "interpolated_fraction"):
        assert np.array_equal(ds[name].values, again[name].values, equal_nan=True), name
    assert ds.attrs["norm_mean"] == again.attrs["norm_mean"]
    assert ds.attrs["norm_std"] == again.attrs["norm_std"]


def test_figures(example, tmp_path):
    tmp = example[0]
    stages.spectrogram_figures(spectrograms=str(tmp / "out.zarr"),
                               overview=str(tmp_path / "o.png"),
                               examples=str(tmp_path / "e.png"), dpi=60)
    for name in ("o.png", "e.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_example_swarm_is_not_separable_by_the_mean_spectrogram(tmp_path):
    """The default example (14 days, one window skipped for its 50 % gap): the swarm is
    weak, so plain PCA + k-means on the 1-4 Hz spectrograms does not recover the four
    regimes (ARI < 0.6; bench/tremor_quality.py measures it with the features beside)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score

    stages.make_example(waveforms=str(tmp_path / "w"), truth=str(tmp_path / "truth.csv"),
                        example=WAVEFORMS["example"])
    ds, skipped = run(tmp_path, files=[str(tmp_path / "w")])
    assert len(ds["window"]) == 335 and skipped["reason"].tolist() == ["missing_data"]
    truth = pd.read_csv(tmp_path / "truth.csv", index_col=0, parse_dates=True)["regime"]
    y = truth.loc[ds["window"].values].to_numpy()
    X = ds["spectrogram"].values.reshape(len(y), -1)
    z = PCA(10, random_state=0).fit_transform(X)
    labels = KMeans(4, n_init=10, random_state=0).fit_predict(z)
    assert adjusted_rand_score(y, labels) < 0.6


# ------------------------------------------------------------------------------- options


def two_channels(tmp: Path, gap_on_b: bool = True, fs: float = 20.0, hours: int = 3) -> str:
    """Two channels (A, B) of noise + a 2 Hz tone; B has a 400 s gap in window 01:10."""
    rng = np.random.default_rng(0)
    n = int(hours * 3600 * fs)
    t = np.arange(n) / fs
    st = Stream()
    for sta in ("A", "B"):
        x = (rng.standard_normal(n) * 100 + 300 * np.sin(2 * np.pi * 2.0 * t)).astype(np.int32)
        pieces = [(0, n)]
        if sta == "B" and gap_on_b:
            a, b = int(4300 * fs), int(4700 * fs)
            pieces = [(0, a), (b, n)]
        for a, b in pieces:
            st += Trace(x[a:b], header={"network": "XX", "station": sta, "channel": "HHZ",
                                        "sampling_rate": fs, "starttime": T0 + a / fs})
    path = tmp / "two.mseed"
    st.write(str(path), format="MSEED")
    return str(path)


SMALL = {"window_length": 600.0, "window_step": 600.0, "nperseg": 256, "n_freq": 16,
         "n_time": 20}


def test_stack_drops_windows_invalid_on_any_channel(tmp_path):
    path = two_channels(tmp_path)
    ds, skipped = run(tmp_path, waveforms={"source": "files", "files": [path]},
                      spectrogram=SMALL)
    assert ds["channel"].values.tolist() == ["XX.A..HHZ", "XX.B..HHZ"]
    assert len(ds["window"]) == 17 and ds["valid"].values.all()
    bad = pd.Timestamp("2021-03-12T01:10:00")
    assert bad not in pd.DatetimeIndex(ds["window"].values)
    rows = skipped.set_index("channel")
    assert rows.loc["XX.B..HHZ", "reason"] == "missing_data"
    assert rows.loc["XX.A..HHZ", "reason"] == "skipped_on_another_channel"
    assert (skipped["window_start"] == "2021-03-12T01:10:00").all()
    assert len(ds.attrs["norm_mean"]) == 2


def test_separate_keeps_the_window_for_the_valid_channel(tmp_path):
    path = two_channels(tmp_path)
    ds, skipped = run(tmp_path, waveforms={"source": "files", "files": [path]},
                      preprocess={"channels": "separate"}, spectrogram=SMALL)
    assert len(ds["window"]) == 18
    w = ds.sel(window=np.datetime64("2021-03-12T01:10:00"))
    assert w["valid"].values.tolist() == [True, False]
    assert np.isnan(w["spectrogram"].values[1]).all()
    assert np.isfinite(w["spectrogram"].values[0]).all()
    assert skipped["channel"].tolist() == ["XX.B..HHZ"]
    assert float(ds["missing_fraction"].sel(window=w.window).values[1]) > 0.05


def test_channel_selection(tmp_path):
    path = two_channels(tmp_path, gap_on_b=False)
    ds, skipped = run(tmp_path, waveforms={"source": "files", "files": [path],
                                           "station": "A"}, spectrogram=SMALL)
    assert ds["channel"].values.tolist() == ["XX.A..HHZ"] and skipped.empty


def test_normalisations_and_saved_statistics(tmp_path):
    path = two_channels(tmp_path, gap_on_b=False)
    wf = {"source": "files", "files": [path]}
    raw, _ = run(tmp_path, "none", waveforms=wf, spectrogram={**SMALL, "normalise": "none"})
    glob_, _ = run(tmp_path, "global", waveforms=wf, spectrogram=SMALL)
    per, _ = run(tmp_path, "per", waveforms=wf,
                 spectrogram={**SMALL, "normalise": "per_window"})
    assert raw.attrs["norm_mean"] == "none" and raw["spectrogram"].attrs["units"] \
        == "log10(counts**2/Hz)"
    again = apply_normalisation(raw["spectrogram"], glob_)  # new data, saved statistics
    np.testing.assert_allclose(again.values, glob_["spectrogram"].values, atol=1e-5)
    v = per["spectrogram"].values.astype(np.float64)
    np.testing.assert_allclose(v.mean(axis=(2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(v.std(axis=(2, 3)), 1, atol=1e-5)
    np.testing.assert_allclose(per["norm_mean"].values, raw["spectrogram"].values.mean(
        axis=(2, 3), dtype=np.float64), rtol=1e-6)
    db, _ = run(tmp_path, "db", waveforms=wf,
                spectrogram={**SMALL, "normalise": "none", "power": "db"})
    np.testing.assert_allclose(db["spectrogram"].values, 10 * raw["spectrogram"].values,
                               rtol=1e-5)
    assert db.attrs["power_units"] == "dB re 1 counts**2/Hz"


def test_sub_hour_step_log_scale_and_decimation(tmp_path):
    path = two_channels(tmp_path, gap_on_b=False, hours=2)
    ds, _ = run(tmp_path, waveforms={"source": "files", "files": [path], "station": "A"},
                preprocess={"decimate": 2, "freqmax": 4.5},
                spectrogram={**SMALL, "window_step": 300.0, "frequency_scale": "log",
                             "nperseg": 128})
    assert np.all(np.diff(ds["window"].values) == np.timedelta64(300, "s"))
    derived = json.loads(ds.attrs["settings"])["derived"]
    assert derived["output_sampling_rate"] == {"XX.A..HHZ": 10.0}
    f = ds["frequency"].values
    np.testing.assert_allclose(f[1:] / f[:-1], f[1] / f[0])
    peak = f[int(np.argmax(ds["spectrogram"].isel(channel=0).mean(("window", "time")).values))]
    assert abs(peak - 2.0) < 0.2  # the tone


def test_span_limits_the_windows(tmp_path):
    path = two_channels(tmp_path, gap_on_b=False)
    ds, skipped = run(tmp_path, waveforms={"source": "files", "files": [path],
                                           "starttime": "2021-03-12T00:30:00",
                                           "endtime": "2021-03-12T01:30:00"},
                      spectrogram=SMALL)
    assert pd.DatetimeIndex(ds["window"].values).strftime("%H:%M").tolist() == \
        ["00:30", "00:40", "00:50", "01:00", "01:10", "01:20"]
    assert skipped.empty


# ----------------------------------------------------------------------------- bad input


def _nothing_written(tmp: Path, name: str = "out") -> bool:
    return not any(p.name.startswith((name, f".{name}")) for p in tmp.iterdir())


@pytest.mark.parametrize("case", ["no_match", "unreadable", "no_data_in_span", "nyquist",
                                  "short_window", "mixed_rates", "example_without_files"])
def test_bad_input_stops_with_one_clear_error(tmp_path, case):
    good = two_channels(tmp_path, gap_on_b=False, hours=1)
    wf = {"source": "files", "files": [good]}
    spec = dict(SMALL)
    if case == "no_match":
        wf["files"], match = [str(tmp_path / "nothing*.mseed")], r"files: no file matches"
    elif case == "unreadable":
        bad = tmp_path / "broken.mseed"
        bad.write_text("no seismogram here\n" * 100)
        wf["files"], match = [good, str(bad)], r"obspy cannot read .*broken\.mseed"
    elif case == "no_data_in_span":
        wf |= {"starttime": "2022-01-01", "endtime": "2022-01-02"}
        match = r"data\.waveforms\.files: no data for .* between 2022"
    elif case == "nyquist":
        spec |= {"fmax": 10.0}
        match = r"tremor\.spectrogram\.fmax: 10.0 Hz is not below the Nyquist"
    elif case == "short_window":
        spec |= {"window_length": 10.0, "window_step": 10.0}
        match = r"tremor\.spectrogram\.window_length: 10 s is shorter than one STFT frame"
    elif case == "mixed_rates":
        other = tmp_path / "other.mseed"
        Trace(np.zeros(1000, np.int32), header={
            "network": "XX", "station": "A", "channel": "HHZ", "sampling_rate": 40.0,
            "starttime": T0 + 7200}).write(str(other), format="MSEED")
        wf["files"], match = [good, str(other)], r"XX\.A\.\.HHZ is at 20 Hz in .* but at 40"
    else:
        wf, match = {"source": "example"}, r"data\.waveforms\.source: example, but"
    with pytest.raises(InputError, match=match) as err:
        run(tmp_path, waveforms=wf, spectrogram=spec)
    assert "\n" not in str(err.value)
    assert _nothing_written(tmp_path)


def test_check_config_catches_rate_problems_early():
    stages.check_config(WAVEFORMS, PREPROCESS, SPECTROGRAM)
    with pytest.raises(InputError, match=r"tremor\.spectrogram\.fmax"):
        stages.check_config({**WAVEFORMS, "example": {**WAVEFORMS["example"],
                                                      "sampling_rate": 32.0}},
                            PREPROCESS, {**SPECTROGRAM, "fmax": 16.5})
    with pytest.raises(InputError, match=r"tremor\.spectrogram\.window_length"):
        stages.check_config(WAVEFORMS, PREPROCESS, {**SPECTROGRAM, "window_length": 20.0})
    with pytest.raises(InputError, match=r"tremor\.spectrogram\.fmax"):
        stages.check_config({**WAVEFORMS, "source": "files", "files": [__file__]},
                            {**PREPROCESS, "resample": 5.0}, SPECTROGRAM)
    with pytest.raises(InputError, match=r"remove_response: expected false when "
                       r"data\.waveforms\.stationxml"):
        compose(["tremor.preprocess.remove_response=true"])


# ----------------------------------------------------------------------------- real data


def _no_silent_padding(ds: xr.Dataset, skipped: pd.DataFrame, max_gap: float = 0.05) -> None:
    assert (ds["missing_fraction"].values <= max_gap).all()
    assert np.isfinite(ds["spectrogram"].values).all()
    assert (skipped["missing_fraction"] > max_gap).all()


@pytest.mark.shared_data
def test_real_broadband_day_with_response_removal(shared_data, tmp_path):
    folder = shared_data / "waveforms"
    ds, skipped = run(tmp_path, waveforms={
        "source": "files", "files": [str(folder / "GR.FUR..BHN.D.2015.361")],
        "stationxml": str(folder / "station_FUR.stationxml")},
        preprocess={"remove_response": True, "pre_filt": [0.05, 0.1, 8.0, 9.5]})
    assert ds["spectrogram"].shape == (24, 1, 96, 128)
    assert ds["channel"].values.tolist() == ["GR.FUR..BHN"]
    assert str(ds["window"].values[0]) == "2015-12-27T00:00:00.000000000"
    assert ds.attrs["power_units"] == "log10((m/s)**2/Hz)"
    assert -18 < ds.attrs["norm_mean"][0] < -12  # (m/s)^2/Hz, not counts
    first = ds.isel(window=0)
    assert float(first["missing_fraction"][0]) == pytest.approx(9.77 / 3600, abs=1e-4)
    assert float(first["interpolated_fraction"][0]) > 0  # data start + taper, not zeros
    assert skipped["window_start"].tolist() == ["2015-12-28T00:00:00"]
    _no_silent_padding(ds, skipped)


@pytest.mark.shared_data
def test_real_characteristic_function(shared_data, tmp_path):
    path = shared_data / "waveforms" / "2014251-characteristic_function.mseed"
    ds, skipped = run(tmp_path, waveforms={"source": "files", "files": [str(path)]},
                      preprocess={"freqmin": 0.05},
                      spectrogram={"fmin": 0.1, "fmax": 1.5, "nperseg": 256})
    assert ds["spectrogram"].shape == (24, 1, 96, 128)
    assert ds["channel"].values.tolist() == ["Z7.FLUR.P2.HHZ"]
    np.testing.assert_allclose(ds["frequency"].values[[0, -1]],
                               [0.1 + 1.4 / 192, 1.5 - 1.4 / 192])
    assert skipped.empty  # the closing sample at 24:00 holds no window
    _no_silent_padding(ds, skipped)
    with pytest.raises(InputError, match=r"tremor\.spectrogram\.fmax: 4.0 Hz is not below the "
                                         r"Nyquist frequency 1.5625 Hz"):
        run(tmp_path, "bad", waveforms={"source": "files", "files": [str(path)]})


@pytest.mark.shared_data
def test_real_short_volcanic_record(shared_data, tmp_path):
    path = shared_data / "waveforms" / "MV.MBWH..EHZ.2001-02-28T13.mseed"
    ds, skipped = run(tmp_path, waveforms={"source": "files", "files": [str(path)]},
                      spectrogram={"window_length": 60.0, "window_step": 60.0,
                                   "nperseg": 512})
    assert ds["spectrogram"].shape == (10, 1, 96, 128)
    assert pd.DatetimeIndex(ds["window"].values).strftime("%H:%M").tolist() == \
        [f"13:{m:02d}" for m in range(10)]
    np.testing.assert_allclose(ds["time"].values[[0, -1]], [60 / 256, 60 - 60 / 256])
    assert skipped.empty
    _no_silent_padding(ds, skipped)


def test_fdsn_source_runs_from_a_filled_cache_without_downloading(tmp_path, monkeypatch):
    from seiscluster.tremor import waveforms as wfm

    def no_client(cfg):
        raise AssertionError("an FDSN client was created although the cache is full")

    monkeypatch.setattr(wfm, "_fdsn_client", no_client)
    cfg = {"source": "fdsn", "fdsn_client": "TEST", "fdsn_cache": str(tmp_path / "cache"),
           "network": "XX", "station": "A", "starttime": "2021-03-12T00:00:00",
           "endtime": "2021-03-12T02:00:00"}
    path = wfm.fdsn_cache_path({**WAVEFORMS, **cfg}, T0.ns)
    path.parent.mkdir(parents=True)
    Path(two_channels(tmp_path, gap_on_b=False)).rename(path)
    ds, skipped = run(tmp_path, waveforms=cfg, spectrogram=SMALL)
    assert ds["channel"].values.tolist() == ["XX.A..HHZ"] and len(ds["window"]) == 12
    assert skipped.empty


def test_channels_of_different_rates_share_one_grid(tmp_path):
    rng = np.random.default_rng(2)
    st = Stream()
    for sta, fs in (("A", 20.0), ("B", 50.0)):
        n = int(3600 * fs)
        st += Trace((rng.standard_normal(n) * 100).astype(np.int32), header={
            "network": "XX", "station": sta, "channel": "HHZ", "sampling_rate": fs,
            "starttime": T0})
    st.write(str(tmp_path / "rates.mseed"), format="MSEED")
    ds, skipped = run(tmp_path, waveforms={"source": "files",
                                           "files": [str(tmp_path / "rates.mseed")]},
                      spectrogram=SMALL)
    assert ds["spectrogram"].shape == (6, 2, 16, 20) and skipped.empty
    derived = json.loads(ds.attrs["settings"])["derived"]
    assert derived["sampling_rate"] == {"XX.A..HHZ": 20.0, "XX.B..HHZ": 50.0}
    assert derived["n_frames"] == {"XX.A..HHZ": 92, "XX.B..HHZ": 233}


def test_a_windows_record_is_read_again_as_the_store_saw_it(example):
    """The representative windows' waveforms: the store's own settings rebuild the reading
    and preprocessing; a gap comes back as NaN, a complete window has none."""
    from seiscluster.tremor.spectrogram import window_waveform

    tmp, files, ds, _, _ = example
    job = stages.store_job(str(tmp / "out.zarr"), files)
    missing = ds["missing_fraction"].values[:, 0]
    starts = ds["window"].values.astype("M8[ns]").astype(np.int64)
    complete = np.flatnonzero(missing == 0)
    gap, full = int(np.argmax(missing)), int(complete[complete.size // 2])  # not an end
    assert missing[gap] > 0 and missing[full] == 0
    t, y = window_waveform(job, int(starts[full]), "XX.SYN..HHZ")
    assert t.size == y.size == 3600 * 50 and t[1] == pytest.approx(0.02)
    assert np.isfinite(y).all() and y.std() > 0 and abs(y.mean()) < 0.05 * y.std()
    _, y = window_waveform(job, int(starts[gap]), "XX.SYN..HHZ")
    assert missing[gap] <= np.isnan(y).mean() < missing[gap] + 0.05


def test_a_store_without_its_settings_cannot_be_read_again(example, tmp_path):
    tmp = example[0]
    bare = tmp_path / "bare.zarr"
    xr.open_zarr(tmp / "out.zarr").drop_attrs().to_zarr(bare, zarr_format=2)
    with pytest.raises(InputError, match="records no waveform settings"):
        stages.store_job(str(bare))
