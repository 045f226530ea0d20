"""One tree's app in process for ab_export.py: reads 'name iters' lines from stdin and answers
each with a JSON list of CPU ms per call (``time.process_time``)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

root = Path.cwd()
os.environ.setdefault("MAPSERVER_SERVICES", str(root / "bench" / "services"))
os.environ.setdefault("MAPSERVER_DATA", str(root / "bench" / "data"))
sys.path.insert(0, str(root))
if os.environ.get("AB_GUNICORN"):
    # as in a gunicorn master (warm() freezes the start-up heap there): the app is built with
    # gunicorn's arbiter imported
    import gunicorn.arbiter  # noqa: F401
from mapserver.app import create_app  # noqa: E402

client = create_app().test_client()
reqs = {}
for ln in open(sys.argv[1]):
    if ln.strip() and not ln.startswith("#"):
        name, _w, q = ln.rstrip("\n").split("\t")
        reqs[name] = f"/arcgis/rest/services/bench/MapServer/export?{q}"
for url in list(reqs.values())[1:]:  # warm-up: every row once
    client.get(url).get_data()
print("ready", flush=True)
for line in sys.stdin:
    name, n = line.split()
    out = []
    for _ in range(int(n)):
        t0 = time.process_time()
        client.get(reqs[name]).get_data()
        out.append((time.process_time() - t0) * 1000)
    print(json.dumps(out), flush=True)
