"""In-process timing and profiling of ``/export`` on the bench's requests (no gunicorn, no wrk).

Usage (from the repo root, after bench/run.sh has built bench/data):
  python bench/tools/profile_export.py                   # CPU ms per request, median of N
  python bench/tools/profile_export.py --only cog_in --profile      # + cProfile top entries
  python bench/tools/profile_export.py --save /tmp/ours  # write the images (compare_images.py)

Requests go through the Flask test client, so parsing, dispatch and response building are
counted as in the server; what is missing is gunicorn's socket handling. CPU time
(``time.process_time``) is reported, the same quantity run.sh derives from /proc.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
ROOT = BENCH.parent
REQUESTS = BENCH / ".work" / "requests.tsv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", default=str(REQUESTS))
    ap.add_argument("--only", default="")
    ap.add_argument("--iter", type=int, default=15)
    ap.add_argument("--profile", action="store_true", help="cProfile each request")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--save", default="", help="folder for the response images")
    args = ap.parse_args()

    os.environ.setdefault("MAPSERVER_SERVICES", str(BENCH / "services"))
    os.environ.setdefault("MAPSERVER_DATA", str(BENCH / "data"))
    sys.path.insert(0, str(ROOT))
    from mapserver.app import create_app

    client = create_app().test_client()
    with open(args.requests) as f:
        lines = [ln.rstrip("\n").split("\t") for ln in f if ln.strip() and not ln.startswith("#")]
    if args.save:
        os.makedirs(args.save, exist_ok=True)
    total = 0.0
    for name, _wms, query in lines[1:]:
        if args.only and not re.search(args.only, name):
            continue
        url = f"/arcgis/rest/services/bench/MapServer/export?{query}"
        resp = client.get(url)
        body = resp.get_data()
        if not resp.mimetype.startswith("image/"):
            print(f"{name:28s} NOT AN IMAGE: {body[:200]!r}")
            continue
        if args.save:
            ext = "jpg" if resp.mimetype == "image/jpeg" else "png"
            Path(args.save, f"{name}.{ext}").write_bytes(body)
        times = []
        prof = cProfile.Profile() if args.profile else None
        for _ in range(args.iter):
            t0 = time.process_time()
            if prof:
                prof.enable()
            client.get(url).get_data()
            if prof:
                prof.disable()
            times.append((time.process_time() - t0) * 1000)
        med = statistics.median(times)
        total += med
        print(f"{name:28s} {med:8.1f} ms  {len(body):9d} B", flush=True)
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
    print(f"{'total':28s} {total:8.1f} ms")


if __name__ == "__main__":
    main()
