"""HTTP caching and compression (issue 11): a strong ETag (blake2b of the body) and
``Cache-Control`` on exports and metadata, 304 on ``If-None-Match``, never on errors, never
``public`` for secured services or token-bearing requests; gzip for text bodies with
``Vary: Accept-Encoding``, never for images; JSONP, HEAD and tiles' own 304 still work."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from mapserver.app import create_app
from mapserver.security.users import hash_password
from mapserver.settings import PROJECT_ROOT, Settings

S = "/arcgis/rest/services/World/MapServer"
EXPORT = S + "/export?bbox=-180,-90,180,90&size=200,100&f=image"
QUERY = S + "/1/query?where=1%3D1&outFields=*&returnGeometry=true&f=json"
WORLD_DEF = json.loads((PROJECT_ROOT / "services" / "World.json").read_text())


def blake(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


@pytest.mark.parametrize(("url", "max_age"), [
    (S + "?f=json", 60), (S + "/1?f=json", 60), (S + "/layers?f=json", 60),
    (S + "/legend?f=json", 60), ("/arcgis/rest/info?f=json", 60),
    ("/arcgis/rest/services?f=pjson", 60), (S + "?f=json&callback=cb", 60), (EXPORT, 300)])
def test_etag_stable_and_304_with_an_empty_body(client, url, max_age):
    first, second = client.get(url), client.get(url)
    assert first.status_code == second.status_code == 200
    assert first.data == second.data and len(first.data) > 50
    assert first.headers["ETag"] == second.headers["ETag"] == blake(first.data)
    assert first.headers["Cache-Control"] == f"public, max-age={max_age}"
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Cache-Control"] == f"public, max-age={max_age}"
    # a stale tag (or a weak form of another body) gets the body
    stale = client.get(url, headers={"If-None-Match": '"0123", W/"abcd"'})
    assert stale.status_code == 200 and stale.data == first.data


def test_different_bbox_different_etag(client):
    a = client.get(EXPORT)
    b = client.get(EXPORT.replace("-180,-90,180,90", "-20,30,40,70"))
    assert a.mimetype == b.mimetype == "image/png"
    assert a.headers["ETag"] != b.headers["ETag"]
    assert client.get(EXPORT.replace("-180,-90,180,90", "-20,30,40,70"),
                      headers={"If-None-Match": a.headers["ETag"]}).status_code == 200


def test_href_image_has_the_same_etag_as_f_image(client):
    """The two export entry points agree: the file behind f=json's href is the f=image body,
    with the same strong tag, and revalidates with 304."""
    image = client.get(EXPORT)
    doc = client.get(EXPORT.replace("f=image", "f=json")).get_json()
    path = doc["href"].split("localhost", 1)[1]
    served = client.get(path)
    assert served.status_code == 200 and served.data == image.data
    assert served.headers["ETag"] == image.headers["ETag"] == blake(image.data)
    assert served.headers["Cache-Control"] == "public, max-age=300"
    assert "Expires" not in served.headers
    revalidated = client.get(path, headers={"If-None-Match": image.headers["ETag"]})
    assert revalidated.status_code == 304 and revalidated.data == b""


def test_head_answers_headers_only_and_revalidates(client):
    get = client.get(S + "?f=json")
    head = client.head(S + "?f=json")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Content-Length"] == str(len(get.data))
    assert client.head(S + "?f=json", headers={"If-None-Match": get.headers["ETag"]}) \
        .status_code == 304


def test_errors_queries_and_forms_are_not_cached(client):
    for url in (S + "/export?bbox=1,2,3&f=image", S + "/1?f=json&callback=alert(1)",
                S + "/99?f=json", "/arcgis/rest/services/Nope/MapServer?f=json"):
        resp = client.get(url)
        assert resp.status_code in (200, 404) and b'"error"' in resp.data, url
        assert "ETag" not in resp.headers and "Cache-Control" not in resp.headers, url
    for url in (QUERY, S + "/export?bbox=-180,-90,180,90&f=json", S + "?f=html"):
        resp = client.get(url)
        assert resp.status_code == 200 and "ETag" not in resp.headers, url
    post = client.post(S + "/export", data={"bbox": "-180,-90,180,90", "f": "image"})
    assert post.mimetype == "image/png" and "ETag" not in post.headers


def test_tiles_keep_their_own_validators(client):
    url = S + "/tile/2/1/2"
    first = client.get(url)
    assert first.status_code == 200 and first.mimetype == "image/png"
    assert first.headers["Cache-Control"].startswith("public, max-age=")
    assert "Content-Encoding" not in client.get(url, headers={"Accept-Encoding": "gzip"}) \
        .headers
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


# --- gzip -----------------------------------------------------------------------------------

def test_gzip_for_json_when_accepted(client):
    plain = client.get(QUERY)
    gz = client.get(QUERY, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["Vary"]
    assert gz.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in gz.headers["Vary"]
    assert gzip.decompress(gz.data) == plain.data
    assert int(gz.headers["Content-Length"]) == len(gz.data) < len(plain.data) / 2


def test_gzip_metadata_etag_and_304(client):
    plain = client.get(S + "?f=json")
    gz = client.get(S + "?f=json", headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(gz.data) == plain.data
    # a different representation, a different strong tag
    assert gz.headers["ETag"] == plain.headers["ETag"][:-1] + ':gzip"'
    again = client.get(S + "?f=json", headers={"Accept-Encoding": "gzip",
                                               "If-None-Match": gz.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


@pytest.mark.parametrize("url", [S + "?f=json&callback=cb", S + "?f=html",
                                 S + "/export?bbox=-180,-90,180,90&format=svg&f=image",
                                 S + "/WMSServer?service=WMS&request=GetCapabilities"])
def test_gzip_for_jsonp_html_svg_xml(client, url):
    plain = client.get(url)
    gz = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert gz.headers["Content-Encoding"] == "gzip", url
    assert gz.mimetype == plain.mimetype
    body = gzip.decompress(gz.data)
    if gz.mimetype == "image/svg+xml":  # matplotlib's SVG ids differ from one render to the next
        assert body.startswith(b"<?xml") and body.rstrip().endswith(b"</svg>")
        assert abs(len(body) - len(plain.data)) < 100
    else:
        assert body == plain.data


def test_no_gzip_for_images_small_bodies_or_svgz(client):
    png = client.get(EXPORT, headers={"Accept-Encoding": "gzip"})
    assert png.mimetype == "image/png" and "Content-Encoding" not in png.headers
    jpg = client.get(EXPORT.replace("f=image", "format=jpg&f=image"),
                     headers={"Accept-Encoding": "gzip"})
    assert jpg.mimetype == "image/jpeg" and "Content-Encoding" not in jpg.headers
    small = client.get("/arcgis/rest/info?f=json", headers={"Accept-Encoding": "gzip"})
    assert len(small.data) < 500 and "Content-Encoding" not in small.headers
    svgz = client.get(EXPORT.replace("f=image", "format=svgz&f=image"),
                      headers={"Accept-Encoding": "gzip"})
    # already gzip (the format itself): not compressed twice
    assert svgz.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(svgz.data).lstrip().startswith((b"<?xml", b"<svg"))


def test_no_gzip_without_accept_encoding_or_with_identity(client):
    for headers in ({}, {"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip;q=0"}):
        resp = client.get(QUERY, headers=headers)
        assert "Content-Encoding" not in resp.headers, headers
        assert json.loads(resp.data)["features"]


# --- secured services -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secured-cache")
    services = tmp / "services"
    (services / "Secure").mkdir(parents=True)
    (services / "Open.json").write_text(json.dumps(WORLD_DEF))
    (services / "Secure" / "World.json").write_text(json.dumps(
        {**WORLD_DEF, "access": {"users": ["alice"]}}))
    users = tmp / "users.json"
    users.write_text(json.dumps({"users": {"alice": {"password": hash_password("alice-pw"),
                                                     "roles": []}}}))
    return create_app(Settings(service_dirs=(services,), data_dir=PROJECT_ROOT / "data",
                               output_dir=tmp / "out", tile_cache_dir=tmp / "tiles",
                               users_file=users, secret="s"))


def _token(http) -> str:
    return http.post("/arcgis/tokens/generateToken",
                     data={"username": "alice", "password": "alice-pw"}).get_json()["token"]


def test_secured_service_never_public(secured):
    http = secured.test_client()
    token = _token(http)
    secure = "/arcgis/rest/services/Secure/World/MapServer"
    for url in (f"{secure}?f=json&token={token}",
                f"{secure}/export?bbox=-180,-90,180,90&size=64,32&f=image&token={token}",
                f"{secure}/legend?f=json&token={token}"):
        resp = http.get(url)
        assert resp.status_code == 200 and b'"error"' not in resp.data[:20], url
        assert resp.headers["Cache-Control"].startswith("private"), url
        assert "public" not in resp.headers["Cache-Control"]
        assert resp.headers["ETag"] == blake(resp.data)
        assert "Authorization" in resp.headers.get("Vary", "")
    header = http.get(f"{secure}?f=json", headers={"Authorization": f"Bearer {token}"})
    assert header.headers["Cache-Control"].startswith("private")
    # without a token: 499, an error, not cached at all
    denied = http.get(f"{secure}?f=json")
    assert denied.get_json()["error"]["code"] == 499 and "Cache-Control" not in denied.headers
    # the catalog depends on who asks on a server with secured services
    for headers in ({}, {"Authorization": f"Bearer {token}"}):
        listing = http.get("/arcgis/rest/services?f=json", headers=headers)
        assert listing.headers["Cache-Control"].startswith("private"), headers
    # a public service on the same server: public, unless the request carries a token
    assert http.get("/arcgis/rest/services/Open/MapServer?f=json") \
        .headers["Cache-Control"] == "public, max-age=60"
    assert http.get(f"/arcgis/rest/services/Open/MapServer?f=json&token={token}") \
        .headers["Cache-Control"].startswith("private")


def test_hostile_conditional_requests_then_an_ordinary_one(client):
    """Garbage validators and a 10 KB If-None-Match change nothing for the next request."""
    good = client.get(S + "?f=json")
    for value in ("*garbage", '"' + "a" * 10_000 + '"', "\x00\x7f", 'W/"x", "y", ,,'):
        resp = client.get(S + "?f=json", headers={"If-None-Match": value})
        assert resp.status_code == 200 and resp.data == good.data
    star = client.get(S + "?f=json", headers={"If-None-Match": "*"})
    assert star.status_code == 304  # RFC 9110: * matches any current representation
    after = client.get(S + "?f=json")
    assert after.status_code == 200 and after.headers["ETag"] == good.headers["ETag"]
    assert after.data == good.data


def test_an_exception_in_a_view_then_an_ordinary_request(tmp_path, settings: Settings):
    """A view that fails unexpectedly answers the ArcGIS 500 body without validators; the
    ordinary request after it has its ETag, Cache-Control and gzip as always."""
    app = create_app(Settings(service_dirs=settings.service_dirs, data_dir=settings.data_dir,
                              output_dir=tmp_path / "out", tile_cache_dir=tmp_path / "t"))

    def boom() -> str:
        raise RuntimeError("kaboom")

    app.add_url_rule("/arcgis/rest/info/boom", "test_boom", boom)
    http = app.test_client()
    bad = http.get("/arcgis/rest/info/boom?f=json", headers={"Accept-Encoding": "gzip"})
    assert json.loads(bad.data)["error"]["code"] == 500
    assert "ETag" not in bad.headers and "Cache-Control" not in bad.headers
    ok = http.get(S + "?f=json", headers={"Accept-Encoding": "gzip"})
    assert ok.headers["Content-Encoding"] == "gzip"
    assert ok.headers["Cache-Control"] == "public, max-age=60"
    assert ok.headers["ETag"] == blake(gzip.decompress(ok.data))[:-1] + ':gzip"'
