"""Speed of the deep clustering on 2,390 synthetic 96 x 128 windows (the ClusTremor size).

    python bench/dec_speed.py [--threads 2] [--epochs 4] [--iters 1000] [--compile]
                              [--no-channels-last] [--precision 32-true] [--repeat 1]
                              [--only-dec]
                              [--keras [--keras-python /work/tfvenv/bin/python]]
                              [--profile]

Measures, with the reference architecture and settings: one pretraining epoch through
the Lightning Trainer (1,912 training + 478 validation windows, batch 32), 1,000 DEC
iterations (batch 32; whole-data target updates every 200, at 0, 200, ..., 800, and the
final prediction at 1,000), embedding every window, and the k-means scan k = 2..15 with
n_init = 20. The stored reference figures (from the issue) are printed beside them.
``--keras`` measures the reference in the same run instead, and its ratios are the ones to
quote (the stored 21 s for 1,000 DEC iterations is about twice what Keras takes on this
machine when it is quiet): it runs ``bench/dec_speed_keras.py`` (the notebook's model and
loops in Keras) under a Python with TensorFlow (``--keras-python``, a separate venv: the
project's has no TensorFlow) on the same windows. ``--only-dec`` skips the pretraining
and k-scan measurements; ``--profile`` prints where the CPU time of the DEC iterations
goes instead (one thread, by kind of operation), then the floor that the encoder's
convolution and ELU kernels alone set (timed one by one, caches warm). Timings vary with
other load on the machine: ``--repeat`` keeps the best of several runs of the DEC and
embedding measurements (on both sides).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch

from seiscluster.config import DecConfig
from seiscluster.tremor.autoencoder import AutoencoderModule, ConvAutoencoder, embed
from seiscluster.tremor.datamodule import SpectrogramDataModule, as_tensor
from seiscluster.tremor.dec import fit_dec
from seiscluster.tremor.kscan import fit_kmeans, kscan

REFERENCE = {"pretrain epoch": 5.0, "1000 DEC iterations": 21.0, "embed all windows": 1.1,
             "k scan 2..15 (n_init 20)": 88.0}
TARGET = {"pretrain epoch": 2.5, "1000 DEC iterations": 7.0, "embed all windows": 1.1,
          "k scan 2..15 (n_init 20)": 9.0}
MODEL = dict(channels=[8, 16, 32, 64], kernels=[[7, 5], [5, 3], [5, 3], [5, 3]],
             strides=[2, 2, 2, 2], latent_dim=24, activation="elu")


def synthetic_windows(n: int = 2390, shape: tuple[int, int] = (96, 128), seed: int = 0):
    """Log-power-like spectrograms of four regimes (bands, broadband bursts) plus noise."""
    rng = np.random.default_rng(seed)
    nf, nt = shape
    f = np.linspace(0, 1, nf)[:, None]
    t = np.linspace(0, 1, nt)[None, :]
    regime = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 1, nf, nt)).astype(np.float32)
    for i in range(n):
        r = regime[i]
        if r == 1:
            x[i, 0] += np.exp(-0.5 * ((f - rng.uniform(0.3, 0.5)) / 0.03) ** 2)
        elif r == 2:
            x[i, 0] += 0.8 * np.exp(-0.5 * ((f - 0.7) / 0.15) ** 2) * (np.sin(20 * t) > 0)
        elif r == 3:
            x[i, 0] += (rng.random(nt) < 0.05)[None, :] * 2.0 * np.exp(-2 * f)
    return x, regime


def dec_settings(iters: int) -> dict[str, float]:
    """``tremor.dec`` of the measurements: ``iters`` iterations, no early stop."""
    return {"maxiter": iters, "tol": 0.0, "update_interval": 200}


def copy_of(ae: ConvAutoencoder) -> ConvAutoencoder:
    """A fresh autoencoder with ``ae``'s weights (fit_dec trains its model in place)."""
    model = ConvAutoencoder(**ae.config())
    model.load_state_dict(ae.state_dict())
    return model


