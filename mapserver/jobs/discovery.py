"""The API discovery document (``GET /$discovery/rest?version=v1``) for the surface we implement.

Earth Engine's Python client builds its whole REST surface from this document
(``googleapiclient.discovery``), then calls ``projects.algorithms.list`` to learn the functions.
:data:`METHODS` names, for every method, the Flask endpoint that serves it; the document lists a
method only when a request to its path really reaches that endpoint in the running app, so it is
written from our own routes and cannot advertise what we do not serve. ``rootUrl`` is the URL
the request came to.
"""

from __future__ import annotations

from dataclasses import dataclass

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map

VERSIONS = ("v1", "v1alpha", "v1beta")
PROJECT = {"location": "path", "pattern": "^projects/[^/]+$", "required": True,
           "type": "string", "description": "The project, 'projects/<project>'."}
OPERATION = {"location": "path", "pattern": "^projects/[^/]+/operations/.+$", "required": True,
             "type": "string", "description": "'projects/<project>/operations/<id>'."}


@dataclass(frozen=True)
class Method:
    resource: str  # e.g. "image" (under projects)
    name: str  # e.g. "export"
    http: str
    path: str  # after "<version>/", with {+param}
    param: str  # the path parameter's name
    endpoint: str  # Flask endpoint that must serve it
    sample: str  # a concrete path (after "<version>/") to check the route with
    description: str
    request: str | None = None
    response: str = "Operation"
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)


METHODS = (
    Method("image", "export", "POST", "{+project}/image:export", "project", "jobs.export",
           "projects/p/image:export", "Starts an image export (GeoTIFF, PNG, JPEG; bucket, "
           "drive folder or asset).", "ExportImageRequest"),
    Method("map", "export", "POST", "{+project}/map:export", "project", "jobs.export",
           "projects/p/map:export", "Starts a map tile export (z/x/y pyramid).",
           "ExportMapRequest"),
    Method("video", "export", "POST", "{+project}/video:export", "project", "jobs.export",
           "projects/p/video:export", "Starts a video export (MP4).", "ExportVideoRequest"),
    Method("operations", "get", "GET", "{+name}", "name", "jobs.operation",
           "projects/p/operations/X", "Gets an operation."),
    Method("operations", "list", "GET", "{+name}/operations", "name", "jobs.list_operations",
           "projects/p/operations", "Lists operations, newest first.", None,
           "ListOperationsResponse",
           (("filter", "string", 'Terms metadata.state="…", metadata.type="…", '
             'metadata.createTime > "…" joined by AND.'),
            ("pageSize", "integer", "At most 500."), ("pageToken", "string", ""))),
    Method("operations", "cancel", "POST", "{+name}:cancel", "name", "jobs.operation",
           "projects/p/operations/X:cancel", "Requests cancellation.",
           "CancelOperationRequest", "Empty"),
    Method("operations", "wait", "POST", "{+name}:wait", "name", "jobs.operation",
           "projects/p/operations/X:wait", "Waits until done or the timeout (at most 60 s).",
           "WaitOperationRequest"),
    Method("operations", "delete", "DELETE", "{+name}", "name", "jobs.operation",
           "projects/p/operations/X", "Forgets an operation (does not cancel it).", None,
           "Empty"),
    Method("algorithms", "list", "GET", "{+parent}/algorithms", "parent", "jobs.algorithms",
           "projects/p/algorithms", "The functions expressions may call, with signatures.",
           None, "ListAlgorithmsResponse"),
)

STANDARD_PARAMETERS = {
    "$.xgafv": {"type": "string", "location": "query", "enum": ["1", "2"],
                "description": "V1 error format."},
    "access_token": {"type": "string", "location": "query", "description": "OAuth token."},
    "alt": {"type": "string", "location": "query", "default": "json", "enum": ["json"],
            "description": "Data format for the response."},
    "callback": {"type": "string", "location": "query", "description": "JSONP callback."},
    "fields": {"type": "string", "location": "query", "description": "Ignored."},
    "key": {"type": "string", "location": "query", "description": "API key (ignored)."},
    "oauth_token": {"type": "string", "location": "query", "description": "OAuth token."},
    "prettyPrint": {"type": "boolean", "location": "query", "default": "true",
                    "description": "Ignored."},
    "quotaUser": {"type": "string", "location": "query", "description": "Ignored."},
    "uploadType": {"type": "string", "location": "query", "description": "Ignored."},
    "upload_protocol": {"type": "string", "location": "query", "description": "Ignored."},
}


def _obj(doc: str, /, **props: dict) -> dict:
    return {"type": "object", "description": doc, "properties": props}


def _s(description: str = "", type_: str = "string", **extra: object) -> dict:
    return {"type": type_, "description": description, **extra}


def _ref(name: str, description: str = "") -> dict:
    return {"$ref": name, "description": description}


EXPRESSION = _ref("Expression", "The value graph (functions listed by projects.algorithms).")
COMMON = {"expression": EXPRESSION, "description": _s("A human-readable name."),
          "requestId": _s("Idempotency key: replays return the same operation."),
          "workloadTag": _s("A usage label."), "priority": _s("0-9999, default 100.", "integer"),
          "maxWorkers": _s("Accepted and ignored (a WARNING notification).", "integer")}

