"""The deep-clustering stages of the tremor branch, file in -> file out.

``pretrain`` (convolutional autoencoder) -> ``embed_kscan`` (embeddings, k-means scan,
choice of k) -> ``finetune`` (DEC / IDEC) -> ``deep_figures``. Each is what one Snakemake
rule runs; config sections arrive as plain dicts. torch and Lightning are imported inside
the stage functions (they cost seconds), so importing this module stays cheap. Every
section is checked and completed by :func:`seiscluster.config.section`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from seiscluster import diagnostics as diag
from seiscluster import kselect
from seiscluster.config import event_time, section
from seiscluster.errors import InputError
from seiscluster.fileio import atomic_path, write_json, write_netcdf
from seiscluster.tremor.kscan import kscan as scan_embeddings

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- config checks

def check_input_size(shape: Sequence[int], strides: Sequence[int], source: str) -> None:
    """Each spatial dimension must be at least the product of the encoder's strides."""
    need = int(np.prod(strides))
    if min(shape) < need:
        raise InputError(f"the spectrograms of {source} ({shape[0]} x {shape[1]}) are too small "
                         f"for tremor.model.strides {list(strides)}: each dimension must be at "
                         f"least {need}.")


# --------------------------------------------------------------------------- torch runtime

def _configure_torch(trainer: Mapping, threads: int, seed: int) -> None:
    """Threads, seeds (Lightning, torch, numpy, random) and deterministic algorithms."""
    import lightning as L
    import torch

    _tidy_lightning_logging()
    torch.set_num_threads(int(trainer["num_threads"] or threads or 1))
    L.seed_everything(int(seed), verbose=False)
    torch.use_deterministic_algorithms(trainer["deterministic"], warn_only=True)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def _tidy_lightning_logging() -> None:
    """Lightning logs to its own stderr handler: drop it when the root logger has one (the
    rule's log), so that lines are not written twice; drop its advertising tips."""
    logger = logging.getLogger("lightning")
    if logging.getLogger().hasHandlers():
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
    for name in ("lightning", "lightning.pytorch", "lightning.pytorch.utilities.rank_zero",
                 "lightning.fabric.utilities.rank_zero"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in target.filters):
            target.addFilter(_DropTips())


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Drop Lightning's advice that does not apply (workers for in-memory tensors etc.)."""
    _tidy_lightning_logging()
    with warnings.catch_warnings():
        for pattern in (".*does not have many workers.*", ".*exists and is not empty.*",
                        ".*Checkpoint directory .* exists.*", ".*predict_dataloader.*",
                        ".*LeafSpec.*", ".*is deprecated.*"):
            warnings.filterwarnings("ignore", message=pattern)
        yield


