"""GetFeatureInfo bodies: identify results written as HTML, plain text, GeoJSON, Esri's WMS
``FeatureInfoResponse`` XML (``text/xml``) or GML 2 (``application/vnd.ogc.gml``).

The results are ``run_identify``'s (``features/identify.py``), one dict per feature with
``layerId``, ``layerName``, ``attributes`` and an Esri ``geometry`` in the request CRS.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import orjson
import shapely

from mapserver.errors import InvalidParameter
from mapserver.features.geometry_in import geometry_from_json
from mapserver.features.geometry_out import to_geojson
from mapserver.ogc.common import El, el, number, xml_document

INFO_FORMATS = ("text/html", "text/plain", "application/json", "application/geo+json",
                "text/xml", "application/vnd.ogc.gml")
_BAD = InvalidParameter("Invalid geometry")


def shape_of(result: dict) -> shapely.Geometry | None:
    g = result.get("geometry")
    if not isinstance(g, dict):
        return None
    try:
        return geometry_from_json(g, result.get("geometryType") or "esriGeometryPoint",
                                  _BAD).geometry
    except InvalidParameter:
        return None


def _value(v: object) -> object:
    return v if isinstance(v, str | int | float | bool) or v is None else str(v)


def write(results: Sequence[dict], info_format: str, crs_code: str) -> tuple[bytes, str]:
    """The body and its content type."""
    if info_format in ("application/json", "application/geo+json"):
        return _geojson(results, crs_code), info_format
    if info_format == "text/plain":
        return _plain(results), "text/plain; charset=utf-8"
    if info_format == "text/xml":
        return _esri_xml(results), "text/xml; charset=utf-8"
    if info_format == "application/vnd.ogc.gml":
        return _gml(results, crs_code), "application/vnd.ogc.gml"
    return _html(results), "text/html; charset=utf-8"


def _geojson(results: Sequence[dict], crs_code: str) -> bytes:
    feats = []
    for r in results:
        g = shape_of(r)
        feats.append({"type": "Feature", "id": f"{r['layerId']}.{len(feats)}",
                      "layerId": r["layerId"], "layerName": r["layerName"],
                      "geometry": to_geojson(g) if g is not None else None,
                      "properties": {k: _value(v) for k, v in r["attributes"].items()}})
    body = {"type": "FeatureCollection", "features": feats,
            "crs": {"type": "name", "properties": {"name": crs_code}}}
    # orjson (issue 11): NaN attributes become null instead of failing the request
    return orjson.dumps(body, default=str,
                        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _plain(results: Sequence[dict]) -> bytes:
    if not results:
        return b"no features were found\n"
    lines = []
    for r in results:
        lines.append(f"Layer '{r['layerName']}' (id {r['layerId']})")
        lines.append(f"  Feature {r.get('value', '')}:")
        for k, v in r["attributes"].items():
            lines.append(f"    {k} = '{v}'")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _html(results: Sequence[dict]) -> bytes:
    out = ['<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>GetFeatureInfo</title>'
           "<style>table{border-collapse:collapse;font:12px sans-serif;margin-bottom:8px}"
           "td,th{border:1px solid #999;padding:2px 6px;text-align:left}</style></head><body>"]
    if not results:
        out.append("<p>No features were found.</p>")
    layer = None
    for r in results:
        if r["layerId"] != layer:
            if layer is not None:
                out.append("</table>")
            layer = r["layerId"]
            out.append(f"<h4>{html.escape(str(r['layerName']))}</h4><table>")
            out.append("<tr>" + "".join(f"<th>{html.escape(str(k))}</th>"
                                        for k in r["attributes"]) + "</tr>")
        out.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>"
                                    for v in r["attributes"].values()) + "</tr>")
    if layer is not None:
        out.append("</table>")
    out.append("</body></html>\n")
    return "".join(out).encode("utf-8")


_NAME_START = re.compile(r"^[^A-Za-z_]")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def xml_name(text: str) -> str:
    """An XML element/attribute name from a field or layer name (``Pixel Value`` ->
    ``Pixel_Value``)."""
    name = _NAME_BAD.sub("_", text) or "_"
    return "_" + name if _NAME_START.match(name) else name


def _esri_xml(results: Sequence[dict]) -> bytes:
    fields = [el("FIELDS", **{xml_name(k): "" if v is None else str(v)
                               for k, v in r["attributes"].items()}) for r in results]
    root = el("FeatureInfoResponse", fields, xmlns="http://www.esri.com/wms",
              xmlns__esri_wms="http://www.esri.com/wms")
    return xml_document(root)


def _coords(seq) -> str:
    return " ".join(f"{number(x)},{number(y)}" for x, y, *_ in seq)


def gml_geometry(g: shapely.Geometry, srs: str) -> El | None:
    """GML 2 for a shapely geometry (x,y order, ``srsName`` = the request's CRS code)."""
    if g is None or g.is_empty:
        return None
    kind = g.geom_type
    if kind == "Point":
        return el("gml:Point", el("gml:coordinates", text=_coords(g.coords)), srsName=srs)
    if kind == "LineString":
        return el("gml:LineString", el("gml:coordinates", text=_coords(g.coords)), srsName=srs)
    if kind == "Polygon":
        ring = el("gml:outerBoundaryIs", el("gml:LinearRing", el("gml:coordinates",
                                                                  text=_coords(g.exterior.coords))))
        holes = [el("gml:innerBoundaryIs", el("gml:LinearRing", el("gml:coordinates",
                                                                    text=_coords(i.coords))))
                 for i in g.interiors]
        return el("gml:Polygon", ring, holes, srsName=srs)
    member = {"MultiPoint": ("gml:MultiPoint", "gml:pointMember"),
              "MultiLineString": ("gml:MultiLineString", "gml:lineStringMember"),
              "MultiPolygon": ("gml:MultiPolygon", "gml:polygonMember")}.get(kind)
    if member is None:
        return None
    return el(member[0], [el(member[1], gml_geometry(part, srs)) for part in g.geoms],
              srsName=srs)


def _gml(results: Sequence[dict], crs_code: str) -> bytes:
    members = []
    for k, r in enumerate(results):
        name = xml_name(str(r["layerName"]))
        props = [el(xml_name(f), text="" if v is None else v) for f, v in r["attributes"].items()]
        g = shape_of(r)
        geom = gml_geometry(g, crs_code) if g is not None else None
        members.append(el("gml:featureMember", el(
            name, el("gml:boundedBy", el("gml:Box", el("gml:coordinates", text=_coords(
                [g.bounds[:2], g.bounds[2:]])), srsName=crs_code)) if geom is not None else None,
            el("geometry", geom) if geom is not None else None, props,
            fid=f"{name}.{k}")))
    root = el("wfs:FeatureCollection", members, xmlns__wfs="http://www.opengis.net/wfs",
              xmlns__gml="http://www.opengis.net/gml")
    return xml_document(root)
