"""Issue 12, the HTML Services Directory: layer pages with objectIdField, maxRecordCount,
definitionExpression and the renderer's classes with swatches; readable numbers; ISO dates for
time extents; query and identify results as attribute tables; selects for fixed choices.
Pages are parsed with the stdlib html.parser."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

from PIL import Image

SERVICES = "/arcgis/rest/services"


class Page(HTMLParser):
    """Rows of ``table.props`` (label -> cell text), swatch images, result tables, selects."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.props: dict[str, str] = {}
        self.swatches: list[dict] = []
        self.tables: list[list[list[str]]] = []  # result tables: rows of cells (th and td)
        self.selects: dict[str, list[str]] = {}
        self._cells: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_results = 0
        self._select: str | None = None
        self._props_depth = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("class") == "results":
            self._in_results = 1
            self.tables.append([])
        elif tag == "table" and a.get("class") == "props":
            self._props_depth = 1
        elif tag == "tr":
            self._cells = []
        elif tag in ("td", "th") and self._cells is not None:
            self._cell = []
        elif tag == "img" and a.get("class") == "swatch":
            self.swatches.append(a)
        elif tag == "select":
            self._select = a["name"]
            self.selects[a["name"]] = []
        elif tag == "option" and self._select is not None:
            self.selects[self._select].append(a.get("value", ""))
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._cells is not None:
            self._cells.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._cells is not None:
            if self._in_results:
                self.tables[-1].append(self._cells)
            elif self._props_depth and len(self._cells) >= 2 and self._cells[0].endswith(":"):
                self.props.setdefault(self._cells[0][:-1], self._cells[1])
            self._cells = None
        elif tag == "table":
            self._in_results = 0
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page(client, path: str, **params) -> Page:
    r = client.get(path, query_string=params)
    assert r.mimetype == "text/html", r.data[:200]
    return Page(r.get_data(as_text=True))


def test_layer_page_shows_object_id_max_records_definition_and_swatches(client):
    p = page(client, f"{SERVICES}/World/MapServer/1")
    assert p.props["Object ID Field"] == "OBJECTID"
    assert p.props["Max Record Count"] == "1000"
    assert p.props["Definition Expression"] == "N/A"
    labels = [s["alt"] for s in p.swatches]
    assert labels == ["0 - 10 million", "10 - 50 million", "50 - 100 million",
                      "100 - 500 million", "over 500 million"]
    colours = []
    for s in p.swatches:
        assert s["src"].startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(s["src"].split(",", 1)[1])))
        assert img.size == (20, 20)
        colours.append(img.convert("RGBA").getpixel((10, 10)))
    assert len(set(colours)) == 5  # one colour per class


def test_extents_are_readable_numbers(client):
    p = page(client, f"{SERVICES}/World/MapServer/1")
    assert p.props["Extent"].split("\n")[:4] == ["XMin: -180", "YMin: -90", "XMax: 180",
                                                 "YMax: 83.64513"]
    svc = client.get(f"{SERVICES}/World/MapServer").get_data(as_text=True)
    assert "00000000" not in svc.split("<details")[0]


def test_time_extent_is_shown_as_iso_dates(client):
    p = page(client, f"{SERVICES}/Gapminder/MapServer")
    assert p.props["Time Info"].startswith(
        "Time Extent: 1952-01-01T00:00:00Z to 2007-01-01T00:00:00Z")
    layer = page(client, f"{SERVICES}/Gapminder/MapServer/0")
    assert "Time Extent: 1952-01-01T00:00:00Z to 2007-01-01T00:00:00Z" in \
        layer.props["Time Info"]


def test_query_result_is_an_attribute_table(client):
    p = page(client, f"{SERVICES}/World/MapServer/1/query", where="pop_est > 1e9",
             outFields="name,pop_est", returnGeometry="false", orderByFields="name",
             f="html")
    assert p.tables == [[["name", "pop_est"], ["China", "1397715000"],
                         ["India", "1366417754"]]]


def test_identify_result_is_a_table_per_layer(client):
    p = page(client, f"{SERVICES}/World/MapServer/identify", geometry="10,51",
             geometryType="esriGeometryPoint", layers="all:1", tolerance="1",
             mapExtent="-180,-90,180,90", imageDisplay="720,360,96",
             returnGeometry="false", f="html")
    assert len(p.tables) == 1
    header, *rows = p.tables[0]
    assert "name" in header and len(rows) == 1
    assert rows[0][header.index("name")] == "Germany"


def test_forms_offer_selects_for_fixed_choices(client):
    q = page(client, f"{SERVICES}/World/MapServer/1/query")
    assert q.selects["geometryType"][:3] == ["", "esriGeometryEnvelope", "esriGeometryPoint"]
    assert "esriSpatialRelWithin" in q.selects["spatialRel"]
    assert "esriSRUnit_Kilometer" in q.selects["units"]
    for name in ("returnGeometry", "returnIdsOnly", "returnCountOnly"):
        assert q.selects[name] == ["", "true", "false"]
    i = page(client, f"{SERVICES}/World/MapServer/identify")
    assert "esriGeometryPolygon" in i.selects["geometryType"]
    assert "esriTimeRelationWithin" in i.selects["timeRelation"]


def test_select_keeps_the_submitted_value(client):
    text = client.get(f"{SERVICES}/World/MapServer/1/query", query_string={
        "where": "1=0", "spatialRel": "esriSpatialRelWithin", "returnGeometry": "false",
        "f": "html"}).get_data(as_text=True)
    assert '<option value="esriSpatialRelWithin" selected>' in text
    assert '<option value="false" selected>' in text


def test_service_page_links_the_new_operations_and_info(client):
    text = client.get(f"{SERVICES}/World/MapServer").get_data(as_text=True)
    base = f"http://localhost{SERVICES}/World/MapServer"
    for href in ("queryDomains", "generateKml", "info/itemInfo", "info/thumbnail",
                 "info/metadata"):
        assert f'href="{SERVICES}/World/MapServer/{href}"' in text or \
            f'href="{base}/{href}"' in text


def test_item_info_page(client):
    p = page(client, f"{SERVICES}/World/MapServer/info/itemInfo")
    assert p.props["Title"] == "World"
    assert p.props["Tags"] == "World, MapServer, Cities, Countries"
    assert p.props["Extent"].startswith("-180, -90; 180, 83.64513")
