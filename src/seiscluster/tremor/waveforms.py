"""Waveform ingest (files, SDS archive, FDSN with a local cache) and preprocessing.

A *source* knows which channels and time span it holds and reads any time slice of it as an
obspy Stream, so that the spectrogram stage can work through a months-long archive one day at
a time. Preprocessing works on *contiguous segments*: a channel's traces are merged with
masked arrays (gaps stay masked, overlapping samples that disagree become masked too, so
nothing is silently filled), split at the masks, and each segment is detrended, tapered,
deconvolved, filtered and resampled on its own. The samples under the taper at each end of a
segment are flagged (:attr:`Segment.edge`) so that the spectrogram never uses them.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import math
import re
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import obspy
from obspy import Stream, UTCDateTime
from scipy import signal

from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.fileio import atomic_path

log = logging.getLogger(__name__)

WKEY = "data.waveforms"
PKEY = "tremor.preprocess"
CODE_KEYS = ("network", "station", "location", "channel")
NS = 1_000_000_000
DAY_NS = 86_400 * NS
#: Butterworth order of the band-pass (obspy's default number of corners).
FILTER_CORNERS = 4
#: Shortest processing margin read on each side of a block (s), see :func:`pad_seconds`.
MIN_PAD = 60.0
#: Periods of the lowest frequency of interest that the margin must hold.
PAD_PERIODS = 10.0
_RESPONSE_LOCK = threading.Lock()  # evalresp is not known to be thread-safe


def plain(value: Any) -> Any:
    """A config value as plain Python (str for enum members, e.g. Hydra structured configs)."""
    return value.value if isinstance(value, Enum) else value


def to_ns(value: Any, key: str) -> int:
    """ISO 8601 UTC time (str, datetime, UTCDateTime) as integer nanoseconds since 1970."""
    try:
        return int(UTCDateTime(value).ns)
    except Exception:
        raise InputError(f"{key}: {value!r} is not an ISO 8601 UTC time such as "
                         "2021-03-12T00:00:00.") from None


def utc(ns: int) -> UTCDateTime:
    """Integer nanoseconds since 1970 as a UTCDateTime."""
    return UTCDateTime(ns=int(ns))


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Preprocess:
    """The ``tremor.preprocess`` settings, checked."""

    detrend: str
    taper: float
    freqmin: float | None
    freqmax: float | None
    resample: float | None
    decimate: int | None
    remove_response: bool
    response_output: str
    pre_filt: tuple[float, ...] | None
    water_level: float | None
    max_gap_fraction: float
    channels: str

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> Preprocess:
        """The settings from ``tremor.preprocess``, checked and completed with the defaults
        of ``seiscluster.config.PreprocessConfig`` (:func:`seiscluster.config.section`)."""
        cfg = section(PKEY, cfg)
        return cls(**{**cfg, "pre_filt": None if cfg["pre_filt"] is None
                      else tuple(cfg["pre_filt"])})

    def output_rate(self, fs: float) -> float:
        """Sampling rate after resampling or decimation."""
        if self.resample is not None:
            return float(self.resample)
        return fs / (self.decimate or 1)

    def check_rate(self, fs: float, channel: str) -> None:
        """Raise when a filter or resampling setting does not fit the channel's rate."""
        nyquist = fs / 2.0
        for name in ("freqmin", "freqmax"):
            value = getattr(self, name)
            if value is not None and value >= nyquist:
                raise InputError(f"{PKEY}.{name}: {value} Hz is not below the Nyquist "
                                 f"frequency {nyquist:g} Hz of {channel} ({fs:g} Hz).")
        if self.pre_filt is not None and self.pre_filt[3] > nyquist:
            raise InputError(f"{PKEY}.pre_filt: {self.pre_filt[3]} Hz is above the Nyquist "
                             f"frequency {nyquist:g} Hz of {channel}.")
        if self.resample is not None:
            _ratio(fs, float(self.resample), channel)

    @property
    def units(self) -> str:
        """Units of the preprocessed samples."""
        if not self.remove_response:
            return "counts"
        return {"DISP": "m", "VEL": "m/s", "ACC": "m/s**2"}[self.response_output]


