"""The deep-clustering figures that need no training: the fine-tuning record (including
a run stopped at its first update) and the clusters over time above the amplitude."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.plots import deep
from seiscluster.tremor.deep_stages import _events

LOSSES = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.0, 0.5, 0.4],
                       "val_loss": [1.1, 0.6, 0.5]})


def _texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_a_fine_tuning_stopped_at_its_first_update_says_so():
    history = pd.DataFrame({"iteration": [0, 200], "delta_label": [0.0, 2e-5],
                            "kl_loss": [np.nan, 0.01], "reconstruction_loss": [np.nan] * 2})
    fig = deep.plot_losses(LOSSES, history, "delta-label 2e-05 < tol 0.0001")
    text = _texts(fig)
    assert "stopped at its first target-distribution update" in text
    assert "iteration 200" in text and "tol 0.0001" in text


def test_a_longer_fine_tuning_has_no_such_note():
    history = pd.DataFrame({"iteration": [0, 200, 400, 600], "delta_label": [0, 0.1, 0.01, 1e-5],
                            "kl_loss": [np.nan, 0.1, 0.05, 0.04],
                            "reconstruction_loss": [np.nan] * 4})
    assert "stopped" not in _texts(deep.plot_losses(LOSSES, history))


def _timeline(events=()):
    hour = np.timedelta64(3600, "s").astype("m8[ns]")
    windows = np.datetime64("2021-03-13T00:00", "ns") + hour * np.array([0, 1, 2, 4, 5])
    labels = np.array([1, 1, 2, 2, 3])
    cells = np.datetime64("2021-03-13T00:00", "ns") + hour / 4 * np.arange(24)
    amp = np.linspace(1.0, 5.0, 24)
    amp[12:16] = np.nan  # window 3 skipped: a gap
    return deep.plot_timeline(windows, labels, np.full(5, 0.9), 3, events=events,
                              amplitude=(cells, amp), amplitude_label="1-10 Hz amplitude (m/s)",
                              window_length=3600.0)


def test_the_timeline_puts_clusters_above_the_amplitude_and_shades_gaps_and_phases():
    onset = np.datetime64("2021-03-13T01:30", "ns")
    fig = _timeline([(onset, "onset", None),
                     (onset, "phase 1", np.datetime64("2021-03-13T04:00", "ns"))])
    top, amp, conf = fig.axes[:3]
    assert top.get_ylabel() == "cluster" and amp.get_ylabel() == "1-10 Hz amplitude (m/s)"
    assert conf.get_ylabel() == "max q" and "UTC" in conf.get_xlabel()
    assert amp.get_yscale() == "log"
    # the dots of the amplitude panel: one per window, at the window's median, by cluster
    dots = np.concatenate([c.get_offsets()[:, 1] for c in amp.collections
                           if len(c.get_offsets())])
    assert np.allclose(np.sort(dots), np.sort(np.array([
        np.median(np.linspace(1, 5, 24)[i * 4:(i + 1) * 4]) for i in (0, 1, 2, 4, 5)])))
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert "gap / skipped window" in legend and "phase" in legend
    spans = [p for p in amp.patches]
    assert len(spans) >= 2  # the gap and the phase
    assert "onset" in _texts(fig) and "phase 1" in _texts(fig)


def test_events_read_their_end():
    plot = section("tremor.plot", {"events": [
        {"time": "2021-03-13T02:00:00Z", "label": "a"},
        {"time": "2021-03-13T02:00", "end": "2021-03-13T05:00", "label": "b"}]})
    events = _events(plot["events"])
    assert events[0][2] is None and events[1][2] == np.datetime64("2021-03-13T05:00", "ns")
    with pytest.raises(InputError, match=r"events\[0\]\.end"):
        section("tremor.plot", {"events": [{"time": "2021-03-13", "end": "soon"}]})


def test_representative_windows_show_their_record_below_the_spectrograms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1, 8, 16))
    t = np.arange(36000) / 10.0
    y = rng.normal(size=t.size)
    y[1000:2000] = np.nan  # a gap
    fig = deep.plot_reconstructions(x, x, np.array([1, 1, 2, 2]), np.full(4, 0.9),
                                    np.linspace(1, 4, 8), np.linspace(0, 3600, 16),
                                    [(t, y)] * 4, "m/s")
    assert len(fig.axes) == 4 * 2 + 4  # input and reconstruction, then the record, each
    records = [ax for ax in fig.axes if ax.get_ylabel().startswith("record")]
    assert [ax.get_ylabel() for ax in records] == ["record (m/s)"] * 2  # first of each row
    assert all(ax.get_xlabel() == "time (min)" for ax in fig.axes)
    assert len(deep.plot_reconstructions(x, x, np.array([1, 1, 2, 2]), np.full(4, 0.9),
                                         np.linspace(1, 4, 8),
                                         np.linspace(0, 3600, 16)).axes) == 8
