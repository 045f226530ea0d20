"""Request bodies of image:export / map:export / video:export, checked into a :class:`JobPlan`.

Everything is validated here, at submit time, before anything is queued: unknown fields, the
wrapper (``{"value": …}``) and scalar forms of numbers, the expression, the pixel grid, and the
maxPixels / tile-count / frame-count guards with Earth Engine's messages. The plan is plain JSON
so it can be stored in SQLite and shipped to worker processes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from affine import Affine

from mapserver.catalog.model import Catalog
from mapserver.errors import MapServerError
from mapserver.geo.grid import Grid
from mapserver.jobs.crs import parse_crs
from mapserver.jobs.errors import invalid
from mapserver.jobs.expression import CollectionSpec, ImageSpec, evaluate
from mapserver.jobs.imagery import (
    MAX_ZOOM,
    band_names,
    default_grid,
    image_bounds_4326,
    standard_scheme,
    tile_range,
)
from mapserver.tiling import WM_RESOLUTION0

COMMON = {"expression", "description", "requestId", "workloadTag", "priority", "maxWorkers"}
IMAGE_FIELDS = COMMON | {"fileExportOptions", "assetExportOptions", "maxPixels", "grid"}
MAP_FIELDS = COMMON | {"tileOptions", "tileExportOptions", "publishTileCache"}
VIDEO_FIELDS = COMMON | {"videoOptions", "fileExportOptions", "grid"}
TYPES = {"image": "EXPORT_IMAGE", "map": "EXPORT_TILES", "video": "EXPORT_VIDEO"}
REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,60}$")
WORKLOAD_TAG = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
DEFAULT_MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class JobPlan:
    kind: str  # image | map | video
    description: str
    priority: int
    request_id: str | None
    workload_tag: str | None
    payload: dict  # everything the executor needs (JSON)
    shards: list[dict]


# pyramiding policies GDAL can build overviews with (MIN, MAX and MEDIAN it cannot, in 3.10)
PYRAMIDING = {"MEAN": "average", "SAMPLE": "nearest", "MODE": "mode"}
EE_PYRAMIDING = ("MEAN", "SAMPLE", "MIN", "MAX", "MODE", "MEDIAN")


def flag(obj: dict, key: str, where: str, default: bool = False) -> bool:
    """A strict JSON boolean: ``"no"``, ``1`` or ``"false"`` are refused, not read as truthy."""
    v = obj.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise invalid(f"{where}.{key} must be true or false, got {json_snippet(v)}")
    return v


def json_snippet(v: Any) -> str:
    import json

    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def safe_name(text: str) -> str:
    """A freeform description made safe as one file or folder name."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:100]
    return out or "export"


def notice(detail: str, topic: str = "Request") -> dict:
    return {"topic": topic, "detail": detail, "severity": "WARNING"}


def unwrap(v: Any) -> Any:
    """Both encodings of protobuf wrapper numbers: ``{"value": x}`` (Python client) and ``x``."""
    if isinstance(v, dict) and set(v) == {"value"}:
        return v["value"]
    return v


def as_int(v: Any, what: str) -> int:
    v = unwrap(v)
    if isinstance(v, bool):
        raise invalid(f"{what} must be an integer")
    try:
        f = float(v)
    except (TypeError, ValueError) as exc:
        raise invalid(f"{what} must be an integer") from exc
    if not math.isfinite(f) or f != int(f):
        raise invalid(f"{what} must be an integer")
    return int(f)


def as_float(v: Any, what: str) -> float:
    v = unwrap(v)
    try:
        f = float(v)
    except (TypeError, ValueError) as exc:
        raise invalid(f"{what} must be a number") from exc
    if isinstance(v, bool) or not math.isfinite(f):
        raise invalid(f"{what} must be a number")
    return f