SCHEMAS = {
    "Expression": _obj("{result, values}: a DAG of ValueNodes.",
                       result=_s("The key of the result value."),
                       values=_s("ValueNodes by key.", "object",
                                 additionalProperties={"type": "any"})),
    "ExportImageRequest": _obj(
        "image:export.", **COMMON, maxPixels=_s("Int64, default 1e8.", "string"),
        grid=_s("PixelGrid: crsCode|crsWkt, affineTransform, dimensions.", "any"),
        fileExportOptions=_s("fileFormat, cloudStorageDestination|driveDestination, "
                             "geoTiffOptions.", "any"),
        assetExportOptions=_s("earthEngineDestination {name, overwrite}, pyramidingPolicy, "
                              "tileSize.", "any")),
    "ExportMapRequest": _obj(
        "map:export.", **COMMON, tileOptions=_s("startZoom, endZoom|scale, skipEmpty, …", "any"),
        tileExportOptions=_s("fileFormat, cloudStorageDestination.", "any"),
        publishTileCache=_s("Also seed the service's /tile cache.", "boolean")),
    "ExportVideoRequest": _obj(
        "video:export.", **COMMON, grid=_s("PixelGrid.", "any"),
        videoOptions=_s("framesPerSecond, maxFrames, maxPixelsPerFrame.", "any"),
        fileExportOptions=_s("fileFormat MP4, cloudStorageDestination|driveDestination.",
                             "any")),
    "Operation": _obj("A long-running operation.", name=_s("projects/<p>/operations/<id>"),
                      metadata=_s("OperationMetadata.", "object",
                                  additionalProperties={"type": "any"}),
                      done=_s("", "boolean"), error=_ref("Status"),
                      response=_s("", "object", additionalProperties={"type": "any"})),
    "Status": _obj("An error.", code=_s("", "integer"), message=_s(),
                   details=_s("", "array", items={"type": "any"})),
    "ListOperationsResponse": _obj("A page of operations.",
                                   operations=_s("", "array", items={"$ref": "Operation"}),
                                   nextPageToken=_s("Absent on the last page."),
                                   unreachable=_s("", "array", items={"type": "string"})),
    "CancelOperationRequest": _obj("Empty."),
    "WaitOperationRequest": _obj("", timeout=_s('A Duration such as "3.5s".',
                                                format="google-duration")),
    "Empty": _obj("An empty response."),
    "ListAlgorithmsResponse": _obj("Functions.", algorithms=_s("", "array",
                                                               items={"$ref": "Algorithm"}),
                                   nextPageToken=_s("Never set: one page.")),
    "Algorithm": _obj("A function signature.", name=_s("algorithms/<name>"), description=_s(),
                      returnType=_s(), arguments=_s("", "array", items={"type": "any"})),
}


def _routed(url_map: Map, method: Method, version: str) -> bool:
    """Does a request to this method's path reach its endpoint in the running app?"""
    try:
        endpoint, _ = url_map.bind("localhost").match(f"/{version}/{method.sample}",
                                                       method=method.http)
    except HTTPException:
        return False
    return endpoint == method.endpoint


def document(root_url: str, version: str, url_map: Map) -> dict:
    resources: dict = {}
    for m in METHODS:
        if not _routed(url_map, m, version):
            continue
        on_project = m.param in ("project", "parent") or m.sample.endswith("/operations")
        params = {m.param: dict(PROJECT if on_project else OPERATION)}
        for qname, qtype, qdesc in m.query:
            params[qname] = {"location": "query", "type": qtype, "description": qdesc,
                             **({"format": "int32"} if qtype == "integer" else {})}
        flat = m.sample.replace("projects/p", "projects/{projectsId}").replace(
            "operations/X", "operations/{operationsId}")
        desc = {"id": f"earthengine.projects.{m.resource}.{m.name}", "httpMethod": m.http,
                "path": f"{version}/{m.path}", "flatPath": f"{version}/{flat}",
                "parameters": params, "parameterOrder": [m.param],
                "description": m.description, "response": {"$ref": m.response}}
        if m.request:
            desc["request"] = {"$ref": m.request}
        resources.setdefault(m.resource, {"methods": {}})["methods"][m.name] = desc
    return {
        "kind": "discovery#restDescription", "discoveryVersion": "v1",
        "id": f"earthengine:{version}", "name": "earthengine", "version": version,
        "title": "mapserver batch exports (Earth Engine API subset)",
        "description": "Earth Engine-shaped batch exports and operations served by mapserver.",
        "protocol": "rest", "rootUrl": root_url, "baseUrl": root_url, "basePath": "",
        "servicePath": "", "batchPath": "batch", "version_module": True,
        "ownerName": "mapserver", "parameters": STANDARD_PARAMETERS,
        "resources": {"projects": {"resources": resources}}, "schemas": {
            name: {"id": name, **schema} for name, schema in SCHEMAS.items()}}
