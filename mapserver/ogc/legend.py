"""WMS ``GetLegendGraphic``: one PNG per layer, laid out from the ``maps/legend.py`` swatches.

The swatches are the ArcGIS legend's own (``layer_legend``: the export symbol code, the raster
stretch and ramp); this module only stacks them with their labels, one row per class, as
ArcGIS's WMS does. Labels are drawn with matplotlib's bundled DejaVu Sans.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from mapserver.catalog.model import Layer
from mapserver.encode.image import FORMATS, encode_raster
from mapserver.maps.legend import LegendOptions, layer_legend

GAP = 4  # pixels between rows and between swatch and label
FONT_PX = 12


@lru_cache(maxsize=4)
def font(size: int = FONT_PX) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except Exception:  # noqa: BLE001 - any font is better than no legend
        return ImageFont.load_default()


def legend_rows(layer: Layer, width: int, height: int) -> list[tuple[Image.Image, str]]:
    """(swatch, label) per legend class of ``layer`` (swatches ``width`` x ``height`` px)."""
    entry = layer_legend(layer, LegendOptions(width=width, height=height))
    rows = []
    for item in (entry or {}).get("legend", []):
        img = Image.open(io.BytesIO(base64.b64decode(item["imageData"]))).convert("RGBA")
        rows.append((img, str(item.get("label") or "")))
    return rows


def legend_graphic(layer: Layer, width: int = 20, height: int = 20) -> tuple[bytes, int, int]:
    """PNG bytes, width, height: the layer's swatches stacked with their labels (a single
    unlabelled swatch is returned alone). Transparent background."""
    rows = legend_rows(layer, width, height)
    if not rows:
        img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    elif len(rows) == 1 and not rows[0][1]:
        img = rows[0][0]
    else:
        f = font()
        draw = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
        text_w = max(int(draw.textlength(label, font=f)) for _, label in rows)
        sw_w = max(s.width for s, _ in rows)
        heights = [max(s.height, FONT_PX + 4) for s, _ in rows]
        total_w = sw_w + GAP + text_w + 2
        total_h = sum(heights) + GAP * (len(rows) - 1)
        img = Image.new("RGBA", (total_w, total_h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(img)
        y = 0
        for (swatch, label), h in zip(rows, heights, strict=True):
            img.alpha_composite(swatch, (0, y + (h - swatch.height) // 2))
            draw.text((sw_w + GAP, y + h // 2), label, font=f, fill=(0, 0, 0, 255), anchor="lm")
            y += h + GAP
    import numpy as np

    rgba = np.asarray(img.convert("RGBA"))
    return encode_raster(rgba, FORMATS["png32"], True, 96.0), img.width, img.height
