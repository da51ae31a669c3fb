"""Diagnostics that warn: results a user should not trust without a second look.

Each check returns a list of warnings, ``{"code": ..., "message": ...}`` (empty when all
is well); the stages log them and store them as the ``warnings`` list of their
``choice.json`` / ``metrics.json``, and the report shows them highlighted. Thresholds are
the ``diagnostics`` config section (``conf/config.yaml``). Codes:

- ``k_at_bound``: the chosen k is the smallest or largest k of the scan;
- ``small_cluster``: clusters with fewer than ``min_cluster_size`` members (with
  ``small_clusters: outliers`` the tremor feature clustering labels their members as
  outliers, cluster 0: :func:`label_outliers`);
- ``low_silhouette``: mean silhouette below ``min_silhouette``;
- ``unstable_k``: stability (mean pairwise ARI over seeds and subsamples) of the chosen k
  below ``min_stability``;
- ``dec_unchanged``: DEC / IDEC changed fewer than ``min_dec_changed_fraction`` of the
  k-means labels it started from (the result is then k-means on the embeddings);
- ``high_topographic_error``: SOM topographic error above ``max_topographic_error``;
- ``low_agreement``: more than ``max_low_share`` of the nodes (windows) fall in their
  cluster in fewer than ``low_agreement`` of the consensus refits (``velocity.consensus``,
  ``tremor.consensus``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from seiscluster.config import section

Warning_ = dict[str, str]

#: The thresholds and their defaults (the ``diagnostics`` config section).
def settings(diagnostics: Mapping[str, Any] | None) -> dict[str, float]:
    """The thresholds: the given ``diagnostics`` section, checked and completed with the
    defaults of :class:`seiscluster.config.DiagnosticsConfig`."""
    return section("diagnostics", diagnostics)


def warning(code: str, message: str) -> Warning_:
    """One warning record."""
    return {"code": code, "message": message}


def k_at_bound(k: int, ks: Sequence[int], what: str) -> list[Warning_]:
    """``k`` is the smallest or largest of the scanned ``ks`` (the best k may lie outside)."""
    lo, hi = int(min(ks)), int(max(ks))
    if k not in (lo, hi):
        return []
    side, key = ("smallest", "lower") if k == lo else ("largest", "upper")
    return [warning("k_at_bound", f"{what}: the chosen k={k} is the {side} k of the scan "
                    f"({lo}..{hi}); the best k may lie outside it, so widen the scan's "
                    f"{key} bound or fix k.")]


def small_clusters(labels: np.ndarray, min_size: int, what: str,
                   outliers: bool = False) -> list[Warning_]:
    """Clusters (by label value) with fewer than ``min_size`` members; ``outliers``: their
    members were labelled as outliers (:func:`label_outliers`)."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    small = values[counts < min_size]
    if small.size == 0:
        return []
    sizes = ", ".join(f"{v}: {c}" for v, c in zip(values, counts, strict=True) if c < min_size)
    fate = ("their members are labelled as outliers, cluster 0 (diagnostics.small_clusters)"
            if outliers else "they may be outliers or transients rather than groups")
    return [warning("small_cluster", f"{what}: {small.size} of {values.size} clusters have "
                    f"fewer than {int(min_size)} members (cluster: size {sizes}); {fate} "
                    "(diagnostics.min_cluster_size).")]


def label_outliers(labels: np.ndarray, min_size: int) -> np.ndarray:
    """1-based ``labels`` with the members of clusters of fewer than ``min_size`` set to 0
    (outliers, not a group) and the other clusters renumbered 1..k' in their order."""
    labels = np.asarray(labels)
    values, counts = np.unique(labels[labels > 0], return_counts=True)
    kept = values[counts >= min_size]
    lookup = np.zeros(int(labels.max(initial=0)) + 1, dtype=labels.dtype)
    lookup[kept] = np.arange(1, kept.size + 1)
    return lookup[labels]


