"""Labels of the windows where the regime changes, from the features of their parts.

A window that straddles a regime change mixes two regimes: its features lie between theirs
and the clustering gives it either one, or a third cluster. What a seismologist wants is
the regime that fills most of the window. Cut into ``parts`` (equal runs of its STFT
frames, features as for whole windows: :func:`~seiscluster.tremor.features.compute_part_features`),
such a window has parts that are each mostly one regime. The parts of the windows well
inside a cluster (the window and both its neighbours in it) give every cluster a template:
the mean of each standardised part feature and its spread
(:func:`~seiscluster.tremor.spread.cluster_spread`); a part's cost under a cluster is its
negative log-likelihood under that diagonal Gaussian. Then, for consecutive windows (one
window step apart, one channel or the stacked channels):

- a window whose neighbours differ (the previous in cluster a, the next in b) gets the
  best single change from a to b over its parts (least total cost), the change point
  refined to a fraction of a part by a parabola through the costs; its label becomes a
  when the change falls after the middle of the window, b when before (unchanged exactly
  at the middle). When its own third cluster explains its parts better than any change
  from a to b, it keeps it (a short episode of that regime);
- a window unlike its two equal neighbours (a, c, a) becomes a when a's template explains
  its parts better than c's (one teleseism in an hour of background), else keeps c.

Windows between two clusters whose templates tell those clusters' own parts apart less
often than ``min_separation`` (the mean over the two of the share of parts nearer their
own template) are left alone, as are outliers (cluster 0) and their neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seiscluster.tremor.spread import cluster_spread, spread_distance

#: Which rule examined each window (``Refinement.kind``; 0: none).
KINDS = ("none", "change_fitted", "kept_third", "isolated_relabelled", "low_separation")


@dataclass
class Refinement:
    """The refined labels and, per window, which rule decided (an index into
    :data:`KINDS`: 0 not examined) and where the change falls (fraction of the window,
    NaN where no change was fitted)."""

    labels: np.ndarray
    kind: np.ndarray
    change: np.ndarray


def neighbours(times: np.ndarray, step: float, groups: np.ndarray | None = None) \
        -> tuple[np.ndarray, np.ndarray]:
    """Index of the previous and next sample of each sample (-1 where none): the sample of
    the same group (channel) whose time (datetime64 or seconds) is one ``step`` (s) away."""
    t = np.asarray(times)
    if np.issubdtype(t.dtype, np.datetime64):
        t = t.astype("datetime64[ns]").astype(np.int64) / 1e9
    g = np.zeros(t.size, np.int64) if groups is None else np.unique(groups,
                                                                      return_inverse=True)[1]
    order = np.lexsort((t, g))
    ts, gs = t[order], g[order]
    adjacent = (gs[1:] == gs[:-1]) & np.isclose(ts[1:] - ts[:-1], step)
    prev, nxt = np.full(t.size, -1), np.full(t.size, -1)
    prev[order[1:][adjacent]] = order[:-1][adjacent]
    nxt[order[:-1][adjacent]] = order[1:][adjacent]
    return prev, nxt


class BoundaryRefiner:
    """Templates of every cluster from the parts of its interior windows (:meth:`fit`),
    then the labels of the windows at a change of label (:meth:`refine`); see the module
    docstring. Labels are 1..k, 0 for outliers (never templates, never relabelled)."""

    def __init__(self, min_separation: float = 0.85) -> None:
        self.min_separation = min_separation

    def fit(self, parts: np.ndarray, labels: np.ndarray, prev: np.ndarray,
            nxt: np.ndarray) -> BoundaryRefiner:
        """``parts`` (n, parts, d) raw part features (NaN rows: parts without data),
        ``labels`` (n,), ``prev`` / ``nxt`` from :func:`neighbours`."""
        flat = parts.reshape(-1, parts.shape[-1])
        finite = np.isfinite(flat).all(axis=1)
        self.mean_ = flat[finite].mean(axis=0)
        scale = flat[finite].std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        labels = np.asarray(labels)
        interior = ((labels > 0) & (prev >= 0) & (nxt >= 0)
                    & (labels[prev] == labels) & (labels[np.maximum(nxt, 0)] == labels))
        rows = {int(c): _rows(self._z(parts[interior & (labels == c)]))
                for c in np.unique(labels[interior])}
        rows = {c: z for c, z in rows.items() if z.shape[0] > 1}  # templates need 2 parts
        self.clusters_ = np.array(list(rows), dtype=np.int64)
        z = (np.concatenate(list(rows.values())) if rows
             else np.zeros((0, flat.shape[1])))
        member = np.repeat(np.arange(1, len(rows) + 1), [v.shape[0] for v in rows.values()])
        centres = np.stack([z[member == j].mean(axis=0)
                            for j in range(1, self.clusters_.size + 1)]) \
            if self.clusters_.size else np.zeros((0, flat.shape[1]))
        self.centres_ = centres
        self.spread_ = (cluster_spread(z, member, centres) if self.clusters_.size
                        else np.zeros_like(centres))
        self.separation_ = self._separation(z, member)
        self.part_distance_ = [spread_distance(z[member == j], centres[j - 1],
                                               self.spread_[j - 1])
                               for j in range(1, self.clusters_.size + 1)]
        return self

    def _z(self, parts: np.ndarray) -> np.ndarray:
        return (parts - self.mean_) / self.scale_

    def _separation(self, z: np.ndarray, member: np.ndarray) -> np.ndarray:
        """(k, k) mean over the two clusters of the share of their interior parts that the
        pair's templates put nearer their own (1 on the diagonal)."""
        k = self.clusters_.size
        cost = self._cost(z)  # (n, k)
        sep = np.ones((k, k))
        for a in range(k):
            for b in range(a + 1, k):
                own_a = (cost[member == a + 1, a] < cost[member == a + 1, b]).mean()
                own_b = (cost[member == b + 1, b] < cost[member == b + 1, a]).mean()
                sep[a, b] = sep[b, a] = (own_a + own_b) / 2
        return sep

    def _cost(self, z: np.ndarray) -> np.ndarray:
        """(..., k) negative log-likelihood (up to a constant) of standardised parts under
        every template."""
        r = (z[..., None, :] - self.centres_) / self.spread_
        return 0.5 * (r ** 2).sum(axis=-1) + np.log(self.spread_).sum(axis=-1)

    def refine(self, parts: np.ndarray, labels: np.ndarray, prev: np.ndarray,
               nxt: np.ndarray) -> Refinement:
        """The labels of the windows at a change of label (see the module docstring)."""
        labels = np.asarray(labels)
        out = labels.copy()
        kind = np.zeros(labels.size, np.int8)
        change = np.full(labels.size, np.nan)
        index = {int(c): j for j, c in enumerate(self.clusters_)}
        has = (prev >= 0) & (nxt >= 0)
        before = np.where(has, labels[np.maximum(prev, 0)], 0)
        after = np.where(has, labels[np.maximum(nxt, 0)], 0)
        for i in np.flatnonzero(has & (labels > 0) & (before > 0) & (after > 0)
                                & ((before != after) | (labels != before))):
            a, b, c = int(before[i]), int(after[i]), int(labels[i])
            if a not in index or b not in index:
                continue
            z = _rows(self._z(parts[i]))
            if z.shape[0] < 2:
                continue
            cost = self._cost(z)
            other = c if a == b else b  # the cluster weighed against a
            if other not in index or \
                    self.separation_[index[a], index[other]] < self.min_separation:
                kind[i] = KINDS.index("low_separation")
                continue
            if a == b:  # isolated: c between two windows of a
                if cost[:, index[a]].sum() < cost[:, index[c]].sum():
                    out[i], kind[i] = a, KINDS.index("isolated_relabelled")
                continue
            where, total = _step(cost[:, index[a]], cost[:, index[b]])
            if c not in (a, b) and c in index and cost[:, index[c]].sum() < total:
                kind[i] = KINDS.index("kept_third")
                continue
            change[i] = where
            kind[i] = KINDS.index("change_fitted")
            if where != 0.5:
                out[i] = a if where > 0.5 else b
        return Refinement(out, kind, change)

    def resolve_novel(self, parts: np.ndarray, labels: np.ndarray, prev: np.ndarray,
                      nxt: np.ndarray, quantile: float, factor: float) -> np.ndarray:
        """Labels where the novel windows (label 0) next to a window of a template cluster
        are mostly that cluster: a part belongs to a cluster when its distance to the
        template in the template's spread is at most ``factor`` times the ``quantile``
        of the distances of the cluster's own interior parts (the window novelty rule of
        :mod:`~seiscluster.tremor.apply`, part by part). A novel window whose parts belong
        to a neighbour's cluster more than half of the time (the regime that fills most
        of it is known; only its other part is new) gets that cluster; the other novel
        windows stay novel."""
        labels = np.asarray(labels)
        out = labels.copy()
        index = {int(c): j for j, c in enumerate(self.clusters_)}
        limit = factor * np.array([np.quantile(d, quantile) for d in self.part_distance_])
        side = [np.where(n >= 0, labels[np.maximum(n, 0)], 0) for n in (prev, nxt)]
        for i in np.flatnonzero((labels == 0) & ((side[0] > 0) | (side[1] > 0))):
            z = _rows(self._z(parts[i]))
            near = [int(s[i]) for s in side if int(s[i]) in index]
            if not near or not z.shape[0]:
                continue
            held = [(spread_distance(z, self.centres_[index[c]], self.spread_[index[c]])
                     <= limit[index[c]]).mean() for c in near]
            best = int(np.argmax(held))
            if held[best] > 0.5:
                out[i] = near[best]
        return out


