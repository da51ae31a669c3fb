"""Typed configuration: Hydra composition, structured schema and validation.

The workflow composes ``conf/config.yaml`` and the user's Hydra overrides with the compose
API, merges the result into the structured schema below (so an unknown key or a wrong type
is an error) and then checks the values. Every check raises :class:`InputError` with one
sentence naming the key, before any stage runs.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seiscluster.errors import InputError
from seiscluster.resources import conf_dir

CONF_DIR = conf_dir()  # the checkout's conf/, or its copy in an installed package


class ModelFormat(str, Enum):
    auto = "auto"
    netcdf = "netcdf"
    text = "text"
    npz = "npz"
    geocsv = "geocsv"


class Method(str, Enum):
    kmeans = "kmeans"
    som = "som"


class Metric(str, Enum):
    euclidean = "euclidean"
    dtw = "dtw"
    softdtw = "softdtw"


class ElbowFallback(str, Enum):
    silhouette = "silhouette"
    calinski_harabasz = "calinski_harabasz"
    second_difference = "second_difference"
    k_min = "k_min"
    k_max = "k_max"


class KRule(str, Enum):
    """How k is chosen from a scan (:data:`seiscluster.kselect.RULES`)."""

    criterion = "criterion"
    gap = "gap"
    stable_criterion = "stable_criterion"
    stable_gap = "stable_gap"


class Neighborhood(str, Enum):
    gaussian = "gaussian"
    mexican_hat = "mexican_hat"
    bubble = "bubble"
    triangle = "triangle"


class Topology(str, Enum):
    rectangular = "rectangular"
    hexagonal = "hexagonal"


class ActivationDistance(str, Enum):
    euclidean = "euclidean"
    cosine = "cosine"
    manhattan = "manhattan"
    chebyshev = "chebyshev"


class MarkerKind(str, Enum):
    volcano = "volcano"
    station = "station"
    place = "place"


class Branch(str, Enum):
    velocity = "velocity"
    tremor = "tremor"


class WaveformSource(str, Enum):
    example = "example"
    files = "files"
    sds = "sds"
    fdsn = "fdsn"


class Detrend(str, Enum):
    linear = "linear"
    demean = "demean"
    none = "none"


class ResponseOutput(str, Enum):
    DISP = "DISP"
    VEL = "VEL"
    ACC = "ACC"


class ChannelMode(str, Enum):
    stack = "stack"
    separate = "separate"


class FrequencyScale(str, Enum):
    linear = "linear"
    log = "log"


class Power(str, Enum):
    log10 = "log10"
    db = "db"


class KCriterion(str, Enum):
    calinski_harabasz = "calinski_harabasz"
    silhouette = "silhouette"
    davies_bouldin = "davies_bouldin"


class Accelerator(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class Scheduler(str, Enum):
    threads = "threads"
    processes = "processes"
    synchronous = "synchronous"
    distributed = "distributed"


#: Normalisations of the spectrograms ("global" is a Python keyword, so no Enum).
NORMALISATIONS = ("global", "per_window", "none")

#: ``velocity.kmeans.metric_params`` keys that tslearn takes, per metric (DTW: a global
#: constraint on the warping path; soft-DTW: its smoothing ``gamma``).
METRIC_PARAMS = {
    "dtw": ("global_constraint", "sakoe_chiba_radius", "itakura_max_slope"),
    "softdtw": ("gamma",),
}
#: tslearn's global constraints of the DTW path (``metric_params.global_constraint``).
DTW_CONSTRAINTS = ("sakoe_chiba", "itakura")


@dataclass
class ExampleModelConfig:
    """The embedded synthetic model used when ``data.velocity.path`` is null."""

    n_lat: int = 36
    n_lon: int = 48
    depth_max: float = 80.0
    depth_step: float = 1.0
    n_provinces: int = 5
    noise: float = 0.03
    nan_fraction: float = 0.05
    seed: int = 0


@dataclass
class VelocityDataConfig:
    path: str | None = None
    format: ModelFormat = ModelFormat.auto
    variable: str | None = None
    example: ExampleModelConfig = field(default_factory=ExampleModelConfig)


@dataclass
class ExampleWaveformsConfig:
    """The embedded synthetic records used when ``data.waveforms.source`` is example."""

    days: int = 14
    sampling_rate: float = 50.0
    starttime: str = "2021-03-12T00:00:00"
    seed: int = 0
    episode_hours: list[float] = field(default_factory=lambda: [3.0, 12.0])
    transition_minutes: float = 20.0
    harmonic_amplitude: float = 2.0
    spasmodic_amplitude: float = 3.0
    swarm_rate: list[float] = field(default_factory=lambda: [10.0, 40.0])
    swarm_amplitude: float = 3.0
    swarm_max_amplitude: float = 20.0
    swarm_coda_seconds: list[float] = field(default_factory=lambda: [1.0, 8.0])
    cultural_amplitude: float = 0.5
    microseism_amplitude: float = 4.0
    teleseisms: int = 1
    gap_fractions: list[float] = field(default_factory=lambda: [0.005, 0.02, 0.04, 0.5])
    withheld_regimes: list[str] = field(default_factory=list)
    withheld_days: float = 0.0


@dataclass
class WaveformsConfig:
    source: WaveformSource = WaveformSource.example
    files: list[str] = field(default_factory=list)
    format: str | None = None
    sds_root: str | None = None
    fdsn_client: str = "IRIS"
    fdsn_cache: str = "data/fdsn_cache"
    network: str = "*"
    station: str = "*"
    location: str = "*"
    channel: str = "*"
    starttime: str | None = None
    endtime: str | None = None
    stationxml: str | None = None
    example: ExampleWaveformsConfig = field(default_factory=ExampleWaveformsConfig)


@dataclass
class DataConfig:
    velocity: VelocityDataConfig = field(default_factory=VelocityDataConfig)
    waveforms: WaveformsConfig = field(default_factory=WaveformsConfig)


@dataclass
class ProfilesConfig:
    zrange: list[float] | None = None
    spacing: int = 1
    dz: float | None = None


@dataclass
class MetricParamsConfig:
    """tslearn's metric parameters (:data:`METRIC_PARAMS`); null = not given to tslearn."""

    global_constraint: str | None = None
    sakoe_chiba_radius: int | None = None
    itakura_max_slope: float | None = None
    gamma: float | None = None


