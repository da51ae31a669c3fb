"""The ``seiscluster`` command: its arguments, the Snakemake command it builds, and where it
finds the workflow (the wheel's install is exercised by .ci/run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from workflow_runs import ROOT, job_counts

from seiscluster import cli, resources
from seiscluster.errors import InputError

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def command(*argv: str) -> list[str]:
    ours, extra = cli.split_snakemake_args(argv)
    return cli.snakemake_command(cli.build_parser().parse_args(ours), extra)


def test_run_passes_cores_run_overrides_sweep_and_snakemake_arguments():
    got = command("run", "--cores", "2", "--run", "k", "--overrides", "branches=[velocity]",
                  "velocity.kmeans.n_clusters=6", "--overrides", "seed=1",
                  "--sweep", "velocity.som.sigma=0.3,0.5", "-d", "work",
                  "--", "results/k/velocity/profiles.nc", "--forcerun", "velocity_som")
    assert got == [
        *SNAKEMAKE, "-d", "work", "--cores", "2",
        "results/k/velocity/profiles.nc", "--forcerun", "velocity_som",
        "--config", "run=k",
        'overrides=["branches=[velocity]", "velocity.kmeans.n_clusters=6", "seed=1"]',
        'sweep=["velocity.som.sigma=0.3,0.5"]']
    # the lists reach Snakemake as YAML lists, quotes and commas included
    assert json.loads(got[-2].split("=", 1)[1])[0] == "branches=[velocity]"


def test_defaults_dry_run_and_report():
    assert command("run") == [*SNAKEMAKE, "-d", ".", "--cores", "all"]
    assert command("dry-run", "--overrides", "experiment=cascadia") == [
        *SNAKEMAKE, "-d", ".", "-n", "--config", 'overrides=["experiment=cascadia"]']
    assert command("report", "--output", "r.zip") == [
        *SNAKEMAKE, "-d", ".", "--report", "r.zip"]


def test_a_profile_name_is_the_shipped_profile_unless_a_folder_of_that_name_exists(
        tmp_path, monkeypatch):
    got = command("run", "--profile", "slurm")
    assert got[got.index("--profile") + 1] == str(ROOT / "workflow/profiles/slurm")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slurm").mkdir()
    got = command("run", "--profile", "slurm")
    assert got[got.index("--profile") + 1] == "slurm"


@pytest.mark.parametrize("argv, message", [
    (["run", "--cores", "0"], "expected a positive whole number or 'all', got '0'"),
    (["run", "--cores", "two"], "expected a positive whole number or 'all', got 'two'"),
    (["fit"], "invalid choice: 'fit'"),
    (["reproduce", "--", "-n"], "reproduce takes no Snakemake arguments"),
    (["run", "--unlock"], "unrecognized arguments: --unlock"),
])
def test_bad_arguments_stop_with_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_the_command_dry_runs_the_workflow_in_any_folder(tmp_path):
    """The console script, from an empty folder: the checkout's workflow and conf/, the
    overrides applied (velocity branch only), nothing written but Snakemake's own folder."""
    exe = Path(sys.executable).with_name("seiscluster")
    proc = subprocess.run([str(exe), "dry-run", "--run", "v", "--overrides",
                           "branches=[velocity]", "velocity.kmeans.n_clusters=4"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_counts(proc.stdout)
    assert jobs["velocity_kmeans"] == 1 and "velocity_elbow" not in jobs
    assert not any(rule.startswith("tremor") for rule in jobs)
    assert "results/v/report.html" in proc.stdout
    assert not (tmp_path / "results").exists()


def test_workflow_files_come_from_the_package_copy_else_the_checkout(tmp_path):
    assert resources.workflow_root() == ROOT  # tests run from the checkout
    package = tmp_path / "site-packages" / "seiscluster"
    with pytest.raises(InputError, match=r"neither in the installed package .*_workflow\) "
                                         r"nor in a source checkout"):
        resources.workflow_root(package)
    copy = package / resources.PACKAGED
    (copy / "conf").mkdir(parents=True)
    (copy / "Snakefile").write_text("")
    assert resources.workflow_root(package) == copy
