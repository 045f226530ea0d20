#!/usr/bin/env python3
"""Build the project's sample GeoPackages from unpacked registry packages.

Called by ``data/build_data.sh`` (which downloads and unpacks the packages);
it can also be run by hand::

    python data/build_data.py --geopandas-datasets DIR --gapminder FILE --out data

Inputs
  DIR/naturalearth_lowres/naturalearth_lowres.shp   (geopandas 0.14.4 wheel)
  DIR/naturalearth_cities/naturalearth_cities.shp   (geopandas 0.14.4 wheel)
  FILE = gapminder.csv.gz                           (plotly wheel)

Outputs (all EPSG:4326)
  OUT/world/countries.gpkg                layer "countries"
  OUT/world/cities.gpkg                   layer "cities"
  OUT/gapminder/countries_gapminder.gpkg  layer "countries_gapminder"

Only numpy, shapely and pyogrio are used (no pandas / geopandas).  The GPKG
timestamps are pinned through GDAL's OGR_CURRENT_DATE so that a rebuild gives
byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw

CRS = "EPSG:4326"
# Fixed timestamp written into gpkg_contents.last_change etc. -> reproducible files.
FIXED_GPKG_DATE = "2000-01-01T00:00:00.000Z"

# Natural Earth marks some countries iso_a3 == "-99" (disputed / special cases).
# For the gapminder join, these are matched by name instead.  (In the geopandas
# 0.14.4 copy France and Norway already carry FRA / NOR; only Kosovo is -99 and
# it is not in gapminder, but keep the fix so older/newer copies still join.)
NAME_TO_ISO_FIX = {"France": "FRA", "Norway": "NOR"}

# plotly's gapminder.csv gives North Korea the code of South Korea
# ("Korea, Dem. Rep.",...,KOR,410): both would land on the South Korea polygon.
GAPMINDER_ISO_FIX = {"Korea, Dem. Rep.": "PRK"}


def _remove_gpkg(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()


def _write(path: Path, layer: str, geometry, fields: dict[str, np.ndarray],
           geometry_type: str, gdal_tz_offsets=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_gpkg(path)
    pyogrio.raw.write(
        str(path),
        geometry,
        list(fields.values()),
        list(fields.keys()),
        layer=layer,
        driver="GPKG",
        crs=CRS,
        geometry_type=geometry_type,
        promote_to_multi=geometry_type.startswith("Multi"),
        gdal_tz_offsets=gdal_tz_offsets,
    )


def _read(path: Path):
    meta, _fids, geometry, field_data = pyogrio.raw.read(str(path))
    if meta["crs"] != CRS:
        sys.exit(f"{path}: unexpected CRS {meta['crs']!r}")
    return meta, geometry, dict(zip(meta["fields"], field_data, strict=False))


def build_countries(datasets: Path, out: Path):
    src = datasets / "naturalearth_lowres" / "naturalearth_lowres.shp"
    meta, geom, f = _read(src)
    n = len(geom)
    if n != 177:
        print(f"warning: {src} has {n} features (expected 177)", file=sys.stderr)
    fields = {
        "name": f["name"].astype(object),
        "iso_a3": f["iso_a3"].astype(object),
        "continent": f["continent"].astype(object),
        # float64 in the source dbf (OFTReal); kept as is
        "pop_est": f["pop_est"],
        # int64 in the source dbf; written as float64 (values are < 2**53: exact)
        "gdp_md_est": f["gdp_md_est"].astype("float64"),
    }
    _write(out / "world" / "countries.gpkg", "countries", geom, fields, "MultiPolygon")
    return geom, fields


def build_cities(datasets: Path, out: Path) -> None:
    src = datasets / "naturalearth_cities" / "naturalearth_cities.shp"
    meta, geom, f = _read(src)
    if len(geom) != 243:
        print(f"warning: {src} has {len(geom)} features (expected 243)", file=sys.stderr)
    _write(out / "world" / "cities.gpkg", "cities", geom,
           {"name": f["name"].astype(object)}, "Point")


def build_gapminder(countries_geom, countries: dict, gapminder_csv: Path, out: Path) -> None:
    # effective join key per Natural Earth feature
    by_iso: dict[str, int] = {}
    for i, (name, iso) in enumerate(zip(countries["name"], countries["iso_a3"], strict=False)):
        key = NAME_TO_ISO_FIX.get(name, iso) if iso == "-99" else iso
        if key == "-99":
            continue
        if key in by_iso:
            sys.exit(f"duplicate Natural Earth iso_a3 {key}")
        by_iso[key] = i

    with gzip.open(gapminder_csv, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))

    idx, years, life, pop, gdp, cont, iso_out = [], [], [], [], [], [], []
    unmatched = set()
    seen: set[tuple[str, int]] = set()
    for r in rows:  # gapminder order: country, then year
        iso = GAPMINDER_ISO_FIX.get(r["country"], r["iso_alpha"])
        i = by_iso.get(iso)
        if i is None:
            unmatched.add(f"{r['country']} ({iso})")
            continue
        if (iso, int(r["year"])) in seen:
            sys.exit(f"duplicate gapminder row for {iso} {r['year']}")
        seen.add((iso, int(r["year"])))
        idx.append(i)
        years.append(int(r["year"]))
        life.append(float(r["lifeExp"]))
        pop.append(int(r["pop"]))
        gdp.append(float(r["gdpPercap"]))
        cont.append(r["continent"])
        iso_out.append(iso)
    for fix in (*NAME_TO_ISO_FIX.values(), *GAPMINDER_ISO_FIX.values()):
        if fix not in iso_out:
            sys.exit(f"gapminder join lost {fix}")
    if unmatched:
        print("gapminder countries without a Natural Earth 110m polygon (dropped): "
              + ", ".join(sorted(unmatched)), file=sys.stderr)

    idx = np.asarray(idx)
    year = np.asarray(years, dtype="int32")
    # 1 January of `year`, 00:00:00, flagged as UTC (GDAL TZFlag 100)
    date = (year - 1970).astype("datetime64[Y]").astype("datetime64[ms]")
    fields = {
        "name": countries["name"][idx].astype(object),
        "iso_a3": np.asarray(iso_out, dtype=object),
        "continent": np.asarray(cont, dtype=object),
        "year": year,
        "lifeExp": np.asarray(life, dtype="float64"),
        "pop": np.asarray(pop, dtype="int64"),
        "gdpPercap": np.asarray(gdp, dtype="float64"),
        "date": date,
    }
    _write(out / "gapminder" / "countries_gapminder.gpkg", "countries_gapminder",
           countries_geom[idx], fields, "MultiPolygon",
           gdal_tz_offsets={"date": np.full(len(idx), 100, dtype="int32")})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--geopandas-datasets", type=Path, required=True,
                    help="unpacked geopandas/datasets folder")
    ap.add_argument("--gapminder", type=Path, required=True,
                    help="plotly/package_data/datasets/gapminder.csv.gz")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args(argv)

    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_GPKG_DATE})
    os.environ.setdefault("OGR_CURRENT_DATE", FIXED_GPKG_DATE)

    geom, countries = build_countries(args.geopandas_datasets, args.out)
    build_cities(args.geopandas_datasets, args.out)
    build_gapminder(geom, countries, args.gapminder, args.out)
    for p in ("world/countries.gpkg", "world/cities.gpkg",
              "gapminder/countries_gapminder.gpkg"):
        info = pyogrio.read_info(str(args.out / p))
        print(f"{p}: {info['features']} features, layer {info['layer_name']}, "
              f"{info['geometry_type']}, {info['crs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