def _check_fields(body: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(f"Unknown fields in {where}: {', '.join(unknown)}")


def _obj(body: dict, key: str, where: str) -> dict:
    v = body.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise invalid(f"{where}.{key} must be an object")
    return v


def parse_grid(g: dict, spec: ImageSpec, catalog: Catalog) -> Grid:
    _check_fields(g, {"crsCode", "crsWkt", "affineTransform", "dimensions"}, "grid")
    if g.get("crsCode") and g.get("crsWkt"):
        raise invalid("grid: crsCode and crsWkt are mutually exclusive")
    sr = parse_crs(g.get("crsCode"), g.get("crsWkt"))
    at = g.get("affineTransform")
    if not isinstance(at, dict):
        raise invalid("grid.affineTransform is required")
    _check_fields(at, {"scaleX", "shearX", "translateX", "shearY", "scaleY", "translateY"},
                  "grid.affineTransform")
    t = Affine(*(as_float(at.get(k, 0.0), f"grid.affineTransform.{k}")
                 for k in ("scaleX", "shearX", "translateX", "shearY", "scaleY", "translateY")))
    if abs(t.determinant) < 1e-300:
        raise invalid("grid.affineTransform is not invertible")
    dims = g.get("dimensions")
    if dims is None:
        return default_grid(replace(spec, crs=sr.key, crs_transform=tuple(t)[:6]), catalog)
    if not isinstance(dims, dict):
        raise invalid("grid.dimensions must be {width, height}")
    w, h = as_int(dims.get("width"), "grid.dimensions.width"), as_int(
        dims.get("height"), "grid.dimensions.height")
    if w <= 0 or h <= 0:
        raise invalid("grid.dimensions must be positive")
    return Grid(sr, t, w, h)


def grid_json(grid: Grid) -> dict:
    return {"crs": grid.sr.key, "transform": list(grid.transform)[:6], "width": grid.width,
            "height": grid.height}


def grid_from_json(obj: dict) -> Grid:
    return Grid(parse_crs(obj["crs"], None) if obj["crs"].startswith("EPSG:") else
                parse_crs(None, obj["crs"]), Affine(*obj["transform"]), obj["width"],
                obj["height"])


def _destination(opts: dict, where: str, description: str, allowed_formats: dict[str, str],
                 default_format: str, notes: list[dict], tiles: bool = False) -> dict:
    extra = {"geoTiffOptions"} if where == "fileExportOptions" else set()
    _check_fields(opts, {"fileFormat", "cloudStorageDestination", "driveDestination",
                         "gcsDestination"} | extra, where)
    fmt_raw = opts.get("fileFormat") or default_format
    if not isinstance(fmt_raw, str):
        raise invalid(f"{where}.fileFormat must be a string")
    fmt = allowed_formats.get(fmt_raw.upper())
    if fmt is None:
        raise invalid(f"{where}.fileFormat '{fmt_raw[:40]}' is not supported here; use one of "
                      + ", ".join(sorted(set(allowed_formats.values()))))
    gcs = opts.get("cloudStorageDestination") or opts.get("gcsDestination")
    drive = opts.get("driveDestination")
    if gcs is not None and drive is not None:
        raise invalid(f"{where}: give one of cloudStorageDestination and driveDestination")
    if drive is not None:
        if tiles:
            raise invalid("map:export writes to Cloud Storage only: driveDestination is not "
                          "supported for tiles; use tileExportOptions.cloudStorageDestination")
        if not isinstance(drive, dict):
            raise invalid(f"{where}.driveDestination must be an object")
        _check_fields(drive, {"folder", "filenamePrefix"}, f"{where}.driveDestination")
        folder = drive.get("folder")
        if folder is not None and not isinstance(folder, str):
            raise invalid("driveDestination.folder must be a string")
        prefix = drive.get("filenamePrefix") or safe_name(description)
        if not isinstance(prefix, str):
            raise invalid("driveDestination.filenamePrefix must be a string")
        return {"kind": "drive", "folder": safe_name(folder) if folder else "",
                "prefix": safe_prefix(prefix, description), "format": fmt}
    if not isinstance(gcs, dict):
        raise invalid(f"{where}.cloudStorageDestination (or driveDestination) is required")
    _check_fields(gcs, {"bucket", "filenamePrefix", "permissions", "bucketCorsUris"},
                  f"{where}.cloudStorageDestination")
    bucket = gcs.get("bucket")
    if not isinstance(bucket, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]",
                                                       bucket):
        raise invalid("cloudStorageDestination.bucket must be a bucket name "
                      "(3-63 of a-z 0-9 . _ -)")
    perms = gcs.get("permissions")
    if perms not in (None, "TILE_PERMISSIONS_UNSPECIFIED", "PUBLIC", "DEFAULT_OBJECT_ACL"):
        raise invalid("cloudStorageDestination.permissions must be PUBLIC or DEFAULT_OBJECT_ACL")
    if perms == "PUBLIC":
        notes.append(notice("permissions PUBLIC: objects here have no ACLs; every output is "
                            "served by GET /v1/exports/{bucket}/{key}", "Destination"))
    cors = gcs.get("bucketCorsUris")
    if cors is not None:
        if not (isinstance(cors, list) and all(isinstance(c, str) for c in cors)):
            raise invalid("cloudStorageDestination.bucketCorsUris must be a list of strings")
        notes.append(notice("bucketCorsUris: outputs are served with "
                            "Access-Control-Allow-Origin: * already", "Destination"))
    prefix = gcs.get("filenamePrefix") or safe_name(description)
    if not isinstance(prefix, str):
        raise invalid("cloudStorageDestination.filenamePrefix must be a string")
    if tiles:  # a tile path names the folder itself: the trailing '/' is optional
        prefix = prefix.rstrip("/") or safe_name(description)
    return {"kind": "bucket", "bucket": bucket, "prefix": safe_prefix(prefix, description),
            "format": fmt}


