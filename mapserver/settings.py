"""Deployment settings, read from the environment once at start-up.

| variable | default | meaning |
| --- | --- | --- |
| MAPSERVER_SERVICES | ``<project>/services`` | definition folders, ``os.pathsep``-separated |
| MAPSERVER_DATA | ``<project>/data`` | where relative data sources are looked up |
| MAPSERVER_OUTPUT | ``<tmp>/mapserver-output`` | export images behind ``f=json`` hrefs |
| MAPSERVER_OUTPUT_MAX_AGE | ``900`` | seconds an export image is kept (at least) |
| MAPSERVER_PNG_COMPRESSION | ``2`` | zlib level for PNG output (0-9): CPU versus bytes |
| MAPSERVER_TILE_CACHE | ``<tmp>/mapserver-tiles`` | rendered tiles of cached services |
| MAPSERVER_MAX_* and friends | see ``mapserver/limits.py`` | request limits (README "Settings") |
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mapserver.limits import Limits

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    service_dirs: tuple[Path, ...] = field(default_factory=lambda: (PROJECT_ROOT / "services",))
    data_dir: Path = PROJECT_ROOT / "data"
    output_dir: Path = Path(tempfile.gettempdir()) / "mapserver-output"
    output_max_age: float = 900.0
    png_compression: int = 2
    tile_cache_dir: Path = Path(tempfile.gettempdir()) / "mapserver-tiles"
    limits: Limits = field(default_factory=Limits)  # request limits (mapserver/limits.py)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        base = cls()
        dirs = env.get("MAPSERVER_SERVICES")
        return cls(
            service_dirs=tuple(Path(p) for p in dirs.split(os.pathsep) if p) if dirs
            else base.service_dirs,
            data_dir=Path(env.get("MAPSERVER_DATA", base.data_dir)),
            output_dir=Path(env.get("MAPSERVER_OUTPUT", base.output_dir)),
            output_max_age=float(env.get("MAPSERVER_OUTPUT_MAX_AGE", base.output_max_age)),
            png_compression=max(0, min(9, int(env.get("MAPSERVER_PNG_COMPRESSION",
                                                      base.png_compression)))),
            tile_cache_dir=Path(env.get("MAPSERVER_TILE_CACHE", base.tile_cache_dir)),
            limits=Limits.from_env(env),
        )
