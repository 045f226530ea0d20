"""Every ``format`` ArcGIS clients send decodes (Pillow, or PDF/SVG/PS structure) and comes
back with its content type, both as ``f=image`` bytes and behind the ``f=json`` href."""

from __future__ import annotations

import gzip
import io
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer/export"
QUERY = {"bbox": "-20,-40,60,40", "bboxSR": 4326, "size": "160,160", "f": "image"}

RASTER_FORMATS = [("png", "image/png", "PNG", "P"), ("png8", "image/png", "PNG", "P"),
                  ("png24", "image/png", "PNG", "RGB"), ("png32", "image/png", "PNG", "RGBA"),
                  ("jpg", "image/jpeg", "JPEG", "RGB"), ("gif", "image/gif", "GIF", "P"),
                  ("bmp", "image/bmp", "BMP", "RGB"), ("tiff", "image/tiff", "TIFF", "RGB")]


@pytest.mark.parametrize("fmt, ctype, pil_format, mode", RASTER_FORMATS,
                         ids=[f[0] for f in RASTER_FORMATS])
def test_raster_format_decodes_with_pillow_and_has_its_content_type(client, fmt, ctype,
                                                                     pil_format, mode):
    resp = client.get(WORLD, query_string={**QUERY, "format": fmt})
    assert resp.status_code == 200
    assert resp.mimetype == ctype
    img = Image.open(io.BytesIO(resp.data))
    assert img.format == pil_format
    assert img.mode == mode
    assert img.size == (160, 160)
    px = decode(resp.data)
    # Africa (a country colour) and the Atlantic (white background) are both there
    assert tuple(px[80, 20][:3]) == (255, 255, 255) or fmt == "jpg"
    assert px[..., :3].reshape(-1, 3).std(axis=0).max() > 20


def test_upper_case_format_as_qgis_sends_it(client):
    resp = client.get(WORLD, query_string={**QUERY, "format": "PNG32"})
    assert resp.mimetype == "image/png"
    assert Image.open(io.BytesIO(resp.data)).mode == "RGBA"


def test_pdf_is_a_pdf_document(client):
    resp = client.get(WORLD, query_string={**QUERY, "format": "pdf"})
    assert resp.mimetype == "application/pdf"
    assert resp.data.startswith(b"%PDF-")
    assert resp.data.rstrip().endswith(b"%%EOF")


def _svg_root(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    # vector output: countries are paths, not one embedded bitmap
    assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 20
    return root


def test_svg_is_parseable_svg_with_vector_paths(client):
    resp = client.get(WORLD, query_string={**QUERY, "format": "svg"})
    assert resp.mimetype == "image/svg+xml"
    _svg_root(resp.data)


def test_svgz_is_gzipped_svg(client):
    resp = client.get(WORLD, query_string={**QUERY, "format": "svgz"})
    assert resp.mimetype == "image/svg+xml"
    assert resp.headers.get("Content-Encoding") == "gzip"
    assert resp.data[:2] == b"\x1f\x8b"
    _svg_root(gzip.decompress(resp.data))


def test_ps_is_postscript(client):
    resp = client.get(WORLD, query_string={**QUERY, "format": "ps"})
    assert resp.mimetype == "application/postscript"
    assert resp.data.startswith(b"%!PS")


@pytest.mark.parametrize("fmt, ctype", [("png8", "image/png"), ("jpg", "image/jpeg"),
                                        ("gif", "image/gif"), ("pdf", "application/pdf"),
                                        ("svg", "image/svg+xml")])
def test_json_href_serves_the_same_format(client, fmt, ctype):
    meta = client.get(WORLD, query_string={**QUERY, "format": fmt, "f": "json"}).get_json()
    assert meta["href"].startswith("http://localhost/arcgis/rest/directories/arcgisoutput/")
    resp = client.get(meta["href"])
    assert resp.status_code == 200
    assert resp.mimetype == ctype
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    if fmt in ("pdf", "svg"):
        assert resp.data[:5] in (b"%PDF-", b"<?xml")
    else:
        assert decode(resp.data).shape == (160, 160, 4)


def test_olinda_raster_layers_encode_in_every_raster_format(client):
    for fmt, ctype, _pil, _mode in RASTER_FORMATS:
        resp = client.get("/arcgis/rest/services/Samples/Olinda/MapServer/export",
                          query_string={"bbox": "288776,9110729,298722,9120760", "size": "64,64",
                                        "layers": "show:0,1", "format": fmt, "f": "image"})
        assert resp.mimetype == ctype, fmt
        assert decode(resp.data).shape == (64, 64, 4)
