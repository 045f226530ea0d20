"""Hostile and careless requests (issue 9), shared by tests/test_hostile.py and bench/soak.py.

Each case is ``(name, method, path, params_or_body, expect)``: ``expect`` is ``"refuse"`` (an
error body with a 4xx code must come back), ``"accept"`` (a valid control: no error) or
``"any"`` (either, but never a 5xx, a traceback or a server path). ``params`` go in the query
string for GET and in a form body for POST; ``body`` (a dict/list or raw str) is JSON for /v1.
"""

from __future__ import annotations

import json

S = "/arcgis/rest/services"
BBOX = "-180,-90,180,90"
EXPORT = f"{S}/World/MapServer/export"
GAP_EXPORT = f"{S}/Gapminder/MapServer/export"
IDENTIFY = f"{S}/World/MapServer/identify"
FIND = f"{S}/World/MapServer/find"
QUERY = f"{S}/World/MapServer/1/query"
LEGEND = f"{S}/World/MapServer/legend"
TILE = f"{S}/World/MapServer/tile"


def ex(**kw) -> dict:
    return {"bbox": BBOX, "size": "64,64", "f": "image", "format": "png", **kw}


def ident(**kw) -> dict:
    return {"f": "json", "geometry": "10,10", "geometryType": "esriGeometryPoint",
            "tolerance": "2", "mapExtent": BBOX, "imageDisplay": "400,400,96", **kw}


def sfs_outline(width: float) -> str:
    return json.dumps([{"id": 0, "source": {"type": "mapLayer", "mapLayerId": 0},
                        "drawingInfo": {"renderer": {"type": "simple", "symbol": {
                            "type": "esriSFS", "style": "esriSFSSolid", "color": [0, 0, 0, 255],
                            "outline": {"type": "esriSLS", "width": width,
                                        "color": [0, 0, 0, 255]}}}}}])


def sms(size: float) -> str:
    return json.dumps([{"id": 0, "source": {"type": "mapLayer", "mapLayerId": 0},
                        "drawingInfo": {"renderer": {"type": "simple", "symbol": {
                            "type": "esriSMS", "style": "esriSMSCircle", "size": size,
                            "color": [255, 0, 0, 255]}}}}])


def deep(n: int, leaf: str = "1") -> str:
    return "[" * n + leaf + "]" * n


LAT0_95 = ('PROJCS["x",GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137,'
           '298.257223563]],PRIMEM["Greenwich",0],UNIT["Degree",0.0174532925199433]],'
           'PROJECTION["Lambert_Azimuthal_Equal_Area"],PARAMETER["False_Easting",0],'
           'PARAMETER["False_Northing",0],PARAMETER["Central_Meridian",0],'
           'PARAMETER["Latitude_Of_Origin",95],UNIT["Meter",1]]')
LAEA_45 = LAT0_95.replace("Origin\",95", "Origin\",45")
MADE_UP_DATUM = ('GEOGCS["x",DATUM["y",SPHEROID["z",6378137,298.257223563]],PRIMEM["Greenwich",0],'
                 'UNIT["Degree",0.0174532925199433]]')
TOWGS84_DATUM = MADE_UP_DATUM.replace('298.257223563]', '298.257223563],TOWGS84[1,2,3,0,0,0,0]')
LTO = '{"0":{"timeOffset":%s,"timeOffsetUnits":"%s"}}'
RING_OPEN = json.dumps({"rings": [[[0, 0], [40, 0], [40, 40]]]})

