"""Waveform ingest (files, SDS, FDSN cache), merging of gaps/overlaps and preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime
from scipy import signal

from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.tremor import waveforms as wf

T0 = UTCDateTime("2021-03-12T00:00:00")


def trace(data, start=T0, fs=20.0, sta="AAA", cha="HHZ", net="XX", loc="") -> Trace:
    return Trace(np.asarray(data), header={"network": net, "station": sta, "location": loc,
                                           "channel": cha, "sampling_rate": fs,
                                           "starttime": start})


def noise(n, seed=0, dtype=np.int32) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 1000).astype(dtype)


def write(path, *traces, fmt="MSEED") -> str:
    Stream(list(traces)).write(str(path), format=fmt)
    return str(path)


def waveforms(**kw):
    base = {"source": "files", "files": [], "format": None, "network": "*", "station": "*",
            "location": "*", "channel": "*", "starttime": None, "endtime": None,
            "stationxml": None, "sds_root": None, "fdsn_client": "IRIS",
            "fdsn_cache": "cache", "example": {}}
    return {**base, **kw}


# ------------------------------------------------------------------------- configuration


def test_preprocess_defaults_and_rates():
    p = wf.Preprocess.from_config({})
    assert p.detrend == "linear" and p.taper == 0.05 and p.channels == "stack"
    assert p.output_rate(100.0) == 100.0
    assert wf.Preprocess.from_config({"decimate": 4}).output_rate(100.0) == 25.0
    assert wf.Preprocess.from_config({"resample": 40.0}).output_rate(100.0) == 40.0
    assert wf.Preprocess.from_config({"remove_response": True, "response_output": "ACC"}) \
        .units == "m/s**2"


@pytest.mark.parametrize(("cfg", "key"), [
    ({"detrend": "quadratic"}, "tremor.preprocess.detrend"),
    ({"taper": 0.7}, "tremor.preprocess.taper"),
    ({"freqmin": 2.0, "freqmax": 1.0}, "tremor.preprocess.freqmin"),
    ({"freqmin": -1.0}, "tremor.preprocess.freqmin"),
    ({"resample": 0}, "tremor.preprocess.resample"),
    ({"decimate": 2.5}, "tremor.preprocess.decimate"),
    ({"decimate": 2, "resample": 10.0}, "tremor.preprocess.decimate"),
    ({"pre_filt": [1, 2, 3]}, "tremor.preprocess.pre_filt"),
    ({"pre_filt": [1, 3, 2, 4]}, "tremor.preprocess.pre_filt"),
    ({"max_gap_fraction": 1.0}, "tremor.preprocess.max_gap_fraction"),
    ({"channels": "both"}, "tremor.preprocess.channels"),
    ({"response_output": "VELOCITY"}, "tremor.preprocess.response_output"),
    ({"remove_response": "maybe"}, "tremor.preprocess.remove_response"),
    ({"bandpass": 1}, "tremor.preprocess.bandpass"),
])
def test_preprocess_config_errors_name_the_key(cfg, key):
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        wf.Preprocess.from_config(cfg)


def test_rate_checks_name_the_key():
    with pytest.raises(InputError, match=r"tremor\.preprocess\.freqmax.*Nyquist"):
        wf.Preprocess.from_config({"freqmax": 12.0}).check_rate(20.0, "XX.AAA..HHZ")
    with pytest.raises(InputError, match=r"tremor\.preprocess\.resample"):
        wf.Preprocess.from_config({"resample": 7.3331}).check_rate(20.0, "XX.AAA..HHZ")
    wf.Preprocess.from_config({"resample": 25.0}).check_rate(20.0, "XX.AAA..HHZ")


def test_pad_holds_ten_periods_of_the_lowest_frequency():
    assert wf.pad_seconds(wf.Preprocess.from_config({"freqmin": 0.5}), 1.0) == 60.0
    assert wf.pad_seconds(wf.Preprocess.from_config({"freqmin": 0.05}), 0.1) == 200.0
    assert wf.pad_seconds(wf.Preprocess.from_config({"freqmin": None}), 0.0) == 60.0


def test_waveforms_section_checks(tmp_path):
    def check(**kw):
        return section("data.waveforms", waveforms(**kw))

    wf.check_waveforms(check(source="example", example={"days": 2}))
    with pytest.raises(InputError, match=r"data\.waveforms\.source"):
        check(source="ftp")
    with pytest.raises(InputError, match=r"data\.waveforms\.files: no file matches"):
        wf.check_waveforms(check(files=[str(tmp_path / "*.mseed")]))
    with pytest.raises(InputError, match=r"data\.waveforms\.files: expected files"):
        check(files=[])
    with pytest.raises(InputError, match=r"data\.waveforms\.endtime: expected a time "
                       r"\(required when data\.waveforms\.source is fdsn\)"):
        check(source="fdsn", starttime="2021-01-01")
    with pytest.raises(InputError, match=r"data\.waveforms\.sds_root"):
        check(source="sds", sds_root=str(tmp_path / "none"))
    with pytest.raises(InputError, match=r"data\.waveforms\.starttime"):
        check(source="example", starttime="yesterday")
    with pytest.raises(InputError, match=r"data\.waveforms\.endtime"):
        check(source="example", starttime="2021-01-02", endtime="2021-01-01")
    with pytest.raises(InputError, match=r"data\.waveforms\.stationxml"):
        check(source="example", stationxml=str(tmp_path / "x.xml"))
    with pytest.raises(InputError, match=r"data\.waveforms\.station"):
        check(source="example", station="A.B")
    with pytest.raises(InputError, match=r"data\.waveforms\.example\.days"):
        check(source="example", example={"days": 0})


def test_expand_files_globs_folders_and_errors(tmp_path):
    a = write(tmp_path / "a.mseed", trace(noise(100)))
    (tmp_path / "sub").mkdir()
    b = write(tmp_path / "sub" / "b.mseed", trace(noise(100)))
    (tmp_path / "sub" / ".hidden").write_text("x")
    assert wf.expand_files([str(tmp_path / "*.mseed")]) == [a]
    assert wf.expand_files([str(tmp_path / "**" / "*.mseed")]) == [a, b]
    assert wf.expand_files(str(tmp_path / "sub")) == [b]
    assert wf.expand_files([a, a]) == [a]
    with pytest.raises(InputError, match="no file matches"):
        wf.expand_files([a, str(tmp_path / "missing*.sac")])


# ------------------------------------------------------------------------------- sources


def test_file_source_indexes_channels_span_and_reads_slices(tmp_path):
    f1 = write(tmp_path / "1.mseed", trace(noise(2000)), trace(noise(2000, 1), cha="HHN"))
    f2 = write(tmp_path / "2.sac", trace(noise(2000, 2).astype(np.float32), start=T0 + 100),
               fmt="SAC")
    src = wf.FileSource([f1, f2], codes=wf.codes_of(waveforms(channel="HH?")))
    assert src.channels == ("XX.AAA..HHN", "XX.AAA..HHZ")
    assert src.sampling_rates == {"XX.AAA..HHN": 20.0, "XX.AAA..HHZ": 20.0}
    assert src.start_ns == T0.ns and src.end_ns == (T0 + 200).ns
    st = src.read((T0 + 10).ns, (T0 + 20).ns)
    assert {tr.id for tr in st} == set(src.channels)
    assert all(tr.stats.starttime >= T0 + 10 and tr.stats.endtime <= T0 + 20 for tr in st)
    only = wf.FileSource([f1, f2], codes=wf.codes_of(waveforms(channel="HHN")))
    assert only.channels == ("XX.AAA..HHN",)
    sac = wf.FileSource([f2], format="SAC")  # data.waveforms.format
    assert sac.channels == ("XX.AAA..HHZ",) and len(sac.read(T0.ns, (T0 + 300).ns)) == 1
    with pytest.raises(InputError, match="obspy cannot read"):
        wf.FileSource([f1], format="SAC")


def test_reading_one_channel_reads_only_the_files_that_hold_it(tmp_path):
    both = write(tmp_path / "both.mseed", trace(noise(2000)), trace(noise(2000, 1), cha="HHN"))
    north = write(tmp_path / "north.mseed", trace(noise(2000, 2), start=T0 + 100, cha="HHN"))
    src = wf.FileSource([both, north])
    st = src.read((T0 + 90).ns, (T0 + 110).ns, "XX.AAA..HHZ")
    assert {tr.id for tr in st} == {"XX.AAA..HHZ"}
    assert len(src.read((T0 + 90).ns, (T0 + 110).ns, "XX.AAA..HHN")) == 2
    (tmp_path / "north.mseed").write_bytes(b"gone")  # a file that is not read cannot fail
    assert len(src.read((T0 + 90).ns, (T0 + 110).ns, "XX.AAA..HHZ")) == 1
    with pytest.raises(InputError, match=r"obspy cannot read .*north"):
        src.read((T0 + 90).ns, (T0 + 110).ns)


def test_file_source_span_and_bad_files(tmp_path):
    f1 = write(tmp_path / "1.mseed", trace(noise(2000)))
    span = (T0 + 20).ns, (T0 + 50).ns
    src = wf.FileSource([f1], span=span)
    assert (src.start_ns, src.end_ns) == span
    with pytest.raises(InputError, match=r"data\.waveforms\.files: no data for .* between"):
        wf.FileSource([f1], span=((T0 + 500).ns, (T0 + 600).ns))
    with pytest.raises(InputError, match=r"no data for \*\.\*\.\*\.BHZ"):
        wf.FileSource([f1], codes=wf.codes_of(waveforms(channel="BHZ")))
    bad = tmp_path / "bad.mseed"
    bad.write_bytes(b"this is not seismic data" * 50)
    with pytest.raises(InputError, match=r"data\.waveforms\.files: obspy cannot read .*bad"):
        wf.FileSource([f1, str(bad)])


def test_mixed_sampling_rates_of_one_channel_are_an_error(tmp_path):
    f1 = write(tmp_path / "1.mseed", trace(noise(200)))
    f2 = write(tmp_path / "2.mseed", trace(noise(400), start=T0 + 3600, fs=40.0))
    with pytest.raises(InputError, match=r"XX\.AAA\.\.HHZ is at 20 Hz in .*1\.mseed but at 40"):
        wf.FileSource([f1, f2])
    st = Stream([trace(noise(200)), trace(noise(400), start=T0 + 3600, fs=40.0)])
    with pytest.raises(InputError, match="cannot be merged"):
        wf.merge_channel(st, "XX.AAA..HHZ")


def test_sds_source(tmp_path):
    root = tmp_path / "sds"
    for day in range(2):
        t = T0 + day * 86400
        folder = root / "2021" / "XX" / "AAA" / "HHZ.D"
        folder.mkdir(parents=True, exist_ok=True)
        jday = t.julday
        write(folder / f"XX.AAA..HHZ.D.2021.{jday:03d}", trace(noise(1728000, day), start=t))
    codes = wf.codes_of(waveforms(network="XX", station="AAA"))
    src = wf.SDSSource(str(root), codes, ((T0 + 3600).ns, (T0 + 90000).ns))
    assert src.channels == ("XX.AAA..HHZ",) and src.sampling_rates["XX.AAA..HHZ"] == 20.0
    st = src.read((T0 + 86000).ns, (T0 + 87000).ns)  # across midnight
    segs = wf.merge_channel(st, "XX.AAA..HHZ")
    assert len(segs) == 1 and segs[0][2].size == 20001
    assert len(src.read((T0 + 86000).ns, (T0 + 87000).ns, "XX.AAA..HHZ")) == len(st)
    assert len(src.read((T0 + 86000).ns, (T0 + 87000).ns, "XX.AAA..HHN")) == 0
    with pytest.raises(InputError, match=r"data\.waveforms\.sds_root: no data"):
        wf.SDSSource(str(root), codes, ((T0 + 5 * 86400).ns, (T0 + 6 * 86400).ns))
    src2 = wf.open_source(waveforms(source="sds", sds_root=str(root), starttime=str(T0),
                                    endtime=str(T0 + 7200)))
    assert src2.channels == ("XX.AAA..HHZ",)


class NoClient:
    """An FDSN client that must not be used: every access fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the FDSN client was used ({name}) although the cache is full")


