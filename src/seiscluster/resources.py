"""Where the workflow's files are: the source checkout, or the copy inside an installed package.

The Snakefile, ``workflow/``, ``conf/``, ``environment.yml`` and the reference labels keep
their place in the repository; building a wheel copies them, in the same layout, into the
package as ``seiscluster/_workflow/`` (``setup.py``). At run time the copy is used when it
exists (a regular install), otherwise the checkout the package is imported from (an
editable install or ``src`` on the path).
"""

from __future__ import annotations

from pathlib import Path

from seiscluster.errors import InputError

#: Name of the workflow's copy inside the installed package.
PACKAGED = "_workflow"
#: The recorded labels of the embedded default run (``seiscluster reproduce``), relative to
#: :func:`workflow_root`.
REFERENCE_LABELS = "tests/reference/default_labels.csv"

_PACKAGE_DIR = Path(__file__).resolve().parent


def workflow_root(package_dir: Path = _PACKAGE_DIR) -> Path:
    """The folder holding ``Snakefile``, ``workflow/`` and ``conf/``."""
    for root in (package_dir / PACKAGED, package_dir.parents[1]):
        if (root / "Snakefile").is_file() and (root / "conf").is_dir():
            return root
    raise InputError(
        f"seiscluster's workflow files are neither in the installed package "
        f"({package_dir / PACKAGED}) nor in a source checkout ({package_dir.parents[1]}): "
        "reinstall the package from a wheel or from the repository.")


def snakefile() -> Path:
    """The workflow's Snakefile."""
    return workflow_root() / "Snakefile"


def conf_dir() -> Path:
    """The Hydra configuration folder ``conf/``."""
    return workflow_root() / "conf"