def pad_seconds(prep: Preprocess, fmin: float) -> float:
    """Margin (s) read and processed on each side of a block and then dropped.

    It holds the taper and the filter's start-up transient at the artificial edges of a
    block, so that a window's spectrogram does not depend on where a block was cut: at least
    ``MIN_PAD`` s and ``PAD_PERIODS`` periods of the lowest frequency used.
    """
    lows = [f for f in (prep.freqmin, fmin, prep.pre_filt[1] if prep.pre_filt else None)
            if f is not None and f > 0]
    return max(MIN_PAD, PAD_PERIODS / min(lows)) if lows else MIN_PAD


@dataclass(frozen=True)
class Segment:
    """A contiguous, preprocessed piece of one channel."""

    channel: str
    start_ns: int  # time of the first sample (ns since 1970, UTC)
    sampling_rate: float
    data: np.ndarray  # float64
    edge: int = 0  # samples at each end that the taper touched (not to be used)
    raw_start_ns: int = 0  # extent of the raw data (for the missing fraction)
    raw_end_ns: int = 0  # end of the raw data: last sample + one sample interval

    @property
    def end_ns(self) -> int:
        """Time just after the last sample (last sample + one interval)."""
        return self.start_ns + round(self.data.size * NS / self.sampling_rate)


def merge_channel(stream: Stream, channel: str) -> list[tuple[int, float, np.ndarray]]:
    """One channel's contiguous pieces ``(start_ns, rate, samples)``: traces merged with
    masked gaps (an overlap in which the traces disagree is masked, as obspy's merge does,
    and so is any sample on which two overlapping traces differ, non-finite samples too),
    then split at the masks. Nothing is filled and no sample is picked among differing
    values."""
    st = stream.select(id=channel)
    if not len(st):
        return []
    rates = {tr.stats.sampling_rate for tr in st}
    if len(rates) > 1:
        raise InputError(f"{WKEY}: {channel} has traces at {sorted(rates)} Hz, which cannot "
                         "be merged; give files of one sampling rate per channel.")
    for tr in st:
        if tr.data.dtype.kind not in "iuf":
            raise InputError(f"{WKEY}: {channel} holds {tr.data.dtype} samples, not numbers.")
    originals: list[tuple[int, np.ndarray]] = []
    if len(st) > 1:
        overlapping = _overlapping(st)
        if overlapping:
            log.warning("%s: %d trace(s) overlap earlier ones; samples that disagree are "
                        "masked (treated as missing)", channel, overlapping)
            originals = [(int(tr.stats.starttime.ns), tr.data.copy()) for tr in st]
        st.merge(method=0, fill_value=None)
    out = []
    for tr in st:
        fs = float(tr.stats.sampling_rate)
        start = int(tr.stats.starttime.ns)
        data = tr.data
        mask = np.ma.getmaskarray(data) if np.ma.isMaskedArray(data) else None
        values = np.ma.getdata(data)
        if values.dtype.kind == "f":
            bad = ~np.isfinite(values)
            mask = bad if mask is None else (mask | bad)
        if originals:
            mask = _disagreements(values, start, fs, originals, mask)
        if mask is None or not mask.any():
            out.append((start, fs, values))
            continue
        edges = np.flatnonzero(np.diff(np.concatenate([[True], mask, [True]]).astype(np.int8)))
        for a, b in zip(edges[0::2], edges[1::2], strict=True):
            out.append((start + round(int(a) * NS / fs), fs, values[a:b]))
    return out