class FakeClient:
    def __init__(self):
        self.calls = []

    def get_waveforms(self, net, sta, loc, cha, t0, t1):
        from obspy.clients.fdsn.header import FDSNNoDataException

        self.calls.append((net, sta, loc, cha, t0, t1))
        if t0 >= T0 + 86400:
            raise FDSNNoDataException("No data")
        return Stream([trace(noise(int((t1 - t0) * 20)), start=t0, sta="BBB")])


def test_fdsn_reads_a_filled_cache_without_the_client(tmp_path):
    cfg = waveforms(source="fdsn", fdsn_cache=str(tmp_path / "cache"), fdsn_client="TEST",
                    network="XX", station="BBB", starttime=str(T0 + 600),
                    endtime=str(T0 + 86400 + 600))
    for day in range(2):
        path = wf.fdsn_cache_path(cfg, (T0 + day * 86400).ns)
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, trace(noise(1728000, day), start=T0 + day * 86400, sta="BBB"))
    assert path.name == "XX.BBB.ALL.ALL.2021-03-13.mseed"
    src = wf.open_source(cfg, client=NoClient())
    assert src.channels == ("XX.BBB..HHZ",)
    assert (src.start_ns, src.end_ns) == ((T0 + 600).ns, (T0 + 86400 + 600).ns)