def bench_pretrain(x: np.ndarray, epochs: int, cl: bool, args: argparse.Namespace,
                   root: str) -> list:
    times: list[float] = []

    class Timer(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.t = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            times.append(time.perf_counter() - self.t)

    dm = SpectrogramDataModule(x, batch_size=32, val_fraction=0.2, split_seed=46,
                               channels_last=cl)
    module = AutoencoderModule(model={"input_shape": list(x.shape[1:]), **MODEL},
                               channels_last=cl, compile=args.compile)
    trainer = L.Trainer(accelerator="cpu", devices=1, precision=args.precision,
                        max_epochs=epochs, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[Timer()], default_root_dir=root, deterministic=True,
                        use_distributed_sampler=False)
    trainer.fit(module, datamodule=dm)
    return times


def bench_dec(x: np.ndarray, args: argparse.Namespace, cl: bool) -> dict[str, float]:
    """Embedding, k scan (unless ``--only-dec``) and DEC timings of the seiscluster code."""
    results: dict[str, float] = {}
    torch.manual_seed(0)
    ae = ConvAutoencoder(x.shape[1:], **MODEL)
    if cl:
        ae.to(memory_format=torch.channels_last)
    xt = as_tensor(x, cl)
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        z, _ = embed(ae.eval(), xt)
        best = min(best, time.perf_counter() - start)
    results["embed all windows"] = best
    if args.only_dec:
        fit = fit_kmeans(z, 6, n_init=1, seed=0)
    else:
        start = time.perf_counter()
        res = kscan(z, k_min=2, k_max=15, n_init=20, seed=0, n_jobs=args.threads)
        results["k scan 2..15 (n_init 20)"] = time.perf_counter() - start
        print(f"k scan: {res.message}")
        fit = res.fits[4]
    best = float("inf")
    for _ in range(args.repeat):
        out = fit_dec(copy_of(ae), xt, fit.centres, fit.labels, dec=dec_settings(args.iters),
                      trainer={"channels_last": cl, "compile": args.compile,
                               "precision": args.precision}, seed=0)
        best = min(best, out.seconds)
        print(f"DEC: {out.n_iter} iterations, {len(out.history)} target updates "
              f"(whole-data passes), {out.seconds:.2f} s")
    results["1000 DEC iterations"] = best * 1000 / args.iters
    return results


#: Kinds of operations in the DEC profile, by the aten operator's name.
KINDS = {"aten::mkldnn_convolution": "convolution forward",
         "aten::convolution_backward": "convolution backward",
         "aten::elu_": "ELU forward", "aten::elu": "ELU forward",
         "aten::elu_backward": "ELU backward"}


def profile_dec(x: np.ndarray, args: argparse.Namespace) -> None:
    """CPU time of ``--iters`` DEC iterations on one thread, by kind of operation.

    On one thread the two half batches run one after the other in the main thread, so
    the profiler sees all the work; the kinds' shares of the profiler's self times are
    applied to the measured thread time (the profiler's own overhead inflates small ops).
    Half the CPU time is what two perfectly parallel threads would take.
    """
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ae = ConvAutoencoder(x.shape[1:], **MODEL)
    xt = as_tensor(x, True)
    fit = fit_kmeans(embed(ae.to(memory_format=torch.channels_last).eval(), xt)[0], 6,
                     n_init=1, seed=0)
    dec = dec_settings(args.iters)
    start = time.thread_time()
    fit_dec(copy_of(ae), xt, fit.centres, fit.labels, dec=dec, seed=0)
    cpu = time.thread_time() - start
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit_dec(copy_of(ae), xt, fit.centres, fit.labels, dec=dec, seed=0)
    kinds: dict[str, float] = {}
    for event in prof.key_averages():
        kind = KINDS.get(event.key, "everything else")
        kinds[kind] = kinds.get(kind, 0.0) + event.self_cpu_time_total
    total = sum(kinds.values())
    print(f"\nDEC, {args.iters} iterations on one thread: {cpu:.2f} s CPU "
          f"(/ 2 threads = {cpu / 2:.2f} s)")
    for kind, t in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:22s} {100 * t / total:5.1f}%  {cpu * t / total:6.2f} s")
    kernel_floor(ae, len(x), args.iters, dec["update_interval"], DecConfig().batch_size)


def best_ms(fn, repeat: int = 5, number: int = 100) -> float:
    """Best mean milliseconds of ``number`` calls of ``fn`` (after a warm-up)."""
    for _ in range(10):
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e3


def layer_ms(conv: torch.nn.Conv2d, h: torch.Tensor, input_grad: bool
             ) -> tuple[tuple[float, ...], torch.Tensor]:
    """Milliseconds of one encoder layer's kernels on ``h``, and its activated output."""
    w, b = conv.weight.detach(), conv.bias.detach()
    args = (list(conv.stride), list(conv.padding), list(conv.dilation), False, [0, 0], 1)
    out = conv(h).detach()
    grad = torch.randn_like(out)
    times = (
        best_ms(lambda: torch.ops.aten.convolution(h, w, b, *args)),
        best_ms(lambda: torch.ops.aten.convolution_backward(
            grad, h, w, [w.shape[0]], *args, [input_grad, True, True])),
        best_ms(lambda: torch.nn.functional.elu(out)),
        best_ms(lambda: torch.ops.aten.elu_backward(grad, 1.0, 1.0, 1.0, True, out)),
    )
    return times, torch.nn.functional.elu(out)


