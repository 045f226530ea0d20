"""Load bench (issue 13): the export bench's request mix under concurrency, for our server and
the UMN MapServer peer, a worker's first request against a warm one, and worker RSS over time.

    python bench/load.py rate  [--conns 1,2,8] [--seconds 20] [--side ours,peer]
    python bench/load.py rss   [--minutes 10] [--conns 8] [--interval 10]
    python bench/load.py first [--only REGEX] [--warm 15]

``rate``: for each side and each connection count, wrk (``-t min(conns, 2)``) runs for
``--seconds`` over the mix: every row of ``bench/.work/requests.tsv`` once, in turn (a Lua
script; each wrk thread starts at a different row). Reported per run: requests/s, p50 and p99
latency over the whole mix, and the server's CPU ms per request from /proc.
Both servers run as the bench runs them: ours is ``gunicorn -c gunicorn.conf.py wsgi:app`` with
2 workers and ``--max-requests 0``; the peer is the bench's ``peer/start.sh`` (Debian gunicorn,
2 sync workers, mapscript) with its own pid folder. Results: a markdown table on stdout and
``bench/.work/out/load_rate.tsv``.

``rss``: our server under wrk (``--conns`` connections over the same mix) for ``--minutes``;
every ``--interval`` seconds each worker's RSS (VmRSS from /proc) goes into
``bench/load_rss.tsv``, and the curves into ``bench/load_rss.png``. The summary says whether
RSS after warm-up (the first ``--warmup`` minutes, default 1 or a fifth of the run) stayed within
10 % and under 300 MB per worker.

``first``: for each selected row a fresh server with 1 worker: the row's first request after
boot, then ``--warm`` more; wall ms and the worker's CPU ms (from /proc) of the first against the
median of the warm ones.

Needs the bench data (``bench/run.sh`` builds it once) and Debian's ``wrk``. Loopback only;
the script stops only the processes it started (its own process groups, the peer's pid files).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
REQUESTS = WORK / "requests.tsv"
EXPORT = "/arcgis/rest/services/bench/MapServer/export"
TICK = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024

LUA = r"""
local paths = {%s}
local counter = 0
function setup(thread)
  thread:set("offset", counter * 7)
  counter = counter + 1
end
local i = 0
function init(args)
  i = tonumber(offset) or 0