def test_fdsn_downloads_missing_days_once(tmp_path):
    cfg = waveforms(source="fdsn", fdsn_cache=str(tmp_path / "cache"), fdsn_client="TEST",
                    starttime=str(T0), endtime=str(T0 + 2 * 86400))
    client = FakeClient()
    files = wf.fdsn_cache_files(cfg, client=client)
    assert len(client.calls) == 2 and len(files) == 1  # the second day has no data
    empty = wf.fdsn_cache_path(cfg, (T0 + 86400).ns)
    assert empty.exists() and empty.stat().st_size == 0
    assert wf.fdsn_cache_files(cfg, client=NoClient()) == files  # a rerun never downloads


def test_fdsn_download_failure_is_an_input_error(tmp_path):
    class Broken:
        def get_waveforms(self, *args):
            raise ConnectionError("unreachable")

    cfg = waveforms(source="fdsn", fdsn_cache=str(tmp_path / "c"), starttime=str(T0),
                    endtime=str(T0 + 100))
    with pytest.raises(InputError, match=r"data\.waveforms\.fdsn_client: download"):
        wf.fdsn_cache_files(cfg, client=Broken())
    assert not list((tmp_path / "c").rglob("*.mseed"))  # nothing partial


# ----------------------------------------------------------------- merging and preprocessing


