"""Glue between Snakemake's ``script:`` directive and the package's stage functions.

A rule's script is one call, ``run_stage(snakemake, stage)``: the rule's named inputs,
outputs and params become the stage's keyword arguments, its log file receives the stage's
log records, warnings and printed output, and a bad-input error ends the job with that one
sentence (Snakemake then removes the job's outputs, so nothing partial is left behind).
Before the stage runs, the temporaries that a killed earlier attempt of the job left beside
its outputs are removed.
A rule with an output named ``record`` (the keyed stages) gets its provenance record written
there after the stage succeeds, and the record in every NetCDF file the stage writes.
A script ends with ``end_job()``, which spares the job's exit most of the interpreter's
teardown.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from seiscluster.errors import InputError
from seiscluster.fileio import netcdf_attributes, remove_leftovers

log = logging.getLogger("seiscluster")
#: Name of the output that receives a stage's provenance record.
RECORD = "record"
#: Name of the param that gives a keyed stage the hash of its code
#: (:func:`seiscluster.stagekeys.code_hash`), as Snakemake's process computed it to key
#: the stage: recorded in the provenance record, not passed to the stage. Without it the
#: job computes the hash itself (a few tenths of a second of every stage job).
CODE = "stage_code"


def stage_kwargs(smk: Any, stage: Callable[..., Any]) -> dict[str, Any]:
    """Keyword arguments for ``stage`` from a Snakemake job's named inputs/outputs/params."""
    kwargs = {**dict(smk.input.items()), **dict(smk.output.items()), **dict(smk.params.items())}
    kwargs.pop(RECORD, None)
    kwargs.pop(CODE, None)
    if "threads" in inspect.signature(stage).parameters:
        kwargs["threads"] = int(smk.threads)
    return kwargs


@contextlib.contextmanager
def logging_to(path: str | Path | None) -> Iterator[None]:
    """Send log records, warnings and stdout/stderr of the block to ``path`` (if given)."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream), \
                    warnings.catch_warnings():
                warnings.simplefilter("default")
                yield
        finally:
            root.removeHandler(handler)


def run_stage(smk: Any, stage: Callable[..., Any]) -> None:
    """Run ``stage`` for a Snakemake job; exit 1 with the message on bad input."""
    log_file = smk.log[0] if len(smk.log) else None
    try:
        with logging_to(log_file):
            clear_leftovers(smk.output)
            recorded(smk, stage)
    except InputError as err:
        log.error("%s", err)
        if log_file:
            with open(log_file, "a") as stream:
                stream.write(f"ERROR: {err}\n")
        sys.stderr.write(f"seiscluster: {err}\n")
        sys.exit(1)


def end_job() -> None:
    """The last call of a job's script: the objects that exist now are left out of the
    garbage collections of the process's exit (:func:`gc.freeze`).

    Python's exit tears down every imported module and collects their objects: 0.3-0.7 s
    of a stage job that imported scikit-learn, xarray or matplotlib, which the next job of
    the run waited for. Its exit handlers still run, and the exit status is unchanged.
    """
    gc.freeze()


def clear_leftovers(outputs: Iterable[str]) -> None:
    """Remove the temporaries that a killed earlier attempt of the job left beside its
    outputs (Snakemake runs one job per output at a time, so none is being written)."""
    for output in outputs:
        for path in remove_leftovers(output):
            log.info("removed %s, left by an interrupted earlier attempt", path)


def recorded(smk: Any, stage: Callable[..., Any]) -> None:
    """Run the stage; with a ``record`` output, under and then into its provenance record."""
    outputs = dict(smk.output.items())
    if RECORD not in outputs:
        stage(**stage_kwargs(smk, stage))
        return
    from seiscluster import provenance
    from seiscluster.stagekeys import STAGES, code_hash

    spec = STAGES.get(smk.rule)
    params = dict(smk.params.items())
    code = params.pop(CODE, None) or (code_hash(spec.function) if spec else None)
    record = provenance.stage_record(
        stage=smk.rule, key=dict(smk.wildcards.items()).get("key"),
        params=params, inputs=dict(smk.input.items()), code=code)
    with netcdf_attributes(provenance.netcdf_attributes(record)):
        stage(**stage_kwargs(smk, stage))
    provenance.finish(record, outputs[RECORD])


def link_products(*, links: Mapping[str, str], stems: Mapping[str, str] | None = None
                  ) -> None:
    """Make each ``link`` a relative symbolic link to its target (replacing what is there).

    A link named in ``stems`` (a folder) is instead a folder of links to the target folder's
    files (hidden ones left out), each named ``<stem>_<name>``. A link, or a folder of
    links, is made beside its final name and renamed onto it, so it is never half made.
    """
    stems = stems or {}
    for link, target in links.items():
        path = Path(link)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.link.tmp")
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp)
        tmp.unlink(missing_ok=True)
        if link in stems:
            tmp.mkdir()
            for file in sorted(Path(target).iterdir()):
                if file.name.startswith("."):  # Snakemake's marker of a folder output
                    continue
                (tmp / f"{stems[link]}_{file.name}").symlink_to(os.path.relpath(file, path))
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.is_symlink():
                path.unlink()  # a folder cannot be renamed onto a link
        else:
            tmp.symlink_to(os.path.relpath(target, path.parent))
        os.replace(tmp, path)
