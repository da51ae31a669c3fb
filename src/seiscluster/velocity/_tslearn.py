"""tslearn, imported only where a stage needs it, and without torch or pytest.

``tslearn.backend`` imports torch when it is installed (about 4 s of a stage's start-up on
a loaded machine, 1 s quiet) to offer a PyTorch backend that seiscluster never uses: it
passes numpy arrays only. ``tslearn.utils`` imports scikit-learn's estimator checks, whose
testing helpers import pytest when it is installed (about 0.1 s) for test markers.
:func:`tslearn_module` imports a tslearn module with those two hidden
(``sys.modules[name] = None`` makes ``import name`` raise ImportError, which tslearn and
scikit-learn catch), each unless it is already imported, so tslearn takes its numpy backend
only. ``import torch`` and ``import pytest`` work again afterwards.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from seiscluster.hidden_imports import hidden

#: Optional imports of tslearn (and of the scikit-learn helpers it imports) left out.
HIDDEN = ("torch", "pytest")


def tslearn_module(name: str) -> ModuleType:
    """``importlib.import_module(name)`` for a ``tslearn`` module, torch and pytest not
    imported."""
    if name in sys.modules:
        return importlib.import_module(name)
    with hidden(*HIDDEN):
        return importlib.import_module(name)