def _overlapping(st: Stream) -> int:
    """Number of traces that start before an earlier-starting trace has ended."""
    starts = np.array([tr.stats.starttime.ns for tr in st], dtype=np.int64)
    ends = starts + np.array([round(tr.stats.npts * NS / tr.stats.sampling_rate) for tr in st],
                             dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    reach = np.maximum.accumulate(ends[order])
    return int((starts[order][1:] < reach[:-1]).sum())


def _disagreements(values: np.ndarray, start: int, fs: float,
                   originals: Sequence[tuple[int, np.ndarray]],
                   mask: np.ndarray | None) -> np.ndarray:
    """``mask`` plus every merged sample that a trace covering it gives another value for
    (obspy's merge can let a later trace override one masked conflict)."""
    mask = np.zeros(values.size, bool) if mask is None else mask
    for t0, data in originals:
        a = round((t0 - start) * fs / NS)
        b = min(a + data.size, values.size)
        if a < 0 or b <= a:
            continue
        mask[a:b] |= np.ma.getdata(data[:b - a]) != values[a:b]
        mask[a:b] |= np.ma.getmaskarray(data[:b - a])
    return mask


def preprocess_stream(
    stream: Stream, channel: str, prep: Preprocess, pad: float, min_samples: int = 2,
    inventory: obspy.Inventory | None = None,
) -> list[Segment]:
    """Contiguous segments of ``channel`` in ``stream``, each preprocessed on its own.

    Segments shorter than ``min_samples`` (at the output rate) are kept with no data: they
    count as data for the missing fraction but can never hold a spectrogram frame.
    """
    out = []
    for start, fs, values in merge_channel(stream, channel):
        raw_end = start + round(values.size * NS / fs)
        fs_out = prep.output_rate(fs)
        if fs_out * values.size / fs < min_samples:
            out.append(Segment(channel, start, fs_out, np.empty(0), 0, start, raw_end))
            continue
        data, edge, fs_out = preprocess_segment(
            values, fs, prep, pad, channel=channel, starttime=utc(start), inventory=inventory)
        out.append(Segment(channel, start, fs_out, data, edge, start, raw_end))
    return out


def preprocess_segment(
    x: np.ndarray, fs: float, prep: Preprocess, pad: float, *, channel: str = "",
    starttime: UTCDateTime | None = None, inventory: obspy.Inventory | None = None,
) -> tuple[np.ndarray, int, float]:
    """Detrend, taper, remove the response, filter and resample one contiguous segment.

    Returns the samples, the number of samples at each end touched by the taper (at the new
    rate) and the new sampling rate. ``x`` may be modified in place.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    _detrend(x, prep.detrend)
    edge = 0
    if prep.taper > 0:
        edge = min(int(prep.taper * x.size), int(pad * fs))
        _taper(x, edge)
    if prep.remove_response:
        x = _remove_response(x, fs, prep, inventory, channel, starttime)
    sos = _filter_sos(prep, fs)
    if sos is not None:
        x = signal.sosfilt(sos, x)
    fs_out = prep.output_rate(fs)
    if fs_out != fs:
        up, down = _ratio(fs, fs_out, channel)
        x = signal.resample_poly(x, up, down)
        edge = math.ceil(edge * up / down)
    return x, edge, fs_out


def _detrend(x: np.ndarray, how: str) -> None:
    if how == "none" or x.size == 0:
        return
    if how == "demean" or x.size < 2:
        x -= x.mean()
        return
    # least-squares line through (i, x_i), i = 0..n-1, in closed form
    n = x.size
    t = np.arange(n, dtype=np.float64)
    mean = x.mean()
    slope = (np.dot(t, x) - mean * n * (n - 1) / 2) / (n * (n * n - 1) / 12)
    t *= slope
    x -= t
    x -= mean - slope * (n - 1) / 2


def _taper(x: np.ndarray, n: int) -> None:
    """Cosine (Hann) taper over ``n`` samples at each end, as obspy's ``taper('cosine')``."""
    if n < 1:
        return
    ramp = 0.5 * (1.0 - np.cos(np.pi * np.arange(n) / n))
    x[:n] *= ramp
    x[x.size - n:] *= ramp[::-1]


def _filter_sos(prep: Preprocess, fs: float) -> np.ndarray | None:
    lo, hi = prep.freqmin, prep.freqmax
    if lo is None and hi is None:
        return None
    if lo is not None and hi is not None:
        return signal.butter(FILTER_CORNERS, [lo, hi], btype="bandpass", fs=fs, output="sos")
    if lo is not None:
        return signal.butter(FILTER_CORNERS, lo, btype="highpass", fs=fs, output="sos")
    return signal.butter(FILTER_CORNERS, hi, btype="lowpass", fs=fs, output="sos")


def _ratio(fs: float, target: float, channel: str) -> tuple[int, int]:
    frac = Fraction(target / fs).limit_denominator(1000)
    if frac.numerator == 0 or abs(fs * frac - target) > 1e-9 * target:
        raise InputError(f"{PKEY}.resample: {target:g} Hz is not a simple ratio of the "
                         f"{fs:g} Hz of {channel}; choose a rate p/q times it (q <= 1000).")
    return frac.numerator, frac.denominator


def _remove_response(
    x: np.ndarray, fs: float, prep: Preprocess, inventory: obspy.Inventory | None,
    channel: str, starttime: UTCDateTime | None,
) -> np.ndarray:
    """Deconvolve the instrument response as obspy's ``Trace.remove_response`` does."""
    from obspy.signal.invsim import cosine_sac_taper, invert_spectrum
    from obspy.signal.util import _npts2nfft

    if inventory is None:
        raise InputError(f"{PKEY}.remove_response: needs {WKEY}.stationxml.")
    nfft = _npts2nfft(x.size)
    with _RESPONSE_LOCK:
        try:
            response = inventory.get_response(channel, starttime)
        except Exception:
            raise InputError(f"{WKEY}.stationxml: no response for {channel} at {starttime} "
                             "in the StationXML.") from None
        freq_response, freqs = response.get_evalresp_response(
            1.0 / fs, nfft, output=prep.response_output)
    spec = np.fft.rfft(x, n=nfft)
    if prep.pre_filt is not None:
        spec *= cosine_sac_taper(freqs, flimit=prep.pre_filt)
    if prep.water_level is None:
        freq_response[0] = 0.0
        freq_response[1:] = 1.0 / freq_response[1:]
    else:
        invert_spectrum(freq_response, prep.water_level)
    spec *= freq_response
    spec[-1] = abs(spec[-1]) + 0.0j
    return np.fft.irfft(spec, n=nfft)[: x.size]


# ----------------------------------------------------------------------------------- sources


class Source(Protocol):
    """What the spectrogram stage needs from a waveform source."""

    channels: tuple[str, ...]
    sampling_rates: dict[str, float]
    start_ns: int
    end_ns: int
    description: str

    def read(self, t0_ns: int, t1_ns: int, channel: str | None = None) -> Stream:
        """The selected channels' data (or ``channel``'s only) between t0 and t1."""
        ...


@dataclass(frozen=True)
class TraceInfo:
    """Header of one trace of one file."""

    path: str
    channel: str
    start_ns: int
    end_ns: int  # last sample + one interval
    sampling_rate: float


@dataclass
class FileSource:
    """Waveform files of any format obspy reads, indexed by their headers."""

    paths: Sequence[str]
    format: str | None = None
    codes: Mapping[str, str] = field(default_factory=dict)
    span: tuple[int | None, int | None] = (None, None)
    key: str = f"{WKEY}.files"
    description: str = "files"

    def __post_init__(self) -> None:
        self.index = [info for path in self.paths for info in self._headers(path)]
        t0, t1 = self.span
        self.index = [i for i in self.index
                      if (t0 is None or i.end_ns > t0) and (t1 is None or i.start_ns < t1)]
        if not self.index:
            sel = ".".join(self.codes.get(k, "*") for k in CODE_KEYS)
            when = "" if self.span == (None, None) else (
                f" between {_iso(t0)} and {_iso(t1)} ({WKEY}.starttime/endtime)")
            raise InputError(f"{self.key}: no data for {sel}{when} in "
                             f"{_describe(self.paths)}.")
        self.channels = tuple(sorted({i.channel for i in self.index}))
        self.sampling_rates = {}
        for ch in self.channels:
            rates = {i.sampling_rate: i.path for i in self.index if i.channel == ch}
            if len(rates) > 1:
                (r1, p1), (r2, p2) = sorted(rates.items())[:2]
                raise InputError(f"{self.key}: {ch} is at {r1:g} Hz in {p1} but at {r2:g} Hz "
                                 f"in {p2}; traces of differing rates cannot be merged.")
            self.sampling_rates[ch] = next(iter(rates))
        self.start_ns = min(i.start_ns for i in self.index)
        self.end_ns = max(i.end_ns for i in self.index)
        if t0 is not None:
            self.start_ns = max(self.start_ns, t0)
        if t1 is not None:
            self.end_ns = min(self.end_ns, t1)

    def _headers(self, path: str) -> list[TraceInfo]:
        with warnings.catch_warnings(record=True) as caught:  # indexing runs in one thread
            warnings.simplefilter("always")
            st = _read(path, self.format, self.key, headonly=True)
        _check_complete(path, caught, self.key)
        return [TraceInfo(path, tr.id, int(tr.stats.starttime.ns),
                          int(tr.stats.starttime.ns) + round(tr.stats.npts * NS
                                                             / tr.stats.sampling_rate),
                          float(tr.stats.sampling_rate))
                for tr in _select(st, self.codes) if tr.stats.npts > 0]

    def read(self, t0_ns: int, t1_ns: int, channel: str | None = None) -> Stream:
        """Traces of the selected channels (or of ``channel`` only) overlapping [t0, t1],
        trimmed to it; only the files holding such traces are read."""
        paths = sorted({i.path for i in self.index if i.end_ns > t0_ns and i.start_ns < t1_ns
                        and channel in (None, i.channel)})
        st = Stream()
        for path in paths:
            st += _select(_read(path, self.format, self.key, starttime=utc(t0_ns),
                                endtime=utc(t1_ns)), self.codes)
        return _trim(_only(st, channel), t0_ns, t1_ns)


@dataclass
class SDSSource:
    """A SeisComP Data Structure archive read through obspy's SDS client."""

    root: str
    codes: Mapping[str, str]
    span: tuple[int, int]
    format: str | None = None
    description: str = "SDS archive"

    def __post_init__(self) -> None:
        from obspy.clients.filesystem.sds import Client

        self.client = Client(self.root, format=self.format or "MSEED")
        found = self.client.get_all_nslc()
        if not found:
            raise InputError(f"{WKEY}.sds_root: the archive {self.root} holds no waveform "
                             "files (expected the SDS layout YEAR/NET/STA/CHA.D/"
                             "NET.STA.LOC.CHA.D.YEAR.DOY).")
        pats = [self.codes[k] for k in CODE_KEYS]
        self.nslc = sorted({n for n in found if all(
            fnmatch.fnmatchcase(c, p) for c, p in zip(n, pats, strict=True))})
        t0, t1 = self.span
        # index the archive's files of the span by their headers (the SDS client's own
        # file naming; its get_waveforms cannot read headers only for a time span)
        paths = sorted({p for nslc in self.nslc for p in self.client._get_filenames(
            *nslc, utc(t0), utc(t1))})
        sel = ".".join(self.codes[k] for k in CODE_KEYS)
        if not paths:
            raise InputError(f"{WKEY}.sds_root: no data for {sel} between {_iso(t0)} and "
                             f"{_iso(t1)} in the archive {self.root}.")
        index = FileSource(paths, self.format or "MSEED", self.codes, self.span,
                           key=f"{WKEY}.sds_root")
        self.channels, self.sampling_rates = index.channels, index.sampling_rates
        self.start_ns, self.end_ns = index.start_ns, index.end_ns

    def read(self, t0_ns: int, t1_ns: int, channel: str | None = None) -> Stream:
        """Traces of the selected channels (or of ``channel`` only) overlapping [t0, t1]."""
        st = Stream()
        for nslc in self.nslc:
            if channel in (None, ".".join(nslc)):
                st += self.client.get_waveforms(*nslc, utc(t0_ns), utc(t1_ns), merge=False)
        return _trim(st, t0_ns, t1_ns)


def codes_of(waveforms: Mapping[str, Any]) -> dict[str, str]:
    """The channel selection of ``data.waveforms`` (network, station, location, channel)."""
    return {k: str(plain(waveforms[k])) for k in CODE_KEYS}


def span_of(waveforms: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The checked ``data.waveforms.starttime/endtime`` in ns (None where null)."""
    return tuple(None if waveforms[k] is None else to_ns(waveforms[k], f"{WKEY}.{k}")
                 for k in ("starttime", "endtime"))  # type: ignore[return-value]


def expand_files(patterns: Sequence[str] | str, key: str = f"{WKEY}.files") -> list[str]:
    """Files named by each entry: a file, a folder (its files, recursively, hidden ones
    left out) or a glob pattern (``**`` recursive); sorted, duplicates dropped. An entry
    that names no file is an error."""
    if isinstance(patterns, (str, Path)):
        patterns = [str(patterns)]
    if not patterns:
        raise InputError(f"{key}: empty; give waveform files, folders or glob patterns.")
    out: list[str] = []
    for pattern in map(str, patterns):
        if Path(pattern).is_dir():
            matches = sorted(str(p) for p in Path(pattern).rglob("*") if p.is_file()
                             and not any(part.startswith(".") for part in
                                         p.relative_to(pattern).parts))
        else:
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not matches:
            raise InputError(f"{key}: no file matches {pattern!r}.")
        out.extend(matches)
    return list(dict.fromkeys(out))


def open_source(
    waveforms: Mapping[str, Any], files: Sequence[str] | None = None, client: Any = None,
) -> Source:
    """The waveform source that ``data.waveforms`` describes.

    ``files`` (when given) replaces ``data.waveforms.files``; for the example source it is
    the list of the example's miniSEED files. ``client`` replaces the FDSN client (tests).
    """
    waveforms = section(WKEY, {**waveforms, "files": list(files or waveforms.get("files")
                                                          or [])})
    source, fmt = waveforms["source"], waveforms["format"]
    codes = codes_of(waveforms)
    span = span_of(waveforms)
    if source == "example":
        if not files:
            raise InputError(f"{WKEY}.source: example, but the example's miniSEED files "
                             "were not given.")
        return FileSource(expand_files(files, f"{WKEY}.example"), "MSEED", codes, span,
                          key=f"{WKEY}.example", description="embedded example")
    if source == "files":
        return FileSource(expand_files(waveforms["files"]), fmt, codes, span)
    if source == "sds":
        return SDSSource(str(waveforms["sds_root"]), codes, span, fmt)  # type: ignore[arg-type]
    paths = fdsn_cache_files(waveforms, client=client)
    if not paths:
        sel = ".".join(codes[k] for k in CODE_KEYS)
        raise InputError(f"{WKEY}.fdsn_client: no data for {sel} between {_iso(span[0])} and "
                         f"{_iso(span[1])} at {waveforms['fdsn_client']}.")
    return FileSource(paths, "MSEED", codes, span, key=f"{WKEY}.fdsn_cache",
                      description=f"FDSN {waveforms['fdsn_client']} (cached)")


def fdsn_cache_path(waveforms: Mapping[str, Any], day_ns: int) -> Path:
    """Cache file of one UTC day of the selection: ``<cache>/<client>/<N.S.L.C>.<day>.mseed``."""
    codes = codes_of(waveforms)
    sel = ".".join(_slug(codes[k]) or "--" for k in CODE_KEYS)
    client = _slug(str(waveforms["fdsn_client"]))
    day = utc(day_ns).strftime("%Y-%m-%d")
    return Path(str(waveforms["fdsn_cache"])) / client / \
        f"{sel}.{day}.mseed"


def fdsn_cache_files(waveforms: Mapping[str, Any], client: Any = None) -> list[str]:
    """Fill the local miniSEED cache for every UTC day of the span; return non-empty files.

    A day already in the cache is never downloaded again; a day without data is cached as
    an empty file. The client is created only when a download is needed.
    """
    waveforms = section(WKEY, waveforms)
    t0, t1 = span_of(waveforms)
    codes = codes_of(waveforms)
    first = (t0 // DAY_NS) * DAY_NS  # type: ignore[operator]
    out = []
    for day in range(first, t1, DAY_NS):  # type: ignore[arg-type]
        path = fdsn_cache_path(waveforms, day)
        if not path.exists():
            client = client or _fdsn_client(waveforms)
            _download_day(client, codes, day, path, waveforms)
        if path.stat().st_size > 0:
            out.append(str(path))
    return out


def _download_day(client: Any, codes: Mapping[str, str], day: int, path: Path,
                  waveforms: Mapping[str, Any]) -> None:
    from obspy.clients.fdsn.header import FDSNNoDataException

    log.info("downloading %s %s from %s", ".".join(codes[k] for k in CODE_KEYS),
             utc(day).date, waveforms["fdsn_client"])
    try:
        st = client.get_waveforms(*(codes[k] for k in CODE_KEYS), utc(day), utc(day + DAY_NS))
    except FDSNNoDataException:
        st = Stream()
    except Exception as err:
        raise InputError(f"{WKEY}.fdsn_client: download from {waveforms['fdsn_client']} "
                         f"failed ({type(err).__name__}: {err}).") from None
    with atomic_path(path) as tmp:
        st = st.split()
        if len(st):
            st.write(str(tmp), format="MSEED")


def _fdsn_client(waveforms: Mapping[str, Any]) -> Any:
    from obspy.clients.fdsn import Client

    name = waveforms["fdsn_client"]
    try:
        return Client(name)
    except Exception as err:
        raise InputError(f"{WKEY}.fdsn_client: cannot use FDSN data centre {name!r} "
                         f"({type(err).__name__}: {err}).") from None


def read_inventory(path: str | None) -> obspy.Inventory | None:
    """The StationXML of ``data.waveforms.stationxml`` (None when not given)."""
    if not path:
        return None
    try:
        return obspy.read_inventory(str(path))
    except Exception as err:
        raise InputError(f"{WKEY}.stationxml: obspy cannot read {path} "
                         f"({type(err).__name__}).") from err


def check_waveforms(waveforms: Mapping[str, Any], files: Sequence[str] | None = None) -> None:
    """The files of a checked ``data.waveforms`` with source files exist (no data read)."""
    if plain(waveforms["source"]) == "files" and not files:
        expand_files(waveforms["files"])


def _read(path: str, fmt: str | None, key: str, **kwargs: Any) -> Stream:
    try:
        return obspy.read(path, format=fmt or None, **kwargs)
    except Exception as err:
        raise InputError(f"{key}: obspy cannot read {path} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'unknown format'}).") \
            from None


#: obspy's warning (libmseed) for a file that ends inside a record.
_TRUNCATED = re.compile(r"Last record only has (\d+) byte")


def _check_complete(path: str, caught: Sequence[warnings.WarningMessage], key: str) -> None:
    """Stop on a miniSEED file whose last record is cut short (obspy only warns and skips
    it, which would turn a damaged copy into a silent gap)."""
    for warning in caught:
        found = _TRUNCATED.search(str(warning.message))
        if found:
            raise InputError(f"{key}: {path} ends inside a miniSEED record (only "
                             f"{found.group(1)} bytes of it are there): the file is truncated; "
                             "copy it again or leave it out.")


def _select(st: Stream, codes: Mapping[str, str]) -> Stream:
    return st.select(**{k: v for k, v in codes.items() if v not in ("*", None)}) \
        if codes else st


def _only(st: Stream, channel: str | None) -> Stream:
    """The traces of ``channel`` (a trace id), or all when it is None."""
    return st if channel is None else Stream([tr for tr in st if tr.id == channel])


def _trim(st: Stream, t0_ns: int, t1_ns: int) -> Stream:
    """Keep samples in [t0, t1] (obspy's read may return whole records)."""
    st.trim(utc(t0_ns), utc(t1_ns), nearest_sample=False)
    return Stream([tr for tr in st if tr.stats.npts > 0])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.,-]+", "_", text.replace("*", "ALL").replace("?", "ANY"))


def _describe(paths: Sequence[str]) -> str:
    return paths[0] if len(paths) == 1 else f"{len(paths)} files ({paths[0]}, ...)"


def _iso(ns: int | None) -> str:
    return "?" if ns is None else str(utc(ns))
