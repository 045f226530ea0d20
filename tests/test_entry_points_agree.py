"""Every entry point agrees on which features one set of map filters means.

For generated combinations of the map filter parameters on the sample services:

* what ``/export`` draws equals what ``{layerId}/query?returnIdsOnly=true`` returns with the
  same filters in the query's spelling (``where``, ``time``, ``historicMoment``, ``gdbVersion``,
  ``rangeValues``, ``parameterValues``). What export draws is read from the PNG for the
  Samples/Demo sites (a ``dynamicLayers`` uniqueValue renderer gives each OBJECTID its own
  colour) and from the planner's draw items elsewhere. For the Demo sites an independent
  oracle (the GeoJSON files filtered in Python) must agree as well;
* ``identify`` at an interior point of a feature finds it exactly when export draws it;
* a ``/tile`` is pixel-identical to the ``/export`` of its bounds, and a batch
  ``image:export`` to the ``/export`` (png32, transparent) of the same grid.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import rasterio
import shapely
import shapely.geometry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobs_helpers import gcs, load, make_app, pixel_grid, wait_done
from pyproj import Transformer

from mapserver.app import create_app
from mapserver.geo.project import world_shifts
from mapserver.maps.export import build_grid
from mapserver.params.common import Params
from mapserver.params.export import parse_export
from mapserver.select.plan import plan_map, resolve_map
from mapserver.settings import PROJECT_ROOT, Settings
from tests.conftest import decode

ROOT = "/arcgis/rest/services"
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# the whole world in EPSG:4326, half a degree per pixel (one pass, no world copies)
WORLD_VIEW = {"bbox": "-180,-90,180,90", "bboxSR": "4326", "imageSR": "4326",
              "size": "720,360", "format": "png32", "transparent": "true", "f": "image"}
IDENTIFY_VIEW = {"mapExtent": "-180,-90,180,90", "imageDisplay": "720,360,96", "sr": "4326",
                 "tolerance": "0", "returnGeometry": "false", "returnFieldName": "true",
                 "returnUnformattedValues": "true", "f": "json"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = 86_400_000


def ms(iso: str) -> int:
    """Epoch milliseconds of an ISO date (UTC)."""
    dt = datetime.fromisoformat(iso)
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // timedelta(milliseconds=1)


def catalog(app):
    return app.extensions["mapserver"].catalog


def clean(params: dict) -> dict[str, str]:
    return {k: v for k, v in params.items() if v is not None}


def planned_ids(app, service: str, params: dict) -> dict[int, set[int]]:
    """OBJECTIDs the planner draws per layer id for this /export request (parsed by /export's
    own parser, on /export's own grid)."""
    svc = catalog(app).service(service)
    pairs = list(clean({**WORLD_VIEW, **params}).items())
    req = parse_export(Params(pairs), svc.sr, svc.max_image_width, svc.max_image_height)
    grid = build_grid(req)
    assert world_shifts(grid) == [0.0]  # a single pass: these draw items are the whole map
    out: dict[int, set[int]] = {}
    for item in plan_map(resolve_map(svc, req.filters), grid):
        if item.idx is not None:
            table = item.layer.table
            out[item.layer.id] = set(table.columns[table.oid_field][item.idx].tolist())
    return out


def query_ids(client, service: str, layer_id: int, params: dict) -> set[int]:
    r = client.get(f"{ROOT}/{service}/MapServer/{layer_id}/query", query_string=clean(
        {"returnIdsOnly": "true", "f": "json", **params}))
    body = r.get_json()
    assert "error" not in body, (params, body)
    return set(body["objectIds"])


def identify_ids(client, service: str, point: shapely.Point, layers: str, params: dict
                 ) -> dict[int, set[int]]:
    """OBJECTIDs identify finds at ``point`` (EPSG:4326, no tolerance), per layer id."""
    r = client.get(f"{ROOT}/{service}/MapServer/identify", query_string=clean({
        **IDENTIFY_VIEW, "geometry": json.dumps({"x": point.x, "y": point.y}),
        "geometryType": "esriGeometryPoint", "layers": layers, **params}))
    body = r.get_json()
    assert "error" not in body, (params, body)
    out: dict[int, set[int]] = {}
    for res in body["results"]:
        out.setdefault(res["layerId"], set()).add(res["attributes"]["OBJECTID"])
    return out


def under(table, oids: set[int], point: shapely.Point) -> set[int]:
    """Which of ``oids`` (features of ``table``) contain ``point``."""
    hit = shapely.intersects(table.geometry, point)
    return oids & set(table.columns[table.oid_field][hit].tolist())


@dataclass(frozen=True)
class Clause:
    """A where clause from the pool and the same test in Python (the oracle's)."""

    sql: str | None
    test: Any = None

    def __repr__(self) -> str:
        return repr(self.sql)

    def holds(self, row: dict) -> bool:
        return self.test is None or bool(self.test(row))


LAYER_DEFS_SPELLINGS = ["object", "array", "legacy"]


def layer_defs(defs: dict[int, str | None], spelling: str) -> str | None:
    """``layerDefs`` as JSON ``{"id": where}``, ``[{"layerId", "where"}]`` or legacy
    ``id:where;id:where``."""
    defs = {k: v for k, v in defs.items() if v is not None}
    if not defs:
        return None
    if spelling == "object":
        return json.dumps({str(k): v for k, v in defs.items()})
    if spelling == "array":
        return json.dumps([{"layerId": k, "where": v} for k, v in defs.items()])
    return ";".join(f"{k}:{v}" for k, v in defs.items())


# ------------------------------------------------------------------------------------------
# Samples/Demo sites: the oracle straight from the GeoJSON files


def read_sites(name: str) -> dict[int, tuple[dict, shapely.Geometry]]:
    """OBJECTID (the row number, from 1) -> (properties with dates in epoch ms, geometry)."""
    doc = json.loads((PROJECT_ROOT / "data" / "demo" / name).read_text())
    out = {}
    for oid, feat in enumerate(doc["features"], start=1):
        p = dict(feat["properties"])
        for key in ("valid_from", "valid_to"):
            p[key] = ms(p[key].replace("Z", "+00:00")) if p[key] else None
        out[oid] = (p, shapely.geometry.shape(feat["geometry"]))
    return out


SITES = read_sites("sites.geojson")
SITES_USER1 = read_sites("sites_user1.geojson")  # sde.USER1's layer 1: one more site (Echo)
KINDS = ["school", "hospital", "park"]
SITE_CLAUSES = [
    Clause(None),
    Clause("kind = 'school'", lambda p: p["kind"] == "school"),
    Clause("floors >= 3", lambda p: p["floors"] >= 3),
    Clause("elevation < 1200", lambda p: p["elevation"] < 1200),
    Clause("name <> 'Charlie'", lambda p: p["name"] != "Charlie"),
    Clause("kind IN ('park', 'hospital') OR floors = 8",
           lambda p: p["kind"] in ("park", "hospital") or p["floors"] == 8),
    Clause("valid_to IS NULL", lambda p: p["valid_to"] is None),
    Clause("valid_from >= TIMESTAMP '2005-01-01 00:00:00'",
           lambda p: p["valid_from"] >= ms("2005-01-01")),
    Clause("floors BETWEEN 2 AND 5", lambda p: 2 <= p["floors"] <= 5),
]
MOMENTS = [None, ms("1999-06-01"), ms("2000-01-01"), ms("2005-06-01"), ms("2010-01-01") - 1,
           ms("2010-01-01"), ms("2016-01-01"), ms("2020-01-01"), ms("2024-01-01")]
VERSIONS = [None, "sde.DEFAULT", "sde.USER1", "SDE.user1"]
ELEVATIONS = [100, 500, 600, 700, 1000, 1500]


def _range(v: Any) -> Any:
    if isinstance(v, tuple):
        lo, hi = v
        return sorted(v) if lo is not None and hi is not None else [lo, hi]
    return v


range_values = st.one_of(st.sampled_from(ELEVATIONS),
                         st.tuples(st.sampled_from([*ELEVATIONS, None]),
                                   st.sampled_from([*ELEVATIONS, None])).map(_range))
parameter_values = st.fixed_dictionaries({}, optional={
    "minFloors": st.integers(0, 9),
    "kinds": st.lists(st.sampled_from(KINDS), min_size=1, max_size=3, unique=True)})


@dataclass(frozen=True)
class SiteFilters:
    """The declared filters of one request on the Demo sites (None: not sent)."""

    version: str | None = None
    moment: int | None = None
    map_range: Any = None
    layer_range: Any = None
    parameters: dict | None = None

    @property
    def range(self) -> Any:  # the range layer 1 is filtered by
        return self.layer_range if self.layer_range is not None else self.map_range


site_filters = st.builds(SiteFilters, version=st.sampled_from(VERSIONS),
                         moment=st.sampled_from(MOMENTS),
                         map_range=st.one_of(st.none(), range_values),
                         layer_range=st.one_of(st.none(), range_values),
                         parameters=st.one_of(st.none(), parameter_values))


def expected_sites(layer_id: int, clause: Clause, f: SiteFilters, version: str | None
                   ) -> set[int]:
    """The oracle: Demo layer 1 (ranges, parameters; sde.USER1 reads another file) or layer 2
    (archiving), read from the files and filtered here."""
    user1 = layer_id == 1 and version is not None and version.lower() == "sde.user1"
    out = set()
    for oid, (p, _geom) in (SITES_USER1 if user1 else SITES).items():
        ok = clause.holds(p)
        if layer_id == 2:
            t = f.moment
            ok &= (p["valid_to"] is None if t is None else
                   p["valid_from"] <= t and (p["valid_to"] is None or p["valid_to"] > t))
        else:
            params = f.parameters or {}
            ok &= p["floors"] >= params.get("minFloors", 0)
            ok &= p["kind"] in params.get("kinds", KINDS)
            rng = f.range
            if rng is not None:
                lo, hi = rng if isinstance(rng, list) else (rng, rng)
                ok &= (lo is None or p["elevation"] >= lo) and (hi is None or
                                                               p["elevation"] <= hi)
        if ok:
            out.add(oid)
    return out


def site_query(clause: Clause, f: SiteFilters, layer_id: int, version: str | None) -> dict:
    """The layer query's spelling of the same filters."""
    q: dict[str, Any] = {"where": clause.sql, "gdbVersion": version,
                         "historicMoment": None if f.moment is None else str(f.moment)}
    if layer_id == 1:
        if f.range is not None:
            q["rangeValues"] = json.dumps([{"name": "elevation", "value": f.range}])
        if f.parameters is not None:
            q["parameterValues"] = json.dumps(f.parameters)
    return q


def site_points() -> dict[int, shapely.Point]:
    return {oid: shapely.point_on_surface(g) for oid, (_p, g) in SITES_USER1.items()}


def test_demo_oracle_reads_the_rows_the_service_serves(client):
    """The oracle's OBJECTIDs (row numbers) name the same rows as the service's."""
    for version, rows in (("sde.DEFAULT", SITES), ("sde.USER1", SITES_USER1)):
        r = client.get(f"{ROOT}/Samples/Demo/MapServer/1/query", query_string={
            "where": "1=1", "outFields": "OBJECTID,name", "returnGeometry": "false",
            "gdbVersion": version, "f": "json"}).get_json()
        assert {a["attributes"]["OBJECTID"]: a["attributes"]["name"]
                for a in r["features"]} == {oid: p["name"] for oid, (p, _g) in rows.items()}


# -- family 1: Demo sites through real pixels (dynamicLayers, one colour per OBJECTID) -----

SITE_COLOURS = {1: (230, 25, 75), 2: (60, 180, 75), 3: (255, 225, 25), 4: (0, 130, 200),
                5: (145, 30, 180)}
BY_OBJECTID = {"type": "uniqueValue", "field1": "OBJECTID", "uniqueValueInfos": [
    {"value": str(oid), "symbol": {"type": "esriSFS", "style": "esriSFSSolid",
                                   "color": [*c, 255], "outline": None}}
    for oid, c in SITE_COLOURS.items()]}
SITES_VIEW = {"bbox": "0,0,50,10", "bboxSR": "4326", "imageSR": "4326", "size": "500,100",
              "format": "png32", "transparent": "true", "f": "image"}  # 0.1 degree per pixel


@dataclass(frozen=True)
class DynamicSites:
    map_layer: int
    dyn_id: int
    source_version: str | None
    clause: Clause
    filters: SiteFilters

    @property
    def version(self) -> str | None:  # the source's own version wins for this layer
        return self.source_version or self.filters.version

    def params(self) -> dict:
        source: dict[str, Any] = {"type": "mapLayer", "mapLayerId": self.map_layer}
        if self.source_version is not None:
            source["gdbVersion"] = self.source_version
        layer: dict[str, Any] = {"id": self.dyn_id, "source": source,
                                 "drawingInfo": {"renderer": BY_OBJECTID, "showLabels": False}}
        if self.clause.sql is not None:
            layer["definitionExpression"] = self.clause.sql
        f, key = self.filters, str(self.dyn_id)
        return {"dynamicLayers": json.dumps([layer]), "gdbVersion": f.version,
                "historicMoment": None if f.moment is None else str(f.moment),
                "mapRangeValues": None if f.map_range is None else json.dumps(
                    [{"name": "elevation", "value": f.map_range}]),
                "layerRangeValues": None if f.layer_range is None else json.dumps(
                    {key: [{"name": "elevation", "value": f.layer_range}]}),
                "layerParameterValues": None if f.parameters is None else json.dumps(
                    [{key: f.parameters}])}


@st.composite
def dynamic_sites(draw) -> DynamicSites:
    map_layer = draw(st.sampled_from([1, 2]))
    f = draw(site_filters)
    # only what the drawn layer declares: the others are refused (tested elsewhere)
    if map_layer == 1:
        f = SiteFilters(f.version, None, f.map_range, f.layer_range, f.parameters)
    else:
        f = SiteFilters(f.version, f.moment)
    return DynamicSites(map_layer, draw(st.sampled_from([map_layer, 7])),
                        draw(st.sampled_from([None, "sde.DEFAULT", "sde.USER1"])),
                        draw(st.sampled_from(SITE_CLAUSES)), f)


def drawn_colours(img: np.ndarray) -> set[int]:
    """OBJECTIDs whose colour is on at least one opaque pixel."""
    return {oid for oid, c in SITE_COLOURS.items() if (img == [*c, 255]).all(axis=-1).any()}


@SETTINGS
@given(case=dynamic_sites())
def test_demo_sites_drawn_pixels_equal_query_ids_and_the_files(app, case):
    client = app.test_client()
    r = client.get(f"{ROOT}/Samples/Demo/MapServer/export",
                   query_string=clean({**SITES_VIEW, **case.params()}))
    assert r.mimetype == "image/png", r.data[:400]
    drawn = drawn_colours(decode(r.data))
    expected = expected_sites(case.map_layer, case.clause, case.filters, case.version)
    returned = query_ids(client, "Samples/Demo", case.map_layer,
                         site_query(case.clause, case.filters, case.map_layer, case.version))
    assert drawn == returned == expected


@SETTINGS
@given(case=dynamic_sites())
def test_demo_sites_identify_finds_a_dynamic_layer_feature_iff_it_is_drawn(app, case):
    client = app.test_client()
    drawn = expected_sites(case.map_layer, case.clause, case.filters, case.version)
    assert planned_ids(app, "Samples/Demo", {**SITES_VIEW, **case.params()}) == {
        case.dyn_id: drawn}
    for oid, point in site_points().items():
        found = identify_ids(client, "Samples/Demo", point, f"all:{case.dyn_id}",
                             case.params())
        assert found == ({case.dyn_id: {oid}} if oid in drawn else {}), oid


# -- family 2: Demo service layers 0, 1 and 2 through the planner --------------------------

COUNTRY_CLAUSES = [Clause(None), Clause("continent = 'Africa'"), Clause("pop_est > 1e8"),
                   Clause("name LIKE 'S%'"), Clause("gdp_md_est < 50000 AND continent <> 'Europe'"),
                   Clause("iso_a3 IN ('BRA', 'ARG', 'CHL')")]
CITY_CLAUSES = [Clause(None), Clause("name LIKE 'S%'"), Clause("name >= 'M'"),
                Clause("name IN ('Paris', 'Tokyo', 'Lima')")]


@dataclass(frozen=True)
class DemoLayers:
    countries: Clause
    sites: Clause
    archive: Clause
    filters: SiteFilters
    spelling: str = "object"  # of layerDefs
    bare_parameters: bool = False  # layerParameterValues as {"1": {...}}, not [{"1": {...}}]
    time: int | None = None  # no layer here is time-aware: it must change nothing

    def params(self) -> dict:
        f = self.filters
        defs = {0: self.countries.sql, 1: self.sites.sql, 2: self.archive.sql}
        parameters = None
        if f.parameters is not None:
            parameters = {"1": f.parameters} if self.bare_parameters else [{"1": f.parameters}]
        return {"layers": "show:0,1,2", "layerDefs": layer_defs(defs, self.spelling),
                "time": None if self.time is None else str(self.time),
                "gdbVersion": f.version,
                "historicMoment": None if f.moment is None else str(f.moment),
                "mapRangeValues": None if f.map_range is None else json.dumps(
                    [{"name": "elevation", "value": f.map_range}]),
                "layerRangeValues": None if f.layer_range is None else json.dumps(
                    {"1": [{"name": "elevation", "value": f.layer_range}]}),
                "layerParameterValues": None if parameters is None else json.dumps(parameters)}


demo_layers = st.builds(DemoLayers, st.sampled_from(COUNTRY_CLAUSES),
                        st.sampled_from(SITE_CLAUSES), st.sampled_from(SITE_CLAUSES),
                        site_filters, st.sampled_from(LAYER_DEFS_SPELLINGS), st.booleans(),
                        st.one_of(st.none(), st.sampled_from(MOMENTS[1:])))


SITE_RED, ARCHIVE_BLUE = [220, 40, 40, 255], [40, 40, 220, 255]  # Demo layers 1 and 2


def painted_sites(client, params: dict, layer_id: int, colour: list[int]) -> set[int]:
    """The sites (by OBJECTID) whose centre pixel a /export of just ``layer_id`` paints in
    the layer's own colour (the sites are 6 degree squares 4 degrees apart)."""
    r = client.get(f"{ROOT}/Samples/Demo/MapServer/export", query_string=clean(
        {**params, **SITES_VIEW, "layers": f"show:{layer_id}"}))
    assert r.mimetype == "image/png", r.data[:400]
    img = decode(r.data)
    out = set()
    for oid, (_p, geom) in SITES_USER1.items():
        c = geom.centroid
        pixel = [int(v) for v in img[int((10 - c.y) * 10), int(c.x * 10)]]
        assert pixel == colour or pixel[3] == 0, (oid, pixel)
        if pixel == colour:
            out.add(oid)
    return out


@SETTINGS
@given(case=demo_layers)
def test_demo_export_plan_and_pixels_equal_query_ids_for_declared_filters(app, case):
    client = app.test_client()
    f = case.filters
    drawn = planned_ids(app, "Samples/Demo", case.params())
    assert set(drawn) == {0, 1, 2}
    assert drawn[1] == expected_sites(1, case.sites, f, f.version)
    assert drawn[2] == expected_sites(2, case.archive, f, f.version)
    assert painted_sites(client, case.params(), 1, SITE_RED) == drawn[1]
    assert painted_sites(client, case.params(), 2, ARCHIVE_BLUE) == drawn[2]
    t = None if case.time is None else str(case.time)
    for lid, clause in ((1, case.sites), (2, case.archive)):
        assert query_ids(client, "Samples/Demo", lid, {
            **site_query(clause, f, lid, f.version), "time": t}) == drawn[lid], lid
    assert query_ids(client, "Samples/Demo", 0, {
        "where": case.countries.sql or "1=1", "gdbVersion": f.version, "time": t,
        "historicMoment": None if f.moment is None else str(f.moment)}) == drawn[0]


@SETTINGS
@given(case=demo_layers)
def test_demo_identify_finds_a_site_iff_it_is_drawn(app, case):
    client = app.test_client()
    drawn = planned_ids(app, "Samples/Demo", case.params())
    params = {k: v for k, v in case.params().items() if k != "layers"}
    for oid, point in site_points().items():
        found = identify_ids(client, "Samples/Demo", point, "all:1,2", params)
        expected = {lid: {oid} for lid in (1, 2) if oid in drawn[lid]}
        assert found == expected, oid


# -- family 3: Gapminder time, timeRelation, layerTimeOptions, layerDefs (planner) ----------

GAP_CLAUSES = [Clause(None), Clause("continent = 'Asia'"), Clause("lifeExp > 60"),
               Clause("pop < 10000000 AND continent <> 'Europe'"), Clause("year >= 1980"),
               Clause("name LIKE 'B%'"), Clause("iso_a3 IN ('BRA', 'CHN', 'IND')")]
RELATIONS = ["esriTimeRelationOverlaps", "esriTimeRelationOverlapsStartWithinEnd",
             "esriTimeRelationAfterStartOverlapsEnd", "esriTimeRelationWithin"]
FIXED_MS = {"esriTimeUnitsMilliseconds": 1, "esriTimeUnitsDays": DAY,
            "esriTimeUnitsWeeks": 7 * DAY}
MONTHS = {"esriTimeUnitsMonths": 1, "esriTimeUnitsYears": 12, "esriTimeUnitsDecades": 120}

# the data's dates are 1 January of 1952..2007 (every 5 years); ends land on, next to
# (1 ms, 1 day) and between them
instants = st.builds(lambda y, d: ms(f"{y}-01-01") + d, st.integers(1945, 2014),
                     st.sampled_from([0, 0, 0, 1, -1, DAY, -DAY]))


def _window(w: tuple) -> tuple:
    a, b = w
    return (min(a, b), max(a, b)) if a is not None and b is not None else w


times = st.one_of(st.none(), instants.map(lambda t: (t, t)),
                  st.tuples(st.one_of(st.none(), instants),
                            st.one_of(st.none(), instants)).map(_window))
time_options = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "useTime": st.booleans(), "timeDataCumulative": st.booleans(),
    "timeOffset": st.integers(-20, 60),
    "timeOffsetUnits": st.sampled_from([*MONTHS, *FIXED_MS])}))


