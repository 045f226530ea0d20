"""ArcGIS renderer and symbol JSON, parsed once into typed values.

Service definitions (and later ``dynamicLayers``) carry Esri renderer JSON: ``simple``,
``uniqueValue`` and ``classBreaks`` renderers over ``esriSFS``/``esriSLS``/``esriSMS`` symbols.
Parsing validates every field up front (errors say which field) so drawing never meets a
malformed symbol. Sizes and widths stay in points; the vector renderer turns them into pixels
through the grid's dpi (pixels = points x dpi / 72).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RGBA = tuple[float, float, float, float]  # 0..1 floats, as matplotlib wants them

SFS_STYLES = {"esriSFSSolid", "esriSFSNull", "esriSFSHollow", "esriSFSHorizontal",
              "esriSFSVertical", "esriSFSCross", "esriSFSDiagonalCross",
              "esriSFSForwardDiagonal", "esriSFSBackwardDiagonal"}
SLS_STYLES = {"esriSLSSolid", "esriSLSDash", "esriSLSDot", "esriSLSDashDot",
              "esriSLSDashDotDot", "esriSLSNull", "esriSLSInsideFrame", "esriSLSShortDash",
              "esriSLSShortDot", "esriSLSShortDashDot", "esriSLSLongDash",
              "esriSLSLongDashDot"}
SMS_STYLES = {"esriSMSCircle", "esriSMSSquare", "esriSMSDiamond", "esriSMSCross",
              "esriSMSX", "esriSMSTriangle"}


class StyleError(ValueError):
    """A renderer or symbol is malformed. ``path`` names the offending JSON field."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def parse_color(value: Any, path: str) -> RGBA | None:
    """Esri colour ``[r, g, b, a]`` (0..255) to a 0..1 RGBA tuple; ``null`` means no colour."""
    if value is None:
        return None
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) not in (3, 4)
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in value)):
        raise StyleError(path, "colour must be [r, g, b] or [r, g, b, a] with values 0-255")
    if not all(0 <= c <= 255 for c in value):
        raise StyleError(path, "colour components must be between 0 and 255")
    r, g, b = value[0], value[1], value[2]
    a = value[3] if len(value) == 4 else 255
    return (r / 255.0, g / 255.0, b / 255.0, a / 255.0)


def _number(obj: Mapping, key: str, path: str, default: float) -> float:
    v = obj.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise StyleError(f"{path}.{key}", "must be a number")
    if v < 0:
        raise StyleError(f"{path}.{key}", "must not be negative")
    return float(v)


@dataclass(frozen=True)
class LineSymbol:
    """esriSLS. ``width`` in points."""

    color: RGBA | None
    width: float = 1.0
    style: str = "esriSLSSolid"

    @property
    def visible(self) -> bool:
        return self.color is not None and self.style != "esriSLSNull" and self.width > 0


@dataclass(frozen=True)
class FillSymbol:
    """esriSFS with an optional outline."""

    color: RGBA | None
    style: str = "esriSFSSolid"
    outline: LineSymbol | None = None


@dataclass(frozen=True)
class MarkerSymbol:
    """esriSMS. ``size`` (diameter) in points; ``angle`` counter-clockwise degrees."""

    color: RGBA | None
    size: float = 8.0
    style: str = "esriSMSCircle"
    angle: float = 0.0
    xoffset: float = 0.0
    yoffset: float = 0.0
    outline: LineSymbol | None = None


@dataclass(frozen=True)
class PictureMarkerSymbol:
    """esriPMS: an image (decoded once, RGBA uint8) ``width`` x ``height`` points, turned
    ``angle`` degrees counter-clockwise, moved by the offsets (points)."""

    image: np.ndarray = field(compare=False, hash=False, repr=False)
    width: float = 12.0
    height: float = 12.0
    angle: float = 0.0
    xoffset: float = 0.0
    yoffset: float = 0.0
    digest: str = ""  # identifies the picture (legend cache key)

    @property
    def size(self) -> float:
        return max(self.width, self.height)


