"""Glue between Snakemake's ``script:`` directive and the package's stage functions.

A rule's script is one call, ``run_stage(snakemake, stage)``: the rule's named inputs,
outputs and params become the stage's keyword arguments, its log file receives the stage's
log records, warnings and printed output, and a bad-input error ends the job with that one
sentence (Snakemake then removes the job's outputs, so nothing partial is left behind).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from seiscluster.errors import InputError

log = logging.getLogger("seiscluster")


def stage_kwargs(smk: Any, stage: Callable[..., Any]) -> dict[str, Any]:
    """Keyword arguments for ``stage`` from a Snakemake job's named inputs/outputs/params."""
    kwargs = {**dict(smk.input.items()), **dict(smk.output.items()), **dict(smk.params.items())}
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
            stage(**stage_kwargs(smk, stage))
    except InputError as err:
        log.error("%s", err)
        if log_file:
            with open(log_file, "a") as stream:
                stream.write(f"ERROR: {err}\n")
        sys.stderr.write(f"seiscluster: {err}\n")
        sys.exit(1)
