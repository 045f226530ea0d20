"""Markdown table of server CPU ms per request: ours vs the MapServer peer vs the floor.

Usage: python bench/tools/cpu_table.py bench/.work/out/results.tsv [bench/.work/out/floor.tsv]

CPU ms per request (from /proc over the wrk run) is the bench's steadiest number on a shared
machine, so it is what the target (ours <= 0.8 x peer) is judged on; bytes show what the PNG
settings trade. ``floor`` is floor.py's fastest render + encode, ``ms_like`` its render + PNG
with MapServer's settings (no row filter, zlib 6), both single-process medians.
"""

from __future__ import annotations

import csv
import sys


def _rows(path: str) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader((ln for ln in f if not ln.startswith("#")), delimiter="\t"))


def _num(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "", "NA") else None
    except ValueError:
        return None


def main(argv: list[str]) -> None:
    results = _rows(argv[0])
    floor = {r["name"]: r for r in _rows(argv[1])} if len(argv) > 1 else {}
    by: dict[str, dict[str, dict[str, str]]] = {}
    for r in results:
        by.setdefault(r["name"], {})[r["side"]] = r
    print("| request | peer cpu ms | ours cpu ms | ours/peer | floor ms | ms_like ms "
          "| peer bytes | our bytes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for name, sides in by.items():
        p, o = sides.get("peer", {}), sides.get("project", {})
        pc, oc = _num(p.get("cpu_ms_per_req")), _num(o.get("cpu_ms_per_req"))
        ratio = f"{oc / pc:.2f}" if pc and oc else "-"
        if pc and oc:
            ratios.append(oc / pc)
        fl = floor.get(name, {})
        print(f"| {name} | {pc if pc is not None else '-'} | {oc if oc is not None else '-'} "
              f"| {ratio}{' ✗' if pc and oc and oc > 0.8 * pc else ''} "
              f"| {fl.get('floor_ms', '-')} | {fl.get('ms_like_ms', '-')} "
              f"| {p.get('bytes', '-')} | {o.get('bytes', '-')} |")
    if ratios:
        ratios.sort()
        print(f"\n{len(ratios)} rows; ours/peer median {ratios[len(ratios) // 2]:.2f}, "
              f"max {ratios[-1]:.2f}; rows above 0.8: {sum(r > 0.8 for r in ratios)}")


if __name__ == "__main__":
    main(sys.argv[1:])
