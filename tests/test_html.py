"""The HTML Services Directory: breadcrumbs, readable properties, links to every child resource
and operation, the export form and its result, the generic operation form, the viewer page."""

from __future__ import annotations

import re

from mapserver.params.export import EXPORT_PARAMS
from mapserver.rest.context import Ctx
from mapserver.rest.html import operation_form
from mapserver.rest.http import request_params

SERVICES = "/arcgis/rest/services"


def crumbs(page: str) -> list[tuple[str, str]]:
    nav = re.search(r'<nav class="crumbs">(.*?)<span class="links">', page, re.S).group(1)
    return [(label, href) for href, label in re.findall(r'<a href="([^"]*)">([^<]*)</a>', nav)]


def test_breadcrumbs_lead_from_home_through_the_folder_to_the_layer(client):
    page = client.get(f"{SERVICES}/Samples/Olinda/MapServer/1").get_data(as_text=True)
    assert crumbs(page) == [
        ("Home", SERVICES), ("services", SERVICES), ("Samples", f"{SERVICES}/Samples"),
        ("Olinda (MapServer)", f"{SERVICES}/Samples/Olinda/MapServer"),
        ("Elevation", f"{SERVICES}/Samples/Olinda/MapServer/1")]
    legend = client.get(f"{SERVICES}/World/MapServer/legend").get_data(as_text=True)
    assert crumbs(legend)[-2:] == [("World (MapServer)", f"{SERVICES}/World/MapServer"),
                                   ("legend", f"{SERVICES}/World/MapServer/legend")]
    assert '<a href="?f=pjson">JSON</a>' in page


def test_catalog_and_folder_pages_list_folders_and_services(client):
    home = client.get(SERVICES).get_data(as_text=True)
    assert f'<a href="{SERVICES}/Samples">Samples</a>' in home
    assert f'<a href="{SERVICES}/World/MapServer">World</a> (MapServer)' in home
    folder = client.get(f"{SERVICES}/Samples").get_data(as_text=True)
    assert f'<a href="{SERVICES}/Samples/Olinda/MapServer">Samples/Olinda</a>' in folder


def test_service_page_shows_properties_tile_info_and_links_every_resource(client):
    base = f"{SERVICES}/World/MapServer"
    page = client.get(base).get_data(as_text=True)
    for link in (f'<a href="{base}/viewer">Map viewer</a>', f'<a href="{base}/legend">Legend</a>',
                 f'<a href="{base}/layers">All Layers and Tables</a>',
                 f'<a href="{base}/0">Cities</a> (0)', f'<a href="{base}/1">Countries</a> (1)',
                 f'<a href="{base}/identify">Identify</a>', f'<a href="{base}/find">Find</a>'):
        assert link in page
    assert re.search(rf'<a href="{base}/export\?bbox=-180[^"]*">Export Map</a>', page)
    assert "<td>Spatial Reference:</td><td>4326</td>" in page
    assert "<td>Single Fused Map Cache:</td><td>true</td>" in page
    # World is a geographic (4326) cache: Esri's 4326 scheme, 0.703125 degrees a pixel at level 0
    assert "<tr><td>0</td><td>0.703125</td><td>295497598.5396831</td></tr>" in page
    assert "Origin: X: -180, Y: 90" in page
    dynamic = client.get(f"{SERVICES}/Gapminder/MapServer").get_data(as_text=True)
    assert "Tile Info:" not in dynamic and "Time Extent:" in dynamic


def test_layer_page_lists_fields_and_links_query(client):
    page = client.get(f"{SERVICES}/World/MapServer/1").get_data(as_text=True)
    assert "<td>Geometry Type:</td><td>esriGeometryPolygon</td>" in page
    assert "<li>pop_est (type: esriFieldTypeInteger" in page or "<li>pop_est (type:" in page
    assert f'<a href="{SERVICES}/World/MapServer/1/query">Query</a>' in page
    assert f'<a href="{SERVICES}/World/MapServer/legend">Legend</a>' in page


def test_export_form_has_every_parameter_and_shows_the_exported_image(client):
    base = f"{SERVICES}/World/MapServer/export"
    form = client.get(base).get_data(as_text=True)
    for name in EXPORT_PARAMS:
        if name != "f":
            assert f'name="{name}"' in form
    assert 'value="Export Map Image (GET)"' in form and 'formmethod="post"' in form
    page = client.get(base, query_string={"bbox": "-180,-90,180,90", "size": "400,200",
                                          "format": "png", "f": "html"}).get_data(as_text=True)
    href = re.search(r'<img id="exported" src="([^"]+)"', page).group(1)
    assert 'width="400" height="200"' in page
    assert "<td>Width:</td><td>400</td>" in page and "<td>Height:</td><td>200</td>" in page
    assert "XMin: -180.0<br>YMin: -90.0<br>XMax: 180.0<br>YMax: 90.0" in page
    assert re.search(r"<td>Scale:</td><td>3\d{8}\.\d+</td>", page)
    assert client.get(href).mimetype == "image/png"
    assert 'value="-180,-90,180,90"' in page  # the form keeps what was sent


def test_operation_form_renders_any_fields_keeps_values_and_shows_the_result(app):
    path = f"{SERVICES}/World/MapServer/identify"
    with app.test_request_context(path, query_string={"tolerance": "3", "f": "html"}) as rc:
        st = app.extensions["mapserver"]
        ctx = Ctx(state=st, service=st.catalog.service("World"),
                  params=request_params(rc.request), base_url="http://localhost" + path,
                  root_url="http://localhost")
        resp = operation_form(ctx, "Identify",
                              ["geometry", {"name": "tolerance", "label": "Tolerance"},
                               {"name": "layers", "type": "select",
                                "options": [["top", "top"], ["all", "all"]], "default": "all"},
                               {"name": "layerDefs", "type": "textarea"}],
                              result={"results": [{"layerId": 1, "value": "Chile"}]})
    page = resp.get_data(as_text=True)
    assert "<title>Identify: World (MapServer)</title>" in page
    assert '<input type="text" id="p_geometry" name="geometry" value="">' in page
    assert '<input type="text" id="p_tolerance" name="tolerance" value="3">' in page
    assert '<option value="all" selected>all</option>' in page
    assert '<textarea id="p_layerDefs" name="layerDefs" rows="3"></textarea>' in page
    assert '"value": "Chile"' in page
    assert crumbs(page)[-1] == ("identify", path)


def test_viewer_page_loads_its_own_script_and_styles(client):
    page = client.get(f"{SERVICES}/Gapminder/MapServer/viewer").get_data(as_text=True)
    assert 'data-service-url="http://localhost/arcgis/rest/services/Gapminder/MapServer"' in page
    assert '<script src="/static/viewer.js"></script>' in page
    assert 'href="/static/viewer.css"' in page
    assert not re.search(r'(src|href)="(https?:)?//(?!localhost)', page)  # no external assets
    js = client.get("/static/viewer.js")
    assert js.mimetype == "text/javascript" and b'"/export"' in js.data
    assert client.get("/static/viewer.css").mimetype == "text/css"
