"""Where shards run: a pool of local worker processes (default) or a Dask distributed cluster
when ``MAPSERVER_DASK_SCHEDULER`` is set. Both expose ``submit`` returning futures that
:func:`as_completed` understands, so the dispatcher does not care which one it has.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures as cf
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger(__name__)


def worker_lost(exc: BaseException) -> bool:
    """The shard did not fail: the process running it died (SIGKILL, OOM killer, a result or
    error that could not be sent back). Such shards are retried on a fresh pool."""
    return isinstance(exc, BrokenProcessPool)


class LocalExecutor:
    """A process pool. ``forkserver`` children start from a clean, preloaded server process, so
    they never inherit the web process's threads, locks or GDAL handles.

    A pool whose child died is broken for good (every later submit would fail at once), so
    :meth:`submit` replaces a broken pool with a new one: one lost child never fails later
    operations."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mapserver.jobs.shards"])
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)

    @property
    def broken(self) -> bool:
        return bool(getattr(self.pool, "_broken", False))

    def renew_if_broken(self) -> None:
        if self.broken:
            log.warning("shard pool broken (a worker process died); starting a new one")
            old, self.pool = self.pool, self._new_pool()
            old.shutdown(wait=False, cancel_futures=True)

    def submit(self, fn: Callable, *args: Any) -> cf.Future:
        self.renew_if_broken()
        try:
            return self.pool.submit(fn, *args)
        except BrokenProcessPool:  # broke between the check and the submit
            self.renew_if_broken()
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
        from mapserver.jobs.extras import DASK, require

        require(*DASK)  # the batch extra
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