def test_gaps_stay_gaps_and_conflicting_overlaps_are_masked():
    x = noise(1000)
    st = Stream([trace(x[:400]), trace(x[500:], start=T0 + 25.0)])  # 100-sample gap
    pieces = wf.merge_channel(st, "XX.AAA..HHZ")
    assert [(p[0], p[2].size) for p in pieces] == [(T0.ns, 400), ((T0 + 25).ns, 500)]
    np.testing.assert_array_equal(pieces[1][2], x[500:])
    same = Stream([trace(x[:600]), trace(x[500:], start=T0 + 25.0)])  # identical overlap
    assert [p[2].size for p in wf.merge_channel(same, "XX.AAA..HHZ")] == [1000]
    y = x.copy()
    y[500:600] += 1
    conflict = Stream([trace(x[:600]), trace(y[500:], start=T0 + 25.0)])
    pieces = wf.merge_channel(conflict, "XX.AAA..HHZ")
    assert [p[2].size for p in pieces] == [500, 400]  # disagreeing samples masked


def test_nan_samples_are_gaps():
    x = np.random.default_rng(0).standard_normal(300)
    x[100:110] = np.nan
    pieces = wf.merge_channel(Stream([trace(x)]), "XX.AAA..HHZ")
    assert [p[2].size for p in pieces] == [100, 190]
    assert pieces[1][0] == (T0 + 110 / 20).ns


