"""Spectrogram computation: settings, window grid, resampling, gap policy, normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from scipy import signal

from seiscluster.errors import InputError
from seiscluster.tremor import spectrogram as sp
from seiscluster.tremor.waveforms import NS, Segment

T0 = np.datetime64("2021-03-12T00:00:00", "ns").astype(np.int64)
FS = 20.0


def settings(**kw) -> sp.SpectrogramSettings:
    base = {"window_length": 600.0, "window_step": 600.0, "nperseg": 256, "fmin": 1.0,
            "fmax": 4.0, "n_freq": 24, "n_time": 32}
    return sp.SpectrogramSettings.from_config({**base, **kw})


def segment(x, start_ns=T0, fs=FS, edge=0) -> Segment:
    x = np.asarray(x, dtype=np.float64)
    end = start_ns + round(x.size * NS / fs)
    return Segment("XX.AAA..HHZ", int(start_ns), fs, x, edge, int(start_ns), int(end))


def noise(n, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def starts(s, n) -> np.ndarray:
    return T0 + np.arange(n, dtype=np.int64) * s.step_ns


def scipy_reference(x, s, plan) -> np.ndarray:
    """scipy.signal.spectrogram + the same band selection and cell means, log10."""
    _, _, sxx = signal.spectrogram(x, FS, window=s.taper, nperseg=s.nperseg,
                                   noverlap=s.nperseg - s.hop)
    return np.log10(plan.frequency_matrix @ sxx[plan.bins] @ plan.time_matrix.T)


# ------------------------------------------------------------------------------ settings


def test_defaults_are_the_reference_shape():
    s = sp.SpectrogramSettings.from_config({})
    assert (s.n_freq, s.n_time, s.fmin, s.fmax) == (96, 128, 1.0, 4.0)
    assert s.hop == 512 and s.window_length == 3600.0 and s.normalise == "global"
    assert s.frequencies().size == 96 and s.times().size == 128
    assert s.times()[0] == pytest.approx(3600 / 256)
    assert s.frequency_edges()[[0, -1]].tolist() == [1.0, 4.0]


@pytest.mark.parametrize(("cfg", "key"), [
    ({"window_length": 0}, "window_length"),
    ({"window_step": -1.0}, "window_step"),
    ({"origin": "noon"}, "origin"),
    ({"nperseg": 1}, "nperseg"),
    ({"nperseg": 100.5}, "nperseg"),
    ({"noverlap": 1024}, "noverlap"),
    ({"taper": "bogus"}, "taper"),
    ({"fmin": 5.0}, "fmin"),
    ({"fmax": 0}, "fmax"),
    ({"n_freq": 0}, "n_freq"),
    ({"n_time": 2.0}, "n_time"),
    ({"frequency_scale": "mel"}, "frequency_scale"),
    ({"frequency_scale": "log", "fmin": 0.0}, "fmin"),
    ({"power": "ln"}, "power"),
    ({"normalise": "minmax"}, "normalise"),
    ({"colour": "red"}, "colour"),
    ({"pooling": "median"}, "pooling"),
    ({"pooling": "percentile", "pooling_percentile": -5}, "pooling_percentile"),
])
def test_settings_errors_name_the_key(cfg, key):
    with pytest.raises(InputError, match=rf"tremor\.spectrogram\.{key}"):
        sp.SpectrogramSettings.from_config(cfg)


def test_rate_checks():
    s = settings()
    s.check_rate(20.0, "XX.AAA..HHZ")
    with pytest.raises(InputError, match=r"tremor\.spectrogram\.fmax: 4.0 Hz is not below"):
        s.check_rate(8.0, "XX.AAA..HHZ")
    with pytest.raises(InputError, match=r"tremor\.spectrogram\.window_length: 10 s is short"):
        settings(window_length=10.0).check_rate(20.0, "XX.AAA..HHZ")


def test_windows_are_aligned_to_the_origin():
    s = settings(window_length=3600.0, window_step=1800.0, origin="2000-01-01T00:00:00")
    t0 = T0 + 1234 * NS
    w = sp.window_starts(t0, T0 + 3 * 3600 * NS, s)
    assert w[0] == T0 and np.all(np.diff(w) == 1800 * NS) and w[-1] == T0 + 9000 * NS
    assert np.all((w - s.origin_ns) % s.step_ns == 0)
    assert sp.window_starts(T0, T0 + 1, s).tolist() == [T0]
    odd = settings(origin="2021-03-12T00:03:20")
    assert sp.window_starts(T0, T0 + 1800 * NS, odd)[0] == T0 - 400 * NS


# ------------------------------------------------------------------------------ resampling


def test_cell_average_matrix_averages_and_interpolates():
    points = np.arange(0.0, 10.0, 0.5)
    m = sp.cell_average_matrix(points, np.linspace(1.0, 9.0, 5))
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    np.testing.assert_allclose(m @ (3 * points + 1), 3 * np.array([2, 4, 6, 8]) + 1)
    fine = sp.cell_average_matrix(points, np.linspace(1.0, 2.0, 41))  # upsampling
    np.testing.assert_allclose(fine @ points, np.linspace(1.0, 2.0, 41)[:-1] + 0.0125)
    edge = sp.cell_average_matrix(points, np.array([-2.0, -1.0]))  # beyond: constant
    np.testing.assert_allclose(edge @ points, [0.0])


def test_plan_shapes():
    s = settings()
    plan = sp.Plan(s, FS)
    assert plan.n_frames == (12000 - 256) // 128 + 1
    assert plan.frequency_matrix.shape == (24, plan.bin_frequencies.size)
    assert plan.time_matrix.shape == (32, plan.n_frames)
    assert plan.bin_frequencies[0] <= 1.0 and plan.bin_frequencies[-1] >= 4.0


# ---------------------------------------------------------------------------- computation


@pytest.mark.parametrize(("noverlap", "taper"), [(None, "hann"), (192, "hamming"),
                                                  (0, "boxcar"), (100, "blackman")])
def test_equals_scipy_spectrogram_with_the_same_band_and_resampling(noverlap, taper):
    s = settings(noverlap=noverlap, taper=taper)
    plan = sp.Plan(s, FS)
    x = noise(3 * 12000) * 50 + 1e4  # a large offset: the frame means must go
    res = sp.compute_windows([segment(x)], starts(s, 3), plan, 0.05)
    assert (res.reason == 0).all() and (res.missing_fraction == 0).all()
    assert (res.interpolated_fraction == 0).all()
    for i in range(3):
        ref = scipy_reference(x[i * 12000:(i + 1) * 12000], s, plan)
        np.testing.assert_allclose(res.log_power[i], ref, rtol=0, atol=2e-6)  # float32


def test_pool_index_covers_every_frame_once_and_fills_empty_cells():
    centres = np.array([0.5, 1.5, 2.5, 3.5, 4.5])
    idx = sp.pool_index(centres, np.array([0.0, 2.0, 4.0, 6.0]))
    assert idx.tolist() == [[0, 1], [2, 3], [4, -1]]
    sparse = sp.pool_index(np.array([1.0, 5.0]), np.linspace(0, 6, 7))
    assert sparse[:, 0].tolist() == [0, 0, 0, 1, 1, 1]  # empty cells: the nearest frame


def test_pool_time_max_and_percentile():
    cells = np.arange(10.0).reshape(1, 5, 2)  # (window, frame, frequency)
    idx = np.array([[0, 1], [2, 3], [4, -1]])
    assert sp.pool_time(cells, idx, "max", 90)[0, :, 0].tolist() == [2.0, 6.0, 8.0]
    med = sp.pool_time(cells, idx, "percentile", 50)
    assert med[0, :, 1].tolist() == [2.0, 6.0, 9.0]


@pytest.mark.parametrize("q", [0.0, 37.5, 90.0, 100.0])
def test_pool_time_percentile_equals_numpy(q):
    rng = np.random.default_rng(2)
    cells = rng.random((3, 23, 4))
    idx = sp.pool_index(np.arange(23) + 0.5, np.linspace(0, 23, 6))
    padded = np.where((idx < 0)[None, :, :, None], np.nan, cells[:, np.maximum(idx, 0)])
    np.testing.assert_allclose(sp.pool_time(cells, idx, "percentile", q),
                               np.nanpercentile(padded, q, axis=2))


@pytest.mark.parametrize("pooling", ["max", "percentile"])
def test_max_pooling_keeps_a_transient_that_mean_pooling_dilutes(pooling):
    """One 3 s burst in 10 minutes of noise: mean pooling over 4 cells of ~14 frames each
    dilutes it; max (or a high percentile) keeps its frame's power."""
    s_mean = settings(n_time=4)
    s_pool = settings(n_time=4, pooling=pooling, pooling_percentile=99)
    x = noise(12000)
    x[6000:6060] += 40 * noise(60, seed=1)
    mean = sp.compute_windows([segment(x)], starts(s_mean, 1), sp.Plan(s_mean, FS), 0.05)
    pool = sp.compute_windows([segment(x)], starts(s_pool, 1), sp.Plan(s_pool, FS), 0.05)
    quiet = sp.compute_windows([segment(noise(12000))], starts(s_pool, 1),
                               sp.Plan(s_pool, FS), 0.05)
    cell = 2  # the burst is at 300 s of 600
    burst_mean = mean.log_power[0, :, cell].mean() - mean.log_power[0, :, 0].mean()
    burst_pool = pool.log_power[0, :, cell].mean() - pool.log_power[0, :, 0].mean()
    assert burst_pool > burst_mean + 0.5
    assert np.ptp(quiet.log_power[0].mean(axis=0)) < 0.3  # stationary stays flat


