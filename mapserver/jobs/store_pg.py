"""Operations and their shards in PostgreSQL, shared by every process of every host.

The same interface and semantics as the SQLite :class:`mapserver.jobs.store.Store`
(``MAPSERVER_JOBS_DB=postgresql://user:password@host/db`` selects this one). Claiming is one
``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``: two dispatchers on two
hosts never take the same operation, and neither waits for the other's row lock. Leases are
compared with the database's clock, not the hosts' (clocks of hosts drift; a lease decided on
two clocks could be taken over early). Tables are prefixed ``mapserver_`` so the store may
share a database with other applications.

Each thread of each process has its own connection (psycopg connections must not cross a fork
and are not for concurrent use); a broken one (the server restarted) is replaced on next use.
A database that does not answer is :class:`StoreUnreachable` (HTTP 503 in the jobs API), and
the dispatcher's claim sees "nothing to do" until it is back.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from mapserver.jobs.errors import ApiError

log = logging.getLogger(__name__)
OPS, SHARDS = "mapserver_operations", "mapserver_shards"
NOW = "extract(epoch from clock_timestamp())"
SCHEMA_LOCK = 0x6D617073  # an advisory lock: two processes creating the schema at once
SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {OPS} (
  id TEXT PRIMARY KEY, project TEXT NOT NULL, type TEXT NOT NULL, kind TEXT NOT NULL,
  state TEXT NOT NULL, description TEXT NOT NULL, priority INTEGER NOT NULL,
  request_id TEXT, body_hash TEXT NOT NULL, workload_tag TEXT, payload TEXT NOT NULL,
  create_time DOUBLE PRECISION NOT NULL, update_time DOUBLE PRECISION NOT NULL,
  start_time DOUBLE PRECISION, end_time DOUBLE PRECISION,
  total INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0, attempt INTEGER NOT NULL DEFAULT 0,
  error TEXT, destination_uris TEXT NOT NULL DEFAULT '[]', lease_until DOUBLE PRECISION,
  owner TEXT, deleted INTEGER NOT NULL DEFAULT 0,
  cpu_seconds DOUBLE PRECISION NOT NULL DEFAULT 0)""",
    f"CREATE UNIQUE INDEX IF NOT EXISTS {OPS}_request ON {OPS}(project, request_id) "
    "WHERE request_id IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS {OPS}_queue ON {OPS}(state, priority DESC, create_time)",
    f"CREATE INDEX IF NOT EXISTS {OPS}_project ON {OPS}(project, create_time DESC)",
    f"""CREATE TABLE IF NOT EXISTS {SHARDS} (
  op_id TEXT NOT NULL, idx INTEGER NOT NULL, spec TEXT NOT NULL,
  done INTEGER NOT NULL DEFAULT 0, runs INTEGER NOT NULL DEFAULT 0, result TEXT,
  PRIMARY KEY (op_id, idx))""",
]
F = TypeVar("F", bound=Callable[..., Any])


class StoreUnreachable(ApiError):
    """The operation database does not answer: the server's problem (503 UNAVAILABLE)."""

    def __init__(self, message: str) -> None:
        super().__init__("UNAVAILABLE", message)
        self.code = 503


def _down(exc: Exception) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def reason(exc: Exception) -> str:
    """One short line, without the password or host details a driver message may carry."""
    if isinstance(exc, StoreUnreachable):
        return exc.message
    text = str(exc)
    if "password authentication failed" in text:
        return "password authentication failed"
    if "does not exist" in text and "database" in text:
        return "the database does not exist"
    if any(w in text for w in ("Connection refused", "could not connect", "timeout expired",
                                "server closed", "connection is lost", "the connection is closed",
                                "consuming input failed", "Name or service not known",
                                "connection failed")):
        return "the database server does not answer"
    return type(exc).__name__