def _rows(z: np.ndarray) -> np.ndarray:
    """The complete rows of ``z`` (..., d) flattened to (m, d)."""
    flat = z.reshape(-1, z.shape[-1])
    return flat[np.isfinite(flat).all(axis=1)]


def _step(cost_a: np.ndarray, cost_b: np.ndarray) -> tuple[float, float]:
    """Best single change from a to b over parts with these costs: where it falls (a
    fraction of the parts, refined between parts by a parabola through the total costs)
    and its total cost."""
    m = cost_a.size
    total = (np.concatenate([[0.0], np.cumsum(cost_a)])
             + cost_b.sum() - np.concatenate([[0.0], np.cumsum(cost_b)]))
    tau = int(np.argmin(total))
    where = float(tau)
    if 0 < tau < m:
        curvature = total[tau - 1] - 2 * total[tau] + total[tau + 1]
        if curvature > 0:
            where += 0.5 * (total[tau - 1] - total[tau + 1]) / curvature
    return where / m, float(total[tau])


def sample_parts(parts: np.ndarray, w_idx: np.ndarray, c_idx: np.ndarray | None) \
        -> np.ndarray:
    """The part features (window, channel, part, feature) of the clustered samples as
    (n, parts, d): the channels of a window side by side (``c_idx`` None: stacked
    channels), else one window-channel per sample."""
    if c_idx is not None:
        return parts[w_idx, c_idx]
    chosen = parts[w_idx].transpose(0, 2, 1, 3)
    return chosen.reshape(chosen.shape[0], chosen.shape[1], -1)


