"""Pixels to bytes: every ``format`` value ArcGIS clients send, and its content type.

Raster formats take the composed RGBA array; vector formats (pdf, svg, svgz, ps) take the
matplotlib figure so vectors stay vectors. ``png``/``png8`` are 8-bit paletted as in ArcGIS,
``png24`` is RGB (binary alpha when transparent), ``png32`` full RGBA.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

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
        img.save(buf, "PNG", compress_level=png_compression, dpi=dpi_info)
    elif name == "png24":
        if transparent:
            a = np.where(rgba[..., 3] >= 128, 255, 0).astype(np.uint8)
            out = rgba.copy()
            out[..., 3] = a
            Image.fromarray(out, "RGBA").save(buf, "PNG", compress_level=png_compression,
                                              dpi=dpi_info)
        else:
            img.convert("RGB").save(buf, "PNG", compress_level=png_compression, dpi=dpi_info)
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
        _flatten(rgba).save(buf, "JPEG", quality=85, dpi=dpi_info)
    elif name == "bmp":
        _flatten(rgba).save(buf, "BMP")
    elif name == "tiff":
        (img if transparent else _flatten(rgba)).save(buf, "TIFF", compression="tiff_deflate",
                                                      dpi=dpi_info)
    else:  # pragma: no cover - parse_format guards this
        raise InvalidParameter("Output format not supported.", [name])
    return buf.getvalue()


def _flatten(rgba: np.ndarray, bg: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Composite onto an opaque background (for formats without alpha)."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3] * a + np.array(bg, dtype=np.float32) * (1.0 - a)
    return Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")


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


def encode_vector(fig: Figure, fmt: Format, dpi: float) -> bytes:
    buf = io.BytesIO()
    kind = {"svgz": "svg"}.get(fmt.name, fmt.name)
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
