"""Build hook: ship the workflow (Snakefile, workflow/, conf/, ...) inside the package.

The files stay where they are in the repository; building a wheel copies them, in the same
layout, to ``seiscluster/_workflow/`` of the build (``seiscluster.resources`` finds them
there at run time). Editable installs use the checkout itself. Everything else is in
``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: What the workflow reads from the repository (seiscluster.resources finds it at run time).
WORKFLOW_FILES = ("Snakefile", "environment.yml", "conf", "workflow",
                  "tests/reference/default_labels.csv")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")


class BuildWithWorkflow(build_py):
    """``build_py`` that also copies the workflow files into ``seiscluster/_workflow``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "seiscluster" / "_workflow"
        if target.exists():
            shutil.rmtree(target)
        for name in WORKFLOW_FILES:
            source, dest = ROOT / name, target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, ignore=IGNORE)
            else:
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildWithWorkflow})
