"""Tremor clustering quality on synthetic archives with known regimes (one table).

    python bench/tremor_quality.py [--archives default,second,heldout,fresh1,fresh2]
                                   [--reps all]
                                   [--autoencoder] [--threads 2]
                                   [--methods kmeans,gmm,agglomerative,umap_gmm]

For each synthetic archive (``data.waveforms.example`` settings below; generated once into
``bench/.cache/tremor_quality/<archive>/``, not timed) and each representation, the number
of clusters chosen (the run's ``tremor.kscan``, Calinski-Harabasz over k = 2..15), the
adjusted Rand index (ARI) of the labels against the majority regime of every window and
on the windows at least 90 % inside one regime (``ari_pure``), and the wall time:

- ``baseline``: per window the time-mean of the 1-10 Hz log spectrogram (96 cells), each
  column standardised, k-means with k = 4 fixed (the naive baseline of issue 12; its CH
  choice of k is shown too);
- ``features``: the run's interpretable features (``tremor.features``, default
  configuration) -> the same k scan, then every method of ``tremor.cluster`` at its k
  (``--methods``; one row each, the time is that of all of them); variants, k-means only:
  ``features:sets=a+b`` with only those groups,
  ``features:frame=<s>`` another frame length, ``features:scaling=robust`` (combine with
  commas);
- ``spectrogram:<pooling>``: the run's 96 x 128 spectrograms (1-15 Hz here) with mean /
  max / 90th-percentile pooling, flattened, PCA to 24 dimensions (the autoencoder's latent
  size), same k scan — how much of the transients the pooled picture itself keeps;
- with ``--autoencoder``: ``autoencoder:<pooling>``, the default run's autoencoder
  (``tremor=example`` schedule) trained on those spectrograms and its embeddings' k scan
  (minutes each).

The spectrogram and autoencoder embeddings too are clustered at the scan's k by every
method of ``tremor.cluster`` (``--methods``; one row each, the time is the
representation's).

Archives: ``default`` (the embedded example, seed 0) and ``second`` (other seed, rates,
amplitudes, days and sampling rate) were used while choosing the defaults; ``heldout``
(another seed and settings) was generated and scored only once the features' defaults were
fixed, then seen while the labels of the windows at regime changes
(``tremor.features.parts``) were worked on; ``fresh1`` and ``fresh2`` (other seeds and
settings again) were generated and scored only once those defaults were fixed. Feature rows
also give the ARI before that refinement (``ari_unrefined``) and how many windows it
relabelled; ``features:parts=0`` turns it off.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from seiscluster.config import compose, to_container
from seiscluster.tremor import stages, synthetic
from seiscluster.tremor.cluster import METHODS, EmbeddingClusterer
from seiscluster.tremor.kscan import kscan

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache" / "tremor_quality"
ARCHIVES = {
    "default": {},
    "second": {"days": 10, "sampling_rate": 40.0, "seed": 7, "episode_hours": [2.0, 10.0],
               "transition_minutes": 30.0, "harmonic_amplitude": 1.5,
               "spasmodic_amplitude": 2.5, "swarm_rate": [15.0, 30.0],
               "swarm_amplitude": 2.5, "swarm_max_amplitude": 15.0,
               "swarm_coda_seconds": [1.0, 6.0], "cultural_amplitude": 0.8,
               "microseism_amplitude": 3.0, "teleseisms": 2,
               "gap_fractions": [0.01, 0.03, 0.6]},
    # held out: scored once the features' defaults were fixed; seen while the windows at
    # regime changes (tremor.features.parts) were worked on
    "heldout": {"days": 12, "sampling_rate": 60.0, "seed": 2027, "episode_hours": [4.0, 10.0],
                "transition_minutes": 15.0, "harmonic_amplitude": 2.5,
                "spasmodic_amplitude": 2.0, "swarm_rate": [10.0, 25.0],
                "swarm_amplitude": 3.5, "swarm_max_amplitude": 25.0,
                "swarm_coda_seconds": [1.5, 10.0], "cultural_amplitude": 0.3,
                "microseism_amplitude": 6.0, "teleseisms": 1,
                "gap_fractions": [0.004, 0.03, 0.45]},
    # held out from the refinement at regime changes: generated and scored only once its
    # defaults (parts 12, min_separation 0.85) were fixed
    "fresh1": {"days": 12, "sampling_rate": 50.0, "seed": 991, "episode_hours": [2.5, 8.0],
               "transition_minutes": 25.0, "harmonic_amplitude": 1.8,
               "spasmodic_amplitude": 2.2, "swarm_rate": [10.0, 20.0],
               "swarm_amplitude": 3.0, "swarm_max_amplitude": 18.0,
               "swarm_coda_seconds": [1.0, 8.0], "cultural_amplitude": 0.6,
               "microseism_amplitude": 5.0, "teleseisms": 3,
               "gap_fractions": [0.01, 0.05, 0.3]},
    "fresh2": {"days": 9, "sampling_rate": 40.0, "seed": 4242, "episode_hours": [2.0, 6.0],
               "transition_minutes": 15.0, "harmonic_amplitude": 3.0,
               "spasmodic_amplitude": 3.5, "swarm_rate": [20.0, 40.0],
               "swarm_amplitude": 2.5, "swarm_max_amplitude": 30.0,
               "swarm_coda_seconds": [0.8, 5.0], "cultural_amplitude": 1.0,
               "microseism_amplitude": 2.5, "teleseisms": 2, "gap_fractions": [0.02, 0.2]},
}
REPS = ["baseline", "features", "features:parts=0",
        "features:sets=level+spikiness+kurtosis+onset+ratios+flatness",
        "features:sets=level", "features:sets=spikiness+kurtosis+onset+ratios+flatness",
        "features:sets=kurtosis+spikiness+ratios+flatness", "features:frame=2.5",
        "features:frame=5",
        "features:scaling=robust",
        "spectrogram:mean", "spectrogram:max", "spectrogram:percentile"]
#: ``features:<key>=<value>,...`` -> ``tremor.features.<key>`` ('+' separates list items).
FEATURE_KEYS = {"sets": "sets", "frame": "frame_seconds", "scaling": "scaling",
                "parts": "parts"}


def archive(name: str) -> tuple[Path, Path]:
    """The archive's day files folder and truth.csv (generated once)."""
    folder = CACHE / name
    truth = folder / "truth.csv"
    stamp = folder / "settings.json"
    code = hashlib.sha256(Path(synthetic.__file__).read_bytes()).hexdigest()[:12]
    settings = json.dumps({**ARCHIVES[name], "generator": code}, sort_keys=True)
    if not (truth.exists() and stamp.exists() and stamp.read_text() == settings):
        ex = synthetic.make_example(ARCHIVES[name])
        synthetic.write_example(ex, folder / "waveforms", truth)
        stamp.write_text(settings)
    return folder / "waveforms", truth


