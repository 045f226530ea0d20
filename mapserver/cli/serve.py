"""``mapserver serve``: gunicorn with this project's configuration, from any directory.

    mapserver serve [--services DIR ...] [--data DIR] [--bind HOST:PORT] [--workers N]
                    [--threads N] [--access-log FILE|-] [--log-level LEVEL] [--pid FILE]

It runs gunicorn through its Python API (a ``BaseApplication`` loading
``mapserver.app:create_app()`` with the settings of :mod:`mapserver.gunicorn_config`), so it
needs neither ``wsgi.py`` nor ``gunicorn.conf.py`` in the current directory and works from a
non-editable install. Every option is turned into its ``MAPSERVER_*`` setting in the
environment before anything is loaded, because the settings are read from there by the app
(preloaded in the master), by every worker and by the batch dispatcher's shard processes; an
option therefore means exactly what the setting means (README "Settings").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

# option -> the setting it stands for (README "Settings")
ENV = {"services": "MAPSERVER_SERVICES", "data": "MAPSERVER_DATA", "bind": "MAPSERVER_BIND",
       "workers": "MAPSERVER_WORKERS", "threads": "MAPSERVER_THREADS",
       "access_log": "MAPSERVER_ACCESSLOG"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="run the server (gunicorn with this project's settings)",
        description="Run the map server: gunicorn with gthread workers and the settings of "
        "mapserver/gunicorn_config.py. Each option sets the MAPSERVER_* setting named in "
        "brackets; unset options keep the environment's value, then the default.")
    p.add_argument("--services", metavar="DIR", action="append",
                   help="a folder of service definitions; repeat for more "
                   "[MAPSERVER_SERVICES; default ./services, else the clone's]")
    p.add_argument("--data", metavar="DIR",
                   help="where relative data sources are looked up "
                   "[MAPSERVER_DATA; default ./data, else the clone's]")
    p.add_argument("--bind", metavar="HOST:PORT", action="append",
                   help="address to listen on; repeat for more "
                   "[MAPSERVER_BIND; default 127.0.0.1:8000]")
    p.add_argument("--workers", metavar="N", type=_positive,
                   help="worker processes [MAPSERVER_WORKERS; default: one per CPU core]")
    p.add_argument("--threads", metavar="N", type=_positive,
                   help="threads per worker; renders still run one at a time per worker "
                   "[MAPSERVER_THREADS; default 4]")
    p.add_argument("--access-log", metavar="FILE",
                   help="write an access log to FILE ('-': standard output) "
                   "[MAPSERVER_ACCESSLOG; default: none]")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error", "critical"),
                   help="gunicorn's error log level (default info)")
    p.add_argument("--pid", metavar="FILE", help="write the master's process id to FILE")
    p.add_argument("--print-config", action="store_true",
                   help="print the MAPSERVER_* settings the options make and gunicorn's "
                   "resolved settings, then exit without serving")
    p.set_defaults(func=run)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return n


def settings_env(args: argparse.Namespace, env: dict[str, str]) -> dict[str, str]:
    """The ``MAPSERVER_*`` variables the options stand for, folders made absolute (workers and
    shard processes must find them whatever their working directory), and the services and
    data folders always set, to the defaults when no option or variable chose them, so every
    process of this server uses the same ones. Raises ``SystemExit`` (one line, status 2) when
    no services folder exists."""
    from mapserver.settings import Settings

    out: dict[str, str] = {}
    if args.services:
        out[ENV["services"]] = os.pathsep.join(str(Path(d).resolve()) for d in args.services)
    if args.data:
        out[ENV["data"]] = str(Path(args.data).resolve())
    settings = Settings.from_env({**env, **out})
    dirs = [d.resolve() for d in settings.service_dirs]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        if args.services:
            how = "from --services"
        elif env.get(ENV["services"]):
            how = f"from {ENV['services']}"
        else:
            how = "not here, nor in a clone: give one with --services DIR"
        raise SystemExit(f"mapserver serve: no services folder at {', '.join(missing)} ({how})")
    if args.data and not Path(args.data).is_dir():
        raise SystemExit(f"mapserver serve: no data folder at {Path(args.data).resolve()}")
    out[ENV["services"]] = os.pathsep.join(str(d) for d in dirs)
    out[ENV["data"]] = str(settings.data_dir.resolve())
    if args.bind:
        out[ENV["bind"]] = args.bind[0]
    for name in ("workers", "threads", "access_log"):
        value = getattr(args, name)
        if value is not None:
            out[ENV[name]] = str(value)
    return out


def gunicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options that override :mod:`mapserver.gunicorn_config` and have no setting of their
    own (all binds, not only the first; the log level; a pid file)."""
    opts: dict[str, Any] = {"loglevel": args.log_level}
    if args.bind:
        opts["bind"] = list(args.bind)
    if args.pid:
        opts["pidfile"] = str(Path(args.pid).resolve())
    return opts


def application(args: argparse.Namespace):  # noqa: ANN201 - a gunicorn BaseApplication
    """The gunicorn application: the settings of :mod:`mapserver.gunicorn_config` (module-level
    settings and hooks, read as gunicorn reads a config file), then :func:`gunicorn_options`;
    the WSGI app is ``create_app()`` (preloaded in the master, as configured). Call after the
    environment holds :func:`settings_env`, since the config module reads it on import."""
    from gunicorn.app.base import BaseApplication

    class MapServerApplication(BaseApplication):
        def load_config(self) -> None:
            from mapserver import gunicorn_config

            for key, value in vars(gunicorn_config).items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)
            for key, value in gunicorn_options(args).items():
                self.cfg.set(key, value)

        def load(self):  # noqa: ANN202 - a Flask app
            from mapserver.app import create_app

            return create_app()

    return MapServerApplication(prog="mapserver serve")


def run(args: argparse.Namespace) -> int:
    try:
        env = settings_env(args, dict(os.environ))
    except SystemExit as exc:
        print(exc.code, file=sys.stderr)
        return 2
    os.environ.update(env)
    app = application(args)
    if args.print_config:
        for key, value in sorted(env.items()):
            print(f"{key:<26} = {value}")
        print(app.cfg)
        return 0
    # the folders are often implicit (./services, the clone's): say which ones are served
    print(f"mapserver serve: services {env[ENV['services']]}; data {env[ENV['data']]}",
          file=sys.stderr, flush=True)
    app.run()  # returns only by SystemExit (the arbiter's exit status)
    return 0
