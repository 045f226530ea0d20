"""gunicorn settings and server hooks (README "Serving"), as a module of the package.

They live here, not in a file at the clone's root, so that ``mapserver serve`` (which loads
this module through gunicorn's Python API) behaves the same installed non-editable and from
any directory; ``gunicorn.conf.py`` at the root only imports this module, for
``gunicorn wsgi:app`` from the clone and the bench. Every value is read from the environment
when the module is imported, so set ``MAPSERVER_*`` first (``mapserver serve`` does).

To extend: add a module-level name that is a gunicorn setting (hooks are plain functions named
after the gunicorn hook, e.g. ``child_exit``); both entry points pick up every such name, and
nothing else (no ``__all__``, so ``from … import *`` in gunicorn.conf.py sees them all).

gthread workers, one process per core: each request is a thread, so metadata (``f=json``),
tokens, the health check, the jobs API and ``:wait`` calls answer while a worker renders.
Renders stay one at a time per process (``mapserver.serving.render_slot``: rendering is
CPU-bound under the GIL, and GDAL handles and pyproj transformers are per process), and at
most ``MAPSERVER_WAIT_SLOTS`` ``:wait`` calls block per process. The app is preloaded in the
master so the catalog's feature tables are read once and shared copy-on-write by the workers;
raster handles are opened lazily per worker, after fork.

The worker class is gthread plus JSON error pages and request lines up to
``MAPSERVER_MAX_URL_LENGTH`` (gunicorn's own cap is 8190 bytes). In production put the nginx
site in ``deploy/nginx/mapserver.conf`` in front: it buffers slow clients (request bodies and
responses), so they never hold a worker thread.
"""

import multiprocessing
import os

from mapserver import conn_shares as _shares
from mapserver.observe import multiproc as _metrics

# /metrics across workers (prometheus_client's multiprocess mode, observe/multiproc.py): the
# directory must be in the environment before the app (and prometheus_client) is preloaded
_metrics.prepare()

bind = os.environ.get("MAPSERVER_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("MAPSERVER_WORKERS", multiprocessing.cpu_count()))
worker_class = "mapserver.gunicorn_worker.ThreadWorker"
threads = max(1, int(os.environ.get("MAPSERVER_THREADS", 4)))
# keep-alive connections count against this; a worker accepting far more than it can serve
# would queue renders behind its render slot while another worker idles
worker_connections = threads * 16
keepalive = 5
preload_app = True
timeout = 120
graceful_timeout = 30
max_requests = 2000
max_requests_jitter = 200
# request lines: raised to MAPSERVER_MAX_URL_LENGTH by the worker class; header fields (e.g. a
# long Referer from a page whose own URL is long) up to 16 KB
limit_request_field_size = 16384
# a file, or "-" for stdout; unset: no access log
accesslog = os.environ.get("MAPSERVER_ACCESSLOG") or None
# combined log format plus the duration in ms and the request id (observe/access.py), which
# ties a line to the app's JSON log lines. The request line holds the query string, tokens
# included: keep this file private (the app's access line drops them)
access_log_format = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" '
                     '%(M)sms %({x-request-id}o)s')
# behind nginx (deploy/nginx/mapserver.conf) on the same host: trust its X-Forwarded-* headers
# (the app itself applies them when MAPSERVER_PROXIES is set)
forwarded_allow_ips = os.environ.get("MAPSERVER_FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn ≥ 25.1's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): a
# second server on the host would take it over from the first (and remove it when it stops).
# Manage the server with signals (TERM, HUP, TTIN/TTOU) instead; older gunicorns ignore this.
control_socket_disable = True


def post_worker_init(worker) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Start the batch-export dispatcher in every worker after fork (threads and SQLite
    connections must not cross fork), so queued or interrupted exports resume at boot rather
    than on the first jobs request. Not when the batch API is switched off. First, the
    worker's request threads draw a small map of each service (mapserver/warmup.py)."""
    from mapserver.warmup import warm_worker

    warm_worker(worker)
    if os.environ.get("MAPSERVER_JOBS_API", "on").strip().lower() in ("off", "0", "false",
                                                                       "no"):
        return
    from mapserver.rest.jobs import install

    # this server's own default operation store: named after the address it really listens on
    # (also when -b overrides MAPSERVER_BIND), so two servers on one host never share a queue
    os.environ.setdefault("MAPSERVER_JOBS_INSTANCE", ",".join(worker.cfg.bind))
    install(worker.wsgi)


def on_starting(server) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Empty the metrics directory of values from an earlier run (observe/multiproc.py)."""
    _metrics.on_starting(server)


def child_exit(server, worker) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """A dead worker's live values leave ``/metrics``; its counters stay (observe/multiproc.py).
    Its connections no longer count on the board that spreads them (conn_shares.py)."""
    _metrics.child_exit(server, worker)
    _shares.release(_shares.slot_of(worker.age), worker.pid)


def on_exit(server) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Remove the metrics directory made at start (observe/multiproc.py)."""
    _metrics.on_exit(server)