end
function request()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  io.write(string.format(
    "JSON {\"requests\": %%d, \"seconds\": %%.3f, \"p50\": %%.3f, \"p90\": %%.3f, "
    .. "\"p99\": %%.3f, \"max\": %%.3f, \"non2xx\": %%d, \"errors\": %%d}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
"""


def rows(only: str = "") -> list[tuple[str, str, str]]:
    """(name, WMS query, export query) of the bench's requests."""
    out = []
    for ln in REQUESTS.read_text().splitlines()[1:]:
        if ln.strip() and not ln.startswith("#"):
            name, wms, arc = ln.split("\t")
            if not only or re.search(only, name):
                out.append((name, wms, arc))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- /proc ---------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


# --- servers -------------------------------------------------------------------------------
class Ours:
    """Our gunicorn, as bench/run.sh starts it (its own process group, stopped by pid)."""

    def __init__(self, workers: int = 2, port: int | None = None) -> None:
        self.port = port or free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="mapserver-load-"))
        env = dict(os.environ, MAPSERVER_SERVICES=str(HERE / "services"),
                   MAPSERVER_DATA=str(HERE / "data"), MAPSERVER_BIND=f"127.0.0.1:{self.port}",
                   MAPSERVER_WORKERS=str(workers), MAPSERVER_ACCESSLOG="")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
             "--chdir", str(ROOT), "--max-requests", "0", "--log-level", "warning",
             "--pid", str(self.tmp / "gunicorn.pid"), "wsgi:app"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "gunicorn.log", "wb"), start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self._wait()

    def _wait(self, timeout: float = 180) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                log = (self.tmp / "gunicorn.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"our gunicorn exited:\n{log}")
            try:
                with urllib.request.urlopen(
                        f"{self.base}/arcgis/rest/services/bench/MapServer?f=json", timeout=5):
                    pass
                if len(children(self.proc.pid)) >= self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit("our gunicorn did not come up")

    def url(self, row: tuple[str, str, str]) -> str:
        return f"{EXPORT}?{row[2]}"

    def settle(self, quiet: float = 1.0, timeout: float = 60) -> None:
        """Until the server used no CPU for ``quiet`` seconds (workers done with their
        boot-time warm-up: a request sent earlier would wait for it and be charged its CPU)."""
        end = time.time() + timeout
        last = cpu_seconds(self.pids)
        while time.time() < end:
            time.sleep(quiet)
            now = cpu_seconds(self.pids)
            if now == last:
                return
            last = now

    @property
    def pids(self) -> list[int]:
        return tree(self.proc.pid)

    @property
    def worker_pids(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # gunicorn logs at warning level and up: anything there (a worker that died, a
        # traceback) is shown before the folder goes (a run once stopped on a connection reset
        # with nothing left to tell which process reset it)
        try:
            text = (self.tmp / "gunicorn.log").read_text(errors="replace").strip()
        except OSError:
            text = ""
        if text:
            print(f"our gunicorn logged (last 3000 characters):\n{text[-3000:]}",
                  file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Peer:
    """The bench's MapServer peer (peer/start.sh, PEER_MODE=wsgi, 2 workers), pid files in a
    folder of its own so peer/stop.sh stops exactly these processes."""

    def __init__(self, port: int = 18081) -> None:
        self.port = port
        self.run = WORK / "run" / "peer-load"
        self.env = dict(os.environ, PEER_PORT=str(port), PEER_RUN=str(self.run),
                        PEER_MODE="wsgi", PEER_WORKERS="2")
        # from the bench's folder: gunicorn reads ./gunicorn.conf.py of its working directory,
        # and ours (the repository root's) is not the peer's
        subprocess.run([str(WORK / "peer" / "start.sh")], env=self.env, check=True, cwd=WORK)
        self.base = f"http://127.0.0.1:{port}"
        end = time.time() + 60
        while time.time() < end:
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=5):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("peer did not come up")

    def url(self, row: tuple[str, str, str]) -> str:
        return f"/wms?{row[1]}"

    @property
    def pids(self) -> list[int]:
        out = []
        for pf in self.run.glob("*.pid"):
            try:
                out += tree(int(pf.read_text().strip()))
            except (OSError, ValueError):
                pass
        return out

    def stop(self) -> None:
        subprocess.run([str(WORK / "peer" / "stop.sh")], env=self.env, check=False, cwd=WORK)


# --- wrk -----------------------------------------------------------------------------------
def lua_script(paths: list[str]) -> Path:
    body = ", ".join(json.dumps(p) for p in paths)
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    f.write(LUA % body)
    f.close()
    return Path(f.name)


def wrk(base: str, script: Path, conns: int, seconds: float) -> dict:
    threads = max(1, min(conns, 2))
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s",
                          "--timeout", "60s", "-s", str(script), base],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"^JSON (\{.*\})$", out, re.M)
    if not m:
        raise SystemExit(f"wrk gave no summary:\n{out}")
    res = json.loads(m.group(1))
    res["rps"] = res["requests"] / res["seconds"] if res["seconds"] else 0.0
    return res


def warm_up(base: str, paths: list[str], times: int = 2) -> None:
    for _ in range(times):
        for p in paths:
            with urllib.request.urlopen(base + p, timeout=120) as r:
                r.read()