@dataclass
class KMeansConfig:
    n_clusters: int | None = None
    metric: Metric = Metric.euclidean
    metric_params: MetricParamsConfig = field(default_factory=MetricParamsConfig)
    max_iter_barycenter: int = 100
    n_init: int = 10
    max_iter: int = 50
    tol: float = 1e-6
    random_state: int = 0
    fit_sample_size: int | None = None
    figbase: str = "kmean"


@dataclass
class ElbowConfig:
    nrange: list[int] | None = None
    smooth: bool = False
    smooth_n: int = 3
    sensitivity: float = 1.0
    fallback: ElbowFallback = ElbowFallback.silhouette
    silhouette_sample_size: int = 2000
    rule: KRule = KRule.stable_criterion
    stability_seeds: int = 5
    stability_fraction: float = 0.8
    sample_size: int = 1000
    gap_references: int = 10


@dataclass
class SomConfig:
    grid_size: list[int] | None = None
    niteration: int = 50000
    sigma: float = 0.3
    learning_rate: float = 0.1
    neighborhood_function: Neighborhood = Neighborhood.gaussian
    topology: Topology = Topology.rectangular
    activation_distance: ActivationDistance = ActivationDistance.euclidean
    random_state: int = 0
    figbase: str = "som"


@dataclass
class MarkerConfig:
    lon: float = MISSING
    lat: float = MISSING
    label: str = ""
    kind: MarkerKind = MarkerKind.place


@dataclass
class VelocityPlotConfig:
    figsize: list[float] | None = None
    dpi: int = 120
    markers: list[MarkerConfig] = field(default_factory=list)


@dataclass
class VelocityConfig:
    methods: list[Method] = field(default_factory=lambda: [Method.kmeans, Method.som])
    source: str = "vmodel"
    tag: str = "v"
    profiles: ProfilesConfig = field(default_factory=ProfilesConfig)
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    elbow: ElbowConfig = field(default_factory=ElbowConfig)
    som: SomConfig = field(default_factory=SomConfig)
    plot: VelocityPlotConfig = field(default_factory=VelocityPlotConfig)