def safe_prefix(prefix: str, description: str) -> str:
    """A relative, normalised object prefix that cannot leave its bucket. A trailing ``/``
    names a folder: the file inside is named after the (made safe) description."""
    if prefix.endswith("/"):
        prefix += safe_name(description)
    parts = prefix.split("/")
    if (prefix.startswith("/") or "\\" in prefix or any(ord(c) < 32 for c in prefix)
            or any(p in ("", ".", "..") for p in parts) or len(prefix) > 1024):
        raise invalid(f"Invalid filenamePrefix '{prefix[:80]}': it must be a relative path "
                      "without '.', '..', empty segments or backslashes")
    return prefix


def _common(body: Any, allowed: set[str], kind: str) -> tuple[dict, str, int, str | None,
                                                               str | None]:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    _check_fields(body, allowed, "request")
    description = body.get("description") or f"myExport{kind.capitalize()}Task"
    if not isinstance(description, str) or len(description) > 1024:
        raise invalid("description must be a string of at most 1024 characters")
    priority = as_int(body.get("priority", 100), "priority")
    if not 0 <= priority <= 9999:
        raise invalid(f"priority must be between 0 and 9999, got {priority}")
    rid = body.get("requestId") or None
    if rid is not None and (not isinstance(rid, str) or not REQUEST_ID.match(rid)):
        raise invalid("requestId may contain only a-z, A-Z, 0-9 and '-' (at most 60)")
    tag = body.get("workloadTag") or None
    if tag is not None and (not isinstance(tag, str) or not WORKLOAD_TAG.match(tag)):
        raise invalid("workloadTag must be 1-63 characters, start and end alphanumeric, "
                      "and contain only letters, digits, '-', '_' and '.'")
    if "expression" not in body:
        raise invalid("expression is required")
    return body, description, priority, rid, tag


def _notes(body: dict) -> list[dict]:
    notes = []
    if body.get("maxWorkers") is not None:
        as_int(body["maxWorkers"], "maxWorkers")
        notes.append(notice("maxWorkers is ignored: shards run on this server's "
                            "MAPSERVER_JOBS_WORKERS processes"))
    return notes


