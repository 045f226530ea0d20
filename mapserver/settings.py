"""Deployment settings, read from the environment once at start-up.

| variable | default | meaning |
| --- | --- | --- |
| MAPSERVER_SERVICES | ``./services``, else the clone's | folders, ``os.pathsep``-separated |
| MAPSERVER_DATA | ``./data``, else the clone's | where relative data sources are looked up |
| MAPSERVER_OUTPUT | ``<tmp>/mapserver-output`` | export images behind ``f=json`` hrefs (a folder
  or ``s3://bucket/prefix``, shared by every host) |
| MAPSERVER_OUTPUT_MAX_AGE | ``900`` | seconds an export image is kept (at least) |
| MAPSERVER_PNG_COMPRESSION | ``2`` | deflate level for PNG output (0-9): CPU versus bytes |
| MAPSERVER_TILE_CACHE | ``<tmp>/mapserver-tiles`` | rendered tiles of cached services (a folder
  or ``s3://bucket/prefix``) |
| MAPSERVER_MAX_* and friends | see ``mapserver/limits.py`` | request limits (README "Settings") |
| MAPSERVER_USERS | unset | users file (JSON, argon2 password hashes): turns token security on |
| MAPSERVER_SECRET | random at start | HMAC key signing tokens (set it: shared by all workers) |
| MAPSERVER_TOKEN_EXPIRATION | ``60`` | minutes a token lives when ``expiration`` is not given |
| MAPSERVER_TOKEN_MAX_EXPIRATION | ``1440`` | the longest ``expiration`` granted (minutes) |
| MAPSERVER_API_KEYS | unset | comma-separated bearer keys for ``/v1`` (also turn security on) |
| MAPSERVER_JOBS_API | ``on`` | ``off``: no ``/v1`` batch API at all (404) and no dispatcher |
| MAPSERVER_JOBS_ROLES | unset | roles whose users may call ``/v1`` (unset: any signed-in user) |
| MAPSERVER_CORS_ORIGINS | ``*`` | origins for CORS; ``*`` applies to public services only |
| MAPSERVER_PROXIES | ``0`` | trusted reverse proxies in front (X-Forwarded-For/-Proto/-Host) |
| MAPSERVER_MAX_URL_LENGTH | ``16384`` | longest request target (path + query), bytes; else 414 |
| MAPSERVER_THREADS | ``4`` | threads per gunicorn worker; renders still run one at a time |
| MAPSERVER_WAIT_SLOTS | threads // 2 | blocking ``:wait`` calls per worker; more return at once |
| MAPSERVER_LOG_FORMAT | ``text`` | ``json``: one JSON object per log line (request id, duration) |
| MAPSERVER_METRICS | ``on`` | ``off``: no ``/metrics`` (Prometheus text format) |
| MAPSERVER_RELOAD | ``2`` | seconds between checks of the definition files (``0``: SIGHUP only) |
| MAPSERVER_METATILE | ``4`` | tiles are rendered in blocks of N×N (labels placed once per block) |
| MAPSERVER_METATILE_BUFFER | ``64`` | pixels drawn around a metatile, then cut off |
| MAPSERVER_S3_ENDPOINT | unset | endpoint URL of the S3-compatible store (``s3://`` locations) |
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mapserver.limits import Limits

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def clone_root() -> Path | None:
    """The source checkout this package runs from (an editable install, or ``python`` started
    in the clone), else None: installed non-editable, the package's parent is site-packages,
    which holds no services of ours."""
    return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else None


def default_dir(name: str) -> Path:
    """``./<name>`` of the current directory if it exists, else the clone's ``<name>`` if there
    is one, else ``./<name>`` (missing: ``mapserver serve`` says so). So the server finds the
    sample services from the clone, and an operator's own folders from wherever it runs."""
    here = Path.cwd() / name
    clone = clone_root()
    if here.is_dir() or clone is None or not (clone / name).is_dir():
        return here
    return clone / name


