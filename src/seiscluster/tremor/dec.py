"""Deep embedded clustering (DEC, Xie et al. 2016) and its variant with reconstruction (IDEC).

pt-dec style pieces: :class:`ClusterAssignment` (Student's t soft assignment of embeddings
to trainable centres), the pure :func:`target_distribution`, and :func:`fit_dec`, the
fine-tuning loop of the encoder and centres on ``KL(P || Q)`` (plus the autoencoder's
reconstruction loss when ``reconstruction_weight > 0``: IDEC).

The target P is recomputed on the whole data set every ``update_interval`` batches, and
batches look their rows of P up by stable sample id. Training stops when the fraction of
samples whose hard label changed between two updates falls below ``tol`` or after
``maxiter`` batches. The loop is plain PyTorch through Lightning Fabric (device and
precision from the ``trainer`` settings), which keeps the per-batch overhead small. On CPU
each batch, and each whole-data target update, is computed as two halves in two threads
(:class:`~seiscluster.tremor.autoencoder.HalfBatchThreads`): on a quiet machine about as
fast as OpenMP's intra-op threads, and unlike them it does not collapse when the machine
is oversubscribed (bench/dec_speed.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.fileio import atomic_path
from seiscluster.tremor.autoencoder import (
    EVAL_BATCH,
    ConvAutoencoder,
    HalfBatchThreads,
    accelerator,
)

log = logging.getLogger(__name__)

class ClusterAssignment(nn.Module):
    """Student's t soft assignment ``q_ij`` of embeddings ``z_i`` to centres ``mu_j``.

    ``q_ij = (1 + |z_i - mu_j|^2 / alpha) ** (-(alpha + 1) / 2)``, normalised over ``j``.
    """

    def __init__(
        self,
        n_clusters: int,
        embedding_dim: int,
        alpha: float = 1.0,
        centres: Tensor | np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.n_clusters, self.embedding_dim, self.alpha = n_clusters, embedding_dim, alpha
        if centres is None:
            init = torch.empty(n_clusters, embedding_dim)
            nn.init.xavier_uniform_(init)
        else:
            init = torch.as_tensor(np.asarray(centres), dtype=torch.float32).clone()
            if tuple(init.shape) != (n_clusters, embedding_dim):
                raise ValueError(f"centres of shape {tuple(init.shape)}, expected "
                                 f"{(n_clusters, embedding_dim)}")
        self.centres = nn.Parameter(init)

    def forward(self, z: Tensor) -> Tensor:
        d2 = (z.unsqueeze(1) - self.centres.unsqueeze(0)).pow(2).sum(-1)
        if self.alpha == 1.0:
            q = 1.0 / (1.0 + d2)
        else:
            q = (1.0 + d2 / self.alpha).pow(-(self.alpha + 1.0) / 2.0)
        return q / q.sum(1, keepdim=True)


def target_distribution(q: Any) -> Any:
    """DEC's target ``p_ij = (q_ij^2 / f_j)`` normalised over ``j``, ``f_j = sum_i q_ij``.

    Works on torch tensors and numpy arrays alike; ``q`` is ``(samples, clusters)``.
    """
    weight = q**2 / q.sum(0)
    return weight / weight.sum(1)[:, None]


class DECModel(nn.Module):
    """Autoencoder plus clustering layer on its embedding."""

    def __init__(self, autoencoder: ConvAutoencoder, centres: Tensor | np.ndarray,
                 alpha: float = 1.0) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        k, dim = np.shape(centres)
        self.assignment = ClusterAssignment(k, dim, alpha, centres)

    def forward(self, x: Tensor, reconstruct: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(embedding, soft assignment, reconstruction or None)``."""
        z = self.autoencoder.encode(x)
        recon = self.autoencoder.decode(z) if reconstruct else None
        return z, self.assignment(z), recon


@dataclass
class DECResult:
    """Outcome of :func:`fit_dec` (sample order of the input; labels 0-based)."""

    q: np.ndarray
    z: np.ndarray
    labels: np.ndarray
    centres: np.ndarray
    history: pd.DataFrame
    n_iter: int
    converged: bool
    stop_reason: str
    seconds: float
    model: DECModel = field(repr=False)


def fabric_for(trainer: Mapping[str, Any]) -> L.Fabric:
    """A one-device Fabric from the checked ``trainer`` settings (accelerator, precision)."""
    name = {"gpu": "cuda"}.get(accelerator(trainer), trainer["accelerator"])
    try:
        return L.Fabric(accelerator=name, devices=1, precision=trainer["precision"])
    except Exception as err:  # Lightning rejects bad combinations
        raise InputError(f"trainer.accelerator={trainer['accelerator']} with trainer.precision="
                         f"{trainer['precision']} is not usable here: {err}") from err