# (name, method, path, params, expect)
ARCGIS_CASES: list[tuple[str, str, str, dict, str]] = [
    # --- the cases named in issue 9 ---
    ("poison outline 1e308", "GET", GAP_EXPORT, ex(dynamicLayers=sfs_outline(1e308)), "refuse"),
    ("mapScale 1e-308", "GET", EXPORT, ex(mapScale="1e-308"), "refuse"),
    ("layerTimeOptions NaN", "GET", GAP_EXPORT,
     ex(layerTimeOptions=LTO % ("NaN", "esriTimeUnitsYears")), "refuse"),
    ("datumTransformations 600 KB", "POST", EXPORT,
     ex(datumTransformations=json.dumps([{"wkt": "GEOGTRAN[" + "x" * 600_000 + "]"}])), "refuse"),
    ("imageSR lat_0 95", "GET", EXPORT, ex(imageSR=json.dumps({"wkt": LAT0_95})), "refuse"),
    ("imageSR made-up datum", "GET", EXPORT, ex(imageSR=json.dumps({"wkt": MADE_UP_DATUM})),
     "refuse"),
    ("identify x NaN", "GET", IDENTIFY, ident(geometry='{"x":NaN,"y":0}'), "refuse"),
    ("query x NaN", "GET", QUERY, {"f": "json", "geometry": '{"x":NaN,"y":0}',
                                   "geometryType": "esriGeometryPoint"}, "refuse"),
    ("outFields SQL", "GET", QUERY, {"f": "json", "where": "1=1",
                                     "outFields": "*, (SELECT sql FROM sqlite_master)"}, "refuse"),
    ("callback non-ASCII", "GET", f"{S}/World/MapServer", {"f": "json", "callback": "nùr"},
     "refuse"),
    ("deep JSON form dynamicLayers", "POST", EXPORT, ex(dynamicLayers=deep(100_000)), "refuse"),
    ("deep JSON geometry", "POST", QUERY, {"f": "json", "geometry": deep(5000)}, "refuse"),
    ("non-closed ring in query (Esri closes it)", "GET", QUERY,
     {"f": "json", "geometry": RING_OPEN, "geometryType": "esriGeometryPolygon",
      "returnCountOnly": "true"}, "accept"),
    ("non-closed ring in clipping", "GET", EXPORT, ex(clipping=json.dumps(
        {"geometry": json.loads(RING_OPEN)})), "accept"),
    ("two-point ring in spatialFilter", "GET", EXPORT, ex(spatialFilter=json.dumps(
        {"geometry": {"rings": [[[0, 0], [10, 0]]]}, "geometryType": "esriGeometryPolygon"})),
     "refuse"),
    # --- symbol sizes in pixels after dpi ---
    ("marker size 1e6", "GET", EXPORT, ex(dynamicLayers=sms(1e6)), "refuse"),
    ("marker size 300 pt at 2400 dpi", "GET", EXPORT, ex(dynamicLayers=sms(300), dpi="2400"),
     "refuse"),
    ("marker size 12 (control)", "GET", EXPORT, ex(dynamicLayers=sms(12)), "accept"),
    ("outline 2 pt (control)", "GET", GAP_EXPORT, ex(dynamicLayers=sfs_outline(2)), "accept"),
    ("outline -1", "GET", GAP_EXPORT, ex(dynamicLayers=sfs_outline(-1)), "refuse"),
    # --- view ---
    ("dpi 0", "GET", EXPORT, ex(dpi="0"), "refuse"),
    ("dpi 1e9", "GET", EXPORT, ex(dpi="1e9"), "refuse"),
    ("dpi nan", "GET", EXPORT, ex(dpi="nan"), "refuse"),
    ("dpi 300 (control)", "GET", EXPORT, ex(dpi="300"), "accept"),
    ("mapScale 1e300", "GET", EXPORT, ex(mapScale="1e300"), "refuse"),
    ("mapScale -5", "GET", EXPORT, ex(mapScale="-5"), "refuse"),
    ("mapScale 5e7 (control)", "GET", EXPORT, ex(mapScale="5e7"), "accept"),
    ("size 0,0", "GET", EXPORT, ex(size="0,0"), "refuse"),
    ("size huge", "GET", EXPORT, ex(size="100000,100000"), "refuse"),
    ("size inf", "GET", EXPORT, ex(size="inf,64"), "refuse"),
    ("bbox nan", "GET", EXPORT, ex(bbox="nan,0,1,1"), "refuse"),
    ("bbox 1e308", "GET", EXPORT, ex(bbox="-1e308,-1e308,1e308,1e308"), "any"),
    ("bbox degenerate", "GET", EXPORT, ex(bbox="1,1,1,1"), "refuse"),
    ("rotation 1e300", "GET", EXPORT, ex(rotation="1e300"), "any"),
    ("imageSR 1e400", "GET", EXPORT, ex(imageSR='{"wkid":1e400}'), "refuse"),
    ("imageSR junk", "GET", EXPORT, ex(imageSR="GEOGCS[[[[["), "refuse"),
    ("imageSR long WKT", "GET", EXPORT, ex(imageSR=json.dumps({"wkt": "GEOGCS[" + "a" * 40000})),
     "refuse"),
    ("imageSR LAEA lat_0 45 (control)", "GET", EXPORT, ex(imageSR=json.dumps({"wkt": LAEA_45})),
     "accept"),
    ("imageSR TOWGS84 datum (control)", "GET", EXPORT,
     ex(imageSR=json.dumps({"wkt": TOWGS84_DATUM})), "accept"),
    ("format emf", "GET", EXPORT, ex(format="emf"), "refuse"),
    ("format junk", "GET", EXPORT, ex(format="../../etc/passwd"), "refuse"),
    # --- map filters ---
    ("time NaN", "GET", GAP_EXPORT, ex(time="NaN"), "refuse"),
    ("time inf", "GET", GAP_EXPORT, ex(time="1e400"), "refuse"),
    ("time 1e300", "GET", GAP_EXPORT, ex(time="1e300"), "any"),
    ("layerTimeOptions huge offset", "GET", GAP_EXPORT,
     ex(layerTimeOptions=LTO % ("1e300", "esriTimeUnitsCenturies")), "refuse"),
    ("layerTimeOptions 1e18 ms", "GET", GAP_EXPORT,
     ex(layerTimeOptions=LTO % ("1e18", "esriTimeUnitsMilliseconds")), "refuse"),
    ("layerTimeOptions 5 years (control)", "GET", GAP_EXPORT,
     ex(layerTimeOptions=LTO % ("5", "esriTimeUnitsYears")), "accept"),
    ("layerDefs SQL injection", "GET", EXPORT,
     ex(layerDefs='{"1":"1=1; DROP TABLE x"}'), "refuse"),
    ("layerDefs subquery", "GET", EXPORT,
     ex(layerDefs='{"1":"name IN (SELECT name FROM sqlite_master)"}'), "refuse"),
    ("layerDefs deep parens", "GET", EXPORT, ex(layerDefs='{"1":"' + "(" * 3000 + "1=1"
                                                          + ")" * 3000 + '"}'), "any"),
    ("layerDefs (control)", "GET", EXPORT, ex(layerDefs='{"1":"pop_est > 1e8"}'), "accept"),
    ("layers junk", "GET", EXPORT, ex(layers="show:1,a,b"), "refuse"),
    ("layers huge id", "GET", EXPORT, ex(layers="show:99999999999999999999999"), "any"),
    ("dynamicLayers 1000 layers", "POST", EXPORT, ex(dynamicLayers=json.dumps(
        [{"id": i, "source": {"type": "mapLayer", "mapLayerId": 1}} for i in range(1000)])),
     "refuse"),
    ("dynamicLayers dataLayer traversal", "GET", EXPORT, ex(dynamicLayers=json.dumps(
        [{"id": 5, "source": {"type": "dataLayer", "dataSource": {
            "type": "table", "workspaceId": "x", "dataSourceName": "../../../etc/passwd"}}}])),
     "refuse"),
    ("dynamicLayers not a list", "GET", EXPORT, ex(dynamicLayers='{"a":1}'), "refuse"),
    ("datumTransformations 1e400", "GET", EXPORT, ex(datumTransformations="[1e400]"), "refuse"),
    ("datumTransformations junk", "GET", EXPORT, ex(datumTransformations="[{\"wkt\":\"x\"}]"),
     "refuse"),
    ("selectionDefinitions bad", "GET", EXPORT, ex(selectionDefinitions='[{"layerId":"x"}]'),
     "refuse"),
    ("clipping 260k vertices", "POST", EXPORT, ex(clipping=json.dumps(
        {"geometry": {"rings": [[[i % 9, 0] for i in range(260_000)]]}},
        separators=(",", ":"))), "refuse"),
    ("historicMoment junk", "GET", EXPORT, ex(historicMoment="abc"), "refuse"),
    ("gdbVersion traversal", "GET", EXPORT, ex(gdbVersion="../../x"), "refuse"),
    ("mapRangeValues deep", "GET", EXPORT, ex(mapRangeValues=deep(200)), "refuse"),
    # --- identify / find / query / legend / tile ---
    ("identify tolerance 1e9", "GET", IDENTIFY, ident(tolerance="1e9"), "any"),
    ("identify imageDisplay 0", "GET", IDENTIFY, ident(imageDisplay="0,0,0"), "refuse"),
    ("identify (control)", "GET", IDENTIFY, ident(), "accept"),
    ("find searchText huge", "GET", FIND, {"f": "json", "searchText": "a" * 100_000,
                                           "layers": "1"}, "any"),
    ("find (control)", "GET", FIND, {"f": "json", "searchText": "France", "layers": "1"},
     "accept"),
    ("query where injection", "GET", QUERY, {"f": "json", "where": "1=1 UNION SELECT 1"},
     "refuse"),
    ("query resultRecordCount -1", "GET", QUERY, {"f": "json", "where": "1=1",
                                                  "resultRecordCount": "-1"}, "refuse"),
    ("query distance 1e308", "GET", QUERY, {"f": "json", "geometry": "0,0", "distance": "1e308",
                                            "geometryType": "esriGeometryPoint",
                                            "returnCountOnly": "true"}, "any"),
    ("query outStatistics deep", "GET", QUERY, {"f": "json",
                                                "outStatistics": deep(3000, "{}")}, "refuse"),
    ("query 260k multipoint", "POST", QUERY, {"f": "json", "geometryType":
                                              "esriGeometryMultipoint", "geometry": json.dumps(
        {"points": [[i % 9, 0] for i in range(260_000)]}, separators=(",", ":"))}, "refuse"),
    ("query (control)", "GET", QUERY, {"f": "json", "where": "pop_est > 1e8",
                                       "outFields": "name", "returnGeometry": "false"}, "accept"),
    ("legend dpi 1e9", "GET", LEGEND, {"f": "json", "dpi": "1e9"}, "refuse"),
    ("legend dynamicLayers poison", "GET", LEGEND,
     {"f": "json", "dynamicLayers": sfs_outline(1e308)}, "any"),
    ("tile negative", "GET", f"{TILE}/-1/0/0", {}, "any"),
    ("tile huge", "GET", f"{TILE}/99/999999999999/0", {}, "any"),
    # --- response formats / JSONP ---
    ("callback script", "GET", f"{S}/World/MapServer",
     {"f": "json", "callback": "alert(1)//"}, "refuse"),
    ("callback with newline inside", "GET", f"{S}/World/MapServer",
     {"f": "json", "callback": "c\nb"}, "refuse"),
    ("callback path (control)", "GET", f"{S}/World/MapServer",
     {"f": "json", "callback": "dojo.io.script.jsonp_dojoIoScript1._jsonpCallback"}, "accept"),
    ("f junk", "GET", EXPORT, {"f": "<script>", "bbox": BBOX}, "refuse"),
    ("unknown service", "GET", f"{S}/../../etc/MapServer", {"f": "json"}, "refuse"),
    ("unknown layer", "GET", f"{S}/World/MapServer/999999999999999999999/query", {"f": "json"},
     "refuse"),
]


