"""What WMS and WMTS share: OGC exceptions, CRS codes and axis order, ISO 8601 times, XML.

Nothing here knows Flask or a service; ``views.py`` turns :class:`OgcError` into the exception
document of the protocol and version asked for.
"""

from __future__ import annotations

import calendar
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from mapserver.errors import InvalidParameter
from mapserver.geo.sr import SpatialRef, from_wkid

XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


class OgcError(Exception):
    """An OGC exception: ``code`` (``InvalidCRS``, ``LayerNotDefined``, … or None),
    ``locator`` (the parameter at fault) and, for WMTS, the HTTP status to answer with."""

    def __init__(self, message: str, code: str | None = None, locator: str | None = None,
                 status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.locator = locator
        self.status = status


def missing(name: str) -> OgcError:
    return OgcError(f"Missing parameter: {name}", "MissingParameterValue", name)


def invalid(name: str, problem: str, code: str = "InvalidParameterValue") -> OgcError:
    return OgcError(f"Invalid {name}: {problem}", code, name)


# --- XML -------------------------------------------------------------------------------------

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    """``value`` without the characters XML 1.0 cannot carry (control characters that a
    request may echo into an error message), each replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", value)


@dataclass
class El:
    """One XML element with literal (prefixed) names; namespaces are plain ``xmlns`` attrs."""

    tag: str
    attrs: dict[str, str]
    children: list[El]
    text: str | None = None

    def write(self, out: list[str], indent: str = "") -> None:
        attrs = "".join(f" {k}={quoteattr(xml_text(v))}" for k, v in self.attrs.items())
        if not self.children and self.text is None:
            out.append(f"{indent}<{self.tag}{attrs}/>\n")
        elif not self.children:
            out.append(f"{indent}<{self.tag}{attrs}>{escape(xml_text(self.text))}</{self.tag}>\n")
        else:
            out.append(f"{indent}<{self.tag}{attrs}>\n")
            for child in self.children:
                child.write(out, indent + "  ")
            out.append(f"{indent}</{self.tag}>\n")


def el(tag: str, *children: object, text: object = None, **attrs: object) -> El:
    """``el("Layer", el("Name", text="0"), queryable="1")``; attribute names with ``:`` or
    reserved words go through ``attrs`` spelled ``xlink__href`` (``__`` becomes ``:``)."""
    kids: list[El] = []
    for c in children:
        if c is None:
            continue
        if isinstance(c, El):
            kids.append(c)
        else:
            kids.extend(k for k in c if k is not None)  # type: ignore[union-attr]
    a = {k.replace("__", ":").rstrip("_"): str(v) for k, v in attrs.items() if v is not None}
    return El(tag, a, kids, None if text is None else str(text))


def xml_document(root: El, doctype: str | None = None) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    if doctype:
        out.append(doctype + "\n")
    root.write(out)
    return "".join(out).encode("utf-8")


def number(v: float) -> str:
    """A coordinate or scale: integers without ``.0``, else the shortest exact repr."""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


# --- CRS -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Crs:
    """A requested CRS: its code as the client wrote it, the SR, and whether the request's
    coordinates come northing first (WMS 1.3.0 and WMTS follow the EPSG axis order)."""

    code: str
    sr: SpatialRef
    lat_first: bool


_EPSG = re.compile(r"(?:EPSG|ESRI):(\d{1,9})|urn:ogc:def:crs:EPSG:[\d.]*:(\d{1,9})"
                   r"|https?://www\.opengis\.net/def/crs/EPSG/0/(\d{1,9})", re.I)


def northing_first(sr: SpatialRef) -> bool:
    """True when the CRS's first axis points north or south (EPSG:4326 is lat, lon)."""
    try:
        axes = sr.crs.axis_info
        return bool(axes) and axes[0].direction.lower() in ("north", "south")
    except Exception:  # noqa: BLE001 - an exotic CRS without axis info reads x first
        return False


def parse_crs(value: str, name: str, axis_order: bool) -> Crs:
    """``CRS:84``, ``EPSG:n`` (Esri Web Mercator aliases too) or an OGC URN / URI.

    ``axis_order`` True (WMS 1.3.0, WMTS) honours the EPSG axis order; False (WMS 1.1.1)
    always reads x, y. An unknown code raises ``InvalidCRS`` / ``InvalidSRS``."""
    code = value.strip()
    bad_code = "InvalidCRS" if name == "CRS" else "InvalidSRS"
    upper = code.upper()
    if upper in ("CRS:84", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84",
                 "URN:OGC:DEF:CRS:OGC:2:84", "HTTP://WWW.OPENGIS.NET/DEF/CRS/OGC/1.3/CRS84"):
        return Crs("CRS:84", from_wkid(4326), False)
    m = _EPSG.fullmatch(code)
    if m is None:
        raise invalid(name, f"'{code[:60]}' is not a supported CRS (use EPSG:<code> or CRS:84)",
                      bad_code)
    wkid = int(next(g for g in m.groups() if g))
    try:
        sr = from_wkid(wkid)
    except InvalidParameter:
        raise invalid(name, f"unknown CRS '{code[:60]}'", bad_code) from None
    return Crs(upper if upper.startswith(("EPSG:", "ESRI:")) else f"EPSG:{wkid}", sr,
               axis_order and northing_first(sr))


def crs_code(sr: SpatialRef) -> str | None:
    """``EPSG:n`` for an SR with an EPSG code, else None (not advertised)."""
    if sr.latest_wkid is not None and sr.key.startswith("EPSG:"):
        return f"EPSG:{sr.latest_wkid}"
    return None


def parse_bbox(value: str | None, name: str = "BBOX") -> tuple[float, float, float, float]:
    if value is None:
        raise missing(name)
    parts = value.split(",")
    if len(parts) not in (4, 5):  # WMS 1.3.0 / WFS style bbox may end with its CRS
        raise invalid(name, "must be minx,miny,maxx,maxy")
    try:
        nums = [float(p) for p in parts[:4]]
    except ValueError:
        raise invalid(name, "must be four numbers") from None
    if not all(math.isfinite(n) for n in nums):
        raise invalid(name, "must be four finite numbers")
    if not (nums[0] < nums[2] and nums[1] < nums[3]):
        raise invalid(name, "minimum values must be less than the maximum values")
    return nums[0], nums[1], nums[2], nums[3]


def parse_positive_int(value: str | None, name: str, most: int) -> int:
    if value is None:
        raise missing(name)
    try:
        n = int(value.strip())
    except ValueError:
        raise invalid(name, f"'{value[:20]}' is not an integer") from None
    if not 1 <= n <= most:
        raise invalid(name, f"must be between 1 and {most}")
    return n


# --- ISO 8601 times --------------------------------------------------------------------------

_ISO = re.compile(r"(-?\d{4})(?:-(\d\d)(?:-(\d\d)(?:[T ](\d\d)(?::(\d\d)(?::(\d\d)(\.\d+)?)?)?"
                  r")?)?)?(Z|[+-]\d\d:?\d\d)?")


def _epoch_ms(y: int, mo: int = 1, d: int = 1, h: int = 0, mi: int = 0, s: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1000


def iso_range(text: str, name: str = "TIME") -> tuple[int, int]:
    """One ISO 8601 value as the epoch-ms interval it names: ``2007`` is the whole year,
    ``2007-03`` the month, a full date-time one instant (WMS 1.3.0 Annex D)."""
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise invalid(name, f"'{text[:40]}' is not an ISO 8601 date or time",
                      "InvalidDimensionValue")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        parts = [int(y)] + [int(p) for p in (mo, d, h, mi, s) if p is not None]
        start = _epoch_ms(*parts)
        datetime(*parts[:3] + [1] * (3 - len(parts[:3])))  # validates month and day
    except (ValueError, OverflowError):
        raise invalid(name, f"'{text[:40]}' is not a valid date", "InvalidDimensionValue"
                      ) from None
    offset = 0
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 60 + int(digits[2:])) * 60_000
    start -= offset
    if frac:
        start += int(round(float(frac) * 1000))
        return start, start
    n = len(parts)
    if n == 6:
        return start, start
    nxt = list(parts)
    if n == 1:
        nxt[0] += 1
    elif n == 2:
        nxt[0], nxt[1] = (nxt[0] + 1, 1) if nxt[1] == 12 else (nxt[0], nxt[1] + 1)
    else:
        step = {3: 86_400_000, 4: 3_600_000, 5: 60_000}[n]
        return start, start + step - 1
    return start, _epoch_ms(*nxt) - offset - 1


def parse_time(value: str | None) -> tuple[int | None, int | None] | None:
    """WMS ``TIME``: an instant or reduced-precision value, ``start/end`` (``start/end/period``
    reads as the range) or ``current``; a list of values is refused."""
    if value is None:
        return None
    text = value.strip()
    if "," in text:
        raise invalid("TIME", "lists of times are not supported; give one value or "
                      "start/end", "InvalidDimensionValue")
    if text.lower() in ("current", "now"):
        now = int(time.time() * 1000)
        return (now, now)
    if "/" in text:
        parts = text.split("/")
        if len(parts) not in (2, 3):
            raise invalid("TIME", "an interval is start/end[/period]", "InvalidDimensionValue")
        start = None if parts[0] in ("", "..") else iso_range(parts[0])[0]
        end = None if parts[1] in ("", "..") else iso_range(parts[1])[1]
        if start is not None and end is not None and start > end:
            raise invalid("TIME", "start is after end", "InvalidDimensionValue")
        return (start, end)
    return iso_range(text)


def iso_time(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000.0, tz=UTC)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


_DURATIONS = {"esriTimeUnitsYears": ("P", 1, "Y"), "esriTimeUnitsDecades": ("P", 10, "Y"),
              "esriTimeUnitsCenturies": ("P", 100, "Y"), "esriTimeUnitsMonths": ("P", 1, "M"),
              "esriTimeUnitsWeeks": ("P", 7, "D"), "esriTimeUnitsDays": ("P", 1, "D"),
              "esriTimeUnitsHours": ("PT", 1, "H"), "esriTimeUnitsMinutes": ("PT", 1, "M"),
              "esriTimeUnitsSeconds": ("PT", 1, "S"),
              "esriTimeUnitsMilliseconds": ("PT", 0.001, "S")}


def iso_duration(interval: float, units: str) -> str | None:
    spec = _DURATIONS.get(units)
    if spec is None or not interval > 0:
        return None
    prefix, k, unit = spec
    return f"{prefix}{number(interval * k)}{unit}"
