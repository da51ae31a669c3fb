"""Provenance: what produced a result, recorded beside it and in its NetCDF attributes.

Every keyed stage job writes a record (``provenance.json`` in its stage folder): the stage,
its key and code hash, the config values it read, package versions, host, Python, the
sha256 of its input files from outside ``results/`` (the user's data), and start and end
times. While the stage runs, the same record (less the end time) goes into the global
attributes of every NetCDF file it writes (``provenance_*``). Each run folder gets
``provenance.json``: its resolved config, overrides, seed, versions, the records of its
stages and the files of its folder. :func:`collect_labels` and :func:`compare_labels` check a
rerun of the embedded default against recorded labels (``.ci/reproduce``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import platform
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from seiscluster.fileio import write_json

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported by the label functions only: the run_record job (a process of its
# own in every run) does not need it.

#: Distributions whose versions every record lists (read from metadata, nothing imported).
PACKAGES = (
    "seiscluster", "numpy", "scipy", "pandas", "xarray", "dask", "netCDF4", "zarr",
    "scikit-learn", "tslearn", "kneed", "minisom", "obspy", "matplotlib", "torch",
    "lightning", "hydra-core", "omegaconf", "snakemake",
)
#: Inputs under this folder are products of the workflow (recorded by key, not checksum).
RESULTS = "results"


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def host_info() -> dict[str, str]:
    """The machine and interpreter a record was made on."""
    return {"host": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "executable": sys.executable}


def now() -> str:
    """The current time, UTC, ISO 8601 to the millisecond."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def checksum(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    path = Path(path)
    if path.is_file():
        return _file_sha256(path)
    h = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{item.relative_to(path).as_posix()}\0{_file_sha256(item)}\n".encode())
    return h.hexdigest()


def external_inputs(inputs: Mapping[str, Any]) -> dict[str, str]:
    """sha256 of every input file or folder from outside ``results/`` (the user's data)."""
    paths = []
    for value in inputs.values():
        paths += [value] if isinstance(value, (str, Path)) else list(value)
    return {str(p): checksum(p) for p in sorted(set(map(str, paths)))
            if Path(p).parts[:1] != (RESULTS,) and Path(p).exists()}


def stage_record(
    *, stage: str, key: str | None, params: Mapping[str, Any], inputs: Mapping[str, Any],
    code: str | None = None,
) -> dict[str, Any]:
    """The provenance of a stage job about to run (:func:`finish` adds the end time)."""
    return {
        "stage": stage, "key": key, "code": code, "seed": seeds(params), "config": dict(params),
        "inputs": {name: value if isinstance(value, str) else list(value)
                   for name, value in inputs.items()},
        "input_checksums": external_inputs(inputs), "versions": package_versions(),
        **host_info(), "start": now(),
    }


def seeds(params: Mapping[str, Any]) -> Any:
    """The seed(s) among config values: the value of every ``seed`` or ``random_state`` key,
    one value when they agree (None when there is none)."""
    found = {}
    todo = [("", params)]
    while todo:
        prefix, node = todo.pop()
        for name, value in node.items():
            if isinstance(value, Mapping):
                todo.append((f"{prefix}{name}.", value))
            elif name in ("seed", "random_state"):
                found[f"{prefix}{name}"] = value
    values = set(map(repr, found.values()))
    return next(iter(found.values())) if len(values) == 1 else (found or None)


def finish(record: dict[str, Any], path: str | Path) -> None:
    """Add the end time and the wall time to a stage record and write it (JSON)."""
    record["end"] = now()
    record["seconds"] = round((_parse(record["end"]) - _parse(record["start"]))
                              .total_seconds(), 3)
    write_json(path, record)


def netcdf_attributes(record: Mapping[str, Any]) -> dict[str, str]:
    """A record as flat NetCDF global attributes (``provenance_*``; mappings as JSON)."""
    attrs = {}
    for name, value in record.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                               default=str)
        attrs[f"provenance_{name}"] = text
    return attrs


