"""Browser-test fixtures: the real app on a socket, the JS map clients from npm, Chromium.

Why a live server and real clients: the point of the browser tests is that the requests
OpenLayers and esri-leaflet build themselves (parameter case, bbox order, SR codes) reach the
app unchanged, and that what they draw is what the service's renderer says. So nothing here
mocks or bundles: the app runs under werkzeug in a thread, the client libraries are the npm
packages pinned in ``tests/browser-package.json`` (installed into the git-ignored
``tests/.browser/``), served by a second static server on another port (cross-origin, as in
real deployments, which the app's CORS header allows), and Debian's Chromium drives them.

Loaded for the whole suite via ``pytest_plugins`` in ``tests/conftest.py``; nothing heavy is
imported until a browser fixture is used. Missing npm or Chromium FAILS (never skips): CI
installs both, and a silently skipped browser test would hide exactly the client breakage
these tests exist for.

Fixtures: ``app_url`` (base URL of the live app), ``browser_files`` (the installed npm
folder), ``static_url`` (base URL serving it), ``browser_pages`` (write an HTML page, get its
URL), ``chromium`` (a Playwright Browser) and ``page`` (a fresh 1:1-pixel page per test).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
PACKAGE_JSON = TESTS_DIR / "browser-package.json"
BROWSER_DIR = TESTS_DIR / ".browser"
CHROMIUM = os.environ.get("MAPSERVER_TEST_CHROMIUM", "/usr/bin/chromium")
# The flags known to work on a closed network: without the background-networking ones
# Chromium keeps trying (and failing) to reach Google at start-up.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NPM_TIMEOUT_S = 300


# --- the app -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def app_url(app) -> Iterator[str]:
    """Serve the session ``app`` (sample services) on 127.0.0.1:<free port>; yield its URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-app", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- the npm packages ----------------------------------------------------------------------

def _installed_matches(pinned: dict[str, str]) -> bool:
    """True when every pinned package is installed at exactly its pinned version."""
    for name, version in pinned.items():
        meta = BROWSER_DIR / "node_modules" / name / "package.json"
        try:
            if json.loads(meta.read_text())["version"] != version:
                return False
        except (OSError, ValueError, KeyError):
            return False
    return True


def ensure_npm_packages() -> Path:
    """Install ``browser-package.json`` into ``tests/.browser/`` unless already there.

    A file lock serialises concurrent pytest runs in the same tree (several engineers, or
    xdist workers) so they never run npm over each other's half-written node_modules.
    """
    pinned = json.loads(PACKAGE_JSON.read_text())["dependencies"]
    if _installed_matches(pinned):
        return BROWSER_DIR
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("browser tests need Node.js and npm on PATH to install the JavaScript map "
                    f"clients ({', '.join(pinned)}) into {BROWSER_DIR}; install them "
                    "(Debian: apt-get install nodejs npm)", pytrace=False)
    BROWSER_DIR.mkdir(parents=True, exist_ok=True)
    with open(BROWSER_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_matches(pinned):  # another process installed while we waited
            return BROWSER_DIR
        shutil.copyfile(PACKAGE_JSON, BROWSER_DIR / "package.json")
        started = time.monotonic()
        try:
            proc = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                                  capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm install in {BROWSER_DIR} took over {NPM_TIMEOUT_S} s "
                        "(is the npm registry reachable?)", pytrace=False)
        if proc.returncode != 0 or not _installed_matches(pinned):
            pytest.fail(f"npm install in {BROWSER_DIR} failed (exit {proc.returncode}):\n"
                        f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}", pytrace=False)
        print(f"npm install of {pinned} took {time.monotonic() - started:.1f} s")
    return BROWSER_DIR


@pytest.fixture(scope="session")
def browser_files() -> Path:
    """``tests/.browser/`` with the pinned npm packages in ``node_modules/``."""
    return ensure_npm_packages()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def end_headers(self) -> None:
        # pages are rewritten between runs; never let the browser reuse an old one
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@pytest.fixture(scope="session")
def static_url(browser_files: Path) -> Iterator[str]:
    """A static file server rooted at ``tests/.browser/`` (pages and ``node_modules``)."""
    handler = functools.partial(_QuietHandler, directory=str(browser_files))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="static", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class BrowserPages:
    """Writes test pages under ``tests/.browser/pages/<session>/`` and returns their URLs.

    One folder per pytest session so concurrent runs never overwrite each other's pages.
    Pages load libraries by absolute path, e.g. ``/node_modules/ol/dist/ol.js``.
    """

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url

    def publish(self, name: str, html: str) -> str:
        (self.root / name).write_text(html, encoding="utf-8")
        return f"{self.base_url}/{self.root.relative_to(BROWSER_DIR).as_posix()}/{name}"


@pytest.fixture(scope="session")
def browser_pages(browser_files: Path, static_url: str) -> Iterator[BrowserPages]:
    (browser_files / "pages").mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="run-", dir=browser_files / "pages"))
    try:
        yield BrowserPages(root, static_url)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- the browser ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium under Playwright (never Playwright's own downloaded browser)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install "
                    "chromium; .ci/run does this; or set MAPSERVER_TEST_CHROMIUM)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Playwright gives every launch a fresh temporary profile (user-data-dir).
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(chromium):
    """A fresh page, 1 CSS px = 1 device px so screenshots map 1:1 onto map pixels.

    Uncaught page errors are collected in ``page.errors`` for tests to assert on.
    """
    context = chromium.new_context(viewport={"width": 800, "height": 800},
                                   device_scale_factor=1)
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.set_default_timeout(20_000)
    try:
        yield pg
    finally:
        context.close()
