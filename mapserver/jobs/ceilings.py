"""Server-side ceilings on batch exports, checked at submit time before anything is queued.

Whatever a client's ``maxPixels`` / ``maxFrames`` say, this server exports at most
MAPSERVER_JOBS_MAX_PIXELS pixels per image, MAPSERVER_JOBS_MAX_TILES tiles per map,
MAPSERVER_JOBS_MAX_FRAMES frames of at most MAPSERVER_JOBS_MAX_FRAME_PIXELS pixels per video,
and no single output file larger than MAPSERVER_JOBS_MAX_FILE_BYTES (16 GiB: split a larger
GeoTIFF with ``geoTiffOptions.tileDimensions``). Errors are INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

from mapserver import limits
from mapserver.jobs.errors import invalid

BYTES_PER_SAMPLE = 8  # worst case (float64 data bands); rendered bands are 1 byte


def check_ceilings(plan) -> None:
    lim = limits.current()
    p = plan.payload
    if plan.kind == "image":
        g = p.get("grid") or {}
        n = int(g.get("width", 0)) * int(g.get("height", 0))
        if n > lim.jobs_max_pixels:
            raise invalid(f"Export too large: specified {n} pixels; this server exports at most "
                          f"{lim.jobs_max_pixels} pixels per image whatever maxPixels says "
                          "(MAPSERVER_JOBS_MAX_PIXELS). Reduce grid.dimensions or the scale.")
        bands = p.get("bands") or ["b1"]
        per = 1 if str(bands[0]).startswith("vis-") else BYTES_PER_SAMPLE
        for f in p.get("files") or ():
            size = int(f["width"]) * int(f["height"]) * len(bands) * per
            if size > lim.jobs_max_file_bytes:
                raise invalid(f"Export file too large: a file of {f['width']}x{f['height']} "
                              f"pixels and {len(bands)} bands may reach {size} bytes, more "
                              f"than {lim.jobs_max_file_bytes} bytes per file "
                              "(MAPSERVER_JOBS_MAX_FILE_BYTES); set "
                              "fileExportOptions.geoTiffOptions.tileDimensions to split it.")
    elif plan.kind == "map":
        n = int(p.get("tileCount") or len(plan.shards) * 8)
        if n > lim.jobs_max_tiles:
            raise invalid(f"Export too large: {n} tiles; this server exports at most "
                          f"{lim.jobs_max_tiles} tiles per map (MAPSERVER_JOBS_MAX_TILES). "
                          "Lower tileOptions.endZoom or clip the image.")
    elif plan.kind == "video":
        frames = len(p.get("frames") or plan.shards)
        if frames > lim.jobs_max_frames:
            raise invalid(f"Too many frames: {frames}; this server exports at most "
                          f"{lim.jobs_max_frames} frames per video whatever "
                          "videoOptions.maxFrames says (MAPSERVER_JOBS_MAX_FRAMES).")
        g = p.get("grid") or {}
        n = int(g.get("width", 0)) * int(g.get("height", 0))
        if n > lim.jobs_max_frame_pixels:
            raise invalid(f"Export too large: {n} pixels per frame; this server exports at "
                          f"most {lim.jobs_max_frame_pixels} pixels per frame "
                          "(MAPSERVER_JOBS_MAX_FRAME_PIXELS). Reduce grid.dimensions.")