@torch.inference_mode()
def predict(model: nn.Module, x: Tensor, batch_size: int = EVAL_BATCH) -> tuple[Tensor, Tensor]:
    """Embeddings and soft assignments of all samples ``x`` (in batches, no gradients)."""
    zs, qs = [], []
    for start in range(0, x.shape[0], batch_size):
        z, q, _ = model(x[start:start + batch_size])
        zs.append(z.float())
        qs.append(q.float())
    return torch.cat(zs), torch.cat(qs)


def save_checkpoint(path: str | Path, model: DECModel, **extra: Any) -> None:
    """Fine-tuning checkpoint: autoencoder config and weights, centres, alpha, ``extra``."""
    ae = model.autoencoder
    state = {
        "model_config": ae.config(),
        "autoencoder": {k.replace("_orig_mod.", ""): v.detach().cpu()
                        for k, v in ae.state_dict().items()},
        "centres": model.assignment.centres.detach().cpu().clone(),
        "alpha": model.assignment.alpha,
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_dec(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[DECModel, dict]:
    """The :class:`DECModel` of a fine-tuning checkpoint and the checkpoint dict."""
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    ae = ConvAutoencoder(**ckpt["model_config"])
    ae.load_state_dict(ckpt["autoencoder"])
    return DECModel(ae, ckpt["centres"], ckpt["alpha"]), ckpt


def _batches(n: int, batch_size: int, seed: int):
    """Endless index batches: a fresh seeded permutation of ``range(n)`` per pass."""
    epoch = 0
    while True:
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n))
        yield from torch.split(order, batch_size)
        epoch += 1


def trained_parameters(model: DECModel, reconstruct: bool) -> list[nn.Parameter]:
    """What fine-tuning trains: the centres and the encoder (DEC), and the decoder (IDEC)."""
    ae = model.autoencoder
    params = [*model.assignment.parameters(), *ae.encoder_parameters()]
    return params + ae.decoder_parameters() if reconstruct else params


def _predict_all(model: nn.Module, x: Tensor, batch_size: int,
                 halves: HalfBatchThreads) -> tuple[Tensor, Tensor]:
    """:func:`predict` of all samples (the two halves of ``x`` in parallel on CPU)."""
    parts = halves.map(lambda part: predict(model, part, batch_size), x)
    return torch.cat([z for z, _ in parts]), torch.cat([q for _, q in parts])


@dataclass
class _Gradients:
    """Gradients of one batch's loss ``kl_weight * KL + reconstruction_weight * MSE``.

    The batch means are sums over rows divided by the batch size, so the gradients of the
    two halves of a CPU batch (see :class:`HalfBatchThreads`) add up to the whole
    batch's; they are added in a fixed order (same seed, same result, on 1 or 2 threads).
    """

    model: nn.Module
    params: list[nn.Parameter]
    fabric: L.Fabric
    x: Tensor
    kl_weight: float
    rec_weight: float
    halves: HalfBatchThreads

    def _loss(self, model: nn.Module, idx: Tensor, p_all: Tensor, n: int
              ) -> tuple[Tensor, Tensor]:
        xb = self.x.index_select(0, idx)
        _, q, recon = model(xb, self.rec_weight > 0)
        kl = F.kl_div(q.float().clamp_min(1e-12).log(), p_all.index_select(0, idx),
                      reduction="sum") / n
        loss = self.kl_weight * kl
        rec = torch.zeros((), device=kl.device)
        if recon is not None:
            rec = F.mse_loss(recon.float(), xb, reduction="sum") / (n * xb[0].numel())
            loss = loss + self.rec_weight * rec
        return loss, torch.stack([kl.detach(), rec.detach()])

    def __call__(self, idx: Tensor, p_all: Tensor) -> Tensor:
        """Set the parameters' ``.grad`` for the batch ``idx``; its (KL, MSE) losses."""
        n = len(idx)
        if not self.halves.parallel:
            for param in self.params:
                param.grad = None
            loss, losses = self._loss(self.model, idx, p_all, n)
            self.fabric.backward(loss)
            return losses

        def grads(part: Tensor) -> tuple[tuple[Tensor, ...], Tensor]:
            # autocast is per thread, and Fabric's module insists on fabric.backward: the
            # worker threads run the inner module under the precision's autocast instead
            with self.fabric.autocast():
                loss, losses = self._loss(_inner(self.model), part, p_all, n)
            return torch.autograd.grad(loss, self.params), losses

        parts = self.halves.map(grads, idx)
        for param, *part_grads in zip(self.params, *(g for g, _ in parts), strict=True):
            param.grad = sum(part_grads[1:], part_grads[0])
        return sum((losses for _, losses in parts[1:]), parts[0][1])