TIME_OPTION_ROUTES = ["layerTimeOptions", "timeOptions", "dynamicLayers"]


@dataclass(frozen=True)
class GapFilters:
    clause: Clause
    time: tuple | None
    relation: str | None
    options: dict | None
    # how the clause and the time options travel: layerDefs + layerTimeOptions (or its alias
    # timeOptions), or a dynamic layer's definitionExpression + layerTimeOptions
    route: str = "layerTimeOptions"
    spelling: str = "object"
    dyn_id: int = 0

    @property
    def layer_id(self) -> int:  # the id export, identify and the plan know the layer by
        return self.dyn_id if self.route == "dynamicLayers" else 0

    def params(self) -> dict:
        out: dict[str, Any] = {"time": time_text(self.time), "timeRelation": self.relation}
        if self.route == "dynamicLayers":
            layer: dict[str, Any] = {"id": self.dyn_id,
                                     "source": {"type": "mapLayer", "mapLayerId": 0}}
            if self.clause.sql is not None:
                layer["definitionExpression"] = self.clause.sql
            if self.options is not None:
                layer["layerTimeOptions"] = self.options
            out["dynamicLayers"] = json.dumps([layer])
        else:
            out["layerDefs"] = layer_defs({0: self.clause.sql}, self.spelling)
            out[self.route] = None if self.options is None else json.dumps({"0": self.options})
        return out

    def query_time(self) -> tuple | str | None:
        return inclusive_window(self.time, self.relation, self.options)


