"""Autoencoder pretraining on shared cores: seconds per epoch without and with a competing load.

    python bench/loaded.py [--epochs 4] [--windows 268] [--variants default passive ...]

Each variant trains the pretraining autoencoder (:class:`seiscluster.tremor.autoencoder.
ConvAutoencoder`, the default 96 x 128 input, batch 32, Adam, MSE) on ``--windows`` random
spectrograms for ``--epochs`` epochs in a fresh process, once on a quiet machine and once
beside a competing load: another process running two BLAS threads of matrix products
(another 2-thread Snakemake job). It prints the median seconds per epoch (first epoch
dropped) and the slow-down under load. Variants:

- ``default``: torch with ``--threads`` threads (the rule's threads), the environment as is;
- ``passive``: the same with ``OMP_WAIT_POLICY=PASSIVE`` (threads waiting at the end of a
  parallel region sleep instead of spinning), what workflow/scripts/stage.py sets for every
  stage (unless the environment sets it);
- ``one``: one torch thread (changes the rounding; for scale).

Timings on a shared machine vary: compare within one run (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
import numpy as np
import torch
import torch.nn.functional as F
from seiscluster.tremor.autoencoder import ConvAutoencoder
threads, epochs, windows = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
x = torch.from_numpy(np.random.default_rng(0).normal(size=(windows, 1, 96, 128)).astype("f4"))
model = ConvAutoencoder(input_shape=(1, 96, 128))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
times = []
for _ in range(epochs):
    start = time.perf_counter()
    for i in range(0, windows, 32):
        batch = x[i:i + 32]
        loss = F.mse_loss(model(batch)[1], batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""

LOAD = r"""
import numpy as np
a = np.random.default_rng(0).normal(size=(1500, 1500))
while True:
    a = a @ a
    a /= np.abs(a).max()
"""

VARIANTS = {
    "default": ({}, None),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
    "one": ({}, 1),
}


def epoch_seconds(env: dict[str, str], threads: int, args: argparse.Namespace) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(args.epochs),
                          str(args.windows)], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    times = json.loads(out.stdout.strip().splitlines()[-1])
    return statistics.median(times[1:] if len(times) > 1 else times)


def load() -> str:
    return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--windows", type=int, default=268)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.windows} windows, {args.epochs} epochs; {load()}")
    print(f"{'variant':<10} {'quiet s/epoch':>14} {'loaded s/epoch':>15} {'slow-down':>10}")
    for name in args.variants:
        env, threads = VARIANTS[name]
        threads = threads or args.threads
        quiet = epoch_seconds(env, threads, args)
        competitor = subprocess.Popen([sys.executable, "-c", LOAD], env={
            **os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2",
            "MKL_NUM_THREADS": "2"})
        try:
            time.sleep(1.0)
            loaded = epoch_seconds(env, threads, args)
        finally:
            competitor.kill()
            competitor.wait()
        print(f"{name:<10} {quiet:14.2f} {loaded:15.2f} {loaded / quiet:9.1f}x   ({load()})",
              flush=True)


if __name__ == "__main__":
    main()