def fit_dec(
    autoencoder: ConvAutoencoder,
    x: Tensor,
    centres: np.ndarray,
    initial_labels: np.ndarray,
    *,
    dec: Mapping[str, Any] | None = None,
    trainer: Mapping[str, Any] | None = None,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    eval_batch_size: int = EVAL_BATCH,
) -> DECResult:
    """Fine-tune ``autoencoder``'s encoder and the cluster centres (DEC, or IDEC).

    Parameters
    ----------
    x:
        All samples ``(n, channels, height, width)`` (the clustering uses every sample).
    centres, initial_labels:
        k-means centres on the pretrained embeddings and its labels (the reference of the
        first label change).
    dec:
        ``tremor.dec`` settings (checked; missing keys take the defaults of
        :class:`seiscluster.config.DecConfig`).
    trainer:
        ``trainer`` settings: accelerator, precision, compile, channels_last.
    checkpoint:
        Where to keep the last good state (written at every target update).
    """
    cfg, trainer = section("tremor.dec", dec), section("trainer", trainer)
    start = time.perf_counter()
    fabric = fabric_for(trainer)
    model = DECModel(autoencoder, centres, float(cfg["alpha"]))
    if trainer["channels_last"]:
        model.to(memory_format=torch.channels_last)
    rec_weight = float(cfg["reconstruction_weight"])
    params = trained_parameters(model, rec_weight > 0)
    optimizer = torch.optim.SGD(params, lr=float(cfg["lr"]), momentum=float(cfg["momentum"]),
                                foreach=True)
    if trainer["compile"]:
        model.compile()
    model, optimizer = fabric.setup(model, optimizer)
    memory = torch.channels_last if trainer["channels_last"] else torch.contiguous_format
    x = x.to(fabric.device).contiguous(memory_format=memory)
    interval, maxiter, tol = int(cfg["update_interval"]), int(cfg["maxiter"]), float(cfg["tol"])
    batches = _batches(int(x.shape[0]), int(cfg["batch_size"]), seed)
    y_last = torch.as_tensor(np.asarray(initial_labels), device=fabric.device)
    rows: list[dict[str, Any]] = []
    sums = torch.zeros(2, device=fabric.device)  # running KL and reconstruction losses
    n_batches, ite, converged, reason = 0, 0, False, "maxiter"
    t_update = time.perf_counter()
    with HalfBatchThreads(fabric.device) as halves:
        gradients = _Gradients(model, params, fabric, x, float(cfg["kl_weight"]), rec_weight,
                               halves)
        while True:
            if ite % interval == 0 or ite == maxiter:
                z_all, q_all = _predict_all(model, x, eval_batch_size, halves)
                if not torch.isfinite(q_all).all():
                    _diverged(ite, checkpoint)
                p_all = target_distribution(q_all.double()).float()
                y = q_all.argmax(1)
                delta = float((y != y_last).float().mean())
                y_last = y
                row = _history_row(ite, delta, sums, n_batches, rec_weight > 0, start)
                rows.append(row)
                log.info("DEC iteration %d/%d: delta-label %.5f, KL %.5f%s (%.1f s)", ite, maxiter,
                         delta, row["kl_loss"], f", reconstruction {row['reconstruction_loss']:.5f}"
                         if rec_weight > 0 else "", time.perf_counter() - t_update)
                t_update = time.perf_counter()
                sums.zero_()
                n_batches = 0
                if checkpoint is not None:
                    save_checkpoint(checkpoint, _inner(model), iteration=ite, dec=cfg)
                if ite > 0 and delta < tol:
                    converged, reason = True, f"delta-label {delta:.3g} < tol {tol:g}"
                    break
                if ite >= maxiter:
                    reason = f"maxiter {maxiter} reached"
                    break
            losses = gradients(next(batches).to(fabric.device), p_all)
            if not torch.isfinite(losses).all():
                _diverged(ite, checkpoint)
            optimizer.step()
            sums += losses
            n_batches += 1
            ite += 1
    q_np = q_all.cpu().numpy()
    return DECResult(
        q=q_np, z=z_all.cpu().numpy(), labels=q_np.argmax(1),
        centres=_inner(model).assignment.centres.detach().cpu().numpy().copy(),
        history=pd.DataFrame(rows), n_iter=ite, converged=converged, stop_reason=reason,
        seconds=time.perf_counter() - start, model=_inner(model),
    )


def _history_row(ite: int, delta: float, sums: Tensor, n_batches: int, reconstruct: bool,
                 start: float) -> dict[str, Any]:
    """One row of the fine-tuning history: mean losses of the batches since the last one."""
    kl, rec = (sums / max(n_batches, 1)).tolist()
    return {"iteration": ite, "delta_label": delta, "kl_loss": kl if n_batches else math.nan,
            "reconstruction_loss": rec if n_batches and reconstruct else math.nan,
            "seconds": time.perf_counter() - start}


def _inner(model: nn.Module) -> DECModel:
    """The :class:`DECModel` inside Fabric's wrapper."""
    return model.module if hasattr(model, "module") else model


def _diverged(iteration: int, checkpoint: str | Path | None) -> None:
    kept = checkpoint is not None and Path(checkpoint).is_file()  # none before the 1st update
    where = f"; the last good state is kept in {checkpoint}" if kept else ""
    raise InputError(f"DEC fine-tuning diverged (non-finite loss or assignment at iteration "
                     f"{iteration}): lower tremor.dec.lr or check the spectrograms{where}.")
