"""Issue 12, other operations: queryDomains, generateKml and the info resources
(info/itemInfo, info/thumbnail, info/metadata) on the sample services, plus a declared field
domain on a scratch service."""

from __future__ import annotations

import io
import json
import uuid
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mapserver.app import create_app
from mapserver.settings import PROJECT_ROOT, Settings
from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer"
KML = "{http://www.opengis.net/kml/2.2}"
GMD, GCO = "{http://www.isotc211.org/2005/gmd}", "{http://www.isotc211.org/2005/gco}"


def bad(detail: str) -> dict:
    return {"error": {"code": 400, "message": "Invalid or missing input parameters.",
                      "details": [detail]}}


# ---- queryDomains --------------------------------------------------------------------------

def test_query_domains_without_declared_domains(client):
    for method in (client.get, client.post):
        r = method(WORLD + "/queryDomains", query_string={"layers": "[0,1]", "f": "json"})
        assert r.get_json() == {"layers": [
            {"id": 0, "name": "Cities", "types": [], "domains": []},
            {"id": 1, "name": "Countries", "types": [], "domains": []}], "domains": []}


def test_query_domains_unknown_layer_is_refused(client):
    r = client.get(WORLD + "/queryDomains", query_string={"layers": "[7]", "f": "json"})
    assert r.get_json() == bad("'layers': the requested layer (layerId: 7) was not found.")


def test_service_root_advertises_query_domains(client):
    assert client.get(WORLD + "?f=json").get_json()["supportsQueryDomains"] is True


KINDS = {"type": "codedValue", "name": "SiteKinds",
         "codedValues": [{"name": "School", "code": "school"},
                         {"name": "Hospital", "code": "hospital"},
                         {"name": "Park", "code": "park"}]}


@pytest.fixture(scope="module")
def domains_client(tmp_path_factory):
    svc_dir = tmp_path_factory.mktemp("svc")
    layer = {"id": 0, "name": "Sites", "type": "feature", "source": "demo/sites.geojson",
             "displayField": "name",
             "fields": [{"name": "kind", "domain": KINDS},
                        {"name": "floors", "domain": {"type": "range", "name": "Floors",
                                                      "range": [0, 100]}},
                        {"name": "nosuch", "domain": KINDS}]}
    (svc_dir / "Domains.json").write_text(json.dumps({"spatialReference": {"wkid": 4326},
                                                      "layers": [layer]}))
    app = create_app(Settings(service_dirs=(Path(svc_dir),), data_dir=PROJECT_ROOT / "data",
                              output_dir=tmp_path_factory.mktemp("out"),
                              tile_cache_dir=tmp_path_factory.mktemp("tiles")))
    return app.test_client()


def test_declared_domains_are_returned_and_shown_on_the_fields(domains_client):
    base = "/arcgis/rest/services/Domains/MapServer"
    body = domains_client.get(base + "/queryDomains", query_string={"layers": "[0]",
                                                                    "f": "json"}).get_json()
    kinds = {**KINDS, "description": "", "fieldType": "esriFieldTypeString",
             "mergePolicy": "esriMPTDefaultValue", "splitPolicy": "esriSPTDefaultValue"}
    floors = {"type": "range", "name": "Floors", "description": "", "range": [0, 100],
              "mergePolicy": "esriMPTDefaultValue", "splitPolicy": "esriSPTDefaultValue"}
    layer = domains_client.get(base + "/0?f=json").get_json()
    ftype = next(f["type"] for f in layer["fields"] if f["name"] == "floors")
    floors["fieldType"] = ftype
    assert body == {"layers": [{"id": 0, "name": "Sites", "types": [],
                                "domains": [kinds, floors]}], "domains": [kinds, floors]}
    by_name = {f["name"]: f["domain"] for f in layer["fields"]}
    assert by_name["kind"] == kinds and by_name["floors"] == floors
    assert by_name["name"] is None


# ---- generateKml ---------------------------------------------------------------------------

def kml_of(r) -> ET.Element:
    assert r.mimetype == "application/vnd.google-earth.kmz", r.data[:300]
    zf = zipfile.ZipFile(io.BytesIO(r.data))
    assert zf.namelist() == ["doc.kml"]
    return ET.fromstring(zf.read("doc.kml"))


