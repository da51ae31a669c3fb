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
import functools
import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seiscluster.config import to_container

PACKAGE = "seiscluster"
PACKAGE_DIR = Path(__file__).resolve().parent
#: Root of the keyed stage store, relative to the working directory.
STORE = "results/stages"
KEY_LENGTH = 12


@dataclass(frozen=True)
class Stage:
    """What one keyed stage runs, reads and needs, and where its products show in a run.

    ``reads`` maps the stage function's keyword arguments to the config paths they come
    from (the rule's params); ``runtime`` does the same for settings that change how fast a
    stage runs but never its result (passed, not hashed into the key); ``also_keys`` are
    config values hashed into the key but not passed as such (a user's model path, which
    reaches the stage as an input file; the spectrogram day blocks, inside ``compute``);
    ``folder`` is the place of the stage's products inside ``results/<run>/``; ``links`` are
    extra folders of the keyed directory shown in the run folder (the pretraining
    checkpoints).

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
    upstream: tuple[str, ...] = ()
    runtime: Mapping[str, str] = field(default_factory=dict)
    also_keys: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    branch: str = "velocity"
    unhashed: tuple[str, ...] = ()
    omit: tuple[str, ...] = ()
    stems: Mapping[str, str] = field(default_factory=dict)


def _velocity_fit(method: str) -> Stage:
    return Stage(
        function=f"seiscluster.velocity.stages:fit_{method}",
        reads={method: f"velocity.{method}", "source": "velocity.source",
               "tag": "velocity.tag",
               "silhouette_sample_size": "velocity.elbow.silhouette_sample_size",
               "diagnostics": "diagnostics"},
        folder=f"velocity/{method}",
        upstream=("velocity_profiles", "velocity_elbow") if method == "kmeans"
        else ("velocity_profiles",),
        stems={"seisgo": f"velocity.{method}.figbase"},
    )


def _velocity_figures(method: str) -> Stage:
    return Stage(
        function="seiscluster.velocity.stages:figures",
        reads={"figsize": "velocity.plot.figsize", "dpi": "velocity.plot.dpi",
               "markers": "velocity.plot.markers"},
        folder=f"velocity/{method}",
        upstream=("velocity_profiles", f"velocity_{method}"),
    )


def _tremor(function: str, folder: str, upstream: tuple[str, ...],
            links: tuple[str, ...] = (), **reads: str) -> Stage:
    module = "stages" if function in ("make_example", "spectrograms", "spectrogram_figures",
                                      "features", "primary_labels") else "deep_stages"
    unhashed = tuple(p for p in _SPEED_ONLY if p.rsplit(".", 1)[0] in reads.values())
    return Stage(function=f"seiscluster.tremor.{module}:{function}", reads=reads,
                 folder=folder, upstream=upstream, links=links, branch="tremor",
                 unhashed=unhashed)


_SEEDED = {"channels": "tremor.preprocess.channels", "seed": "seed"}
#: Settings inside the tremor stages' sections that change no result: where FDSN downloads
#: are cached. Not ``trainer.num_threads``: torch's CPU convolutions round differently with
#: another thread count (1 vs 2 threads: weights apart by 4e-7 after 10 Adam steps).
_SPEED_ONLY = ("data.waveforms.fdsn_cache",)
#: The dask scheduler settings (``compute``): how a stage runs, not what it computes.
_COMPUTE = {"compute": "compute"}

#: Every keyed stage, in an order where a stage follows its upstream stages.
STAGES: dict[str, Stage] = {
    "velocity_ingest": Stage(
        function="seiscluster.velocity.stages:ingest",
        reads={"format": "data.velocity.format", "variable": "data.velocity.variable",
               "example": "data.velocity.example"},
        folder="velocity", also_keys=("data.velocity.path",),
    ),
    "velocity_profiles": Stage(
        function="seiscluster.velocity.stages:profiles",
        reads={"zrange": "velocity.profiles.zrange", "spacing": "velocity.profiles.spacing",
               "dz": "velocity.profiles.dz"},
        folder="velocity", upstream=("velocity_ingest",), runtime=_COMPUTE,
    ),
    "velocity_elbow": Stage(
        function="seiscluster.velocity.stages:elbow",
        reads={"kmeans": "velocity.kmeans", "elbow": "velocity.elbow",
               "dpi": "velocity.plot.dpi", "diagnostics": "diagnostics"},
        folder="velocity/elbow", upstream=("velocity_profiles",), runtime=_COMPUTE,
        # the scan fits every profile for every k: the final fit's k, sample and pickle
        # stem are not its business
        omit=tuple(f"velocity.kmeans.{k}" for k in ("n_clusters", "fit_sample_size",
                                                    "figbase")),
    ),
    "velocity_kmeans": _velocity_fit("kmeans"),
    "velocity_som": _velocity_fit("som"),
    "velocity_kmeans_figures": _velocity_figures("kmeans"),
    "velocity_som_figures": _velocity_figures("som"),
    "tremor_example": _tremor(
        "make_example", "tremor/example", (), example="data.waveforms.example",
        window_length="tremor.spectrogram.window_length"),
    # The day blocks change the stored values in their last float32 digit (the detrend
    # spans a block), so they are hashed; the rest of ``compute`` is runtime.
    "tremor_spectrograms": replace(_tremor(
        "spectrograms", "tremor", ("tremor_example",), waveforms="data.waveforms",
        preprocess="tremor.preprocess", spectrogram="tremor.spectrogram"),
        runtime=_COMPUTE, also_keys=("compute.spectrogram_block_days",)),
    # The interpretable features read the records themselves (full-resolution frames).
    "tremor_features": replace(_tremor(
        "features", "tremor/features", ("tremor_example",), waveforms="data.waveforms",
        preprocess="tremor.preprocess", spectrogram="tremor.spectrogram",
        features="tremor.features", kscan="tremor.kscan", diagnostics="diagnostics",
        **_SEEDED),
        runtime=_COMPUTE, also_keys=("compute.spectrogram_block_days",)),
    "tremor_spectrogram_figures": _tremor(
        "spectrogram_figures", "tremor/figures", ("tremor_spectrograms",),
        dpi="tremor.plot.dpi"),
    "tremor_pretrain": _tremor(
        "pretrain", "tremor/pretrain", ("tremor_spectrograms",), links=("checkpoints",),
        model="tremor.model", pretrain="tremor.pretrain", trainer="trainer", **_SEEDED),
    "tremor_embed_kscan": _tremor(
        "embed_kscan", "tremor/kscan", ("tremor_spectrograms", "tremor_pretrain"),
        kscan="tremor.kscan", diagnostics="diagnostics", **_SEEDED),
    "tremor_finetune": _tremor(
        "finetune", "tremor/dec",
        ("tremor_spectrograms", "tremor_pretrain", "tremor_embed_kscan"),
        dec="tremor.dec", trainer="trainer", **_SEEDED),
    "tremor_deep_figures": _tremor(
        "deep_figures", "tremor",
        ("tremor_example", "tremor_spectrograms", "tremor_embed_kscan", "tremor_pretrain",
         "tremor_finetune"),
        tsne="tremor.tsne", plot="tremor.plot", diagnostics="diagnostics", **_SEEDED),
    "tremor_labels": _tremor(
        "primary_labels", "tremor", ("tremor_features", "tremor_finetune"),
        primary="tremor.primary_labels"),
}


def active_stages(cfg: DictConfig) -> list[str]:
    """The stages a configuration runs, upstream first."""
    branches = {_name(b) for b in cfg.branches}
    methods = {_name(m) for m in cfg.velocity.methods}
    wanted = set()
    if "velocity" in branches:
        wanted |= {"velocity_ingest", "velocity_profiles"}
        for method in methods:
            wanted |= {f"velocity_{method}", f"velocity_{method}_figures"}
        if "kmeans" in methods and cfg.velocity.kmeans.n_clusters is None:
            wanted.add("velocity_elbow")
    if "tremor" in branches:
        wanted |= {name for name, st in STAGES.items()
                   if st.branch == "tremor" and name != "tremor_example"}
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
    """Hash of the package source that ``module:function`` runs (see :func:`code_sources`)."""
    h = hashlib.sha256()
    for module, text in sorted(code_sources(function, root).items()):
        h.update(f"{module}\0{text}\0".encode())
    return h.hexdigest()


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
        sources[current] = ast.unparse(_tree(current, root))
        todo += sorted(_imports(_tree(current, root), current, root))
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
def _tree(module: str, root: Path) -> ast.Module:
    path = module_file(module, root)
    return ast.parse(path.read_text(), filename=str(path))


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