def test_mean_pooling_is_the_reference_resampling():
    s = settings()
    x = noise(12000)
    res = sp.compute_windows([segment(x)], starts(s, 1), sp.Plan(s, FS), 0.05)
    np.testing.assert_allclose(res.log_power[0], scipy_reference(x, s, sp.Plan(s, FS)),
                               atol=1e-5)


def test_a_tone_lands_in_its_frequency_cell():
    s = settings()
    t = np.arange(12000) / FS
    res = sp.compute_windows([segment(np.sin(2 * np.pi * 2.53 * t))], starts(s, 1),
                             sp.Plan(s, FS), 0.05)
    peak = s.frequencies()[res.log_power[0].mean(axis=1).argmax()]
    assert abs(peak - 2.53) < (s.fmax - s.fmin) / s.n_freq


def test_log_frequency_scale():
    s = settings(frequency_scale="log", fmin=0.5, fmax=8.0, n_freq=16)
    e = s.frequency_edges()
    np.testing.assert_allclose(e[1:] / e[:-1], 2 ** (4 / 16))
    np.testing.assert_allclose(s.frequencies(), np.sqrt(e[1:] * e[:-1]))
    res = sp.compute_windows([segment(noise(12000))], starts(s, 1), sp.Plan(s, FS), 0.05)
    assert np.isfinite(res.log_power).all()


