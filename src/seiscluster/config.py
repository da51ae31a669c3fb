"""Typed configuration: Hydra composition, structured schema and validation.

The workflow composes ``conf/config.yaml`` and the user's Hydra overrides with the compose
API, merges the result into the structured schema below (so an unknown key or a wrong type
is an error) and then checks the values. Every check raises :class:`InputError` with one
sentence naming the key, before any stage runs.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
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
    gmm = "gmm"
    agglomerative = "agglomerative"


#: The velocity methods with a fixed k, which ``velocity.consensus`` refits over seeds.
CONSENSUS_METHODS = ("kmeans", "gmm", "agglomerative")


class Connectivity(str, Enum):
    """``velocity.agglomerative.connectivity``: which nodes may merge."""

    none = "none"
    neighbours = "neighbours"


class Metric(str, Enum):
    euclidean = "euclidean"
    dtw = "dtw"
    softdtw = "softdtw"


class CovarianceType(str, Enum):
    full = "full"
    tied = "tied"
    diag = "diag"
    spherical = "spherical"


class GmmInit(str, Enum):
    kmeans = "kmeans"
    random = "random"
    random_from_data = "random_from_data"


class GmmSelect(str, Enum):
    elbow = "elbow"
    bic = "bic"
    aic = "aic"


class GridWeights(str, Enum):
    auto = "auto"
    none = "none"
    cos_lat = "cos_lat"


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


#: Normalisations of the spectrograms ("global" is a Python keyword: functional API).
Normalisation = Enum("Normalisation", {name: name for name in ("global", "per_window", "none")},
                     type=str)


class Pooling(str, Enum):
    """How STFT frames are reduced to ``tremor.spectrogram.n_time`` cells."""

    mean = "mean"
    max = "max"
    percentile = "percentile"


class FeatureSet(str, Enum):
    """Groups of ``tremor.features.sets``."""

    level = "level"
    spikiness = "spikiness"
    kurtosis = "kurtosis"
    onset = "onset"
    ratios = "ratios"
    flatness = "flatness"


class FeatureScaling(str, Enum):
    zscore = "zscore"
    robust = "robust"


class SmallClusters(str, Enum):
    """What becomes of clusters smaller than ``diagnostics.min_cluster_size``."""

    warn = "warn"
    outliers = "outliers"


class PrimaryLabels(str, Enum):
    """Which clustering gives ``tremor/labels.csv``."""

    features = "features"
    dec = "dec"


class ClusterMethod(str, Enum):
    """``tremor.cluster.method`` (:data:`seiscluster.tremor.cluster.METHODS`)."""

    kmeans = "kmeans"
    gmm = "gmm"
    agglomerative = "agglomerative"
    umap_gmm = "umap_gmm"


class Linkage(str, Enum):
    ward = "ward"
    complete = "complete"
    average = "average"
    single = "single"


class Activation(str, Enum):
    """``tremor.model.activation`` (``seiscluster.tremor.autoencoder.ACTIVATIONS``)."""

    elu = "elu"
    relu = "relu"
    leaky_relu = "leaky_relu"
    selu = "selu"
    gelu = "gelu"
    silu = "silu"
    tanh = "tanh"


#: Lightning precision names accepted in ``trainer.precision`` (not identifiers: no Enum).
PRECISIONS = ("64-true", "64", "32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16",
              "16-true", "bf16-true")

#: ``velocity.kmeans.metric_params`` keys that tslearn takes, per metric (DTW: a global
#: constraint on the warping path; soft-DTW: its smoothing ``gamma``).
METRIC_PARAMS = {
    "dtw": ("global_constraint", "sakoe_chiba_radius", "itakura_max_slope"),
    "softdtw": ("gamma",),
}
#: tslearn's global constraints of the DTW path (``metric_params.global_constraint``), and
#: ``auto``: a Sakoe-Chiba band under DTW (radius ``sakoe_chiba_radius``, null: a tenth of
#: the profile length, see :func:`seiscluster.velocity.dtw.dtw_band`), nothing otherwise.
DTW_CONSTRAINTS = ("sakoe_chiba", "itakura", "auto")
#: k-means restarts when ``velocity.kmeans.n_init`` is null, per metric (default 10).
N_INIT_DEFAULTS = {"dtw": 3}


def n_init_for(metric: Any, n_init: int | None) -> int:
    """``velocity.kmeans.n_init``, null resolved to the metric's :data:`N_INIT_DEFAULTS`."""
    return n_init or N_INIT_DEFAULTS.get(_plain(metric), 10)


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
class GridConfig:
    weights: GridWeights = GridWeights.auto
    weights_lat_span: float = 30.0


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
    n_init: int | None = None
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
class GmmConfig:
    n_clusters: int | None = None
    select: GmmSelect = GmmSelect.elbow
    covariance_type: CovarianceType = CovarianceType.full
    n_init: int = 3
    max_iter: int = 200
    tol: float = 1e-3
    reg_covar: float = 1e-6
    init_params: GmmInit = GmmInit.kmeans
    random_state: int = 0


@dataclass
class AgglomerativeConfig:
    n_clusters: int | None = None
    linkage: Linkage = Linkage.ward
    connectivity: Connectivity = Connectivity.none
    max_fit_size: int = 10_000
    random_state: int = 0


@dataclass
class TremorConsensusConfig:
    """Refits of a clustering over seeds (``seiscluster.velocity.consensus``): the tremor
    branch's (the embedding's and the features' ``tremor.cluster`` clusterings, and the
    base of the velocity branch's); ``seeds`` 0 = off."""

    seeds: int = 0
    fraction: float = 0.8
    low_agreement: float = 0.8
    max_low_share: float = 0.1


