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
URL), ``arcgis_import_map`` (the import map that lets a page load ``@arcgis/core``'s ES
modules from that folder), ``chromium`` (a Playwright Browser) and ``page`` (a fresh
1:1-pixel page per test).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
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
    # ES modules load only with a JavaScript MIME type and WebAssembly streams only as
    # application/wasm; do not depend on the host's /etc/mime.types for either.
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".mjs": "text/javascript", ".wasm": "application/wasm",
                      ".json": "application/json"}

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


# --- ES-module packages (the ArcGIS Maps SDK for JavaScript) -------------------------------

_ESM_CONDITIONS = ("browser", "import", "module", "default")


def _export_target(target: object) -> str | None:
    """The browser ES-module file of one ``exports`` value (string, condition map or list)."""
    if isinstance(target, str):
        return target
    if isinstance(target, list):
        return next((t for t in map(_export_target, target) if t), None)
    if isinstance(target, dict):
        for condition in _ESM_CONDITIONS:
            if condition in target:
                found = _export_target(target[condition])
                if found:
                    return found
    return None


def esm_import_map(node_modules: Path, url_prefix: str = "/node_modules") -> dict:
    """An import map resolving the bare specifiers of ES-module packages to their files.

    Browsers cannot resolve ``import "tslib"`` or ``import "@arcgis/toolkit/dom"`` as Node
    does; ``@arcgis/core`` and its dependencies are full of such imports. For every
    top-level package in ``node_modules``: ``"<name>"`` maps to its ES entry (``exports``
    ``.`` by the browser/import/module/default conditions, else ``module``), each explicit
    subpath export to its file (``*`` patterns expanded against the files on disk), and
    ``"<name>/"`` to the package folder for deep imports of real paths. Packages nested in
    another package's own ``node_modules`` (version conflicts) are not mapped.
    """
    imports: dict[str, str] = {}
    metas = sorted(node_modules.glob("*/package.json")) + sorted(
        node_modules.glob("@*/*/package.json"))
    for meta_path in metas:
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        pkg_dir = meta_path.parent
        name = pkg_dir.relative_to(node_modules).as_posix()
        base = f"{url_prefix}/{name}"
        imports[f"{name}/"] = f"{base}/"
        exports = meta.get("exports")
        if exports is not None and not (isinstance(exports, dict)
                                        and all(k.startswith(".") for k in exports)):
            exports = {".": exports}  # sugar: the whole value is the "." export
        if isinstance(exports, dict):
            for key, value in exports.items():
                target = _export_target(value)
                if not target or not target.startswith("./"):
                    continue
                if "*" not in key:
                    if not key.endswith("/"):
                        imports[name + key[1:]] = base + target[1:]
                    continue
                if target.count("*") != 1 or key.count("*") != 1:
                    continue
                head, tail = target[2:].split("*")
                for file in pkg_dir.glob(target[2:]):
                    rel = file.relative_to(pkg_dir).as_posix()
                    star = rel[len(head):len(rel) - len(tail) if tail else None]
                    specifier = name + key[1:].replace("*", star)
                    if specifier != f"{name}/{rel}":  # else the folder mapping covers it
                        imports.setdefault(specifier, f"{base}/{rel}")
        if name not in imports and isinstance(meta.get("module"), str):
            imports[name] = f"{base}/{meta['module'].removeprefix('./')}"
    # bundler-style side-effect CSS imports (``import "../cdn/main.css"`` in calcite's
    # runtime) fail in a browser (a stylesheet is no module): map those URLs to an empty
    # module; pages link the stylesheets they need themselves
    for css_url in _css_module_imports(node_modules, url_prefix):
        imports[css_url] = "data:text/javascript,"
    return {"imports": dict(sorted(imports.items()))}


_CSS_IMPORT = re.compile(rb"""(?:^|[;}\s])import\s*["'](\.{1,2}/[^"']+\.css)["']""")


def _css_module_imports(node_modules: Path, url_prefix: str) -> set[str]:
    """URLs of the ``.css`` files that ES modules under ``node_modules`` import as modules."""
    found = set()
    for pattern in ("**/*.js", "**/*.mjs"):
        for file in node_modules.glob(pattern):
            try:
                text = file.read_bytes()
            except OSError:
                continue
            if b".css" not in text:
                continue
            for spec in _CSS_IMPORT.findall(text):
                target = Path(os.path.normpath(file.parent / spec.decode()))
                if target.is_relative_to(node_modules):
                    found.add(f"{url_prefix}/{target.relative_to(node_modules).as_posix()}")
    return found


@pytest.fixture(scope="session")
def arcgis_import_map(browser_files: Path) -> str:
    """The import map (JSON text for ``<script type="importmap">``) for ``@arcgis/core``.

    Pages then ``import MapView from "@arcgis/core/views/MapView.js"`` straight from the
    npm package on the static server (no bundler), and must define
    ``window.process = {env: {NODE_ENV: "production"}}`` first (the npm build reads it) and
    set ``esriConfig.assetsPath`` to ``/node_modules/@arcgis/core/assets`` before loading
    anything else (its default is the js.arcgis.com CDN).
    """
    return json.dumps(esm_import_map(browser_files / "node_modules"), separators=(",", ":"))


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
