"""The jobs API the REST layer and the CLI call: submit, get, list, cancel, wait, delete."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time

from mapserver import limits
from mapserver.catalog.model import Catalog
from mapserver.jobs.ceilings import check_ceilings
from mapserver.jobs.config import JobConfig
from mapserver.jobs.dispatcher import Dispatcher
from mapserver.jobs.errors import ApiError, invalid
from mapserver.jobs.extras import check_submit
from mapserver.jobs.store import TERMINAL, new_id, open_store
from mapserver.jobs.wire import TYPES, JobPlan, parse_image, parse_map, parse_video

METADATA_TYPE = "type.googleapis.com/google.earthengine.v1.OperationMetadata"
FILTER_TERM = re.compile(r'^\s*(?:metadata\.)?(state|type|createTime)\s*(=|>=|<=|>|<)\s*'
                         r'"?([^"\s]+)"?\s*$')
STAGES = {"image": ("Compute", "Render image strips"), "map": ("Compute", "Render tiles"),
          "video": ("Compute", "Render frames")}


def rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def body_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
                          ).hexdigest()


class JobService:
    def __init__(self, config: JobConfig, catalog: Catalog, catalog_key: tuple,
                 tile_cache_dir: str | None = None) -> None:
        from mapserver.jobs.assets import LiveCatalog

        self.config = config
        self.tile_cache_dir = tile_cache_dir
        self.live = LiveCatalog(catalog, config.asset_root)
        if config.asset_root is not None and len(catalog_key) == 2:
            catalog_key = (*catalog_key, str(config.asset_root))
        self.store = open_store(config.db_url or config.db_path)
        self.dispatcher = Dispatcher(config, self.store, catalog_key)
        if config.dispatch:
            self.dispatcher.start()

    @property
    def catalog(self) -> Catalog:
        """The catalog plus the published assets (current: reloaded after a publish)."""
        return self.live.current()

    def close(self, crash: bool = False) -> None:
        self.dispatcher.stop(crash=crash)

    def submit(self, project: str, kind: str, body: object, http_base: str = "") -> dict:
        if kind == "image":
            plan: JobPlan = parse_image(body, self.catalog)
        elif kind == "map":
            plan = parse_map(body, self.catalog, limits.current().jobs_max_tiles)
        else:
            plan = parse_video(body, self.catalog)
        check_ceilings(plan)  # server-side limits, whatever maxPixels says (jobs/ceilings.py)
        check_submit(kind, self.config)  # an optional extra it needs (jobs/extras.py)
        from mapserver.jobs.destinations import AssetTarget, destination

        dest = plan.payload["dest"]
        target = destination(self.config, dest, plan.description)  # unconfigured: fails now
        if isinstance(target, AssetTarget) and not dest["overwrite"]:
            from mapserver.jobs.assets import exists

            if exists(target.root, target.project, target.path):
                raise ApiError("ALREADY_EXISTS", f"Cannot overwrite asset '{dest['asset']}': "
                               "it exists; set overwrite to true to replace it.")
        assert isinstance(body, dict)
        h = body_hash(body)
        now = time.time()
        payload = dict(plan.payload, httpBase=http_base)
        if payload.get("publishTileCache"):
            if not self.tile_cache_dir:
                raise ApiError("FAILED_PRECONDITION", "publishTileCache: no tile cache directory "
                               "is configured")
            payload["tileCacheDir"] = self.tile_cache_dir
        row = {"id": new_id(), "project": project, "type": TYPES[kind], "kind": kind,
               "state": "PENDING", "description": plan.description, "priority": plan.priority,
               "request_id": plan.request_id, "body_hash": h, "workload_tag": plan.workload_tag,
               "payload": json.dumps(payload), "create_time": now, "update_time": now,
               "total": len(plan.shards)}
        op, created = self.store.insert(row, plan.shards)
        if not created and op["body_hash"] != h:
            raise ApiError("ALREADY_EXISTS", f"An operation with requestId '{plan.request_id}' "
                           "already exists with a different request body.")
        return self.to_json(op)

    def _get(self, project: str, op_id: str) -> dict:
        op = self.store.get(op_id, project)
        if op is None:
            raise ApiError("NOT_FOUND", f"Operation projects/{project}/operations/{op_id} "
                           "not found.")
        return op

    def get(self, project: str, op_id: str) -> dict:
        return self.to_json(self._get(project, op_id))

    def cancel(self, project: str, op_id: str) -> dict:
        self._get(project, op_id)
        self.store.request_cancel(op_id)
        return {}

    def delete(self, project: str, op_id: str) -> dict:
        self._get(project, op_id)
        self.store.delete(op_id)
        return {}

    def wait(self, project: str, op_id: str, timeout: object) -> dict:
        secs = self.config.max_wait_seconds
        if timeout is not None:
            m = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(timeout).strip())
            if not m:
                raise invalid("timeout must be a Duration such as \"3.5s\"")
            secs = min(float(m.group(1)), secs)
        end = time.monotonic() + secs
        while True:
            op = self._get(project, op_id)
            if op["state"] in TERMINAL or time.monotonic() >= end:
                return self.to_json(op)
            time.sleep(0.1)

    def list(self, project: str, flt: str | None, page_size: object, token: str | None) -> dict:
        try:
            size = int(page_size) if page_size not in (None, "") else 50
        except (TypeError, ValueError) as exc:
            raise invalid("pageSize must be an integer") from exc
        size = max(1, min(size, 500))
        try:
            offset = int(token) if token else 0
        except ValueError as exc:
            raise invalid("Invalid pageToken") from exc
        where, args = [], []
        for term in re.split(r"\s+AND\s+", flt.strip()) if flt and flt.strip() else []:
            m = FILTER_TERM.match(term)
            if not m:
                raise invalid(f"Unsupported filter term '{term[:80]}'; use metadata.state, "
                              "metadata.type or metadata.createTime with = > >= < <=")
            field, op, value = m.groups()
            if field == "createTime":
                try:
                    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
                except ValueError as exc:
                    raise invalid(f"Invalid createTime '{value[:40]}'") from exc
                where.append(f"AND create_time {op} ?")
                args.append(t)
            else:
                if op != "=":
                    raise invalid(f"metadata.{field} supports only '='")
                where.append(f"AND {field} = ?")
                args.append(value)
        rows = self.store.list(project, " ".join(where), args, size + 1, offset)
        body: dict = {"operations": [self.to_json(r) for r in rows[:size]]}
        if len(rows) > size:
            body["nextPageToken"] = str(offset + size)
        return body

    def to_json(self, op: dict) -> dict:
        state = op["state"]
        total, done = op["total"], op["done"]
        name, desc = STAGES[op["kind"]]
        succeeded = state == "SUCCEEDED"
        meta = {"@type": METADATA_TYPE, "state": state, "description": op["description"],
                "type": op["type"], "priority": op["priority"],
                "createTime": rfc3339(op["create_time"]),
                "updateTime": rfc3339(op["update_time"]),
                "progress": 1.0 if succeeded else round(0.95 * done / max(total, 1), 4),
                "stages": [{"displayName": name, "completeWorkUnits": done,
                            "totalWorkUnits": total, "description": desc},
                           {"displayName": "Write", "completeWorkUnits": int(succeeded),
                            "totalWorkUnits": 1, "description": "Assemble and commit outputs"}],
                "attempt": max(op["attempt"], 1),
                "destinationUris": json.loads(op["destination_uris"])}
        for key, col in (("startTime", "start_time"), ("endTime", "end_time")):
            if op[col] is not None:
                meta[key] = rfc3339(op[col])
        if op["workload_tag"]:
            meta["workloadTag"] = op["workload_tag"]
        meta["batchEecuUsageSeconds"] = round(float(op.get("cpu_seconds") or 0.0), 3)
        notes = json.loads(op["payload"]).get("notifications") or []
        if notes:
            meta["notifications"] = notes
        out = {"name": f"projects/{op['project']}/operations/{op['id']}", "metadata": meta,
               "done": state in TERMINAL}
        if op["error"]:
            out["error"] = json.loads(op["error"])
        elif succeeded:
            out["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        return out