# --- commands ------------------------------------------------------------------------------
def cmd_rate(a: argparse.Namespace) -> None:
    selected = rows(a.only)
    conns = [int(c) for c in a.conns.split(",")]
    results = []
    for side in a.side.split(","):
        server = Ours(2) if side == "ours" else Peer(a.peer_port)
        try:
            paths = [server.url(r) for r in selected]
            warm_up(server.base, paths)
            script = lua_script(paths)
            for c in conns:
                c0 = cpu_seconds(server.pids)
                res = wrk(server.base, script, c, a.seconds)
                c1 = cpu_seconds(server.pids)
                res.update(side=side, conns=c,
                           cpu_ms=(c1 - c0) * 1000 / max(res["requests"], 1))
                results.append(res)
                print(f"{side} c={c}: {res['rps']:.1f} rps, p50 {res['p50']:.1f} ms, "
                      f"p99 {res['p99']:.1f} ms, {res['cpu_ms']:.1f} CPU ms/request, "
                      f"non-2xx {res['non2xx']}, errors {res['errors']}", flush=True)
            script.unlink()
        finally:
            server.stop()
    out = WORK / "out"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "load_rate.tsv", "w") as f:
        f.write("side\tconns\trps\tp50_ms\tp90_ms\tp99_ms\tcpu_ms_per_req\trequests\tnon2xx\t"
                "errors\n")
        for r in results:
            f.write(f"{r['side']}\t{r['conns']}\t{r['rps']:.2f}\t{r['p50']:.1f}\t"
                    f"{r['p90']:.1f}\t{r['p99']:.1f}\t{r['cpu_ms']:.2f}\t{r['requests']}\t"
                    f"{r['non2xx']}\t{r['errors']}\n")
    print(f"\nmix: {len(selected)} rows in turn, {a.seconds:g} s per run, "
          f"load {open('/proc/loadavg').read().split()[0]}\n")
    print("| connections | ours rps | peer rps | ours/peer rps | ours p50 / p99 ms | "
          "peer p50 / p99 ms | ours p99/p50 | ours / peer CPU ms per request |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in conns:
        o = next((r for r in results if r["side"] == "ours" and r["conns"] == c), None)
        p = next((r for r in results if r["side"] == "peer" and r["conns"] == c), None)

        def f(r: dict | None, k: str, fmt: str = "{:.1f}") -> str:
            return fmt.format(r[k]) if r else "–"

        ratio = f"{o['rps'] / p['rps']:.2f}" if o and p and p["rps"] else "–"
        spread = f"{o['p99'] / o['p50']:.1f}" if o and o["p50"] else "–"
        print(f"| {c} | {f(o, 'rps')} | {f(p, 'rps')} | {ratio} | "
              f"{f(o, 'p50')} / {f(o, 'p99')} | {f(p, 'p50')} / {f(p, 'p99')} | {spread} | "
              f"{f(o, 'cpu_ms')} / {f(p, 'cpu_ms')} |")


def cmd_rss(a: argparse.Namespace) -> None:
    selected = rows(a.only)
    server = Ours(2)
    tsv = Path(a.tsv)
    samples: list[tuple[float, int, float]] = []
    wrk_proc = None
    try:
        paths = [server.url(r) for r in selected]
        script = lua_script(paths)
        workers = server.worker_pids
        t0 = time.time()
        samples += [(0.0, p, rss_mb(p)) for p in workers]
        threads = max(1, min(a.conns, 2))
        cpu0 = cpu_seconds(server.pids)
        wrk_proc = subprocess.Popen(
            ["wrk", f"-t{threads}", f"-c{a.conns}", f"-d{int(a.minutes * 60)}s", "--timeout",
             "60s", "-s", str(script), server.base], stdout=subprocess.PIPE, text=True,
            start_new_session=True)
        while wrk_proc.poll() is None:
            time.sleep(min(a.interval, max(0.1, a.minutes * 60 - (time.time() - t0))))
            now = time.time() - t0
            alive = server.worker_pids
            if sorted(alive) != sorted(workers):
                print(f"worker set changed at {now:.0f} s: {workers} -> {alive}", flush=True)
                workers = alive
            samples += [(now, p, rss_mb(p)) for p in workers]
            print(f"{now:6.0f} s  " + "  ".join(f"{p}: {rss_mb(p):.0f} MB" for p in workers),
                  flush=True)
        cpu = cpu_seconds(server.pids) - cpu0
        out = wrk_proc.stdout.read() if wrk_proc.stdout else ""
        m = re.search(r"^JSON (\{.*\})$", out, re.M)
        summary = json.loads(m.group(1)) if m else {}
        script.unlink()
    finally:
        if wrk_proc is not None and wrk_proc.poll() is None:
            os.killpg(wrk_proc.pid, signal.SIGTERM)
            wrk_proc.wait()
        server.stop()
    with open(tsv, "w") as f:
        f.write("seconds\tworker_pid\trss_mb\n")
        for t, p, r in samples:
            f.write(f"{t:.1f}\t{p}\t{r:.1f}\n")
    warm_s = a.warmup * 60 if a.warmup is not None else min(60.0, a.minutes * 60 / 5)
    print(f"\nwrk: {summary.get('requests', '?')} requests in {summary.get('seconds', 0):.0f} s"
          f", p50 {summary.get('p50', float('nan')):.1f} ms, p99 "
          f"{summary.get('p99', float('nan')):.1f} ms, non-2xx {summary.get('non2xx', '?')}, "
          f"{cpu * 1000 / max(summary.get('requests', 0), 1):.1f} CPU ms per request")
    print(f"RSS per worker after {warm_s:.0f} s of warm-up (TSV: {tsv}):")
    ok = True
    for p in sorted({p for _, p, _ in samples}):
        vals = [r for t, q, r in samples if q == p and t >= warm_s and r == r]
        if not vals:
            continue
        lo, hi = min(vals), max(vals)
        flat = (hi - lo) / lo <= 0.10
        ok = ok and flat and hi <= 300
        print(f"  worker {p}: first {vals[0]:.0f} MB, min {lo:.0f}, max {hi:.0f}, last "
              f"{vals[-1]:.0f} MB: spread {100 * (hi - lo) / lo:.1f} % "
              f"({'flat' if flat else 'NOT flat'}), {'≤' if hi <= 300 else '>'} 300 MB")
    print("goal met" if ok else "goal NOT met")
    plot_rss(samples, Path(a.png), warm_s, a.conns)


def plot_rss(samples: list[tuple[float, int, float]], png: Path, warm_s: float,
             conns: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for i, p in enumerate(sorted({p for _, p, _ in samples})):
        pts = [(t / 60, r) for t, q, r in samples if q == p]
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker=".", label=f"worker {i + 1}")
    ax.axvline(warm_s / 60, color="grey", linestyle=":", label="end of warm-up")
    ax.axhline(300, color="red", linestyle="--", linewidth=0.8, label="300 MB")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    ax.set_ylim(0, max(320, max(r for _, _, r in samples) * 1.1))
    ax.set_title(f"worker RSS, bench mix, {conns} connections, 2 workers")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png)
    print(f"figure: {png}")