def low_silhouette(silhouette: float | None, threshold: float, what: str) -> list[Warning_]:
    """Mean silhouette below ``threshold`` (little separation between the clusters)."""
    if silhouette is None or math.isnan(silhouette) or silhouette >= threshold:
        return []
    return [warning("low_silhouette", f"{what}: the mean silhouette {silhouette:.3f} is below "
                    f"{threshold:g}, so the clusters are weakly separated "
                    "(diagnostics.min_silhouette).")]


def unstable_k(k: int, stability: float | None, threshold: float, n_seeds: int,
               what: str) -> list[Warning_]:
    """Stability of the chosen k below ``threshold``."""
    if stability is None or math.isnan(stability) or stability >= threshold:
        return []
    return [warning("unstable_k", f"{what}: k={k} is unstable: clusterings over {n_seeds} "
                    f"seeds and subsamples agree at mean pairwise ARI {stability:.3f}, below "
                    f"{threshold:g}; other seeds give other clusters "
                    "(diagnostics.min_stability).")]


def dec_unchanged(changed_fraction: float | None, threshold: float,
                  method: str = "DEC") -> list[Warning_]:
    """DEC / IDEC changed fewer than ``threshold`` of the labels it started from."""
    if changed_fraction is None or changed_fraction >= threshold:
        return []
    return [warning("dec_unchanged", f"{method} changed {changed_fraction:.2%} of the k-means "
                    f"labels it started from (fewer than {threshold:.2%}): its clusters are "
                    "in effect k-means on the autoencoder embeddings "
                    "(diagnostics.min_dec_changed_fraction).")]


def high_topographic_error(error: float | None, threshold: float) -> list[Warning_]:
    """SOM topographic error (share of samples whose two best nodes are not neighbours)."""
    if error is None or math.isnan(error) or error <= threshold:
        return []
    return [warning("high_topographic_error", f"SOM: the topographic error {error:.3f} is "
                    f"above {threshold:g}: the map folds, so neighbouring nodes are not "
                    "similar (diagnostics.max_topographic_error).")]


def low_agreement(low_share: float, max_share: float, threshold: float, n_seeds: int,
                  what: str, key: str = "velocity.consensus",
                  items: str = "nodes") -> list[Warning_]:
    """The share of low-agreement ``items`` of a consensus
    (:mod:`seiscluster.velocity.consensus`; settings in the config section ``key``) above
    ``max_share``."""
    if low_share <= max_share:
        return []
    return [warning("low_agreement", f"{what}: {low_share:.1%} of the {items} fall in their "
                    f"cluster in fewer than {threshold:.0%} of {n_seeds} refits (more than "
                    f"{max_share:.0%}): their cluster depends on the seed "
                    f"({key}.low_agreement, max_low_share).")]


def scan_warnings(table: pd.DataFrame, k: int, labels: np.ndarray, *, chosen: bool,
                  thresholds: Mapping[str, Any], n_seeds: int, what: str,
                  outliers: bool = False) -> list[Warning_]:
    """The warnings about the k of a scan: at a bound (only where k was chosen, not
    fixed), unstable, small clusters of its labels (``outliers``: labelled as such),
    low silhouette."""
    row = table[table["k"] == k]

    def value(column: str) -> float | None:
        return float(row[column].iloc[0]) if len(row) and column in row else None

    out = k_at_bound(k, table["k"].tolist(), what) if chosen else []
    out += unstable_k(k, value("stability"), thresholds["min_stability"], n_seeds, what)
    out += small_clusters(labels, thresholds["min_cluster_size"], what, outliers)
    out += low_silhouette(value("silhouette"), thresholds["min_silhouette"], what)
    return out


def log_warnings(logger: logging.Logger, warnings: Iterable[Warning_]) -> None:
    """Each warning as one log line at WARNING level."""
    for w in warnings:
        logger.warning("[%s] %s", w["code"], w["message"])
