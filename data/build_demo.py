"""Build the tiny synthetic files under data/demo/ for the Samples/Demo service.

    python data/build_demo.py          # idempotent: every output is overwritten

They exercise export parameters that need something declared by the service:

- ``sites.geojson`` (EPSG:4326): four 6x6 degree squares at lon 2-8, 12-18, 22-28, 32-38,
  lat 2-8, with ``kind``, ``floors``, ``elevation`` (rangeInfos, parameterInfos) and
  ``valid_from``/``valid_to`` archive dates (historicMoment).
- ``sites_user1.geojson``: the same plus a fifth square at lon 42-48 (gdbVersion ``sde.USER1``).
- ``site_nad27.geojson`` (EPSG:4267, NAD27): one 0.001 degree square centred on 100 W 40 N,
  to see which datum transformation (datumTransformations) projects it: NAD27 to WGS 84
  transformations differ there by tens of metres.
- ``dem_2020.tif``, ``dem_2021.tif``, ``dem_2022.tif``: the Olinda DEM footprint
  (data/olinda/olinda_dem_utm25s.tif, EPSG:31985) with the constant values 10, 20, 30 where the
  DEM has data, a raster time series. Values are constant so a colour ramp shows each date
  as one colour.
Needs numpy, shapely, pyogrio and rasterio (the server's own dependencies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely

DATA = Path(__file__).resolve().parent
OUT = DATA / "demo"


def _ms(day: str) -> np.datetime64:
    return np.datetime64(day, "ms")


SITES = [  # name, kind, floors, elevation, valid_from, valid_to (None: still current)
    ("Alpha", "school", 1, 100.0, "2000-01-01", None),
    ("Bravo", "hospital", 3, 500.0, "2000-01-01", "2010-01-01"),
    ("Charlie", "park", 5, 1000.0, "2010-01-01", None),
    ("Delta", "school", 8, 1500.0, "2015-01-01", "2020-01-01"),
]
EXTRA = ("Echo", "hospital", 2, 700.0, "2005-01-01", None)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()


def write_sites(path: Path, rows: list[tuple]) -> None:
    _remove(path)
    geoms = [shapely.box(i * 10 + 2, 2, i * 10 + 8, 8) for i in range(len(rows))]
    to = np.array([_ms(r[5]) if r[5] else np.datetime64("NaT", "ms") for r in rows])
    fields = {
        "name": np.array([r[0] for r in rows], dtype=object),
        "kind": np.array([r[1] for r in rows], dtype=object),
        "floors": np.array([r[2] for r in rows], dtype="int32"),
        "elevation": np.array([r[3] for r in rows], dtype="float64"),
        "valid_from": np.array([_ms(r[4]) for r in rows]),
        "valid_to": to,
    }
    tz = {k: np.full(len(rows), 100, dtype="int32") for k in ("valid_from", "valid_to")}
    pyogrio.raw.write(str(path), shapely.to_wkb(geoms), list(fields.values()),
                      list(fields.keys()), layer=path.stem, driver="GeoJSON", crs="EPSG:4326",
                      geometry_type="Polygon", gdal_tz_offsets=tz)


def write_nad27(path: Path) -> None:
    _remove(path)
    geom = shapely.box(-100.0005, 39.9995, -99.9995, 40.0005)
    pyogrio.raw.write(str(path), shapely.to_wkb([geom]), [np.array(["NAD27 square"],
                      dtype=object)], ["name"], layer=path.stem, driver="GeoJSON",
                      crs="EPSG:4267", geometry_type="Polygon")


def write_series() -> None:
    with rasterio.open(DATA / "olinda" / "olinda_dem_utm25s.tif") as src:
        dem = src.read(1, masked=True)
        profile = src.profile
    profile.update(dtype="uint8", nodata=0, compress="deflate", tiled=False)
    for year, value in ((2020, 10), (2021, 20), (2022, 30)):
        data = np.where(np.ma.getmaskarray(dem), 0, value).astype("uint8")
        with rasterio.open(OUT / f"dem_{year}.tif", "w", **profile) as dst:
            dst.write(data, 1)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    write_sites(OUT / "sites.geojson", SITES)
    write_sites(OUT / "sites_user1.geojson", [*SITES, EXTRA])
    write_nad27(OUT / "site_nad27.geojson")
    write_series()


if __name__ == "__main__":
    main()