def config(files: Path, *overrides: str):
    """The default configuration on the archive's files."""
    return compose(["data.waveforms.source=files", f"data.waveforms.files=['{files}/*']",
                    "branches=[tremor]", *overrides])


def sections(cfg) -> dict:
    return {k: to_container(v) for k, v in (
        ("waveforms", cfg.data.waveforms), ("preprocess", cfg.tremor.preprocess),
        ("spectrogram", cfg.tremor.spectrogram), ("features", cfg.tremor.features),
        ("kscan", cfg.tremor.kscan), ("cluster", cfg.tremor.cluster))}


def score(labels: np.ndarray, windows: np.ndarray, truth: Path) -> dict:
    regime, fraction = synthetic.truth_of(truth, windows)
    s = synthetic.truth_scores(regime, fraction, labels)
    return {"ari": s["ari"], "ari_pure": s["ari_pure"]}


def run_features(files: Path, truth: Path, out: Path, overrides: list[str], threads: int):
    cfg = config(files, *overrides)
    sec = sections(cfg)
    out.mkdir(parents=True, exist_ok=True)
    stages.features(table=str(out / "features.nc"), scan=str(out / "kscan.csv"),
                    choice=str(out / "choice.json"), labels=str(out / "labels.csv"),
                    metrics=str(out / "metrics.json"), waveforms=sec["waveforms"],
                    preprocess=sec["preprocess"], spectrogram=sec["spectrogram"],
                    features=sec["features"], kscan=sec["kscan"], cluster=sec["cluster"],
                    channels="stack", seed=int(cfg.seed), truth=str(truth), threads=threads)
    m = json.loads((out / "metrics.json").read_text())
    return {"k": m["n_clusters"], "ari": m["ari"], "ari_pure": m["ari_pure"],
            "ari_unrefined": m.get("ari_unrefined", m["ari"]), "refined": m.get("n_refined", 0)}


def run_spectrogram(files: Path, out: Path, overrides: list[str], threads: int) -> xr.Dataset:
    cfg = config(files, *overrides)
    sec = sections(cfg)
    store = out / "spectrograms.zarr"
    stages.spectrograms(spectrograms=str(store), skipped=str(out / "skipped.csv"),
                        waveforms=sec["waveforms"], preprocess=sec["preprocess"],
                        spectrogram=sec["spectrogram"], threads=threads)
    return xr.open_zarr(store).load()


def scan(z: np.ndarray, cfg, threads: int):
    ks = to_container(cfg.tremor.kscan)
    return kscan(z, k_min=ks["k_min"], k_max=ks["k_max"], n_init=ks["n_init"],
                 criterion=ks["criterion"], seed=int(cfg.seed), n_jobs=threads)