def _fingerprint(x: np.ndarray, **config: Any) -> str:
    """Hash of the training data and the settings that change the training's result."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(x).view(np.uint8).ravel())
    h.update(repr(x.shape).encode())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _load(spectrograms: str, channels: str):
    from seiscluster.tremor.datamodule import load_samples

    return load_samples(spectrograms, channels)


# --------------------------------------------------------------------------- pretrain

def pretrain(
    *,
    spectrograms: str,
    checkpoint_dir: str,
    best: str,
    losses: str,
    model: Mapping[str, Any],
    pretrain: Mapping[str, Any],
    trainer: Mapping[str, Any],
    channels: str,
    seed: int,
    threads: int = 1,
) -> None:
    """Pretrain the autoencoder; resumes from ``checkpoint_dir/last.ckpt`` when it matches.

    ``best`` receives a copy of the best (lowest validation loss) checkpoint and ``losses``
    the per-epoch training and validation losses (from Lightning's CSV logs of every
    attempt, a resumed epoch replacing the interrupted one).
    """
    model, pre, trainer = (section("tremor.model", model), section("tremor.pretrain", pretrain),
                           section("trainer", trainer))
    channels = section("tremor.preprocess", {"channels": channels})["channels"]
    samples = _load(spectrograms, channels)
    check_input_size(samples.x.shape[2:], model["strides"], spectrograms)
    import lightning as L
    import torch  # noqa: F401 - torch is configured through _configure_torch

    from seiscluster.tremor.autoencoder import AutoencoderModule, EpochLog, accelerator
    from seiscluster.tremor.datamodule import SpectrogramDataModule

    _configure_torch(trainer, threads, seed)
    ckpt_dir = Path(checkpoint_dir)
    last = ckpt_dir / "last.ckpt"
    state_file = ckpt_dir / "run.json"
    model_cfg = {"input_shape": list(samples.x.shape[1:]), **{k: model[k] for k in (
        "channels", "kernels", "strides", "latent_dim", "activation")}}
    fp = _fingerprint(samples.x, model=model_cfg, seed=int(seed), channels=channels,
                      precision=trainer["precision"],
                      **{k: v for k, v in pre.items() if k != "max_epochs"})
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    resume = last.exists() and state.get("fingerprint") == fp
    if resume and state.get("completed") and state.get("max_epochs") == pre["max_epochs"] \
            and (ckpt_dir / "best.ckpt").exists():
        log.info("pretraining already completed in %s with these data and settings: "
                 "reusing it", ckpt_dir)
        _pretrain_outputs(ckpt_dir, ckpt_dir / "best.ckpt", best, losses)
        return
    if not resume:
        _clear_pretraining(ckpt_dir)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    else:
        log.info("resuming the pretraining from %s", last)
    write_json(state_file, {"fingerprint": fp, "max_epochs": pre["max_epochs"],
                            "completed": False})
    cl = trainer["channels_last"]
    dm = SpectrogramDataModule(samples.x, batch_size=pre["batch_size"],
                               val_fraction=pre["val_fraction"], split_seed=pre["split_seed"],
                               seed=int(seed), channels_last=cl)
    module = AutoencoderModule(
        model=model_cfg, lr=pre["lr"], lr_decay_rate=pre["lr_decay_rate"],
        lr_decay_steps=pre["lr_decay_steps"], channels_last=cl,
        compile=trainer["compile"],
    )
    log.info("autoencoder %s: %d parameters; %d training and %d validation samples",
             model_cfg, sum(p.numel() for p in module.parameters()), len(dm.train_ids),
             len(dm.val_ids))
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min", save_top_k=1,
        save_last=True, enable_version_counter=False,
    )
    callbacks = [
        checkpoint,
        L.pytorch.callbacks.EarlyStopping(monitor="val_loss", mode="min",
                                          patience=pre["patience"]),
        EpochLog(pre["max_epochs"]),
    ]
    with _quiet_lightning():
        try:
            fit = L.Trainer(
                accelerator=accelerator(trainer), devices=1,
                precision=trainer["precision"], deterministic=trainer["deterministic"],
                max_epochs=pre["max_epochs"], callbacks=callbacks,
                logger=L.pytorch.loggers.CSVLogger(ckpt_dir, name="logs"),
                enable_progress_bar=sys.stderr.isatty(), enable_model_summary=False,
                num_sanity_val_steps=0, log_every_n_steps=1, default_root_dir=ckpt_dir,
                use_distributed_sampler=False, benchmark=False,
            )
        except InputError:
            raise
        except Exception as err:  # Lightning's own rejection of a trainer setting
            raise InputError(f"the trainer settings are not usable here: {err}") from err
        fit.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None)
    if not checkpoint.best_model_path:
        raise InputError(f"the pretraining of {spectrograms} produced no checkpoint.")
    write_json(state_file, {"fingerprint": fp, "max_epochs": pre["max_epochs"],
                            "completed": True})
    _pretrain_outputs(ckpt_dir, Path(checkpoint.best_model_path), best, losses)


def _clear_pretraining(ckpt_dir: Path) -> None:
    """Remove what an earlier (other) pretraining left in ``ckpt_dir``, and nothing else."""
    stale = [*ckpt_dir.glob("*.ckpt"), ckpt_dir / "run.json"]
    if any(p.exists() for p in stale) or (ckpt_dir / "logs").exists():
        log.info("starting afresh in %s (no last.ckpt of these data and settings)", ckpt_dir)
    for path in stale:
        path.unlink(missing_ok=True)
    shutil.rmtree(ckpt_dir / "logs", ignore_errors=True)


def _pretrain_outputs(ckpt_dir: Path, best_ckpt: Path, best: str, losses: str) -> None:
    with atomic_path(best) as tmp:
        shutil.copyfile(best_ckpt, tmp)
    table = collect_losses(ckpt_dir / "logs")
    with atomic_path(losses) as tmp:
        table.to_csv(tmp, index=False)
    if len(table):
        i = int(table["val_loss"].idxmin())
        log.info("best validation loss %.5g at epoch %d of %d", table["val_loss"].iloc[i],
                 int(table["epoch"].iloc[i]), len(table))


def collect_losses(log_root: Path) -> pd.DataFrame:
    """Per-epoch losses from every CSVLogger version (later attempts replace earlier)."""
    frames = []
    versions = sorted(log_root.glob("version_*"), key=lambda p: int(p.name.split("_")[-1]))
    for i, vdir in enumerate(versions):
        f = vdir / "metrics.csv"
        if f.exists() and f.stat().st_size:
            frames.append(pd.read_csv(f).assign(_attempt=i))
    columns = ["epoch", "train_loss", "val_loss", "lr", "seconds"]
    if not frames:
        return pd.DataFrame(columns=columns)
    df = pd.concat(frames, ignore_index=True)
    df = df.dropna(subset=["epoch"])
    per = df.groupby(["_attempt", "epoch"]).agg("last").reset_index()
    per = per.sort_values(["epoch", "_attempt"]).groupby("epoch").agg("last").reset_index()
    for c in columns:
        if c not in per:
            per[c] = np.nan
    per["epoch"] = per["epoch"].astype(int)
    return per[columns]


# --------------------------------------------------------------------------- embed + k scan

def _samples_dataset(samples, variables: dict[str, tuple[tuple[str, ...], np.ndarray]],
                     coords: dict[str, Any] | None = None, attrs: dict | None = None):
    """Dataset of per-sample arrays put on the stack's (window[, channel]) grid."""
    dims = samples.grid_dims()
    data_vars = {}
    for name, (extra_dims, values) in variables.items():
        fill = 0 if np.issubdtype(np.asarray(values).dtype, np.integer) else np.nan
        data_vars[name] = ((*dims, *extra_dims), samples.to_grid(values, fill))
    ds = xr.Dataset(data_vars, coords={**samples.grid_coords(), **(coords or {})},
                    attrs=attrs or {})
    valid = np.zeros([ds.sizes[d] for d in dims], dtype=bool)
    valid[(samples.window_index,) if samples.mode == "stack"
          else (samples.window_index, samples.channel_index)] = True
    ds["valid"] = (dims, valid)
    return ds


