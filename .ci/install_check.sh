#!/usr/bin/env bash
# The install a user does, checked end to end (issue 11's "Done when"):
#   1. a fresh venv OUTSIDE the clone (mktemp -d), with this machine's python3, as the README
#      does, and the clone installed into it NON-editable and without extras (every dependency
#      comes from the package index, none from this machine's other environments);
#   2. none of the extras' heavy modules came with it (av, dask, distributed, boto3, psycopg);
#   3. from another directory: `mapserver --help`, then `mapserver serve` on the clone's
#      sample services and data, on a free port of 127.0.0.1, one worker;
#   4. the health check answers, and an export is a 200x100 PNG with more than one colour;
#   5. the server stops on SIGTERM with status 0.
# Exits non-zero on any failure, with the server's log. Usage: bash .ci/install_check.sh
# (PYTHON=/path/to/python3 to use another interpreter; KEEP=1 keeps the temporary folder).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
SERVER_PID=""

cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  [[ "${KEEP:-0}" == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "install_check: FAIL: $*" >&2
  [[ -f "$WORK/server.log" ]] && tail -n 60 "$WORK/server.log" >&2
  exit 1
}

echo "install_check: venv in $WORK/venv ($("$PY" --version))"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$WORK/venv/bin/pip" install -q "$ROOT" || fail "pip install $ROOT"

mkdir "$WORK/elsewhere"
cd "$WORK/elsewhere"

# the installed copy, not the clone, and no extra's module
"$VPY" - "$WORK/venv" <<'EOF' || fail "the installed package"
import importlib.util, sys
from pathlib import Path

import mapserver

venv = Path(sys.argv[1]).resolve()
assert Path(mapserver.__file__).resolve().is_relative_to(venv), mapserver.__file__
extras = [m for m in ("av", "dask", "distributed", "boto3", "botocore", "psycopg")
          if importlib.util.find_spec(m) is not None]
assert not extras, f"the default install brought optional modules: {extras}"
EOF

"$WORK/venv/bin/mapserver" --help | grep -q "serve" || fail "mapserver --help"

PORT="$("$VPY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export MAPSERVER_OUTPUT="$WORK/output" MAPSERVER_TILE_CACHE="$WORK/tiles" \
  MAPSERVER_JOBS_DB="$WORK/jobs.sqlite" MAPSERVER_JOBS_ROOT="$WORK/buckets"
"$WORK/venv/bin/mapserver" serve --services "$ROOT/services" --data "$ROOT/data" \
  --bind "127.0.0.1:$PORT" --workers 1 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
echo "install_check: mapserver serve (pid $SERVER_PID) on 127.0.0.1:$PORT from $PWD"

"$VPY" - "$PORT" "$SERVER_PID" <<'EOF' || fail "health check or export"
import io, os, sys, time, urllib.request

from PIL import Image

port, pid = sys.argv[1], int(sys.argv[2])
base = f"http://127.0.0.1:{port}"
end = time.monotonic() + 180
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the server exited before answering")
    try:
        with urllib.request.urlopen(base + "/arcgis/rest/info/healthCheck", timeout=5) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > end:
        sys.exit("no health check within 180 s")
    time.sleep(0.5)
url = (base + "/arcgis/rest/services/World/MapServer/export?bbox=-180,-90,180,90"
       "&size=200,100&f=image&format=png")
with urllib.request.urlopen(url, timeout=120) as r:
    status, ctype, body = r.status, r.headers.get("Content-Type"), r.read()
assert (status, ctype) == (200, "image/png"), (status, ctype, body[:200])
assert body[:8] == b"\x89PNG\r\n\x1a\n", body[:40]
img = Image.open(io.BytesIO(body))
assert img.format == "PNG" and img.size == (200, 100), (img.format, img.size)
n = len(img.convert("RGBA").getcolors(200 * 100))
assert n > 1, f"a blank export ({n} colour)"
print(f"install_check: export is a {img.size[0]}x{img.size[1]} PNG with {n} colours")
EOF

kill -TERM "$SERVER_PID"
status=0
wait "$SERVER_PID" || status=$?
SERVER_PID=""
[[ "$status" == 0 ]] || fail "the server stopped with status $status"
echo "install_check: OK"
