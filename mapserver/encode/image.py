"""Pixels to bytes: every ``format`` value ArcGIS clients send, and its content type.

Raster formats take the composed RGBA array; vector formats (pdf, svg, svgz, ps) take the
matplotlib figure so vectors stay vectors. ``png``/``png8`` are 8-bit paletted as in ArcGIS,
``png24`` is RGB (binary alpha when transparent), ``png32`` full RGBA.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from dataclasses import dataclass

import deflate
import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from zlib_ng import zlib_ng

from mapserver.errors import InvalidParameter


@dataclass(frozen=True)
class Format:
    name: str  # canonical
    content_type: str
    extension: str
    vector: bool = False
    supports_alpha: bool = True


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("png", "image/png", "png"),
    Format("png8", "image/png", "png"),
    Format("png24", "image/png", "png"),
    Format("png32", "image/png", "png"),
    Format("jpg", "image/jpeg", "jpg", supports_alpha=False),
    Format("gif", "image/gif", "gif"),
    Format("bmp", "image/bmp", "bmp", supports_alpha=False),
    Format("tiff", "image/tiff", "tif"),
    Format("pdf", "application/pdf", "pdf", vector=True),
    Format("svg", "image/svg+xml", "svg", vector=True),
    Format("svgz", "image/svg+xml", "svgz", vector=True),
    Format("ps", "application/postscript", "ps", vector=True),
)}
ALIASES = {"jpeg": "jpg", "tif": "tiff", "dib": "bmp", "image/png": "png", "image/jpeg": "jpg",
           "image/jpg": "jpg", "image/gif": "gif", "image/png8": "png8", "image/png24": "png24",
           "image/png32": "png32", "image/bmp": "bmp", "image/tiff": "tiff",
           "application/pdf": "pdf", "image/svg+xml": "svg", "eps": "ps"}
SUPPORTED_IMAGE_FORMAT_TYPES = "PNG32,PNG24,PNG,JPG,DIB,TIFF,PS,PDF,GIF,SVG,SVGZ,BMP"


def parse_format(value: str | None) -> Format:
    if value is None or not value.strip():
        return FORMATS["png"]
    key = value.strip().lower()
    key = ALIASES.get(key, key)
    fmt = FORMATS.get(key)
    if fmt is None:
        raise InvalidParameter("Output format not supported.",
                               [f"Format '{value[:40]}' is not supported. Supported formats: "
                                + ", ".join(FORMATS)])
    return fmt


def encode_raster(rgba: np.ndarray, fmt: Format, transparent: bool, dpi: float,
                  png_compression: int = 2) -> bytes:
    """Encode straight-alpha RGBA. ``transparent`` false means the background was filled."""
    img = Image.fromarray(rgba, "RGBA")
    buf = io.BytesIO()
    dpi_info = (round(dpi), round(dpi))
    name = fmt.name
    if name == "png32":
        return png_bytes(rgba, png_compression, dpi)
    elif name == "png24":
        if transparent:
            out = rgba.copy()
            out[..., 3] = np.where(rgba[..., 3] >= 128, 255, 0).astype(np.uint8)
            return png_bytes(out, png_compression, dpi)
        return png_bytes(np.asarray(Image.fromarray(rgba, "RGBA").convert("RGB")),
                         png_compression, dpi)
    elif name in ("png", "png8", "gif"):
        pal = _paletted(rgba, transparent)
        if name == "gif":
            pal.save(buf, "GIF", transparency=pal.info.get("transparency"))\
                if "transparency" in pal.info else pal.save(buf, "GIF")
        else:
            pal.save(buf, "PNG", compress_level=png_compression, dpi=dpi_info,
                     **({"transparency": pal.info["transparency"]}
                        if "transparency" in pal.info else {}))
    elif name == "jpg":
        # quality 75: the ArcGIS default compressionQuality for JPG (and what the C peer uses)
        _jpeg_input(rgba).save(buf, "JPEG", quality=75, dpi=dpi_info)
    elif name == "bmp":
        _flatten(rgba).save(buf, "BMP")
    elif name == "tiff":
        (img if transparent else _flatten(rgba)).save(buf, "TIFF", compression="tiff_deflate",
                                                      dpi=dpi_info)
    else:  # pragma: no cover - parse_format guards this
        raise InvalidParameter("Output format not supported.", [name])
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))


def png_bytes(pixels: np.ndarray, level: int, dpi: float) -> bytes:
    """8-bit RGB or RGBA ``(h, w, 3|4)`` pixels as PNG: row filter None, zlib-ng deflate.

    Why not Pillow: its encoder picks an adaptive filter per row and deflates with classic zlib;
    profiling the export bench showed that encoding took most of a raster export's CPU time.
    Filter None (what MapServer's AGG/PNG writes) with zlib-ng gives files of the same size as
    Pillow's at the same level in less than half the time (bench/README.md has the numbers).
    Photographic pixels (imagery, hillshades) go to libdeflate instead, see :func:`deflated`.
    """
    h, w, c = pixels.shape
    raw = np.empty((h, w * c + 1), dtype=np.uint8)
    raw[:, 0] = 0  # filter type None on every row
    raw[:, 1:] = pixels.reshape(h, w * c)
    ppm = int(round(dpi) / 0.0254 + 0.5)  # pixels per metre, rounded as Pillow does
    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6 if c == 4 else 2, 0, 0, 0)),
        _chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)),
        _chunk(b"IDAT", deflated(raw, pixels, level)),
        _chunk(b"IEND", b""),
    ))


PHOTO_RUNS = 0.5  # below this share of pixels equal to their left neighbour: "photographic"


def deflated(raw: np.ndarray, pixels: np.ndarray, level: int) -> bytes:
    """The zlib stream of a PNG's filtered rows, by the deflater that suits the pixels.

    Why two: on the export bench, libdeflate at level ``level - 1`` (at least 1) packs imagery
    (few equal neighbours) about as small as zlib-ng at ``level`` (within a few %) in about
    half the time
    (cog_in_512: 14.8 -> 6.8 ms, 583 -> 577 KB), but is the slower one where long runs
    dominate (vector maps, transparent margins: countries_4326_world 5.0 -> 5.9 ms). Every
    16th row tells them apart for ~0.1 ms per megapixel. Lossless either way: the pixels a
    client decodes do not depend on the choice."""
    if level <= 0 or raw.size < 4096:
        return zlib_ng.compress(raw.data, level)
    rows = pixels[::16]
    if rows.shape[2] == 4 and pixels.flags.c_contiguous:  # whole pixels as one word each
        words = rows.view(np.uint32)[..., 0]
        equal = words[:, 1:] == words[:, :-1]
    else:  # numpy's all() over a last axis of 3 costs ten times the comparisons
        equal = rows[:, 1:, 0] == rows[:, :-1, 0]
        for k in range(1, rows.shape[2]):
            equal &= rows[:, 1:, k] == rows[:, :-1, k]
    same = np.count_nonzero(equal) / max(1, equal.size)
    if same < PHOTO_RUNS:
        return deflate.zlib_compress(raw.data, max(1, min(12, level - 1)))
    return zlib_ng.compress(raw.data, level)


def _flatten(rgba: np.ndarray, bg: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Composite onto an opaque background (for formats without alpha)."""
    if rgba[..., 3].min() == 255:  # already opaque (the background was filled): nothing to mix
        return Image.fromarray(rgba, "RGBA").convert("RGB")  # C copy; numpy's strided one is 4x
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3] * a + np.array(bg, dtype=np.float32) * (1.0 - a)
    return Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")