def inclusive_window(time: tuple | None, relation: str | None, options: dict | None
                     ) -> tuple | str | None:
    """The same selection of instants (in whole ms) as one inclusive window, as a layer query's
    ``time`` spells it: the layer time options moved into the window, exclusive ends made
    inclusive. None: no time filter; "empty": no instant can match."""
    opts = options or {}
    if time is None or not opts.get("useTime", True):
        return None
    t0, t1 = time
    if opts.get("timeDataCumulative", False):
        t0 = None
    offset = opts.get("timeOffset", 0)
    units = opts.get("timeOffsetUnits", "esriTimeUnitsMilliseconds")
    # the offset moves the data forward, so the window moves back
    t0, t1 = (None if t is None else shifted(t, -offset, units) for t in (t0, t1))
    rel = relation or RELATIONS[0]
    if t0 is not None and rel in (RELATIONS[2], RELATIONS[3]):
        t0 += 1
    if t1 is not None and rel in (RELATIONS[1], RELATIONS[3]):
        t1 -= 1
    if t0 is not None and t1 is not None and t0 > t1:
        return "empty"
    return (t0, t1)


def time_text(t: tuple | None) -> str | None:
    """``time`` as sent: an instant, or ``t0,t1`` with ``null`` for an open end."""
    if t is None:
        return None
    if t[0] == t[1]:
        return str(t[0])
    return ",".join("null" if v is None else str(v) for v in t)


