"""Saving figures: every figure as PNG (embedded in the report) and SVG (for papers)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib import rc_context, rcParams
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from seiscluster.fileio import atomic_path

__all__ = ["save", "save_all", "svg_path"]


def svg_path(path: str | Path) -> Path:
    """The SVG written beside a PNG figure."""
    return Path(path).with_suffix(".svg")


def save(fig: Figure, path: str | Path, dpi: int = 120) -> None:
    """Save a figure atomically in the format of the file's suffix (png, svg, pdf); a PNG
    also gets its vector copy beside it (same name, ``.svg``; map cells and other
    meshes are embedded as images)."""
    path = Path(path)
    formats = [(path, path.suffix.lstrip(".") or "png")]
    if path.suffix == ".png":
        formats.append((svg_path(path), "svg"))
    bbox = _layout(fig, dpi)
    engine = fig.get_layout_engine()
    fig.set_layout_engine("none")  # laid out above: each format only draws
    try:
        for target, fmt in formats:
            # SVG text stays text (editable), and carries no date (same figure, same bytes)
            with atomic_path(target) as tmp, rc_context({"svg.fonttype": "none",
                                                         "svg.hashsalt": "seiscluster"}):
                fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches=bbox,
                            metadata={"Date": None} if fmt == "svg" else None)
    finally:
        fig.set_layout_engine(engine)


def save_all(figures: Sequence[tuple[Callable[[], Figure], str | Path]], dpi: int = 120,
             workers: int = 1) -> None:
    """Make and :func:`save` each ``(make, path)`` figure, on up to ``workers`` cores.

    Drawing is single-threaded Python, most of a figure stage's time. With ``workers`` > 1
    the figures are dealt out in turn (the first, usually the largest, stays in this
    process) and the other shares are drawn in forked copies of this process, which need
    no imports or data of their own. Each file is written atomically; a failed figure
    stops the stage with an error naming it.
    """
    shares = [list(figures[i::workers]) for i in range(max(1, min(workers, len(figures))))]
    if len(shares) > 1 and "fork" not in multiprocessing.get_all_start_methods():
        shares = [list(figures)]  # no fork (Windows): one after the other
    context = multiprocessing.get_context("fork") if len(shares) > 1 else None
    children = [context.Process(target=_save_share, args=(share, dpi))  # type: ignore[union-attr]
                for share in shares[1:]]
    for child in children:
        child.start()
    try:
        _save_share(shares[0], dpi)
    finally:
        for child in children:
            child.join()
    failed = [str(path) for child, share in zip(children, shares[1:], strict=True)
              if child.exitcode for _, path in share]
    if failed:
        raise RuntimeError(f"drawing {', '.join(failed)} failed (traceback above)")


def _save_share(figures: Sequence[tuple[Callable[[], Figure], str | Path]], dpi: int
                ) -> None:
    for make, path in figures:
        save(make(), path, dpi)


def _layout(fig: Figure, dpi: int) -> Bbox:
    """Lay the figure out once, at the saved resolution, and return its tight bounding box
    (inches, with matplotlib's padding), as ``bbox_inches="tight"`` would for each format:
    that draws the figure twice per format, a third of a second for a map."""
    dpi_before = fig.dpi
    fig.set_dpi(dpi)
    try:
        fig.draw_without_rendering()
        return fig.get_tightbbox().padded(rcParams["savefig.pad_inches"])
    finally:
        fig.set_dpi(dpi_before)