@dataclass
class PreprocessConfig:
    detrend: Detrend = Detrend.linear
    taper: float = 0.05
    freqmin: float | None = 0.5
    freqmax: float | None = None
    resample: float | None = None
    decimate: int | None = None
    remove_response: bool = False
    response_output: ResponseOutput = ResponseOutput.VEL
    pre_filt: list[float] | None = None
    water_level: float = 60.0
    max_gap_fraction: float = 0.05
    channels: ChannelMode = ChannelMode.stack


@dataclass
class SpectrogramConfig:
    window_length: float = 3600.0
    window_step: float = 3600.0
    origin: str = "2000-01-01T00:00:00"
    nperseg: int = 1024
    noverlap: int | None = None
    taper: str = "hann"
    fmin: float = 1.0
    fmax: float = 4.0
    n_freq: int = 96
    n_time: int = 128
    frequency_scale: FrequencyScale = FrequencyScale.linear
    power: Power = Power.log10
    normalise: str = "global"
    pooling: str = "mean"
    pooling_percentile: float = 90.0


@dataclass
class ModelConfig:
    """Convolutional autoencoder; defaults are the ClusTremor architecture."""

    channels: list[int] = field(default_factory=lambda: [8, 16, 32, 64])
    kernels: list[list[int]] = field(default_factory=lambda: [[7, 5], [5, 3], [5, 3], [5, 3]])
    strides: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    latent_dim: int = 24
    activation: str = "elu"


@dataclass
class PretrainConfig:
    val_fraction: float = 0.2
    split_seed: int = 46
    batch_size: int = 32
    lr: float = 1.0e-3
    lr_decay_rate: float = 0.5
    lr_decay_steps: int = 1000
    max_epochs: int = 500
    patience: int = 30


@dataclass
class KScanConfig:
    k_min: int = 2
    k_max: int = 15
    n_init: int = 20
    criterion: KCriterion = KCriterion.calinski_harabasz
    n_clusters: int | None = None
    rule: KRule = KRule.stable_criterion
    stability_seeds: int = 5
    stability_fraction: float = 0.8
    sample_size: int = 5000
    gap_references: int = 10


@dataclass
class FeaturesConfig:
    """Interpretable per-window features (``seiscluster.tremor.features``)."""

    frame_seconds: float = 10.0
    bands: list[list[float]] = field(default_factory=lambda: [
        [0.5, 1.0], [1.0, 2.0], [2.0, 4.0], [4.0, 8.0], [8.0, 16.0]])
    percentiles: list[float] = field(default_factory=lambda: [10.0, 50.0, 90.0, 99.0])
    sets: list[str] = field(default_factory=lambda: ["kurtosis", "onset", "ratios",
                                                     "flatness"])
    scaling: str = "zscore"


@dataclass
class DecConfig:
    alpha: float = 1.0
    update_interval: int = 200
    kl_weight: float = 0.1
    reconstruction_weight: float = 0.0
    lr: float = 0.01
    momentum: float = 0.9
    batch_size: int = 32
    maxiter: int = 50000
    tol: float = 1.0e-4


@dataclass
class TsneConfig:
    perplexity: float = 30.0


@dataclass
class EventConfig:
    time: str = MISSING
    label: str = ""
    end: str | None = None


@dataclass
class TremorPlotConfig:
    events: list[EventConfig] = field(default_factory=list)
    dpi: int = 120