def _initial(emb: xr.Dataset) -> str:
    """Prefix of the clustering DEC starts from: ``cluster`` (``tremor.cluster``) or
    ``kmeans`` (the scan's, for the method ``kmeans``)."""
    return "cluster" if "cluster_label" in emb else "kmeans"


def _gather(samples, grid: np.ndarray) -> np.ndarray:
    """Per-sample values from a (window[, channel], ...) grid (inverse of to_grid)."""
    if samples.mode == "stack":
        return grid[samples.window_index]
    return grid[samples.window_index, samples.channel_index]


def order_by_power(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Old cluster index of each new (power-ascending) cluster: ``order[new] = old``.

    Clusters are ranked by the mean spectrogram value of their members (ties and empty
    clusters, which go last, keep their index order), so cluster numbers are stable.
    """
    power = x.reshape(x.shape[0], -1).mean(axis=1, dtype=np.float64)
    sums = np.bincount(labels, weights=power, minlength=k)
    counts = np.bincount(labels, minlength=k)
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    return np.lexsort((np.arange(k), mean))


def _load_autoencoder(best: str, samples, source: str):
    from seiscluster.tremor.autoencoder import load_autoencoder

    try:
        ae = load_autoencoder(best)
    except (OSError, KeyError, RuntimeError) as err:
        raise InputError(f"{best} is not a readable autoencoder checkpoint: {err}") from err
    if tuple(ae.input_shape) != tuple(samples.x.shape[1:]):
        raise InputError(f"{best} was trained on inputs of shape {tuple(ae.input_shape)} but "
                         f"the samples of {source} have shape {tuple(samples.x.shape[1:])}.")
    return ae.eval()


def embed_kscan(
    *,
    spectrograms: str,
    best: str,
    embeddings: str,
    scan: str,
    choice: str,
    kscan: Mapping[str, Any],
    channels: str,
    seed: int,
    clusters: str,
    cluster: Mapping[str, Any] | None = None,
    threads: int = 1,
    diagnostics: Mapping[str, Any] | None = None,
) -> None:
    """Embeddings of every sample, the k-means scan over k (with stability and gap
    scores), the chosen k with its ``warnings`` (:mod:`seiscluster.diagnostics`), and the
    clustering of ``tremor.cluster`` at that k (DEC's start; the scan's k-means when its
    method is ``kmeans``): labels, centres and GMM posterior probabilities in
    ``embeddings``, BIC / AIC per k in ``scan`` (Gaussian mixtures), the dendrogram of the
    agglomerative clustering in the folder ``clusters``."""
    ks, thresholds = section("tremor.kscan", kscan), diag.settings(diagnostics)
    cl = section("tremor.cluster", cluster)
    channels = section("tremor.preprocess", {"channels": channels})["channels"]
    samples = _load(spectrograms, channels)
    import torch

    from seiscluster.tremor.autoencoder import embed
    from seiscluster.tremor.datamodule import as_tensor

    torch.set_num_threads(max(int(threads), 1))
    ae = _load_autoencoder(best, samples, spectrograms)
    ae.to(memory_format=torch.channels_last)
    start = time.perf_counter()
    z, _ = embed(ae, as_tensor(samples.x))
    t_embed = time.perf_counter() - start
    log.info("embedded %d samples in %.2f s", samples.n, t_embed)
    if not np.isfinite(z).all():
        raise InputError(f"the autoencoder {best} gives non-finite embeddings for "
                         f"{spectrograms}: retrain it (tremor.pretrain).")
    start = time.perf_counter()
    result = run_scan(z, ks, seed, threads, thresholds, spectrograms)
    t_scan = time.perf_counter() - start
    log.info("k scan %d..%d (n_init %d) in %.2f s; %s", ks["k_min"], ks["k_max"], ks["n_init"],
             t_scan, result.message)
    k, fit = result.n_clusters, result.fits[result.n_clusters]
    order = order_by_power(samples.x, fit.labels, k)
    new = np.empty_like(order)
    new[order] = np.arange(order.size)
    ds = _samples_dataset(
        samples,
        {"embedding": (("latent",), z), "kmeans_label": ((), new[fit.labels] + 1)},
        coords={"latent": np.arange(z.shape[1]), "cluster": np.arange(1, order.size + 1)},
        attrs={"title": "autoencoder embeddings and k-means of the chosen k",
               "n_clusters": int(k), "criterion": result.criterion,
               "message": result.message, "channel_mode": samples.mode, "checkpoint": str(best),
               "kmeans_n_init": ks["n_init"], "seed": int(seed)},
    )
    ds["kmeans_centroid"] = (("cluster", "latent"), fit.centres[order])
    ds["kmeans_label"].attrs = {"long_name": "k-means cluster (1-based, by mean power "
                                "ascending); 0: no sample"}
    labels, extra = new[fit.labels] + 1, {}
    Path(clusters).mkdir(parents=True, exist_ok=True)
    if cl["method"] != "kmeans":
        start = time.perf_counter()
        labels, extra = _cluster_embedding(ds, samples, z, k, cl, ks, result, seed, clusters)
        extra["cluster_seconds"] = round(time.perf_counter() - start, 3)
        log.info("%s of the embeddings into %d clusters in %.2f s", cl["method"], k,
                 extra["cluster_seconds"])
    write_netcdf(ds, embeddings)
    write_scan(result, ks, labels, thresholds, scan, choice,
               "tremor k-means scan", n_samples=samples.n, embed_seconds=round(t_embed, 3),
               scan_seconds=round(t_scan, 3), method=cl["method"], **extra)


def _cluster_embedding(ds: xr.Dataset, samples, z: np.ndarray, k: int, cl: Mapping[str, Any],
                       ks: Mapping[str, Any], result: Any, seed: int,
                       clusters: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``tremor.cluster`` clustering of ``z`` at ``k`` into ``ds`` (``cluster_*``
    variables, ordered by power as k-means), BIC / AIC columns into the scan's table,
    the dendrogram into ``clusters``; its 1-based labels and the choice's extra keys."""
    from seiscluster.plots.dendrogram import plot_dendrogram
    from seiscluster.plots.style import save
    from seiscluster.tremor.cluster import EmbeddingClusterer, information_criteria

    model = EmbeddingClusterer.from_config(cl, k, ks["n_init"], seed).fit(z)
    order = order_by_power(samples.x, model.labels_, k)
    new = np.empty_like(order)
    new[order] = np.arange(k)
    labels = new[model.labels_] + 1
    dims = samples.grid_dims()
    ds["cluster_label"] = (dims, samples.to_grid(labels, 0))
    ds["cluster_label"].attrs = {"long_name": f"{cl['method']} cluster (1-based, by mean "
                                 "power ascending); 0: no sample"}
    ds["cluster_centroid"] = (("cluster", "latent"), model.centres_[order])
    ds.attrs["cluster_method"] = cl["method"]
    extra: dict[str, Any] = {"cluster": dict(cl)}
    if model.probabilities_ is not None:
        ds["cluster_probability"] = ((*dims, "cluster"),
                                     samples.to_grid(model.probabilities_[:, order], np.nan))
        ds["cluster_probability"].attrs = {"long_name": "Gaussian mixture posterior "
                                           "probability (rows sum to one)"}
        space = z if model.manifold_ is None else model.manifold_
        ic = information_criteria(space, result.table["k"], cl["covariance_type"], int(seed))
        result.table[["bic", "aic"]] = ic[["bic", "aic"]].to_numpy()
    if model.linkage_ is not None:
        save(plot_dendrogram(model.linkage_, k, "agglomerative clustering of the embedding"),
             Path(clusters) / "dendrogram.png")
    return labels, extra


def run_scan(z: np.ndarray, ks: Mapping[str, Any], seed: int, threads: int,
             thresholds: Mapping[str, Any], source: str) -> Any:
    """The k scan of ``z`` with the checked ``tremor.kscan`` settings ``ks`` (rule,
    stability and gap settings included) and the ``diagnostics`` thresholds."""
    return scan_embeddings(
        z, **{key: ks[key] for key in ("k_min", "k_max", "n_init", "criterion", "n_clusters",
                                       "rule", "stability_seeds", "stability_fraction",
                                       "sample_size", "gap_references")},
        seed=int(seed), n_jobs=max(int(threads), 1), source=source,
        min_stability=thresholds["min_stability"],
    )


def write_scan(result: Any, ks: Mapping[str, Any], labels: np.ndarray,
               thresholds: Mapping[str, Any], scan: str, choice: str, what: str,
               outliers: bool = False, **extra: Any) -> None:
    """A k scan's table (CSV) and its choice (JSON: k, rule, scores of the chosen k and the
    ``warnings`` of :mod:`seiscluster.diagnostics` on the chosen clusters ``labels``;
    ``outliers``: the members of its small clusters were labelled as outliers)."""
    k = int(result.n_clusters)
    warnings = diag.scan_warnings(
        result.table, k, labels, chosen=ks["n_clusters"] is None,
        thresholds=thresholds, n_seeds=ks["stability_seeds"], what=what, outliers=outliers)
    diag.log_warnings(log, warnings)
    columns = ["k", "calinski_harabasz", "silhouette", "davies_bouldin", "inertia",
               *kselect.COLUMNS, *(c for c in ("bic", "aic") if c in result.table)]
    with atomic_path(scan) as tmp:
        result.table[columns].to_csv(tmp, index=False)
    row = result.table[result.table["k"] == k]
    write_json(choice, {"n_clusters": k, "criterion": result.criterion, "rule": result.rule,
                        "criterion_k": result.criterion_k, "message": result.message,
                        "scores": {c: float(row[c].iloc[0]) for c in columns[1:]}
                        if len(row) else None,
                        "warnings": warnings, **extra})


# --------------------------------------------------------------------------- fine-tune

def finetune(
    *,
    spectrograms: str,
    best: str,
    embeddings: str,
    choice: str,
    labels: str,
    assignments: str,
    final_model: str,
    history: str,
    dec: Mapping[str, Any],
    trainer: Mapping[str, Any],
    channels: str,
    seed: int,
    threads: int = 1,
) -> None:
    """DEC (``reconstruction_weight`` 0) or IDEC fine-tuning from the k-means of the scan.

    Clusters are renumbered 1..k by the mean spectrogram value of their members
    (ascending); the saved model's centres follow that numbering. While it runs, the last
    good state is kept in ``dec_last_good.pt`` beside ``final_model`` (removed on success).
    """
    cfg, trainer = section("tremor.dec", dec), section("trainer", trainer)
    channels = section("tremor.preprocess", {"channels": channels})["channels"]
    samples = _load(spectrograms, channels)
    from seiscluster.tremor.datamodule import as_tensor
    from seiscluster.tremor.dec import fit_dec, save_checkpoint

    _configure_torch(trainer, threads, seed)
    ae = _load_autoencoder(best, samples, spectrograms)
    k = int(json.loads(Path(choice).read_text())["n_clusters"])
    with xr.open_dataset(embeddings) as emb:
        emb.load()
    initial = _initial(emb)
    centres = emb[f"{initial}_centroid"].values
    init = _gather(samples, emb[f"{initial}_label"].values).astype(np.int64) - 1
    if centres.shape[0] != k or init.shape[0] != samples.n or (init < 0).any():
        raise InputError(f"{embeddings} does not match {choice} and {spectrograms} "
                         "(rerun the embedding and k scan).")
    if k > samples.n:
        raise InputError(f"the number of clusters ({k}) is larger than the number of samples "
                         f"({samples.n}) of {spectrograms}.")
    last_good = Path(final_model).with_name("dec_last_good.pt")
    log.info("DEC fine-tuning of %d samples into %d clusters (%s)", samples.n, k,
             "IDEC" if cfg["reconstruction_weight"] > 0 else "DEC")
    res = fit_dec(ae, as_tensor(samples.x, trainer["channels_last"]), centres,
                  init, dec=cfg, trainer=trainer, seed=int(seed), checkpoint=last_good)
    log.info("DEC stopped after %d iterations (%s) in %.1f s", res.n_iter, res.stop_reason,
             res.seconds)
    changed = float(np.mean(res.labels != init))
    log.info("fine-tuning changed %.2f%% of the k-means labels it started from", 100 * changed)
    order = order_by_power(samples.x, res.labels, k)
    new = np.empty_like(order)
    new[order] = np.arange(k)
    cluster = new[res.labels] + 1
    q = res.q[:, order]
    sizes = np.bincount(cluster, minlength=k + 1)[1:]
    if (sizes == 0).any():
        log.warning("clusters %s are empty after fine-tuning",
                    (np.flatnonzero(sizes == 0) + 1).tolist())
    table = pd.DataFrame({"window_start": pd.DatetimeIndex(samples.window)
                          .strftime("%Y-%m-%dT%H:%M:%S")})
    if samples.mode == "separate":
        table["channel"] = samples.channel
    table["cluster"] = cluster
    table["max_assignment"] = np.round(q.max(axis=1), 6)
    with atomic_path(labels) as tmp:
        table.to_csv(tmp, index=False)
    ds = _samples_dataset(
        samples,
        {"assignment": (("cluster",), q), "label": ((), cluster),
         "embedding": (("latent",), res.z)},
        coords={"cluster": np.arange(1, k + 1), "latent": np.arange(res.z.shape[1])},
        attrs={"title": "DEC soft assignments, labels and fine-tuned embeddings",
               "method": "IDEC" if cfg["reconstruction_weight"] > 0 else "DEC",
               "n_iter": int(res.n_iter), "converged": int(res.converged),
               "stop_reason": res.stop_reason, "dec": json.dumps(cfg),
               "changed_fraction": changed,
               "channel_mode": samples.mode, "cluster_order": "mean spectrogram value, "
               "ascending"},
    )
    ds["centroid"] = (("cluster", "latent"), res.centres[order])
    ds["size"] = (("cluster",), sizes)
    ds["label"].attrs = {"long_name": "cluster (1-based); 0: no sample"}
    ds["assignment"].attrs = {"long_name": "Student's t soft assignment q"}
    write_netcdf(ds, assignments)
    with atomic_path(history) as tmp:
        res.history.to_csv(tmp, index=False)
    import torch

    with torch.no_grad():
        res.model.assignment.centres.copy_(torch.as_tensor(res.centres[order]))
    save_checkpoint(final_model, res.model, dec=cfg, iteration=res.n_iter,
                    converged=res.converged, stop_reason=res.stop_reason,
                    channel_mode=samples.mode, cluster_order=order.tolist())
    last_good.unlink(missing_ok=True)
    log.info("cluster sizes %s", dict(zip(range(1, k + 1), sizes.tolist(), strict=True)))


# --------------------------------------------------------------------------- figures

def deep_figures(
    *,
    spectrograms: str,
    embeddings: str,
    assignments: str,
    labels: str,
    history: str,
    losses: str,
    scan: str,
    final_model: str,
    best: str,
    loss_figure: str,
    kscan_figure: str,
    tsne_figure: str,
    timeline_figure: str,
    reconstruction_figure: str,
    spectra_figure: str,
    metrics: str | None = None,
    tsne: Mapping[str, Any] | None = None,
    plot: Mapping[str, Any] | None = None,
    channels: str = "stack",
    truth: str | None = None,
    seed: int = 0,
    threads: int = 1,
    diagnostics: Mapping[str, Any] | None = None,
    files: Sequence[str] | str | None = None,
) -> None:
    """The figures of the deep clustering, and its metrics (ARI vs ``truth`` if given;
    the share of labels the fine-tuning changed and the ``warnings`` of
    :mod:`seiscluster.diagnostics`). ``files``: the records the spectrograms were made
    from, where those are files (for the representative windows' waveforms)."""
    from seiscluster.plots import deep as plots
    from seiscluster.plots.tremor import amplitude_label, amplitude_trace

    plot, tsne = section("tremor.plot", plot), section("tremor.tsne", tsne)
    thresholds = diag.settings(diagnostics)
    channels = section("tremor.preprocess", {"channels": channels})["channels"]
    dpi = plot["dpi"]
    events = _events(plot["events"])
    samples = _load(spectrograms, channels)
    with xr.open_dataset(embeddings) as emb, xr.open_dataset(assignments) as asg:
        emb.load()
        asg.load()
    z0 = _gather(samples, emb["embedding"].values)
    y0 = _gather(samples, emb[f"{_initial(emb)}_label"].values).astype(int)
    z1 = _gather(samples, asg["embedding"].values)
    y1 = _gather(samples, asg["label"].values).astype(int)
    q1 = _gather(samples, asg["assignment"].values)
    k = int(asg.sizes["cluster"])
    table = pd.read_csv(scan)
    plots.save(plots.plot_losses(pd.read_csv(losses), pd.read_csv(history),
                                 str(asg.attrs.get("stop_reason", ""))), loss_figure, dpi)
    plots.save(plots.plot_kscan(table, int(emb.attrs.get("n_clusters", k)),
                                str(emb.attrs.get("message", "")),
                                thresholds["min_stability"]), kscan_figure, dpi)
    perplexity = tsne["perplexity"]
    start = time.perf_counter()
    t0 = plots.tsne_2d(z0, perplexity, seed, threads)
    t1 = plots.tsne_2d(z1, perplexity, seed, threads)
    log.info("t-SNE of %d embeddings (twice) in %.1f s", samples.n, time.perf_counter() - start)
    plots.save(plots.plot_tsne(t0, y0, t1, y1, k, str(asg.attrs.get("method", "DEC"))),
               tsne_figure, dpi)
    with xr.open_zarr(spectrograms) as spec:
        settings = json.loads(spec.attrs.get("settings", "{}"))
        if "frequency_edges" in settings.get("derived", {}):
            trace, label = amplitude_trace(spec), \
                f"{spec['channel'].values[0]}: {amplitude_label(spec)}"
            length = float(settings["spectrogram"]["window_length"])
        else:  # a store made elsewhere, without the stage's settings
            log.info("no amplitude below the clusters over time: %s records no frequency "
                     "band edges (settings.derived.frequency_edges)", spectrograms)
            trace, label, length = None, "", None
        plots.save(plots.plot_timeline(samples.window, y1, q1.max(axis=1), k, samples.channel,
                                       events, trace, label, length), timeline_figure, dpi)
    picks, *recon = _reconstructions(samples, q1, y1, k, final_model, best,
                                     np.linalg.norm(z1 - asg["centroid"].values[y1 - 1], axis=1))
    plots.save(plots.plot_reconstructions(*recon, samples.frequency, samples.time,
                                          *_waveforms(spectrograms, files, samples, picks)),
               reconstruction_figure, dpi)
    plots.save(plots.plot_cluster_spectra(samples.x, y1, k, samples.frequency, samples.time,
                                          samples.channels if samples.mode == "stack"
                                          else None), spectra_figure, dpi)
    if metrics is not None:
        record = {"initial_method": str(emb.attrs.get("cluster_method", "kmeans")),
                  **_metrics(samples, y0, y1, z1, asg, truth)}
        record["warnings"] = _dec_warnings(record, y1, asg, thresholds)
        diag.log_warnings(log, record["warnings"])
        write_json(metrics, record)


def _dec_warnings(record: dict[str, Any], labels: np.ndarray, asg: xr.Dataset,
                  thresholds: Mapping[str, Any]) -> list[dict[str, str]]:
    """DEC / IDEC that changed too few labels, small final clusters, low silhouette."""
    method = str(asg.attrs.get("method", "DEC"))
    return diag.dec_unchanged(record.get("changed_fraction"),
                              thresholds["min_dec_changed_fraction"], method) \
        + diag.small_clusters(labels, thresholds["min_cluster_size"], f"tremor {method}") \
        + diag.low_silhouette(record.get("silhouette"), thresholds["min_silhouette"],
                              f"tremor {method}")


def _events(events: Sequence[Mapping[str, Any]]
            ) -> list[tuple[np.datetime64, str, np.datetime64 | None]]:
    """The checked ``tremor.plot.events`` as (time, label, end or None), times in UTC."""
    def utc(value: Any) -> np.datetime64 | None:
        return None if value is None else np.datetime64(event_time(value), "ns")

    return [(utc(ev["time"]), str(ev["label"]), utc(ev["end"])) for ev in events]


def _reconstructions(samples, q: np.ndarray, labels: np.ndarray, k: int, final_model: str,
                     best: str, distance: np.ndarray, per_cluster: int = 3):
    """The samples of each cluster nearest its centre (``distance`` of each sample to its
    cluster's centre in the fine-tuned embedding) and their reconstructions."""
    import torch

    from seiscluster.tremor.autoencoder import embed
    from seiscluster.tremor.datamodule import as_tensor
    from seiscluster.tremor.dec import load_dec

    model, ckpt = load_dec(final_model)
    ae = model.autoencoder
    if float(ckpt.get("dec", {}).get("reconstruction_weight", 0.0)) <= 0:
        ae = _load_autoencoder(best, samples, best)  # DEC leaves the decoder behind
    torch.set_num_threads(1)
    picks, rows = [], []
    conf = q.max(axis=1)
    for c in range(1, k + 1):
        members = np.flatnonzero(labels == c)
        top = members[np.argsort(distance[members], kind="stable")[:per_cluster]]
        picks.extend(top.tolist())
        rows.extend([c] * top.size)
    picks_arr = np.asarray(picks, dtype=np.int64)
    x = samples.x[picks_arr]
    _, r = embed(ae.eval(), as_tensor(x, False), reconstruct=True) if picks else (None, x)
    return picks_arr, x, r, np.asarray(rows), conf[picks_arr]


def _waveforms(spectrograms: str, files: Sequence[str] | str | None, samples,
               picks: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]] | None, str]:
    """The preprocessed record of each picked sample's window (its own channel, or the
    first one of a stack) and the records' units; (None, "") with a warning where the
    records cannot be read again (a store made elsewhere, records moved)."""
    from seiscluster.tremor import stages
    from seiscluster.tremor.spectrogram import window_waveform

    with xr.open_zarr(spectrograms) as ds:
        units = str(ds.attrs.get("units", ""))
    try:
        job = stages.store_job(spectrograms, [files] if isinstance(files, str) else files)
    except InputError as err:
        log.warning("no waveforms beside the representative windows: %s", err)
        return None, ""
    starts = samples.window[picks].astype("M8[ns]").astype(np.int64)
    chans = [str(samples.channels[c]) if c >= 0 else str(samples.channels[0])
             for c in samples.channel_index[picks]]
    return [window_waveform(job, int(t), ch)
            for t, ch in zip(starts, chans, strict=True)], units


