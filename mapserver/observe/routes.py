"""The route of a request: the operation it asks for (``export``, ``query``, ``tile``, …),
never the raw path.

Why: metrics are labelled by route, and a label per distinct path (every bbox, every tile
row and column, every operation id) would grow without bound in Prometheus. Routes come from
a closed set: the names below plus the operations the dispatcher has registered.
"""

from __future__ import annotations

SERVICES = "/arcgis/rest/services"
OUTPUTS = "/arcgis/rest/directories/arcgisoutput/"
# operations under …/MapServer/ whose names become routes as they are
SERVICE_OPERATIONS = frozenset({
    "export", "identify", "find", "legend", "tile", "wmsserver", "wmts", "generatekml",
    "querydomains", "dynamiclayer", "viewer", "info", "tilemap", "layers"})
LAYER_OPERATIONS = frozenset({"query", "images", "querydomains", "queryattachments",
                              "queryrelatedrecords"})
ROUTES = frozenset({
    "root", "catalog", "service", "layer", "feature", "info", "health", "tokens", "output",
    "v1", "metrics", "schema", "static", "other", "invalid", *SERVICE_OPERATIONS,
    *LAYER_OPERATIONS})


def route_of(path: str) -> str:
    """The operation ``path`` asks for; ``other`` for anything outside the API, ``invalid``
    for a malformed service URL."""
    if path in ("", "/"):
        return "root"
    lowered = path.lower()
    if lowered.startswith(OUTPUTS):
        return "output"
    if lowered.startswith("/arcgis/rest/info"):
        return "health" if lowered.rstrip("/").endswith("healthcheck") else "info"
    if lowered.startswith("/arcgis/tokens"):
        return "tokens"
    if lowered.startswith(("/v1/", "/v1alpha/", "/v1beta/", "/$discovery")):
        return "v1"
    if lowered.rstrip("/") == "/metrics":
        return "metrics"
    if lowered.startswith("/static/"):
        return "static"
    if "schema" in lowered and not lowered.startswith(SERVICES + "/"):
        return "schema"
    if not lowered.startswith(SERVICES):
        return "other"
    parts = [p for p in lowered[len(SERVICES):].split("/") if p]
    if "mapserver" not in parts:
        return "catalog"
    rest = parts[parts.index("mapserver") + 1:]
    if not rest:
        return "service"
    head = rest[0]
    if head.lstrip("-").isdigit():
        if len(rest) == 1:
            return "layer"
        op = rest[1]
        if op.isdigit():
            return "feature"
        return op if op in LAYER_OPERATIONS else "invalid"
    return head if head in SERVICE_OPERATIONS else "invalid"