def test_generate_kml_composite_links_to_the_export(client):
    r = client.get(WORLD + "/generateKml", query_string={
        "docName": "My World", "layers": "0,1", "layerOptions": "composite", "f": "kmz"})
    doc = kml_of(r).find(f"{KML}Document")
    assert doc.findtext(f"{KML}name") == "My World"
    links = doc.findall(f"{KML}NetworkLink")
    assert len(links) == 1
    href = links[0].findtext(f"{KML}Link/{KML}href")
    assert href == ("http://localhost/arcgis/rest/services/World/MapServer/export?f=kmz&"
                    "bboxSR=4326&imageSR=4326&format=png32&transparent=true&dpi=96&"
                    "layers=show:0,1")
    assert links[0].findtext(f"{KML}Link/{KML}viewRefreshMode") == "onStop"
    view = links[0].findtext(f"{KML}Link/{KML}viewFormat")
    assert view == "bbox=[bboxWest],[bboxSouth],[bboxEast],[bboxNorth]&size=[horizPixels]," \
                   "[vertPixels]"
    # what Google Earth would then fetch is a KMZ with the map over that box
    path = href.split("localhost", 1)[1]
    got = client.get(path + "&bbox=-180,-90,180,90&size=360,180")
    assert got.mimetype == "application/vnd.google-earth.kmz"
    assert "GroundOverlay" in zipfile.ZipFile(io.BytesIO(got.data)).read("doc.kml").decode()


def test_generate_kml_separate_images_one_link_per_layer(client):
    r = client.post(WORLD + "/generateKml", data={"docName": "w", "layers": "[0,1]",
                                                  "layerOptions": "separateImage"})
    links = kml_of(r).findall(f"{KML}Document/{KML}NetworkLink")
    assert [ln.findtext(f"{KML}name") for ln in links] == ["Cities", "Countries"]
    assert [ln.findtext(f"{KML}Link/{KML}href").rsplit("&", 1)[1] for ln in links] == [
        "layers=show:0", "layers=show:1"]


def test_generate_kml_default_layers_are_the_visible_ones(client):
    r = client.get("/arcgis/rest/services/Samples/Olinda/MapServer/generateKml",
                   query_string={"docName": "o", "f": "kmz"})
    href = kml_of(r).findtext(f"{KML}Document/{KML}NetworkLink/{KML}Link/{KML}href")
    assert href.endswith("&layers=show:0")  # Elevation (1) is hidden by default


@pytest.mark.parametrize(("params", "detail"), [
    ({"layers": "0"}, "'docName' parameter is required"),
    ({"docName": "x", "layerOptions": "vectors"},
     "'layerOptions' must be one of composite, separateImage, nonComposite"),
    ({"docName": "x", "layerOptions": "nonComposite"},
     "'layerOptions' nonComposite (features as KML vectors) is not supported by this server; "
     "use composite or separateImage"),
    ({"docName": "x", "layers": "9"}, "'layers': the requested layer (layerId: 9) was not "
                                      "found.")])
def test_generate_kml_refusals(client, params, detail):
    r = client.get(WORLD + "/generateKml", query_string={**params, "f": "json"})
    assert r.get_json() == bad(detail)


def test_generate_kml_form(client):
    html = client.get(WORLD + "/generateKml").data.decode()
    assert 'name="docName"' in html and '<select id="p_layerOptions"' in html


# ---- info ----------------------------------------------------------------------------------

def test_item_info(client):
    body = client.get(WORLD + "/info/itemInfo?f=json").get_json()
    desc = "Natural Earth 1:110m countries (coloured by population) and populated places."
    assert body == {
        "culture": "en-US", "name": "World",
        "guid": str(uuid.uuid5(uuid.NAMESPACE_URL, "mapserver:World")).upper(),
        "catalogPath": "", "snippet": desc, "description": desc, "summary": desc,
        "title": "World", "tags": ["World", "MapServer", "Cities", "Countries"],
        "type": "Map Service",
        "typeKeywords": ["ArcGIS Server", "Data", "Map Service", "Service"],
        "thumbnail": "thumbnail/thumbnail.png",
        "url": "http://localhost/arcgis/rest/services/World/MapServer",
        "extent": body["extent"], "spatialReference": "WGS_84",
        "accessInformation": "Natural Earth (public domain)", "licenseInfo": ""}
    (xmin, ymin), (xmax, ymax) = body["extent"]
    assert (xmin, ymin, xmax) == (-180.0, -90.0, 180.0) and 83 < ymax < 84


def test_item_info_extent_is_in_degrees_for_a_projected_service(client):
    body = client.get("/arcgis/rest/services/Samples/Olinda/MapServer/info/itemInfo",
                      query_string={"f": "json"}).get_json()
    (xmin, ymin), (xmax, ymax) = body["extent"]
    assert -35 < xmin < xmax < -34.8 and -8.1 < ymin < ymax < -7.9
    assert body["spatialReference"] == "SIRGAS_2000_UTM_zone_25S"


