"""``f=pbf`` and ``quantizationParameters``. The pbf bytes are never decoded with the server's
encoder: they are read (1) with classes that grpcio-tools compiles here from our own schema
``tests/fixtures/pbf/feature_collection.proto`` (written from Esri's published description
of FeatureCollectionPBuffer: message and field numbers only) and (2) by an independent
JavaScript decoder from npm, ``arcgis-pbf-parser`` (pinned in ``tests/browser-package.json``,
installed with the browser-test packages), run with ``node``; both are compared with what the
same query answers as ``f=json`` / ``f=geojson``.

Esri's clients (the ArcGIS Maps SDK's pbf parsers, and ``arcgis-pbf-parser``) read a
geometry's ``coords`` part by part: each part's first vertex is relative to the grid origin
(as in a quantized JSON part), later ones to the previous vertex of that part.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pyogrio.raw
import pytest
import shapely

from mapserver.settings import PROJECT_ROOT

FIXTURES = PROJECT_ROOT / "tests" / "fixtures"

WORLD = "/arcgis/rest/services/World/MapServer"



@pytest.fixture(scope="module")
def esri_pb(tmp_path_factory):
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("esri_pb")
    src = FIXTURES / "pbf"
    rc = protoc.main(["protoc", f"-I{src}", f"--python_out={out}",
                      str(src / "feature_collection.proto")])
    assert rc == 0
    spec = importlib.util.spec_from_file_location("feature_collection_pb2",
                                                  out / "feature_collection_pb2.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["feature_collection_pb2"] = mod
    spec.loader.exec_module(mod)
    return mod.FeatureCollectionPBuffer


def _read(path: str):
    meta, _fids, wkb, data = pyogrio.raw.read(str(PROJECT_ROOT / "data" / path))
    cols = {name: np.asarray(arr) for name, arr in zip(meta["fields"], data, strict=True)}
    return shapely.from_wkb(wkb), cols


COUNTRIES = _read("world/countries.gpkg")


def get(client, path, **params):
    return client.get(path, query_string=params)


def decode(pb_cls, data: bytes) -> dict:
    """Esri pbf -> a JSON-like dict (attributes by field name; geometry parts as absolute
    integer grid coordinates: each part's first vertex from the origin, then deltas)."""
    msg = pb_cls()
    msg.ParseFromString(data)
    assert msg.version
    fr = msg.queryResult.featureResult
    names = [f.name for f in fr.fields]
    feats = []
    for f in fr.features:
        attrs = {}
        for name, v in zip(names, f.attributes, strict=True):
            kind = v.WhichOneof("value_type")
            attrs[name] = None if kind is None else getattr(v, kind)
        parts = None
        if f.HasField("geometry"):
            c = np.asarray(f.geometry.coords, dtype=np.int64).reshape(-1, 2)
            lengths = list(f.geometry.lengths) or [len(c)]
            assert sum(lengths) == len(c)
            parts, k = [], 0
            for n in lengths:
                parts.append(np.cumsum(c[k:k + n], axis=0).tolist())
                k += n
        feats.append({"attributes": attrs, "parts": parts})
    return {"fr": fr, "features": feats, "fields": names}


def json_parts(geom: dict) -> list:
    """JSON quantized geometry (each part: first absolute, then deltas) -> absolute parts."""
    if "x" in geom:
        return [[[geom["x"], geom["y"]]]]
    key = next(k for k in ("rings", "paths") if k in geom) if "points" not in geom else None
    parts = [geom["points"]] if key is None else geom[key]
    return [np.cumsum(np.asarray(p), axis=0).tolist() for p in parts]


QP = {"mode": "view", "originPosition": "upperLeft", "tolerance": 0.05,
      "extent": {"xmin": -180, "ymin": -90, "xmax": 180, "ymax": 90,
                 "spatialReference": {"wkid": 4326}}}


def test_pbf_decodes_to_the_json_features_and_attributes(client, esri_pb):
    params = {"where": "continent = 'Africa'", "outFields": "*", "outSR": "4326",
              "quantizationParameters": json.dumps(QP), "orderByFields": "OBJECTID"}
    resp = get(client, WORLD + "/1/query", f="pbf", **params)
    assert resp.mimetype == "application/x-protobuf"
    got = decode(esri_pb, resp.data)
    body = get(client, WORLD + "/1/query", f="json", **params).get_json()
    plain = get(client, WORLD + "/1/query", f="json", where="continent = 'Africa'",
                outFields="*", orderByFields="OBJECTID", returnGeometry="false").get_json()
    fr = got["fr"]
    assert fr.objectIdFieldName == "OBJECTID" and fr.uniqueIdField.name == "OBJECTID"
    assert fr.geometryType == esri_pb.GeometryType.Value("esriGeometryTypePolygon")
    assert fr.spatialReference.wkid == 4326
    assert fr.transform.quantizeOriginPostion == esri_pb.QuantizeOriginPostion.Value(
        "upperLeft")
    assert (fr.transform.scale.xScale, fr.transform.scale.yScale) == (0.05, 0.05)
    assert (fr.transform.translate.xTranslate, fr.transform.translate.yTranslate) == (-180, 90)
    assert body["transform"] == {"originPosition": "upperLeft", "scale": [0.05, 0.05, 0, 0],
                                 "translate": [-180.0, 90.0, 0, 0]}
    assert got["fields"] == [f["name"] for f in plain["fields"]]
    types = {f.name: esri_pb.FieldType.Name(f.fieldType) for f in fr.fields}
    assert types == {f["name"]: f["type"] for f in plain["fields"]}
    assert [f["attributes"] for f in got["features"]] == [
        f["attributes"] for f in plain["features"]]
    assert len(got["features"]) == 51
    for pf, jf in zip(got["features"], body["features"], strict=True):
        assert pf["parts"] == json_parts(jf["geometry"])


def test_quantized_geometries_match_the_tolerance(client):
    geoms, cols = COUNTRIES
    tol = QP["tolerance"]
    for mode, bound in (("view", tol + tol * math.sqrt(0.5) + 1e-9),
                        ("edit", tol * math.sqrt(0.5) + 1e-9)):
        for origin in ("upperLeft", "bottomLeft"):
            qp = {**QP, "mode": mode, "originPosition": origin}
            body = get(client, WORLD + "/1/query", f="json", where="iso_a3 IN ('BRA', 'NOR')",
                       outFields="iso_a3", quantizationParameters=json.dumps(qp)).get_json()
            ty = 90.0 if origin == "upperLeft" else -90.0
            assert body["transform"]["translate"] == [-180.0, ty, 0, 0]
            assert body["transform"]["originPosition"] == origin
            for feat in body["features"]:
                truth = geoms[list(cols["iso_a3"]).index(feat["attributes"]["iso_a3"])]
                rings = []
                for part in json_parts(feat["geometry"]):
                    a = np.asarray(part, dtype=float)
                    assert np.array_equal(a, np.round(a))  # on the grid
                    x = -180.0 + a[:, 0] * tol
                    y = ty - a[:, 1] * tol if origin == "upperLeft" else ty + a[:, 1] * tol
                    rings.append(np.column_stack([x, y]))
                got_pts = shapely.points(np.vstack(rings))
                # every returned vertex is within the bound of the true outline
                assert float(shapely.distance(got_pts, truth.boundary).max()) <= bound
                if mode == "edit":  # nothing generalised: one vertex per true vertex
                    assert sum(len(r) for r in rings) == len(shapely.get_coordinates(truth))
                else:
                    assert sum(len(r) for r in rings) < len(shapely.get_coordinates(truth))


def test_quantized_point_exact_json(client):
    body = get(client, WORLD + "/0/query", f="json", where="name = 'Paris'", outFields="name",
               quantizationParameters=json.dumps({"mode": "view", "originPosition":
                                                  "bottomLeft", "tolerance": 0.5,
                                                  "extent": QP["extent"]})).get_json()
    meta, _f, wkb, data = pyogrio.raw.read(str(PROJECT_ROOT / "data" / "world/cities.gpkg"))
    names = list(data[list(meta["fields"]).index("name")])
    p = shapely.from_wkb(wkb[names.index("Paris")])
    assert body["features"] == [{"attributes": {"name": "Paris"},
                                 "geometry": {"x": round((p.x + 180) / 0.5),
                                              "y": round((p.y + 90) / 0.5)}}]
    assert body["transform"] == {"originPosition": "bottomLeft", "scale": [0.5, 0.5, 0, 0],
                                 "translate": [-180.0, -90.0, 0, 0]}


def test_pbf_points_count_and_ids(client, esri_pb):
    resp = get(client, WORLD + "/0/query", f="pbf", where="1=1", outFields="name")
    got = decode(esri_pb, resp.data)
    plain = get(client, WORLD + "/0/query", f="json", where="1=1", outFields="name").get_json()
    tr = got["fr"].transform
    assert len(got["features"]) == len(plain["features"])
    for pf, jf in zip(got["features"], plain["features"], strict=True):
        assert pf["attributes"] == jf["attributes"]
        (x, y), = pf["parts"][0]
        x = tr.translate.xTranslate + x * tr.scale.xScale
        y = tr.translate.yTranslate - y * tr.scale.yScale
        assert abs(x - jf["geometry"]["x"]) <= tr.scale.xScale
        assert abs(y - jf["geometry"]["y"]) <= tr.scale.yScale
    count = esri_pb()
    count.ParseFromString(get(client, WORLD + "/1/query", f="pbf", where="continent='Asia'",
                              returnCountOnly="true").data)
    assert count.queryResult.countResult.count == int(
        (COUNTRIES[1]["continent"] == "Asia").sum())
    ids = esri_pb()
    ids.ParseFromString(get(client, WORLD + "/1/query", f="pbf", objectIds="3,1,2",
                            returnIdsOnly="true").data)
    assert ids.queryResult.idsResult.objectIdFieldName == "OBJECTID"
    assert sorted(ids.queryResult.idsResult.objectIds) == [1, 2, 3]


def test_layer_json_advertises_pbf_and_quantization(client):
    body = get(client, WORLD + "/1", f="json").get_json()
    assert "PBF" in [s.strip() for s in body["supportedQueryFormats"].split(",")]
    assert body["supportsCoordinatesQuantization"] is True
    assert body["advancedQueryCapabilities"]["supportsHavingClause"] is True
    assert body["hasZ"] is False and body["hasM"] is False


def test_bad_quantization_parameters_are_refused(client):
    body = get(client, WORLD + "/1/query", f="json", where="1=1",
               quantizationParameters='{"mode": "fast"}').get_json()
    assert body["error"]["code"] == 400
    assert "'quantizationParameters' parameter is invalid" in body["error"]["details"]


# --- an independent decoder: arcgis-pbf-parser (npm) under node ------------------------------

NODE_DECODE = """
const decode = require(process.argv[2]);
const bytes = require('fs').readFileSync(process.argv[3]);
process.stdout.write(JSON.stringify(decode(new Uint8Array(bytes))));
"""


@pytest.fixture(scope="module")
def node_decode(browser_files, tmp_path_factory):
    """bytes -> the GeoJSON FeatureCollection ``arcgis-pbf-parser`` makes of them (node)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("these tests need Node.js on PATH (Debian: apt-get install nodejs npm)",
                    pytrace=False)
    parser = browser_files / "node_modules" / "arcgis-pbf-parser" / "dist" / "arcgis-pbf.cjs"
    work = tmp_path_factory.mktemp("node_decode")
    script = work / "decode.cjs"
    script.write_text(NODE_DECODE)

    def run(data: bytes) -> dict:
        path = work / "answer.pbf"
        path.write_bytes(data)
        proc = subprocess.run([node, str(script), str(parser), str(path)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return run


def test_arcgis_pbf_parser_reads_points_as_the_geojson(client, node_decode):
    # arcgis-pbf-parser applies the transform for an upperLeft origin only
    params = {"where": "1=1", "outFields": "*", "outSR": "4326", "orderByFields": "OBJECTID",
              "quantizationParameters": json.dumps({**QP, "tolerance": 1e-6})}
    decoded = node_decode(get(client, WORLD + "/0/query", f="pbf", **params).data)
    assert decoded["exceededTransferLimit"] is False
    got = decoded["featureCollection"]["features"]
    want = get(client, WORLD + "/0/query", f="geojson", where="1=1", outFields="*",
               orderByFields="OBJECTID").get_json()["features"]
    assert len(got) == len(want) > 100
    for g, w in zip(got, want, strict=True):
        assert g["id"] == w["id"] == w["properties"]["OBJECTID"]
        assert g["properties"] == w["properties"]
        assert g["geometry"]["type"] == w["geometry"]["type"] == "Point"
        assert g["geometry"]["coordinates"] == pytest.approx(w["geometry"]["coordinates"],
                                                             abs=1e-6)


def test_arcgis_pbf_parser_reads_polygons_as_the_json(client, node_decode):
    params = {"where": "continent = 'Africa'", "outFields": "*", "outSR": "4326",
              "orderByFields": "OBJECTID", "quantizationParameters": json.dumps(QP)}
    decoded = node_decode(get(client, WORLD + "/1/query", f="pbf", **params).data)
    got = decoded["featureCollection"]["features"]
    body = get(client, WORLD + "/1/query", f="json", **params).get_json()
    plain = get(client, WORLD + "/1/query", f="geojson", where="continent = 'Africa'",
                outFields="*", orderByFields="OBJECTID").get_json()["features"]
    assert len(got) == len(body["features"]) == len(plain) == 51
    tol = QP["tolerance"]
    for g, jf, pf in zip(got, body["features"], plain, strict=True):
        assert g["id"] == pf["id"] and g["properties"] == pf["properties"]
        # every ring, in order (the parser groups rings into polygons by orientation)
        polys = ([g["geometry"]["coordinates"]] if g["geometry"]["type"] == "Polygon"
                 else g["geometry"]["coordinates"])
        rings = [np.asarray(r) for poly in polys for r in poly]
        want = [np.column_stack([-180.0 + np.asarray(p)[:, 0] * tol,
                                 90.0 - np.asarray(p)[:, 1] * tol])
                for p in json_parts(jf["geometry"])]
        assert len(rings) == len(want), pf["properties"]["name"]
        for r, w in zip(rings, want, strict=True):
            np.testing.assert_allclose(r, w, atol=1e-9)
        # and the shape is the full-precision GeoJSON one, to the quantization tolerance
        truth = shapely.geometry.shape(pf["geometry"])
        pts = shapely.points(np.vstack(rings))
        assert float(shapely.distance(pts, truth.boundary).max()) <= 2 * tol
