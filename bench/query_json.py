"""ms per request of World layer 1 ``query?where=1=1&outFields=*&returnGeometry=true&f=json``
(every country, with geometry: a ~430 KB JSON answer), in process with the Flask test client.

Why in process: the JSON encoder is what issue 11 changed (stdlib ``json`` plus a recursive
NaN sanitiser → orjson); gunicorn and sockets would add the same constant to both sides.

Before/after of two source trees (``git stash`` is not an option in a shared tree)::

    git worktree add --detach /tmp/before <commit before the change>
    PYTHONPATH=/tmp/before python bench/query_json.py     # the old encoder
    python bench/query_json.py                             # this tree

Both runs read the services and data of the tree this script is in, so only the code
differs. It prints which ``mapserver`` package it imported.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URL = ("/arcgis/rest/services/World/MapServer/1/query"
       "?where=1%3D1&outFields=*&returnGeometry=true&f={f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iter", type=int, default=30, help="timed requests per format")
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()

    import mapserver
    from mapserver.app import create_app
    from mapserver.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(service_dirs=(ROOT / "services",), data_dir=ROOT / "data",
                            output_dir=Path(tmp) / "out", tile_cache_dir=Path(tmp) / "tiles")
        client = create_app(settings).test_client()
        print(f"mapserver from {Path(mapserver.__file__).parent}")
        print("| request | JSON bytes | bytes sent | median ms | min ms | mean ms |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        rows = (("json", "json", {}), ("pjson", "pjson", {}),
                ("json, Accept-Encoding: gzip", "json", {"Accept-Encoding": "gzip"}))
        for label, f, headers in rows:
            url = URL.format(f=f)
            for _ in range(a.warmup):
                resp = client.get(url, headers=headers)
            body = resp.data
            sent = len(body)
            if resp.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            assert body.startswith(b"{") and b'"features"' in body, body[:200]
            times = []
            for _ in range(a.iter):
                t0 = time.perf_counter()
                resp = client.get(url, headers=headers)
                resp.data  # noqa: B018 - read the body, as a server would
                times.append((time.perf_counter() - t0) * 1000)
                assert resp.status_code == 200
            print(f"| {label} | {len(body)} | {sent} "
                  f"| {statistics.median(times):.1f} | {min(times):.1f} "
                  f"| {statistics.fmean(times):.1f} |")


if __name__ == "__main__":
    main()
