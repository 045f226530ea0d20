"""The package as a user installs it (README "Install").

- Without its extras (``batch``: PyAV, dask.distributed; ``s3``: boto3; ``postgres``:
  psycopg) the server serves maps and even local image exports, and a batch feature that
  needs an extra is refused with a Google-style FAILED_PRECONDITION naming the pip command.
  The extras are installed here (the test extra pulls them), so a ``sitecustomize`` on
  ``PYTHONPATH`` makes their import fail in the server process and in every process it starts
  (the batch pool's forkserver children too), exactly as if they were not installed.
- Installed non-editable outside the clone, ``mapserver serve`` runs from another directory
  and draws the same pixels as the clone's app. (``.ci/install_check.sh`` does the full
  install into a fresh venv with every dependency from PyPI; here the package built from this
  tree is installed alone, offline, and uses this Python's dependencies, to stay fast.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from serve_support import (
    EXPORT,
    HEALTH,
    colours,
    free_port,
    get,
    png_pixels,
    server_env,
    start,
    stop,
    wait_healthy,
)

from mapserver.settings import PROJECT_ROOT

EXTRA_MODULES = ("av", "dask", "distributed", "boto3", "botocore", "s3transfer", "psycopg",
                 "psycopg_binary")

BLOCKER = f'''
"""Test hook: the optional extras' modules are not importable in this process tree."""
import sys

BLOCKED = {EXTRA_MODULES!r}


class _Blocked:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)",
                                      name=name)
        return None


sys.meta_path.insert(0, _Blocked)
'''

# runs in the blocked process: the app, its batch API with a dispatcher, and a report
SCRIPT = r'''
import json, sys, time
from pathlib import Path

from mapserver.app import create_app
from mapserver.jobs.config import JobConfig
from mapserver.rest.jobs import install
from mapserver.settings import PROJECT_ROOT, Settings

tmp = Path(sys.argv[1])
bodies = json.loads(sys.argv[2])


def make(**cfg):
    app = create_app(Settings(service_dirs=(PROJECT_ROOT / "services",),
                              data_dir=PROJECT_ROOT / "data", output_dir=tmp / "output",
                              tile_cache_dir=tmp / "tiles"))
    base = dict(db_path=tmp / (cfg.pop("db") + ".sqlite"), bucket_root=tmp / "buckets",
                workers=1, poll_seconds=0.05, lease_seconds=5.0)
    svc = install(app, JobConfig(**base, **cfg))
    return app.test_client(), svc


out = {}
client, svc = make(db="main", buckets={"cloud": "s3://cloud-bucket"})
r = client.get("/arcgis/rest/services/World/MapServer/export?bbox=-180,-90,180,90"
               "&size=200,100&f=image&format=png")
out["export"] = [r.status_code, r.content_type, r.data.hex()]
r = client.get("/arcgis/rest/services/World/MapServer/1/query?where=1%3D1&outFields=name"
               "&returnGeometry=false&f=json")
out["query"] = [r.status_code, len(r.get_json()["features"])]
r = client.post("/v1/projects/demo/video:export", json=bodies["video"])
out["video"] = [r.status_code, r.get_json()]
r = client.post("/v1/projects/demo/image:export", json=bodies["s3"])
out["s3"] = [r.status_code, r.get_json()]
# after the refusals, an ordinary image export runs to the end without any extra
r = client.post("/v1/projects/demo/image:export", json=bodies["image"])
op = r.get_json()
end = time.monotonic() + 120
while not op.get("done") and time.monotonic() < end:
    time.sleep(0.1)
    op = client.get("/v1/" + op["name"]).get_json()
out["image"] = [r.status_code, op.get("metadata", {}).get("state"), op.get("error")]
svc.close()

client, svc = make(db="dask", dask_scheduler="tcp://127.0.0.1:9")
r = client.post("/v1/projects/demo/image:export", json=bodies["image"])
out["dask"] = [r.status_code, r.get_json()]
svc.close()
out["loaded"] = sorted(m for m in sys.modules
                       if m.split(".")[0] in BLOCKED and sys.modules[m] is not None)
