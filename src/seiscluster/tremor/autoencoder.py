"""Convolutional autoencoder of spectrograms (ClusTremor architecture) and its pretraining.

The encoder is a stack of strided convolutions with Keras-style ``'same'`` padding (output
size ``ceil(n / stride)``, the extra padding row/column at the end, as TensorFlow does),
then a dense layer to the embedding; the decoder mirrors it with transposed convolutions
cropped back to the encoder's sizes, so any input shape works (not only 96 x 128). All
kernels are Glorot-uniform initialised and biases zero, as in Keras.

:class:`AutoencoderModule` is the Lightning module of the pretraining: MSE loss, Adam with
Keras' ``ExponentialDecay`` learning rate (smooth by default: ``lr * rate ** (step /
decay_steps)`` per optimiser step; ``staircase=True`` floors the exponent).
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seiscluster.errors import InputError

log = logging.getLogger(__name__)

#: Batch size of inference passes (embedding, DEC targets, validation). On CPU 16-32
#: windows of 96 x 128 keep a layer's activations in cache: encoding in batches of 64
#: took 1.9x longer per window on the development machine (one thread).
EVAL_BATCH = 32

#: Hidden-layer activations by config name (``tremor.model.activation``).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow ``'same'`` padding (before, after) of one dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def encoder_sizes(
    shape: Sequence[int], strides: Sequence[int]
) -> list[tuple[int, int]]:
    """Spatial size (height, width) before each encoder layer and after the last."""
    sizes = [(int(shape[0]), int(shape[1]))]
    for s in strides:
        h, w = sizes[-1]
        sizes.append((math.ceil(h / s), math.ceil(w / s)))
    return sizes


class ConvAutoencoder(nn.Module):
    """Strided-convolution autoencoder; ``encode`` gives the embedding.

    Parameters
    ----------
    input_shape:
        ``(channels, height, width)`` of one sample (taken from the data).
    channels, kernels, strides:
        One entry per encoder layer (``tremor.model.*``); the decoder mirrors them.
    latent_dim:
        Size of the embedding (dense layer with the activation, as in the reference).
    activation:
        Name in :data:`ACTIVATIONS`; the decoder's output layer is linear.
    latent_activation:
        Apply the activation to the embedding too (the reference: True); False gives a
        linear embedding (as DEC/DCEC).

    Notes
    -----
    Keras pads ``'same'`` convolutions asymmetrically (the extra row at the end), which
    PyTorch's convolutions cannot do without copying every activation into a padded
    buffer. Seen in spatially reversed coordinates, that convolution *is* a symmetric one
    (padding = the larger, trailing pad), so the network runs on reversed inputs with
    symmetric padding and reverses its reconstruction back: exactly the Keras model (its
    kernels are this model's kernels reversed), without any padding copies.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (8, 16, 32, 64),
        kernels: Sequence[Sequence[int]] = ((7, 5), (5, 3), (5, 3), (5, 3)),
        strides: Sequence[int] = (2, 2, 2, 2),
        latent_dim: int = 24,
        activation: str = "elu",
        latent_activation: bool = True,
    ) -> None:
        super().__init__()
        if not (len(channels) == len(kernels) == len(strides)) or not channels:
            raise ValueError("channels, kernels and strides need one entry per layer")
        self.input_shape = tuple(int(v) for v in input_shape)
        in_ch, height, width = self.input_shape
        self.channels = [int(c) for c in channels]
        self.kernels = [(int(k[0]), int(k[1])) for k in kernels]
        self.strides = [int(s) for s in strides]
        self.latent_dim = int(latent_dim)
        self.activation = activation
        self.latent_activation = bool(latent_activation)
        self.act = ACTIVATIONS[activation]()
        inplace = "inplace" in inspect.signature(ACTIVATIONS[activation]).parameters
        self.act_ = ACTIVATIONS[activation](inplace=True) if inplace else self.act
        self.sizes = encoder_sizes((height, width), self.strides)
        # per layer: explicit (left, right, top, bottom) pad of the reversed input, or None
        self.enc_pads: list[tuple[int, int, int, int] | None] = []
        conv = []
        c_prev = in_ch
        for c, k, s, (h, w) in zip(self.channels, self.kernels, self.strides, self.sizes[:-1],
                                   strict=True):
            (bh, ah), (bw, aw) = same_padding(h, k[0], s), same_padding(w, k[1], s)
            if ah - bh < s and aw - bw < s:  # symmetric padding gives the same outputs
                conv.append(nn.Conv2d(c_prev, c, k, stride=s, padding=(ah, aw)))
                self.enc_pads.append(None)
            else:  # stride 1 with an even kernel: pad explicitly
                conv.append(nn.Conv2d(c_prev, c, k, stride=s))
                self.enc_pads.append((aw, bw, ah, bh))
            c_prev = c
        self.encoder_convs = nn.ModuleList(conv)
        h_last, w_last = self.sizes[-1]
        self.flat_shape = (self.channels[-1], h_last, w_last)
        flat = self.channels[-1] * h_last * w_last
        self.to_latent = nn.Linear(flat, self.latent_dim)
        self.from_latent = nn.Linear(self.latent_dim, flat)
        deconv = []
        self.dec_crops: list[tuple[int, int]] = []
        self.dec_starts: list[tuple[int, int] | None] = []
        outs = [*self.channels[-2::-1], in_ch]
        for i, (c_out, k, s) in enumerate(
            zip(outs, self.kernels[::-1], self.strides[::-1], strict=True)
        ):
            level = len(self.channels) - 1 - i
            h_in, w_in = self.sizes[level + 1]
            # Keras' transposed 'same' convolution is the adjoint of the 'same' convolution
            # of an input of size n_in * s: in reversed coordinates, padding = the trailing
            # pad, output_padding = trailing - leading (< s).
            (bh, ah), (bw, aw) = same_padding(h_in * s, k[0], s), same_padding(w_in * s, k[1], s)
            op = (ah - bh, aw - bw)
            if max(op) < s:
                deconv.append(nn.ConvTranspose2d(c_prev, c_out, k, stride=s, padding=(ah, aw),
                                                 output_padding=op))
                self.dec_starts.append(None)
            else:  # stride 1 with an even kernel: crop the full transposed output
                deconv.append(nn.ConvTranspose2d(c_prev, c_out, k, stride=s))
                self.dec_starts.append((ah, aw))
            self.dec_crops.append(self.sizes[level])
            c_prev = c_out
        self.decoder_convs = nn.ModuleList(deconv)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform kernels and zero biases (the Keras defaults)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """What encodes (DEC trains it): the convolutions and the layer to the embedding."""
        return [*self.encoder_convs.parameters(), *self.to_latent.parameters()]

    def decoder_parameters(self) -> list[nn.Parameter]:
        """What decodes (IDEC trains it too)."""
        return [*self.from_latent.parameters(), *self.decoder_convs.parameters()]

    def encode(self, x: Tensor) -> Tensor:
        """Embedding of a batch ``(n, channels, height, width)`` -> ``(n, latent_dim)``."""
        x = x.flip((-2, -1))
        for conv, pad in zip(self.encoder_convs, self.enc_pads, strict=True):
            if pad is not None:
                x = F.pad(x, pad)
            x = self.act_(conv(x))
        z = self._dense_to_latent(x)
        return self.act_(z) if self.latent_activation else z

    def _dense_to_latent(self, x: Tensor) -> Tensor:
        """``to_latent`` of the flattened (channel, height, width) features ``x``.

        A channels-last ``x`` is read in its memory order (height, width, channel) against
        the weight's columns permuted to match: the same sums, without copying ``x`` into
        channel-first order, and its gradient comes back channels-last.
        """
        if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
            return self.to_latent(x.flatten(1))
        c, h, w = self.flat_shape
        weight = self.to_latent.weight.view(-1, c, h, w).permute(0, 2, 3, 1).flatten(1)
        return F.linear(x.permute(0, 2, 3, 1).flatten(1), weight, self.to_latent.bias)

    def decode(self, z: Tensor) -> Tensor:
        """Reconstruction of a batch of embeddings (linear output layer)."""
        x = self.act_(self.from_latent(z)).view(-1, *self.flat_shape)
        n = len(self.decoder_convs)
        for i, (deconv, (h, w), start) in enumerate(zip(
                self.decoder_convs, self.dec_crops, self.dec_starts, strict=True)):
            x = deconv(x)
            if start is not None:
                x = x[..., start[0]:start[0] + h, start[1]:start[1] + w]
            cropped = x.shape[-2] != h or x.shape[-1] != w
            if cropped:  # odd encoder size: Keras-like crop at the end (the start here)
                x = x[..., x.shape[-2] - h:, x.shape[-1] - w:]
            if i < n - 1:
                x = self.act(x) if cropped else self.act_(x)
        return x.flip((-2, -1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(embedding, reconstruction)`` of a batch."""
        z = self.encode(x)
        return z, self.decode(z)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (plain values), to rebuild the model from a checkpoint."""
        return {
            "input_shape": list(self.input_shape),
            "channels": self.channels,
            "kernels": [list(k) for k in self.kernels],
            "strides": self.strides,
            "latent_dim": self.latent_dim,
            "activation": self.activation,
            "latent_activation": self.latent_activation,
        }


def exponential_decay(step: int, rate: float, decay_steps: int, staircase: bool = False) -> float:
    """Keras ``ExponentialDecay`` factor at optimiser step ``step``."""
    exponent = step / decay_steps
    return rate ** (math.floor(exponent) if staircase else exponent)


class AutoencoderModule(L.LightningModule):
    """Pretraining of :class:`ConvAutoencoder` on reconstruction (MSE)."""

    def __init__(
        self,
        model: dict[str, Any],
        lr: float = 1.0e-3,
        lr_decay_rate: float = 0.5,
        lr_decay_steps: int = 1000,
        lr_staircase: bool = False,
        channels_last: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = ConvAutoencoder(**model)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        if compile:
            self.model.compile()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.model(x)

    def _loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        x = batch[0]
        return F.mse_loss(self.model(x)[1], x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss = self._loss(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = torch.optim.Adam(self.parameters(), lr=hp.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: exponential_decay(step, hp.lr_decay_rate, hp.lr_decay_steps,
                                           hp.lr_staircase),
        )
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class EpochLog(L.Callback):
    """One concise log line per epoch; a non-finite loss stops the run with InputError.

    The validation check runs before the checkpoint callback saves, so ``last.ckpt`` keeps
    the last good epoch.
    """

    def __init__(self, max_epochs: int) -> None:
        self.max_epochs = max_epochs
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        val = trainer.callback_metrics.get("val_loss")
        if val is not None and not math.isfinite(float(val)):
            raise InputError(f"the autoencoder's validation loss is {float(val)} at epoch "
                             f"{trainer.current_epoch}: lower tremor.pretrain.lr or check the "
                             "spectrograms (the last good checkpoint is kept).")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        seconds = time.perf_counter() - self._start
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        pl_module.log("lr", lr, on_epoch=True)
        pl_module.log("seconds", seconds, on_epoch=True)
        train = float(metrics.get("train_loss", float("nan")))
        if not math.isfinite(train):
            raise InputError(f"the autoencoder's training loss is {train} at epoch "
                             f"{trainer.current_epoch}: lower tremor.pretrain.lr or check the "
                             "spectrograms.")
        log.info("pretrain epoch %d/%d: train %.5f, val %.5f, lr %.3g (%.2f s)",
                 trainer.current_epoch + 1, self.max_epochs, train,
                 float(metrics.get("val_loss", float("nan"))), lr, seconds)


def load_autoencoder(path: str | Path, map_location: str | torch.device = "cpu") -> ConvAutoencoder:
    """The :class:`ConvAutoencoder` of a pretraining (Lightning) or fine-tuning checkpoint."""
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    if "hyper_parameters" in ckpt:  # Lightning checkpoint of AutoencoderModule
        model = ConvAutoencoder(**ckpt["hyper_parameters"]["model"])
        state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()
                 if k.startswith("model.")}
    else:  # fine-tuning checkpoint (seiscluster.tremor.dec.save_checkpoint)
        model = ConvAutoencoder(**ckpt["model_config"])
        state = ckpt["autoencoder"]
    model.load_state_dict({k.replace("_orig_mod.", ""): v for k, v in state.items()})
    return model


class HalfBatchThreads:
    """Maps a function over the two halves of a batch, in two threads on CPU.

    Each thread gets half of torch's intra-op threads (at least one). On a quiet machine
    this is about as fast as OpenMP's intra-op threads over the whole batch; on an
    oversubscribed one OpenMP's team waits for a descheduled thread at every layer and
    slows down several-fold, two independent half batches do not. On CPU the batch is
    halved even on one thread, so results do not depend on the thread count; elsewhere
    (GPU), and for a single sample, it stays whole. Use as a context manager: the thread
    settings are restored on exit.
    """

    def __init__(self, device: torch.device) -> None:
        self.parallel = device.type == "cpu"
        self._threads = torch.get_num_threads()
        self._pool: ThreadPoolExecutor | None = None
        if self.parallel:
            per_half = max(self._threads // 2, 1)
            torch.set_num_threads(per_half)
            if self._threads > 1:
                self._pool = ThreadPoolExecutor(1, initializer=torch.set_num_threads,
                                                initargs=(per_half,))

    def map(self, fn: Callable[[Tensor], Any], batch: Tensor) -> list[Any]:
        """``[fn(half) for half in the halves of batch]``, or ``[fn(batch)]`` (see above)."""
        if not self.parallel or len(batch) < 2:
            return [fn(batch)]
        first, second = batch.tensor_split(2)
        if self._pool is None:
            return [fn(first), fn(second)]
        later = self._pool.submit(fn, second)
        try:
            done = fn(first)
        finally:
            other = later.result()
        return [done, other]

    def __enter__(self) -> HalfBatchThreads:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        torch.set_num_threads(self._threads)


def embed(
    model: ConvAutoencoder, x: Tensor, batch_size: int = EVAL_BATCH, reconstruct: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings (and reconstructions when asked) of all samples, in batches, as numpy."""
    device = next(model.parameters()).device
    with HalfBatchThreads(device) as halves:
        parts = halves.map(lambda part: _embed_part(model, part, batch_size, reconstruct), x)
    z_all = torch.cat([z for z, _ in parts]).numpy()
    return z_all, (torch.cat([r for _, r in parts]).contiguous().numpy() if reconstruct
                   else None)


@torch.inference_mode()
def _embed_part(model: ConvAutoencoder, x: Tensor, batch_size: int,
                reconstruct: bool) -> tuple[Tensor, Tensor | None]:
    device = next(model.parameters()).device
    zs, rs = [], []
    for start in range(0, x.shape[0], batch_size):
        z = model.encode(x[start:start + batch_size].to(device))
        zs.append(z.float().cpu())
        if reconstruct:
            rs.append(model.decode(z).float().cpu())
    return torch.cat(zs), (torch.cat(rs) if reconstruct else None)


def accelerator(trainer: Mapping[str, Any]) -> str:
    """``trainer.accelerator``, refused when it is gpu and torch sees none."""
    if trainer["accelerator"] == "gpu" and not torch.cuda.is_available():
        raise InputError("trainer.accelerator is gpu but torch sees no GPU (a CPU build of "
                         "torch, or no device): use trainer.accelerator=cpu.")
    return trainer["accelerator"]