@dataclass
class TremorConfig:
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    spectrogram: SpectrogramConfig = field(default_factory=SpectrogramConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    kscan: KScanConfig = field(default_factory=KScanConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    primary_labels: str = "dec"
    dec: DecConfig = field(default_factory=DecConfig)
    tsne: TsneConfig = field(default_factory=TsneConfig)
    plot: TremorPlotConfig = field(default_factory=TremorPlotConfig)


@dataclass
class TrainerConfig:
    accelerator: Accelerator = Accelerator.cpu
    devices: int = 1
    precision: str = "32-true"
    deterministic: bool = True
    compile: bool = False
    channels_last: bool = True
    num_threads: int | None = None


@dataclass
class ComputeConfig:
    """Where a stage's dask tasks run and how big they are (``conf/compute/``).

    The scheduler never changes a result; the chunk sizes bound a task's memory.
    """

    scheduler: Scheduler = Scheduler.threads
    address: str | None = None
    n_workers: int | None = None
    profiles_chunk: int = 50_000
    spectrogram_block_days: int = 1


@dataclass
class DiagnosticsConfig:
    """Thresholds of the warnings (:mod:`seiscluster.diagnostics`)."""

    min_cluster_size: int = 2
    min_silhouette: float = 0.25
    min_stability: float = 0.9
    min_dec_changed_fraction: float = 0.01
    max_topographic_error: float = 0.2


@dataclass
class ApplyConfig:
    """Monitoring (``seiscluster.tremor.apply``): label this run's records with a trained
    run's clustering, without retraining; ``run`` null = off."""

    run: str | None = None
    novelty_quantile: float = 0.99
    novelty_factor: float = 1.5
    incremental: bool = True


@dataclass
class Config:
    run: str = "default"
    seed: int = 0
    branches: list[Branch] = field(default_factory=lambda: [Branch.velocity, Branch.tremor])
    data: DataConfig = field(default_factory=DataConfig)
    velocity: VelocityConfig = field(default_factory=VelocityConfig)
    tremor: TremorConfig = field(default_factory=TremorConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    apply: ApplyConfig = field(default_factory=ApplyConfig)


def compose(overrides: Sequence[str] = (), conf_dir: Path = CONF_DIR) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides and return the validated config."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    overrides = list(overrides)
    try:
        with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
            raw = hydra_compose(config_name="config", overrides=overrides)
    except HydraException as err:
        raise InputError(_override_message(err, overrides)) from None
    return validate(raw)


def validate(raw: DictConfig | dict) -> DictConfig:
    """Merge a raw config into the typed schema, resolve it and check every value."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), raw)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise InputError(_schema_message(err)) from None
    _check_values(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML, as written next to the results."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def to_container(node: Any) -> Any:
    """A plain-Python copy of a config node (enums as their names), for params and JSON."""
    if isinstance(node, DictConfig) or OmegaConf.is_list(node):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return node.value if isinstance(node, Enum) else node


def first_line(err: Exception) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _override_message(err: Exception, overrides: list[str]) -> str:
    text = f"{err} {err.__cause__}"
    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown and "not in struct" in text:
        return (
            f"Unknown configuration key '{unknown.group(1)}' in the overrides: check its "
            "spelling against conf/ (new keys are not accepted)."
        )
    return f"Invalid configuration override in {overrides}: {first_line(err).rstrip('.')}."


def _schema_message(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or "?"
    text = first_line(err)
    if "not in" in text or ("Key '" in text and "not" in text):
        return f"Unknown configuration key '{key}': check its spelling against conf/ ({text})."
    return f"Invalid value for configuration key '{key}': {text}."


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def _check_values(cfg: DictConfig) -> None:
    _require(
        bool(cfg.run) and "/" not in cfg.run and cfg.run not in (".", ".."),
        f"run must be a folder name without '/', got {cfg.run!r}.",
    )
    _check_data(cfg.data.velocity)
    check_waveform_example(to_container(cfg.data.waveforms.example))
    check_pooling(cfg.tremor.spectrogram.pooling, cfg.tremor.spectrogram.pooling_percentile)
    check_features(to_container(cfg.tremor.features))
    _require(cfg.tremor.primary_labels in PRIMARY_LABELS,
             f"tremor.primary_labels must be one of {', '.join(PRIMARY_LABELS)}, "
             f"got {cfg.tremor.primary_labels!r}.")
    _check_velocity(cfg.velocity)
    check_events(to_container(cfg.tremor.plot.events))
    check_kselect(cfg.velocity.elbow, "velocity.elbow")
    check_kselect(cfg.tremor.kscan, "tremor.kscan")
    check_diagnostics(cfg.diagnostics)
    check_compute(cfg.compute)
    _require(0 < cfg.apply.novelty_quantile <= 1,
             f"apply.novelty_quantile must be in (0, 1], got {cfg.apply.novelty_quantile!r}.")
    _require(cfg.apply.novelty_factor > 0,
             f"apply.novelty_factor must be a number > 0, got {cfg.apply.novelty_factor!r}.")


def check_kselect(section: Any, prefix: str) -> None:
    """Check the stability and gap keys of a k scan (``velocity.elbow``, ``tremor.kscan``)."""
    for key, least in (("stability_seeds", 2), ("sample_size", 2), ("gap_references", 1)):
        value = section[key]
        _require(is_int(value) and value >= least,
                 f"{prefix}.{key} must be an integer >= {least}, got {value!r}.")
    fraction = section["stability_fraction"]
    _require(_is_real(fraction) and 0 < fraction <= 1,
             f"{prefix}.stability_fraction must be a number in (0, 1], got {fraction!r}.")


def check_diagnostics(diag: Any) -> None:
    """Check the ``diagnostics`` thresholds; InputError naming the key."""
    size = diag["min_cluster_size"]
    _require(is_int(size) and size >= 1,
             f"diagnostics.min_cluster_size must be an integer >= 1, got {size!r}.")
    for key, lo, hi in (("min_silhouette", -1, 1), ("min_stability", -1, 1),
                        ("min_dec_changed_fraction", 0, 1), ("max_topographic_error", 0, 1)):
        value = diag[key]
        _require(_is_real(value) and lo <= value <= hi,
                 f"diagnostics.{key} must be a number in [{lo}, {hi}], got {value!r}.")


def check_compute(compute: Any) -> None:
    """Check a ``compute`` section (config node or plain mapping); InputError naming the key."""
    scheduler = getattr(compute["scheduler"], "value", compute["scheduler"])
    _require(
        scheduler in Scheduler.__members__,
        f"compute.scheduler must be one of {', '.join(Scheduler.__members__)}, "
        f"got {scheduler!r}.",
    )
    address = compute["address"]
    if scheduler == "distributed":
        _require(
            isinstance(address, str) and bool(address.strip()),
            "compute.address must give the dask scheduler to connect to (e.g. "
            "tcp://head-node:8786) when compute.scheduler is distributed, got null.",
        )
    else:
        _require(
            address is None,
            f"compute.address ({address!r}) is only used by compute.scheduler=distributed; "
            f"set it to null for the {scheduler} scheduler.",
        )
    for key in ("n_workers", "profiles_chunk", "spectrogram_block_days"):
        value = compute[key]
        if value is None and key == "n_workers":
            continue
        _require(
            isinstance(value, int) and not isinstance(value, bool) and value >= 1,
            f"compute.{key} must be a whole number >= 1, got {value!r}.",
        )


def check_events(events: Sequence[Mapping[str, Any]]) -> None:
    """Check ``tremor.plot.events``: ISO 8601 ``time`` and optional ``end`` after it."""
    for i, event in enumerate(events):
        times = {}
        for key in ("time", "end"):
            value = event.get(key)
            if value is None and key == "end":
                continue
            _require(value not in (None, "???"),
                     f"tremor.plot.events[{i}] needs a time (ISO 8601, UTC if no offset).")
            try:
                when = _dt.datetime.fromisoformat(str(value))
            except ValueError:
                raise InputError(f"tremor.plot.events[{i}].{key} must be an ISO 8601 time, "
                                 f"got {value!r}.") from None
            if when.tzinfo is not None:
                when = when.astimezone(_dt.timezone.utc).replace(tzinfo=None)
            times[key] = when
        _require("end" not in times or times["end"] > times["time"],
                 f"tremor.plot.events[{i}].end ({event.get('end')}) must be after its time "
                 f"({event.get('time')}).")


#: Feature groups of ``tremor.features.sets``, scalings and the labels a run can call primary.
FEATURE_SETS = ("level", "spikiness", "kurtosis", "onset", "ratios", "flatness")
FEATURE_SCALINGS = ("zscore", "robust")
PRIMARY_LABELS = ("features", "dec")


def check_features(f: Mapping[str, Any]) -> None:
    """Check ``tremor.features`` (a plain mapping with every key); InputError naming it."""
    key = "tremor.features"
    _require(_is_real(f["frame_seconds"]) and f["frame_seconds"] > 0,
             f"{key}.frame_seconds must be a number > 0 (s), got {f['frame_seconds']!r}.")
    bands = [list(b) for b in f["bands"]]
    _require(len(bands) >= 1 and all(len(b) == 2 and all(_is_real(v) for v in b)
                                     and 0 <= b[0] < b[1] for b in bands),
             f"{key}.bands must list [low, high] frequency bands (Hz, 0 <= low < high), "
             f"got {bands}.")
    q = list(f["percentiles"])
    _require(len(q) >= 1 and all(_is_real(v) and 0 <= v <= 100 for v in q),
             f"{key}.percentiles must list numbers in [0, 100], got {q}.")
    sets = list(f["sets"])
    _require(len(sets) >= 1 and len(set(sets)) == len(sets)
             and all(s in FEATURE_SETS for s in sets),
             f"{key}.sets must list distinct groups among {', '.join(FEATURE_SETS)}, "
             f"got {sets}.")
    _require(f["scaling"] in FEATURE_SCALINGS,
             f"{key}.scaling must be one of {', '.join(FEATURE_SCALINGS)}, "
             f"got {f['scaling']!r}.")


#: How STFT frames are reduced to ``tremor.spectrogram.n_time`` cells.
POOLINGS = ("mean", "max", "percentile")


def check_pooling(pooling: Any, percentile: Any) -> None:
    """Check ``tremor.spectrogram.pooling`` and ``pooling_percentile``."""
    key = "tremor.spectrogram"
    _require(pooling in POOLINGS, f"{key}.pooling must be one of {', '.join(POOLINGS)}, "
             f"got {pooling!r}.")
    _require(_is_real(percentile) and 0 <= percentile <= 100,
             f"{key}.pooling_percentile must be a number in [0, 100], got {percentile!r}.")


def check_waveform_example(ex: Mapping[str, Any]) -> None:
    """Check ``data.waveforms.example`` (a plain mapping with every key); InputError naming
    the key."""
    from obspy import UTCDateTime

    key = "data.waveforms.example"
    _require(is_int(ex["days"]) and ex["days"] >= 1,
             f"{key}.days: expected a whole number of days >= 1, got {ex['days']!r}.")
    _require(_is_real(ex["sampling_rate"]) and ex["sampling_rate"] >= 32.0,
             f"{key}.sampling_rate: {ex['sampling_rate']!r} Hz is too low for the example's "
             "swarm (content up to 15 Hz); use at least 32 Hz (the default is 50 Hz).")
    try:
        UTCDateTime(str(ex["starttime"]))
    except Exception:
        raise InputError(f"{key}.starttime: {ex['starttime']!r} is not an ISO 8601 "
                         "time.") from None
    _require(is_int(ex["seed"]), f"{key}.seed must be an integer, got {ex['seed']!r}.")
    for name, low in (("episode_hours", 0.5), ("swarm_rate", 0.0),
                      ("swarm_coda_seconds", 0.1)):
        v = list(ex[name])
        _require(len(v) == 2 and all(_is_real(x) for x in v) and low <= v[0] <= v[1],
                 f"{key}.{name} must be [low, high] with {low:g} <= low <= high, got {v}.")
    for name in ("transition_minutes", "harmonic_amplitude", "spasmodic_amplitude",
                 "cultural_amplitude", "microseism_amplitude"):
        _require(_is_real(ex[name]) and ex[name] >= 0,
                 f"{key}.{name} must be a number >= 0, got {ex[name]!r}.")
    _require(_is_real(ex["swarm_amplitude"]) and ex["swarm_amplitude"] > 0,
             f"{key}.swarm_amplitude must be a number > 0, got {ex['swarm_amplitude']!r}.")
    _require(_is_real(ex["swarm_max_amplitude"])
             and ex["swarm_max_amplitude"] >= ex["swarm_amplitude"],
             f"{key}.swarm_max_amplitude must be a number >= swarm_amplitude "
             f"({ex['swarm_amplitude']!r}), got {ex['swarm_max_amplitude']!r}.")
    _require(ex["transition_minutes"] * 60.0 <= ex["episode_hours"][0] * 3600.0,
             f"{key}.transition_minutes ({ex['transition_minutes']!r}) must not exceed the "
             f"shortest episode ({key}.episode_hours[0] = {ex['episode_hours'][0]!r} h).")
    _require(is_int(ex["teleseisms"]) and ex["teleseisms"] >= 0,
             f"{key}.teleseisms must be a whole number >= 0, got {ex['teleseisms']!r}.")
    gaps = list(ex["gap_fractions"])
    _require(all(_is_real(g) and 0 < g < 0.8 for g in gaps),
             f"{key}.gap_fractions must list fractions of a window in (0, 0.8), got {gaps}.")
    regimes = ("background", "harmonic_tremor", "spasmodic_tremor", "earthquake_swarm")
    withheld = list(ex.get("withheld_regimes", []))
    _require(all(r in regimes for r in withheld) and len(set(withheld)) < len(regimes) - 1,
             f"{key}.withheld_regimes must list at most {len(regimes) - 2} of "
             f"{', '.join(regimes)}, got {withheld}.")
    days = ex.get("withheld_days", 0.0)
    _require(_is_real(days) and days >= 0,
             f"{key}.withheld_days must be a number of days >= 0, got {days!r}.")


def _check_data(data: DictConfig) -> None:
    if data.path is not None:
        _require(
            Path(data.path).exists(),
            f"data.velocity.path: file {data.path} does not exist "
            f"(a netCDF, text or .npz velocity model was expected).",
        )
    ex = data.example
    for key in ("n_lat", "n_lon"):
        _require(ex[key] >= 2, f"data.velocity.example.{key} must be >= 2, got {ex[key]}.")
    _require(ex.depth_step > 0, "data.velocity.example.depth_step must be > 0 km.")
    _require(
        ex.depth_max >= 2 * ex.depth_step,
        "data.velocity.example.depth_max must allow at least 3 depths.",
    )


def _check_velocity(vel: DictConfig) -> None:
    _require(len(vel.methods) > 0, "velocity.methods must name kmeans, som or both.")
    _require(
        len(set(vel.methods)) == len(vel.methods), "velocity.methods lists a method twice."
    )
    _check_profiles(vel.profiles)
    km = vel.kmeans
    if km.n_clusters is not None:
        _require(
            km.n_clusters >= 1, f"velocity.kmeans.n_clusters must be >= 1, got {km.n_clusters}."
        )
    for key in ("n_init", "max_iter", "max_iter_barycenter"):
        _require(km[key] >= 1, f"velocity.kmeans.{key} must be >= 1, got {km[key]}.")
    _require(km.tol >= 0, f"velocity.kmeans.tol must be >= 0, got {km.tol}.")
    check_metric_params(to_container(km.metric), to_container(km.metric_params))
    if km.fit_sample_size is not None:
        least = max(2, km.n_clusters or 2)
        _require(
            km.fit_sample_size >= least,
            "velocity.kmeans.fit_sample_size must be null (fit on every profile) or an "
            f"integer >= {least} (and >= n_clusters), got {km.fit_sample_size}.",
        )
    _check_elbow(vel.elbow)
    _check_som(vel.som)
    if vel.plot.figsize is not None:
        _require(
            len(vel.plot.figsize) == 2 and min(vel.plot.figsize) > 0,
            "velocity.plot.figsize must be [width, height] in inches, both > 0.",
        )
    for i, marker in enumerate(vel.plot.markers):
        _require(not (OmegaConf.is_missing(marker, "lon") or OmegaConf.is_missing(marker, "lat")),
                 f"velocity.plot.markers[{i}] needs lon and lat (degrees).")
        _require(
            -180.0 <= marker.lon <= 360.0 and -90.0 <= marker.lat <= 90.0,
            f"velocity.plot.markers[{i}] must have lon in -180..360 and lat in -90..90 "
            f"degrees, got lon={marker.lon}, lat={marker.lat}.",
        )


def check_metric_params(metric: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``velocity.kmeans.metric_params`` against what tslearn takes for ``metric``.

    DTW: ``global_constraint`` (sakoe_chiba, itakura or null) with its
    ``sakoe_chiba_radius`` (an integer >= 0) or ``itakura_max_slope`` (a number >= 1);
    soft-DTW: ``gamma`` (> 0). Euclidean ignores them, so any of these keys is accepted.
    Returns the parameters given (null values left out) as a plain dict for tslearn; raises
    :class:`InputError` naming the key.
    """
    key = "velocity.kmeans.metric_params"
    params = {k: v for k, v in dict(params or {}).items() if v is not None}
    allowed = METRIC_PARAMS.get(metric) or tuple(k for v in METRIC_PARAMS.values() for k in v)
    for name in params:
        _require(
            name in allowed,
            f"{key}.{name} is not a tslearn parameter of the {metric} metric; expected "
            f"{' or '.join(allowed)}.",
        )
    constraint = params.get("global_constraint")
    _require(
        constraint is None or constraint in DTW_CONSTRAINTS,
        f"{key}.global_constraint must be sakoe_chiba, itakura or null, got {constraint!r}.",
    )
    radius, slope = params.get("sakoe_chiba_radius"), params.get("itakura_max_slope")
    if radius is not None:
        _require(
            is_int(radius) and radius >= 0 and constraint != "itakura",
            f"{key}.sakoe_chiba_radius must be an integer >= 0 used with global_constraint "
            f"sakoe_chiba, got {radius!r} (global_constraint {constraint!r}).",
        )
    if slope is not None:
        _require(
            _is_real(slope) and slope >= 1 and constraint != "sakoe_chiba" and radius is None,
            f"{key}.itakura_max_slope must be a number >= 1 used with global_constraint "
            f"itakura, got {slope!r} (global_constraint {constraint!r}).",
        )
    if "gamma" in params:
        _require(
            _is_real(params["gamma"]) and params["gamma"] > 0,
            f"{key}.gamma must be a number > 0, got {params['gamma']!r}.",
        )
    return params


def is_int(value: Any) -> bool:
    """An integer of any kind (Python, numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value)


def _check_profiles(prof: DictConfig) -> None:
    _require(prof.spacing >= 1, f"velocity.profiles.spacing must be >= 1, got {prof.spacing}.")
    if prof.dz is not None:
        _require(
            math.isfinite(prof.dz) and prof.dz > 0,
            f"velocity.profiles.dz must be > 0 km (or null), got {prof.dz}.",
        )
    if prof.zrange is not None:
        z = list(prof.zrange)
        _require(
            len(z) == 2 and all(math.isfinite(v) for v in z) and z[0] < z[1],
            f"velocity.profiles.zrange must be [zmin, zmax] in km with zmin < zmax, got {z}.",
        )


def _check_elbow(elbow: DictConfig) -> None:
    if elbow.nrange is not None:
        k = list(elbow.nrange)
        _require(
            len(k) >= 3 and min(k) >= 2 and k == sorted(set(k)),
            "velocity.elbow.nrange must list at least 3 increasing cluster counts >= 2, "
            f"got {k}.",
        )
    _require(elbow.smooth_n >= 1, f"velocity.elbow.smooth_n must be >= 1, got {elbow.smooth_n}.")
    _require(elbow.sensitivity > 0, "velocity.elbow.sensitivity (kneed S) must be > 0.")
    _require(
        elbow.silhouette_sample_size >= 2,
        "velocity.elbow.silhouette_sample_size must be >= 2.",
    )


def _check_som(som: DictConfig) -> None:
    if som.grid_size is not None:
        _require(
            len(som.grid_size) == 2 and min(som.grid_size) >= 1,
            f"velocity.som.grid_size must be [nx, ny] with both >= 1 (or null), "
            f"got {list(som.grid_size)}.",
        )
    _require(som.niteration >= 1, f"velocity.som.niteration must be >= 1, got {som.niteration}.")
    _require(som.sigma > 0, f"velocity.som.sigma must be > 0, got {som.sigma}.")
    _require(
        som.learning_rate > 0, f"velocity.som.learning_rate must be > 0, got {som.learning_rate}."
    )