def shifted(t: int, amount: int, units: str) -> int:
    """``t`` moved by ``amount`` units: fixed units in ms, months and longer by the calendar
    (the day clamped to the target month's length)."""
    if not amount:
        return t
    if units in FIXED_MS:
        return t + amount * FIXED_MS[units]
    dt = EPOCH + timedelta(milliseconds=t)
    year, month0 = divmod(dt.year * 12 + dt.month - 1 + amount * MONTHS[units], 12)
    day = min(dt.day, calendar.monthrange(year, month0 + 1)[1])
    return (dt.replace(year=year, month=month0 + 1, day=day) - EPOCH) // timedelta(
        milliseconds=1)


gap_filters = st.builds(GapFilters, st.sampled_from(GAP_CLAUSES), times,
                        st.one_of(st.none(), st.sampled_from(RELATIONS)), time_options,
                        st.sampled_from(TIME_OPTION_ROUTES),
                        st.sampled_from(LAYER_DEFS_SPELLINGS), st.integers(0, 9))


@SETTINGS
@given(case=gap_filters)
def test_gapminder_export_plan_equals_query_ids_for_time_filters(app, case):
    client = app.test_client()
    plan = planned_ids(app, "Gapminder", case.params())
    assert set(plan) == {case.layer_id}
    drawn = plan[case.layer_id]
    window = case.query_time()
    if window == "empty":
        assert drawn == set()
        return
    q = {"where": case.clause.sql or "1=1"}
    if window is not None:
        q["time"] = ",".join("null" if v is None else str(v) for v in window)
    assert query_ids(client, "Gapminder", 0, q) == drawn


