"""MapServer operations and resources that ArcGIS clients read beside export and query:
``queryDomains``, ``generateKml`` and ``info`` (``info/itemInfo``, ``info/thumbnail``,
``info/metadata``), the resources ArcGIS Online and Pro read when a service is added.

They register as service operations, so the dispatcher's access check (``authorize_service``:
499/498/403 for secured services) runs before any of them, as for export.
"""

from __future__ import annotations

import io
import uuid
import xml.etree.ElementTree as ET
import zipfile
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from flask import Response

from mapserver.catalog.model import Layer, Service
from mapserver.encode.image import parse_format
from mapserver.encode.kmz import KMZ_CONTENT_TYPE
from mapserver.errors import InvalidParameter, MapServerError
from mapserver.geo.grid import Grid
from mapserver.geo.project import project_bounds
from mapserver.geo.sr import WGS84
from mapserver.maps.export import map_of, render_map
from mapserver.metadata import declared_domains
from mapserver.params.common import parse_f, parse_int_list, safe_loads
from mapserver.rest.context import Ctx, service_op
from mapserver.rest.html import operation_form
from mapserver.rest.http import html_response, json_response
from mapserver.select.layers import default_visible

MESSAGE = "Invalid or missing input parameters."
THUMBNAIL_SIZE = (200, 133)


def _invalid_url() -> MapServerError:
    return MapServerError("Invalid URL", ["Invalid URL"], code=400)


def _layer_ids(service: Service, value: str | None, name: str) -> list[Layer]:
    """``[0,1]``, ``0,1`` or ``show:0,1``; every id must exist. None: every layer."""
    if value is None:
        return list(service.layers)
    text = value.strip()
    if ":" in text and not text.startswith("["):
        text = text.split(":", 1)[1]
    if text.startswith("["):
        arr = safe_loads(text, name)
        if not isinstance(arr, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                for i in arr):
            raise InvalidParameter(MESSAGE, [f"'{name}' must be an array of layer ids"])
        ids = arr
    else:
        ids = parse_int_list(text, name)
    out = []
    for lid in ids:
        layer = service.layer(lid)
        if layer is None:
            raise InvalidParameter(MESSAGE, [f"'{name}': the requested layer (layerId: {lid}) "
                                             "was not found."])
        if layer not in out:
            out.append(layer)
    return out


# ---- domains -------------------------------------------------------------------------------

@service_op("queryDomains")
def query_domains(ctx: Ctx, rest: list[str]) -> Response:
    if rest:
        raise _invalid_url()
    f = parse_f(ctx.params)
    if f == "html" and ctx.params.raw("layers") is None:
        return operation_form(ctx, "Query Domains", ["layers"])
    layers = _layer_ids(ctx.service, ctx.params.raw("layers"), "layers")
    per_layer, seen = [], {}
    for lyr in layers:
        doms = list(declared_domains(ctx.service, lyr).values())
        per_layer.append({"id": lyr.id, "name": lyr.name, "types": [], "domains": doms})
        for d in doms:
            seen.setdefault(d["name"], d)
    # "domains": the document's set of domains the layers reference; "layers": per layer
    body = {"layers": per_layer, "domains": list(seen.values())}
    if f == "html":
        return operation_form(ctx, "Query Domains", ["layers"], result=body)
    return json_response(body, ctx.params, f)


# ---- generateKml ---------------------------------------------------------------------------

LAYER_OPTIONS = ("composite", "separateImage", "nonComposite")
KML_FIELDS = ("docName", "layers",
              {"name": "layerOptions", "type": "select",
               "options": [["composite", "Composite"], ["separateImage", "Separate images"],
                           ["nonComposite", "Non-composite (vectors)"]]})


def _token_query(ctx: Ctx) -> str:
    token = ctx.params.raw("token")
    return f"&token={quote(token, safe='')}" if token else ""


