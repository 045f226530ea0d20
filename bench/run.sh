#!/usr/bin/env bash
# The export bench, run against THIS project: our /export vs UMN MapServer 8 vs the floor.
#
#   bench/run.sh                 prepare, serve, measure peer + project, floor, stop
#   ONLY=cog bench/run.sh        only the requests whose name matches the regex
#
# What it does (loopback only, idempotent):
#   1. copies the shared bench (/work/shared/bench, or $BENCH_SRC) to bench/.work/ if not there;
#      bench/.work/data is a link to bench/data, where the data lives (both gitignored)
#   2. setup.sh (Debian packages skipped when present; the venv reuses this Python's packages)
#      and get-data.sh (the 8192 px synthetic COG takes ~20 s and ~3 GB RAM the first time)
#   3. starts OUR server: gunicorn wsgi:app, 2 sync workers, no access log, 127.0.0.1:$PORT,
#      MAPSERVER_SERVICES=bench/services (service `bench`), pid file in bench/.work/run/
#   4. bench/.work/run.sh http://127.0.0.1:$PORT with PROJECT_PIDFILE (CPU ms/request of both)
#   5. floor.py --save; image comparison peer vs project; summary table -> bench/.work/out/
#   6. stops our server (only the pid it started)
#
# Env (defaults): PORT=18080 PEER_PORT=18081 DURATION=5 NSEQ=10 WARMUP=3 ONLY=
#   FLOOR=1 (0 skips floor.py)  FLOOR_SECONDS=1.5 (time bound per floor stage)
#   MAPSERVER_PNG_COMPRESSION (passed through to our server)  BENCH_SRC=/work/shared/bench
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
SRC="${BENCH_SRC:-/work/shared/bench}"
WORK="$HERE/.work"
DATA="$HERE/data"
PORT="${PORT:-18080}"
export PEER_PORT="${PEER_PORT:-18081}"
export DURATION="${DURATION:-5}" NSEQ="${NSEQ:-10}" WARMUP="${WARMUP:-3}" ONLY="${ONLY:-}"
PY="${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}"

# --- 1. the bench copy -----------------------------------------------------------------------
if [[ ! -x "$WORK/run.sh" ]]; then
  echo "bench: copying $SRC -> $WORK"
  mkdir -p "$WORK"
  (cd "$SRC" && tar --exclude=./data --exclude=./.venv --exclude=./out --exclude=./run -cf - .) \
    | (cd "$WORK" && tar -xf -)
  chmod -R u+w "$WORK"   # the shared copy is read-only; runs write out/ and run/ here
fi
mkdir -p "$DATA"
[[ -e "$WORK/data" ]] || ln -s ../data "$WORK/data"

# --- 2. packages and data --------------------------------------------------------------------
# The bench venv sees this interpreter's packages (same pinned versions as setup.sh asks for),
# so nothing is downloaded when they are already installed.
[[ -x "$WORK/.venv/bin/python" ]] || "$PY" -m venv --system-site-packages "$WORK/.venv"
skip_apt=1
for p in cgi-mapserver mapserver-bin python3-mapscript gunicorn spawn-fcgi nginx-light wrk; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || skip_apt=0
done
SKIP_APT=$skip_apt "$WORK/setup.sh"
BENCH_DATA="$DATA" "$WORK/get-data.sh"

# --- 3. our server ---------------------------------------------------------------------------
RUN="$WORK/run/project"
mkdir -p "$RUN"
PIDFILE="$RUN/gunicorn.pid"
if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "bench: our server already running (pid $(cat "$PIDFILE")); stop it first" >&2
  exit 1
fi
stop_ours() {
  if [[ -f "$PIDFILE" ]]; then
    local pid
    pid="$(cat "$PIDFILE")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$PIDFILE"
  fi
}
trap stop_ours EXIT
(cd "$ROOT" && MAPSERVER_SERVICES="$HERE/services" MAPSERVER_DATA="$DATA" \
  MAPSERVER_BIND="127.0.0.1:$PORT" MAPSERVER_WORKERS=2 MAPSERVER_ACCESSLOG= \
  "$PY" -m gunicorn -c "$ROOT/gunicorn.conf.py" --chdir "$ROOT" --pid "$PIDFILE" --daemon \
  --max-requests 0 --error-logfile "$RUN/gunicorn.log" --log-level warning wsgi:app)
BASE="http://127.0.0.1:$PORT/arcgis/rest/services/bench/MapServer"
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "$BASE?f=json" 2>/dev/null && break
  sleep 0.1
done
if ! curl -fsS "$BASE?f=json" | grep -q '"layers"'; then
  echo "bench: our server does not publish the bench service; see $RUN/gunicorn.log" >&2
  exit 1
fi
echo "bench: our server up on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"

# --- 4. peer vs project ----------------------------------------------------------------------
(cd "$WORK" && PROJECT_PIDFILE="$PIDFILE" BENCH_PYTHON="$PY" ./run.sh "http://127.0.0.1:$PORT")
stop_ours

# --- 5. floor, images, summary ---------------------------------------------------------------
if [[ "${FLOOR:-1}" == 1 ]]; then
  (cd "$WORK" && BENCH_DATA="$DATA" .venv/bin/python floor.py --save \
     --max-seconds "${FLOOR_SECONDS:-1.5}" ${ONLY:+--only "$ONLY"})
fi
(cd "$WORK" && .venv/bin/python tools/compare_images.py out/peer out/project \
   | tee out/compare.txt)
if [[ -f "$WORK/out/floor.tsv" ]]; then
  "$PY" "$HERE/tools/cpu_table.py" "$WORK/out/results.tsv" "$WORK/out/floor.tsv" \
    | tee "$WORK/out/cpu_table.md"
fi