def _silhouette(z: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette of the fine-tuned embeddings (None for a single cluster)."""
    from sklearn.metrics import silhouette_score

    if not 1 < np.unique(labels).size < labels.size:
        return None
    return float(silhouette_score(z, labels, sample_size=min(labels.size, 5000),
                                  random_state=0))


def _metrics(samples, y0: np.ndarray, y1: np.ndarray, z1: np.ndarray, asg: xr.Dataset,
             truth: str | None) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score

    out: dict[str, Any] = {
        "n_samples": samples.n,
        "n_clusters": int(asg.sizes["cluster"]),
        "cluster_sizes": np.bincount(y1, minlength=asg.sizes["cluster"] + 1)[1:].tolist(),
        "dec_iterations": int(asg.attrs.get("n_iter", 0)),
        "dec_converged": bool(asg.attrs.get("converged", 0)),
        "ari_kmeans_vs_dec": float(adjusted_rand_score(y0, y1)),
        "changed_fraction": float(asg.attrs["changed_fraction"])
        if "changed_fraction" in asg.attrs else None,
        "silhouette": _silhouette(z1, y1),
    }
    if truth is None:
        return out
    from seiscluster.tremor.synthetic import truth_of, truth_scores

    regime, fraction = truth_of(truth, samples.window)
    if all(r is None for r in regime):
        raise InputError(f"no window of the spectrograms has a regime in {truth}.")
    dec = truth_scores(regime, fraction, y1)
    before = truth_scores(regime, fraction, y0)
    out.update({
        "n_with_truth": dec["n_with_truth"], "ari": dec["ari"], "nmi": dec["nmi"],
        "ari_kmeans": before["ari"], "nmi_kmeans": before["nmi"],
        "n_pure": dec["n_pure"], "ari_pure": dec["ari_pure"],
        "contingency": dec["contingency"],
    })
    log.info("ARI vs %s: %.3f (k-means before fine-tuning %.3f)", truth, out["ari"],
             out["ari_kmeans"])
    return out
