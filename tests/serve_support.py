"""Running ``mapserver serve`` as a real process for tests: a free port, an isolated environment
(own output, tile cache and operation store), a health-check wait, plain HTTP and a clean stop
of exactly the process group the test started."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HEALTH = "/arcgis/rest/info/healthCheck"
EXPORT = ("/arcgis/rest/services/World/MapServer/export?bbox=-180,-90,180,90&size=200,100"
          "&f=image&format=png")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The parent's environment without MAPSERVER_* (so defaults are what is tested), plus
    per-test state folders, so parallel tests and engineers never share a store or cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPSERVER_")}
    env.update(MAPSERVER_OUTPUT=str(tmp / "output"), MAPSERVER_TILE_CACHE=str(tmp / "tiles"),
               MAPSERVER_JOBS_DB=str(tmp / "jobs.sqlite"),
               MAPSERVER_JOBS_ROOT=str(tmp / "buckets"))
    env.update(extra)
    return env


def start(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a server in its own session (so :func:`stop` can end it and its workers)."""
    out = open(log, "wb")  # noqa: SIM115 - the child keeps it; closed when the test ends
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def get(port: int, target: str, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{target}", timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def wait_healthy(port: int, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Until the health check answers 200; fails with the server's log if it exits first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            status, _h, _b = get(port, HEALTH, timeout=5)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"no health check on port {port} within {timeout} s:\n"
                f"{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> int | None:
    """TERM to the server's process group (gunicorn's graceful stop), then KILL what is left.
    Returns the master's exit status when it stopped by itself."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=40)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    status = proc.returncode
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
    return status


def png_pixels(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:40]
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def colours(pixels: np.ndarray) -> int:
    return len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0))