ASSET_NAME = re.compile(r"^projects/([^/]+)/assets/(.+)$")


def parse_asset_name(name: Any) -> tuple[str, str]:
    """``projects/<p>/assets/<path>`` (also the client's legacy form
    ``projects/earthengine-legacy/assets/projects/<p>/assets/<path>``) to (project, path)."""
    if not isinstance(name, str):
        raise invalid("earthEngineDestination.name must be 'projects/<project>/assets/<path>'")
    m = ASSET_NAME.match(name)
    if m and m.group(1) in ("earthengine-legacy", "earthengine-public"):
        m = ASSET_NAME.match(m.group(2))
    if not m:
        raise invalid(f"earthEngineDestination.name '{name[:80]}' must be "
                      "'projects/<project>/assets/<path>'")
    project, path = m.group(1), m.group(2)
    parts = path.split("/")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", project) or any(
            not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", p) for p in parts):
        raise invalid(f"Invalid asset name '{name[:80]}': path segments may contain letters, "
                      "digits, '.', '_' and '-'")
    return project, path


def _asset_destination(opts: Any) -> dict:
    if not isinstance(opts, dict):
        raise invalid("assetExportOptions must be an object")
    _check_fields(opts, {"earthEngineDestination", "pyramidingPolicy",
                         "pyramidingPolicyOverrides", "tileSize"}, "assetExportOptions")
    ee = opts.get("earthEngineDestination")
    if not isinstance(ee, dict):
        raise invalid("assetExportOptions.earthEngineDestination is required")
    _check_fields(ee, {"name", "overwrite"}, "earthEngineDestination")
    project, path = parse_asset_name(ee.get("name"))
    policy = opts.get("pyramidingPolicy") or "MEAN"
    if policy not in EE_PYRAMIDING:
        raise invalid(f"pyramidingPolicy must be one of {', '.join(EE_PYRAMIDING)}")
    if policy not in PYRAMIDING:
        raise invalid(f"pyramidingPolicy {policy} is not supported here: overviews are built "
                      f"by GDAL, which offers {', '.join(PYRAMIDING)}")
    overrides = opts.get("pyramidingPolicyOverrides") or {}
    if not isinstance(overrides, dict) or any(v not in EE_PYRAMIDING for v in overrides.values()):
        raise invalid("pyramidingPolicyOverrides must map band names to "
                      + ", ".join(EE_PYRAMIDING))
    if any(v != policy for v in overrides.values()):
        raise invalid("pyramidingPolicyOverrides: per-band policies other than the default "
                      "are not supported (one COG has one overview resampling)")
    tile = as_int(opts.get("tileSize", 256), "assetExportOptions.tileSize")
    if tile <= 0 or tile > 1024 or tile & (tile - 1):
        raise invalid("assetExportOptions.tileSize must be a power of two between 1 and 1024")
    return {"kind": "asset", "project": project, "path": path,
            "asset": f"projects/{project}/assets/{path}",
            "overwrite": flag(ee, "overwrite", "earthEngineDestination"),
            "pyramiding": policy, "overrides": dict(overrides), "tileSize": tile,
            "prefix": path, "format": "GEO_TIFF"}


def too_large(n: int, limit: int) -> MapServerError:
    return invalid(f"Export too large: specified {n} pixels (max: {limit}). Specify higher "
                   "maxPixels value if you intend to export a large area.")


