"""Paired A/B of two source trees on the bench's export requests, in process (no gunicorn).

Usage (after bench/run.sh has built bench/data and bench/.work/requests.tsv):
  git worktree add /tmp/base <old commit>
  ln -s "$PWD/bench/data" /tmp/base/bench/data
  python bench/tools/ab_export.py --old /tmp/base --new . --rounds 12 --iter 5 [--only REGEX]

``AB_GUNICORN=1`` in the environment builds each app as in a gunicorn master (gunicorn's arbiter
imported first: ``warm()`` then freezes the start-up heap for the GC).

Two worker processes (bench/tools/ab_worker.py, one per tree) answer the same request in
turn, row by row, the order swapped every round. On a shared, noisy machine the paired ratio
(median over rounds of new/old) is far steadier than two separate runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", default=".")
    ap.add_argument("--requests", default=str(HERE.parent / ".work" / "requests.tsv"))
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--iter", type=int, default=5)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    lines = [ln for ln in Path(a.requests).read_text().splitlines()
             if ln.strip() and not ln.startswith("#")][1:]
    names = [ln.split("\t")[0] for ln in lines if re.search(a.only, ln.split("\t")[0])]
    workers = {side: subprocess.Popen(
        [sys.executable, str(HERE / "ab_worker.py"), str(Path(a.requests).resolve())],
        cwd=tree, env=dict(os.environ), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True) for side, tree in (("old", a.old), ("new", a.new))}
    for w in workers.values():
        assert w.stdout.readline().strip() == "ready"
    res = {n: {"old": [], "new": []} for n in names}
    for r in range(a.rounds):
        for n in names:
            for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
                w = workers[side]
                w.stdin.write(f"{n} {a.iter}\n")
                w.stdin.flush()
                res[n][side].append(statistics.median(json.loads(w.stdout.readline())))
        print(f"round {r + 1} done", file=sys.stderr, flush=True)
    for w in workers.values():
        w.stdin.close()
        w.wait()
    print("| request | old ms | new ms | new/old (min) | new/old (median of paired rounds) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for n in names:
        old, new = min(res[n]["old"]), min(res[n]["new"])
        paired = statistics.median(x / y for x, y in zip(res[n]["new"], res[n]["old"],
                                                          strict=True))
        print(f"| {n} | {old:.1f} | {new:.1f} | {new / old:.2f} | {paired:.2f} |")


if __name__ == "__main__":
    main()