@dataclass(frozen=True)
class PictureFillSymbol:
    """esriPFS: an image tiled over the polygon, each tile ``width x xscale`` by
    ``height x yscale`` points, with an optional outline."""

    image: np.ndarray = field(compare=False, hash=False, repr=False)
    width: float = 12.0
    height: float = 12.0
    xscale: float = 1.0
    yscale: float = 1.0
    xoffset: float = 0.0
    yoffset: float = 0.0
    outline: LineSymbol | None = None
    digest: str = ""


Symbol = LineSymbol | FillSymbol | MarkerSymbol | PictureMarkerSymbol | PictureFillSymbol

PICTURE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/gif", "image/bmp"}
MAX_PICTURE_BYTES = 1_000_000
MAX_PICTURE_PIXELS = 512 * 512


def _picture(obj: Mapping, path: str) -> tuple[np.ndarray, str]:
    """Decode ``imageData`` (base64, or a ``data:`` URL in ``url``) to RGBA; only inline
    images (a server never fetches a symbol from the network)."""
    import base64
    import hashlib
    import io

    from PIL import Image

    data = obj.get("imageData")
    ctype = obj.get("contentType")
    url = obj.get("url")
    if not data and isinstance(url, str) and url.startswith("data:") and "," in url:
        head, data = url[5:].split(",", 1)
        ctype = ctype or head.split(";")[0]
    if not isinstance(data, str) or not data:
        raise StyleError(f"{path}.imageData", "a picture symbol needs its image inline as "
                                               "base64 imageData (urls are not fetched)")
    if ctype is not None and str(ctype).lower() not in PICTURE_TYPES:
        raise StyleError(f"{path}.contentType", f"unsupported picture type {ctype!r} "
                                                f"(one of {', '.join(sorted(PICTURE_TYPES))})")
    if len(data) > MAX_PICTURE_BYTES * 4 // 3 + 4:
        raise StyleError(f"{path}.imageData", f"larger than {MAX_PICTURE_BYTES} bytes")
    try:
        raw = base64.b64decode(data, validate=False)
        with Image.open(io.BytesIO(raw)) as im:
            if im.width * im.height > MAX_PICTURE_PIXELS:
                raise StyleError(f"{path}.imageData", "picture larger than 512 x 512 pixels")
            rgba = np.asarray(im.convert("RGBA")).copy()
    except StyleError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad images
        raise StyleError(f"{path}.imageData", f"not a readable image: {exc}") from None
    rgba.setflags(write=False)
    return rgba, hashlib.sha1(raw).hexdigest()


def _offsets(obj: Mapping, path: str) -> tuple[float, float]:
    xo, yo = obj.get("xoffset", 0) or 0, obj.get("yoffset", 0) or 0
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (xo, yo)):
        raise StyleError(f"{path}.xoffset", "offsets must be numbers")
    return float(xo), float(yo)


