"""Operations and their shards in SQLite (stdlib ``sqlite3``), shared by every process.

Claiming is one atomic ``UPDATE … RETURNING`` so several gunicorn workers (each with a
dispatcher) never run the same operation. A RUNNING operation holds a lease that its dispatcher
renews; when a process dies the lease lapses and another dispatcher takes the operation over
(``attempt`` + 1), re-running only the shards not recorded as done.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
  id TEXT PRIMARY KEY, project TEXT NOT NULL, type TEXT NOT NULL, kind TEXT NOT NULL,
  state TEXT NOT NULL, description TEXT NOT NULL, priority INTEGER NOT NULL,
  request_id TEXT, body_hash TEXT NOT NULL, workload_tag TEXT, payload TEXT NOT NULL,
  create_time REAL NOT NULL, update_time REAL NOT NULL, start_time REAL, end_time REAL,
  total INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0, attempt INTEGER NOT NULL DEFAULT 0,
  error TEXT, destination_uris TEXT NOT NULL DEFAULT '[]', lease_until REAL, owner TEXT,
  deleted INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX IF NOT EXISTS op_request ON operations(project, request_id)
  WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS op_queue ON operations(state, priority DESC, create_time);
CREATE TABLE IF NOT EXISTS shards (
  op_id TEXT NOT NULL, idx INTEGER NOT NULL, spec TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0,
  runs INTEGER NOT NULL DEFAULT 0, result TEXT, PRIMARY KEY (op_id, idx));
"""
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def open_store(db: Path | str) -> Store:
    """The operation store for a setting: a SQLite file, or ``postgresql://…`` (the same
    interface, :class:`mapserver.jobs.store_pg.PgStore`, shared by many hosts)."""
    from mapserver.jobs.config import is_db_url

    if isinstance(db, str) and is_db_url(db):
        from mapserver.jobs.store_pg import PgStore

        return PgStore(db)  # type: ignore[return-value] - same interface
    return Store(Path(db))


