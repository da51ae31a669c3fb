"""Sweeps: Hydra override syntax expanded into the runs of one Snakemake DAG.

``--config sweep='["velocity.kmeans.metric=euclidean,dtw","velocity.profiles.spacing=1,2"]'``
is parsed with Hydra's own override grammar (comma lists, ``range(...)``, ``choice(...)``,
``glob(...)`` over config-group options) and expanded into the cartesian product of runs,
as Hydra's basic sweeper does. Each run gets a readable, stable name derived from its swept
values (``default+metric=dtw+spacing=2``) and its own results folder ``results/<name>/``.
Every run's configuration is composed and validated before any job is scheduled.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from seiscluster.config import CONF_DIR, compose, first_line
from seiscluster.errors import InputError

#: Folders under results/ that are not runs (the keyed stage store and the sweep products).
RESERVED_NAMES = ("stages", "sweeps")
#: Longest run name kept as is; longer ones are cut and end with a hash of the whole name.
MAX_NAME = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")
_HELP = "expected Hydra override syntax such as key=a,b or key=range(1,4) or key=choice(a,b)"


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its folder name, its overrides and the values it sweeps."""

    name: str
    overrides: tuple[str, ...]
    swept: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        """The run's results folder, relative to the working directory."""
        return f"results/{self.name}"


@dataclass(frozen=True)
class Plan:
    """The runs of one invocation and their validated configurations."""

    runs: tuple[Run, ...]
    configs: dict[str, DictConfig]
    sweep_name: str | None = None

    def run(self, name: str) -> Run:
        """The run of this name."""
        return next(r for r in self.runs if r.name == name)

    def summary_runs(self) -> list[dict[str, Any]]:
        """The runs as the sweep summary reads them: name, folder, swept values."""
        return [{"name": r.name, "folder": r.folder, "overrides": dict(r.swept)}
                for r in self.runs]


def as_list(value: Any, name: str) -> list[str]:
    """A ``--config`` value (a YAML list, one string or nothing) as a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    raise InputError(f"--config {name} must be a list of Hydra overrides, got {value!r}.")


def parse(override: str, parser: Any) -> Any:
    """One Hydra override, parsed; InputError naming it when its syntax is invalid."""
    try:
        parsed = parser.parse_overrides([override])[0]
    except Exception as err:  # Hydra raises OverrideParseException, ValueError, ...
        raise InputError(f"Invalid override {override!r} ({first_line(err)}): {_HELP}.") from None
    if not parsed.key_or_group:
        raise InputError(f"Invalid override {override!r} (no key before '='): {_HELP}.")
    return parsed


def sweep_values(override: str, parser: Any) -> tuple[str, list[str]]:
    """The key of a sweep override and the values it expands to, as Hydra strings."""
    parsed = parse(override, parser)
    key = parsed.get_key_element()
    if not parsed.is_sweep_override():
        return key, [parsed.get_value_element_as_str()]
    if not parsed.is_discrete_sweep():
        raise InputError(f"The sweep {override!r} cannot be expanded into runs: only comma "
                         "lists, range(), choice() and glob() give a finite set of values.")
    try:
        values = list(parsed.sweep_string_iterator())
    except Exception as err:
        raise InputError(f"Invalid override {override!r} ({err}): {_HELP}.") from None
    if not values:
        raise InputError(f"The sweep {override!r} expands to no values.")
    return key, values


def parse_sweep(
    overrides: Sequence[str], sweep: Sequence[str], conf_dir: Path = CONF_DIR
) -> list[tuple[str, list[str]]]:
    """Check the fixed overrides hold no sweep and parse each sweep override into its key
    and values (``glob()`` looks up the config-group options under ``conf_dir``)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base="1.3"):
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().hydra.config_loader)
        for item in overrides:
            if parse(item, parser).is_sweep_override():
                raise InputError(f"The override {item!r} is a sweep: pass it in "
                                 f"--config sweep='[...]' to run every value.")
        axes = [sweep_values(item, parser) for item in sweep]
    _check_keys([key for key, _ in axes])
    return axes