def parse_image(body: Any, catalog: Catalog) -> JobPlan:
    body, description, priority, rid, tag = _common(body, IMAGE_FIELDS, "image")
    notes = _notes(body)
    if ("assetExportOptions" in body) == ("fileExportOptions" in body):
        raise invalid("give exactly one of fileExportOptions and assetExportOptions")
    spec = evaluate(body["expression"], catalog)
    if not isinstance(spec, ImageSpec):
        raise invalid("image:export: the expression must evaluate to an Image")
    names = band_names(spec, catalog)
    if "assetExportOptions" in body:
        opts: dict = {}
        dest = _asset_destination(body["assetExportOptions"])
        for band in dest["overrides"]:
            if band not in names:
                raise invalid(f"pyramidingPolicyOverrides: no band '{str(band)[:40]}'; the "
                              "image has bands " + ", ".join(names))
    else:
        opts = _obj(body, "fileExportOptions", "request")
        dest = _destination(opts, "fileExportOptions", description,
                            {"GEO_TIFF": "GEO_TIFF", "GEOTIFF": "GEO_TIFF", "TIFF": "GEO_TIFF",
                             "TIF": "GEO_TIFF", "PNG": "PNG", "JPEG": "JPEG", "JPG": "JPEG"},
                            "GEO_TIFF", notes)
    grid = parse_grid(body["grid"], spec, catalog) if body.get("grid") else default_grid(
        spec, catalog)
    max_pixels = as_int(body.get("maxPixels", DEFAULT_MAX_PIXELS), "maxPixels")
    if max_pixels <= 0:
        raise invalid("maxPixels must be positive")
    n = grid.width * grid.height
    if n > max_pixels:
        raise too_large(n, max_pixels)
    gt = _obj(opts, "geoTiffOptions", "fileExportOptions")
    _check_fields(gt, {"cloudOptimized", "tileDimensions", "skipEmptyFiles", "tileSize",
                       "noData", "metadataKeys"}, "geoTiffOptions")
    keys = gt.get("metadataKeys") or []
    if not (isinstance(keys, list) and all(isinstance(k, str) and k for k in keys)):
        raise invalid("geoTiffOptions.metadataKeys must be a list of property names")
    if gt and dest["format"] != "GEO_TIFF":
        raise invalid("geoTiffOptions are only valid with fileFormat GEO_TIFF")
    tile_size = as_int(gt.get("tileSize", dest.get("tileSize", 256)), "geoTiffOptions.tileSize")
    if tile_size <= 0 or tile_size > 1024 or tile_size & (tile_size - 1):
        raise invalid("geoTiffOptions.tileSize must be a power of two between 1 and 1024")
    fw, fh = grid.width, grid.height
    if gt.get("tileDimensions") is not None:
        td = gt["tileDimensions"]
        if not isinstance(td, dict):
            raise invalid("geoTiffOptions.tileDimensions must be {width, height}")
        fw = as_int(td.get("width"), "tileDimensions.width")
        fh = as_int(td.get("height"), "tileDimensions.height")
        if fw <= 0 or fh <= 0 or fw % tile_size or fh % tile_size:
            raise invalid(f"File dimensions must be a multiple of the shard size ({tile_size}).")
        if fw > 131072 or fh > 131072:
            raise invalid("File dimensions must be at most 131072 pixels on a side.")
    nodata = None
    if gt.get("noData") is not None:
        nd = gt["noData"]
        if not isinstance(nd, dict) or "floatValue" not in nd:
            raise invalid("geoTiffOptions.noData supports only {\"floatValue\": x}")
        nodata = as_float(nd["floatValue"], "noData.floatValue")
    if dest["format"] != "GEO_TIFF" and not (len(names) in (1, 3, 4) and spec.rendered):
        raise invalid(f"{dest['format']} output needs a visualised (rendered) image with 1, 3 or 4 "
                      "bands; use GEO_TIFF for data values")
    files, shards = [], []
    for r0 in range(0, grid.height, fh):
        for c0 in range(0, grid.width, fw):
            fi = len(files)
            files.append({"row": r0, "col": c0, "width": min(fw, grid.width - c0),
                          "height": min(fh, grid.height - r0)})
            for s0 in range(r0, r0 + files[-1]["height"], tile_size):
                shards.append({"file": fi, "row": s0, "col": c0, "width": files[-1]["width"],
                               "height": min(tile_size, r0 + files[-1]["height"] - s0)})
    cog = flag(gt, "cloudOptimized", "geoTiffOptions")
    if dest["kind"] == "asset":
        cog = True  # an asset is a COG with overviews (its pyramid)
        if len(files) > 1:
            raise invalid("an asset is one file: tileDimensions cannot split it")
    payload = {"spec": spec.to_json(), "grid": grid_json(grid), "dest": dest, "files": files,
               "bands": list(names), "cloudOptimized": cog,
               "skipEmptyFiles": flag(gt, "skipEmptyFiles", "geoTiffOptions"), "noData": nodata,
               "maxPixels": max_pixels, "metadataKeys": list(keys),
               "metadata": image_metadata(spec), "notifications": notes}
    return JobPlan("image", description, priority, rid, tag, payload, shards)