def refine_run(parts: np.ndarray, labels: np.ndarray, times: np.ndarray, step: float,
               groups: np.ndarray | None, min_separation: float) -> Refinement:
    """Templates from these samples' own labels, then their labels at the changes."""
    prev, nxt = neighbours(times, step, groups)
    model = BoundaryRefiner(min_separation).fit(parts, labels, prev, nxt)
    return model.refine(parts, labels, prev, nxt)


def change_times(times: np.ndarray, change: np.ndarray, window_length: float) -> list[str]:
    """The estimated time of the regime change inside each window (ISO UTC, to the
    second), empty where none was fitted or it falls on the window's edge."""
    inside = np.isfinite(change) & (change > 0) & (change < 1)
    at = (np.asarray(times).astype("datetime64[ns]")
          + (np.nan_to_num(change) * window_length * 1e9).astype("timedelta64[ns]"))
    text = np.datetime_as_string(at.astype("datetime64[s]"), unit="s")
    return [str(t) if ok else "" for t, ok in zip(text, inside, strict=True)]


def summary(refined: Refinement, unrefined: np.ndarray, parts: int,
            min_separation: float) -> dict[str, int | float]:
    """The metrics of a refinement: the settings, the windows examined by each rule and
    those whose label it changed."""
    counts = np.bincount(refined.kind, minlength=len(KINDS))
    return {"refine_parts": parts, "refine_min_separation": min_separation,
            "n_refined": int((refined.labels != unrefined).sum()),
            **{f"n_{name}": int(counts[i]) for i, name in enumerate(KINDS) if i}}