@SETTINGS
@given(case=gap_filters,
       picks=st.lists(st.integers(0, 1619), min_size=3, max_size=3))
def test_gapminder_identify_finds_a_feature_iff_it_is_drawn(app, case, picks):
    client = app.test_client()
    table = catalog(app).service("Gapminder").layer(0).table
    lid = case.layer_id
    drawn = planned_ids(app, "Gapminder", case.params())[lid]
    for i in picks:
        point = shapely.point_on_surface(table.geometry[i])
        found = identify_ids(client, "Gapminder", point, f"all:{lid}", case.params())
        expected = under(table, drawn, point)
        assert found == ({lid: expected} if expected else {}), int(table.columns["OBJECTID"][i])


# -- family 4: dynamicLayers definitionExpression on World and Demo (planner) ---------------

WORKSPACE = {"type": "dataLayer", "dataSource": {"type": "table", "workspaceId": "worldData"}}


@dataclass(frozen=True)
class DynSource:
    """A dynamic layer source and the service layer that reads the same data file."""

    service: str
    source: dict
    query_service: str
    query_layer: int
    clauses: list

    def __repr__(self) -> str:
        return f"{self.service}:{json.dumps(self.source)}"


def _data_layer(name: str) -> dict:
    return {**WORKSPACE, "dataSource": {**WORKSPACE["dataSource"], "dataSourceName": name}}


DYN_SOURCES = [
    DynSource("World", {"type": "mapLayer", "mapLayerId": 1}, "World", 1, COUNTRY_CLAUSES),
    DynSource("World", {"type": "mapLayer", "mapLayerId": 0}, "World", 0, CITY_CLAUSES),
    DynSource("Samples/Demo", {"type": "mapLayer", "mapLayerId": 0}, "Samples/Demo", 0,
              COUNTRY_CLAUSES),
    DynSource("Samples/Demo", _data_layer("countries.gpkg"), "Samples/Demo", 0,
              COUNTRY_CLAUSES),
    DynSource("Samples/Demo", _data_layer("cities.gpkg"), "World", 0, CITY_CLAUSES),
]


@st.composite
def dynamic_layers(draw) -> tuple[DynSource, int, Clause]:
    src = draw(st.sampled_from(DYN_SOURCES))
    return src, draw(st.integers(0, 12)), draw(st.sampled_from(src.clauses))


def dynamic_params(src: DynSource, dyn_id: int, clause: Clause) -> dict:
    layer: dict[str, Any] = {"id": dyn_id, "source": src.source}
    if clause.sql is not None:
        layer["definitionExpression"] = clause.sql
    return {"dynamicLayers": json.dumps([layer])}


