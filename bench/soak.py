"""Soak benchmark (issue 9): a real gunicorn on a free 127.0.0.1 port, a mix of valid exports,
queries, identifies, tiles and hostile requests (tests/hostile_cases.py) from a few client
threads for a bounded time; reports requests served, errors (must be 0 for the valid ones),
p50/p99 latency of the valid requests and worker RSS at start, peak and end.

    python bench/soak.py --duration 600 [--clients 4] [--workers 2] [--json out.json]

Loopback only; the server is started and stopped by this script (only the pid it started).
Worker recycling is switched off (``--max-requests 0``) so RSS growth would show.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from hostile_cases import ARCGIS_CASES, ee_cases  # noqa: E402

S = "/arcgis/rest/services"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def valid_request(rng: random.Random) -> tuple[str, str, str, bytes | None, dict]:
    """(kind, method, path+query, body, headers) of an ordinary request."""
    kind = rng.choices(["export", "query", "identify", "tile", "olinda", "legend", "json"],
                       [30, 20, 10, 20, 8, 4, 8])[0]
    if kind == "export":
        x = rng.uniform(-170, 100)
        y = rng.uniform(-60, 40)
        w = rng.uniform(5, 70)
        q = {"bbox": f"{x},{y},{x + w},{y + w * 0.6}", "size": rng.choice(
            ["256,256", "512,384", "800,600"]), "f": "image",
            "format": rng.choice(["png", "png32", "jpg"]), "transparent": "true",
            "dpi": rng.choice(["96", "150"])}
        svc = rng.choice(["World", "Gapminder"])
        if svc == "Gapminder":
            year = rng.choice(range(1952, 2008, 5))
            q["time"] = str(int(time.mktime((year, 6, 1, 0, 0, 0, 0, 0, 0)) * 1000))
        path = f"{S}/{svc}/MapServer/export"
    elif kind == "olinda":
        x, y = rng.uniform(286000, 294000), rng.uniform(9108000, 9116000)
        q = {"bbox": f"{x},{y},{x + 4000},{y + 4000}", "bboxSR": "31985", "size": "256,256",
             "f": "image", "format": "png"}
        path = f"{S}/Samples/Olinda/MapServer/export"
    elif kind == "query":
        q = {"f": "json", "where": f"pop_est > {rng.choice([1e6, 1e7, 5e7, 1e8])}",
             "outFields": "name,pop_est", "returnGeometry": rng.choice(["true", "false"]),
             "maxAllowableOffset": "0.5", "orderByFields": "pop_est DESC"}
        path = f"{S}/World/MapServer/1/query"
    elif kind == "identify":
        x, y = rng.uniform(-120, 140), rng.uniform(-40, 60)
        q = {"f": "json", "geometry": f"{x},{y}", "geometryType": "esriGeometryPoint",
             "tolerance": "3", "mapExtent": f"{x - 10},{y - 10},{x + 10},{y + 10}",
             "imageDisplay": "600,600,96", "layers": "all", "returnGeometry": "false"}
        path = f"{S}/World/MapServer/identify"
    elif kind == "tile":
        z = rng.randint(0, 6)
        n = 1 << z
        # rows of the middle half: the polar rows are outside World's full extent (404 there)
        row = rng.randrange(n // 4, max(1, 3 * n // 4))
        return kind, "GET", f"{S}/World/MapServer/tile/{z}/{row}/{rng.randrange(n)}", None, {}
    elif kind == "legend":
        q = {"f": "json"}
        path = f"{S}/World/MapServer/legend"
    else:
        q = {"f": "json"}
        path = rng.choice([f"{S}", f"{S}/World/MapServer", f"{S}/World/MapServer/1"])
    return kind, "GET", path + "?" + urllib.parse.urlencode(q), None, {}


HOSTILE = [(c[0], c[1], c[2], c[3]) for c in ARCGIS_CASES]
EE = ee_cases()


def hostile_request(rng: random.Random) -> tuple[str, str, str, bytes | None, dict]:
    if rng.random() < 0.15:
        name, verb, body, _ = rng.choice(EE)
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        return "hostile:" + name, "POST", f"/v1/projects/soak/{verb}", data, {
            "Content-Type": "application/json"}
    name, method, path, params = rng.choice(HOSTILE)
    enc = urllib.parse.urlencode(params)
    if method == "GET" and len(enc) < 12000:
        return "hostile:" + name, "GET", path + ("?" + enc if enc else ""), None, {}
    return "hostile:" + name, "POST", path, enc.encode(), {
        "Content-Type": "application/x-www-form-urlencoded"}


def is_ok(status: int, ctype: str, body: bytes) -> bool:
    if status != 200:
        return False
    if ctype.startswith("image/"):
        return True
    try:
        obj = json.loads(body)
    except ValueError:
        return False
    return not (isinstance(obj, dict) and "error" in obj)


def is_5xx(status: int, ctype: str, body: bytes) -> bool:
    if status >= 500:
        return True
    if "json" in ctype:
        try:
            obj = json.loads(body)
        except ValueError:
            return False
        err = obj.get("error") if isinstance(obj, dict) else None
        return isinstance(err, dict) and isinstance(err.get("code"), int) and err["code"] >= 500
    return False


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.valid_lat: list[float] = []
        self.valid_errors: list[str] = []
        self.hostile = 0
        self.hostile_5xx: list[str] = []
        self.by_kind: dict[str, int] = {}
        self.reconnects: list[str] = []

    def add(self, kind: str, dt: float, status: int, ctype: str, body: bytes) -> None:
        with self.lock:
            self.by_kind[kind.split(":")[0]] = self.by_kind.get(kind.split(":")[0], 0) + 1
            if kind.startswith("hostile:"):
                self.hostile += 1
                if is_5xx(status, ctype, body):
                    self.hostile_5xx.append(f"{kind}: {status} {body[:120]!r}")
            else:
                self.valid_lat.append(dt)
                if not is_ok(status, ctype, body):
                    self.valid_errors.append(f"{kind}: {status} {body[:200]!r}")


def client_loop(port: int, seed: int, end: float, hostile_share: float, stats: Stats) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    prev = "-"
    while time.monotonic() < end:
        kind, method, path, body, headers = (hostile_request(rng) if rng.random() < hostile_share
                                             else valid_request(rng))
        t0 = time.monotonic()
        for attempt in (0, 1):
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status, ctype = resp.status, resp.getheader("Content-Type", "")
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                status, ctype, data = 599, "", f"{exc} (after {prev})".encode()
                # a keep-alive connection the server closed between two requests: a client
                # retries once on a fresh connection (counted, and reported)
                if attempt == 0 and isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError
                                               | ConnectionResetError):
                    with stats.lock:
                        stats.reconnects.append(f"{kind} after {prev}: {exc}")
                    continue
                break
        stats.add(kind, time.monotonic() - t0, status, ctype, data)
        prev = kind
    conn.close()


def worker_rss(master: psutil.Process) -> dict[int, int]:
    out = {}
    for child in master.children(recursive=False):
        try:
            if "gunicorn" in " ".join(child.cmdline()) or child.name().startswith(("python",
                                                                                     "gunicorn")):
                out[child.pid] = child.memory_info().rss
        except psutil.Error:
            pass
    return out


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", f"{S}?f=json")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not come up")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent client connections")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    ap.add_argument("--hostile-share", type=float, default=0.3,
                    help="fraction of requests taken from the hostile cases")
    ap.add_argument("--json", help="write the results as JSON to this file")
    args = ap.parse_args()

    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="mapserver-soak-"))
    env = dict(os.environ, MAPSERVER_BIND=f"127.0.0.1:{port}",
               MAPSERVER_WORKERS=str(args.workers), MAPSERVER_OUTPUT=str(tmp / "output"),
               MAPSERVER_TILE_CACHE=str(tmp / "tiles"), MAPSERVER_JOBS_DB=str(tmp / "jobs.db"),
               MAPSERVER_JOBS_ROOT=str(tmp / "buckets"), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "--max-requests", "0", "-b", f"127.0.0.1:{port}", "wsgi:app"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "gunicorn.log", "wb"), start_new_session=True)
    try:
        wait_ready(port, proc)
        master = psutil.Process(proc.pid)
        time.sleep(1.0)
        rss_start = worker_rss(master)
        peak = dict(rss_start)
        stats = Stats()
        end = time.monotonic() + args.duration
        threads = [threading.Thread(target=client_loop,
                                    args=(port, 1000 + i, end, args.hostile_share, stats))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for pid, rss in worker_rss(master).items():
                peak[pid] = max(peak.get(pid, 0), rss)
            time.sleep(0.5)
        rss_end = worker_rss(master)
        restarted = sorted(set(rss_end) - set(rss_start))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group this script started
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    mb = 1024 * 1024
    result = {
        "duration_s": args.duration, "clients": args.clients, "workers": args.workers,
        "requests": len(stats.valid_lat) + stats.hostile, "valid": len(stats.valid_lat),
        "valid_errors": len(stats.valid_errors), "hostile": stats.hostile,
        "hostile_5xx": len(stats.hostile_5xx), "by_kind": stats.by_kind,
        "p50_ms": round(percentile(stats.valid_lat, 50) * 1000, 1),
        "p99_ms": round(percentile(stats.valid_lat, 99) * 1000, 1),
        "rss_start_mb": {p: round(v / mb) for p, v in rss_start.items()},
        "rss_peak_mb": {p: round(v / mb) for p, v in peak.items()},
        "rss_end_mb": {p: round(v / mb) for p, v in rss_end.items()},
        "workers_restarted": restarted,
        "keepalive_reconnects": len(stats.reconnects),
        "reconnect_samples": stats.reconnects[:10],
        "valid_error_samples": stats.valid_errors[:10],
        "hostile_5xx_samples": stats.hostile_5xx[:10],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ok = not stats.valid_errors and not stats.hostile_5xx and not restarted
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