print("RESULT " + json.dumps(out))
'''


def readme_bodies() -> dict[str, dict]:
    """The README's image and video bodies (what a user would send), and the image body aimed
    at a bucket configured on S3."""
    import re

    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("## Batch exports", 1)[1].split("\n## ", 1)[0]
    image, _tiles, video = (json.loads(b) for b in re.findall(r"```json\n(.*?)```", section,
                                                              re.S))
    image.pop("requestId", None)
    s3 = json.loads(json.dumps(image))
    s3["fileExportOptions"]["cloudStorageDestination"]["bucket"] = "cloud"
    return {"image": image, "video": video, "s3": s3}


def blocked_env(tmp: Path) -> dict[str, str]:
    hook = tmp / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPSERVER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    return env


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    """The hook works the way a missing package does, in the process and in the pool's
    forkserver children (they start a fresh interpreter with the same PYTHONPATH)."""
    code = ("import importlib, json, multiprocessing as mp\n"
            "def probe(name):\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "        return 'imported'\n"
            "    except ImportError as exc:\n"
            "        return type(exc).__name__\n"
            "if __name__ == '__main__':\n"
            f"    names = {EXTRA_MODULES[:5]!r}\n"
            "    with mp.get_context('forkserver').Pool(1) as pool:\n"
            "        print(json.dumps([[probe(n) for n in names], pool.map(probe, names)]))\n")
    (tmp_path / "probe.py").write_text(code)
    run = subprocess.run([sys.executable, str(tmp_path / "probe.py")], cwd=tmp_path,
                         env=blocked_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [["ModuleNotFoundError"] * 5] * 2


def test_default_install_serves_and_refuses_batch_features_needing_extras(tmp_path: Path,
                                                                          client) -> None:
    run = subprocess.run(
        [sys.executable, "-c", f"BLOCKED = {EXTRA_MODULES!r}\n" + SCRIPT, str(tmp_path),
         json.dumps(readme_bodies())],
        cwd=tmp_path, env=blocked_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, run.stdout[-2000:] + run.stderr[-4000:]
    out = json.loads(line[0][7:])

    # maps and features: the same answer as in this process, where the extras are importable
    status, ctype, data = out["export"]
    assert (status, ctype) == (200, "image/png")
    ours = client.get(EXPORT)
    assert (png_pixels(bytes.fromhex(data)) == png_pixels(ours.data)).all()
    assert out["query"] == [200, len(client.get(
        "/arcgis/rest/services/World/MapServer/1/query?where=1%3D1&outFields=name"
        "&returnGeometry=false&f=json").get_json()["features"])]

    # batch features that need an extra: refused at submit, Google-style, naming the command
    assert out["video"] == [400, {"error": {
        "code": 400, "status": "FAILED_PRECONDITION",
        "message": "video export needs the batch extra: pip install 'mapserver[batch]'"}}]
    assert out["s3"] == [400, {"error": {
        "code": 400, "status": "FAILED_PRECONDITION",
        "message": "bucket 'cloud' on S3 needs the s3 extra: pip install 'mapserver[s3]'"}}]
    assert out["dask"] == [400, {"error": {
        "code": 400, "status": "FAILED_PRECONDITION",
        "message": "running shards on a Dask cluster (MAPSERVER_DASK_SCHEDULER) needs the "
                   "batch extra: pip install 'mapserver[batch]'"}}]
    # ... while a local image export needs none, and ran to the end after the refusals
    assert out["image"] == [200, "SUCCEEDED", None]
    tifs = sorted((tmp_path / "buckets" / "exports").rglob("*.tif"))
    assert tifs and all(p.read_bytes()[:4] in (b"II*\x00", b"II+\x00") for p in tifs)
    assert out["loaded"] == []


def test_video_export_is_accepted_where_the_batch_extra_is_installed(tmp_path: Path) -> None:
    """The same README video body, in this process (extras importable): accepted, so the
    refusal above is the missing extra, not the body."""
    from jobs_helpers import make_app

    app, svc = make_app(tmp_path, dispatch=False)
    try:
        r = app.test_client().post("/v1/projects/demo/video:export",
                                   json=readme_bodies()["video"])
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["metadata"]["state"] == "PENDING"
    finally:
        svc.close()


def tracked_tree(dest: Path) -> Path:
    """A copy of the working tree's tracked and new (not ignored) files: pip builds in the
    source folder, so building from a copy leaves the clone untouched and cannot pick up a
    stale ``build/`` left by another build."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"],
                           cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = PROJECT_ROOT / rel
        if src.is_file() and not rel.startswith(("tests/", "bench/", "data/", "services/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def test_non_editable_install_serves_from_another_directory(tmp_path: Path, client) -> None:
    """Built from this tree and installed into a folder of its own (``pip install --target``,
    no dependencies: they are this Python's), then run with that folder first on the path,
    so the installed copy, not the clone's editable one, is what runs."""
    src = tracked_tree(tmp_path / "src")
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--target", str(target), str(src)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    exe = str(target / "bin" / "mapserver")  # the console script pip wrote
    env = server_env(tmp_path)
    env["PYTHONPATH"] = str(target)

    # the installed copy is imported, not this clone's editable install
    where = subprocess.run([sys.executable, "-c", "import mapserver; print(mapserver.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    site = Path(where.stdout.strip()).parent
    assert site == target / "mapserver", where.stdout + where.stderr
    # every file of the package that is not Python (templates, static files, schemas) is in
    installed = {p.relative_to(target).as_posix() for p in target.rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    wanted = {p.relative_to(src).as_posix() for p in (src / "mapserver").rglob("*")
              if p.is_file()}
    assert wanted - installed == set()

    # installed, there is no clone to fall back on: a clear one-line refusal
    bare = subprocess.run([exe, "serve", "--bind", f"127.0.0.1:{free_port()}"], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2
    assert bare.stdout == ""
    assert bare.stderr == (f"mapserver serve: no services folder at {elsewhere / 'services'} "
                           "(not here, nor in a clone: give one with --services DIR)\n")

    port = free_port()
    log = tmp_path / "server.log"
    proc = start([exe, "serve", "--services", str(PROJECT_ROOT / "services"), "--data",
                  str(PROJECT_ROOT / "data"), "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                 elsewhere, env, log)
    try:
        wait_healthy(port, proc, log)
        status, headers, body = get(port, EXPORT)
        assert status == 200 and headers["content-type"] == "image/png"
        pixels = png_pixels(body)
        assert pixels.shape == (100, 200, 4) and colours(pixels) > 1
        assert (pixels == png_pixels(client.get(EXPORT).data)).all()
        status, _h, body = get(port, "/arcgis/rest/services?f=json")
        assert status == 200
        assert json.loads(body) == client.get("/arcgis/rest/services?f=json").get_json()
        # the HTML directory needs the package's templates
        status, headers, body = get(port, "/arcgis/rest/services/World/MapServer")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b"World" in body
        assert get(port, HEALTH)[0] == 200
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]
