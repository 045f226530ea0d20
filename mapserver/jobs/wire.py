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
                 default_format: str) -> dict:
    extra = {"geoTiffOptions"} if where == "fileExportOptions" else set()
    _check_fields(opts, {"fileFormat", "cloudStorageDestination", "driveDestination",
                         "gcsDestination"} | extra, where)
    fmt_raw = str(opts.get("fileFormat") or default_format)
    fmt = allowed_formats.get(fmt_raw.upper())
    if fmt is None:
        raise invalid(f"{where}.fileFormat '{fmt_raw[:40]}' is not supported here; use one of "
                      + ", ".join(sorted(set(allowed_formats.values()))))
    if "driveDestination" in opts:
        raise invalid(f"{where}.driveDestination is not supported; use cloudStorageDestination")
    dest = opts.get("cloudStorageDestination") or opts.get("gcsDestination")
    if not isinstance(dest, dict):
        raise invalid(f"{where}.cloudStorageDestination is required")
    _check_fields(dest, {"bucket", "filenamePrefix", "permissions", "bucketCorsUris"},
                  f"{where}.cloudStorageDestination")
    bucket = dest.get("bucket")
    if not isinstance(bucket, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]",
                                                       bucket):
        raise invalid("cloudStorageDestination.bucket must be a bucket name "
                      "(3-63 of a-z 0-9 . _ -)")
    prefix = dest.get("filenamePrefix") or description
    return {"bucket": bucket, "prefix": safe_prefix(str(prefix), description), "format": fmt}


def safe_prefix(prefix: str, description: str) -> str:
    """A relative, normalised object prefix that cannot leave its bucket."""
    if prefix.endswith("/"):
        prefix += description
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
    if not isinstance(description, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", description):
        raise invalid("description may contain only letters, digits, '-' and '_' (1-100)")
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


def too_large(n: int, limit: int) -> MapServerError:
    return invalid(f"Export too large: specified {n} pixels (max: {limit}). Specify higher "
                   "maxPixels value if you intend to export a large area.")


def parse_image(body: Any, catalog: Catalog) -> JobPlan:
    body, description, priority, rid, tag = _common(body, IMAGE_FIELDS, "image")
    if "assetExportOptions" in body:
        raise invalid("assetExportOptions is not supported; use fileExportOptions")
    spec = evaluate(body["expression"], catalog)
    if not isinstance(spec, ImageSpec):
        raise invalid("image:export: the expression must evaluate to an Image")
    names = band_names(spec, catalog)
    opts = _obj(body, "fileExportOptions", "request")
    if not opts:
        raise invalid("fileExportOptions is required")
    dest = _destination(opts, "fileExportOptions", description,
                        {"GEO_TIFF": "GEO_TIFF", "GEOTIFF": "GEO_TIFF", "TIFF": "GEO_TIFF",
                         "TIF": "GEO_TIFF", "PNG": "PNG", "JPEG": "JPEG", "JPG": "JPEG"},
                        "GEO_TIFF")
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
                       "noData"}, "geoTiffOptions")
    if gt and dest["format"] != "GEO_TIFF":
        raise invalid("geoTiffOptions are only valid with fileFormat GEO_TIFF")
    tile_size = as_int(gt.get("tileSize", 256), "geoTiffOptions.tileSize")
    if tile_size <= 0 or tile_size > 1024 or tile_size & (tile_size - 1):
        raise invalid("geoTiffOptions.tileSize must be a power of two between 1 and 1024")
    fw, fh = grid.width, grid.height
    if gt.get("tileDimensions") is not None:
        td = gt["tileDimensions"]
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
    if dest["format"] != "GEO_TIFF" and not (len(names) in (1, 3, 4) and spec.layer_id is None):
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
    payload = {"spec": spec.to_json(), "grid": grid_json(grid), "dest": dest, "files": files,
               "bands": list(names), "cloudOptimized": bool(gt.get("cloudOptimized", False)),
               "skipEmptyFiles": bool(gt.get("skipEmptyFiles", False)), "noData": nodata,
               "maxPixels": max_pixels}
    return JobPlan("image", description, priority, rid, tag, payload, shards)


def parse_map(body: Any, catalog: Catalog, max_tiles: int) -> JobPlan:
    body, description, priority, rid, tag = _common(body, MAP_FIELDS, "map")
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
                         "PNG": "PNG", "JPEG": "JPEG", "JPG": "JPEG"}, "AUTO_JPEG_PNG")
    b = image_bounds_4326(spec, catalog)
    tiles = []
    for z in range(start, end + 1):
        x0, y0, x1, y1 = tile_range(b, z)
        count = (x1 - x0 + 1) * (y1 - y0 + 1)
        if len(tiles) + count > max_tiles:
            raise invalid(f"Export too large: specified more than {max_tiles} tiles "
                          f"(zoom {start}-{end}). Lower endZoom or clip the image.")
        tiles.extend([z, x, y] for x in range(x0, x1 + 1) for y in range(y0, y1 + 1))
    publish = bool(body.get("publishTileCache", False))
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
               "skipEmpty": bool(to.get("skipEmpty", to.get("skipEmptyTiles", False))),
               "bounds": list(b), "tileCount": len(tiles)}
    return JobPlan("map", description, priority, rid, tag, payload, shards)


def parse_video(body: Any, catalog: Catalog) -> JobPlan:
    body, description, priority, rid, tag = _common(body, VIDEO_FIELDS, "video")
    coll = evaluate(body["expression"], catalog)
    if not isinstance(coll, CollectionSpec):
        raise invalid("video:export: the expression must evaluate to an ImageCollection")
    if not coll.images:
        raise invalid("video:export: the collection is empty")
    for img in coll.images:
        if img.layer_id is not None:
            raise invalid("video:export: frames must be rendered map service images (RGB)")
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
    dest = _destination(opts, "fileExportOptions", description, {"MP4": "MP4"}, "MP4")
    shards = [{"frame": i} for i in range(len(coll.images))]
    payload = {"frames": [i.to_json() for i in coll.images], "grid": grid_json(grid),
               "dest": dest, "fps": fps}
    return JobPlan("video", description, priority, rid, tag, payload, shards)