def guarded(fn: F) -> F:
    """Connection failures become :class:`StoreUnreachable` (and the connection is dropped).
    A failure on a connection this thread had kept (the server restarted, a firewall dropped
    it while idle) is retried once on a new connection: a transaction that did not commit was
    rolled back by the server, so running it again is safe."""
    @wraps(fn)
    def wrapper(self: PgStore, *args: Any, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            kept = getattr(self._local, "conn", None) is not None
            try:
                return fn(self, *args, **kwargs)
            except StoreUnreachable:
                raise
            except Exception as exc:
                if not _down(exc):
                    raise
                self._drop()
                if attempt == 1 and kept:
                    continue
                raise StoreUnreachable(f"operation store: {reason(exc)}") from exc
        raise AssertionError("unreachable")
    return wrapper  # type: ignore[return-value]


class PgStore:
    def __init__(self, url: str, connect_timeout: int = 5) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise RuntimeError("MAPSERVER_JOBS_DB=postgresql://… needs psycopg: "
                               "pip install 'mapserver[postgres]'") from exc
        self.url = url
        self.connect_timeout = connect_timeout
        self._local = threading.local()
        self._last_warning = 0.0
        self._schema_pid = 0
        try:
            self.conn()  # say it at start-up; the server still starts (health check: 503)
        except StoreUnreachable as exc:
            log.error("%s; the batch API answers 503 until it is back", exc.message)

    def _create_schema(self, c: Any) -> None:
        with c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for stmt in SCHEMA:
                c.execute(stmt)

    def conn(self):  # noqa: ANN201 - a psycopg.Connection (psycopg is an optional dependency)
        import psycopg
        from psycopg.rows import dict_row

        c = getattr(self._local, "conn", None)
        if c is None or self._local.pid != os.getpid() or c.closed or c.broken:
            try:
                c = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                    connect_timeout=self.connect_timeout,
                                    application_name="mapserver-jobs")
            except psycopg.ProgrammingError as exc:  # its message may quote the URL: not shown
                raise StoreUnreachable("operation store: MAPSERVER_JOBS_DB is not a valid "
                                       "postgresql:// URL") from exc
            except psycopg.Error as exc:
                raise StoreUnreachable(f"operation store: {reason(exc)}") from exc
            try:
                if self._schema_pid != os.getpid():  # once per process, whoever connects
                    self._create_schema(c)
                    self._schema_pid = os.getpid()
            except psycopg.Error as exc:
                c.close()
                raise StoreUnreachable(f"operation store: {reason(exc)}") from exc
            self._local.conn, self._local.pid = c, os.getpid()
        return c

    def _drop(self) -> None:
        c = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is not None and self._local.pid == os.getpid():
            try:
                c.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    @contextmanager
    def tx(self) -> Iterator[Any]:
        c = self.conn()
        with c.transaction():
            yield c

    def close(self) -> None:
        self._drop()

    def problem(self) -> str | None:
        """Why the store is unusable (for the health check), or None."""
        import psycopg

        try:
            self.conn().execute(f"SELECT 1 FROM {OPS} LIMIT 1").fetchall()
        except StoreUnreachable as exc:
            return exc.message
        except psycopg.Error as exc:
            self._drop()
            return f"operation store: {reason(exc)}"
        return None

    # --- operations ---------------------------------------------------------------------------
    @guarded
    def insert(self, row: dict, shards: list[dict]) -> tuple[dict, bool]:
        """Insert, or return the existing op for the same requestId (created False)."""
        with self.tx() as db:
            cols = ",".join(row)
            new = db.execute(f"INSERT INTO {OPS} ({cols}) VALUES ({','.join(['%s'] * len(row))}) "
                             "ON CONFLICT (project, request_id) WHERE request_id IS NOT NULL "
                             "DO NOTHING RETURNING id", tuple(row.values())).fetchone()
            if new is None:
                old = db.execute(f"SELECT * FROM {OPS} WHERE project=%s AND request_id=%s "
                                 "AND deleted=0", (row["project"], row["request_id"])).fetchone()
                return dict(old), False
            with db.cursor() as cur:
                cur.executemany(f"INSERT INTO {SHARDS} (op_id, idx, spec) VALUES (%s,%s,%s)",
                                [(row["id"], i, json.dumps(s)) for i, s in enumerate(shards)])
        return self.get(row["id"]), True

    @guarded
    def get(self, op_id: str, project: str | None = None) -> dict | None:
        q = f"SELECT * FROM {OPS} WHERE id=%s AND deleted=0"
        args: tuple = (op_id,)
        if project is not None:
            q += " AND project=%s"
            args += (project,)
        r = self.conn().execute(q, args).fetchone()
        return dict(r) if r else None

    @guarded
    def list(self, project: str, where: str, args: list, limit: int, offset: int) -> list[dict]:
        """``where`` is the service's allowlisted filter with ``?`` placeholders (as SQLite)."""
        where = where.replace("%", "%%").replace("?", "%s")
        rows = self.conn().execute(
            f"SELECT * FROM {OPS} WHERE project=%s AND deleted=0 {where} "
            "ORDER BY create_time DESC, id LIMIT %s OFFSET %s",
            [project, *args, limit, offset]).fetchall()
        return [dict(r) for r in rows]

    @guarded
    def count_by_state(self) -> dict[str, int]:
        """Operations by state (for /metrics), deleted ones left out."""
        rows = self.conn().execute(f"SELECT state, count(*) AS n FROM {OPS} WHERE deleted=0 "
                                   "GROUP BY state").fetchall()
        return {r["state"]: int(r["n"]) for r in rows}

    def claim(self, owner: str, lease: float) -> dict | None:
        """Atomically take the best PENDING op, or a RUNNING/CANCELLING one whose lease lapsed;
        rows another dispatcher is claiming right now are skipped, not waited for. None also
        while the database does not answer (nothing to do until it is back)."""
        try:
            return self._claim(owner, lease)
        except StoreUnreachable as exc:
            self._warn(exc)
            return None

    @guarded
    def _claim(self, owner: str, lease: float) -> dict | None:
        with self.tx() as db:
            r = db.execute(
                f"UPDATE {OPS} SET state=CASE WHEN state='CANCELLING' THEN state ELSE "
                f"'RUNNING' END, owner=%s, lease_until={NOW} + %s, attempt=attempt+1, "
                f"update_time={NOW}, start_time=COALESCE(start_time, {NOW}) "
                f"WHERE id = (SELECT id FROM {OPS} WHERE deleted>=0 AND (state='PENDING' OR "
                f"(state IN ('RUNNING','CANCELLING') AND lease_until < {NOW})) "
                "ORDER BY priority DESC, create_time, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                "RETURNING *", (owner, lease)).fetchone()
        return dict(r) if r else None

    def renew(self, op_id: str, owner: str, lease: float) -> str | None:
        """Extend the lease; returns the current state (None if another owner took it, or if
        the database does not answer: the dispatcher then walks away and the operation is
        taken over once its lease lapses)."""
        try:
            return self._renew(op_id, owner, lease)
        except StoreUnreachable as exc:
            self._warn(exc)
            return None

    @guarded
    def _renew(self, op_id: str, owner: str, lease: float) -> str | None:
        with self.tx() as db:
            r = db.execute(f"UPDATE {OPS} SET lease_until={NOW} + %s WHERE id=%s AND "
                           "owner=%s RETURNING state", (lease, op_id, owner)).fetchone()
        return r["state"] if r else None

    @guarded
    def update(self, op_id: str, **fields: object) -> None:
        fields.setdefault("update_time", time.time())
        sets = ",".join(f"{k}=%s" for k in fields)
        with self.tx() as db:
            db.execute(f"UPDATE {OPS} SET {sets} WHERE id=%s", (*fields.values(), op_id))

    def finish(self, op_id: str, state: str, error: dict | None = None,
               uris: list[str] | None = None) -> None:
        now = time.time()
        self.update(op_id, state=state, end_time=now, update_time=now, lease_until=None,
                    error=json.dumps(error) if error else None,
                    **({"destination_uris": json.dumps(uris)} if uris is not None else {}))

    @guarded
    def request_cancel(self, op_id: str) -> None:
        now = time.time()
        with self.tx() as db:
            db.execute(f"UPDATE {OPS} SET state=CASE WHEN state='PENDING' THEN 'CANCELLED' "
                       "ELSE 'CANCELLING' END, update_time=%s, end_time=CASE WHEN "
                       "state='PENDING' THEN %s ELSE end_time END, error=CASE WHEN "
                       "state='PENDING' THEN %s ELSE error END WHERE id=%s AND state IN "
                       "('PENDING','RUNNING')",
                       (now, now, json.dumps({"code": 1, "message": "Cancelled."}), op_id))

    def delete(self, op_id: str) -> None:
        """Forget the record; its requestId is free again (a replay starts a new operation)."""
        self.update(op_id, deleted=1, request_id=None)

    # --- shards -------------------------------------------------------------------------------
    @guarded
    def pending_shards(self, op_id: str) -> list[tuple[int, dict]]:
        rows = self.conn().execute(f"SELECT idx, spec FROM {SHARDS} WHERE op_id=%s AND done=0 "
                                   "ORDER BY idx", (op_id,)).fetchall()
        return [(r["idx"], json.loads(r["spec"])) for r in rows]

    @guarded
    def shard_results(self, op_id: str) -> list[tuple[int, dict, dict]]:
        rows = self.conn().execute(f"SELECT idx, spec, result FROM {SHARDS} WHERE op_id=%s "
                                   "ORDER BY idx", (op_id,)).fetchall()
        return [(r["idx"], json.loads(r["spec"]), json.loads(r["result"] or "{}")) for r in rows]

    @guarded
    def mark_started(self, op_id: str, idxs: list[int]) -> None:
        with self.tx() as db, db.cursor() as cur:
            cur.executemany(f"UPDATE {SHARDS} SET runs=runs+1 WHERE op_id=%s AND idx=%s",
                            [(op_id, i) for i in idxs])

    @guarded
    def shard_done(self, op_id: str, idx: int, result: dict) -> None:
        with self.tx() as db:
            db.execute(f"UPDATE {SHARDS} SET done=1, result=%s WHERE op_id=%s AND idx=%s "
                       "AND done=0", (json.dumps(result), op_id, idx))
            db.execute(f"UPDATE {OPS} SET done=(SELECT COUNT(*) FROM {SHARDS} WHERE op_id=%s "
                       "AND done=1), update_time=%s, cpu_seconds=cpu_seconds+%s WHERE id=%s",
                       (op_id, time.time(), float(result.get("cpu", 0.0)), op_id))

    @guarded
    def add_cpu(self, op_id: str, seconds: float) -> None:
        with self.tx() as db:
            db.execute(f"UPDATE {OPS} SET cpu_seconds=cpu_seconds+%s WHERE id=%s",
                       (max(0.0, seconds), op_id))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 60:
            self._last_warning = now
            log.warning("operation store unreachable: %s", reason(exc))