def test_window_start_between_samples():
    s = settings()
    x = noise(40000)
    off = T0 - round(0.77 * NS)  # data start 0.77 s before the first window, off-grid
    res = sp.compute_windows([segment(x, start_ns=off)], starts(s, 2), sp.Plan(s, FS), 0.05)
    assert (res.reason == 0).all()
    first = round(0.77 * FS)  # the window's first sample is the nearest one
    ref = scipy_reference(x[first:first + 12000], s, sp.Plan(s, FS))
    np.testing.assert_allclose(res.log_power[0], ref, atol=2e-6)


def test_power_in_db_and_log10():
    p = np.full((1, 2, 2), 100.0)
    assert sp.to_log(p, "log10")[0, 0, 0] == pytest.approx(2.0)
    assert sp.to_log(p, "db")[0, 0, 0] == pytest.approx(20.0)
    q = np.array([[[1.0, 0.0]]])
    assert sp.to_log(q, "log10")[0, 0, 1] == pytest.approx(-20.0)  # floored, not -inf
    assert np.isnan(sp.to_log(np.full((1, 1, 2), np.nan), "log10")).all()
    assert np.isneginf(sp.to_log(np.zeros((1, 2, 2)), "log10")).all()  # flagged flat


# ------------------------------------------------------------------------------ gap policy


def _gap_case(gap_seconds, gap_at=300.0, edge=0):
    s = settings()
    x = noise(12000, seed=4) * 10
    a, b = int(gap_at * FS), int((gap_at + gap_seconds) * FS)
    segs = [segment(x[:a], edge=edge), segment(x[b:], start_ns=T0 + round(b / FS * NS),
                                               edge=edge)]
    plan = sp.Plan(s, FS)
    full = sp.compute_windows([segment(x)], starts(s, 1), plan, 0.05)
    return s, plan, x, a, b, sp.compute_windows(segs, starts(s, 1), plan, 0.05), full


def test_small_gap_is_interpolated_not_zero_filled():
    s, plan, x, a, b, res, full = _gap_case(12.0)
    assert res.reason[0] == 0
    assert res.missing_fraction[0] == pytest.approx(12.0 / 600.0)
    frames_touching = np.sum((plan.frame_offsets < b) & (plan.frame_offsets + 256 > a))
    assert res.interpolated_fraction[0] == pytest.approx(frames_touching / plan.n_frames)
    ours = res.log_power[0]
    zero_filled = x.copy()
    zero_filled[a:b] = 0.0
    zf = sp.compute_windows([segment(zero_filled)], starts(s, 1), plan, 0.05).log_power[0]
    ref = full.log_power[0]
    cell = np.argmin(np.abs(s.times() - (a + b) / 2 / FS))
    # zero-filling makes a visible dip at the gap; the policy does not
    assert (ref - zf)[:, cell].mean() > 0.1
    assert abs((ref - ours)[:, cell].mean()) < 0.1
    # away from the gap, nothing changes
    far = np.abs(s.times() - (a + b) / 2 / FS) > 60
    np.testing.assert_allclose(ours[:, far], ref[:, far], atol=1e-6)