_OPAQUE = np.array([0, 0, 0, 255], dtype=np.uint8).view(np.uint32)[0]  # any byte order


def _jpeg_input(rgba: np.ndarray) -> Image.Image:
    """What the JPEG encoder reads: an opaque image as RGBX, straight from the array.

    Why: Pillow's libjpeg-turbo reads RGBX itself; converting to RGB first cost more than a
    third of the encode (1024x1024: 7.5 ms -> 5.8 ms for the same bytes, bench/README.md)."""
    rgba = np.ascontiguousarray(rgba)
    if not (rgba.view(np.uint32) >= _OPAQUE).all():  # alpha: the top byte (little-endian)
        return _flatten(rgba)
    h, w = rgba.shape[:2]
    return Image.frombuffer("RGBX", (w, h), rgba, "raw", "RGBX", 0, 1)


def _paletted(rgba: np.ndarray, transparent: bool) -> Image.Image:
    """8-bit palette image; fully transparent pixels share one palette index."""
    if not transparent:
        return _flatten(rgba).quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                       dither=Image.Dither.NONE)
    clear = rgba[..., 3] < 128
    rgb = _flatten(rgba)
    pal = rgb.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    idx = np.asarray(pal).copy()
    if clear.any():
        idx[clear] = 255
        palette = pal.getpalette()[:255 * 3]
        palette += [0, 0, 0] * (256 - len(palette) // 3)
        out = Image.fromarray(idx, "P")
        out.putpalette(palette)
        out.info["transparency"] = 255
        return out
    return pal


VECTOR_TEXT = {"svg.fonttype": "none", "pdf.fonttype": 42, "ps.fonttype": 42}


def encode_vector(fig: Figure, fmt: Format, dpi: float) -> bytes:
    buf = io.BytesIO()
    kind = {"svgz": "svg"}.get(fmt.name, fmt.name)
    # labels as real, selectable text (SVG <text>, embedded TrueType in PDF/PS), not outlines;
    # for this one savefig only, never matplotlib's global settings
    with matplotlib.rc_context(VECTOR_TEXT):
        fig.savefig(buf, format=kind, dpi=dpi, transparent=False,
                    facecolor=fig.get_facecolor(), metadata=_metadata(kind))
    data = buf.getvalue()
    if fmt.name == "svgz":
        return gzip.compress(data, mtime=0)
    return data


def _metadata(kind: str) -> dict:
    if kind == "pdf":
        return {"Creator": "mapserver", "Producer": "mapserver"}
    if kind == "svg":
        return {"Creator": "mapserver"}
    if kind == "ps":
        return {"Creator": "mapserver"}
    return {}
