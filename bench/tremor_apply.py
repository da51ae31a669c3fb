"""Monitoring quality: a trained run's feature clustering applied to later days.

    python bench/tremor_apply.py [--days 14] [--train 10] [--rate 50] [--seed 0]
                                 [--withheld REGIME|none] [--out bench/.cache/tremor_apply]
                                 [OVERRIDE ...]

Generates the embedded synthetic archive (``data.waveforms.example`` with ``days``,
``sampling_rate``, ``seed`` and, unless ``--withheld none``, ``withheld_regimes: [REGIME]`` for the
first ``train`` days), runs the features stage (the default ``tremor.*``, plus Hydra
``OVERRIDE``s) on the first ``train`` day files as the trained run, then
:func:`seiscluster.tremor.apply.apply` on the remaining day files, non-incrementally, and
prints the training ARI, the applied labels' ARI against the truth (every window and the
windows >= 90 % inside one regime; novel = cluster 0 counts as a cluster), the share of
novel windows per true regime (all windows, and those >= 90 % inside one regime) and the
contingency table.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from seiscluster.config import compose, to_container
from seiscluster.tremor import stages, synthetic
from seiscluster.tremor.apply import apply


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--train", type=int, default=10)
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic archive")
    p.add_argument("--withheld", default="harmonic_tremor")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench/.cache/tremor_apply")
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(a.out)
    t0 = time.perf_counter()
    withheld = [] if a.withheld == "none" else [a.withheld]
    ex = synthetic.make_example(days=a.days, sampling_rate=a.rate, seed=a.seed,
                                withheld_regimes=withheld,
                                withheld_days=a.train if withheld else 0.0)
    files = [str(f) for f in synthetic.write_example(ex, out / "wf", out / "truth.csv")]
    cfg = compose(["data.waveforms.source=files", "data.waveforms.files=[placeholder]",
                   *a.overrides])
    feats = out / "run" / "tremor" / "features"
    feats.mkdir(parents=True, exist_ok=True)
    train, new = files[:a.train], files[a.train:]
    stages.features(
        **{k: str(feats / f) for k, f in (("table", "features.nc"), ("scan", "kscan.csv"),
                                          ("choice", "choice.json"), ("labels", "labels.csv"),
                                          ("metrics", "metrics.json"))},
        waveforms={**to_container(cfg.data.waveforms), "files": train}, files=train,
        preprocess=to_container(cfg.tremor.preprocess),
        spectrogram=to_container(cfg.tremor.spectrogram),
        features=to_container(cfg.tremor.features), kscan=to_container(cfg.tremor.kscan),
        channels="stack", seed=0, truth=str(out / "truth.csv"), threads=a.threads)
    trained = json.loads((feats / "metrics.json").read_text())
    applied = out / "apply"
    s = apply(**{k: str(applied / f) for k, f in (
        ("labels", "labels.csv"), ("days", "days.csv"), ("metrics", "metrics.json"),
        ("model", "model.json"), ("timeline", "timeline.png"))},
        run=str(out / "run"), waveforms={"source": "files", "files": new}, files=new,
        truth=str(out / "truth.csv"), apply={"incremental": False}, threads=a.threads)
    print(json.dumps({
        "withheld": withheld, "train_days": a.train, "apply_days": len(new),
        "train_k": trained["n_clusters"], "train_ari": round(trained["ari"], 3),
        "apply_ari": round(s["ari"], 3), "apply_ari_pure": round(s["ari_pure"], 3),
        "novel_fraction_by_regime": {k: round(v, 3) for k, v in
                                     s["novel_fraction_by_regime"].items()},
        "novel_fraction_by_regime_pure": pure_novel(applied / "labels.csv",
                                                    out / "truth.csv"),
        "contingency": s["contingency"], "seconds": round(time.perf_counter() - t0, 1)},
        indent=1))


def pure_novel(labels: Path, truth: Path) -> dict[str, float]:
    """Share of novel windows (cluster 0) per true regime among the windows at least 90 %
    inside one regime."""
    import pandas as pd

    table = pd.read_csv(labels)
    regime, fraction = synthetic.truth_of(truth, pd.to_datetime(
        table["window_start"]).to_numpy("M8[ns]"))
    pure = pd.DataFrame({"regime": regime, "novel": table["cluster"].astype(str) == "0"})[
        fraction >= 0.9]
    return {k: round(float(v), 3) for k, v in pure.groupby("regime")["novel"].mean().items()}


if __name__ == "__main__":
    main()