@SETTINGS
@given(case=dynamic_layers(), picks=st.lists(st.integers(0, 10_000), min_size=3, max_size=3))
def test_dynamic_layer_definition_expression_plan_equals_query_and_identify(app, case, picks):
    src, dyn_id, clause = case
    client = app.test_client()
    params = dynamic_params(src, dyn_id, clause)
    drawn = planned_ids(app, src.service, params)
    assert set(drawn) == {dyn_id}
    returned = query_ids(client, src.query_service, src.query_layer,
                         {"where": clause.sql or "1=1"})
    assert drawn[dyn_id] == returned
    table = catalog(app).service(src.query_service).layer(src.query_layer).table
    for k in picks:
        point = shapely.point_on_surface(table.geometry[k % len(table.geometry)])
        expected = under(table, returned, point)
        found = identify_ids(client, src.service, point, f"all:{dyn_id}", params)
        assert found == ({dyn_id: expected} if expected else {}), point.wkt


# -- family 5: Demo's raster time series (layer 3): export and identify pick the same date ---

DEM_DATES = [ms("2020-01-01"), ms("2021-01-01"), ms("2022-01-01")]
OLINDA_VIEW = {"bbox": "-34.9,-8.02,-34.84,-7.97", "bboxSR": "4326", "imageSR": "4326",
               "size": "60,50", "format": "png32", "transparent": "true", "f": "image",
               "layers": "show:3"}
OLINDA_POINT = shapely.Point(-34.87, -7.995)  # the view's centre, inside every DEM


def dem_value(when: int) -> str:
    """The DEM of that date, read straight from its file (each is one constant value)."""
    year = datetime.fromtimestamp(when / 1000, tz=UTC).year
    with rasterio.open(PROJECT_ROOT / "data" / "demo" / f"dem_{year}.tif") as ds:
        values = np.unique(ds.read(1))
    assert len(values) == 1
    return f"{values[0]:g}"


def centre(img: np.ndarray) -> list[int]:
    return [int(v) for v in img[img.shape[0] // 2, img.shape[1] // 2]]


@pytest.fixture(scope="module")
def dem_colours(app) -> dict[int, list[int]]:
    """The export's centre colour for each date of the series, asked for by that instant."""
    client = app.test_client()
    out = {}
    for when in DEM_DATES:
        r = client.get(f"{ROOT}/Samples/Demo/MapServer/export",
                       query_string={**OLINDA_VIEW, "time": str(when)})
        out[when] = centre(decode(r.data))
        assert out[when][3] == 255
    assert len({tuple(c) for c in out.values()}) == 3
    return out


raster_instants = st.builds(lambda y, d: ms(f"{y}-01-01") + d, st.integers(2018, 2024),
                            st.sampled_from([0, 0, 1, -1, DAY, -DAY]))
raster_times = st.one_of(st.none(), raster_instants.map(lambda t: (t, t)),
                         st.tuples(st.one_of(st.none(), raster_instants),
                                   st.one_of(st.none(), raster_instants)).map(_window))
raster_options = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "useTime": st.booleans(), "timeDataCumulative": st.booleans(),
    "timeOffset": st.integers(-2, 2),
    "timeOffsetUnits": st.sampled_from(["esriTimeUnitsYears", "esriTimeUnitsMonths"])}))


@SETTINGS
@given(time=raster_times, relation=st.one_of(st.none(), st.sampled_from(RELATIONS)),
       options=raster_options)
def test_raster_series_export_and_identify_pick_the_same_date(app, dem_colours, time,
                                                              relation, options):
    client = app.test_client()
    params = clean({"time": time_text(time), "timeRelation": relation,
                    "layerTimeOptions": None if options is None else json.dumps(
                        {"3": options})})
    window = inclusive_window(time, relation, options)
    if window is None:  # no time filter: the latest date
        date = DEM_DATES[-1]
    elif window == "empty":
        date = None
    else:
        t0, t1 = window
        hits = [d for d in DEM_DATES if (t0 is None or d >= t0) and (t1 is None or d <= t1)]
        date = hits[-1] if hits else None
    r = client.get(f"{ROOT}/Samples/Demo/MapServer/export",
                   query_string={**OLINDA_VIEW, **params})
    assert r.mimetype == "image/png", r.data[:400]
    drawn = centre(decode(r.data))
    found = client.get(f"{ROOT}/Samples/Demo/MapServer/identify", query_string={
        **IDENTIFY_VIEW, "geometry": f"{OLINDA_POINT.x},{OLINDA_POINT.y}",
        "layers": "all:3", **params}).get_json()
    assert "error" not in found, found
    if date is None:
        assert drawn[3] == 0 and found["results"] == []
    else:
        assert drawn == dem_colours[date]
        assert [(res["layerId"], res["attributes"]["Pixel Value"])
                for res in found["results"]] == [(3, dem_value(date))]


# ------------------------------------------------------------------------------------------
# 3. tile == export
#
# A tile is cut from its metatile: one render of a block of 4 x 4 tiles plus a 64 px buffer
# (maps/metatiles.py), so that point symbols and labels near a tile edge are drawn whole. The
# export a tile equals is therefore the export of its metatile's buffered grid, cropped to the
# tile. Labels are the one difference by design: inside the metatile a label whose box would
# cross the metatile's edge is dropped (never cut), while an export draws every label its
# greedy placement keeps; so the comparisons below use label-free services (a World copy without
# labelingInfo, the Olinda rasters, the Demo archive layer).

WM_ORIGIN = 20037508.342787
WM_RES0 = 156543.03392800014
TO_3857 = Transformer.from_crs(4326, 3857, always_xy=True)


def tile_export_params(app, service: str, z: int, row: int, col: int) -> tuple[dict, tuple]:
    """/export of the tile's metatile grid (buffer included) and where the tile sits in it
    (y, x)."""
    from mapserver.maps.metatiles import block_grid, block_of, core_window

    svc = catalog(app).service(service)
    scheme = svc.tiling
    block = block_of(scheme, z, row, col, 4, 64)
    grid = block_grid(scheme, block)
    left, top = (int(max(v, 0)) for v in core_window(scheme, block)[:2])
    xmin, ymin, xmax, ymax = grid.extent
    params = {"bbox": ",".join(repr(v) for v in (xmin, ymin, xmax, ymax)), "bboxSR": "3857",
              "imageSR": "3857", "size": f"{grid.width},{grid.height}", "format": "png32",
              "transparent": "true", "f": "image"}
    return params, (top + (row - block.row0) * 256, left + (col - block.col0) * 256)


