"""Optional imports that a library makes only to ask a question: hidden for a block.

``sys.modules[name] = None`` makes ``import name`` raise ImportError, which the libraries
below catch as "not installed". Used where that answer is the right one for seiscluster
and the import costs a stage's start-up: tslearn's torch backend and pytest markers
(:mod:`seiscluster.velocity._tslearn`), and the ``dask.distributed`` client check of
xarray's NetCDF writes (:func:`seiscluster.fileio.write_netcdf`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def hidden(*names: str) -> Iterator[None]:
    """Inside the block, ``import name`` fails for each of ``names`` not imported yet;
    afterwards they import normally again."""
    names = tuple(name for name in names if name not in sys.modules)
    for name in names:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in names:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