def new_id() -> str:
    """24 upper-case base32 characters, like Earth Engine's server-assigned ids."""
    return base64.b32encode(os.urandom(15)).decode()


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        c = self.conn()
        c.executescript(SCHEMA)
        cols = {r["name"] for r in c.execute("PRAGMA table_info(operations)")}
        if "cpu_seconds" not in cols:  # stores made before batchEecuUsageSeconds
            try:
                c.execute("ALTER TABLE operations ADD COLUMN cpu_seconds REAL NOT NULL "
                          "DEFAULT 0")
            except sqlite3.OperationalError:  # another process added it first
                pass

    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None or getattr(self._local, "pid", None) != os.getpid():
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            c.row_factory = sqlite3.Row
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.pid = c, os.getpid()
        return c

    class _Tx:
        def __init__(self, c: sqlite3.Connection) -> None:
            self.c = c

        def __enter__(self) -> sqlite3.Connection:
            self.c.execute("BEGIN IMMEDIATE")
            return self.c

        def __exit__(self, exc_type, *_: object) -> None:
            self.c.execute("ROLLBACK" if exc_type else "COMMIT")

    def tx(self) -> _Tx:
        return Store._Tx(self.conn())

    def problem(self) -> str | None:
        """Why the store is unusable (for the health check), or None."""
        try:
            self.conn().execute("SELECT 1 FROM operations LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            return f"operation store: {str(exc).split(':')[0][:80]}"
        return None

    # --- operations ---------------------------------------------------------------------------
    def insert(self, row: dict, shards: list[dict]) -> tuple[dict, bool]:
        """Insert, or return the existing op for the same requestId (created False)."""
        with self.tx() as db:
            if row.get("request_id"):
                old = db.execute("SELECT * FROM operations WHERE project=? AND request_id=? "
                                 "AND deleted=0", (row["project"], row["request_id"])).fetchone()
                if old is not None:
                    return dict(old), False
            cols = ",".join(row)
            db.execute(f"INSERT INTO operations ({cols}) VALUES ({','.join('?' * len(row))})",
                       tuple(row.values()))
            db.executemany("INSERT INTO shards (op_id, idx, spec) VALUES (?,?,?)",
                           [(row["id"], i, json.dumps(s)) for i, s in enumerate(shards)])
        return self.get(row["id"]), True

    def get(self, op_id: str, project: str | None = None) -> dict | None:
        q = "SELECT * FROM operations WHERE id=? AND deleted=0"
        args: tuple = (op_id,)
        if project is not None:
            q += " AND project=?"
            args += (project,)
        r = self.conn().execute(q, args).fetchone()
        return dict(r) if r else None

    def list(self, project: str, where: str, args: list, limit: int, offset: int) -> list[dict]:
        rows = self.conn().execute(
            f"SELECT * FROM operations WHERE project=? AND deleted=0 {where} "
            "ORDER BY create_time DESC, id LIMIT ? OFFSET ?",
            [project, *args, limit, offset]).fetchall()
        return [dict(r) for r in rows]

    def count_by_state(self) -> dict[str, int]:
        """Operations by state (for /metrics), deleted ones left out."""
        rows = self.conn().execute("SELECT state, count(*) AS n FROM operations WHERE "
                                   "deleted=0 GROUP BY state").fetchall()
        return {r["state"]: int(r["n"]) for r in rows}

    def claim(self, owner: str, lease: float) -> dict | None:
        """Atomically take the best PENDING op, or a RUNNING/CANCELLING one whose lease lapsed."""
        now = time.time()
        with self.tx() as db:
            r = db.execute(
                "UPDATE operations SET state=CASE WHEN state='CANCELLING' THEN state ELSE "
                "'RUNNING' END, owner=?, lease_until=?, attempt=attempt+1, update_time=?, "
                "start_time=COALESCE(start_time, ?) WHERE id = (SELECT id FROM operations "
                "WHERE deleted>=0 AND (state='PENDING' OR (state IN ('RUNNING','CANCELLING') "
                "AND lease_until < ?)) ORDER BY priority DESC, create_time, id LIMIT 1) "
                "RETURNING *", (owner, now + lease, now, now, now)).fetchone()
        return dict(r) if r else None

    def renew(self, op_id: str, owner: str, lease: float) -> str | None:
        """Extend the lease; returns the current state (None if another owner took it)."""
        with self.tx() as db:
            db.execute("UPDATE operations SET lease_until=? WHERE id=? AND owner=?",
                       (time.time() + lease, op_id, owner))
            r = db.execute("SELECT state, owner FROM operations WHERE id=?", (op_id,)).fetchone()
        return r["state"] if r and r["owner"] == owner else None

    def update(self, op_id: str, **fields: object) -> None:
        fields.setdefault("update_time", time.time())
        sets = ",".join(f"{k}=?" for k in fields)
        with self.tx() as db:
            db.execute(f"UPDATE operations SET {sets} WHERE id=?", (*fields.values(), op_id))

    def finish(self, op_id: str, state: str, error: dict | None = None,
               uris: list[str] | None = None) -> None:
        now = time.time()
        self.update(op_id, state=state, end_time=now, update_time=now, lease_until=None,
                    error=json.dumps(error) if error else None,
                    **({"destination_uris": json.dumps(uris)} if uris is not None else {}))

    def request_cancel(self, op_id: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE operations SET state=CASE WHEN state='PENDING' THEN 'CANCELLED' "
                       "ELSE 'CANCELLING' END, update_time=?, end_time=CASE WHEN "
                       "state='PENDING' THEN ? ELSE end_time END, error=CASE WHEN "
                       "state='PENDING' THEN ? ELSE error END WHERE id=? AND state IN "
                       "('PENDING','RUNNING')", (time.time(), time.time(),
                                                 json.dumps({"code": 1, "message": "Cancelled."}),
                                                 op_id))

    def delete(self, op_id: str) -> None:
        """Forget the record; its requestId is free again (a replay starts a new operation)."""
        self.update(op_id, deleted=1, request_id=None)

    # --- shards -------------------------------------------------------------------------------
    def pending_shards(self, op_id: str) -> list[tuple[int, dict]]:
        rows = self.conn().execute("SELECT idx, spec FROM shards WHERE op_id=? AND done=0 "
                                   "ORDER BY idx", (op_id,)).fetchall()
        return [(r["idx"], json.loads(r["spec"])) for r in rows]

    def shard_results(self, op_id: str) -> list[tuple[int, dict, dict]]:
        rows = self.conn().execute("SELECT idx, spec, result FROM shards WHERE op_id=? "
                                   "ORDER BY idx", (op_id,)).fetchall()
        return [(r["idx"], json.loads(r["spec"]), json.loads(r["result"] or "{}")) for r in rows]

    def mark_started(self, op_id: str, idxs: list[int]) -> None:
        with self.tx() as db:
            db.executemany("UPDATE shards SET runs=runs+1 WHERE op_id=? AND idx=?",
                           [(op_id, i) for i in idxs])

    def shard_done(self, op_id: str, idx: int, result: dict) -> None:
        with self.tx() as db:
            db.execute("UPDATE shards SET done=1, result=? WHERE op_id=? AND idx=? AND done=0",
                       (json.dumps(result), op_id, idx))
            db.execute("UPDATE operations SET done=(SELECT COUNT(*) FROM shards WHERE op_id=? "
                       "AND done=1), update_time=?, cpu_seconds=cpu_seconds+? WHERE id=?",
                       (op_id, time.time(), float(result.get("cpu", 0.0)), op_id))

    def add_cpu(self, op_id: str, seconds: float) -> None:
        with self.tx() as db:
            db.execute("UPDATE operations SET cpu_seconds=cpu_seconds+? WHERE id=?",
                       (max(0.0, seconds), op_id))
