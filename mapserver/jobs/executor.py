"""Where shards run: a pool of local worker processes (default) or a Dask distributed cluster
when ``MAPSERVER_DASK_SCHEDULER`` is set. Both expose ``submit`` returning futures that
:func:`as_completed` understands, so the dispatcher does not care which one it has.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures as cf
from typing import Any


class LocalExecutor:
    """A process pool. ``forkserver`` children start from a clean, preloaded server process, so
    they never inherit the web process's threads, locks or GDAL handles."""

    def __init__(self, workers: int) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mapserver.jobs.shards"])
        self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        self.workers = workers

    def submit(self, fn: Callable, *args: Any) -> cf.Future:
        return self.pool.submit(fn, *args)

    def as_completed(self, futs: Iterable, timeout: float) -> Iterator:
        try:
            yield from cf.as_completed(list(futs), timeout=timeout)
        except cf.TimeoutError:
            return

    def cancel(self, futs: Iterable) -> None:
        for f in futs:
            f.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Shards as Dask tasks on an existing scheduler (workers must see the same data and staging
    directories, e.g. the same machine or a shared filesystem)."""

    def __init__(self, address: str) -> None:
        from distributed import Client

        self.client = Client(address, set_as_default=False)

    def submit(self, fn: Callable, *args: Any):
        return self.client.submit(fn, *args, pure=False)

    def as_completed(self, futs: Iterable, timeout: float) -> Iterator:
        # distributed.wait/as_completed want a default client; we keep ours private, so poll
        futs = list(futs)
        end = time.monotonic() + timeout
        while futs:
            done = [f for f in futs if f.done()]
            if done or time.monotonic() >= end:
                yield from done
                return
            time.sleep(0.02)

    def cancel(self, futs: Iterable) -> None:
        futs = list(futs)
        if futs:
            self.client.cancel(futs)

    def close(self) -> None:
        self.client.close()


def make_executor(workers: int, scheduler: str | None):
    return DaskExecutor(scheduler) if scheduler else LocalExecutor(workers)
