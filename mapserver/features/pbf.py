"""``f=pbf``: a query answer as Esri's ``esriPBuffer.FeatureCollectionPBuffer`` message.

The wire format is Esri's published FeatureCollectionPBuffer. We declare the part of it we
write here, field numbers and wire types as Esri's format has them (enums as their int32
wire form), build the message classes with the ``protobuf`` runtime, and encode with it;
``tests/test_query_pbf.py`` decodes our bytes with classes compiled by ``grpcio-tools`` from
a schema written for the tests (tests/fixtures/pbf/), with the npm ``arcgis-pbf-parser``, and
the ArcGIS Maps SDK's FeatureLayer decodes them in tests/test_browser_feature_layer.py.

The encoder works from the JSON body :func:`mapserver.features.query.run_query` built with
a quantization grid (pbf coordinates are always integers): a JSON part holds its first vertex
absolute and later ones as differences; pbf holds one ``coords`` list per feature with the
parts one after the other, each starting again from the grid origin, and ``lengths`` gives
each part's vertex count.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

VERSION = "1.0"  # FeatureCollectionPBuffer.version as ArcGIS Server writes it

_T = descriptor_pb2.FieldDescriptorProto
_TYPES = {"string": _T.TYPE_STRING, "float": _T.TYPE_FLOAT, "double": _T.TYPE_DOUBLE,
          "sint32": _T.TYPE_SINT32, "uint32": _T.TYPE_UINT32, "int64": _T.TYPE_INT64,
          "uint64": _T.TYPE_UINT64, "sint64": _T.TYPE_SINT64, "bool": _T.TYPE_BOOL,
          "enum": _T.TYPE_INT32, "bytes": _T.TYPE_BYTES}

# message -> [(name, number, type or message name, repeated, oneof index or None)]
_SCHEMA: dict[str, list[tuple[str, int, str, bool, int | None]]] = {
    "SpatialReference": [("wkid", 1, "uint32", False, None),
                         ("lastestWkid", 2, "uint32", False, None),
                         ("vcsWkid", 3, "uint32", False, None),
                         ("latestVcsWkid", 4, "uint32", False, None),
                         ("wkt", 5, "string", False, None)],
    "Field": [("name", 1, "string", False, None), ("fieldType", 2, "enum", False, None),
              ("alias", 3, "string", False, None), ("sqlType", 4, "enum", False, None),
              ("domain", 5, "string", False, None), ("defaultValue", 6, "string", False, None)],
    "Value": [("string_value", 1, "string", False, 0), ("float_value", 2, "float", False, 0),
              ("double_value", 3, "double", False, 0), ("sint_value", 4, "sint32", False, 0),
              ("uint_value", 5, "uint32", False, 0), ("int64_value", 6, "int64", False, 0),
              ("uint64_value", 7, "uint64", False, 0), ("sint64_value", 8, "sint64", False, 0),
              ("bool_value", 9, "bool", False, 0)],
    "Geometry": [("geometryType", 1, "enum", False, None),
                 ("lengths", 2, "uint32", True, None), ("coords", 3, "sint32", True, None)],
    "Feature": [("attributes", 1, "Value", True, None), ("geometry", 2, "Geometry", False, 0),
                ("centroid", 4, "Geometry", False, None)],
    "UniqueIdField": [("name", 1, "string", False, None),
                      ("isSystemMaintained", 2, "bool", False, None)],
    "Scale": [("xScale", 1, "double", False, None), ("yScale", 2, "double", False, None),
              ("mScale", 3, "double", False, None), ("zScale", 4, "double", False, None)],
    "Translate": [("xTranslate", 1, "double", False, None),
                  ("yTranslate", 2, "double", False, None),
                  ("mTranslate", 3, "double", False, None),
                  ("zTranslate", 4, "double", False, None)],
    "Transform": [("quantizeOriginPostion", 1, "enum", False, None),
                  ("scale", 2, "Scale", False, None), ("translate", 3, "Translate", False, None)],
    "FeatureResult": [("objectIdFieldName", 1, "string", False, None),
                      ("uniqueIdField", 2, "UniqueIdField", False, None),
                      ("globalIdFieldName", 3, "string", False, None),
                      ("geometryType", 7, "enum", False, None),
                      ("spatialReference", 8, "SpatialReference", False, None),
                      ("exceededTransferLimit", 9, "bool", False, None),
                      ("hasZ", 10, "bool", False, None), ("hasM", 11, "bool", False, None),
                      ("transform", 12, "Transform", False, None),
                      ("fields", 13, "Field", True, None),
                      ("features", 15, "Feature", True, None)],
    "CountResult": [("count", 1, "uint64", False, None)],
    "ObjectIdsResult": [("objectIdFieldName", 1, "string", False, None),
                        ("objectIds", 3, "uint64", True, None)],
    "QueryResult": [("featureResult", 1, "FeatureResult", False, 0),
                    ("countResult", 2, "CountResult", False, 0),
                    ("idsResult", 3, "ObjectIdsResult", False, 0)],
}
_ONEOFS = {"Value": "value_type", "Feature": "compressed_geometry", "QueryResult": "Results"}
_OUTER = "FeatureCollectionPBuffer"

GEOMETRY_TYPES = {"esriGeometryPoint": 0, "esriGeometryMultipoint": 1,
                  "esriGeometryPolyline": 2, "esriGeometryPolygon": 3}
FIELD_TYPES = {name: i for i, name in enumerate(
    ("esriFieldTypeSmallInteger", "esriFieldTypeInteger", "esriFieldTypeSingle",
     "esriFieldTypeDouble", "esriFieldTypeString", "esriFieldTypeDate", "esriFieldTypeOID",
     "esriFieldTypeGeometry", "esriFieldTypeBlob", "esriFieldTypeRaster", "esriFieldTypeGUID",
     "esriFieldTypeGlobalID", "esriFieldTypeXML"))}
# SQLType: sqlTypeSmallInt 18, sqlTypeInteger 10, sqlTypeReal 17, sqlTypeDouble 6,
# sqlTypeNVarchar 15, sqlTypeTimestamp2 22 (dates), sqlTypeOther 16
SQL_TYPES = {"esriFieldTypeSmallInteger": 18, "esriFieldTypeInteger": 10,
             "esriFieldTypeSingle": 17, "esriFieldTypeDouble": 6, "esriFieldTypeString": 15,
             "esriFieldTypeDate": 22, "esriFieldTypeOID": 10}
ORIGINS = {"upperLeft": 0, "bottomLeft": 1}


@cache
def _classes() -> dict[str, Any]:
    fd = descriptor_pb2.FileDescriptorProto(name="mapserver_esri_feature_collection.proto",
                                            package="esriPBuffer", syntax="proto3")
    outer = fd.message_type.add(name=_OUTER)
    for mname, fields in _SCHEMA.items():
        msg = outer.nested_type.add(name=mname)
        if mname in _ONEOFS:
            msg.oneof_decl.add(name=_ONEOFS[mname])
        for fname, number, ftype, repeated, oneof in fields:
            f = msg.field.add(name=fname, number=number,
                              label=_T.LABEL_REPEATED if repeated else _T.LABEL_OPTIONAL)
            if ftype in _TYPES:
                f.type = _TYPES[ftype]
            else:
                f.type = _T.TYPE_MESSAGE
                f.type_name = f".esriPBuffer.{_OUTER}.{ftype}"
            if oneof is not None:
                f.oneof_index = oneof
    outer.field.add(name="version", number=1, type=_T.TYPE_STRING, label=_T.LABEL_OPTIONAL)
    outer.field.add(name="queryResult", number=2, type=_T.TYPE_MESSAGE,
                    label=_T.LABEL_OPTIONAL, type_name=f".esriPBuffer.{_OUTER}.QueryResult")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    desc = pool.FindMessageTypeByName(f"esriPBuffer.{_OUTER}")
    return {"outer": message_factory.GetMessageClass(desc)}


def _set_value(v: Any, value: object, ftype: str) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, str):
        v.string_value = value
    elif isinstance(value, int):
        if ftype == "esriFieldTypeDate":
            v.sint64_value = value
        elif -(2**31) <= value < 2**31 and ftype != "esriFieldTypeOID":
            v.sint_value = value
        elif 0 <= value < 2**32:
            v.uint_value = value
        else:
            v.sint64_value = value
    elif isinstance(value, float):
        if ftype == "esriFieldTypeSingle":
            v.float_value = value
        else:
            v.double_value = value
    else:
        v.string_value = str(value)


def _set_geometry(g: Any, geom: dict, gtype: int) -> None:
    """JSON quantized geometry (per-part deltas) -> pbf lengths + feature-wide deltas."""
    g.geometryType = gtype
    if "x" in geom:
        g.coords.extend([int(geom["x"]), int(geom["y"])])
        return
    if "points" in geom:
        parts = [geom["points"]]
    else:
        parts = geom.get("rings") or geom.get("paths") or []
    coords: list[int] = []
    for part in parts:
        if not part:
            continue
        # every part starts again from the grid origin, as in quantized JSON: Esri's
        # decoders (the ArcGIS Maps SDK's pbf feature-set parsers) reset at each part
        g.lengths.append(len(part))
        coords += [int(part[0][0]), int(part[0][1])]
        for dx, dy in part[1:]:
            coords += [dx, dy]
    g.coords.extend(coords)


def encode(body: dict, object_id_field: str | None) -> bytes:
    """A query body (features, count or objectIds) as FeatureCollectionPBuffer bytes."""
    msg = _classes()["outer"]()
    msg.version = VERSION
    qr = msg.queryResult
    if "objectIds" in body and "features" not in body:
        qr.idsResult.objectIdFieldName = body.get("objectIdFieldName") or ""
        qr.idsResult.objectIds.extend(int(i) for i in body["objectIds"])
        return msg.SerializeToString()
    if "count" in body and "features" not in body:
        qr.countResult.count = int(body["count"])
        return msg.SerializeToString()
    fr = qr.featureResult
    if object_id_field:
        fr.objectIdFieldName = object_id_field
        fr.uniqueIdField.name = object_id_field
        fr.uniqueIdField.isSystemMaintained = True
    gtype = GEOMETRY_TYPES.get(body.get("geometryType", ""), 0)
    fr.geometryType = gtype
    sr = body.get("spatialReference") or {}
    if sr.get("wkid"):
        fr.spatialReference.wkid = int(sr["wkid"])
        fr.spatialReference.lastestWkid = int(sr.get("latestWkid") or sr["wkid"])
    elif sr.get("wkt"):
        fr.spatialReference.wkt = sr["wkt"]
    fr.exceededTransferLimit = bool(body.get("exceededTransferLimit"))
    tr = body.get("transform")
    if tr is not None:
        fr.transform.quantizeOriginPostion = ORIGINS[tr["originPosition"]]
        fr.transform.scale.xScale, fr.transform.scale.yScale = tr["scale"][:2]
        fr.transform.translate.xTranslate, fr.transform.translate.yTranslate = \
            tr["translate"][:2]
    fields = body.get("fields") or []
    for fj in fields:
        f = fr.fields.add(name=fj["name"], alias=fj.get("alias") or fj["name"])
        f.fieldType = FIELD_TYPES.get(fj["type"], FIELD_TYPES["esriFieldTypeString"])
        f.sqlType = SQL_TYPES.get(fj["type"], 16)
    ftypes = [(fj["name"], fj["type"]) for fj in fields]
    for feat in body.get("features", []):
        pf = fr.features.add()
        attrs = feat.get("attributes") or {}
        for name, ftype in ftypes:
            _set_value(pf.attributes.add(), attrs.get(name), ftype)
        geom = feat.get("geometry")
        if geom is not None:
            _set_geometry(pf.geometry, geom, gtype)
    return msg.SerializeToString()