def kernel_floor(ae: ConvAutoencoder, n: int, iters: int, interval: int, batch: int) -> None:
    """What the encoder's convolutions and ELUs alone cost, kernel by kernel.

    Each kernel is timed on its own, on one thread, on a half batch (what one of the two
    threads computes), over and over on the same arrays (caches warm, no framework
    overhead): DEC's forward, its backward (input gradient of every layer but the first,
    weight and bias gradients) and the target updates' forward passes of all ``n``
    windows. With the two halves of every batch, and of the updates, on two threads in
    perfect parallel, this is a lower bound for the DEC iterations as this model and
    PyTorch's CPU kernels compute them.
    """
    half = batch // 2
    h = torch.randn(half, *ae.input_shape).contiguous(memory_format=torch.channels_last)
    train = update = 0.0
    print(f"\nthe encoder's kernels alone, one thread, a half batch of {half} (ms):")
    for i, conv in enumerate(ae.encoder_convs):
        (fwd, bwd, elu, elu_bwd), out = layer_ms(conv, h, input_grad=i > 0)
        print(f"  layer {i + 1} {tuple(h.shape[1:])} -> {tuple(out.shape[1:])}: convolution "
              f"{fwd:.3f} forward, {bwd:.3f} backward; ELU {elu:.3f} forward, "
              f"{elu_bwd:.3f} backward")
        train += fwd + bwd + elu + elu_bwd
        update += fwd + elu
        h = out
    passes = math.ceil(iters / interval) + 1  # as fit_dec: at 0, interval, ... and at iters
    seconds = (iters * train + passes * update * n / half / 2) / 1e3
    print(f"{iters} DEC iterations ({passes} target updates) from these kernels alone, two "
          f"threads in perfect parallel: {seconds:.2f} s")


def bench_keras(x: np.ndarray, args: argparse.Namespace) -> dict[str, float]:
    """The Keras reference on the same windows, in a subprocess under ``--keras-python``."""
    script = Path(__file__).with_name("dec_speed_keras.py")
    with tempfile.TemporaryDirectory() as root:
        data = Path(root) / "windows.npy"
        np.save(data, x)
        cmd = [args.keras_python, str(script), "--data", str(data), "--threads",
               str(args.threads), "--epochs", str(0 if args.only_dec else args.epochs),
               "--iters", str(args.iters),
               "--repeat", str(args.repeat)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the Keras reference failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    lines = done.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--precision", default="32-true",
                    help="Lightning precision of pretraining and DEC (e.g. bf16-mixed)")
    ap.add_argument("--only-dec", action="store_true",
                    help="measure the embedding and DEC only (no pretraining, no k scan)")
    ap.add_argument("--keras", action="store_true",
                    help="measure the Keras/TensorFlow reference in the same run")
    ap.add_argument("--keras-python", default="/work/tfvenv/bin/python",
                    help="a Python with tensorflow (for --keras)")
    ap.add_argument("--profile", action="store_true",
                    help="only the CPU time of the DEC iterations on one thread, by operation")
    args = ap.parse_args()
    if args.keras and not Path(args.keras_python).is_file():  # before minutes of timing
        sys.exit(f"--keras-python {args.keras_python} does not exist: give a Python with "
                 "tensorflow (a separate venv: pip install tensorflow-cpu).")
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    cl = not args.no_channels_last
    x, _ = synthetic_windows()
    if args.profile:
        profile_dec(x, args)
        return
    print(f"{x.shape[0]} windows of {x.shape[2]} x {x.shape[3]}, {args.threads} threads, "
          f"channels_last={cl}, compile={args.compile}, precision={args.precision}, "
          f"torch {torch.__version__}")
    results: dict[str, float] = {}
    if not args.only_dec:
        with tempfile.TemporaryDirectory() as root:
            L.seed_everything(0, verbose=False)
            times = bench_pretrain(x, args.epochs, cl, args, root)
        print("pretrain epochs (s): " + ", ".join(f"{t:.2f}" for t in times))
        results["pretrain epoch"] = statistics.median(times[1:] or times)
    results.update(bench_dec(x, args, cl))
    reference, source = REFERENCE, "reference"
    if args.keras:
        reference, source = bench_keras(x, args), "Keras now"
    print(f"\n{'measure':28s} {'seiscluster':>12s} {'target':>8s} {source:>10s} {'speed-up':>9s}")
    for name, value in results.items():
        ref = reference.get(name, REFERENCE[name])
        note = "" if name in reference else "  (stored reference figure)"
        print(f"{name:28s} {value:11.2f}s {TARGET[name]:7.1f}s {ref:9.2f}s {ref / value:8.2f}x"
              f"{note}")


if __name__ == "__main__":
    main()