def test_segments_are_preprocessed_separately_and_flag_their_taper():
    x = noise(4000).astype(np.float64) + 5000.0
    st = Stream([trace(x[:2000]), trace(x[2500:], start=T0 + 125.0)])
    prep = wf.Preprocess.from_config({"taper": 0.05, "freqmin": None, "detrend": "demean"})
    segs = wf.preprocess_stream(st, "XX.AAA..HHZ", prep, pad=60.0)
    assert [s.data.size for s in segs] == [2000, 1500]
    assert [s.edge for s in segs] == [100, 75]
    assert abs(segs[1].data[75:-75].mean()) < 200  # demeaned on its own
    assert segs[1].raw_start_ns == (T0 + 125).ns and segs[1].raw_end_ns == (T0 + 200).ns
    short = wf.preprocess_stream(st, "XX.AAA..HHZ", prep, pad=60.0, min_samples=1600)
    assert short[0].data.size == 2000 and short[1].data.size == 0  # counted, never used


@pytest.mark.parametrize("detrend", ["linear", "demean", "none"])
def test_detrend_options(detrend):
    x = np.arange(1000.0) * 0.3 + 7.0
    prep = wf.Preprocess.from_config({"detrend": detrend, "taper": 0.0, "freqmin": None})
    y, edge, fs = wf.preprocess_segment(x, 20.0, prep, pad=60.0)
    assert edge == 0 and fs == 20.0
    expected = {"linear": 0.0, "demean": np.abs(x - x.mean()).max(),
                "none": np.abs(x).max()}[detrend]
    assert np.abs(y).max() == pytest.approx(expected, abs=1e-9)


def test_taper_is_capped_by_the_pad():
    prep = wf.Preprocess.from_config({"taper": 0.05, "freqmin": None, "detrend": "none"})
    y, edge, _ = wf.preprocess_segment(np.ones(100_000), 20.0, prep, pad=60.0)
    assert edge == 1200  # min(5 % of 100000, 60 s * 20 Hz)
    assert y[0] == 0.0 and y[edge] == 1.0 and y[-1] < 1e-5
    _, edge, _ = wf.preprocess_segment(np.ones(1000), 20.0, prep, pad=60.0)
    assert edge == 50


@pytest.mark.parametrize(("freqmin", "freqmax", "kept", "removed"), [
    (2.0, 4.0, 3.0, (0.5, 8.0)),
    (2.0, None, 6.0, (0.5,)),
    (None, 2.0, 0.5, (6.0,)),
])
def test_band_pass_options(freqmin, freqmax, kept, removed):
    fs = 20.0
    t = np.arange(20_000) / fs
    tones = {f: np.sin(2 * np.pi * f * t) for f in (kept, *removed)}
    prep = wf.Preprocess.from_config({"freqmin": freqmin, "freqmax": freqmax, "taper": 0.0,
                                      "detrend": "none"})
    for f, x in tones.items():
        y, _, _ = wf.preprocess_segment(x, fs, prep, pad=60.0)
        rms = y[5000:].std() * np.sqrt(2)
        assert (rms > 0.8) if f == kept else (rms < 0.05), (f, rms)


