"""Labels of the windows at a regime change, from the features of their parts."""

from __future__ import annotations

import numpy as np
import pytest

from seiscluster.errors import InputError
from seiscluster.tremor import features as feat
from seiscluster.tremor.boundaries import (
    KINDS,
    BoundaryRefiner,
    change_times,
    neighbours,
    refine_run,
    sample_parts,
)

M, D, STEP = 12, 4, 3600.0
#: Part feature means of three built regimes (A, B, C) and a fourth never trained (N).
MEANS = {1: [0, 0, 0, 0], 2: [4, 0, 4, 0], 3: [0, 4, 0, 4], 9: [-6, 6, -6, 6]}


def windows(spec: list[list[int]], seed: int = 0, noise: float = 0.5) -> np.ndarray:
    """Part features (n, M, D): each window a list of M part regimes."""
    rng = np.random.default_rng(seed)
    mean = np.array([[MEANS[r] for r in w] for w in spec], float)
    return mean + noise * rng.standard_normal(mean.shape)


def run(*blocks: tuple[int, int]) -> list[list[int]]:
    """Whole windows: (regime, count) blocks."""
    return [[r] * M for r, n in blocks for _ in range(n)]


def mixed(first: int, second: int, parts_first: int) -> list[int]:
    return [first] * parts_first + [second] * (M - parts_first)


