"""Keras/TensorFlow reference side of ``bench/dec_speed.py`` (run under a TensorFlow Python).

    /work/tfvenv/bin/python bench/dec_speed_keras.py --data windows.npy [--threads 2]
                                                     [--epochs 4] [--iters 1000] [--repeat 1]

The ClusTremor notebook's model and loops (REFERENCE.md part B) in Keras 3: the
convolutional autoencoder (four stride-2 'same' convolutions 8-16-32-64, kernels (7,5),
(5,3), (5,3), (5,3), ELU, dense 24-d ELU embedding, mirrored transposed-convolution
decoder), pretrained with Adam and exponential decay on MSE (batch 32, 80/20 split), and
DEC as in DEC-keras: a Student's t clustering layer on the embedding, SGD(0.01, 0.9) on
0.1 x KL, ``train_on_batch`` on consecutive batches of 32 and ``predict`` of the whole data
every ``update_interval`` (200) batches, plus the final ``predict`` for the labels.
Only numpy and TensorFlow are imported (the project's venv has no TensorFlow). The last
line printed is a JSON object of the timings (seconds) that ``dec_speed.py --keras`` reads.
The initial centres are k samples' embeddings: they change values, not the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

CHANNELS = [8, 16, 32, 64]
KERNELS = [(7, 5), (5, 3), (5, 3), (5, 3)]
LATENT = 24


class ClusteringLayer(layers.Layer):
    """Student's t soft assignment of the embedding to trainable centres (DEC-keras)."""

    def __init__(self, n_clusters: int, alpha: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_clusters, self.alpha = n_clusters, alpha

    def build(self, input_shape) -> None:
        self.clusters = self.add_weight(shape=(self.n_clusters, input_shape[-1]),
                                        initializer="glorot_uniform", name="clusters")

    def call(self, z):
        d2 = ops.sum(ops.square(ops.expand_dims(z, 1) - self.clusters), axis=2)
        q = (1.0 + d2 / self.alpha) ** (-(self.alpha + 1.0) / 2.0)
        return q / ops.sum(q, axis=1, keepdims=True)


def autoencoder(shape: tuple[int, int, int]) -> tuple[keras.Model, keras.Model]:
    """The reference autoencoder and its encoder (input ``(height, width, 1)``)."""
    inp = keras.Input(shape)
    h = inp
    for c, k in zip(CHANNELS, KERNELS, strict=True):
        h = layers.Conv2D(c, k, strides=2, padding="same", activation="elu")(h)
    flat_shape = tuple(h.shape[1:])
    z = layers.Dense(LATENT, activation="elu", name="embedding")(layers.Flatten()(h))
    h = layers.Dense(int(np.prod(flat_shape)), activation="elu")(z)
    h = layers.Reshape(flat_shape)(h)
    for c, k in zip(CHANNELS[-2::-1], KERNELS[:0:-1], strict=True):
        h = layers.Conv2DTranspose(c, k, strides=2, padding="same", activation="elu")(h)
    out = layers.Conv2DTranspose(shape[-1], KERNELS[0], strides=2, padding="same")(h)
    return keras.Model(inp, out), keras.Model(inp, z)


def target_distribution(q: np.ndarray) -> np.ndarray:
    weight = q**2 / q.sum(0)
    return (weight.T / weight.sum(1)).T


def pretrain_epochs(ae: keras.Model, x: np.ndarray, epochs: int) -> list[float]:
    """Seconds of each pretraining epoch (80/20 split, batch 32, Adam with decay)."""
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    order = np.random.default_rng(46).permutation(len(x))
    n_train = round(0.8 * len(x))
    train, val = x[order[:n_train]], x[order[n_train:]]
    lr = keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=1000, decay_rate=0.5)
    ae.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    ae.fit(train, train, batch_size=32, epochs=epochs, validation_data=(val, val),
           shuffle=True, verbose=0, callbacks=[Timer()])
    return times


def dec_seconds(encoder: keras.Model, x: np.ndarray, n_clusters: int, iters: int,
                interval: int = 200, batch_size: int = 32) -> float:
    """Seconds of ``iters`` DEC batches with their target updates (DEC-keras loop)."""
    start = time.perf_counter()
    clustering = ClusteringLayer(n_clusters, name="clustering")
    model = keras.Model(encoder.input, clustering(encoder.output))
    z = encoder.predict(x, verbose=0)
    pick = np.random.default_rng(0).choice(len(x), n_clusters, replace=False)
    clustering.set_weights([z[pick]])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="kld",
                  loss_weights=[0.1])
    index, p = 0, None
    for ite in range(iters):
        if ite % interval == 0:
            p = target_distribution(model.predict(x, verbose=0))
        rows = slice(index * batch_size, min((index + 1) * batch_size, len(x)))
        model.train_on_batch(x[rows], p[rows])
        index = index + 1 if (index + 1) * batch_size <= len(x) else 0
    model.predict(x, verbose=0).argmax(1)  # the final labels
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help=".npy of windows (n, 1, height, width)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4, help="pretraining epochs (0: none)")
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--clusters", type=int, default=6)
    args = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)
    x = np.load(args.data).transpose(0, 2, 3, 1).copy()  # channels last, as Keras
    print(f"Keras {keras.__version__}, TensorFlow {tf.__version__}, {args.threads} threads")
    ae, encoder = autoencoder(x.shape[1:])
    results = {}
    if args.epochs > 0:
        times = pretrain_epochs(ae, x, args.epochs)
        print("Keras pretrain epochs (s): " + ", ".join(f"{t:.2f}" for t in times))
        results["pretrain epoch"] = statistics.median(times[1:] or times)
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        encoder.predict(x, batch_size=64, verbose=0)
        best = min(best, time.perf_counter() - start)
    results["embed all windows"] = best
    dec = []
    for _ in range(args.repeat):
        dec.append(dec_seconds(encoder, x, args.clusters, args.iters))
        print(f"Keras DEC: {args.iters} iterations, {dec[-1]:.2f} s")
    results["1000 DEC iterations"] = min(dec) * 1000 / args.iters
    print(json.dumps(results))


if __name__ == "__main__":
    main()