def parse_symbol(obj: Any, path: str) -> Symbol:
    if not isinstance(obj, Mapping):
        raise StyleError(path, "symbol must be a JSON object")
    kind = obj.get("type")
    if kind == "esriSLS":
        style = obj.get("style", "esriSLSSolid")
        if style not in SLS_STYLES:
            raise StyleError(f"{path}.style", f"unknown line style {style!r}")
        return LineSymbol(color=parse_color(obj.get("color"), f"{path}.color"),
                          width=_number(obj, "width", path, 1.0), style=style)
    if kind == "esriSFS":
        style = obj.get("style", "esriSFSSolid")
        if style not in SFS_STYLES:
            raise StyleError(f"{path}.style", f"unknown fill style {style!r}")
        outline = obj.get("outline")
        return FillSymbol(color=parse_color(obj.get("color"), f"{path}.color"), style=style,
                          outline=_parse_outline(outline, f"{path}.outline"))
    if kind == "esriSMS":
        style = obj.get("style", "esriSMSCircle")
        if style not in SMS_STYLES:
            raise StyleError(f"{path}.style", f"unknown marker style {style!r}")
        angle = obj.get("angle", 0) or 0
        if isinstance(angle, bool) or not isinstance(angle, int | float):
            raise StyleError(f"{path}.angle", "must be a number")
        xo, yo = obj.get("xoffset", 0) or 0, obj.get("yoffset", 0) or 0
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (xo, yo)):
            raise StyleError(f"{path}.xoffset", "offsets must be numbers")
        return MarkerSymbol(color=parse_color(obj.get("color"), f"{path}.color"),
                            size=_number(obj, "size", path, 8.0), style=style,
                            angle=float(angle), xoffset=float(xo), yoffset=float(yo),
                            outline=_parse_outline(obj.get("outline"), f"{path}.outline"))
    if kind in ("esriPMS", "esriPFS"):
        image, digest = _picture(obj, path)
        w = _number(obj, "width", path, float(image.shape[1]) * 0.75)
        h = _number(obj, "height", path, float(image.shape[0]) * 0.75)
        xo, yo = _offsets(obj, path)
        if kind == "esriPMS":
            angle = obj.get("angle", 0) or 0
            if isinstance(angle, bool) or not isinstance(angle, int | float):
                raise StyleError(f"{path}.angle", "must be a number")
            return PictureMarkerSymbol(image=image, width=w, height=h, angle=float(angle),
                                       xoffset=xo, yoffset=yo, digest=digest)
        xs, ys = _number(obj, "xscale", path, 1.0), _number(obj, "yscale", path, 1.0)
        if xs <= 0 or ys <= 0 or w <= 0 or h <= 0:
            raise StyleError(f"{path}.xscale", "picture fill tiles need a positive size")
        return PictureFillSymbol(image=image, width=w, height=h, xscale=xs, yscale=ys,
                                 xoffset=xo, yoffset=yo, digest=digest,
                                 outline=_parse_outline(obj.get("outline"), f"{path}.outline"))
    raise StyleError(f"{path}.type", f"unsupported symbol type {kind!r} "
                                     "(supported: esriSFS, esriSLS, esriSMS, esriPMS, esriPFS)")


def _parse_outline(obj: Any, path: str) -> LineSymbol | None:
    if obj is None:
        return None
    sym = parse_symbol({"type": "esriSLS", **obj} if isinstance(obj, Mapping) else obj, path)
    assert isinstance(sym, LineSymbol)
    return sym