def hourly(n: int) -> np.ndarray:
    return np.datetime64("2021-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(1, "h")


def fit_refine(spec: list[list[int]], labels: list[int], seed: int = 0, **kw):
    parts = windows(spec, seed)
    prev, nxt = neighbours(hourly(len(spec)), STEP)
    model = BoundaryRefiner(**kw).fit(parts, np.array(labels), prev, nxt)
    return model, model.refine(parts, np.array(labels), prev, nxt)


def test_a_straddling_window_gets_the_regime_that_fills_most_of_it():
    """A -> B with the change at 9 of 12 parts (A fills 75 %) labelled as the third
    cluster C, and B -> A with B filling 3 of 12 parts labelled B: both get the majority
    regime, and the change is placed within one part of the truth."""
    spec = [*run((1, 10)), mixed(1, 2, 9), *run((2, 10)), mixed(2, 1, 3), *run((1, 10)),
            *run((3, 10))]
    labels = [1] * 10 + [3] + [2] * 10 + [2] + [1] * 10 + [3] * 10
    _, ref = fit_refine(spec, labels)
    assert ref.labels[10] == 1 and ref.labels[21] == 1
    assert abs(ref.change[10] - 9 / 12) < 1 / 12 and abs(ref.change[21] - 3 / 12) < 1 / 12
    assert ref.kind[10] == KINDS.index("change_fitted")
    keep = np.ones(len(labels), bool)
    keep[[10, 21]] = False
    assert (ref.labels[keep] == np.array(labels)[keep]).all()  # nothing else moves


def test_a_change_at_the_middle_keeps_the_label():
    spec = [*run((1, 8)), mixed(1, 2, 6), *run((2, 8))]
    labels = [1] * 8 + [2] + [2] * 8
    _, ref = fit_refine(spec, labels)
    assert abs(ref.change[8] - 0.5) < 1 / 12


def test_isolated_window_mostly_of_its_neighbours_regime_is_relabelled():
    """A, [A with a short burst of C labelled C], A -> A; a whole window of C between two
    windows of A (a one-hour episode) stays C."""
    spec = [*run((1, 8)), mixed(1, 3, 9), *run((1, 8)), *run((3, 1)), *run((1, 8), (3, 8))]
    labels = [1] * 8 + [3] + [1] * 8 + [3] + [1] * 8 + [3] * 8
    _, ref = fit_refine(spec, labels)
    assert ref.labels[8] == 1 and ref.kind[8] == KINDS.index("isolated_relabelled")
    assert ref.labels[17] == 3


def test_a_short_episode_of_a_third_regime_is_kept():
    """Between A and B, a window wholly of C is C (its own cluster explains it better than
    any change from A to B)."""
    spec = run((1, 8)) + run((3, 1)) + run((2, 8), (3, 8))
    labels = [1] * 8 + [3] + [2] * 8 + [3] * 8
    _, ref = fit_refine(spec, labels)
    assert ref.labels[8] == 3 and ref.kind[8] == KINDS.index("kept_third")


def test_clusters_the_parts_cannot_tell_apart_are_left_alone():
    """Two clusters with the same part statistics (a split the parts cannot see): the
    straddling window keeps its label and is counted as low separation."""
    spec = [*run((1, 8)), mixed(1, 1, 9), *run((1, 8))]
    labels = [1] * 8 + [2] + [2] * 8
    model, ref = fit_refine(spec, labels)
    assert model.separation_[0, 1] < 0.85
    assert ref.labels[8] == 2 and ref.kind[8] == KINDS.index("low_separation")


def test_outliers_and_gaps_are_left_alone():
    """Cluster 0 is never relabelled nor a template; a window after a gap in time has no
    previous neighbour."""
    spec = [*run((1, 8)), mixed(1, 2, 9), *run((2, 8))]
    labels = np.array([1] * 8 + [0] + [2] * 8)
    parts = windows(spec)
    prev, nxt = neighbours(hourly(len(spec)), STEP)
    model = BoundaryRefiner().fit(parts, labels, prev, nxt)
    assert 0 not in model.clusters_
    assert model.refine(parts, labels, prev, nxt).labels[8] == 0
    times = hourly(len(spec))
    times[9:] += np.timedelta64(30, "m")  # a gap: window 8 has no next neighbour
    prev, nxt = neighbours(times, STEP)
    assert nxt[8] == -1 and prev[9] == -1 and prev[8] == 7
    ref = model.refine(parts, np.array([1] * 8 + [2] * 9), prev, nxt)
    assert ref.labels[8] == 2


def test_neighbours_are_per_channel():
    times = np.concatenate([hourly(3), hourly(3)])
    prev, nxt = neighbours(times, STEP, np.array(["a"] * 3 + ["b"] * 3))
    assert prev.tolist() == [-1, 0, 1, -1, 3, 4] and nxt.tolist() == [1, 2, -1, 4, 5, -1]


def test_novel_window_mostly_of_a_known_regime_takes_it():
    """After training on A and B, a window 9/12 A then the new regime N next to A becomes
    A; a window 3/12 A then N stays novel, as do windows wholly of N."""
    train = run((1, 10), (2, 10))
    model = BoundaryRefiner().fit(windows(train), np.array([1] * 10 + [2] * 10),
                                  *neighbours(hourly(20), STEP))
    new = [*run((1, 3)), mixed(1, 9, 9), *run((9, 3)), mixed(9, 1, 9), *run((1, 3))]
    labels = np.array([1] * 3 + [0] * 5 + [1] * 3)
    prev, nxt = neighbours(hourly(len(new)), STEP)
    out = model.resolve_novel(windows(new, seed=1), labels, prev, nxt, 0.99, 1.5)
    assert out[3] == 1 and (out[4:8] == 0).all()


def test_sample_parts_stack_channels_side_by_side():
    parts = np.arange(2 * 3 * M * D, dtype=float).reshape(2, 3, M, D)  # window, channel
    stacked = sample_parts(parts, np.array([1]), None)
    assert stacked.shape == (1, M, 3 * D)
    assert (stacked[0, 5, D:2 * D] == parts[1, 1, 5]).all()
    assert (sample_parts(parts, np.array([0, 1]), np.array([2, 0])) == parts[[0, 1], [2, 0]]).all()


def test_change_times():
    times = hourly(3)
    text = change_times(times, np.array([np.nan, 0.25, 1.0]), STEP)
    assert text == ["", "2021-01-01T01:15:00", ""]


def test_refine_run_is_deterministic():
    spec = [*run((1, 8)), mixed(1, 2, 9), *run((2, 8))]
    labels = np.array([1] * 8 + [2] + [2] * 8)
    a = refine_run(windows(spec), labels, hourly(17), STEP, None, 0.85)
    b = refine_run(windows(spec), labels, hourly(17), STEP, None, 0.85)
    assert (a.labels == b.labels).all() and a.labels[8] == 1


def test_part_features_are_the_features_of_consecutive_frames():
    """Each part's features are those of its run of frames; with frames that do not
    divide, the last part is shorter."""
    rng = np.random.default_rng(0)
    freqs = np.linspace(0, 20, 41)
    fs = feat.FeatureSettings.from_config({"parts": 3})
    for k in (12, 11):
        frames = rng.gamma(2.0, 1.0, (2, k, freqs.size))
        ok = np.ones((2, k), bool)
        parts = feat.compute_part_features(frames, ok, freqs, fs)
        assert parts.shape == (2, 3, len(feat.feature_names(fs)))
        for j, (a, b) in enumerate([(0, 4), (4, 8), (8, k)]):
            np.testing.assert_allclose(
                parts[:, j], feat.compute_features(frames[:, a:b], ok[:, a:b], freqs, fs))


@pytest.mark.parametrize("parts", [1, -2, 2.5])
def test_bad_parts(parts):
    with pytest.raises(InputError, match=r"tremor\.features\.parts"):
        feat.FeatureSettings.from_config({"parts": parts})