def image_metadata(spec: ImageSpec) -> dict[str, str]:
    """The image properties a GeoTIFF can carry as tags (geoTiffOptions.metadataKeys)."""
    out = {"system:id": spec.service if spec.layer_id is None
           else f"{spec.service}/{spec.layer_id}"}
    if spec.time is not None:
        if spec.time[0] is not None:
            out["system:time_start"] = str(spec.time[0])
        if spec.time[1] is not None:
            out["system:time_end"] = str(spec.time[1])
    return out


def parse_map(body: Any, catalog: Catalog, max_tiles: int) -> JobPlan:
    body, description, priority, rid, tag = _common(body, MAP_FIELDS, "map")
    notes = _notes(body)
    spec = evaluate(body["expression"], catalog)
    if not isinstance(spec, ImageSpec) or spec.layer_id is not None:
        raise invalid("map:export: the expression must evaluate to a map service Image")
    to = _obj(body, "tileOptions", "request")
    _check_fields(to, {"startZoom", "minZoom", "endZoom", "maxZoom", "scale", "skipEmpty",
                       "skipEmptyTiles", "mapsApiKey", "dimensions", "tileDimensions", "stride",
                       "zoomSubset"}, "tileOptions")
    for k in ("dimensions", "tileDimensions", "stride", "zoomSubset"):
        if k in to:
            raise invalid(f"tileOptions.{k} is only supported for video map exports")
    start = as_int(to.get("startZoom", to.get("minZoom", 0)), "tileOptions.startZoom")
    end_raw = to.get("endZoom", to.get("maxZoom"))
    if (end_raw is None) == (to.get("scale") is None):
        raise invalid("tileOptions: exactly one of endZoom and scale is required")
    if end_raw is not None:
        end = as_int(end_raw, "tileOptions.endZoom")
    else:
        scale = as_float(to["scale"], "tileOptions.scale")
        if scale <= 0:
            raise invalid("tileOptions.scale must be positive")
        end = next((z for z in range(MAX_ZOOM + 1) if WM_RESOLUTION0 / (1 << z) <= scale), MAX_ZOOM)
    if not 0 <= start <= end <= MAX_ZOOM:
        raise invalid(f"tileOptions: need 0 <= startZoom <= endZoom <= {MAX_ZOOM}")
    opts = _obj(body, "tileExportOptions", "request")
    if not opts:
        raise invalid("tileExportOptions with a cloudStorageDestination is required")
    dest = _destination(opts, "tileExportOptions", description,
                        {"AUTO_JPEG_PNG": "AUTO_JPEG_PNG", "AUTO": "AUTO_JPEG_PNG",
                         "PNG": "PNG", "JPEG": "JPEG", "JPG": "JPEG"}, "AUTO_JPEG_PNG", notes,
                        tiles=True)
    if to.get("mapsApiKey") is not None:
        if not isinstance(to["mapsApiKey"], str):
            raise invalid("tileOptions.mapsApiKey must be a string")
        notes.append(notice("mapsApiKey is not used: index.html is a self-contained viewer "
                            "without Google Maps", "Viewer"))
    b = image_bounds_4326(spec, catalog)
    tiles = []
    for z in range(start, end + 1):
        x0, y0, x1, y1 = tile_range(b, z)
        count = (x1 - x0 + 1) * (y1 - y0 + 1)
        if len(tiles) + count > max_tiles:
            raise invalid(f"Export too large: specified more than {max_tiles} tiles "
                          f"(zoom {start}-{end}; MAPSERVER_JOBS_MAX_TILES). Lower endZoom or "
                          "clip the image.")
        tiles.extend([z, x, y] for x in range(x0, x1 + 1) for y in range(y0, y1 + 1))
    publish = flag(body, "publishTileCache", "request")
    if publish:
        svc = catalog.service(spec.service)
        scheme = standard_scheme(svc)
        if spec != ImageSpec(service=spec.service):
            raise invalid("publishTileCache needs a plain Image.load(<service>) expression: "
                          "the cache must hold what /tile would draw")
        if scheme is None or scheme.format_name.upper() not in ("PNG", "PNG32"):
            raise invalid(f"publishTileCache: service '{spec.service}' has no standard Web "
                          "Mercator PNG tiling scheme")
        if scheme.lod(end) is None:
            raise invalid(f"publishTileCache: the service's tiling scheme has no level {end}")
        if dest["format"] != "PNG":
            raise invalid("publishTileCache needs tileExportOptions.fileFormat PNG")
    shards = [{"tiles": tiles[i:i + 8]} for i in range(0, len(tiles), 8)]
    payload = {"spec": spec.to_json(), "dest": dest, "startZoom": start, "endZoom": end,
               "publishTileCache": publish,
               "skipEmpty": flag(to, "skipEmpty" if "skipEmpty" in to else "skipEmptyTiles",
                                 "tileOptions"),
               "bounds": list(b), "tileCount": len(tiles), "notifications": notes}
    return JobPlan("map", description, priority, rid, tag, payload, shards)


