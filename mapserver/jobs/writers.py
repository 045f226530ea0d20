"""Output files: GeoTIFF (optionally COG) with nodata, the split-file VRT, PNG/JPEG, MP4 and the
map viewer. Everything is written into the staging directory; committing is someone else's job.
"""

from __future__ import annotations

import html
from fractions import Fraction
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from PIL import Image
from rasterio.enums import ColorInterp

from mapserver.geo.grid import Grid
from mapserver.sources.rasters import rasterio_crs


def write_geotiff(path: Path, data: np.ndarray, valid: np.ndarray, grid: Grid, rgba: bool,
                  nodata: float | None, cog: bool, tags: dict[str, str] | None = None,
                  overview_resampling: str | None = None) -> None:
    """Masked pixels are filled with ``nodata`` (not left as 0) and the tag is set, so readers
    see exactly what was masked. Rendered images keep their alpha band instead."""
    data = data.copy()
    tag = None
    if not rgba or nodata is not None:
        fill = nodata if nodata is not None else 0
        if np.issubdtype(data.dtype, np.integer):
            info = np.iinfo(data.dtype)
            if not info.min <= fill <= info.max or fill != int(fill):
                data = data.astype(np.float32)
        data[:, ~valid] = fill
        tag = fill if (nodata is not None or not rgba) else None
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height,
               "count": data.shape[0], "dtype": data.dtype.name, "crs": rasterio_crs(grid.sr),
               "transform": grid.transform, "compress": "deflate", "tiled": True,
               "blockxsize": 256, "blockysize": 256}
    if tag is not None:
        profile["nodata"] = tag
    if rgba and data.shape[0] in (3, 4):
        profile["photometric"] = "RGB"
        if data.shape[0] == 4:
            profile["alpha"] = "YES"
    if grid.width < 256 or grid.height < 256:
        profile.pop("tiled"), profile.pop("blockxsize"), profile.pop("blockysize")
    target = path.with_suffix(".gtiff.tmp") if cog else path
    with rasterio.open(target, "w", **profile) as ds:
        ds.write(data)
        if rgba and data.shape[0] == 4:
            ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                              ColorInterp.alpha]
        if tags:
            ds.update_tags(**tags)
        if overview_resampling:  # an asset's pyramid, with its pyramiding policy
            from rasterio.enums import Resampling

            factors, f = [], 2
            while max(grid.width, grid.height) // f >= 32:
                factors.append(f)
                f *= 2
            if factors:
                ds.build_overviews(factors, Resampling[overview_resampling])
    if cog:
        extra = {"OVERVIEWS": "FORCE_USE_EXISTING"} if overview_resampling else {}
        rasterio.shutil.copy(target, path, driver="COG", compress="DEFLATE", **extra)
        target.unlink()


