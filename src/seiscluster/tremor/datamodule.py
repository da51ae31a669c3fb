"""Spectrogram samples in memory, and the Lightning data module of the pretraining.

A *sample* is what the autoencoder sees: in ``stack`` mode one window with all channels
as input channels, in ``separate`` mode one (window, channel) pair with one input channel.
Samples are numbered in window order (then channel order) and that number is the stable
sample id that batches carry, so that the fine-tuning can look up its target by id.

Batches are cut from one in-memory tensor by index (no per-sample Python work, no worker
processes); the shuffled order of an epoch depends only on (seed, epoch), so a run
resumed from a checkpoint sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import xarray as xr
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from seiscluster.config import section
from seiscluster.errors import InputError
from seiscluster.tremor.autoencoder import EVAL_BATCH


@dataclass
class SpectrogramSamples:
    """The valid samples of a spectrogram stack and where they sit in it.

    ``x`` is ``(n, channels, frequency, time)`` float32; ``window_index`` and
    ``channel_index`` locate each sample in the stack's ``window`` and ``channel``
    coordinates (``channel_index`` is -1 for every sample in ``stack`` mode).
    """

    x: np.ndarray
    mode: str
    windows: np.ndarray
    channels: np.ndarray
    frequency: np.ndarray
    time: np.ndarray
    window_index: np.ndarray
    channel_index: np.ndarray
    attrs: dict

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def window(self) -> np.ndarray:
        """Window start (datetime64[ns]) of each sample."""
        return self.windows[self.window_index]

    @property
    def channel(self) -> np.ndarray | None:
        """Channel code of each sample (``separate`` mode), else None."""
        return None if self.mode == "stack" else self.channels[self.channel_index]

    def to_grid(self, values: np.ndarray, fill: float | int = np.nan) -> np.ndarray:
        """Per-sample ``values`` (n, ...) on the stack's grid: (window[, channel], ...)."""
        values = np.asarray(values)
        if self.mode == "stack":
            shape = (self.windows.size, *values.shape[1:])
            out = np.full(shape, fill, dtype=np.result_type(values.dtype, np.asarray(fill)))
            out[self.window_index] = values
        else:
            shape = (self.windows.size, self.channels.size, *values.shape[1:])
            out = np.full(shape, fill, dtype=np.result_type(values.dtype, np.asarray(fill)))
            out[self.window_index, self.channel_index] = values
        return out

    def grid_dims(self) -> tuple[str, ...]:
        """Leading dimension names of :meth:`to_grid` arrays."""
        return ("window",) if self.mode == "stack" else ("window", "channel")

    def grid_coords(self) -> dict[str, np.ndarray]:
        """Coordinates of the leading dimensions of :meth:`to_grid` arrays."""
        coords = {"window": self.windows}
        if self.mode == "separate":
            coords["channel"] = self.channels
        return coords


def load_samples(path: str | Path, mode: str = "stack") -> SpectrogramSamples:
    """Read the valid samples of a spectrogram stack (Zarr) into memory.

    Raises :class:`InputError` when the store lacks the contract's variables, holds no
    valid sample, or a valid sample has NaN or infinite values.
    """
    mode = section("tremor.preprocess", {"channels": mode})["channels"]
    try:
        ds = xr.open_zarr(path)
    except Exception as err:  # any failure to open: a bad input file
        raise InputError(f"{path} is not a readable spectrogram stack (Zarr): {err}") from err
    with ds:
        missing = [v for v in ("spectrogram", "valid") if v not in ds]
        if missing:
            raise InputError(f"{path} lacks the variable(s) {missing} of a spectrogram stack.")
        spec = ds["spectrogram"].transpose("window", "channel", "frequency", "time")
        valid = ds["valid"].transpose("window", "channel").values.astype(bool)
        windows = ds["window"].values
        channels = ds["channel"].values.astype(str)
        frequency, time = ds["frequency"].values, ds["time"].values
        attrs = dict(ds.attrs)
        if mode == "stack":
            keep = np.flatnonzero(valid.all(axis=1))
            x = spec.isel(window=keep).values if keep.size else np.empty((0,))
            window_index, channel_index = keep, np.full(keep.size, -1)
        else:
            window_index, channel_index = np.nonzero(valid)
            data = spec.values if window_index.size else np.empty((0, 0))
            x = data[window_index, channel_index][:, None] if window_index.size else data
    if window_index.size == 0:
        raise InputError(f"{path} holds no valid spectrogram (every window is invalid "
                         "or the stack is empty).")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        c = channel_index[b] if channel_index[b] >= 0 else np.flatnonzero(
            ~np.isfinite(x[b]).reshape(x.shape[1], -1).all(axis=1))[0]
        raise InputError(f"{path} has NaN or infinite values in {int(bad.sum())} spectrogram(s) "
                         f"marked valid, the first in window "
                         f"{np.datetime_as_string(windows[window_index[b]], unit='s')} of "
                         f"{channels[c]}; recompute the spectrograms.")
    return SpectrogramSamples(
        x=x, mode=mode, windows=windows, channels=channels, frequency=frequency, time=time,
        window_index=np.asarray(window_index, dtype=np.int64),
        channel_index=np.asarray(channel_index, dtype=np.int64), attrs=attrs,
    )


