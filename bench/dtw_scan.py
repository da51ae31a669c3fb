"""DTW elbow scan 2..20 on the default example against seisgo's one DTW call, in one run.

    python bench/dtw_scan.py

Profiles: the embedded example of the default configuration (about 1,600 x 81). seisgo's
DTW call: tslearn ``TimeSeriesKMeans(n_clusters=5, metric="dtw", max_iter_barycenter=100,
random_state=0, n_jobs=1).fit_predict`` (one k, one start, no constraint), as
``vpcluster_kmean(metric="dtw")`` runs it. Ours: ``elbow_scan`` with the default run's
settings and ``velocity.kmeans.metric=dtw`` (band ``auto``, ``n_init`` 3, stability and gap
scores) on 2 threads, as the elbow stage runs it. Prints the load, the scan's wall time,
every k's fit time (from the scan's progress lines), the ratios (seisgo's one k against our
whole scan and against our mean k) and the adjusted Rand index of our k=5 labels against
seisgo's and the true provinces.
"""

from __future__ import annotations

import logging
import os
import time

from sklearn.metrics import adjusted_rand_score as ari
from tslearn.clustering import TimeSeriesKMeans

from seiscluster.config import compose, section
from seiscluster.velocity.elbow import elbow_scan
from seiscluster.velocity.example import make_example_model
from seiscluster.velocity.profiles import extract_profiles, profile_array
from seiscluster.velocity.stages import _kmeans_kwargs


class _PerK(logging.Handler):
    """Collects (k, seconds) from the scan's ``elbow scan k=...`` lines."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[int, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("elbow scan k=%d"):
            self.seconds[int(record.args[0])] = float(record.args[-1])


def main() -> None:
    cfg = compose(["velocity.kmeans.metric=dtw"])
    prof = extract_profiles(make_example_model(**section("data.velocity.example",
                                                          cfg.data.velocity.example)))
    X, truth = profile_array(prof), prof["province"].values
    print(f"{X.shape[0]} profiles x {X.shape[1]} depths; load {os.getloadavg()}")
    start = time.perf_counter()
    seisgo = TimeSeriesKMeans(n_clusters=5, metric="dtw", max_iter_barycenter=100,
                              random_state=0, n_jobs=1).fit_predict(X[:, :, None])
    t_seisgo = time.perf_counter() - start
    print(f"seisgo's DTW call (k=5, 1 start): {t_seisgo:.1f} s")
    per_k = _PerK()
    logger = logging.getLogger("seiscluster.velocity.elbow")
    logger.addHandler(per_k)
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    result = elbow_scan(X, **_kmeans_kwargs(section("velocity.kmeans", cfg.velocity.kmeans)),
                        **section("velocity.elbow", cfg.velocity.elbow), n_jobs=2,
                        min_stability=cfg.diagnostics.min_stability)
    t_scan = time.perf_counter() - start
    print(f"our DTW elbow scan 2..20 (with stability, gap, silhouette): {t_scan:.1f} s; "
          f"chosen k={result.n_clusters}")
    for k, seconds in sorted(per_k.seconds.items()):
        print(f"  k={k:2d}: {seconds:6.1f} s (3 starts, on one of 2 threads)")
    mean_k = sum(per_k.seconds.values()) / len(per_k.seconds)
    print(f"ratio seisgo one k / our whole scan: {t_seisgo / t_scan:.2f}x; "
          f"seisgo one k / our mean k: {t_seisgo / mean_k:.1f}x")
    ours5 = result.models[5].labels_
    print(f"ARI k=5: ours vs seisgo {ari(seisgo, ours5):.4f}, ours vs provinces "
          f"{ari(truth, ours5):.4f}, seisgo vs provinces {ari(truth, seisgo):.4f}; chosen k vs "
          f"provinces {ari(truth, result.models[result.n_clusters].labels_):.4f}")
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