def expand(overrides: Sequence[str], axes: Sequence[tuple[str, list[str]]],
           base: str) -> list[Run]:
    """The cartesian product of the sweep axes, after the fixed ``overrides``, as named runs."""
    keys = [key for key, _ in axes]
    labels = short_labels([key.lstrip("+~") for key in keys])
    runs = []
    for values in itertools.product(*(vals for _, vals in axes)):
        pairs = list(zip(keys, values, strict=True))
        label = "+".join(f"{lab}={_safe(v)}" for lab, v in zip(labels, values, strict=True))
        runs.append(Run(name=f"{base}+{label}" if label else base,
                        overrides=(*overrides, *(f"{k}={v}" for k, v in pairs)),
                        swept={k.lstrip("+~"): _typed(v) for k, v in pairs}))
    return _unique(runs)


def short_labels(keys: Sequence[str]) -> list[str]:
    """The shortest dotted suffix of each key that tells it apart from the others."""
    parts = [key.split(".") for key in keys]
    depth = [1] * len(keys)
    while True:
        labels = [".".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        clash = {lab for lab in labels if labels.count(lab) > 1}
        grow = [i for i, lab in enumerate(labels) if lab in clash and depth[i] < len(parts[i])]
        if not grow:
            return labels
        for i in grow:
            depth[i] += 1


def plan(
    overrides: Sequence[str] = (),
    sweep: Sequence[str] = (),
    run: str | None = None,
    conf_dir: Path = CONF_DIR,
) -> Plan:
    """Expand the sweep and compose and validate the configuration of every run."""
    fixed = [*overrides, *([f"run={run}"] if run is not None else [])]
    axes = parse_sweep(fixed, sweep, conf_dir)
    base = compose(fixed, conf_dir)
    check_name(base.run)
    if not axes:
        return Plan(runs=(Run(name=base.run, overrides=tuple(fixed)),),
                    configs={base.run: base})
    runs = expand(fixed, axes, base.run)
    configs = {r.name: compose([*r.overrides, f"run='{r.name}'"], conf_dir) for r in runs}
    return Plan(runs=tuple(runs), configs=configs, sweep_name=base.run)


def check_name(name: str) -> None:
    """InputError when a run name would clash with the results folder's own folders or
    could not reach a job (Snakemake splits job wildcards at commas)."""
    if "," in name:
        raise InputError(f"run must not contain ',' (Snakemake passes run names to jobs in "
                         f"comma-separated lists), got {name!r}.")
    if name in RESERVED_NAMES:
        raise InputError(f"run must not be {name!r}: results/{name}/ holds "
                         f"{'the keyed stage outputs' if name == 'stages' else 'sweep summaries'}.")


def _check_keys(keys: Sequence[str]) -> None:
    seen = set()
    for key in keys:
        bare = key.lstrip("+~")
        if bare == "run":
            raise InputError("run cannot be swept: it names the sweep (--config run=NAME) and "
                             "each run's folder is named after its swept values.")
        if bare in seen:
            raise InputError(f"The sweep names the key {bare!r} twice: list its values in one "
                             f"override ({bare}=a,b).")
        seen.add(bare)


def _safe(value: str) -> str:
    """A value as part of a folder name: brackets, quotes, spaces, commas... become '_'."""
    return _UNSAFE.sub("_", value).strip("_.") or "_"


def _typed(value: str) -> Any:
    """A swept value as YAML reads it (numbers as numbers), for the summary table."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _unique(runs: list[Run]) -> list[Run]:
    """Runs whose names collide after sanitising (or are too long) get a hash suffix."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
    return [Run(name=_hashed(r) if counts[r.name] > 1 or len(r.name) > MAX_NAME else r.name,
                overrides=r.overrides, swept=r.swept) for r in runs]


def _hashed(run: Run) -> str:
    digest = hashlib.sha256("\n".join(run.overrides).encode()).hexdigest()[:8]
    return f"{run.name[:MAX_NAME - 9]}-{digest}"


def summarise(*, runs: Sequence[Mapping[str, Any]], summary: str, index: str,
              figures: str) -> None:
    """The sweep products: one summary table (CSV), comparison figures and an index page."""
    from seiscluster.summary import summarise_runs, write_sweep_outputs

    runs = [dict(r) for r in runs]
    write_sweep_outputs(summarise_runs(runs), runs, summary, index, figures)