def evaluate(rep: str, files: Path, truth: Path, work: Path, threads: int,
             methods: list[str]) -> list[dict]:
    """Rows of one representation: one per clustering method where it clusters an
    embedding (spectrogram, autoencoder), one k-means row otherwise."""
    kind, _, arg = rep.partition(":")
    if kind == "baseline":
        cfg = config(files)
        ds = run_spectrogram(files, work, ["tremor.spectrogram.fmin=1.0",
                                           "tremor.spectrogram.fmax=10.0",
                                           "tremor.spectrogram.normalise=none"], threads)
        x = ds["spectrogram"].isel(channel=0).mean("time").values
        z = (x - x.mean(0)) / x.std(0)
        labels = KMeans(4, n_init=20, random_state=0).fit_predict(z)
        chosen = scan(z, cfg, threads).n_clusters
        return [{"method": "kmeans", "k": f"4 (CH: {chosen})",
                 **score(labels, ds["window"].values, truth)}]
    if kind == "features":
        over = [f"tremor.features.{FEATURE_KEYS[key]}={value.replace('+', ',')}"
                if key == "sets" else f"tremor.features.{FEATURE_KEYS[key]}={value}"
                for key, _, value in (part.partition("=") for part in arg.split(",") if part)]
        over = [f"{o.split('=')[0]}=[{o.split('=')[1]}]" if ".sets=" in o else o
                for o in over]
        return [{"method": method,
                 **run_features(files, truth, work / method,
                                [*over, f"tremor.cluster.method={method}"], threads)}
                for method in (["kmeans"] if arg else methods)]
    if kind in ("spectrogram", "autoencoder"):
        over = [f"tremor.spectrogram.pooling={arg}", "tremor.spectrogram.fmax=15.0"]
        cfg = config(files, *over)
        ds = run_spectrogram(files, work, over, threads)
        x = ds["spectrogram"].isel(channel=0).values
        windows = ds["window"].values
        if kind == "spectrogram":
            z = PCA(24, random_state=0).fit_transform(x.reshape(x.shape[0], -1))
        else:
            z = embed(work, cfg, threads)
        res = scan(z, cfg, threads)
        return [{"method": method, "k": res.n_clusters, **score(labels, windows, truth)}
                for method, labels in cluster(z, res, methods, int(cfg.seed)).items()]
    raise SystemExit(f"unknown representation {rep!r}")


def cluster(z: np.ndarray, res, methods: list[str], seed: int) -> dict[str, np.ndarray]:
    """Labels of every ``tremor.cluster`` method at the scan's k (k-means: the scan's)."""
    return {method: res.fits[res.n_clusters].labels if method == "kmeans" else
            EmbeddingClusterer(method, res.n_clusters, seed=seed).fit(z).labels_
            for method in methods}


def embed(work: Path, cfg, threads: int) -> np.ndarray:
    """The run's autoencoder pretrained on ``work``'s spectrograms; its embeddings."""
    from seiscluster.tremor import deep_stages

    model, pre, trainer = (to_container(cfg.tremor.model), to_container(cfg.tremor.pretrain),
                           to_container(cfg.trainer))
    deep_stages.pretrain(spectrograms=str(work / "spectrograms.zarr"),
                         best=str(work / "best.ckpt"), losses=str(work / "losses.csv"),
                         checkpoint_dir=str(work / "checkpoints"), model=model, pretrain=pre,
                         trainer=trainer, channels="stack", seed=int(cfg.seed),
                         threads=threads)
    deep_stages.embed_kscan(spectrograms=str(work / "spectrograms.zarr"),
                            best=str(work / "best.ckpt"), embeddings=str(work / "emb.nc"),
                            scan=str(work / "scan.csv"), choice=str(work / "choice.json"),
                            clusters=str(work / "clusters"),
                            kscan=to_container(cfg.tremor.kscan), channels="stack",
                            seed=int(cfg.seed), threads=threads)
    with xr.open_dataset(work / "emb.nc") as emb:
        return emb["embedding"].values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archives", default=",".join(ARCHIVES))
    ap.add_argument("--reps", default="all", help="';'-separated representations, or all")
    ap.add_argument("--autoencoder", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="clusterings of the spectrogram and autoencoder embeddings, among "
                    + ", ".join(METHODS))
    args = ap.parse_args()
    methods = args.methods.split(",")
    reps = REPS if args.reps == "all" else args.reps.split(";")
    if args.autoencoder:
        reps = [*reps, "autoencoder:mean", "autoencoder:max"]
    rows = []
    for name in args.archives.split(","):
        files, truth = archive(name)
        t = pd.read_csv(truth)
        print(f"# {name}: {ARCHIVES[name] or 'data.waveforms.example defaults'}; "
              f"{len(t)} windows, {int((t['fraction'] < 0.9).sum())} mixed (<90 %), "
              f"regimes {t['regime'].value_counts().to_dict()}", flush=True)
        for rep in reps:
            work = CACHE / name / "runs" / rep.replace(":", "_").replace(",", "+")
            start = time.perf_counter()
            found = evaluate(rep, files, truth, work, args.threads, methods)
            seconds = round(time.perf_counter() - start, 1)
            for res in found:
                rows.append({"archive": name, "representation": rep, **res,
                             "seconds": seconds})
                unrefined = (f" (unrefined {res['ari_unrefined']:.3f}, {res['refined']} "
                             "relabelled)" if "ari_unrefined" in res else "")
                print(f"{name:8s} {rep:40s} {res['method']:14s} k={res['k']!s:10s} "
                      f"ARI={res['ari']:.3f} ARI(pure)={res['ari_pure']:.3f}{unrefined} "
                      f"{seconds:7.1f} s", flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
