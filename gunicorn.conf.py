"""gunicorn settings for CPU-bound rendering.

One sync worker per core (rendering is CPU-bound and holds the GIL, so threads would not add
throughput), the app preloaded in the master so the catalog's feature tables are read once and
shared copy-on-write by the workers. Raster handles are opened lazily per worker, after fork.
"""

import multiprocessing
import os

bind = os.environ.get("MAPSERVER_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("MAPSERVER_WORKERS", multiprocessing.cpu_count()))
worker_class = "sync"
preload_app = True
timeout = 120
graceful_timeout = 30
max_requests = 2000
max_requests_jitter = 200
accesslog = os.environ.get("MAPSERVER_ACCESSLOG") or None


def post_worker_init(worker) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Start the batch-export dispatcher in every worker after fork (threads and SQLite
    connections must not cross fork), so queued or interrupted exports resume at boot rather
    than on the first jobs request."""
    from mapserver.rest.jobs import install

    install(worker.wsgi)