def _network_link(name: str, href: str, visible: bool = True) -> str:
    # Google Earth appends viewFormat to href after each stop: bbox in degrees, image size
    return f"""    <NetworkLink>
      <name>{escape(name)}</name>
      <visibility>{int(visible)}</visibility>
      <Link>
        <href>{escape(href)}</href>
        <viewRefreshMode>onStop</viewRefreshMode>
        <viewRefreshTime>1</viewRefreshTime>
        <viewFormat>bbox=[bboxWest],[bboxSouth],[bboxEast],[bboxNorth]&amp;size=[horizPixels],[vertPixels]</viewFormat>
      </Link>
    </NetworkLink>
"""


def build_network_kml(ctx: Ctx, doc_name: str, layers: list[Layer], option: str) -> str:
    export = ctx.base_url + "/export?f=kmz&bboxSR=4326&imageSR=4326&format=png32" \
        "&transparent=true&dpi=96" + _token_query(ctx)
    if option == "composite":
        ids = ",".join(str(lyr.id) for lyr in layers)
        links = _network_link(doc_name, f"{export}&layers=show:{ids}")
    else:  # separateImage: one image per (non-group) layer, each switchable in the client
        links = "".join(_network_link(lyr.name, f"{export}&layers=show:{lyr.id}",
                                      lyr.default_visibility)
                        for lyr in layers if lyr.kind != "group")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2">
  <Document>
    <name>{escape(doc_name)}</name>
    <Snippet>{escape(ctx.service.service_description or ctx.service.name)}</Snippet>
{links}  </Document>
</kml>
"""


@service_op("generateKml")
def generate_kml(ctx: Ctx, rest: list[str]) -> Response:
    if rest:
        raise _invalid_url()
    f = (ctx.params.raw("f") or "html").lower()
    if f == "html" and ctx.params.raw("docName") is None:
        return operation_form(ctx, "Generate KML", KML_FIELDS, formats=[["kmz", "KMZ"]])
    doc_name = ctx.params.raw("docName")
    if doc_name is None:
        raise InvalidParameter(MESSAGE, ["'docName' parameter is required"])
    option = ctx.params.raw("layerOptions") or "composite"
    match = next((o for o in LAYER_OPTIONS if o.lower() == option.lower()), None)
    if match is None:
        raise InvalidParameter(MESSAGE, [f"'layerOptions' must be one of "
                                         f"{', '.join(LAYER_OPTIONS)}"])
    if match == "nonComposite":
        raise InvalidParameter(MESSAGE, ["'layerOptions' nonComposite (features as KML "
                                         "vectors) is not supported by this server; use "
                                         "composite or separateImage"])
    layers = _layer_ids(ctx.service, ctx.params.raw("layers"), "layers")
    if ctx.params.raw("layers") is None:  # the map as published (groups included)
        shown = default_visible(ctx.service)
        layers = [lyr for lyr in layers if lyr.id in shown]
    kml = build_network_kml(ctx, doc_name, layers, match)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("doc.kml", kml)
    resp = Response(buf.getvalue(), mimetype=KMZ_CONTENT_TYPE)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in doc_name)[:80] or "doc"
    resp.headers["Content-Disposition"] = f'attachment; filename="{safe}.kmz"'
    return resp


# ---- info: itemInfo, thumbnail, metadata ---------------------------------------------------

def extent_4326(service: Service) -> tuple[float, float, float, float]:
    box = project_bounds(service.full_extent, service.sr, WGS84) or (-180.0, -90.0, 180.0,
                                                                      90.0)
    return (max(box[0], -180.0), max(box[1], -90.0), min(box[2], 180.0), min(box[3], 90.0))


def _tags(service: Service) -> list[str]:
    declared = service.source.get("tags")
    if isinstance(declared, list) and all(isinstance(t, str) for t in declared):
        return list(declared)
    return [service.short_name, "MapServer", *(lyr.name for lyr in service.layers)]


def item_info(service: Service, base_url: str) -> dict:
    xmin, ymin, xmax, ymax = extent_4326(service)
    title = service.source.get("title") if isinstance(service.source.get("title"), str) \
        else service.short_name
    snippet = service.source.get("snippet") if isinstance(service.source.get("snippet"), str) \
        else (service.service_description or service.description)[:250]
    licence = service.source.get("licenseInfo")
    return {
        "culture": "en-US",
        "name": service.short_name,
        "guid": str(uuid.uuid5(uuid.NAMESPACE_URL, "mapserver:" + service.name)).upper(),
        "catalogPath": "",
        "snippet": snippet,
        "description": service.service_description or service.description,
        "summary": snippet,
        "title": title,
        "tags": _tags(service),
        "type": "Map Service",
        "typeKeywords": ["ArcGIS Server", "Data", "Map Service", "Service"],
        "thumbnail": "thumbnail/thumbnail.png",
        "url": base_url,
        "extent": [[xmin, ymin], [xmax, ymax]],
        "spatialReference": _sr_name(service),
        "accessInformation": service.copyright,
        "licenseInfo": licence if isinstance(licence, str) else "",
    }


def _sr_name(service: Service) -> str:
    """The SR's name as itemInfo gives it (``GCS_WGS_1984``-like words joined by _)."""
    if service.sr.is_web_mercator:
        return "WGS_1984_Web_Mercator_Auxiliary_Sphere"
    try:
        from pyproj import CRS

        name = CRS.from_user_input(service.sr.to_json()["wkid"]).name
        return name.replace(" / ", "_").replace(" ", "_")
    except Exception:  # noqa: BLE001 - a name is a courtesy; the wkid is in the service JSON
        return str(service.sr.to_json().get("wkid", ""))


