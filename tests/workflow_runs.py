"""Running the Snakemake workflow from tests: small settings, real processes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
FAST = [
    "branches=[velocity]",
    "data.velocity.example.n_lat=16",
    "data.velocity.example.n_lon=20",
    "data.velocity.example.depth_step=2",
    "velocity.elbow.nrange=[2,3,4,5,6,7,8]",
    "velocity.som.niteration=3000",
    "velocity.kmeans.n_init=3",
]
TREMOR_FAST = [
    "branches=[tremor]",
    "data.waveforms.example.days=3",
    "tremor.pretrain.max_epochs=2",
    "tremor.kscan.k_max=5",
    "tremor.dec.maxiter=60",
    "tremor.dec.update_interval=20",
    "tremor.tsne.perplexity=10",
]


def yaml_list(items: list[str]) -> str:
    """A list of overrides as Snakemake's --config reads it (YAML)."""
    return "[" + ",".join(f'"{o}"' for o in items) + "]"


def default_command(workdir: Path, *args: str) -> list[str]:
    """README command 1 (``snakemake --cores 2``, the default run) in ``workdir``."""
    return [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2",
            *args]


def command(workdir: Path, overrides: list[str], *args: str, run: str | None = "test",
            sweep: list[str] | None = None) -> list[str]:
    """The snakemake command line of a run (or sweep) in ``workdir``."""
    config = [f"overrides={yaml_list(overrides)}"]
    if run is not None:
        config.append(f"run={run}")
    if sweep is not None:
        config.append(f"sweep={yaml_list(sweep)}")
    return [*default_command(workdir, *args), "--config", *config]


def snakemake(workdir: Path, overrides: list[str], *args: str, run: str | None = "test",
              sweep: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` and return the completed process."""
    return subprocess.run(command(workdir, overrides, *args, run=run, sweep=sweep),
                          capture_output=True, text=True, timeout=900)


def completed_run(tmp_path_factory, overrides: list[str]) -> Path:
    """Results folder of a successful run of the workflow in a fresh directory."""
    workdir = tmp_path_factory.mktemp("wf")
    proc = snakemake(workdir, overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir / "results" / "test"


def job_counts(text: str) -> dict[str, int]:
    """Jobs per rule from the 'Job stats' table that Snakemake prints (empty: nothing to do)."""
    if "Job stats:" not in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = (re.match(r"^(\w+)\s+(\d+)$", line.strip()) for line in table.splitlines())
    return {m.group(1): int(m.group(2)) for m in rows if m and m.group(1) != "total"}


def stage_jobs(text: str) -> dict[str, int]:
    """Jobs per keyed stage rule (the link, record and report rules left out)."""
    skip = ("link_", "run_", "report", "all", "sweep_summary")
    return {rule: n for rule, n in job_counts(text).items() if not rule.startswith(skip)}