def record_run(
    *, provenance: str, config: str, overrides: Sequence[str], products: Sequence[str],
    folder: str, **stage_records: str,
) -> None:
    """Write a run's ``provenance.json`` from its config and its stages' records."""
    cfg = yaml.safe_load(Path(config).read_text())
    stages = {name.removeprefix("stage_"): json.loads(Path(path).read_text())
              for name, path in stage_records.items()}
    checksums: dict[str, str] = {}
    for rec in stages.values():
        checksums |= rec.get("input_checksums", {})
    starts = [rec["start"] for rec in stages.values()]
    ends = [rec["end"] for rec in stages.values()]
    write_json(provenance, {
        "run": cfg.get("run"), "seed": cfg.get("seed"), "overrides": list(overrides),
        "config": cfg, "versions": package_versions(), **host_info(),
        "start": min(starts) if starts else None, "end": max(ends) if ends else None,
        "recorded": now(), "input_checksums": checksums,
        "stages": {name: {k: rec.get(k) for k in (
            "key", "code", "start", "end", "seconds", "host", "input_checksums")}
            for name, rec in stages.items()},
        "products": {str(Path(p).relative_to(folder)): _link_target(p) for p in products},
    })


def collect_labels(folder: str | Path) -> pd.DataFrame:
    """Every label of a run folder: ``product, item, cluster`` (velocity maps, tremor DEC and
    feature clusters)."""
    import pandas as pd

    folder = Path(folder)
    frames = []
    for table in sorted(folder.glob("velocity/*/cluster_map.csv")):
        df = pd.read_csv(table)
        frames.append(pd.DataFrame({
            "product": table.parent.relative_to(folder).as_posix(),
            "item": df["lat"].map("{:.6f}".format) + "," + df["lon"].map("{:.6f}".format),
            "cluster": df["cluster"]}))
    for product in ("tremor/dec", "tremor/features"):
        table = folder / product / "labels.csv"
        if not table.is_file():
            continue
        df = pd.read_csv(table)
        item = df["window_start"].astype(str)
        if "channel" in df:
            item = item + "," + df["channel"].astype(str)
        frames.append(pd.DataFrame({"product": product, "item": item,
                                    "cluster": df["cluster"]}))
    if not frames:
        return pd.DataFrame(columns=["product", "item", "cluster"])
    return pd.concat(frames, ignore_index=True)


def compare_labels(reference: pd.DataFrame, labels: pd.DataFrame) -> list[str]:
    """One line per difference between recorded and new labels (empty when identical)."""
    problems = []
    for product in sorted(set(reference["product"]) | set(labels["product"])):
        ref = reference[reference["product"] == product].set_index("item")["cluster"]
        new = labels[labels["product"] == product].set_index("item")["cluster"]
        if ref.empty or new.empty:
            problems.append(f"{product}: {'missing' if new.empty else 'not in the reference'}")
            continue
        if not ref.index.equals(new.index):
            problems.append(f"{product}: {len(ref.index.symmetric_difference(new.index))} "
                            f"items differ ({len(ref)} recorded, {len(new)} now)")
            continue
        changed = int((ref != new).sum())
        if changed:
            problems.append(f"{product}: {changed} of {len(ref)} labels differ")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seiscluster.provenance RUN_FOLDER REFERENCE_CSV [--record]``."""
    import pandas as pd

    args = list(sys.argv[1:] if argv is None else argv)
    record = "--record" in args
    folder, reference = (a for a in args if a != "--record")
    labels = collect_labels(folder)
    if record:
        Path(reference).parent.mkdir(parents=True, exist_ok=True)
        labels.to_csv(reference, index=False)
        print(f"recorded {len(labels)} labels of {folder} in {reference}")
        return 0
    problems = compare_labels(pd.read_csv(reference, dtype={"item": str}), labels)
    for line in problems:
        print(f"DIFFERENT {line}")
    print(f"{len(labels)} labels of {folder}: "
          f"{'identical to' if not problems else 'NOT identical to'} {reference}")
    return 1 if problems else 0


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parse(stamp: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(stamp)


def _link_target(path: str) -> str:
    p = Path(path)
    return str(p.readlink()) if p.is_symlink() else str(p)


if __name__ == "__main__":
    sys.exit(main())