def timed_get(base: str, path: str, pids: list[int]) -> tuple[float, float]:
    """(wall ms, server CPU ms) of one request."""
    c0, t0 = cpu_seconds(pids), time.perf_counter()
    with urllib.request.urlopen(base + path, timeout=120) as r:
        r.read()
    wall = (time.perf_counter() - t0) * 1000
    time.sleep(0.05)  # let the worker finish its accounting (and the tick land)
    return wall, (cpu_seconds(pids) - c0) * 1000


def cmd_first(a: argparse.Namespace) -> None:
    print("| request | first wall ms | warm wall ms | first/warm wall | first CPU ms | "
          "warm CPU ms | first/warm CPU |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows(a.only):
        server = Ours(1)
        try:
            server.settle()
            pids = server.worker_pids
            path = server.url(row)
            fw, fc = timed_get(server.base, path, pids)
            warm = [timed_get(server.base, path, pids) for _ in range(a.warm)]
            ww = statistics.median(w for w, _ in warm)
            # CPU from /proc ticks (10 ms): the mean over the warm requests is the fair number
            wc = statistics.mean(c for _, c in warm)
            print(f"| {row[0]} | {fw:.1f} | {ww:.1f} | {fw / ww:.2f} | {fc:.0f} | {wc:.1f} | "
                  f"{fc / wc if wc else float('nan'):.2f} |", flush=True)
        finally:
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rate", help="rps / p50 / p99 at several connection counts")
    r.add_argument("--conns", default="1,2,8")
    r.add_argument("--seconds", type=float, default=20.0)
    r.add_argument("--side", default="ours,peer")
    r.add_argument("--peer-port", type=int, default=18081)
    r.add_argument("--only", default="")
    s = sub.add_parser("rss", help="worker RSS over time under load")
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--conns", type=int, default=8)
    s.add_argument("--interval", type=float, default=10.0)
    s.add_argument("--warmup", type=float, default=None, help="minutes (default min(1, 1/5))")
    s.add_argument("--only", default="")
    s.add_argument("--tsv", default=str(HERE / "load_rss.tsv"))
    s.add_argument("--png", default=str(HERE / "load_rss.png"))
    f = sub.add_parser("first", help="first request after boot against warm ones")
    f.add_argument("--only", default="countries_4326_world|cities_3857_world|"
                   "landsat_3857_256|cog_in_512_jpg|mixed_3857_1024|gapminder_2007")
    f.add_argument("--warm", type=int, default=15)
    a = ap.parse_args()
    {"rate": cmd_rate, "rss": cmd_rss, "first": cmd_first}[a.cmd](a)


if __name__ == "__main__":
    main()
