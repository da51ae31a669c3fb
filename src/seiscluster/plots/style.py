"""Saving figures: every figure as PNG (embedded in the report) and SVG (for papers)."""

from __future__ import annotations

from pathlib import Path

from matplotlib import rc_context
from matplotlib.figure import Figure

from seiscluster.fileio import atomic_path

__all__ = ["save", "svg_path"]


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
    for target, fmt in formats:
        # SVG text stays text (editable), and carries no date (same figure, same bytes)
        with atomic_path(target) as tmp, rc_context({"svg.fonttype": "none",
                                                     "svg.hashsalt": "seiscluster"}):
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight",
                        metadata={"Date": None} if fmt == "svg" else None)