def test_info_lists_its_child_resources(client):
    assert client.get(WORLD + "/info?f=json").get_json() == {
        "childResources": ["itemInfo", "thumbnail", "metadata"]}
    html = client.get(WORLD + "/info").data.decode()
    assert 'href="http://localhost/arcgis/rest/services/World/MapServer/info/itemInfo"' in html \
        or "info/itemInfo" in html


@pytest.mark.parametrize("path", ["/info/thumbnail", "/info/thumbnail/thumbnail.png"])
def test_thumbnail_png(client, path):
    r = client.get(WORLD + path)
    assert r.mimetype == "image/png"
    img = decode(r.data)
    assert img.shape == (133, 200, 4)
    assert (img[..., 3] == 255).all()  # opaque, white background
    colours = {tuple(c) for c in img.reshape(-1, 4)[:, :3].tolist()}
    assert (255, 255, 255) in colours  # the sea
    # the countries' class colours and the cities' red are drawn
    assert len(colours) > 20
    reds = np.sum((img[..., 0] > 180) & (img[..., 1] < 80) & (img[..., 2] < 80))
    assert reds > 100


def test_metadata_xml_parses(client):
    r = client.get(WORLD + "/info/metadata")
    assert r.mimetype == "application/xml"
    root = ET.fromstring(r.data)
    assert root.tag == f"{GMD}MD_Metadata"
    ident = root.find(f"{GMD}identificationInfo/{GMD}MD_DataIdentification")
    assert ident.findtext(f"{GMD}citation/{GMD}CI_Citation/{GMD}title/{GCO}CharacterString") \
        == "World"
    kws = [k.text for k in ident.iter(f"{GCO}CharacterString")
           if k in list(ident.iter(f"{GCO}CharacterString"))]
    assert "Countries" in kws
    box = ident.find(f"{GMD}extent/{GMD}EX_Extent/{GMD}geographicElement/"
                     f"{GMD}EX_GeographicBoundingBox")
    assert float(box.findtext(f"{GMD}westBoundLongitude/{GCO}Decimal")) == -180.0
    assert root.findtext(f"{GMD}referenceSystemInfo/{GMD}MD_ReferenceSystem/"
                         f"{GMD}referenceSystemIdentifier/{GMD}RS_Identifier/{GMD}code/"
                         f"{GCO}CharacterString") == "4326"


def test_metadata_of_a_time_enabled_service_has_iso_dates(client):
    root = ET.fromstring(client.get("/arcgis/rest/services/Gapminder/MapServer/info/"
                                    "metadata").data)
    assert next(root.iter(f"{GMD}beginPosition")).text == "1952-01-01T00:00:00+00:00"
    assert next(root.iter(f"{GMD}endPosition")).text == "2007-01-01T00:00:00+00:00"


def test_unknown_info_resource(client):
    assert client.get(WORLD + "/info/nothing?f=json").get_json()["error"]["code"] == 400


# ---- the same access check as export ----------------------------------------------------

@pytest.fixture(scope="module")
def secured_client(tmp_path_factory):
    root = tmp_path_factory.mktemp("secured")
    world = json.loads((PROJECT_ROOT / "services" / "World.json").read_text())
    (root / "services").mkdir()
    (root / "services" / "Locked.json").write_text(json.dumps(
        {**world, "access": {"users": ["alice"]}}))
    app = create_app(Settings(service_dirs=(root / "services",),
                              data_dir=PROJECT_ROOT / "data", output_dir=root / "out",
                              tile_cache_dir=root / "tiles", secret="test-secret"))
    return app.test_client()


@pytest.mark.parametrize("path", ["queryDomains?layers=[0]&f=json",
                                  "generateKml?docName=x&f=kmz", "info?f=json",
                                  "info/itemInfo?f=json", "info/thumbnail", "info/metadata"])
def test_secured_service_needs_a_token_for_every_new_resource(secured_client, path):
    r = secured_client.get(f"/arcgis/rest/services/Locked/MapServer/{path}")
    if "f=" in path:
        assert r.mimetype == "application/json"
        assert r.get_json()["error"]["code"] == 499
    else:  # no f: the error page, as for export without f
        assert r.mimetype == "text/html" and "499" in r.get_data(as_text=True)
        assert "Token Required" in r.get_data(as_text=True)


def test_generate_kml_carries_the_token_into_the_link():
    from mapserver.params.common import Params
    from mapserver.rest.context import Ctx
    from mapserver.rest.service_info import build_network_kml

    class Svc:
        service_description = "d"
        name = "S"

    ctx = Ctx(state=None, service=Svc(), params=Params([("token", "a b")]),  # type: ignore[arg-type]
              base_url="http://h/arcgis/rest/services/S/MapServer", root_url="http://h")
    kml = build_network_kml(ctx, "S", [], "composite")
    assert "&amp;token=a%20b&amp;layers=show:" in kml