def thumbnail_png(service: Service, png_compression: int = 2) -> bytes:
    """The service as published, 200x133 PNG, over its initial extent widened to that
    aspect ratio, drawn by the export pipeline."""
    w, h = THUMBNAIL_SIZE
    xmin, ymin, xmax, ymax = service.initial_extent
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    bw, bh = xmax - xmin, ymax - ymin
    if bw / bh > w / h:
        bh = bw * h / w
    else:
        bw = bh * w / h
    grid = Grid.from_bbox((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), w, h,
                          service.sr)
    return render_map(map_of(service), grid, parse_format("png32"), False, png_compression)


def metadata_xml(service: Service, base_url: str) -> bytes:
    """An ISO 19139 (gmd) record built from the service definition."""
    gmd, gco = "http://www.isotc211.org/2005/gmd", "http://www.isotc211.org/2005/gco"
    ET.register_namespace("gmd", gmd)
    ET.register_namespace("gco", gco)

    def el(parent: ET.Element, path: str, text: str | None = None) -> ET.Element:
        node = parent
        for part in path.split("/"):
            prefix, name = part.split(":")
            node = ET.SubElement(node, f"{{{gmd if prefix == 'gmd' else gco}}}{name}")
        if text is not None:
            node.text = text
        return node

    info = item_info(service, base_url)
    root = ET.Element(f"{{{gmd}}}MD_Metadata")
    el(root, "gmd:fileIdentifier/gco:CharacterString", info["guid"])
    el(root, "gmd:language/gco:CharacterString", "eng")
    el(root, "gmd:hierarchyLevel/gmd:MD_ScopeCode", "service")
    contact = el(root, "gmd:contact/gmd:CI_ResponsibleParty")
    el(contact, "gmd:organisationName/gco:CharacterString", service.copyright or "")
    el(root, "gmd:dateStamp/gco:DateTime",
       datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    el(root, "gmd:metadataStandardName/gco:CharacterString", "ISO 19139")
    wkid = service.sr.to_json().get("wkid")
    if wkid is not None:
        rs = el(root, "gmd:referenceSystemInfo/gmd:MD_ReferenceSystem/gmd:referenceSystemIdentifier"
                      "/gmd:RS_Identifier")
        el(rs, "gmd:code/gco:CharacterString", str(wkid))
        el(rs, "gmd:codeSpace/gco:CharacterString", "EPSG")
    ident = el(root, "gmd:identificationInfo/gmd:MD_DataIdentification")
    cit = el(ident, "gmd:citation/gmd:CI_Citation")
    el(cit, "gmd:title/gco:CharacterString", info["title"])
    el(ident, "gmd:abstract/gco:CharacterString", info["description"])
    el(ident, "gmd:purpose/gco:CharacterString", info["snippet"])
    kw = el(ident, "gmd:descriptiveKeywords/gmd:MD_Keywords")
    for tag in info["tags"]:
        el(kw, "gmd:keyword/gco:CharacterString", tag)
    legal = el(ident, "gmd:resourceConstraints/gmd:MD_LegalConstraints")
    el(legal, "gmd:useLimitation/gco:CharacterString", info["licenseInfo"])
    el(legal, "gmd:otherConstraints/gco:CharacterString", info["accessInformation"])
    (xmin, ymin), (xmax, ymax) = info["extent"]
    box = el(ident, "gmd:extent/gmd:EX_Extent/gmd:geographicElement/gmd:EX_GeographicBoundingBox")
    for tag, v in (("westBoundLongitude", xmin), ("eastBoundLongitude", xmax),
                   ("southBoundLatitude", ymin), ("northBoundLatitude", ymax)):
        el(box, f"gmd:{tag}/gco:Decimal", repr(round(v, 9)))
    if service.time_info is not None and service.time_info.extent is not None:
        t0, t1 = service.time_info.extent
        period = el(ident, "gmd:extent/gmd:EX_Extent/gmd:temporalElement/gmd:EX_TemporalExtent"
                           "/gmd:extent")
        for tag, ms in (("beginPosition", t0), ("endPosition", t1)):
            node = ET.SubElement(period, f"{{{gmd}}}{tag}")
            node.text = "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()
    content = el(root, "gmd:contentInfo/gmd:MD_FeatureCatalogueDescription")
    for lyr in service.layers:
        el(content, "gmd:featureTypes/gco:LocalName", f"{lyr.id}: {lyr.name}")
    dist = el(root, "gmd:distributionInfo/gmd:MD_Distribution/gmd:transferOptions"
                    "/gmd:MD_DigitalTransferOptions/gmd:onLine/gmd:CI_OnlineResource")
    el(dist, "gmd:linkage/gmd:URL", base_url)
    el(dist, "gmd:protocol/gco:CharacterString", "ESRI REST: Map Service")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


@service_op("info")
def info(ctx: Ctx, rest: list[str]) -> Response:
    svc = ctx.service
    head = rest[0].lower() if rest else ""
    if not rest:
        f = parse_f(ctx.params)
        body: dict[str, Any] = {"childResources": ["itemInfo", "thumbnail", "metadata"]}
        if f == "html":
            return html_response("resource.html", title=f"Info ({svc.short_name})",
                                 kind="serviceInfo", data=body,
                                 path=f"/arcgis/rest/services/{svc.name}/MapServer/info")
        return json_response(body, ctx.params, f)
    if head == "iteminfo" and len(rest) == 1:
        f = parse_f(ctx.params)
        body = item_info(svc, ctx.base_url)
        if f == "html":
            return html_response("resource.html", title=f"Item info ({svc.short_name})",
                                 kind="itemInfo", data=body,
                                 path=f"/arcgis/rest/services/{svc.name}/MapServer/info/"
                                      "itemInfo")
        return json_response(body, ctx.params, f)
    if head == "thumbnail" and (len(rest) == 1 or (len(rest) == 2 and
                                                   rest[1].lower() == "thumbnail.png")):
        return Response(thumbnail_png(svc, ctx.state.settings.png_compression),
                        mimetype="image/png")
    if head == "metadata" and len(rest) == 1:
        return Response(metadata_xml(svc, ctx.base_url), mimetype="application/xml")
    raise _invalid_url()
