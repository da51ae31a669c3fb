"""The ``seiscluster`` command: the workflow, with its configuration, in any working folder.

It runs Snakemake on the workflow's Snakefile (the installed package's copy, or the source
checkout's: :mod:`seiscluster.resources`) with the given folder as working directory, so
the results go to that folder's ``results/``, exactly as ``snakemake`` in a checkout would
write them (same configuration, overrides and sweeps)::

    seiscluster run --cores 2 --overrides 'branches=[velocity]' 'velocity.kmeans.n_clusters=6'
    seiscluster run --run k --sweep 'velocity.kmeans.n_clusters=4,5,6'
    seiscluster dry-run --overrides experiment=cascadia
    seiscluster run --cores 2 -- results/default/velocity/profiles.nc --forcerun velocity_som
    seiscluster report --output report.html
    seiscluster reproduce

Arguments after ``--`` go to Snakemake unchanged (targets, ``--unlock``,
``--rerun-incomplete``, ``--executor``, ...).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from seiscluster import resources


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per action."""
    parser = argparse.ArgumentParser(
        prog="seiscluster",
        description="Run the seiscluster workflow (Snakemake + Hydra configuration) in a "
                    "working folder; arguments after -- go to Snakemake.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the workflow (snakemake --cores N)")
    dry = sub.add_parser("dry-run", help="show what would be (re)computed (snakemake -n)")
    report = sub.add_parser("report", help="Snakemake's report of the last run "
                                           "(snakemake --report); each run also writes "
                                           "results/<run>/report.html")
    for p in (run, dry, report):
        _workflow_options(p)
    _cores(run)
    report.add_argument("--output", default="report.html",
                        help="report file, .html or .zip (default: report.html)")
    reproduce = sub.add_parser(
        "reproduce", help="rerun the embedded default in a scratch folder and compare its "
                          "labels with the recorded reference (exit 1 if they differ)")
    _cores(reproduce, default="2")
    reproduce.add_argument("-d", "--directory", type=Path, default=None,
                           help="working folder (default: a new temporary folder; give an "
                                "existing one to reuse its stage store)")
    reproduce.add_argument("--reference", type=Path, default=None,
                           help="reference labels (default: the recorded ones)")
    reproduce.add_argument("--record", action="store_true",
                           help="write the labels to the reference instead of comparing")
    return parser


def _workflow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--directory", type=Path, default=Path("."),
                   help="working folder; results go to its results/ (default: .)")
    p.add_argument("--run", help="name of the run (results/<run>/; default: conf's run)")
    p.add_argument("--overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="Hydra overrides, e.g. velocity.kmeans.n_clusters=6 data=cascadia")
    p.add_argument("--sweep", nargs="+", action="extend", default=[], metavar="KEY=A,B",
                   help="Hydra sweep, one run per combination, e.g. tremor.dec.lr=0.01,0.1")
    p.add_argument("--profile",
                   help="Snakemake profile: a folder, or a profile shipped with the workflow "
                        "(slurm, local)")


def _cores(p: argparse.ArgumentParser, default: str = "all") -> None:
    p.add_argument("-c", "--cores", type=_core_count, default=default,
                   help=f"CPU cores Snakemake may use, a number or 'all' (default: {default})")


def _core_count(text: str) -> str:
    if text == "all" or (text.isdigit() and int(text) > 0):
        return text
    raise argparse.ArgumentTypeError(f"expected a positive whole number or 'all', got {text!r}")


def split_snakemake_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` before the first ``--`` (ours) and after it (Snakemake's)."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1:]


def snakemake_command(args: argparse.Namespace, extra: Sequence[str] = ()) -> list[str]:
    """The Snakemake command line of a ``run``, ``dry-run`` or ``report`` invocation.

    Snakemake's own arguments come before ``--config`` (whose values would otherwise take
    in a target given after them).
    """
    cmd = [sys.executable, "-m", "snakemake", "-s", str(resources.snakefile()),
           "-d", str(args.directory)]
    if args.command == "run":
        cmd += ["--cores", args.cores]
    elif args.command == "dry-run":
        cmd.append("-n")
    elif args.command == "report":
        cmd += ["--report", args.output]
    if args.profile:
        cmd += ["--profile", str(profile_path(args.profile))]
    cmd += list(extra)
    config = [f"{key}={json.dumps(values)}" for key, values in
              (("overrides", args.overrides), ("sweep", args.sweep)) if values]
    if args.run:
        config.insert(0, f"run={args.run}")
    return [*cmd, "--config", *config] if config else cmd


def profile_path(profile: str) -> Path:
    """A profile folder as given, else the workflow's profile of that name."""
    given = Path(profile)
    shipped = resources.workflow_root() / "workflow" / "profiles" / profile
    return shipped if not given.exists() and shipped.is_dir() else given


def reproduce(args: argparse.Namespace) -> int:
    """Run the embedded default in a (scratch) folder, then compare or record its labels."""
    from seiscluster import provenance

    work = args.directory or Path(tempfile.mkdtemp(prefix="seiscluster-reproduce-"))
    reference = args.reference or resources.workflow_root() / resources.REFERENCE_LABELS
    print(f"seiscluster reproduce: running the embedded default in {work}", file=sys.stderr)
    code = subprocess.call([sys.executable, "-m", "snakemake", "-s",
                            str(resources.snakefile()), "-d", str(work), "--cores", args.cores,
                            "--config", "run=default"])
    if code:
        return code
    return provenance.main([str(work / "results" / "default"), str(reference),
                            *(["--record"] if args.record else [])])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``seiscluster`` command; returns the exit status."""
    ours, extra = split_snakemake_args(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(ours)
    if args.command == "reproduce":
        if extra:
            parser.error("reproduce takes no Snakemake arguments")
        return reproduce(args)
    cmd = snakemake_command(args, extra)
    print("seiscluster:", " ".join(cmd[1:]), file=sys.stderr)
    return subprocess.call(cmd)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"seiscluster {version('seiscluster')}"
    except PackageNotFoundError:  # pragma: no cover - only from a bare source tree
        return "seiscluster (not installed)"


if __name__ == "__main__":
    sys.exit(main())
