"""Run a stage's dask tasks on the scheduler chosen in the ``compute`` config group.

``compute.scheduler`` is ``threads`` (default) or ``processes`` on this machine, with the
rule's threads as workers (at most ``compute.n_workers``); ``synchronous``, one task at a
time in the calling thread (for debugging); or ``distributed``, the workers of a running
``dask.distributed`` scheduler at ``compute.address`` (they must see the same files). Tasks
run with one BLAS/OpenMP thread each, the parallelism being over tasks (dask's
nanny-started workers set ``OMP_NUM_THREADS=1`` and the like by default). The scheduler never
changes a result: every task is a pure function of its inputs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import dask
import dask.local
import dask.threaded
from threadpoolctl import threadpool_limits

from seiscluster.config import ComputeConfig, Scheduler, section
from seiscluster.errors import InputError

log = logging.getLogger(__name__)

#: Seconds to wait for the distributed scheduler at ``compute.address``.
CONNECT_TIMEOUT = 30
#: glibc ``mallopt`` parameters (malloc.h) and the fixed mmap threshold set by
#: :func:`return_freed_memory` (the trim threshold is twice it, as glibc pairs them).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 1 << 20
#: Environment variables by which a user sets glibc's thresholds (left alone when set).
MALLOC_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
#: dask's local schedulers, set as functions: named by a string, dask imports
#: ``dask.distributed`` (0.3 s) on every compute to ask whether a client is active.
LOCAL_SCHEDULERS = {"threads": dask.threaded.get, "synchronous": dask.local.get_sync}


def compute_settings(compute: Mapping[str, Any] | ComputeConfig | None = None) -> ComputeConfig:
    """The checked ``compute`` section (missing keys take the defaults of ComputeConfig)."""
    if isinstance(compute, ComputeConfig):
        compute = asdict(compute)
    values = section("compute", compute)
    return ComputeConfig(**{**values, "scheduler": Scheduler(values["scheduler"])})


@dataclass(frozen=True)
class Session:
    """The scheduler a stage's tasks run on while :func:`dask_scheduler` is open."""

    settings: ComputeConfig
    workers: int
    client: Any = None

    def share(self, obj: Any) -> Any:
        """``obj`` as one input of many tasks: sent once to every worker of a distributed
        cluster, otherwise one node of the task graph (never copied into each task)."""
        if self.client is not None:
            return self.client.scatter(obj, broadcast=True, hash=False)
        return dask.delayed(obj, name=f"shared-{uuid.uuid4().hex}", traverse=False)


def local_workers(settings: ComputeConfig, threads: int) -> int:
    """Local workers: the rule's threads, at most ``compute.n_workers``."""
    threads = max(1, int(threads))
    return threads if settings.n_workers is None else min(threads, settings.n_workers)


@contextlib.contextmanager
def dask_scheduler(
    compute: Mapping[str, Any] | ComputeConfig | None = None, threads: int = 1,
) -> Iterator[Session]:
    """Make the ``compute`` section's scheduler dask's default inside the block.

    ``threads`` is what the rule was given (Snakemake's ``threads``). Everything dask
    computes in the block (``dask.compute``, xarray's ``to_netcdf``/``to_zarr`` of dask
    arrays) runs there. ``processes`` starts a local ``dask.distributed`` cluster of
    single-threaded worker processes for the block (dask's recommended way to use processes
    on one machine: its locks let the workers write one netCDF file); ``distributed``
    connects to the cluster at ``compute.address``. Clients and clusters close at the end.
    """
    settings = compute_settings(compute)
    scheduler = settings.scheduler.value
    if scheduler in ("threads", "synchronous"):
        workers = local_workers(settings, threads)
        log.info("dask: %s scheduler, %d worker(s)", scheduler, workers)
        with threadpool_limits(limits=1), \
                dask.config.set(scheduler=LOCAL_SCHEDULERS[scheduler], num_workers=workers):
            yield Session(settings, workers)
        return
    with contextlib.ExitStack() as stack:
        if scheduler == "processes":
            from distributed import LocalCluster

            cluster = stack.enter_context(LocalCluster(
                n_workers=local_workers(settings, threads), threads_per_worker=1,
                processes=True, dashboard_address=None))
            address = cluster.scheduler_address
        else:
            address = settings.address
        client = stack.enter_context(_client(address))
        workers = sum(client.nthreads().values())
        log.info("dask: %s scheduler at %s, %d worker thread(s)", scheduler, address, workers)
        yield Session(settings, workers, client)


@contextlib.contextmanager
def _client(address: str) -> Iterator[Any]:
    """A distributed client connected to ``address`` (the default scheduler while open)."""
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=True)
    except (OSError, TimeoutError, ValueError) as err:
        raise InputError(
            f"compute.address: no dask scheduler answered at {address!r} within "
            f"{CONNECT_TIMEOUT} s ({type(err).__name__}); start one or fix the address."
        ) from None
    with client:
        yield client


def on_glibc() -> bool:
    """Whether this process runs on the GNU C library (whose malloc takes ``mallopt``)."""
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def return_freed_memory() -> bool:
    """Make glibc's malloc give freed blocks of 1 MiB or more straight back to the OS.

    glibc raises its mmap threshold (up to 32 MiB) whenever a block it had mapped is freed,
    so later arrays below it are carved out of the per-thread heaps, where freed space stays
    resident and fragments. Tasks that allocate and free large arrays in turn (one block of
    days after another) then see their process grow with the number of tasks although their
    live data does not. A fixed threshold (which turns the adjustment off) maps every such
    array on its own and unmaps it when freed; dask.distributed's worker processes get a
    fixed threshold the same way (``MALLOC_TRIM_THRESHOLD_`` in its nanny environment).

    Process-wide, not undone, changes no result. Does nothing (returns False) off glibc or
    where the environment already sets the thresholds (``MALLOC_ENVIRONMENT``).
    """
    if not on_glibc() or any(name in os.environ for name in MALLOC_ENVIRONMENT):
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and libc.mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD))