@pytest.mark.parametrize(("cfg", "rate", "n_out"), [
    ({"resample": 8.0}, 8.0, 4000),
    ({"decimate": 4}, 5.0, 2500),
    ({"resample": 50.0}, 50.0, 25000),
])
def test_resample_and_decimate(cfg, rate, n_out):
    fs = 20.0
    t = np.arange(10_000) / fs
    x = np.sin(2 * np.pi * 1.0 * t)
    prep = wf.Preprocess.from_config({**cfg, "taper": 0.05, "freqmin": None, "detrend": "none"})
    y, edge, fs_out = wf.preprocess_segment(x, fs, prep, pad=60.0)
    assert fs_out == rate and y.size == n_out
    assert edge == int(np.ceil(500 * rate / fs))
    t_out = np.arange(y.size) / rate
    mid = slice(y.size // 4, 3 * y.size // 4)
    np.testing.assert_allclose(y[mid], np.sin(2 * np.pi * t_out[mid]), atol=0.02)


@pytest.mark.shared_data
@pytest.mark.parametrize(("output", "water_level"), [("VEL", 60.0), ("DISP", 60.0),
                                                     ("ACC", 60.0), ("VEL", None)])
def test_response_removal_matches_obspy(shared_data, output, water_level):
    import obspy

    folder = shared_data / "waveforms"
    tr = obspy.read(str(folder / "GR.FUR..BHN.D.2015.361"))[0]
    tr.trim(tr.stats.starttime, tr.stats.starttime + 1800)
    inv = wf.read_inventory(str(folder / "station_FUR.stationxml"))
    prep = wf.Preprocess.from_config({"remove_response": True, "pre_filt": [0.05, 0.1, 8, 9.5],
                                      "freqmin": None, "detrend": "linear", "taper": 0.05,
                                      "response_output": output, "water_level": water_level})
    ours, _, _ = wf.preprocess_segment(tr.data, 20.0, prep, pad=1e9, channel=tr.id,
                                       starttime=tr.stats.starttime, inventory=inv)
    ref = tr.copy()
    ref.data = ref.data.astype(np.float64)
    ref.detrend("linear")
    ref.taper(0.05, type="cosine")
    ref.remove_response(inv, output=output, pre_filt=[0.05, 0.1, 8, 9.5],
                        water_level=water_level, zero_mean=False, taper=False)
    scale = np.abs(ref.data).max()
    assert 1e-10 < scale < 1e-3  # m, m/s or m/s**2, not counts
    np.testing.assert_allclose(ours, ref.data, atol=1e-3 * scale)
    with pytest.raises(InputError, match=r"data\.waveforms\.stationxml: no response"):
        wf.preprocess_segment(tr.data, 20.0, prep, pad=60.0, channel="GR.XYZ..BHZ",
                              starttime=tr.stats.starttime, inventory=inv)


def test_response_removal_needs_an_inventory():
    prep = wf.Preprocess.from_config({"remove_response": True})
    with pytest.raises(InputError, match=r"remove_response: needs data\.waveforms\.stationxml"):
        wf.preprocess_segment(np.ones(100), 20.0, prep, pad=60.0)


def test_unreadable_stationxml(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<nothing/>")
    with pytest.raises(InputError, match=r"data\.waveforms\.stationxml: obspy cannot read"):
        wf.read_inventory(str(bad))


def test_filter_design_is_the_obspy_default():
    sos = wf._filter_sos(wf.Preprocess.from_config({"freqmin": 1.0, "freqmax": 4.0}), 20.0)
    ref = signal.butter(4, [1.0, 4.0], btype="bandpass", fs=20.0, output="sos")
    np.testing.assert_allclose(sos, ref)