class EpochBatchSampler(Sampler[Tensor]):
    """Index batches of ``range(n)``; the shuffled order depends on (seed, epoch) only."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        order = torch.from_numpy(order)
        yield from torch.split(order, self.batch_size)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)


class TensorBatches(Dataset):
    """``dataset[index_tensor]`` -> ``(x[index], sample_id[index])``: one gather per batch."""

    def __init__(self, x: Tensor, ids: Tensor) -> None:
        self.x, self.ids = x, ids

    def __getitem__(self, index: Tensor) -> tuple[Tensor, Tensor]:
        return self.x[index], self.ids[index]

    def __len__(self) -> int:
        return int(self.x.shape[0])


def batch_loader(
    x: Tensor, ids: Tensor, batch_size: int, *, shuffle: bool, seed: int = 0
) -> DataLoader:
    """A DataLoader of whole batches cut from ``x`` (no workers, no collation)."""
    sampler = EpochBatchSampler(int(x.shape[0]), batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(TensorBatches(x, ids), batch_size=None, sampler=sampler, num_workers=0)


def as_tensor(x: np.ndarray | Tensor, channels_last: bool = True) -> Tensor:
    """float32 tensor of samples, channels-last when asked (no copy when possible)."""
    t = torch.as_tensor(x, dtype=torch.float32)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t.contiguous()


class SpectrogramDataModule(L.LightningDataModule):
    """Seeded train/validation split of the samples (``train_test_split``, as the reference).

    Parameters
    ----------
    x:
        ``(n, channels, height, width)`` samples.
    val_fraction, split_seed:
        ``tremor.pretrain.val_fraction`` and ``tremor.pretrain.split_seed`` (46: the
        reference notebook's split).
    seed:
        Seed of the per-epoch shuffling of the training batches.
    """

    def __init__(
        self,
        x: np.ndarray | Tensor,
        *,
        batch_size: int = 32,
        val_fraction: float = 0.2,
        split_seed: int = 46,
        seed: int = 0,
        channels_last: bool = True,
        eval_batch_size: int = EVAL_BATCH,
    ) -> None:
        super().__init__()
        self.x = as_tensor(x, channels_last)
        self.ids = torch.arange(self.x.shape[0])
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.split_seed, self.seed = val_fraction, split_seed, seed
        self.train_ids, self.val_ids = split_ids(self.x.shape[0], val_fraction, split_seed)

    def train_dataloader(self) -> DataLoader:
        return batch_loader(self.x[self.train_ids], self.train_ids, self.batch_size,
                            shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader:
        return batch_loader(self.x[self.val_ids], self.val_ids, self.eval_batch_size,
                            shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return batch_loader(self.x, self.ids, self.eval_batch_size, shuffle=False)


def split_ids(n: int, val_fraction: float, split_seed: int) -> tuple[Tensor, Tensor]:
    """Training and validation sample ids, shuffled as sklearn's ``train_test_split``."""
    if n < 2:
        raise InputError(f"pretraining needs at least 2 spectrogram samples, got {n}.")
    try:
        train, val = train_test_split(np.arange(n), test_size=val_fraction,
                                      random_state=split_seed, shuffle=True)
    except ValueError as err:
        raise InputError(f"tremor.pretrain.val_fraction ({val_fraction}) leaves no training "
                         f"or no validation sample of the {n} samples: {err}") from err
    return torch.from_numpy(np.asarray(train)), torch.from_numpy(np.asarray(val))
