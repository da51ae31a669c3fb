"""tslearn, imported only where a stage needs it, and without torch.

``tslearn.backend`` imports torch when it is installed (about 4 s of a stage's start-up on
a loaded machine, 1 s quiet) to offer a PyTorch backend that seiscluster never uses: it
passes numpy arrays only. :func:`tslearn_module` imports a tslearn module with ``torch``
hidden (``sys.modules["torch"] = None`` makes ``import torch`` raise ImportError, which
tslearn catches), unless torch is already imported, so tslearn takes its numpy backend
only. ``import torch`` works again afterwards.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def tslearn_module(name: str) -> ModuleType:
    """``importlib.import_module(name)`` for a ``tslearn`` module, torch not imported."""
    if name in sys.modules or "torch" in sys.modules:
        return importlib.import_module(name)
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(name)
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
