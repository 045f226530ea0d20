"""The README's three complete request bodies are accepted as they are written."""

from __future__ import annotations

import json
import re

from mapserver.jobs.wire import parse_image, parse_map, parse_video
from mapserver.settings import PROJECT_ROOT


def test_readme_request_bodies_parse(app):
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("## Batch exports", 1)[1].split("\n## ", 1)[0]
    bodies = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S)]
    catalog = app.extensions["mapserver"].catalog
    image, tiles, video = bodies
    plan = parse_image(image, catalog)
    assert plan.priority == 200 and len(plan.payload["files"]) == 6
    plan = parse_map(tiles, catalog, 100_000)
    assert plan.payload["tileCount"] == sum(len(s["tiles"]) for s in plan.shards) == 1 + 4 + 4 + 6
    plan = parse_video(video, catalog)
    assert len(plan.shards) == 5 and plan.payload["fps"] == 2.0