def tile_pixel(lon: float, lat: float, z: int) -> tuple[int, int, int, int]:
    """(row, col, y, x): the tile holding (lon, lat) at level z and the pixel inside it."""
    x, y = TO_3857.transform(lon, lat)
    res = WM_RES0 / 2 ** z
    px, py = (x + WM_ORIGIN) / res, (WM_ORIGIN - y) / res
    return int(py // 256), int(px // 256), int(py % 256), int(px % 256)


def tile_and_export(client, service: str, z: int, row: int, col: int,
                    **extra: str) -> tuple[np.ndarray | None, np.ndarray]:
    """The tile (None: answered 404, outside the service's extent) and the export of its
    metatile cropped to it."""
    tile = client.get(f"{ROOT}/{service}/MapServer/tile/{z}/{row}/{col}")
    assert tile.status_code in (200, 404)
    assert tile.mimetype == ("image/png" if tile.status_code == 200 else "application/json")
    if tile.status_code == 404:
        # no metatile: compare with the export of the tile's own bounds (nothing drawn)
        res = WM_RES0 / 2 ** z
        x0, y1 = -WM_ORIGIN + col * 256 * res, WM_ORIGIN - row * 256 * res
        params = {"bbox": f"{x0!r},{y1 - 256 * res!r},{x0 + 256 * res!r},{y1!r}",
                  "bboxSR": "3857", "imageSR": "3857", "size": "256,256", "format": "png32",
                  "transparent": "true", "f": "image"}
        oy = ox = 0
    else:
        params, (oy, ox) = tile_export_params(client.application, service, z, row, col)
    export = client.get(f"{ROOT}/{service}/MapServer/export",
                        query_string={**params, **extra})
    assert export.mimetype == "image/png", export.data[:300]
    cut = decode(export.data)[oy:oy + 256, ox:ox + 256]
    return (decode(tile.data) if tile.status_code == 200 else None), cut


@pytest.fixture(scope="module")
def world_unlabelled(tmp_path_factory):
    """The Web Mercator World without labels (see the note above)."""
    tmp = tmp_path_factory.mktemp("world_unlabelled")
    doc = json.loads((PROJECT_ROOT / "services" / "WorldMercator.json").read_text())
    for layer in doc["layers"]:
        layer.get("drawingInfo", {}).pop("labelingInfo", None)
    (tmp / "services").mkdir()
    (tmp / "services" / "WorldMercator.json").write_text(json.dumps(doc))
    return create_app(Settings(service_dirs=(tmp / "services",), data_dir=PROJECT_ROOT / "data",
                               output_dir=tmp / "output", tile_cache_dir=tmp / "tiles"))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(z=st.integers(0, 6), data=st.data())
def test_world_tile_is_pixel_identical_to_the_export_of_its_metatile(world_unlabelled, z,
                                                                     data):
    row = data.draw(st.integers(0, 2 ** z - 1), label="row")
    col = data.draw(st.integers(0, 2 ** z - 1), label="col")
    tile, export = tile_and_export(world_unlabelled.test_client(), "WorldMercator", z, row,
                                   col)
    if tile is None:  # no tile beyond the service's extent (above 83.6 N): nothing drawn there
        assert not export[..., 3].any()
    else:
        assert (tile == export).all()


@pytest.mark.parametrize("z", [9, 11, 13])
def test_olinda_raster_tile_is_pixel_identical_to_the_export_of_its_metatile(client, z):
    row, col, _y, _x = tile_pixel(-34.87, -8.0, z)
    tile, export = tile_and_export(client, "Samples/OlindaMercator", z, row, col)
    assert tile is not None and tile[..., 3].any() and (tile == export).all()


@pytest.fixture(scope="module")
def tiled_demo(tmp_path_factory):
    """Samples/Demo as a cached service (in Web Mercator, "tiling": {}) showing only its
    archive layer (layer 2) by default: a copy in its own services folder, over the same
    data."""
    tmp = tmp_path_factory.mktemp("tiled_demo")
    doc = json.loads((PROJECT_ROOT / "services" / "Samples" / "Demo.json").read_text())
    doc["tiling"] = {}
    doc["spatialReference"] = {"wkid": 102100}
    for layer in doc["layers"]:
        layer["defaultVisibility"] = layer["id"] == 2
    (tmp / "services").mkdir()
    (tmp / "services" / "DemoTiled.json").write_text(json.dumps(doc))
    app = create_app(Settings(service_dirs=(tmp / "services",), data_dir=PROJECT_ROOT / "data",
                              output_dir=tmp / "output", tile_cache_dir=tmp / "tiles"))
    assert catalog(app).service("DemoTiled").tiling is not None
    return app


def test_demo_archive_tile_equals_export_and_shows_only_current_rows(tiled_demo, client):
    tclient = tiled_demo.test_client()
    z = 4
    for p, geom in SITES.values():
        c = geom.centroid
        row, col, y, x = tile_pixel(c.x, c.y, z)
        tile, export = tile_and_export(tclient, "DemoTiled", z, row, col)
        assert tile is not None and (tile == export).all(), (row, col)
        # the same picture from the real Samples/Demo, with its archive layer switched on
        params, (oy, ox) = tile_export_params(tiled_demo, "DemoTiled", z, row, col)
        real = client.get(f"{ROOT}/Samples/Demo/MapServer/export",
                          query_string={**params, "layers": "show:2"})
        assert (decode(real.data)[oy:oy + 256, ox:ox + 256] == tile).all(), (row, col)
        current = p["valid_to"] is None  # Alpha, Charlie; Bravo and Delta are archived rows
        if current:
            assert list(tile[y, x]) == ARCHIVE_BLUE, p["name"]
        else:
            assert tile[y, x, 3] == 0, p["name"]


# ------------------------------------------------------------------------------------------
# 4. batch image:export == /export


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("agree_jobs")
    app, svc = make_app(tmp)
    yield app.test_client(), tmp / "buckets"
    svc.close()


Y1952, Y2007 = ms("1952-01-01"), ms("2007-01-01")
TRANSPARENT = None
BATCH_CASES = {
    # historicMoment + gdbVersion + layerDefs + ranges + parameters on the Demo sites:
    # layer 1 (red, on top) keeps Bravo, Charlie and Echo (sde.USER1's extra site), the
    # archive (blue) shows Alpha and, valid in 2016, Delta
    "demo-declared": {
        "service": "Samples/Demo", "grid": ("EPSG:4326", 0.0, 10.0, 0.125, 400, 80),
        "args": {"layers": "show:1,2",
                 "layerDefs": {"1": "floors >= 2", "2": "kind <> 'park'"},
                 "historicMoment": ms("2016-01-01"), "gdbVersion": "sde.USER1",
                 "mapRangeValues": [{"name": "elevation", "value": [0, 1200]}],
                 "layerParameterValues": [{"1": {"kinds": ["school", "hospital", "park"]}}]},
        "probes": {(5, 5): ARCHIVE_BLUE, (15, 5): SITE_RED, (25, 5): SITE_RED,
                   (35, 5): ARCHIVE_BLUE, (45, 5): SITE_RED}},
    # time picks the 2021 raster of the Elevation series (not the latest, 2022)
    "demo-raster-time": {
        "service": "Samples/Demo", "grid": ("EPSG:4326", -34.9140625, -7.953125, 1 / 1024,
                                            84, 84),
        "args": {"layers": "show:3", "time": f"{ms('2020-06-01')},{ms('2021-06-01')}"},
        "same_as": {"layers": "show:3", "time": str(ms("2021-01-01"))},
        "not_as": {"layers": "show:3"}},
    # time + timeRelation + layerTimeOptions + legacy layerDefs: 1952's values shown at 2007
    "gapminder-time": {
        "service": "Gapminder", "grid": ("EPSG:4326", -180.0, 90.0, 1.0, 360, 180),
        "args": {"time": f"{Y2007 - DAY},{Y2007 + DAY}",
                 "timeRelation": "esriTimeRelationWithin",
                 "layerTimeOptions": {"0": {"timeOffset": 55,
                                            "timeOffsetUnits": "esriTimeUnitsYears"}},
                 "layerDefs": "0:continent <> 'Asia'"},
        "same_as": {"time": str(Y1952), "layerDefs": json.dumps({"0": "continent <> 'Asia'"})},
        "probes": {(-50, -10): [252, 174, 97, 255], (105, 33): TRANSPARENT}},
    # dynamicLayers with a definitionExpression and its own renderer, in Web Mercator
    "world-dynamic-3857": {
        "service": "World", "grid": ("EPSG:3857", -20037508.342787, 10018754.1713935,
                                     78271.5169640, 512, 320),
        "args": {"dynamicLayers": [{
            "id": 5, "source": {"type": "mapLayer", "mapLayerId": 1},
            "definitionExpression": "continent = 'Africa'",
            "drawingInfo": {"renderer": {"type": "simple", "symbol": {
                "type": "esriSFS", "style": "esriSFSSolid", "color": [0, 90, 200, 255]}}}}]},
        "probes": {(19, 15): [0, 90, 200, 255], (-50, -10): TRANSPARENT}},
}


def as_export_param(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def export_pixels(client, service: str, grid: tuple, args: dict) -> np.ndarray:
    """/export (png32, transparent) of exactly the batch grid."""
    crs, x0, y0, res, w, h = grid
    code = crs.split(":")[1]
    r = client.get(f"{ROOT}/{service}/MapServer/export", query_string={
        "bbox": f"{x0!r},{y0 - h * res!r},{x0 + w * res!r},{y0!r}", "bboxSR": code,
        "imageSR": code, "size": f"{w},{h}", "format": "png32", "transparent": "true",
        "f": "image", **{k: as_export_param(v) for k, v in args.items()}})
    assert r.mimetype == "image/png", r.data[:400]
    return decode(r.data)


@pytest.mark.parametrize("name", list(BATCH_CASES))
def test_batch_image_export_equals_export_pixels(jobs, name):
    client, buckets = jobs
    case = BATCH_CASES[name]
    service, grid = case["service"], case["grid"]
    crs, x0, y0, res, w, h = grid
    body = {"expression": load(service, **case["args"]), "description": name,
            "grid": pixel_grid(crs, x0, y0, res, w, h),
            "fileExportOptions": gcs("agree", name, "GEO_TIFF")}
    op = client.post("/v1/projects/demo/image:export", json=body).get_json()
    assert "error" not in op, op
    op = wait_done(client, op["name"])
    assert op["metadata"]["state"] == "SUCCEEDED", op
    with rasterio.open(buckets / "agree" / f"{name}.tif") as ds:
        assert ds.count == 4 and (ds.width, ds.height) == (w, h)
        batch = ds.read().transpose(1, 2, 0)
    export = export_pixels(client, service, grid, case["args"])
    assert export[..., 3].any()  # something is drawn
    assert (batch == export).all()
    # the arguments did act: the picture is the one they mean
    if "same_as" in case:
        assert (export_pixels(client, service, grid, case["same_as"]) == export).all()
    if "not_as" in case:
        assert (export_pixels(client, service, grid, case["not_as"]) != export).any()
    to_grid = Transformer.from_crs(4326, crs, always_xy=True)
    for (lon, lat), colour in case.get("probes", {}).items():
        x, y = to_grid.transform(lon, lat)
        pixel = [int(v) for v in export[int((y0 - y) / res), int((x - x0) / res)]]
        assert pixel[3] == 0 if colour is TRANSPARENT else pixel == colour, (lon, lat, pixel)
