"""ArcGIS renderer and symbol JSON, parsed once into typed values.

Service definitions (and later ``dynamicLayers``) carry Esri renderer JSON: ``simple``,
``uniqueValue`` and ``classBreaks`` renderers over ``esriSFS``/``esriSLS``/``esriSMS`` symbols.
Parsing validates every field up front (errors say which field) so drawing never meets a
malformed symbol. Sizes and widths stay in points; the vector renderer turns them into pixels
through the grid's dpi (pixels = points x dpi / 72).
"""

from __future__ import annotations

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


Symbol = LineSymbol | FillSymbol | MarkerSymbol


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
    raise StyleError(f"{path}.type", f"unsupported symbol type {kind!r} "
                                     "(supported: esriSFS, esriSLS, esriSMS)")


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
        name = obj.get(key)
        if not isinstance(name, str) or name.lower() not in canon:
            raise StyleError(f"{path}.{key}", f"unknown field {name!r}")
        return canon[name.lower()]

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