@dataclass
class ConsensusConfig(TremorConsensusConfig):
    """Refits of the velocity clusterings of ``methods`` over seeds."""

    methods: list[Method] | None = None


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
class CompareConfig:
    """This run's model against a finished run's clusters (``velocity.stages.compare``);
    ``run`` null = off."""

    run: str | None = None
    method: Method = Method.kmeans
    crop: bool = True
    max_distance_km: float | None = None


@dataclass
class VelocityConfig:
    methods: list[Method] = field(default_factory=lambda: [Method.kmeans, Method.som])
    source: str = "vmodel"
    tag: str = "v"
    profiles: ProfilesConfig = field(default_factory=ProfilesConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    elbow: ElbowConfig = field(default_factory=ElbowConfig)
    som: SomConfig = field(default_factory=SomConfig)
    gmm: GmmConfig = field(default_factory=GmmConfig)
    agglomerative: AgglomerativeConfig = field(default_factory=AgglomerativeConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    plot: VelocityPlotConfig = field(default_factory=VelocityPlotConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    tectonics: bool = False


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
    water_level: float | None = 60.0
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
    normalise: Normalisation = Normalisation["global"]
    pooling: Pooling = Pooling.mean
    pooling_percentile: float = 90.0


@dataclass
class ModelConfig:
    """Convolutional autoencoder; defaults are the ClusTremor architecture."""

    channels: list[int] = field(default_factory=lambda: [8, 16, 32, 64])
    kernels: list[list[int]] = field(default_factory=lambda: [[7, 5], [5, 3], [5, 3], [5, 3]])
    strides: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    latent_dim: int = 24
    activation: Activation = Activation.elu


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
class ClusterConfig:
    """Clustering of the embedding at the chosen k, which DEC starts from."""

    method: ClusterMethod = ClusterMethod.kmeans
    covariance_type: CovarianceType = CovarianceType.full
    linkage: Linkage = Linkage.ward
    n_neighbors: int = 10
    n_components: int = 10
    min_dist: float = 0.0


@dataclass
class FeaturesConfig:
    """Interpretable per-window features (``seiscluster.tremor.features``)."""

    frame_seconds: float = 10.0
    # list[Any]: OmegaConf refuses whole numbers in a nested list of floats; the rule of
    # tremor.features.bands checks the pairs.
    bands: list[Any] = field(default_factory=lambda: [
        [0.5, 1.0], [1.0, 2.0], [2.0, 4.0], [4.0, 8.0], [8.0, 16.0]])
    percentiles: list[float] = field(default_factory=lambda: [10.0, 50.0, 90.0, 99.0])
    sets: list[FeatureSet] = field(default_factory=lambda: [
        FeatureSet.kurtosis, FeatureSet.onset, FeatureSet.ratios, FeatureSet.flatness])
    scaling: FeatureScaling = FeatureScaling.zscore
    parts: int = 12
    min_separation: float = 0.85


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
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    consensus: TremorConsensusConfig = field(default_factory=TremorConsensusConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    primary_labels: PrimaryLabels = PrimaryLabels.dec
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
    small_clusters: SmallClusters = SmallClusters.warn
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


# ----------------------------------------------------------------------------- composition


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
    cfg = _merge(raw)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise InputError(_schema_message(err)) from None
    check(to_container(cfg))
    OmegaConf.set_readonly(cfg, True)
    return cfg


def section(path: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config section at ``path`` (e.g. ``"tremor.dec"``) as plain Python: ``values``
    (a plain mapping or config node; enum members taken by value) completed with the
    schema's defaults, every value and relation of the section checked as :func:`compose`
    checks them. What a stage function calls on the sections it is given, so that it works
    on checked values with every key present, however it is called."""
    raw: Any = _plain(values or {})
    for part in reversed(path.split(".")):
        raw = {part: raw}
    return _lookup(check(to_container(_merge(raw)), path), path)


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


_SCHEMA: DictConfig | None = None


def _merge(raw: Any) -> DictConfig:
    """``raw`` merged into (a copy of) the typed schema's defaults; InputError naming the
    key of an unknown key or a value of the wrong type."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = OmegaConf.structured(Config)
    try:
        return OmegaConf.merge(_SCHEMA, raw)
    except OmegaConfBaseException as err:
        raise InputError(_schema_message(err, _item_key(raw, err))) from None


#: Lists of structured items, whose items' errors OmegaConf names without the list's key.
LIST_ITEMS = {"velocity.plot.markers": MarkerConfig, "tremor.plot.events": EventConfig}


def _item_key(raw: Any, err: OmegaConfBaseException) -> str | None:
    """The full key (``velocity.plot.markers[0].kind``) of an error in an item of a list
    of :data:`LIST_ITEMS`; None when the error is elsewhere."""
    for path, schema in LIST_ITEMS.items():
        try:
            items = _lookup(raw, path)
        except (KeyError, TypeError, AttributeError):
            continue
        for i, item in enumerate(items or []):
            try:
                OmegaConf.merge(OmegaConf.structured(schema), item)
            except OmegaConfBaseException as item_err:
                return f"{path}[{i}].{item_err.full_key}"
    return None


def _plain(value: Any) -> Any:
    """Values as plain Python: enum members by value, config nodes, mappings and lists
    copied."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        return to_container(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if is_int(value):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def _lookup(tree: Any, path: str) -> Any:
    for part in path.split(".") if path else ():
        tree = tree[part]
    return tree


def _override_message(err: Exception, overrides: list[str]) -> str:
    text = f"{err} {err.__cause__}"
    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown and "not in struct" in text:
        return (
            f"Unknown configuration key '{unknown.group(1)}' in the overrides: check its "
            "spelling against conf/ (new keys are not accepted)."
        )
    return f"Invalid configuration override in {overrides}: {first_line(err).rstrip('.')}."


#: What a value of the wrong type should have been, by OmegaConf's message.
_TYPE_EXPECTED = (("converted to Integer", "an integer"), ("converted to Float", "a number"),
                  ("not a valid bool", "true or false"), ("to string", "a string"))


def _schema_message(err: OmegaConfBaseException, key: str | None = None) -> str:
    key = key or getattr(err, "full_key", None) or "?"
    text = first_line(err)
    if "not in" in text or ("Key '" in text and "not" in text):
        return f"Unknown configuration key '{key}': check its spelling against conf/ ({text})."
    value = _plain(getattr(err, "value", None))
    options = re.search(r"expected one of \[(.*)\]", text)
    if options:
        return f"{key}: expected one of {options.group(1)}, got {value!r}."
    for fragment, expected in _TYPE_EXPECTED:
        if fragment in text:
            return f"{key}: expected {expected}, got {value!r}."
    return f"Invalid value for configuration key '{key}': {text}."


# ----------------------------------------------------------------------------- value rules
#
# Every key of the schema has its rule below (the schema itself refuses unknown keys, wrong
# types and unknown enum names); RELATIONS check what ties keys together. Both are the one
# place where values are checked: compose() runs them on the whole config, section() on the
# section a stage is given. A refusal is one sentence that starts with the full key.


@dataclass(frozen=True)
class Rule:
    """What a key's value must be: ``expected`` (words) and ``test`` (True when good)."""

    expected: str
    test: Callable[[Any], bool]

    def ok(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError, AttributeError, IndexError):
            return False


def is_int(value: Any) -> bool:
    """An integer of any kind (Python, numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value)


def _bounds(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi:g}"
    return ""


def _within(v: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    return (lo is None or (v > lo if lo_open else v >= lo)) \
        and (hi is None or (v < hi if hi_open else v <= hi))


def _nullable(rule: Rule, null: bool) -> Rule:
    if not null:
        return rule
    return Rule(f"{rule.expected} or null", lambda v: v is None or rule.test(v))


def integer(lo: int | None = None, hi: int | None = None, *, null: bool = False) -> Rule:
    """An integer in [lo, hi]."""
    return _nullable(Rule(f"an integer{_bounds(lo, hi, False, False)}",
                          lambda v: is_int(v) and _within(v, lo, hi, False, False)), null)


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, null: bool = False, unit: str = "") -> Rule:
    """A finite number between lo and hi (open or closed ends)."""
    return _nullable(Rule(f"a number{_bounds(lo, hi, lo_open, hi_open)}{unit}",
                          lambda v: _is_real(v) and _within(v, lo, hi, lo_open, hi_open)),
                     null)


def one_of(options: Sequence[str], *, null: bool = False) -> Rule:
    return _nullable(Rule(f"one of {', '.join(options)}", lambda v: v in options), null)


def text(expected: str = "a non-empty string", test: Callable[[str], bool] = bool, *,
         null: bool = False) -> Rule:
    return _nullable(Rule(expected, lambda v: isinstance(v, str) and test(v)), null)


def numbers_list(item: Rule, *, size: int | None = None, least: int = 0,
                 increasing: bool = False, distinct: bool = False, what: str = "",
                 null: bool = False) -> Rule:
    """A list of values each passing ``item`` (``size`` of them, or at least ``least``),
    described by ``what`` (default: from the item's rule)."""
    if not what:
        head = "a non-empty list" if least == 1 else "a list"
        count = f"{size} " if size else (f"at least {least} " if least > 1 else "")
        order = "increasing " if increasing else ""
        plural = re.sub(r"^an? (\w+)", r"\1s", item.expected)
        what = f"{head} of {count}{order}{plural}"

    def test(v: Any) -> bool:
        v = list(v)
        return (size is None or len(v) == size) and len(v) >= least \
            and all(item.test(x) for x in v) \
            and (not increasing or all(b > a for a, b in itertools.pairwise(v))) \
            and (not distinct or len(set(v)) == len(v))

    return _nullable(Rule(what, lambda v: isinstance(v, list | tuple) and test(v)), null)


def _is_time(value: Any) -> bool:
    from obspy import UTCDateTime

    try:
        UTCDateTime(str(value))
    except Exception:
        return False
    return isinstance(value, str)


#: Window names scipy.signal.get_window takes without parameters (tests check them against
#: scipy): accepted without importing scipy.signal, which takes most of a second at every
#: Snakemake start-up. Other names are asked of scipy.
KNOWN_WINDOWS = frozenset({
    "barthann", "bartlett", "blackman", "blackmanharris", "bohman", "boxcar", "cosine",
    "flattop", "hamming", "hann", "nuttall", "parzen", "triang", "tukey"})


def _is_window(name: str) -> bool:
    if name in KNOWN_WINDOWS:
        return True
    from scipy import signal

    try:
        signal.get_window(name, 8)
    except Exception:
        return False
    return True


def _n_provinces_max() -> int:
    from seiscluster.velocity.example import PROVINCES

    return len(PROVINCES)


def _pair(v: Any) -> bool:
    return len(v) == 2 and all(_is_real(x) for x in v) and v[0] <= v[1]


TIME = text("an ISO 8601 time such as 2021-03-12T00:00:00 (UTC unless an offset is given)",
            _is_time)
STEM = text("a file-name stem (no '/')", lambda v: "/" not in v and v not in (".", ".."))
SEED_CODE = text("a SEED code or wildcard pattern (no dots)", lambda v: "." not in v)
COUNT = integer(1)
SEED = integer(0)
POSITIVE = number(0, lo_open=True)
NON_NEGATIVE = number(0)
FRACTION = number(0, 1)

_EXAMPLE = "data.waveforms.example"
RULES: dict[str, Rule] = {
    "run": text("a folder name without '/'", lambda v: "/" not in v and v not in (".", "..")),
    "seed": SEED,
    "branches": numbers_list(one_of(tuple(Branch.__members__)), distinct=True,
                             what="a list of distinct branches (velocity, tremor; empty "
                                  "only for monitoring, with apply.run)"),
    # data.velocity
    "data.velocity.path": text("an existing file (a netCDF, text or .npz velocity model)",
                               lambda v: Path(v).is_file(), null=True),
    "data.velocity.variable": text(null=True),
    "data.velocity.example.n_lat": integer(2),
    "data.velocity.example.n_lon": integer(2),
    "data.velocity.example.depth_max": number(0, lo_open=True, unit=" km"),
    "data.velocity.example.depth_step": number(0, lo_open=True, unit=" km"),
    "data.velocity.example.n_provinces": Rule(
        "an integer from 2 to the example's number of provinces (5)",
        lambda v: is_int(v) and 2 <= v <= _n_provinces_max()),
    "data.velocity.example.noise": number(0, unit=" km/s"),
    "data.velocity.example.nan_fraction": number(0, 1, hi_open=True),
    "data.velocity.example.seed": SEED,
    # data.waveforms
    "data.waveforms.files": numbers_list(text(), what="a list of files, folders or glob "
                                         "patterns"),
    "data.waveforms.format": text(null=True),
    "data.waveforms.sds_root": text("an existing folder (an SDS archive)",
                                    lambda v: Path(v).is_dir(), null=True),
    "data.waveforms.fdsn_client": text(),
    "data.waveforms.fdsn_cache": text("a folder name (the FDSN download cache)"),
    "data.waveforms.network": SEED_CODE,
    "data.waveforms.station": SEED_CODE,
    "data.waveforms.location": SEED_CODE,
    "data.waveforms.channel": SEED_CODE,
    "data.waveforms.starttime": _nullable(TIME, True),
    "data.waveforms.endtime": _nullable(TIME, True),
    "data.waveforms.stationxml": text("an existing StationXML file",
                                      lambda v: Path(v).is_file(), null=True),
    f"{_EXAMPLE}.days": integer(1),
    f"{_EXAMPLE}.sampling_rate": number(32, unit=" Hz (the example's swarm reaches 15 Hz)"),
    f"{_EXAMPLE}.starttime": TIME,
    f"{_EXAMPLE}.seed": SEED,
    f"{_EXAMPLE}.episode_hours": Rule("[low, high] hours with 0.5 <= low <= high",
                                      lambda v: _pair(v) and v[0] >= 0.5),
    f"{_EXAMPLE}.transition_minutes": NON_NEGATIVE,
    f"{_EXAMPLE}.harmonic_amplitude": NON_NEGATIVE,
    f"{_EXAMPLE}.spasmodic_amplitude": NON_NEGATIVE,
    f"{_EXAMPLE}.swarm_rate": Rule("[low, high] events per hour with 0 <= low <= high",
                                   lambda v: _pair(v) and v[0] >= 0),
    f"{_EXAMPLE}.swarm_amplitude": POSITIVE,
    f"{_EXAMPLE}.swarm_max_amplitude": POSITIVE,
    f"{_EXAMPLE}.swarm_coda_seconds": Rule("[low, high] seconds with 0.1 <= low <= high",
                                           lambda v: _pair(v) and v[0] >= 0.1),
    f"{_EXAMPLE}.cultural_amplitude": NON_NEGATIVE,
    f"{_EXAMPLE}.microseism_amplitude": NON_NEGATIVE,
    f"{_EXAMPLE}.teleseisms": integer(0),
    f"{_EXAMPLE}.withheld_regimes": Rule(
        "a list of at most two distinct regimes (background, harmonic_tremor, "
        "spasmodic_tremor, earthquake_swarm)",
        lambda v: isinstance(v, list | tuple) and len(v) <= 2 and len(set(v)) == len(v)
        and set(v) <= {"background", "harmonic_tremor", "spasmodic_tremor",
                       "earthquake_swarm"}),
    f"{_EXAMPLE}.withheld_days": NON_NEGATIVE,
    f"{_EXAMPLE}.gap_fractions": numbers_list(number(0, 0.8, lo_open=True, hi_open=True),
                                              what="a list of fractions of a window in "
                                              "(0, 0.8)"),
    # velocity
    "velocity.methods": numbers_list(one_of(tuple(Method.__members__)), least=1,
                                     distinct=True, what="a non-empty list of distinct "
                                     "methods (kmeans, som, gmm, agglomerative)"),
    "velocity.source": text(),
    "velocity.tag": text(),
    "velocity.profiles.zrange": numbers_list(number(), size=2, increasing=True, null=True,
                                             what="[zmin, zmax] in km with zmin < zmax"),
    "velocity.profiles.spacing": COUNT,
    "velocity.profiles.dz": number(0, lo_open=True, unit=" km", null=True),
    "velocity.grid.weights_lat_span": number(0, 180, unit=" degrees"),
    "velocity.kmeans.n_clusters": integer(1, null=True),
    "velocity.kmeans.metric_params.global_constraint": one_of(DTW_CONSTRAINTS, null=True),
    "velocity.kmeans.metric_params.sakoe_chiba_radius": integer(0, null=True),
    "velocity.kmeans.metric_params.itakura_max_slope": number(1, null=True),
    "velocity.kmeans.metric_params.gamma": number(0, lo_open=True, null=True),
    "velocity.kmeans.max_iter_barycenter": COUNT,
    "velocity.kmeans.n_init": integer(1, null=True),
    "velocity.kmeans.max_iter": COUNT,
    "velocity.kmeans.tol": NON_NEGATIVE,
    "velocity.kmeans.random_state": SEED,
    "velocity.kmeans.fit_sample_size": integer(2, null=True),
    "velocity.kmeans.figbase": STEM,
    "velocity.elbow.nrange": numbers_list(integer(2), least=3, increasing=True, null=True),
    "velocity.elbow.smooth_n": COUNT,
    "velocity.elbow.sensitivity": POSITIVE,
    "velocity.elbow.silhouette_sample_size": integer(2),
    "velocity.som.grid_size": numbers_list(integer(1), size=2, null=True,
                                           what="[nx, ny] with both >= 1"),
    "velocity.som.niteration": COUNT,
    "velocity.som.sigma": POSITIVE,
    "velocity.som.learning_rate": POSITIVE,
    "velocity.som.random_state": SEED,
    "velocity.som.figbase": STEM,
    "velocity.plot.figsize": numbers_list(number(0, lo_open=True), size=2, null=True,
                                          what="[width, height] in inches, both > 0"),
    "velocity.gmm.n_clusters": integer(1, null=True),
    "velocity.gmm.n_init": COUNT,
    "velocity.gmm.max_iter": COUNT,
    "velocity.gmm.tol": POSITIVE,
    "velocity.gmm.reg_covar": NON_NEGATIVE,
    "velocity.gmm.random_state": SEED,
    "velocity.agglomerative.n_clusters": integer(1, null=True),
    "velocity.agglomerative.max_fit_size": integer(2),
    "velocity.agglomerative.random_state": SEED,
    "velocity.consensus.seeds": integer(0),
    "velocity.consensus.methods": numbers_list(
        one_of(CONSENSUS_METHODS), least=1, distinct=True, null=True,
        what=f"a non-empty list of distinct methods among {', '.join(CONSENSUS_METHODS)}"),
    "velocity.plot.dpi": integer(10),
    "velocity.compare.run": text("a finished run's folder", null=True),
    "velocity.tectonics": Rule("true or false", lambda v: isinstance(v, bool)),
    "velocity.compare.max_distance_km": number(0, lo_open=True, unit=" km", null=True),
    # tremor.preprocess
    "tremor.preprocess.taper": number(0, 0.5),
    "tremor.preprocess.freqmin": number(0, lo_open=True, unit=" Hz", null=True),
    "tremor.preprocess.freqmax": number(0, lo_open=True, unit=" Hz", null=True),
    "tremor.preprocess.resample": number(0, lo_open=True, unit=" Hz", null=True),
    "tremor.preprocess.decimate": integer(1, null=True),
    "tremor.preprocess.pre_filt": numbers_list(number(0), size=4, increasing=True, null=True,
                                               what="four increasing frequencies "
                                               "[f1, f2, f3, f4] in Hz"),
    "tremor.preprocess.water_level": number(null=True),
    "tremor.preprocess.max_gap_fraction": number(0, 1, hi_open=True),
    # tremor.spectrogram
    "tremor.spectrogram.window_length": number(0, lo_open=True, unit=" s"),
    "tremor.spectrogram.window_step": number(0, lo_open=True, unit=" s"),
    "tremor.spectrogram.origin": TIME,
    "tremor.spectrogram.nperseg": integer(2),
    "tremor.spectrogram.noverlap": integer(0, null=True),
    "tremor.spectrogram.taper": text("a scipy.signal window name such as hann or hamming",
                                     _is_window),
    "tremor.spectrogram.fmin": number(0, unit=" Hz"),
    "tremor.spectrogram.fmax": number(0, lo_open=True, unit=" Hz"),
    "tremor.spectrogram.n_freq": COUNT,
    "tremor.spectrogram.n_time": COUNT,
    "tremor.spectrogram.pooling_percentile": number(0, 100),
    # tremor.model
    "tremor.model.channels": numbers_list(integer(1), least=1),
    "tremor.model.kernels": Rule("a list of [height, width] pairs of integers >= 1",
                                 lambda v: all(len(k) == 2 and all(is_int(x) and x >= 1
                                                                   for x in k) for k in v)),
    "tremor.model.strides": numbers_list(integer(1)),
    "tremor.model.latent_dim": COUNT,
    # tremor.pretrain
    "tremor.pretrain.val_fraction": number(0, 1, lo_open=True, hi_open=True),
    "tremor.pretrain.split_seed": SEED,
    "tremor.pretrain.batch_size": COUNT,
    "tremor.pretrain.lr": POSITIVE,
    "tremor.pretrain.lr_decay_rate": number(0, 1, lo_open=True),
    "tremor.pretrain.lr_decay_steps": COUNT,
    "tremor.pretrain.max_epochs": COUNT,
    "tremor.pretrain.patience": integer(0),
    # tremor.kscan (and its stability / gap keys, shared with velocity.elbow below)
    "tremor.kscan.k_min": integer(2),
    "tremor.kscan.k_max": integer(2),
    "tremor.kscan.n_init": COUNT,
    "tremor.kscan.n_clusters": integer(2, null=True),
    # tremor.cluster
    "tremor.cluster.n_neighbors": integer(2),
    "tremor.cluster.n_components": COUNT,
    "tremor.cluster.min_dist": number(0),
    # tremor.features
    "tremor.features.frame_seconds": number(0, lo_open=True, unit=" s"),
    "tremor.features.bands": Rule("a non-empty list of [low, high] frequency bands in Hz "
                                  "with 0 <= low < high",
                                  lambda v: len(v) >= 1 and all(
                                      len(b) == 2 and all(_is_real(x) for x in b)
                                      and 0 <= b[0] < b[1] for b in v)),
    "tremor.features.percentiles": numbers_list(number(0, 100), least=1),
    "tremor.features.parts": Rule("0 (off) or an integer >= 2",
                                  lambda v: is_int(v) and (v == 0 or v >= 2)),
    "tremor.features.min_separation": number(0, 1),
    "tremor.features.sets": numbers_list(one_of(tuple(FeatureSet.__members__)), least=1,
                                         distinct=True, what="a non-empty list of distinct "
                                         f"groups among {', '.join(FeatureSet.__members__)}"),
    # tremor.dec
    "tremor.dec.alpha": POSITIVE,
    "tremor.dec.update_interval": COUNT,
    "tremor.dec.kl_weight": POSITIVE,
    "tremor.dec.reconstruction_weight": NON_NEGATIVE,
    "tremor.dec.lr": POSITIVE,
    "tremor.dec.momentum": number(0, 1, hi_open=True),
    "tremor.dec.batch_size": COUNT,
    "tremor.dec.maxiter": integer(0),
    "tremor.dec.tol": FRACTION,
    "tremor.tsne.perplexity": POSITIVE,
    "tremor.plot.dpi": integer(10),
    # trainer
    "trainer.devices": Rule("1 (the fine-tuning's whole-data target updates run on one "
                            "device)", lambda v: is_int(v) and v == 1),
    "trainer.precision": one_of(PRECISIONS),
    "trainer.num_threads": integer(1, null=True),
    # compute
    "compute.address": text(null=True),
    "compute.n_workers": integer(1, null=True),
    "compute.profiles_chunk": COUNT,
    "compute.spectrogram_block_days": COUNT,
    # apply (monitoring)
    "apply.run": text("a trained run's folder", null=True),
    "apply.novelty_quantile": number(0, 1, lo_open=True),
    "apply.novelty_factor": POSITIVE,
    "apply.incremental": Rule("true or false", lambda v: isinstance(v, bool)),
    # diagnostics
    "diagnostics.min_cluster_size": COUNT,
    "diagnostics.min_silhouette": number(-1, 1),
    "diagnostics.min_stability": number(-1, 1),
    "diagnostics.min_dec_changed_fraction": FRACTION,
    "diagnostics.max_topographic_error": FRACTION,
}
for _consensus in ("velocity.consensus", "tremor.consensus"):
    RULES |= {f"{_consensus}.fraction": number(0, 1, lo_open=True),
              f"{_consensus}.low_agreement": number(0, 1, lo_open=True),
              f"{_consensus}.max_low_share": FRACTION}
RULES["tremor.consensus.seeds"] = integer(0)
for _scan in ("velocity.elbow", "tremor.kscan"):
    RULES |= {f"{_scan}.stability_seeds": integer(2),
              f"{_scan}.stability_fraction": number(0, 1, lo_open=True),
              f"{_scan}.sample_size": integer(2),
              f"{_scan}.gap_references": COUNT}


def check_value(key: str, value: Any) -> None:
    """Check one value against the rule of its key; InputError naming the key."""
    rule = RULES.get(key)
    if rule is not None and not rule.ok(value):
        raise InputError(f"{key}: expected {rule.expected}, got {value!r}.")


# ----------------------------------------------------------------------------- relations
# Each takes the plain section at its path (and the whole config, for the few that look
# across sections) and returns the sentence of a refusal, or None.

Relation = Callable[[Mapping[str, Any], Mapping[str, Any]], "str | None"]


def _example_model(ex: Mapping[str, Any], _: Any) -> str | None:
    key = "data.velocity.example"
    if ex["depth_max"] < 2 * ex["depth_step"]:
        return (f"{key}.depth_step: expected a number <= depth_max / 2 "
                f"({ex['depth_max'] / 2:g} km: at least 3 depths), got {ex['depth_step']!r}.")
    if ex["n_provinces"] > ex["n_lat"] * ex["n_lon"]:
        return (f"{key}.n_provinces: expected at most n_lat x n_lon "
                f"({ex['n_lat'] * ex['n_lon']}), got {ex['n_provinces']!r}.")
    return None


def _example_waveforms(ex: Mapping[str, Any], _: Any) -> str | None:
    if ex["swarm_max_amplitude"] < ex["swarm_amplitude"]:
        return (f"{_EXAMPLE}.swarm_max_amplitude: expected a number >= swarm_amplitude "
                f"({ex['swarm_amplitude']!r}), got {ex['swarm_max_amplitude']!r}.")
    if ex["transition_minutes"] * 60.0 > ex["episode_hours"][0] * 3600.0:
        return (f"{_EXAMPLE}.transition_minutes: expected at most the shortest episode "
                f"({_EXAMPLE}.episode_hours[0] = {ex['episode_hours'][0]!r} h), "
                f"got {ex['transition_minutes']!r}.")
    return None


def _waveforms(wf: Mapping[str, Any], _: Any) -> str | None:
    key, source = "data.waveforms", wf["source"]
    if source == "files" and not wf["files"]:
        return f"{key}.files: expected files, folders or glob patterns (source files), got []."
    if source == "sds" and wf["sds_root"] is None:
        return f"{key}.sds_root: expected an SDS archive folder (source sds), got None."
    if source in ("sds", "fdsn"):
        for end in ("starttime", "endtime"):
            if wf[end] is None:
                return f"{key}.{end}: expected a time (required when {key}.source is " \
                       f"{source}), got None."
    if wf["starttime"] is not None and wf["endtime"] is not None:
        from obspy import UTCDateTime

        if UTCDateTime(wf["endtime"]) <= UTCDateTime(wf["starttime"]):
            return (f"{key}.endtime: expected a time after {key}.starttime "
                    f"({wf['starttime']}), got {wf['endtime']!r}.")
    return None


def _kmeans(km: Mapping[str, Any], _: Any) -> str | None:
    key = "velocity.kmeans"
    size, k = km["fit_sample_size"], km["n_clusters"]
    if size is not None and k is not None and size < k:
        return (f"{key}.fit_sample_size: expected null (fit on every profile) or an integer "
                f">= n_clusters ({k}), got {size!r}.")
    try:
        check_metric_params(km["metric"], km["metric_params"])
    except InputError as err:
        return str(err)
    return None


def _markers(plot: Mapping[str, Any], _: Any) -> str | None:
    for i, m in enumerate(plot["markers"]):
        key = f"velocity.plot.markers[{i}]"
        for coordinate, lo, hi in (("lon", -180, 360), ("lat", -90, 90)):
            value = m.get(coordinate, "???")
            if value == "???":
                return f"{key}.{coordinate}: expected degrees in [{lo}, {hi}], got nothing."
            if not _is_real(value) or not lo <= value <= hi:
                return f"{key}.{coordinate}: expected degrees in [{lo}, {hi}], got {value!r}."
    return None


def _events(plot: Mapping[str, Any], _: Any) -> str | None:
    """``tremor.plot.events``: ISO 8601 ``time`` and optional ``end`` after it."""
    for i, event in enumerate(plot["events"]):
        times = {}
        for end in ("time", "end"):
            value = event.get(end)
            if value is None and end == "end":
                continue
            expected = "an ISO 8601 time (UTC if no offset)"
            if value in (None, "???"):
                return f"tremor.plot.events[{i}].{end}: expected {expected}, got nothing."
            when = event_time(value)
            if when is None:
                return f"tremor.plot.events[{i}].{end}: expected {expected}, got {value!r}."
            times[end] = when
        if "end" in times and times["end"] <= times["time"]:
            return (f"tremor.plot.events[{i}].end: expected a time after its time "
                    f"({event['time']}), got {event['end']!r}.")
    return None


def event_time(value: Any) -> _dt.datetime | None:
    """An event's ISO 8601 time as a naive UTC datetime (None when it is not one)."""
    try:
        when = _dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return when


def _preprocess(p: Mapping[str, Any], _: Any) -> str | None:
    key = "tremor.preprocess"
    if p["freqmin"] is not None and p["freqmax"] is not None and p["freqmin"] >= p["freqmax"]:
        return (f"{key}.freqmin: expected a frequency below {key}.freqmax "
                f"({p['freqmax']} Hz), got {p['freqmin']!r}.")
    if p["decimate"] not in (None, 1) and p["resample"] is not None:
        return (f"{key}.decimate: expected null when {key}.resample is set (one or the other), "
                f"got {p['decimate']!r}.")
    return None


def _remove_response(cfg: Mapping[str, Any], _: Any) -> str | None:
    if cfg["tremor"]["preprocess"]["remove_response"] and not cfg["data"]["waveforms"][
            "stationxml"]:
        return ("tremor.preprocess.remove_response: expected false when "
                "data.waveforms.stationxml (the instrument response) is null, got True.")
    return None


def _spectrogram(s: Mapping[str, Any], _: Any) -> str | None:
    key = "tremor.spectrogram"
    if s["noverlap"] is not None and s["noverlap"] >= s["nperseg"]:
        return (f"{key}.noverlap: expected an integer from 0 to nperseg - 1 "
                f"({s['nperseg'] - 1}) or null, got {s['noverlap']!r}.")
    if s["fmin"] >= s["fmax"]:
        return f"{key}.fmin: expected a frequency below {key}.fmax ({s['fmax']} Hz), " \
               f"got {s['fmin']!r}."
    if s["frequency_scale"] == "log" and s["fmin"] <= 0:
        return f"{key}.fmin: expected a number > 0 Hz with frequency_scale log, " \
               f"got {s['fmin']!r}."
    return None


def _model(m: Mapping[str, Any], _: Any) -> str | None:
    n = len(m["channels"])
    for key in ("kernels", "strides"):
        if len(m[key]) != n:
            return (f"tremor.model.{key}: expected {n} entries (one per entry of "
                    f"tremor.model.channels), got {m[key]!r}.")
    return None


def _kscan(ks: Mapping[str, Any], _: Any) -> str | None:
    if ks["k_max"] < ks["k_min"]:
        return (f"tremor.kscan.k_max: expected an integer >= tremor.kscan.k_min "
                f"({ks['k_min']}), got {ks['k_max']!r}.")
    return None


def _compute(c: Mapping[str, Any], _: Any) -> str | None:
    if c["scheduler"] == "distributed" and not (c["address"] or "").strip():
        return ("compute.address: expected the dask scheduler to connect to (e.g. "
                "tcp://head-node:8786) when compute.scheduler is distributed, got None.")
    if c["scheduler"] != "distributed" and c["address"] is not None:
        return (f"compute.address: expected null for the {c['scheduler']} scheduler (only "
                f"compute.scheduler=distributed uses it), got {c['address']!r}.")
    return None


#: (section path, relation); the path "" gives the relation the whole config, and only
#: compose() runs it.
def _apply(ap: Mapping[str, Any], cfg: Any) -> str | None:
    if ap["run"] is None and not list(cfg["branches"]):
        return ("branches: expected velocity, tremor or both (an empty list only runs "
                "monitoring, which needs apply.run), got [].")
    return None


def _compare(cmp: Mapping[str, Any], cfg: Any) -> str | None:
    if cmp["run"] is not None and "velocity" not in [_plain(b) for b in cfg["branches"]]:
        return ("velocity.compare.run: expected null when the velocity branch does not run "
                f"(branches={[_plain(b) for b in cfg['branches']]}; it compares this run's "
                f"model), got {cmp['run']!r}.")
    return None


def _tectonics(vel: Mapping[str, Any], cfg: Any) -> str | None:
    methods = [_plain(m) for m in vel["methods"]]
    if vel["tectonics"] and ("kmeans" not in methods
                             or _plain(vel["kmeans"]["metric"]) != "euclidean"):
        return ("velocity.tectonics: expected false unless kmeans is among velocity.methods "
                "with velocity.kmeans.metric=euclidean (it refits k-means with the other "
                f"area weighting), got true with methods={methods} and metric="
                f"{_plain(vel['kmeans']['metric'])}.")
    return None


def consensus_methods(cfg: Mapping[str, Any]) -> list[str]:
    """The methods ``velocity.consensus`` refits (plain config): its ``methods``, or every
    method of ``velocity.methods`` with a fixed k; none when ``seeds`` is 0."""
    velocity = cfg["velocity"]
    cs = velocity["consensus"]
    if not cs["seeds"]:
        return []
    if cs["methods"] is not None:
        return [_plain(m) for m in cs["methods"]]
    return [m for m in map(_plain, velocity["methods"]) if m in CONSENSUS_METHODS]


def _consensus(cfg: Mapping[str, Any], _: Any) -> str | None:
    cs, methods = cfg["velocity"]["consensus"], [_plain(m) for m in cfg["velocity"]["methods"]]
    chosen = cs["methods"]
    if chosen is not None:
        missing = [_plain(m) for m in chosen if _plain(m) not in methods]
        if missing:
            return (f"velocity.consensus.methods: expected methods that velocity.methods runs "
                    f"({', '.join(methods)}), got {missing[0]!r}.")
    elif cs["seeds"] and not consensus_methods(cfg):
        return (f"velocity.consensus.seeds: expected 0 when velocity.methods "
                f"({', '.join(methods)}) has no method with a fixed k to refit "
                f"({', '.join(CONSENSUS_METHODS)}), got {cs['seeds']!r}.")
    return None


RELATIONS: list[tuple[str, Relation]] = [
    ("apply", _apply),
    ("velocity", _tectonics),
    ("", _consensus),
    ("velocity.compare", _compare),
    ("data.velocity.example", _example_model),
    ("data.waveforms", _waveforms),
    ("data.waveforms.example", _example_waveforms),
    ("velocity.kmeans", _kmeans),
    ("velocity.plot", _markers),
    ("tremor.preprocess", _preprocess),
    ("", _remove_response),
    ("tremor.spectrogram", _spectrogram),
    ("tremor.model", _model),
    ("tremor.kscan", _kscan),
    ("tremor.plot", _events),
    ("compute", _compute),
]


def check(cfg: Mapping[str, Any], path: str = "") -> Mapping[str, Any]:
    """Check the plain config ``cfg`` (every key present) under ``path`` (all of it for "")
    against RULES and RELATIONS; InputError naming the key of the first bad value."""
    def under(key: str) -> bool:
        return not path or key == path or key.startswith(f"{path}.")

    for key in RULES:
        if under(key):
            check_value(key, _lookup(cfg, key))
    for where, relation in RELATIONS:
        if not path or (where and under(where)):
            message = relation(_lookup(cfg, where), cfg)
            if message:
                raise InputError(message)
    return cfg


def check_metric_params(metric: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``velocity.kmeans.metric_params`` against what tslearn takes for ``metric``.

    DTW: ``global_constraint`` (sakoe_chiba, itakura, auto or null) with its
    ``sakoe_chiba_radius`` (an integer >= 0; with sakoe_chiba or auto) or
    ``itakura_max_slope`` (a number >= 1); soft-DTW: ``gamma`` (> 0). Euclidean ignores
    them, so any of these keys is accepted; ``global_constraint: auto`` means nothing but
    under DTW, where it stays (:func:`seiscluster.velocity.dtw.dtw_band` resolves it).
    Returns the parameters given (null values left out) as a plain dict; raises
    :class:`InputError` naming the key.
    """
    key = "velocity.kmeans.metric_params"
    metric = _plain(metric)
    params = {k: v for k, v in dict(params or {}).items() if v is not None}
    if metric != "dtw" and params.get("global_constraint") == "auto":
        del params["global_constraint"]
    allowed = METRIC_PARAMS.get(metric) or tuple(k for v in METRIC_PARAMS.values() for k in v)
    for name, value in params.items():
        if name not in allowed:
            raise InputError(f"{key}.{name}: expected null with the {metric} metric (tslearn "
                             f"takes {' or '.join(allowed)}), got {value!r}.")
        check_value(f"{key}.{name}", value)
    constraint = params.get("global_constraint")
    for name, needs in (("sakoe_chiba_radius", "sakoe_chiba"), ("itakura_max_slope", "itakura")):
        if name in params and constraint not in (needs, None) and (
                constraint, name) != ("auto", "sakoe_chiba_radius"):
            raise InputError(f"{key}.{name}: expected null with global_constraint "
                             f"{constraint} (it goes with {needs}), got {params[name]!r}.")
    if "sakoe_chiba_radius" in params and "itakura_max_slope" in params:
        raise InputError(f"{key}.itakura_max_slope: expected null when sakoe_chiba_radius is "
                         f"set (one constraint), got {params['itakura_max_slope']!r}.")
    return params