def write_vrt(path: Path, parts: list[tuple[str, int, int, int, int]], grid: Grid,
              bands: int, dtype: str, nodata: float | None) -> None:
    """A GDAL VRT mosaic of split files (name, col, row, width, height), with relative paths."""
    t: Affine = grid.transform
    dt = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
          "int32": "Int32", "float32": "Float32", "float64": "Float64"}[dtype]
    srs = html.escape(rasterio_crs(grid.sr).to_wkt())
    out = [f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">',
           f"  <SRS>{srs}</SRS>",
           f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>"]
    for b in range(1, bands + 1):
        out.append(f'  <VRTRasterBand dataType="{dt}" band="{b}">')
        if nodata is not None:
            out.append(f"    <NoDataValue>{nodata!r}</NoDataValue>")
        for name, col, row, w, h in parts:
            out += ["    <SimpleSource>",
                    f'      <SourceFilename relativeToVRT="1">{html.escape(name)}</SourceFilename>',
                    f"      <SourceBand>{b}</SourceBand>",
                    f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>',
                    f'      <DstRect xOff="{col}" yOff="{row}" xSize="{w}" ySize="{h}"/>',
                    "    </SimpleSource>"]
        out.append("  </VRTRasterBand>")
    out.append("</VRTDataset>")
    path.write_text("\n".join(out) + "\n")


def write_picture(path: Path, data: np.ndarray, fmt: str) -> None:
    arr = np.ascontiguousarray(data.transpose(1, 2, 0)).astype(np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    img = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    if fmt == "JPEG":
        img.convert("L" if mode == "L" else "RGB").save(path, "JPEG", quality=90)
    else:
        img.save(path, "PNG")


def write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """H.264 through PyAV's bundled FFmpeg (the batch extra). x264 with yuv420p needs even
    sizes: pad by 1 px."""
    from mapserver.jobs.extras import VIDEO, require

    require(*VIDEO)
    import av

    h, w = frames[0].shape[:2]
    ew, eh = w + (w % 2), h + (h % 2)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = ew, eh, "yuv420p"
        for rgb in frames:
            if (ew, eh) != (w, h):
                rgb = np.pad(rgb, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


VIEWER = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>html,body{{margin:0;height:100%;background:#ddd;font:13px sans-serif}}
#map{{position:absolute;inset:0;overflow:hidden;cursor:grab}}
#map img{{position:absolute;width:256px;height:256px;user-select:none}}
#bar{{position:absolute;z-index:2;top:8px;left:8px;background:#fff;padding:4px 8px}}</style>
</head><body><div id="map"></div>
<div id="bar"><button id="in">+</button> <button id="out">&minus;</button>
<span id="z"></span></div>
<script>
// A dependency-free XYZ viewer for this pyramid: tiles are the extension-less {{z}}/{{x}}/{{y}}
// files next to this page. Zoom {zmin}-{zmax}; bounds {bounds}.
const Z0 = {zmin}, Z1 = {zmax}, B = {bounds};
let z = Z0, cx, cy;
const map = document.getElementById("map");
function px(lon, lat, zz) {{
  const n = 256 * 2 ** zz, s = Math.sin(lat * Math.PI / 180);
  return [(lon + 180) / 360 * n, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * n];
}}
function centre() {{
  const a = px(B[0], B[3], z), b = px(B[2], B[1], z);
  cx = (a[0] + b[0]) / 2; cy = (a[1] + b[1]) / 2;
}}
function draw() {{
  map.innerHTML = ""; document.getElementById("z").textContent = "zoom " + z;
  const W = map.clientWidth, H = map.clientHeight, n = 2 ** z;
  const x0 = Math.floor((cx - W / 2) / 256), x1 = Math.floor((cx + W / 2) / 256);
  const y0 = Math.floor((cy - H / 2) / 256), y1 = Math.floor((cy + H / 2) / 256);
  for (let x = Math.max(0, x0); x <= Math.min(n - 1, x1); x++)
    for (let y = Math.max(0, y0); y <= Math.min(n - 1, y1); y++) {{
      const img = new Image(); img.src = z + "/" + x + "/" + y;
      img.onerror = () => img.remove();
      img.style.left = (x * 256 - cx + W / 2) + "px"; img.style.top = (y * 256 - cy + H / 2) + "px";
      map.appendChild(img);
    }}
}}
function zoom(d) {{
  const nz = Math.min(Z1, Math.max(Z0, z + d)); cx *= 2 ** (nz - z); cy *= 2 ** (nz - z);
  z = nz; draw();
}}
let drag = null;
map.onmousedown = e => {{ drag = [e.clientX, e.clientY]; }};
window.onmouseup = () => {{ drag = null; }};
window.onmousemove = e => {{
  if (!drag) return; cx -= e.clientX - drag[0]; cy -= e.clientY - drag[1];
  drag = [e.clientX, e.clientY]; draw();
}};
document.getElementById("in").onclick = () => zoom(1);
document.getElementById("out").onclick = () => zoom(-1);
window.onresize = draw; centre(); draw();
</script></body></html>
"""


def write_viewer(path: Path, title: str, zmin: int, zmax: int, bounds: list[float]) -> None:
    path.write_text(VIEWER.format(title=html.escape(title), zmin=zmin, zmax=zmax,
                                  bounds=[round(b, 6) for b in bounds]))
