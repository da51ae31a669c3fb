"""Property tests: merging traces with random gaps and overlaps, and cutting them into
origin-aligned windows and STFT frames, against slow sample-by-sample references."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from obspy import Stream, Trace, UTCDateTime

from seiscluster.tremor import spectrogram as sp
from seiscluster.tremor import waveforms as wf

NS = wf.NS
CHANNEL = "XX.STA..HHZ"
T0 = UTCDateTime("2021-03-12T00:00:00")
#: Raw data only: no detrend, taper or filter, so segments hold the merged samples.
RAW = wf.Preprocess.from_config({"detrend": "none", "taper": 0.0, "freqmin": None})
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Case:
    """Traces cut from one ideal signal on a common sample grid (sample 0 at T0)."""

    fs: float
    truth: np.ndarray
    traces: list[tuple[int, np.ndarray]]  # (first sample, values)

    def stream(self) -> Stream:
        return Stream([Trace(values.copy(), header={
            "network": "XX", "station": "STA", "channel": "HHZ", "sampling_rate": self.fs,
            "starttime": T0 + first / self.fs}) for first, values in self.traces])

    def coverage(self) -> list[list[float]]:
        """Slow reference input: the values every trace gives each sample of the grid."""
        cover: list[list[float]] = [[] for _ in self.truth]
        for first, values in self.traces:
            for i, v in enumerate(values):
                cover[first + i].append(float(v))
        return cover


@st.composite
def cases(draw) -> Case:
    fs = draw(st.sampled_from([1.0, 2.0, 4.0, 5.0, 10.0]))
    n = draw(st.integers(20, 300))
    truth = np.round(np.random.default_rng(draw(st.integers(0, 99))).normal(0, 100, n), 1)
    traces = []
    for _ in range(draw(st.integers(1, 5))):
        first = draw(st.integers(0, n - 1))
        values = truth[first:first + draw(st.integers(1, n - first))].copy()
        if draw(st.booleans()) and draw(st.booleans()):  # a trace disagreeing with the rest
            values[draw(st.integers(0, values.size - 1))] += 7.0
        for i in draw(st.lists(st.integers(0, values.size - 1), max_size=3)):
            values[i] = np.nan  # bad samples
        traces.append((first, values))
    return Case(fs, truth, traces)


def pieces(case: Case) -> list[tuple[int, float, np.ndarray]]:
    logging.getLogger(wf.__name__).disabled = True  # the overlap warning, once per example
    try:
        return wf.merge_channel(case.stream(), CHANNEL)
    finally:
        logging.getLogger(wf.__name__).disabled = False


def sample_of(case: Case, ns: int) -> int:
    index = (ns - T0.ns) * case.fs / NS
    assert index == round(index), "a piece starts between samples"
    return round(index)


@given(cases())
@SETTINGS
def test_merge_keeps_only_agreeing_finite_samples(case):
    """Pieces are sorted, disjoint and on the grid; a kept sample is finite and equals what
    every trace covering it says; a sample that one trace alone covers with a finite value
    is kept; nothing else appears (no filling)."""
    cover = case.coverage()
    kept = np.full(case.truth.size, np.nan)
    end = -1
    for start_ns, fs, values in pieces(case):
        assert fs == case.fs and values.size > 0
        first = sample_of(case, start_ns)
        assert first > end  # sorted, disjoint
        end = first + values.size - 1
        kept[first:end + 1] = values
    for i, said in enumerate(cover):
        if not np.isnan(kept[i]):
            assert said and all(v == kept[i] for v in said), (i, said, kept[i])
        elif len(said) == 1:
            assert not np.isfinite(said[0]), (i, said)


@st.composite
def cut_cases(draw) -> tuple[Case, sp.SpectrogramSettings, int]:
    case = draw(cases())
    nperseg = draw(st.sampled_from([2, 4, 8]))
    length = draw(st.integers(max(2, int(np.ceil(nperseg / case.fs))), 40))
    s = sp.SpectrogramSettings.from_config({
        "window_length": float(length), "window_step": float(draw(st.integers(1, 40))),
        "origin": str(T0 + draw(st.integers(-50, 50))), "nperseg": nperseg,
        "noverlap": draw(st.integers(0, nperseg - 1)), "fmin": 0.0, "fmax": case.fs / 4,
        "n_freq": 2, "n_time": 2})
    return case, s, draw(st.integers(0, 2))


def present_samples(case: Case, segments: list[wf.Segment]) -> tuple[np.ndarray, np.ndarray]:
    """Slow reference: per grid sample, its value (NaN if absent) and its segment number."""
    value = np.full(case.truth.size, np.nan)
    owner = np.full(case.truth.size, -1)
    for j, seg in enumerate(segments):
        first = sample_of(case, seg.raw_start_ns)
        for i in range(sample_of(case, seg.raw_end_ns) - first):
            owner[first + i] = j
            if seg.data.size:
                value[first + i] = seg.data[i]
    return value, owner


@given(cut_cases())
@SETTINGS
def test_windows_and_frames_cut_from_gappy_traces(args):
    """Window starts, missing fractions and the STFT frames of every window equal a slow
    loop over the samples: a frame is used exactly when all its samples are present in one
    segment, clear of that segment's taper edge, and then holds those samples."""
    case, s, edge = args
    segments = wf.preprocess_stream(case.stream(), CHANNEL, RAW, 0.0, s.nperseg)
    segments = [replace(seg, edge=min(edge, seg.data.size // 2)) for seg in segments]
    t_end = T0.ns + round(case.truth.size * NS / case.fs)
    starts = sp.window_starts(T0.ns, t_end, s)

    expected, t = [], s.origin_ns
    while t > T0.ns:
        t -= s.step_ns
    while t < t_end:
        if t + s.step_ns > T0.ns:
            expected.append(t)
        t += s.step_ns
    np.testing.assert_array_equal(starts, expected)

    value, owner = present_samples(case, segments)
    per_window = round(s.window_length * case.fs)
    missing = sp.missing_fraction(segments, starts, s.length_ns)
    plan = sp.Plan(s, case.fs)
    ok, seg_idx, first, segs = sp._locate_frames(segments, starts, plan)
    usable = [seg for seg in segments if seg.data.size >= s.nperseg]
    for w, start in enumerate(starts):
        w0 = sample_of(case, int(start))
        inside = [i for i in range(w0, w0 + per_window) if 0 <= i < owner.size]
        covered = sum(owner[i] >= 0 for i in inside)
        assert missing[w] == round(1.0 - covered / per_window, 9)
        for k in range(plan.n_frames):
            a = w0 + k * s.hop
            idx = range(a, a + s.nperseg)
            owners = {owner[i] if 0 <= i < owner.size else -1 for i in idx}
            j = owners.pop() if len(owners) == 1 else -1
            clear = j >= 0 and segments[j].data.size >= s.nperseg and (
                a - sample_of(case, segments[j].start_ns) >= segments[j].edge
                and a + s.nperseg <= sample_of(case, segments[j].start_ns)
                + segments[j].data.size - segments[j].edge)
            assert ok[w, k] == clear, (w, k, owners)
            if clear:
                seg = segs[seg_idx[w, k]]
                assert seg is usable[seg_idx[w, k]]
                np.testing.assert_array_equal(seg.data[first[w, k]:first[w, k] + s.nperseg],
                                              value[a:a + s.nperseg])