@dataclass(frozen=True)
class RendererClass:
    """One legend entry: a symbol with its label and the values it stands for."""

    symbol: Symbol
    label: str = ""
    description: str = ""
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class VisualVariable:
    """One of a renderer's ``visualVariables``: ``colorInfo``, ``sizeInfo``, ``opacityInfo``
    or ``rotationInfo`` over ``field`` (divided by ``normalization``), as stops ``values`` ->
    ``outputs`` (colours, sizes in points or opacities 0..1), linear between stops."""

    type: str
    field: str
    normalization: str | None = None
    values: tuple[float, ...] = ()
    outputs: tuple = ()
    rotation_type: str = "geographic"
    target: str = ""

    def data(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        v = np.asarray(columns[self.field], dtype=float)
        if self.normalization:
            with np.errstate(all="ignore"):
                d = np.asarray(columns[self.normalization], dtype=float)
                v = np.where(d != 0, v / d, np.nan)
        return v

    def apply(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per feature: (n, 4) colours, (n,) sizes, opacities or counter-clockwise degrees;
        NaN where the value is missing (the symbol's own value applies)."""
        v = self.data(columns)
        if self.type == "rotationInfo":
            cw = (90.0 - v) if self.rotation_type == "arithmetic" else v
            return -cw
        xs = np.asarray(self.values)
        if self.type == "colorInfo":
            cols = np.asarray(self.outputs, dtype=float)
            out = np.column_stack([np.interp(v, xs, cols[:, c]) for c in range(4)])
            out[~np.isfinite(v)] = np.nan
            return out
        out = np.interp(v, xs, np.asarray(self.outputs, dtype=float))
        out[~np.isfinite(v)] = np.nan
        return out


VISUAL_TYPES = ("colorInfo", "sizeInfo", "opacityInfo", "rotationInfo")


def _num_value(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        raise StyleError(path, "must be a number")
    return float(v)


def parse_visual_variables(value: Any, path: str, resolve: Any) -> tuple[VisualVariable, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise StyleError(path, "must be a list")
    out = []
    for i, vv in enumerate(value):
        p = f"{path}[{i}]"
        if not isinstance(vv, Mapping):
            raise StyleError(p, "must be an object")
        kind = vv.get("type")
        if kind not in VISUAL_TYPES:
            raise StyleError(f"{p}.type", f"unsupported visual variable {kind!r} "
                                          f"(one of {', '.join(VISUAL_TYPES)})")
        if vv.get("valueExpression") and not vv.get("field"):
            raise StyleError(f"{p}.valueExpression", "Arcade value expressions are not "
                                                     "supported for visual variables; use field")
        fname = resolve(vv.get("field"), f"{p}.field")
        norm = vv.get("normalizationField")
        norm = resolve(norm, f"{p}.normalizationField") if norm else None
        if kind == "rotationInfo":
            rt = vv.get("rotationType", "geographic")
            if rt not in ("geographic", "arithmetic"):
                raise StyleError(f"{p}.rotationType", "must be geographic or arithmetic")
            out.append(VisualVariable(kind, fname, norm, rotation_type=rt))
            continue
        key = {"colorInfo": "color", "sizeInfo": "size", "opacityInfo": "opacity"}[kind]
        stops = vv.get("stops")
        values: list[float] = []
        outputs: list = []
        if stops is not None:
            if not isinstance(stops, Sequence) or isinstance(stops, str) or not stops:
                raise StyleError(f"{p}.stops", "must be a non-empty list")
            for j, st in enumerate(stops):
                sp = f"{p}.stops[{j}]"
                if not isinstance(st, Mapping):
                    raise StyleError(sp, "must be an object")
                values.append(_num_value(st.get("value"), f"{sp}.value"))
                outputs.append(_stop_output(kind, st.get(key), f"{sp}.{key}"))
        elif kind == "colorInfo" and vv.get("colors") is not None:
            colors = vv["colors"]
            lo = _num_value(vv.get("minDataValue"), f"{p}.minDataValue")
            hi = _num_value(vv.get("maxDataValue"), f"{p}.maxDataValue")
            if not isinstance(colors, list) or len(colors) < 2:
                raise StyleError(f"{p}.colors", "must list at least two colours")
            values = list(np.linspace(lo, hi, len(colors)))
            outputs = [_stop_output(kind, c, f"{p}.colors[{j}]") for j, c in enumerate(colors)]
        elif kind in ("sizeInfo", "opacityInfo"):
            lo = _num_value(vv.get("minDataValue"), f"{p}.minDataValue")
            hi = _num_value(vv.get("maxDataValue"), f"{p}.maxDataValue")
            a, b = (("minSize", "maxSize") if kind == "sizeInfo"
                    else ("minOpacity", "maxOpacity"))
            if kind == "opacityInfo" and vv.get("opacityValues") is not None:
                ov = vv["opacityValues"]
                if not isinstance(ov, list) or len(ov) != 2:
                    raise StyleError(f"{p}.opacityValues", "must be [min, max]")
                outputs = [_stop_output(kind, ov[0], f"{p}.opacityValues[0]"),
                           _stop_output(kind, ov[1], f"{p}.opacityValues[1]")]
            else:
                outputs = [_stop_output(kind, vv.get(a), f"{p}.{a}"),
                           _stop_output(kind, vv.get(b), f"{p}.{b}")]
            values = [lo, hi]
        else:
            raise StyleError(f"{p}.stops", "needs stops (or minDataValue/maxDataValue)")
        if any(b < a for a, b in zip(values, values[1:], strict=False)):
            raise StyleError(f"{p}.stops", "stop values must be ascending")
        target = str(vv.get("target") or "")
        out.append(VisualVariable(kind, fname, norm, tuple(values), tuple(outputs),
                                  target=target))
    return tuple(out)


def _stop_output(kind: str, v: Any, path: str) -> Any:
    if kind == "colorInfo":
        c = parse_color(v, path)
        if c is None:
            raise StyleError(path, "needs a colour")
        return c
    if isinstance(v, Mapping):
        raise StyleError(path, "scale-dependent sizes are not supported; give points")
    x = _num_value(v, path)
    if kind == "opacityInfo" and not 0 <= x <= 1:
        raise StyleError(path, "opacity must be between 0 and 1")
    if x < 0:
        raise StyleError(path, "must not be negative")
    return x


@dataclass(frozen=True)
class Renderer:
    """A parsed renderer. ``classes[i]`` is drawn for features whose class index is ``i``;
    ``default`` (if any) is the last entry of :meth:`all_classes`."""

    type: str
    classes: tuple[RendererClass, ...]
    default: RendererClass | None = None
    fields: tuple[str, ...] = ()
    field_delimiter: str = ","
    breaks: tuple[float, ...] = ()  # classBreaks upper bounds, ascending
    min_value: float = float("-inf")
    unique_values: Mapping[str, int] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    visual: tuple[VisualVariable, ...] = ()

    @property
    def all_fields(self) -> tuple[str, ...]:
        """Every field drawing reads: the classification's and the visual variables'."""
        names = list(self.fields)
        for vv in self.visual:
            for f in (vv.field, vv.normalization):
                if f and f not in names:
                    names.append(f)
        return tuple(names)

    @property
    def all_classes(self) -> tuple[RendererClass, ...]:
        return self.classes + ((self.default,) if self.default else ())

    def to_json(self) -> dict:
        return dict(self.source)

    def classify(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """Index into :attr:`all_classes` for each of ``n`` features; -1 means not drawn."""
        if self.type == "simple":
            return np.zeros(n, dtype=np.int64)
        default_idx = len(self.classes) if self.default else -1
        if self.type == "uniqueValue":
            keys = _unique_keys(columns, self.fields, self.field_delimiter, n)
            lut = self.unique_values
            return np.fromiter((lut.get(k, default_idx) for k in keys), dtype=np.int64, count=n)
        # classBreaks: value in (break[i-1], break[i]] -> class i; first class includes minValue.
        vals = np.asarray(columns[self.fields[0]], dtype=float)
        idx = np.searchsorted(np.asarray(self.breaks), vals, side="left").astype(np.int64)
        bad = ~np.isfinite(vals) | (vals < self.min_value) | (idx >= len(self.breaks))
        idx[bad] = default_idx
        return idx


def _unique_keys(columns: Mapping[str, np.ndarray], fields: Sequence[str], delim: str,
                 n: int) -> list[str]:
    parts = [[_value_key(v) for v in columns[f]] for f in fields]
    if len(parts) == 1:
        return parts[0]
    return [delim.join(p[i] for p in parts) for i in range(n)]


def _value_key(v: Any) -> str:
    """How a field value compares against ``uniqueValueInfos[].value`` (which is a string)."""
    if v is None:
        return "<Null>"
    if isinstance(v, float | np.floating):
        if np.isnan(v):
            return "<Null>"
        if float(v).is_integer():
            return str(int(v))
    return str(v)


def parse_renderer(obj: Any, path: str, field_names: Sequence[str]) -> Renderer:
    """Parse renderer JSON; ``field_names`` are the layer's real fields (case-insensitive)."""
    if not isinstance(obj, Mapping):
        raise StyleError(path, "renderer must be a JSON object")
    kind = obj.get("type")
    canon = {f.lower(): f for f in field_names}

    def resolve(key: str) -> str:
        return resolve_name(obj.get(key), f"{path}.{key}")

    def resolve_name(name: Any, where: str) -> str:
        if not isinstance(name, str) or name.lower() not in canon:
            raise StyleError(where, f"unknown field {name!r}")
        return canon[name.lower()]

    renderer = _parse_renderer(obj, path, kind, resolve)
    visual = parse_visual_variables(obj.get("visualVariables"), f"{path}.visualVariables",
                                    resolve_name)
    return dataclasses.replace(renderer, visual=visual) if visual else renderer


def _parse_renderer(obj: Mapping, path: str, kind: Any, resolve: Any) -> Renderer:
    """The renderer itself (without visual variables)."""

    def default_class() -> RendererClass | None:
        if obj.get("defaultSymbol") is None:
            return None
        return RendererClass(symbol=parse_symbol(obj["defaultSymbol"], f"{path}.defaultSymbol"),
                             label=str(obj.get("defaultLabel") or "<all other values>"))

    if kind == "simple":
        sym = parse_symbol(obj.get("symbol"), f"{path}.symbol")
        return Renderer(type="simple", source=obj, classes=(RendererClass(
            symbol=sym, label=str(obj.get("label") or ""),
            description=str(obj.get("description") or "")),))
    if kind == "uniqueValue":
        fields = [resolve("field1")]
        for key in ("field2", "field3"):
            if obj.get(key):
                fields.append(resolve(key))
        infos = obj.get("uniqueValueInfos")
        if not isinstance(infos, Sequence) or isinstance(infos, str):
            raise StyleError(f"{path}.uniqueValueInfos", "must be a list")
        classes, lut = [], {}
        for i, info in enumerate(infos):
            p = f"{path}.uniqueValueInfos[{i}]"
            if not isinstance(info, Mapping) or "value" not in info:
                raise StyleError(p, "needs a value and a symbol")
            value = str(info["value"])
            lut.setdefault(value, len(classes))
            classes.append(RendererClass(symbol=parse_symbol(info.get("symbol"), f"{p}.symbol"),
                                         label=str(info.get("label", value)),
                                         description=str(info.get("description") or ""),
                                         values=(value,)))
        return Renderer(type="uniqueValue", classes=tuple(classes), default=default_class(),
                        fields=tuple(fields), unique_values=lut, source=obj,
                        field_delimiter=str(obj.get("fieldDelimiter") or ","))
    if kind == "classBreaks":
        fname = resolve("field")
        infos = obj.get("classBreakInfos")
        if not isinstance(infos, Sequence) or isinstance(infos, str) or not infos:
            raise StyleError(f"{path}.classBreakInfos", "must be a non-empty list")
        classes, breaks = [], []
        for i, info in enumerate(infos):
            p = f"{path}.classBreakInfos[{i}]"
            if not isinstance(info, Mapping):
                raise StyleError(p, "must be an object")
            mx = info.get("classMaxValue")
            if isinstance(mx, bool) or not isinstance(mx, int | float):
                raise StyleError(f"{p}.classMaxValue", "must be a number")
            if breaks and mx < breaks[-1]:
                raise StyleError(f"{p}.classMaxValue", "class breaks must be ascending")
            breaks.append(float(mx))
            classes.append(RendererClass(symbol=parse_symbol(info.get("symbol"), f"{p}.symbol"),
                                         label=str(info.get("label", "")),
                                         description=str(info.get("description") or ""),
                                         values=(str(mx),)))
        mn = obj.get("minValue")
        if mn is not None and (isinstance(mn, bool) or not isinstance(mn, int | float)):
            raise StyleError(f"{path}.minValue", "must be a number")
        return Renderer(type="classBreaks", classes=tuple(classes), default=default_class(),
                        fields=(fname,), breaks=tuple(breaks), source=obj,
                        min_value=float(mn) if mn is not None else float("-inf"))
    raise StyleError(f"{path}.type", f"unsupported renderer type {kind!r} "
                                     "(supported: simple, uniqueValue, classBreaks)")
