"""The tremor branch's workflow stages, file in -> file out.

Each function is what one Snakemake rule runs (through ``workflow/scripts``), takes plain
paths and config sections, and can be called and tested without Snakemake. Outputs are
written atomically, so a failed stage leaves nothing that looks complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import xarray as xr

from seiscluster.errors import InputError
from seiscluster.fileio import atomic_path
from seiscluster.tremor import spectrogram as spec
from seiscluster.tremor import synthetic
from seiscluster.tremor.waveforms import (
    Preprocess,
    check_waveforms,
    open_source,
    plain,
    read_inventory,
)

log = logging.getLogger(__name__)

# ----------------------------------------------------------- waveforms and spectrograms


def check_config(
    waveforms: Mapping[str, Any], preprocess: Mapping[str, Any],
    spectrogram: Mapping[str, Any], files: Sequence[str] | None = None,
) -> tuple[Preprocess, spec.SpectrogramSettings]:
    """Check ``data.waveforms``, ``tremor.preprocess`` and ``tremor.spectrogram`` cheaply
    (no data read; files only looked up); InputError naming the first bad key.

    Rate-dependent checks (fmax below Nyquist, a window longer than one STFT frame) are
    made here when the rate is known without reading data (the example, or a resample
    rate), and otherwise from the files' headers at the start of :func:`spectrograms`.
    """
    check_waveforms(waveforms, files)
    prep = Preprocess.from_config(preprocess)
    settings = spec.SpectrogramSettings.from_config(spectrogram)
    if prep.remove_response and not waveforms.get("stationxml"):
        raise InputError("tremor.preprocess.remove_response: true needs "
                         "data.waveforms.stationxml (the instrument response).")
    fs, channel = None, ""
    if plain(waveforms.get("source", "example")) == "example":
        fs, channel = float(dict(waveforms.get("example") or {}).get("sampling_rate", 25.0)), \
            synthetic.CHANNEL_ID
        prep.check_rate(fs, channel)
        fs = prep.output_rate(fs)
    elif prep.resample is not None:
        fs, channel = float(prep.resample), "the resampled data"
    if fs is not None:
        settings.check_rate(fs, channel)
    return prep, settings


def make_example(*, waveforms: str, truth: str, example: Mapping[str, Any],
                 window_length: float = 3600.0) -> None:
    """Write the embedded synthetic records (day-long miniSEED files) and ``truth.csv``."""
    cfg = synthetic.example_config(example)
    start = time.perf_counter()
    ex = synthetic.make_example(**cfg, window_length=float(window_length))
    files = synthetic.write_example(ex, waveforms, truth)
    counts = ex.truth["regime"].value_counts().to_dict()
    log.info("example: %d day file(s) of %s at %g Hz, %d windows %s, %d gap(s), %.1f s",
             len(files), synthetic.CHANNEL_ID, ex.sampling_rate, len(ex.truth), counts,
             len(ex.gaps), time.perf_counter() - start)


def spectrograms(
    *, spectrograms: str, skipped: str, waveforms: Mapping[str, Any],
    preprocess: Mapping[str, Any], spectrogram: Mapping[str, Any],
    files: Sequence[str] | None = None, threads: int = 1,
    compute: Mapping[str, Any] | None = None,
) -> None:
    """Ingest the waveforms and write the spectrogram stack (Zarr) and skipped_windows.csv;
    one dask task per block of days and channel on the ``compute`` section's scheduler."""
    if isinstance(files, str):
        files = [files]
    prep, settings = check_config(waveforms, preprocess, spectrogram, files)
    start = time.perf_counter()
    source = open_source(waveforms, files)
    log.info("source %s: %s, %s - %s", source.description, ", ".join(
        f"{ch} ({source.sampling_rates[ch]:g} Hz)" for ch in source.channels),
        spec.utc(source.start_ns), spec.utc(source.end_ns))
    inventory = read_inventory(waveforms.get("stationxml")) if prep.remove_response else None
    config = {"waveforms": dict(waveforms)}
    table = spec.build_store(source, prep, settings, spectrograms, threads=threads,
                             inventory=inventory, config=config, compute=compute)
    with atomic_path(skipped) as tmp:
        table.to_csv(tmp, index=False)
    for row in table.itertuples():
        log.info("skipped %s %s: %s (missing %.1f %%)", row.window_start, row.channel,
                 row.reason, 100 * row.missing_fraction)
    log.info("spectrograms done in %.1f s", time.perf_counter() - start)


def spectrogram_figures(*, spectrograms: str, overview: str, examples: str,
                        dpi: int = 120) -> None:
    """Long-term overview (mean spectrum per window and band amplitude over time) and a grid
    of example windows."""
    from seiscluster.plots import tremor as plots  # matplotlib only where needed

    with xr.open_zarr(spectrograms) as ds:
        plots.save(plots.plot_overview(ds), overview, dpi)
        plots.save(plots.plot_examples(ds), examples, dpi)