def test_frames_in_the_taper_are_not_used():
    _, plan, _, a, b, res, _ = _gap_case(6.0, edge=40)
    off = plan.frame_offsets
    touching = ((off < b + 40) & (off + 256 > a - 40)) | (off < 40) | (off + 256 > 12000 - 40)
    assert res.interpolated_fraction[0] == pytest.approx(touching.mean())


def test_large_gap_skips_the_window():
    _, _, _, _, _, res, _ = _gap_case(60.0)
    assert res.reason[0] == 1 and sp.REASONS[1] == "missing_data"
    assert res.missing_fraction[0] == pytest.approx(0.1)
    assert np.isnan(res.log_power[0]).all() and np.isnan(res.interpolated_fraction[0])


def test_max_gap_fraction_threshold_is_inclusive():
    s = settings()
    x = noise(12000)
    segs = [segment(x[:11400])]  # 5 % missing at the end
    res = sp.compute_windows(segs, starts(s, 1), sp.Plan(s, FS), 0.05)
    assert res.reason[0] == 0 and res.missing_fraction[0] == pytest.approx(0.05)
    assert sp.compute_windows(segs, starts(s, 1), sp.Plan(s, FS), 0.04).reason[0] == 1


def test_no_complete_frame_and_flat_data():
    s = settings()
    plan = sp.Plan(s, FS)
    pieces = [segment(noise(200, i), start_ns=T0 + i * 10 * NS) for i in range(60)]  # 10 s
    res = sp.compute_windows(pieces, starts(s, 1), plan, 0.05)
    assert res.missing_fraction[0] == 0 and res.reason[0] == 2
    flat = sp.compute_windows([segment(np.zeros(12000))], starts(s, 1), plan, 0.05)
    assert flat.reason[0] == 3 and np.isnan(flat.log_power[0]).all()
    assert np.isnan(flat.mean[0]) and np.isnan(flat.m2[0])
    none = sp.compute_windows([], starts(s, 1), plan, 0.05)
    assert none.reason[0] == 1 and none.missing_fraction[0] == 1.0


def test_interpolate_frames():
    frames = np.arange(6.0)[None, :, None] * np.ones((1, 6, 2))
    ok = np.array([[False, True, False, False, True, False]])
    out = sp.interpolate_frames(frames.copy() * ok[:, :, None], ok)
    np.testing.assert_allclose(out[0, :, 0], [1, 1, 2, 3, 4, 4])


# --------------------------------------------------------------------------- normalisation


def test_combined_statistics_equal_direct_ones():
    rng = np.random.default_rng(0)
    v = rng.normal(3.0, 2.0, (7, 4, 5)).astype(np.float32)
    mean, m2 = sp.normalisation_statistics(v)
    total, std = sp.combine_statistics(mean, m2, 20)
    assert total == pytest.approx(v.astype(np.float64).mean(), rel=1e-12)
    assert std == pytest.approx(v.astype(np.float64).std(), rel=1e-12)


def _stack(values, channels=("XX.A..HHZ", "XX.B..HHZ")):
    return xr.DataArray(values, dims=("window", "channel", "frequency", "time"),
                        coords={"channel": list(channels)})


def test_apply_saved_normalisation():
    rng = np.random.default_rng(1)
    new = _stack(rng.normal(5.0, 2.0, (3, 2, 4, 6)).astype(np.float32))
    attrs = {"normalise": "global", "channels": json.dumps(["XX.A..HHZ", "XX.B..HHZ"]),
             "norm_mean": [5.0, 1.0], "norm_std": [2.0, 4.0]}
    out = sp.apply_normalisation(new, attrs)
    np.testing.assert_allclose(out.isel(channel=1), (new.isel(channel=1) - 1.0) / 4.0,
                               rtol=1e-6)
    assert out.dtype == np.float32
    per = sp.apply_normalisation(new, {"normalise": "per_window"})
    np.testing.assert_allclose(per.mean(("frequency", "time")), 0.0, atol=1e-5)
    np.testing.assert_allclose(per.std(("frequency", "time")), 1.0, rtol=1e-5)
    assert sp.apply_normalisation(new, {"normalise": "none"}) is new
    with pytest.raises(InputError, match=r"XX\.C\.\.HHZ has no saved normalisation"):
        sp.apply_normalisation(_stack(new.values, ("XX.A..HHZ", "XX.C..HHZ")), attrs)
