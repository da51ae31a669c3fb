"""Stage keys: each stage's outputs live under a key of exactly what they depend on.

A stage's key is a short hash of the configuration values it reads (the ``params`` its rule
passes, listed in :data:`STAGES`), the keys of its upstream stages and a hash of the source
of the package code it runs. Its outputs live in ``results/stages/<stage>/<key>/``, so runs
that agree on what a stage depends on share one job (a sweep over DEC settings pretrains one
autoencoder), a changed parameter reruns exactly the stages downstream of it, and a changed
source file never reuses a stale result. The code is found by reading (not importing) the
stage's module: its module-level imports and the imports inside the functions the stage
function reaches, followed through every package module they import.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seiscluster.config import consensus_methods, to_container

PACKAGE = "seiscluster"
PACKAGE_DIR = Path(__file__).resolve().parent
#: Root of the keyed stage store, relative to the working directory.
STORE = "results/stages"
KEY_LENGTH = 12


@dataclass(frozen=True)
class Product:
    """One output of a stage: ``path`` in the stage's folder (a folder when it ends with
    ``/``). A figure names its ``caption`` (``workflow/report/<caption>.rst``, shown by
    Snakemake's report, in the category of the stage's branch, and by the run's report) and
    its Snakemake report ``subcategory``; ``report`` is the product's name among the run
    report's inputs (:func:`seiscluster.report.report_stage`), None when it shows nowhere."""

    path: str
    report: str | None = None
    caption: str | None = None
    subcategory: str = ""

    @property
    def is_folder(self) -> bool:
        return self.path.endswith("/")


def _figure(path: str, caption: str, subcategory: str, report: str) -> Product:
    """A figure: shown by Snakemake's report and by the run's report."""
    return Product(path, report, caption, subcategory)


@dataclass(frozen=True)
class Stage:
    """Everything about one keyed stage: the function it runs, what it reads and needs, its
    products and where they show in a run. The stage's rule (``workflow/rules/stages.smk``),
    its link rule, the run report's inputs and the figures' captions all follow from it.

    ``function`` is the ``module:function`` the rule runs. ``outputs`` are its products
    (:class:`Product`) by the keyword the function takes them as; ``inputs`` the products
    of upstream stages it reads (keyword -> ``"<stage>.<output>"``), ``optional_inputs``
    those given only when that upstream stage runs; ``sources`` names the user's files it
    reads (``model``: ``data.velocity.path``; ``waveforms``: the records), so that a changed
    file reruns it. ``parallel`` stages get the rule's threads (``--cores``), ``gpu`` stages
    a GPU resource when ``trainer.accelerator`` is gpu.

    ``reads`` maps the stage function's keyword arguments to the config paths they come
    from (the rule's params); ``runtime`` does the same for settings that change how fast a
    stage runs but never its result (passed, not hashed into the key); ``also_keys`` are
    config values hashed into the key but not passed as such (a user's model path, which
    reaches the stage as an input file; the spectrogram day blocks, inside ``compute``);
    ``folder`` is the place of the stage's products inside ``results/<run>/``; ``folders``
    are extra folders of the keyed directory (keyword -> folder) given to the function and
    shown in the run folder (the pretraining checkpoints, kept across attempts, so no
    output).

    Inside the ``reads`` sections, ``unhashed`` are the paths of settings that change only
    the speed or a cache's place (``data.waveforms.fdsn_cache``): passed with their section,
    left out of the key; ``omit`` are paths the stage is not given at all (values it does not
    use, such as the final fit's settings in the elbow scan's ``velocity.kmeans``), so they
    cannot change its products. ``stems`` maps a product folder to the config path of a
    file-name stem: its files show in the run folder as ``<stem>_<name>``, named by the
    run's link rule, so a new stem renames the run's files without rerunning the stage
    (stems are omitted from the stage's values).
    """

    function: str
    reads: Mapping[str, str]
    folder: str
    outputs: Mapping[str, Product] = field(default_factory=dict)
    upstream: tuple[str, ...] = ()
    inputs: Mapping[str, str] = field(default_factory=dict)
    optional_inputs: Mapping[str, str] = field(default_factory=dict)
    sources: str | None = None
    parallel: bool = False
    gpu: bool = False
    runtime: Mapping[str, str] = field(default_factory=dict)
    also_keys: tuple[str, ...] = ()
    folders: Mapping[str, str] = field(default_factory=dict)
    branch: str = "velocity"
    unhashed: tuple[str, ...] = ()
    omit: tuple[str, ...] = ()
    stems: Mapping[str, str] = field(default_factory=dict)

    @property
    def links(self) -> tuple[str, ...]:
        """The extra folders shown in the run folder."""
        return tuple(self.folders.values())


_SEEDED = {"channels": "tremor.preprocess.channels", "seed": "seed"}
#: Settings inside the tremor stages' sections that change no result: where FDSN downloads
#: are cached. Not ``trainer.num_threads``: torch's CPU convolutions round differently with
#: another thread count (1 vs 2 threads: weights apart by 4e-7 after 10 Adam steps).
_SPEED_ONLY = ("data.waveforms.fdsn_cache",)
#: The dask scheduler settings (``compute``): how a stage runs, not what it computes.
_COMPUTE = {"compute": "compute"}
#: What a velocity fit reads besides its own section.
_FIT_READS = {"source": "velocity.source", "tag": "velocity.tag",
              "silhouette_sample_size": "velocity.elbow.silhouette_sample_size",
              "diagnostics": "diagnostics", "grid": "velocity.grid"}
_FIT_OUTPUTS = {"cluster_map": Product("cluster_map.csv"), "clusters": Product("clusters.nc"),
                "model": Product("model.pkl")}
_FIGURE_READS = {"figsize": "velocity.plot.figsize", "dpi": "velocity.plot.dpi",
                 "markers": "velocity.plot.markers"}

#: Every keyed stage, in an order where a stage follows its upstream stages.
STAGES: dict[str, Stage] = {
    # ingest and profile extraction in one job (stages.ingest_profiles): the model file is
    # read, checked and stored (model.nc), then its profiles are extracted
    "velocity_profiles": Stage(
        function="seiscluster.velocity.stages:ingest_profiles",
        reads={"format": "data.velocity.format", "variable": "data.velocity.variable",
               "example": "data.velocity.example", "zrange": "velocity.profiles.zrange",
               "spacing": "velocity.profiles.spacing", "dz": "velocity.profiles.dz"},
        folder="velocity", also_keys=("data.velocity.path",), sources="model",
        runtime=_COMPUTE, parallel=True,
        outputs={"model": Product("model.nc"),
                 "profiles": Product("profiles.nc", report="profiles")},
    ),
    "velocity_elbow": Stage(
        function="seiscluster.velocity.stages:elbow",
        reads={"kmeans": "velocity.kmeans", "elbow": "velocity.elbow",
               "grid": "velocity.grid", "dpi": "velocity.plot.dpi",
               "diagnostics": "diagnostics"},
        folder="velocity/elbow", upstream=("velocity_profiles",), runtime=_COMPUTE,
        parallel=True, inputs={"profiles": "velocity_profiles.profiles"},
        outputs={"table": Product("elbow.csv", report="elbow_table"),
                 "choice": Product("choice.json", report="elbow_choice"),
                 "figure": _figure("elbow.png", "elbow", "Elbow scan", "elbow_figure")},
        # the scan fits every profile for every k: the final fit's k, sample and pickle
        # stem are not its business
        omit=tuple(f"velocity.kmeans.{k}" for k in ("n_clusters", "fit_sample_size",
                                                    "figbase")),
    ),
    "velocity_kmeans": Stage(
        function="seiscluster.velocity.stages:fit_kmeans",
        reads={"kmeans": "velocity.kmeans", **_FIT_READS}, folder="velocity/kmeans",
        upstream=("velocity_profiles", "velocity_elbow"), parallel=True,
        inputs={"profiles": "velocity_profiles.profiles"},
        optional_inputs={"choice": "velocity_elbow.choice", "table": "velocity_elbow.table"},
        outputs={**_FIT_OUTPUTS, "metrics": Product("metrics.json", report="kmeans_metrics"),
                 "seisgo": Product("seisgo/")},
        stems={"seisgo": "velocity.kmeans.figbase"},
    ),
    "velocity_som": Stage(
        function="seiscluster.velocity.stages:fit_som",
        reads={"som": "velocity.som", **_FIT_READS}, folder="velocity/som",
        upstream=("velocity_profiles",), inputs={"profiles": "velocity_profiles.profiles"},
        outputs={**_FIT_OUTPUTS, "metrics": Product("metrics.json", report="som_metrics"),
                 "seisgo": Product("seisgo/")},
        stems={"seisgo": "velocity.som.figbase"},
    ),
    "velocity_gmm": Stage(
        function="seiscluster.velocity.stages:fit_gmm",
        reads={"gmm": "velocity.gmm", "nrange": "velocity.elbow.nrange",
               "dpi": "velocity.plot.dpi", **_FIT_READS},
        folder="velocity/gmm", upstream=("velocity_profiles", "velocity_elbow"),
        inputs={"profiles": "velocity_profiles.profiles"},
        optional_inputs={"choice": "velocity_elbow.choice", "table": "velocity_elbow.table"},
        outputs={**_FIT_OUTPUTS, "metrics": Product("metrics.json", report="gmm_metrics"),
                 "scan": Product("scan.csv", report="gmm_scan"),
                 "scan_figure": _figure("scan.png", "gmm_scan", "Gaussian mixture",
                                        "gmm_scan_figure")},
    ),
    "velocity_agglomerative": Stage(
        function="seiscluster.velocity.stages:fit_agglomerative",
        reads={"agglomerative": "velocity.agglomerative", "dpi": "velocity.plot.dpi",
               **_FIT_READS},
        folder="velocity/agglomerative", upstream=("velocity_profiles", "velocity_elbow"),
        inputs={"profiles": "velocity_profiles.profiles"},
        optional_inputs={"choice": "velocity_elbow.choice"},
        outputs={**_FIT_OUTPUTS,
                 "metrics": Product("metrics.json", report="agglomerative_metrics"),
                 "dendrogram": _figure("dendrogram.png", "velocity_dendrogram",
                                       "Agglomerative", "agglomerative_dendrogram_figure")},
    ),
    "velocity_kmeans_figures": Stage(
        function="seiscluster.velocity.stages:figures", reads=_FIGURE_READS, parallel=True,
        folder="velocity/kmeans", upstream=("velocity_profiles", "velocity_kmeans"),
        inputs={"profiles": "velocity_profiles.profiles",
                "clusters": "velocity_kmeans.clusters"},
        outputs={"cluster_figure": _figure("clusters.png", "cluster_profiles", "k-means",
                                           "kmeans_cluster_figure"),
                 "map_figure": _figure("cluster_map.png", "cluster_map", "k-means",
                                       "kmeans_map_figure")},
    ),
    "velocity_gmm_figures": Stage(
        function="seiscluster.velocity.stages:figures", reads=_FIGURE_READS, parallel=True,
        folder="velocity/gmm", upstream=("velocity_profiles", "velocity_gmm"),
        inputs={"profiles": "velocity_profiles.profiles", "clusters": "velocity_gmm.clusters"},
        outputs={"cluster_figure": _figure("clusters.png", "cluster_profiles",
                                           "Gaussian mixture", "gmm_cluster_figure"),
                 "map_figure": _figure("cluster_map.png", "cluster_map", "Gaussian mixture",
                                       "gmm_map_figure"),
                 "probability_figure": _figure("probability_map.png", "gmm_probability",
                                               "Gaussian mixture", "gmm_probability_figure")},
    ),
    "velocity_tectonics": Stage(
        function="seiscluster.velocity.stages:tectonics",
        reads={"kmeans": "velocity.kmeans", "grid": "velocity.grid",
               "dpi": "velocity.plot.dpi"},
        folder="velocity/tectonics", upstream=("velocity_profiles", "velocity_kmeans"),
        parallel=True,
        inputs={"profiles": "velocity_profiles.profiles",
                "clusters": "velocity_kmeans.clusters"},
        outputs={"table": Product("classes.csv", report="tectonics_table"),
                 "metrics": Product("metrics.json", report="tectonics_metrics"),
                 "figure": _figure("maps.png", "tectonics", "Tectonic context",
                                   "tectonics_figure")},
    ),
    "velocity_som_figures": Stage(
        function="seiscluster.velocity.stages:figures", reads=_FIGURE_READS, parallel=True,
        folder="velocity/som", upstream=("velocity_profiles", "velocity_som"),
        inputs={"profiles": "velocity_profiles.profiles", "clusters": "velocity_som.clusters"},
        outputs={"cluster_figure": _figure("clusters.png", "cluster_profiles", "SOM",
                                           "som_cluster_figure"),
                 "map_figure": _figure("cluster_map.png", "cluster_map", "SOM",
                                       "som_map_figure"),
                 "som_figure": _figure("som_maps.png", "som_maps", "SOM", "som_som_figure")},
    ),
    "velocity_agglomerative_figures": Stage(
        function="seiscluster.velocity.stages:figures", reads=_FIGURE_READS, parallel=True,
        folder="velocity/agglomerative",
        upstream=("velocity_profiles", "velocity_agglomerative"),
        inputs={"profiles": "velocity_profiles.profiles",
                "clusters": "velocity_agglomerative.clusters"},
        outputs={"cluster_figure": _figure("clusters.png", "cluster_profiles", "Agglomerative",
                                           "agglomerative_cluster_figure"),
                 "map_figure": _figure("cluster_map.png", "cluster_map", "Agglomerative",
                                       "agglomerative_map_figure")},
    ),
    # Refits of the fixed-k clusterings over seeds: reads every method's settings (their
    # final k comes from their clusters.nc, so not their n_clusters or k choice).
    "velocity_consensus": Stage(
        function="seiscluster.velocity.stages:consensus",
        reads={"consensus": "velocity.consensus", "methods": "velocity.methods",
               "kmeans": "velocity.kmeans", "gmm": "velocity.gmm",
               "agglomerative": "velocity.agglomerative", "grid": "velocity.grid",
               "dpi": "velocity.plot.dpi", "markers": "velocity.plot.markers"},
        folder="velocity/consensus",
        upstream=("velocity_profiles", "velocity_kmeans", "velocity_gmm",
                  "velocity_agglomerative"),
        parallel=True, inputs={"profiles": "velocity_profiles.profiles"},
        optional_inputs={"kmeans_clusters": "velocity_kmeans.clusters",
                         "gmm_clusters": "velocity_gmm.clusters",
                         "agglomerative_clusters": "velocity_agglomerative.clusters"},
        outputs={"agreement": Product("consensus.nc"),
                 "metrics": Product("metrics.json", report="consensus_metrics"),
                 "low_nodes": Product("low_agreement.csv", report="consensus_low"),
                 "figure": _figure("consensus_map.png", "velocity_consensus", "Consensus",
                                   "consensus_figure")},
        omit=("velocity.kmeans.n_clusters", "velocity.kmeans.figbase",
              "velocity.gmm.n_clusters", "velocity.gmm.select",
              "velocity.agglomerative.n_clusters"),
    ),
    "tremor_example": Stage(
        function="seiscluster.tremor.stages:make_example",
        reads={"example": "data.waveforms.example",
               "window_length": "tremor.spectrogram.window_length"},
        folder="tremor/example", branch="tremor",
        outputs={"waveforms": Product("waveforms/"), "truth": Product("truth.csv")},
    ),
    # The day blocks change the stored values in their last float32 digit (the detrend
    # spans a block), so they are hashed; the rest of ``compute`` is runtime.
    "tremor_spectrograms": Stage(
        function="seiscluster.tremor.stages:spectrograms",
        reads={"waveforms": "data.waveforms", "preprocess": "tremor.preprocess",
               "spectrogram": "tremor.spectrogram"},
        folder="tremor", upstream=("tremor_example",), branch="tremor", unhashed=_SPEED_ONLY,
        runtime=_COMPUTE, also_keys=("compute.spectrogram_block_days",), parallel=True,
        sources="waveforms",
        outputs={"spectrograms": Product("spectrograms.zarr/", report="spectrograms"),
                 "skipped": Product("skipped_windows.csv", report="skipped")},
    ),
    # The interpretable features read the records themselves (full-resolution frames).
    "tremor_features": Stage(
        function="seiscluster.tremor.stages:features",
        reads={"waveforms": "data.waveforms", "preprocess": "tremor.preprocess",
               "spectrogram": "tremor.spectrogram", "features": "tremor.features",
               "kscan": "tremor.kscan", "cluster": "tremor.cluster",
               "diagnostics": "diagnostics", **_SEEDED},
        folder="tremor/features", upstream=("tremor_example",), branch="tremor",
        unhashed=_SPEED_ONLY, runtime=_COMPUTE, also_keys=("compute.spectrogram_block_days",),
        parallel=True, sources="waveforms", optional_inputs={"truth": "tremor_example.truth"},
        outputs={"table": Product("features.nc"), "scan": Product("kscan.csv"),
                 "choice": Product("choice.json", report="features_choice"),
                 "labels": Product("labels.csv"),
                 "metrics": Product("metrics.json", report="features_metrics"),
                 "kscan_figure": _figure("kscan.png", "tremor_features", "Clusters",
                                         "features_kscan")},
    ),
    "tremor_spectrogram_figures": Stage(
        function="seiscluster.tremor.stages:spectrogram_figures",
        reads={"dpi": "tremor.plot.dpi"}, folder="tremor/figures",
        upstream=("tremor_spectrograms",), branch="tremor",
        inputs={"spectrograms": "tremor_spectrograms.spectrograms"},
        outputs={"overview": _figure("overview.png", "tremor_overview", "Spectrograms",
                                     "figure_overview"),
                 "examples": _figure("spectrogram_examples.png", "tremor_examples",
                                     "Spectrograms", "figure_spectrogram_examples")},
    ),
    "tremor_pretrain": Stage(
        function="seiscluster.tremor.deep_stages:pretrain",
        reads={"model": "tremor.model", "pretrain": "tremor.pretrain", "trainer": "trainer",
               **_SEEDED},
        folder="tremor/pretrain", upstream=("tremor_spectrograms",), branch="tremor",
        folders={"checkpoint_dir": "checkpoints"}, parallel=True, gpu=True,
        inputs={"spectrograms": "tremor_spectrograms.spectrograms"},
        outputs={"best": Product("best.ckpt"), "losses": Product("losses.csv")},
    ),
    "tremor_embed_kscan": Stage(
        function="seiscluster.tremor.deep_stages:embed_kscan",
        reads={"kscan": "tremor.kscan", "cluster": "tremor.cluster",
               "diagnostics": "diagnostics", **_SEEDED},
        folder="tremor/kscan", upstream=("tremor_spectrograms", "tremor_pretrain"),
        branch="tremor", parallel=True,
        inputs={"spectrograms": "tremor_spectrograms.spectrograms",
                "best": "tremor_pretrain.best"},
        outputs={"embeddings": Product("embeddings.nc"), "scan": Product("kscan.csv"),
                 "choice": Product("choice.json", report="kscan_choice"),
                 "clusters": Product("clusters/", report="cluster_figures")},
    ),
    "tremor_consensus": Stage(
        function="seiscluster.tremor.stages:consensus",
        reads={"consensus": "tremor.consensus", "cluster": "tremor.cluster",
               "kscan": "tremor.kscan", "dpi": "tremor.plot.dpi", **_SEEDED},
        folder="tremor/consensus", upstream=("tremor_embed_kscan",), branch="tremor",
        inputs={"embeddings": "tremor_embed_kscan.embeddings"},
        outputs={"agreement": Product("agreement.csv", report="tremor_consensus_agreement"),
                 "metrics": Product("metrics.json", report="tremor_consensus_metrics"),
                 "figure": _figure("agreement.png", "tremor_consensus", "Clusters",
                                   "tremor_consensus_figure")},
    ),
    "tremor_features_consensus": Stage(
        function="seiscluster.tremor.stages:features_consensus",
        reads={"consensus": "tremor.consensus", "cluster": "tremor.cluster",
               "kscan": "tremor.kscan", "dpi": "tremor.plot.dpi", **_SEEDED},
        folder="tremor/features/consensus", upstream=("tremor_features",), branch="tremor",
        inputs={"table": "tremor_features.table", "labels": "tremor_features.labels"},
        outputs={"agreement": Product("agreement.csv",
                                      report="features_consensus_agreement"),
                 "metrics": Product("metrics.json", report="features_consensus_metrics"),
                 "figure": _figure("agreement.png", "tremor_consensus", "Clusters",
                                   "features_consensus_figure")},
    ),
    "tremor_finetune": Stage(
        function="seiscluster.tremor.deep_stages:finetune",
        reads={"dec": "tremor.dec", "trainer": "trainer", **_SEEDED}, folder="tremor/dec",
        upstream=("tremor_spectrograms", "tremor_pretrain", "tremor_embed_kscan"),
        branch="tremor", parallel=True, gpu=True,
        inputs={"spectrograms": "tremor_spectrograms.spectrograms",
                "best": "tremor_pretrain.best", "embeddings": "tremor_embed_kscan.embeddings",
                "choice": "tremor_embed_kscan.choice"},
        outputs={"labels": Product("labels.csv"), "assignments": Product("assignments.nc"),
                 "final_model": Product("model.ckpt"),
                 "history": Product("history.csv", report="dec_history")},
    ),
    "tremor_deep_figures": Stage(
        function="seiscluster.tremor.deep_stages:deep_figures",
        reads={"tsne": "tremor.tsne", "plot": "tremor.plot", "diagnostics": "diagnostics",
               **_SEEDED},
        folder="tremor",
        upstream=("tremor_example", "tremor_spectrograms", "tremor_embed_kscan",
                  "tremor_pretrain", "tremor_finetune"),
        branch="tremor", parallel=True, sources="waveforms",
        optional_inputs={"truth": "tremor_example.truth"},
        inputs={"spectrograms": "tremor_spectrograms.spectrograms",
                "embeddings": "tremor_embed_kscan.embeddings",
                "scan": "tremor_embed_kscan.scan", "losses": "tremor_pretrain.losses",
                "best": "tremor_pretrain.best", "assignments": "tremor_finetune.assignments",
                "labels": "tremor_finetune.labels", "history": "tremor_finetune.history",
                "final_model": "tremor_finetune.final_model"},
        outputs={
            "metrics": Product("dec/metrics.json", report="dec_metrics"),
            "loss_figure": _figure("figures/losses.png", "tremor_losses", "Training",
                                   "figure_losses"),
            "kscan_figure": _figure("figures/kscan.png", "tremor_kscan", "Clusters",
                                    "figure_kscan"),
            "tsne_figure": _figure("figures/tsne.png", "tremor_tsne", "Clusters",
                                   "figure_tsne"),
            "timeline_figure": _figure("figures/clusters_over_time.png", "tremor_timeline",
                                       "Clusters", "figure_clusters_over_time"),
            "reconstruction_figure": _figure("figures/reconstructions.png",
                                             "tremor_reconstructions", "Clusters",
                                             "figure_reconstructions"),
            "spectra_figure": _figure("figures/cluster_spectrograms.png", "tremor_spectra",
                                      "Clusters", "figure_cluster_spectrograms")},
    ),
    "tremor_labels": Stage(
        function="seiscluster.tremor.stages:primary_labels",
        reads={"primary": "tremor.primary_labels"}, folder="tremor",
        upstream=("tremor_features", "tremor_finetune"), branch="tremor",
        inputs={"features": "tremor_features.labels", "dec": "tremor_finetune.labels"},
        outputs={"labels": Product("labels.csv", report="labels")},
    ),
}


def active_stages(cfg: DictConfig) -> list[str]:
    """The stages a configuration runs, upstream first."""
    branches = {_name(b) for b in cfg.branches}
    methods = {_name(m) for m in cfg.velocity.methods}
    wanted = set()
    if "velocity" in branches:
        wanted.add("velocity_profiles")
        for method in methods:
            wanted |= {f"velocity_{method}", f"velocity_{method}_figures"}
        if ("kmeans" in methods and cfg.velocity.kmeans.n_clusters is None) or (
                "gmm" in methods and cfg.velocity.gmm.n_clusters is None
                and _name(cfg.velocity.gmm.select) == "elbow") or (
                "agglomerative" in methods and cfg.velocity.agglomerative.n_clusters is None):
            wanted.add("velocity_elbow")
        if cfg.velocity.tectonics:
            wanted.add("velocity_tectonics")
        if consensus_methods(to_container(cfg)):
            wanted.add("velocity_consensus")
    if "tremor" in branches:
        consensus = {"tremor_consensus", "tremor_features_consensus"}
        wanted |= {name for name, st in STAGES.items() if st.branch == "tremor"
                   and name != "tremor_example" and name not in consensus}
        if cfg.tremor.consensus.seeds:
            wanted |= consensus
        if _name(cfg.data.waveforms.source) == "example":
            wanted.add("tremor_example")
    return [name for name in STAGES if name in wanted]


def stage_params(stage: str, cfg: DictConfig) -> dict[str, Any]:
    """The stage's config values (``reads`` and ``runtime``, less ``omit`` and ``stems``),
    as plain Python, named as its function takes them: its rule's params."""
    return _values(_param_paths(stage), cfg, _omitted(stage))


def stage_param(stage: str, arg: str, cfg: DictConfig) -> Any:
    """One of :func:`stage_params`' values (a rule's param function needs only its own)."""
    return _values({arg: _param_paths(stage)[arg]}, cfg, _omitted(stage))[arg]


def stage_stems(stage: str, cfg: DictConfig) -> dict[str, str]:
    """The file-name stem of each product folder in ``STAGES[stage].stems``, for a run."""
    return {folder: str(OmegaConf.select(cfg, path, throw_on_missing=True))
            for folder, path in STAGES[stage].stems.items()}


def _param_paths(stage: str) -> dict[str, str]:
    spec = STAGES[stage]
    return {**spec.reads, **spec.runtime}


def _omitted(stage: str) -> tuple[str, ...]:
    spec = STAGES[stage]
    return (*spec.omit, *spec.stems.values())


def _values(paths: Mapping[str, str], cfg: DictConfig, leave_out: tuple[str, ...] = ()
            ) -> dict[str, Any]:
    """The values at ``paths`` by argument, without the sub-paths ``leave_out``."""
    out = {arg: to_container(OmegaConf.select(cfg, path, throw_on_missing=True))
           for arg, path in paths.items()}
    for arg, path in paths.items():
        for inner in leave_out:
            if inner.startswith(path + "."):
                *parents, last = inner[len(path) + 1:].split(".")
                node = out[arg]
                for part in parents:
                    node = node[part]
                node.pop(last)
    return out


def stage_keys(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Key and upstream keys of every stage the configuration runs, upstream first."""
    active = active_stages(cfg)
    out: dict[str, dict[str, Any]] = {}
    for stage in active:
        spec = STAGES[stage]
        upstream = {u: out[u]["key"] for u in spec.upstream if u in active}
        values = _values(spec.reads, cfg, (*_omitted(stage), *spec.unhashed)) \
            | _values({p: p for p in spec.also_keys}, cfg)
        out[stage] = {"key": key_of(stage, values, upstream), "upstream": upstream}
    return out


def key_of(stage: str, values: Mapping[str, Any], upstream: Mapping[str, str]) -> str:
    """Short hash of a stage's definition, code, config values and upstream keys."""
    spec = STAGES[stage]
    record = {"stage": stage, "function": spec.function, "reads": dict(spec.reads),
              "code": code_hash(spec.function), "values": dict(values),
              "upstream": dict(upstream)}
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def stage_function(stage: str) -> Callable[..., Any]:
    """The package function a stage runs (imported on demand)."""
    module, name = STAGES[stage].function.split(":")
    return getattr(importlib.import_module(module), name)


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@functools.cache
def code_hash(function: str, root: Path = PACKAGE_DIR) -> str:
    """Hash of the package source that ``module:function`` runs (see :func:`code_sources`).

    Parsing that source takes about 0.2 s of every Snakemake start-up for a velocity run
    (more with both branches), so a hash is kept in the user's cache (:func:`cache_file`)
    with a digest of each module file it was made from and of the package's list of module
    files, and reused while none of them changed.
    """
    name = f"{root}:{function}"
    package = _package_digest(root)
    entry = _read_cache().get(name)
    if entry and entry.get("package") == package and all(
            _file_digest(module, root) == digest for module, digest in entry["modules"].items()):
        return str(entry["hash"])
    sources = code_sources(function, root)
    h = hashlib.sha256()
    for module, text in sorted(sources.items()):
        h.update(f"{module}\0{text}\0".encode())
    _store(name, {"package": package, "hash": h.hexdigest(),
                  "modules": {module: _digest(_text(module, root)) for module in sources}})
    return h.hexdigest()


def cache_file() -> Path:
    """Where code hashes are kept between invocations:
    ``$XDG_CACHE_HOME/seiscluster/code_hashes.json`` (``~/.cache`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / PACKAGE / "code_hashes.json"


def _read_cache() -> dict[str, Any]:
    """The kept code hashes; none when the file is missing or unreadable."""
    try:
        cache = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _store(name: str, entry: dict[str, Any]) -> None:
    """Keep one code hash (dropping those of package copies that no longer exist); a cache
    that cannot be written is left as it is."""
    from seiscluster.fileio import write_json

    cache = {key: value for key, value in _read_cache().items()
             if Path(key.rsplit(":", 2)[0]).is_dir()}
    with contextlib.suppress(OSError):
        write_json(cache_file(), {**cache, name: entry})


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _file_digest(module: str, root: Path) -> str | None:
    """Digest of a module file as it is now (None when it is gone)."""
    try:
        return _digest(module_file(module, root).read_text())
    except OSError:
        return None


def _package_digest(root: Path) -> str:
    """Digest of the package's list of module files (a new module can change what an
    import reaches)."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))
    return _digest("\n".join(files))


def code_sources(function: str, root: Path = PACKAGE_DIR) -> dict[str, str]:
    """The package source that ``module:function`` may run, by module.

    Of the function's own module: the function, the module-level definitions it reaches by
    name, and the module's other top-level statements. Then, whole, every package module
    imported by that code (at module level when the reached code uses the imported name, or
    inside a reached function), and everything those modules import, anywhere. Source is
    compared as parsed (``ast.unparse``), so comments and layout do not count.
    """
    module, name = function.split(":")
    tree = _tree(module, root)
    defs = {node.name: node for node in tree.body if isinstance(node, _DEFS)}
    reached = _reached(defs, name)
    others = [node for node in tree.body if not isinstance(node, _DEFS)]
    used = {n.id for node in [*(defs[d] for d in reached), *others] for n in ast.walk(node)
            if isinstance(n, ast.Name)}
    start: set[str] = set()
    for node in others:
        start |= _bound_imports(node, module, used, root) \
            if isinstance(node, (ast.Import, ast.ImportFrom)) else _imports(node, module, root)
    for d in reached:
        start |= _imports(defs[d], module, root)
    own = [ast.unparse(node) for node in tree.body if not isinstance(node, _DEFS)
           or node.name in reached]
    sources = {module: "\n".join(own)}
    todo = sorted(start - {module})
    while todo:
        current = todo.pop()
        if current in sources:
            continue
        sources[current], imported = _module_code(current, root)
        todo += sorted(imported)
    return sources


def module_file(module: str, root: Path = PACKAGE_DIR) -> Path:
    """Source file of a package module, found without importing it."""
    path = root.joinpath(*module.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _reached(defs: Mapping[str, ast.AST], name: str) -> set[str]:
    """Module-level definitions reached from ``name`` through the names they use."""
    reached: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in reached or current not in defs:
            continue
        reached.add(current)
        todo += [n.id for n in ast.walk(defs[current]) if isinstance(n, ast.Name)]
    return reached


@functools.cache
def _text(module: str, root: Path) -> str:
    return module_file(module, root).read_text()


@functools.cache
def _tree(module: str, root: Path) -> ast.Module:
    return ast.parse(_text(module, root), filename=str(module_file(module, root)))


@functools.cache
def _module_code(module: str, root: Path) -> tuple[str, frozenset[str]]:
    """A whole package module's source as parsed and the package modules it imports
    (once per process: the stages of a run share most of them)."""
    tree = _tree(module, root)
    return ast.unparse(tree), frozenset(_imports(tree, module, root))


def _bound_imports(node: ast.Import | ast.ImportFrom, module: str, used: set[str],
                   root: Path) -> set[str]:
    """Package modules of a module-level import whose bound names the code uses."""
    found: set[str] = set()
    for alias in node.names:
        bound = alias.asname or alias.name.split(".")[0]
        if bound not in used:
            continue
        if isinstance(node, ast.Import):
            found.add(alias.name)
            continue
        base = _absolute(node, module)
        found.add(f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}", root) else base)
    return {m for m in found if _is_module(m, root)}


def _imports(node: ast.AST, module: str, root: Path) -> set[str]:
    """Package modules imported anywhere inside ``node`` of ``module``."""
    found: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            found |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            base = _absolute(n, module)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in n.names}
    return {m for m in found if _is_module(m, root)}


def _absolute(node: ast.ImportFrom, module: str) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")[: -node.level]
    return ".".join([*package, *([node.module] if node.module else [])])


def _is_module(name: str, root: Path) -> bool:
    return (name == PACKAGE or name.startswith(PACKAGE + ".")) \
        and module_file(name, root).is_file()


def _name(value: Any) -> str:
    return str(to_container(value))


@dataclass
class Registry:
    """Every keyed stage instance of the runs of one invocation, found by its key."""

    runs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    instances: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, run: str, cfg: DictConfig) -> None:
        """Register the stage keys of one run (the first run with a key provides it)."""
        keys = stage_keys(cfg)
        self.runs[run] = keys
        for stage, entry in keys.items():
            self.instances.setdefault(entry["key"], (stage, run))

    def instance(self, key: str) -> tuple[str, str]:
        """The stage and a run using it, for a key of this invocation."""
        return self.instances[key]

    def key(self, run: str, stage: str) -> str:
        return self.runs[run][stage]["key"]

    def upstream_keys(self, key: str) -> dict[str, str]:
        """The keys of the upstream stages of the stage instance ``key``."""
        stage, run = self.instances[key]
        return self.runs[run][stage]["upstream"]

    def upstream_key(self, key: str, upstream: str) -> str:
        return self.upstream_keys(key)[upstream]
