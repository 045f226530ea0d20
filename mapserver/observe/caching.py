"""HTTP caching and compression: a strong ``ETag`` and ``Cache-Control`` on exports and
metadata with 304 answers, and gzip for text bodies (flask-compress).

Why one after-request hook rather than code in each view: the views stay about ArcGIS, and
the rules (what is cacheable, for how long, by whom) live in one place:

- what: GET/HEAD answers with HTTP 200 that are not ArcGIS errors (which also come with HTTP
  200) of export images (``f=image``, KMZ), the image files behind ``f=json`` hrefs, legend
  swatches, and metadata JSON/JSONP (catalog, info, service, layer, layers, legend);
- the ETag is a blake2b digest of the body (identical bodies, identical tags, whichever worker
  made them); ``If-None-Match`` with it gives 304 and no body;
- ``Cache-Control``: ``public, max-age=60`` (metadata) or ``300`` (exports) for public
  services; ``private`` with the same age when the service is secured, the request carries a
  token, or (catalog and info) the server has secured services, whose listing depends on the
  caller. Shared caches must never hand one user's secured answer to another;
- tiles keep their own ETag and ``Cache-Control`` (``rest/tiles.py``); errors, queries and
  other answers are left alone.

flask-compress then gzips JSON, JavaScript (JSONP), HTML, SVG, XML and plain text of 500 bytes
or more for clients that send ``Accept-Encoding: gzip`` (``Vary: Accept-Encoding`` on every
answer); it never touches images. It turns a strong ETag ``"x"`` into ``"x:gzip"`` for the
gzipped body (a different representation must have a different strong tag) and answers 304
itself when a client revalidates that tag.
"""

from __future__ import annotations

import hashlib

from flask import Flask, Response, current_app, g, request
from flask_compress import Compress

from mapserver.observe.routes import route_of

METADATA_MAX_AGE = 60
EXPORT_MAX_AGE = 300
METADATA_ROUTES = frozenset({"catalog", "info", "service", "layer", "layers", "legend"})
EXPORT_ROUTES = frozenset({"export", "output", "images"})
COMPRESSED_TYPES = ("application/json", "application/javascript", "text/javascript",
                    "text/html", "image/svg+xml", "text/xml", "application/xml",
                    "application/vnd.ogc.wms_xml", "application/vnd.ogc.gml",
                    "application/geo+json", "application/schema+json", "text/plain",
                    "text/css")
JSON_TYPES = ("application/json", "application/javascript")
# zlib level 1 (nginx's default too): the 433 KB World query gzips to 183 KB in a quarter of
# the CPU time of level 6 (166 KB); a render server's scarce resource is CPU, not bandwidth
GZIP_LEVEL = 1
MAX_HASHED_BYTES = 64 * 1024 * 1024  # bigger files keep send_file's own validator
ERROR_MARK = "mapserver.arcgis_error"  # environ key: the ArcGIS error code of this answer


def install(app: Flask) -> None:
    """gzip and the caching hook. The hook is registered after flask-compress so that it runs
    before it (Flask runs after-request functions in reverse): the ETag is the digest of the
    uncompressed body, and 304s are decided before any compression work."""
    app.config.setdefault("COMPRESS_MIMETYPES", list(COMPRESSED_TYPES))
    app.config.setdefault("COMPRESS_ALGORITHM", ["gzip"])
    app.config.setdefault("COMPRESS_LEVEL", GZIP_LEVEL)
    app.config.setdefault("COMPRESS_MIN_SIZE", 500)
    # streamed bodies (send_file: hrefs' images) keep their Content-Length and ranges
    app.config.setdefault("COMPRESS_STREAMS", False)
    # registered by hand: flask-compress 1.x takes "gzip;q=0" (gzip refused) as a request for
    # gzip; werkzeug's parser of Accept-Encoding decides instead
    app.config["COMPRESS_REGISTER"] = False
    compress = Compress(app)

    def _gzip(resp: Response) -> Response:
        if request.accept_encodings["gzip"] > 0:
            return compress.after_request(resp)
        resp.vary.add("Accept-Encoding")
        return resp

    app.after_request(_gzip)
    app.after_request(cache_headers)


def cache_headers(resp: Response) -> Response:
    route = route_of(request.path)
    error = arcgis_error_code(resp)
    if error is not None:
        request.environ[ERROR_MARK] = error
        return resp
    if request.method not in ("GET", "HEAD") or resp.status_code != 200:
        return resp
    if route in METADATA_ROUTES:
        if resp.mimetype not in JSON_TYPES and not (route == "legend"
                                                   and resp.mimetype.startswith("image/")):
            return resp  # HTML pages: links and forms carry the caller's parameters
        max_age = METADATA_MAX_AGE
    elif route in EXPORT_ROUTES:
        if resp.mimetype in JSON_TYPES or resp.mimetype == "text/html":
            return resp  # f=json names a new output file each time; f=html is a form
        max_age = EXPORT_MAX_AGE
    else:
        return resp
    body = _body(resp)
    if body is None:
        return resp
    tag = hashlib.blake2b(body, digest_size=16).hexdigest()
    scope = "private" if _caller_specific(route) else "public"
    resp.headers["Cache-Control"] = f"{scope}, max-age={max_age}"
    resp.headers.pop("Expires", None)  # send_file's, for its own max-age
    resp.set_etag(tag)
    inm = request.if_none_match
    gzip_tag = f"{tag}:gzip"
    if inm and not inm.contains(tag) and inm.contains(gzip_tag) \
            and request.accept_encodings["gzip"] > 0:
        resp.set_etag(gzip_tag)  # the client holds the gzipped body: no need to compress
    resp.make_conditional(request)
    return resp


def _body(resp: Response) -> bytes | None:
    """The whole body (files behind hrefs are read: they are immutable and small)."""
    if resp.is_streamed:
        length = resp.content_length
        if length is None or length > MAX_HASHED_BYTES:
            return None
        resp.direct_passthrough = False
    return resp.get_data()


def _caller_specific(route: str) -> bool:
    """Does this answer depend on who asked (so no shared cache may keep it)?"""
    if g.get("mapserver_secured"):
        return True
    from mapserver.security.web import EXT as SECURITY
    from mapserver.security.web import request_token

    if request_token() is not None:
        return True
    if route in ("catalog", "info"):
        sec = current_app.extensions.get(SECURITY)
        return sec is None or bool(sec.secured_services) or sec.enabled
    return False


def arcgis_error_code(resp: Response) -> int | None:
    """The ``code`` of an ArcGIS error body (JSON or JSONP), else None. ArcGIS answers most
    errors with HTTP 200, so the status alone cannot tell them apart."""
    if resp.mimetype not in JSON_TYPES or resp.is_streamed:
        return None
    data = resp.get_data()
    head = data[:200]
    if resp.mimetype == "application/javascript":
        head = head[head.find(b"(") + 1:]
    head = head.lstrip()
    if not head.startswith(b"{"):
        return None
    head = head[1:].lstrip()
    if not head.startswith(b'"error"'):
        return None
    if len(data) > 65536:
        return 500
    import orjson

    try:
        text = data
        if resp.mimetype == "application/javascript":
            text = data[data.find(b"(") + 1:data.rfind(b")")]
        code = orjson.loads(text)["error"].get("code", 500)
        return int(code) if isinstance(code, int | float) else 500
    except (ValueError, TypeError, KeyError, AttributeError):
        return 500