def parse_video(body: Any, catalog: Catalog) -> JobPlan:
    body, description, priority, rid, tag = _common(body, VIDEO_FIELDS, "video")
    notes = _notes(body)
    coll = evaluate(body["expression"], catalog)
    if not isinstance(coll, CollectionSpec):
        raise invalid("video:export: the expression must evaluate to an ImageCollection")
    if not coll.images:
        raise invalid("video:export: the collection is empty")
    for img in coll.images:
        if not img.rendered:
            raise invalid("video:export: frames must be RGB images: map service images or "
                          "Image.visualize(...) of raster layers")
    vo = _obj(body, "videoOptions", "request")
    _check_fields(vo, {"framesPerSecond", "maxFrames", "maxPixelsPerFrame"}, "videoOptions")
    fps = as_float(vo.get("framesPerSecond", 5.0), "videoOptions.framesPerSecond")
    if not 0.1 <= fps <= 120:
        raise invalid("videoOptions.framesPerSecond must be between 0.1 and 120")
    max_frames = as_int(vo.get("maxFrames", 1000), "videoOptions.maxFrames")
    if max_frames < 1:
        raise invalid("videoOptions.maxFrames must be at least 1")
    if len(coll.images) > max_frames:
        raise invalid(f"Too many frames: the collection has {len(coll.images)} images "
                      f"(maxFrames: {max_frames}).")
    max_px = as_int(vo.get("maxPixelsPerFrame", DEFAULT_MAX_PIXELS), "maxPixelsPerFrame")
    first = coll.images[0]
    grid = parse_grid(body["grid"], first, catalog) if body.get("grid") else default_grid(
        first, catalog)
    if grid.width * grid.height > max_px:
        raise too_large(grid.width * grid.height, max_px)
    opts = _obj(body, "fileExportOptions", "request")
    if not opts:
        raise invalid("fileExportOptions is required")
    dest = _destination(opts, "fileExportOptions", description, {"MP4": "MP4"}, "MP4", notes)
    shards = [{"frame": i} for i in range(len(coll.images))]
    payload = {"frames": [i.to_json() for i in coll.images], "grid": grid_json(grid),
               "dest": dest, "fps": fps, "notifications": notes}
    return JobPlan("video", description, priority, rid, tag, payload, shards)