def ee_cases() -> list[tuple[str, str, object, str]]:
    """(name, verb, body, expect) for POST /v1/projects/p/<verb>."""

    def load(service: str = "Samples/Olinda/1") -> dict:
        return {"result": "0", "values": {"0": {"functionInvocationValue": {
            "functionName": "Image.load", "arguments": {"id": {"constantValue": service}}}}}}

    def grid(w: int, h: int) -> dict:
        return {"crsCode": "EPSG:3857", "affineTransform": {
            "scaleX": 10, "shearX": 0, "translateX": 0, "shearY": 0, "scaleY": -10,
            "translateY": 0}, "dimensions": {"width": w, "height": h}}

    dest = {"cloudStorageDestination": {"bucket": "hostile", "filenamePrefix": "x"}}
    clip = {"result": "1", "values": {"0": load("World")["values"]["0"], "1": {
        "functionInvocationValue": {"functionName": "Image.clip", "arguments": {
            "input": {"valueReference": "0"}, "geometry": {"constantValue": {
                "type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10]]]}}}}}}}
    return [
        ("deep body", "image:export", deep(100_000), "refuse"),
        ("deep body (dict)", "image:export", '{"a":' * 5000 + "1" + "}" * 5000, "refuse"),
        ("NaN in body", "image:export", '{"expression": NaN}', "refuse"),
        ("tileDimensions string", "image:export", {
            "expression": load(), "fileExportOptions": {**dest, "geoTiffOptions": {
                "tileDimensions": "256x256"}}}, "refuse"),
        ("integerValue abc", "image:export", {
            "expression": {"result": "0", "values": {"0": {"integerValue": "abc"}}},
            "fileExportOptions": dest}, "refuse"),
        ("300000 squared", "image:export", {
            "expression": load(), "grid": grid(300_000, 300_000), "maxPixels": "1e12",
            "fileExportOptions": dest}, "refuse"),
        ("200000 squared", "image:export", {
            "expression": load(), "grid": grid(200_000, 200_000), "maxPixels": {"value": 1e11},
            "fileExportOptions": dest}, "refuse"),
        ("map zoom 0-24 whole world", "map:export", {
            "expression": load("World"), "tileOptions": {"startZoom": 0, "endZoom": 24},
            "tileExportOptions": dest}, "refuse"),
        ("non-closed GeoJSON ring", "image:export", {
            "expression": clip, "fileExportOptions": {**dest, "fileFormat": "PNG"}}, "any"),
        ("body is a list", "image:export", [1, 2], "refuse"),
        ("unknown field", "image:export", {"expression": load(), "bogus": 1}, "refuse"),
    ]