@dataclass(frozen=True)
class Settings:
    service_dirs: tuple[Path, ...] = field(default_factory=lambda: (default_dir("services"),))
    data_dir: Path = field(default_factory=lambda: default_dir("data"))
    # a folder (Path) or an object store location (str, ``s3://bucket/prefix``): mapserver.blobs
    output_dir: Path | str = Path(tempfile.gettempdir()) / "mapserver-output"
    output_max_age: float = 900.0
    png_compression: int = 2
    tile_cache_dir: Path | str = Path(tempfile.gettempdir()) / "mapserver-tiles"
    limits: Limits = field(default_factory=Limits)  # request limits (mapserver/limits.py)
    # access control and serving (mapserver/security/, mapserver/serving.py)
    users_file: Path | None = None
    secret: str | None = None
    token_expiration: float = 60.0  # minutes
    token_max_expiration: float = 1440.0  # minutes
    api_keys: tuple[str, ...] = ()
    jobs_api: bool = True
    jobs_roles: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ("*",)
    proxies: int = 0
    max_url_length: int = 16384
    threads: int = 4
    wait_slots: int | None = None  # None: threads // 2
    # operations (issue 11): logs, metrics, hot reload, metatiles, object store
    log_format: str = "text"  # "text" | "json"
    metrics: bool = True
    reload_interval: float = 2.0  # seconds; 0: reload on SIGHUP only
    metatile: int = 4
    metatile_buffer: int = 64
    s3_endpoint: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        base = cls()
        dirs = env.get("MAPSERVER_SERVICES")
        return cls(
            service_dirs=tuple(Path(p) for p in dirs.split(os.pathsep) if p) if dirs
            else base.service_dirs,
            data_dir=Path(env.get("MAPSERVER_DATA", base.data_dir)),
            output_dir=_location(env, "MAPSERVER_OUTPUT", base.output_dir),
            output_max_age=float(env.get("MAPSERVER_OUTPUT_MAX_AGE", base.output_max_age)),
            png_compression=max(0, min(9, int(env.get("MAPSERVER_PNG_COMPRESSION",
                                                      base.png_compression)))),
            tile_cache_dir=_location(env, "MAPSERVER_TILE_CACHE", base.tile_cache_dir),
            limits=Limits.from_env(env),
            users_file=Path(env["MAPSERVER_USERS"]) if env.get("MAPSERVER_USERS") else None,
            secret=env.get("MAPSERVER_SECRET") or None,
            token_expiration=float(env.get("MAPSERVER_TOKEN_EXPIRATION",
                                           base.token_expiration)),
            token_max_expiration=float(env.get("MAPSERVER_TOKEN_MAX_EXPIRATION",
                                               base.token_max_expiration)),
            api_keys=_list(env.get("MAPSERVER_API_KEYS")),
            jobs_api=env.get("MAPSERVER_JOBS_API", "on").strip().lower()
            not in ("off", "0", "false", "no"),
            jobs_roles=_list(env.get("MAPSERVER_JOBS_ROLES")),
            cors_origins=_list(env.get("MAPSERVER_CORS_ORIGINS", "*")),
            proxies=max(0, int(env.get("MAPSERVER_PROXIES", base.proxies))),
            max_url_length=max(1024, int(env.get("MAPSERVER_MAX_URL_LENGTH",
                                                 base.max_url_length))),
            threads=max(1, int(env.get("MAPSERVER_THREADS", base.threads))),
            wait_slots=int(env["MAPSERVER_WAIT_SLOTS"]) if env.get("MAPSERVER_WAIT_SLOTS")
            else None,
            log_format="json" if env.get("MAPSERVER_LOG_FORMAT", "").strip().lower() == "json"
            else "text",
            metrics=_flag(env.get("MAPSERVER_METRICS"), base.metrics),
            reload_interval=max(0.0, float(env.get("MAPSERVER_RELOAD", base.reload_interval))),
            metatile=max(1, min(16, int(env.get("MAPSERVER_METATILE", base.metatile)))),
            metatile_buffer=max(0, min(512, int(env.get("MAPSERVER_METATILE_BUFFER",
                                                        base.metatile_buffer)))),
            s3_endpoint=env.get("MAPSERVER_S3_ENDPOINT") or None,
        )


def _location(env: dict[str, str], name: str, default: Path | str) -> Path | str:
    """A store setting: ``s3://bucket/prefix`` stays a string (checked here, so a malformed
    one, or one without boto3 installed, stops the start-up with its reason); anything else
    is a local folder."""
    value = (env.get(name) or "").strip()
    if not value:
        return default
    if value.startswith("s3://"):
        import importlib.util

        from mapserver.blobs import parse_s3

        try:
            parse_s3(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if importlib.util.find_spec("boto3") is None:
            raise ValueError(f"{name}={value} needs boto3: pip install 'mapserver[s3]'")
        return value
    return Path(value)


def _flag(value: str | None, default: bool) -> bool:
    """An on/off setting: off, 0, false, no (any case) are off; unset is the default."""
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in ("off", "0", "false", "no")


def _list(value: str | None) -> tuple[str, ...]:
    """A comma-separated setting as a tuple of its non-empty, stripped items."""
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())
