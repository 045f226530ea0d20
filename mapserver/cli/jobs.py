"""``mapserver-jobs``: submit a batch export and watch it, or run a dispatcher-only process.

    mapserver-jobs submit image body.json [--url http://host:8000] [--project demo]
    mapserver-jobs status <operation-name> [--url …]
    mapserver-jobs worker            # claims and runs queued operations (no HTTP)

``submit`` talks to a running server over HTTP (stdlib urllib) and draws a progress bar from
the operation metadata until the operation is done; the exit status is 0 only on SUCCEEDED.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def _http(method: str, url: str, body: Any = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        payload = json.loads(exc.read() or b"{}")
        raise SystemExit(f"error: {payload.get('error', {}).get('message', exc)}") from exc


def bar(op: dict, width: int = 30) -> str:
    meta = op.get("metadata", {})
    p = float(meta.get("progress", 0.0))
    stage = (meta.get("stages") or [{}])[0]
    filled = int(round(p * width))
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {p * 100:5.1f}% "
            f"{stage.get('completeWorkUnits', 0)}/{stage.get('totalWorkUnits', 0)} "
            f"{meta.get('state', '?'):<10}")


def watch(base: str, name: str, interval: float = 0.5, out=None) -> dict:
    out = out or sys.stderr
    while True:
        op = _http("GET", f"{base}/v1/{name}")
        out.write(bar(op))
        out.flush()
        if op.get("done"):
            out.write("\n")
            return op
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mapserver-jobs", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("submit", help="submit an export and show its progress")
    s.add_argument("kind", choices=("image", "map", "video"))
    s.add_argument("body", help="request body JSON file ('-' for stdin)")
    s.add_argument("--url", default="http://localhost:8000")
    s.add_argument("--project", default="default")
    s.add_argument("--no-wait", action="store_true")
    st = sub.add_parser("status", help="show an operation")
    st.add_argument("name")
    st.add_argument("--url", default="http://localhost:8000")
    sub.add_parser("worker", help="run a dispatcher (settings from the environment)")
    args = ap.parse_args(argv)

    if args.cmd == "worker":
        from mapserver.catalog.loader import load_catalog
        from mapserver.jobs.config import JobConfig
        from mapserver.jobs.service import JobService
        from mapserver.settings import Settings

        settings = Settings.from_env()
        catalog = load_catalog(list(settings.service_dirs), settings.data_dir)
        svc = JobService(JobConfig.from_env(), catalog,
                         (tuple(str(p) for p in settings.service_dirs), str(settings.data_dir)))
        signal.signal(signal.SIGTERM, lambda *_: (svc.close(), sys.exit(0)))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            svc.close()
        return 0
    base = args.url.rstrip("/")
    if args.cmd == "status":
        print(json.dumps(_http("GET", f"{base}/v1/{args.name}"), indent=2))
        return 0
    text = sys.stdin.read() if args.body == "-" else open(args.body).read()
    op = _http("POST", f"{base}/v1/projects/{args.project}/{args.kind}:export", json.loads(text))
    print(op["name"])
    if args.no_wait:
        return 0
    op = watch(base, op["name"])
    meta = op["metadata"]
    if meta["state"] != "SUCCEEDED":
        print(f"{meta['state']}: {op.get('error', {}).get('message', '')}", file=sys.stderr)
        return 1
    for uri in meta.get("destinationUris", []):
        print(uri)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``mapserver jobs …``: the same commands as ``mapserver-jobs``."""
    p = sub.add_parser("jobs", help="submit a batch export and watch it, or run a dispatcher",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda args: main(args.rest))


if __name__ == "__main__":
    sys.exit(main())
