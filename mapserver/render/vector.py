"""Vector layers drawn with matplotlib's object API onto an Axes in pixel space.

One collection per renderer class (collections take per-item colours, but hatches, markers and
dash patterns are per collection). The figure's dpi is the grid's dpi, so symbol sizes given in
points come out as points x dpi / 72 pixels, as ArcGIS specifies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.markers import MarkerStyle
from matplotlib.path import Path
from matplotlib.transforms import IdentityTransform

from mapserver.catalog.model import LabelClass, Layer
from mapserver.geo.grid import Grid
from mapserver.geo.project import COMPUTE, cuts_geometry, points_to_pixels, to_pixel_parts
from mapserver.render.geometry import feature_paths, pixel_paths
from mapserver.render.labels import outside_window, placement
from mapserver.render.style import (
    FillSymbol,
    LineSymbol,
    MarkerSymbol,
    PictureFillSymbol,
    PictureMarkerSymbol,
    Renderer,
)

HATCHES = {"esriSFSHorizontal": "---", "esriSFSVertical": "|||", "esriSFSCross": "+++",
           "esriSFSDiagonalCross": "xxx", "esriSFSForwardDiagonal": "///",
           "esriSFSBackwardDiagonal": "\\\\\\"}
DASHES = {"esriSLSSolid": "solid", "esriSLSInsideFrame": "solid",
          "esriSLSDash": (0, (4, 3)), "esriSLSShortDash": (0, (3, 1)),
          "esriSLSLongDash": (0, (8, 3)), "esriSLSDot": (0, (1, 3)),
          "esriSLSShortDot": (0, (1, 1)), "esriSLSDashDot": (0, (4, 3, 1, 3)),
          "esriSLSShortDashDot": (0, (3, 1, 1, 1)), "esriSLSLongDashDot": (0, (8, 3, 1, 3)),
          "esriSLSDashDotDot": (0, (4, 3, 1, 3, 1, 3))}
MARKERS = {"esriSMSCircle": "o", "esriSMSSquare": "s", "esriSMSDiamond": "D",
           "esriSMSCross": "+", "esriSMSX": "x", "esriSMSTriangle": "^"}
NONE = (0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class LabelSpec:
    """A label to place in the final label pass: pixel anchor, text and its class."""

    x: float
    y: float
    text: str
    label: LabelClass
    ha: str = "center"
    va: str = "center"
    rotation: float = 0.0  # degrees, counter-clockwise on screen


def new_axes(grid: Grid, figure: Figure | None = None) -> tuple[Figure, Axes]:
    """A figure exactly ``width x height`` pixels at the grid's dpi, axes in pixel units."""
    fig = figure or Figure(figsize=(grid.width / grid.dpi, grid.height / grid.dpi), dpi=grid.dpi)
    fig.patch.set_alpha(0.0)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, grid.width)
    ax.set_ylim(grid.height, 0)
    ax.patch.set_alpha(0.0)
    return fig, ax


@dataclass(frozen=True)
class Visual:
    """A renderer's visual variables evaluated for the drawn features: per feature colour
    (n, 4), size or width (points), opacity (0..1) and counter-clockwise rotation (degrees);
    NaN (or None for a variable the renderer lacks) where the symbol's own value holds."""

    color: np.ndarray | None = None
    size: np.ndarray | None = None
    opacity: np.ndarray | None = None
    rotation: np.ndarray | None = None
    size_target: str = ""

    @classmethod
    def of(cls, renderer: Renderer, cols: dict, scale: float = 1.0) -> Visual | None:
        if not renderer.visual:
            return None
        out: dict = {}
        for vv in renderer.visual:
            key = {"colorInfo": "color", "sizeInfo": "size", "opacityInfo": "opacity",
                   "rotationInfo": "rotation"}[vv.type]
            out[key] = vv.apply(cols)
            if key == "size":
                out[key] = out[key] * scale
                out["size_target"] = vv.target
        return cls(**out)

    def take(self, which: np.ndarray) -> Visual:
        return Visual(*(None if a is None else a[which]
                        for a in (self.color, self.size, self.opacity, self.rotation)),
                      size_target=self.size_target)


def scale_symbol(symbol: object, k: float) -> object:
    """``symbol`` with every size in points multiplied by ``k`` (``referenceScale``)."""
    if k == 1.0:
        return symbol
    rep = dataclasses.replace
    if isinstance(symbol, LineSymbol):
        return rep(symbol, width=symbol.width * k)
    if isinstance(symbol, FillSymbol | PictureFillSymbol):
        extra = {"width": symbol.width * k, "height": symbol.height * k} \
            if isinstance(symbol, PictureFillSymbol) else {}
        return rep(symbol, outline=scale_symbol(symbol.outline, k)
                   if symbol.outline is not None else None, **extra)
    if isinstance(symbol, MarkerSymbol):
        return rep(symbol, size=symbol.size * k, xoffset=symbol.xoffset * k,
                   yoffset=symbol.yoffset * k, outline=scale_symbol(symbol.outline, k)
                   if symbol.outline is not None else None)
    if isinstance(symbol, PictureMarkerSymbol):
        return rep(symbol, width=symbol.width * k, height=symbol.height * k,
                   xoffset=symbol.xoffset * k, yoffset=symbol.yoffset * k)
    return symbol


def symbol_scale_for(layer: Layer, grid: Grid) -> float:
    """``referenceScale``: symbols drawn at referenceScale / scale of their size when the
    layer scales its symbols (``scaleSymbols``), else 1."""
    ref = getattr(layer, "reference_scale", 0.0)
    if not ref or not getattr(layer, "scale_symbols", True) or not grid.scale > 0:
        return 1.0
    return float(ref / grid.scale)


def draw_features(ax: Axes, layer: Layer, idx: np.ndarray, grid: Grid,
                  renderer: Renderer | None = None, alpha: float = 1.0,
                  datum: tuple = (), area: object = COMPUTE) -> None:
    """Draw the features ``idx`` of a vector layer onto ``ax`` (geometry reaches the grid
    through :mod:`mapserver.geo.project`, with the request's datum transformations;
    ``area``: the view's area in the layer's SR when the planner already has it)."""
    symbol_scale = symbol_scale_for(layer, grid)
    table = layer.table
    assert table is not None
    renderer = renderer or layer.renderer
    assert renderer is not None
    if len(idx) == 0:
        return
    cols = {f: table.columns[f][idx] for f in renderer.all_fields}
    classes = renderer.classify(cols, len(idx))
    all_classes = renderer.all_classes
    vis = Visual.of(renderer, cols, symbol_scale)
    geoms = table.geometry[idx]
    gtype = table.geometry_type
    if gtype == "esriGeometryPoint" or gtype == "esriGeometryMultipoint":
        pix, owner = points_to_pixels(geoms, table.sr, grid, datum)
        inside = ((pix[:, 0] > -64) & (pix[:, 0] < grid.width + 64) & (pix[:, 1] > -64)
                  & (pix[:, 1] < grid.height + 64))
        for ci, cls in enumerate(all_classes):
            sel = inside & (classes[owner] == ci)
            if not sel.any():
                continue
            sub = vis.take(owner[sel]) if vis is not None else None
            if isinstance(cls.symbol, MarkerSymbol):
                _draw_markers(ax, pix[sel], scale_symbol(cls.symbol, symbol_scale), grid,
                              alpha, sub)
            elif isinstance(cls.symbol, PictureMarkerSymbol):
                _draw_pictures(ax, pix[sel], scale_symbol(cls.symbol, symbol_scale), grid,
                               alpha, sub)
        return
    closed = gtype == "esriGeometryPolygon"
    paths = pixel_paths(table.geometry, np.asarray(idx), table.sr, grid, datum, area=area,
                        closed=closed)
    outlines = None
    if closed and cuts_geometry(table.sr, grid):
        # polygons cut at the map's antimeridian: stroke the rings themselves, not the cut
        lines, line_owner = to_pixel_parts(shapely.boundary(geoms), table.sr, grid, datum,
                                           area=area)
        outlines = feature_paths(lines, line_owner, len(idx), closed=False)
    for ci, cls in enumerate(all_classes):
        which = [i for i in np.flatnonzero(classes == ci) if len(paths[i].vertices)]
        if which:
            _draw_paths(ax, [paths[i] for i in which], scale_symbol(cls.symbol, symbol_scale),
                        closed, alpha,
                        [outlines[i] for i in which] if outlines is not None else None,
                        vis.take(np.asarray(which)) if vis is not None else None, grid)


def _rgba(color: tuple | None, alpha: float) -> tuple:
    if color is None:
        return NONE
    return (color[0], color[1], color[2], color[3] * alpha)


def _per_item(base: tuple, alpha: float, vis: Visual | None, use_color: bool = True):
    """A collection's colours: the symbol's, or per item from the visual variables."""
    if vis is None or (vis.opacity is None and (vis.color is None or not use_color)):
        return base
    n = len(next(a for a in (vis.color, vis.opacity) if a is not None))
    out = np.tile(np.asarray(base, dtype=float), (n, 1))
    if use_color and vis.color is not None and base != NONE:
        ok = np.isfinite(vis.color[:, 0])
        out[ok] = vis.color[ok]
        out[ok, 3] *= alpha
    if vis.opacity is not None:
        ok = np.isfinite(vis.opacity)
        out[ok, 3] *= vis.opacity[ok]
    return out


def _widths(width: float, vis: Visual | None, applies: bool):
    if vis is None or vis.size is None or not applies:
        return width
    return np.where(np.isfinite(vis.size), vis.size, width)


def _draw_paths(ax: Axes, paths: list[Path], symbol: object, closed: bool, alpha: float,
               outlines: list[Path] | None = None, vis: Visual | None = None,
               grid: Grid | None = None) -> None:
    """One class's paths. ``outlines``: the polygons' boundaries as lines, stroked instead of
    the fill paths' edges (which include the cuts the projection made). ``vis``: per path
    visual-variable values."""
    if isinstance(symbol, PictureFillSymbol) and closed:
        if grid is not None:
            _draw_picture_fill(ax, paths, symbol, grid, alpha)
        if symbol.outline is not None and symbol.outline.visible:
            _draw_paths(ax, outlines if outlines is not None else paths, symbol.outline,
                        False, alpha, None, vis)
        return
    if isinstance(symbol, FillSymbol) and closed and outlines is not None:
        fill_only = dataclasses.replace(symbol, outline=None)
        _draw_paths(ax, paths, fill_only, True, alpha, None, vis)
        if symbol.outline is not None and symbol.outline.visible:
            outline_vis = dataclasses.replace(vis, color=None) if vis is not None else None
            _draw_paths(ax, outlines, symbol.outline, False, alpha, None,
                        outline_vis if vis is None or vis.size_target == "outline"
                        else dataclasses.replace(outline_vis, size=None))
        return
    if isinstance(symbol, FillSymbol) and closed:
        face = symbol.color if symbol.style not in ("esriSFSNull", "esriSFSHollow") else None
        hatch = HATCHES.get(symbol.style)
        line = symbol.outline
        edge = _rgba(line.color, alpha) if line is not None and line.visible else NONE
        width = line.width if line is not None and line.visible else 0.0
        edge = _per_item(edge, alpha, vis, use_color=False) if edge != NONE else edge
        width = _widths(width, vis, vis is not None and vis.size_target == "outline")
        if hatch:
            # hatch lines take the symbol colour; the face stays empty as in ArcGIS
            coll = PathCollection(paths, facecolors=NONE, edgecolors=_rgba(face, alpha),
                                  linewidths=0.0, hatch=hatch)
            ax.add_collection(coll, autolim=False)
            face = None
        coll = PathCollection(paths, facecolors=_per_item(_rgba(face, alpha), alpha, vis),
                              edgecolors=edge, linewidths=width,
                              linestyles=DASHES.get(line.style if line else "", "solid"),
                              antialiaseds=True)
        coll.set_joinstyle("round")
        ax.add_collection(coll, autolim=False)
        return
    line = symbol if isinstance(symbol, LineSymbol) else getattr(symbol, "outline", None)
    if line is None or not line.visible:
        return
    coll = PathCollection(paths, facecolors=NONE,
                          edgecolors=_per_item(_rgba(line.color, alpha), alpha, vis),
                          linewidths=_widths(line.width, vis, True),
                          linestyles=DASHES.get(line.style, "solid"))
    coll.set_capstyle("round")
    coll.set_joinstyle("round")
    ax.add_collection(coll, autolim=False)


def _draw_markers(ax: Axes, pix: np.ndarray, sym: MarkerSymbol, grid: Grid,
                  alpha: float, vis: Visual | None = None) -> None:
    """One marker centred exactly on each (col, row) of ``pix``, ``size`` points (size x dpi / 72
    pixels) across. Pixel (c, r) spans [c, c + 1) x [r, r + 1): (10.5, 20.5) is the centre of
    pixel (10, 20). ``vis``: per marker colour, size, opacity and rotation."""
    if vis is not None and vis.rotation is not None:
        turn = np.where(np.isfinite(vis.rotation), vis.rotation, 0.0)
        turn = np.round(turn % 360.0, 1)
        for a in np.unique(turn):
            sel = turn == a
            _draw_markers(ax, pix[sel], dataclasses.replace(sym, angle=sym.angle + float(a)),
                          grid, alpha, dataclasses.replace(vis.take(sel), rotation=None))
        return
    marker = MarkerStyle(MARKERS[sym.style])
    if sym.angle:
        marker = marker.rotated(deg=sym.angle)
    if sym.xoffset or sym.yoffset:
        k = grid.dpi / 72.0
        pix = pix + np.array([sym.xoffset * k, -sym.yoffset * k])
    outline = sym.outline
    edge = _rgba(outline.color, alpha) if outline is not None and outline.visible else NONE
    width = outline.width if outline is not None and outline.visible else 0.0
    face = _per_item(_rgba(sym.color, alpha), alpha, vis)
    edge = _per_item(edge, alpha, vis, use_color=False) if edge != NONE else edge
    if sym.style in ("esriSMSCross", "esriSMSX"):  # line-only markers take the symbol colour
        edge, width = face, max(width, 1.0)
    sizes = np.atleast_1d(np.square(_widths(sym.size, vis, True)))
    ok = np.isfinite(pix).all(axis=1)
    if not ok.all():  # what scatter(plotnonfinite=False) masks
        pix = pix[ok]
        face, edge, sizes = (a[ok] if isinstance(a, np.ndarray) and len(a) == len(ok) else a
                             for a in (face, edge, sizes))
    # The collection ax.scatter would build (marker path in points, sizes in points², offsets
    # in data units), made directly: scatter's argument handling (masked arrays, colour
    # parsing, autoscaling) cost ~4 ms for the 243 cities, more than drawing them.
    coll = PathCollection((marker.get_path().transformed(marker.get_transform()),), sizes,
                          facecolors=face if isinstance(face, np.ndarray) else [face],
                          edgecolors=edge if isinstance(edge, np.ndarray) else [edge],
                          linewidths=width, offsets=pix, offset_transform=ax.transData)
    coll.set_transform(IdentityTransform())
    coll.set_snap(False)
    coll.set_antialiased(EXACT_MARKERS)
    ax.add_collection(coll, autolim=False)


def _draw_pictures(ax: Axes, pix: np.ndarray, sym: PictureMarkerSymbol, grid: Grid,
                   alpha: float, vis: Visual | None = None) -> None:
    """esriPMS: the picture, ``width x height`` points, centred on each point (plus the
    offsets), turned by its angle (and rotationInfo)."""
    from matplotlib.transforms import Affine2D

    k = grid.dpi / 72.0
    img = sym.image
    if len(pix) > PICTURES_ONE_BY_ONE and not sym.angle and (
            vis is None or (vis.rotation is None and vis.size is None)):
        _stamp_pictures(ax, pix, sym, grid, alpha, vis)
        return
    for i, (x, y) in enumerate(pix):
        w, h = sym.width * k, sym.height * k
        if vis is not None and vis.size is not None and np.isfinite(vis.size[i]):
            f = vis.size[i] / max(sym.width, sym.height, 1e-9)
            w, h = w * f, h * f
        cx, cy = x + sym.xoffset * k, y - sym.yoffset * k
        a = alpha
        if vis is not None and vis.opacity is not None and np.isfinite(vis.opacity[i]):
            a *= float(vis.opacity[i])
        angle = sym.angle
        if vis is not None and vis.rotation is not None and np.isfinite(vis.rotation[i]):
            angle += float(vis.rotation[i])
        im = ax.imshow(img, extent=(cx - w / 2, cx + w / 2, cy + h / 2, cy - h / 2),
                       interpolation="bilinear" if w < img.shape[1] else "nearest",
                       alpha=a if a < 1 else None, resample=True)
        if angle:
            # counter-clockwise on screen: the axes' y runs down, so clockwise in data units
            im.set_transform(Affine2D().rotate_deg_around(cx, cy, -angle) + ax.transData)
    ax.set_xlim(0, grid.width)
    ax.set_ylim(grid.height, 0)


PICTURES_ONE_BY_ONE = 32  # more pictures than this (unturned, one size): one stamped image


def _stamp_pictures(ax: Axes, pix: np.ndarray, sym: PictureMarkerSymbol, grid: Grid,
                    alpha: float, vis: Visual | None) -> None:
    """Many equal pictures: resampled once to their pixel size and stamped ("over") into one
    grid-sized image at whole-pixel positions (an image artist per point costs ~4 ms)."""
    from PIL import Image

    k = grid.dpi / 72.0
    w = max(1, int(round(sym.width * k)))
    h = max(1, int(round(sym.height * k)))
    stamp = np.asarray(Image.fromarray(sym.image).resize((w, h), Image.Resampling.BILINEAR))
    canvas = np.zeros((grid.height, grid.width, 4), dtype=np.uint8)
    cx = pix[:, 0] + sym.xoffset * k
    cy = pix[:, 1] - sym.yoffset * k
    for i in range(len(pix)):
        x0, y0 = int(np.floor(cx[i] - w / 2.0 + 0.5)), int(np.floor(cy[i] - h / 2.0 + 0.5))
        a0, b0 = max(0, x0), max(0, y0)
        a1, b1 = min(grid.width, x0 + w), min(grid.height, y0 + h)
        if a0 >= a1 or b0 >= b1:
            continue
        src = stamp[b0 - y0:b1 - y0, a0 - x0:a1 - x0]
        op = alpha
        if vis is not None and vis.opacity is not None and np.isfinite(vis.opacity[i]):
            op *= float(vis.opacity[i])
        canvas[b0:b1, a0:a1] = _over(canvas[b0:b1, a0:a1], src, op)
    ax.imshow(canvas, extent=(0, grid.width, grid.height, 0), interpolation="nearest",
              resample=False)
    ax.set_xlim(0, grid.width)
    ax.set_ylim(grid.height, 0)


def _over(dst: np.ndarray, src: np.ndarray, opacity: float) -> np.ndarray:
    """Straight-alpha ``src`` over ``dst`` (uint8 RGBA)."""
    sa = src[..., 3:4].astype(np.float32) / 255.0 * opacity
    da = dst[..., 3:4].astype(np.float32) / 255.0
    oa = sa + da * (1.0 - sa)
    rgb = src[..., :3] * sa + dst[..., :3] * da * (1.0 - sa)
    np.divide(rgb, oa, out=rgb, where=oa > 0)
    out = np.empty_like(dst)
    out[..., :3] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    out[..., 3:4] = np.clip(oa * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _draw_picture_fill(ax: Axes, paths: list[Path], sym: PictureFillSymbol, grid: Grid,
                       alpha: float) -> None:
    """esriPFS: the picture tiled from the image's top-left corner (plus the offsets), each tile
    ``width x xscale`` by ``height x yscale`` points, clipped to the polygons."""
    from matplotlib.transforms import Bbox
    from PIL import Image

    paths = [p for p in paths if len(p.vertices)]
    if not paths:
        return
    compound = Path.make_compound_path(*paths)
    bb = Bbox.intersection(compound.get_extents(), Bbox.from_bounds(0, 0, grid.width,
                                                                     grid.height))
    if bb is None or bb.width <= 0 or bb.height <= 0:
        return
    k = grid.dpi / 72.0
    tw = max(1, int(round(sym.width * sym.xscale * k)))
    th = max(1, int(round(sym.height * sym.yscale * k)))
    tile = np.asarray(Image.fromarray(sym.image).resize((tw, th), Image.Resampling.BILINEAR))
    x0 = int(np.floor(bb.x0)) - 1
    y0 = int(np.floor(bb.y0)) - 1
    x1, y1 = int(np.ceil(bb.x1)) + 1, int(np.ceil(bb.y1)) + 1
    ox, oy = int(round(sym.xoffset * k)), int(round(-sym.yoffset * k))
    cols = (np.arange(x0, x1) - ox) % tw
    rows = (np.arange(y0, y1) - oy) % th
    tiled = tile[rows[:, None], cols[None, :]]
    im = ax.imshow(tiled, extent=(x0, x1, y1, y0), interpolation="nearest",
                   alpha=alpha if alpha < 1 else None, resample=False)
    im.set_clip_path(compound, ax.transData)
    ax.set_xlim(0, grid.width)
    ax.set_ylim(grid.height, 0)


# ``antialiaseds`` for marker collections: two identical flags. matplotlib draws a collection of
# one path with one colour, width and flag through the renderer's ``draw_markers``, and Agg's
# ``draw_markers`` rasterises the marker once and stamps it centred on the pixel at each position
# rounded to whole pixels: 0 to 1 px (half a pixel on average) right of and below the point, e.g.
# (31.0, 7.6) came out centred on (31.5, 8.5) and (10.5, 20.5) on (11.5, 21.5). Two flags keep
# markers on ``draw_path_collection``, which rasterises each marker at its exact sub-pixel offset.
# ``snap=False`` as well: Agg snaps straight-edged markers (squares) to pixel centres, which
# changes their size.
EXACT_MARKERS = (True, True)


def label_anchors(layer: Layer, idx: np.ndarray, grid: Grid, datum: tuple = (),
                  at: float = 0.5, area: object = COMPUTE
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pixel anchor per labelled feature, from the same projected geometry the map draws:
    a polygon's largest visible part's point on surface, a point itself, and for lines the
    point ``at`` (0..1) along the largest visible part. Returns ((n, 2) pixels, the features'
    indexes, (n,) the line direction there in screen degrees, 0 for points and polygons)."""
    table = layer.table
    assert table is not None
    geoms = table.geometry[idx]
    if table.geometry_type not in ("esriGeometryPolygon", "esriGeometryPolyline"):
        first = shapely.get_geometry(geoms, 0)
        ok = ~shapely.is_empty(first) & ~shapely.is_missing(first)
        pix, owner = points_to_pixels(first[ok], table.sr, grid, datum)
        return pix, idx[ok][owner], np.zeros(len(pix))
    parts, owner = to_pixel_parts(geoms, table.sr, grid, datum, margin=0.0, area=area)
    if not len(parts):
        return np.empty((0, 2)), idx[:0], np.empty(0)
    polygon = table.geometry_type == "esriGeometryPolygon"
    size = shapely.area(parts) if polygon else shapely.length(parts)
    order = np.lexsort((-size, owner))  # per feature, its largest part first
    first = np.r_[True, owner[order][1:] != owner[order][:-1]]
    best, feats = parts[order][first], owner[order][first]
    if polygon:
        pix = shapely.get_coordinates(shapely.point_on_surface(best))
        return pix, idx[feats], np.zeros(len(pix))
    pix = shapely.get_coordinates(shapely.line_interpolate_point(best, at, normalized=True))
    # the direction: from a little before to a little after the anchor
    lo = shapely.get_coordinates(shapely.line_interpolate_point(best, max(0.0, at - 0.02),
                                                                normalized=True))
    hi = shapely.get_coordinates(shapely.line_interpolate_point(best, min(1.0, at + 0.02),
                                                                normalized=True))
    angle = np.degrees(np.arctan2(-(hi[:, 1] - lo[:, 1]), hi[:, 0] - lo[:, 0]))
    return pix, idx[feats], angle


def _label_rows(table, lc: LabelClass, feats: np.ndarray) -> list[dict]:
    """Each feature's values of the fields the label expression reads (None for NULL)."""
    expr = lc.expression
    names = expr.fields if expr is not None else (lc.field,)
    cols = {}
    for name in names:
        col = table.columns[name][feats]
        null = table.columns.get(name + "__null")
        if null is not None:
            col = np.where(null[feats], None, col.astype(object))
        cols[name] = col
    return [{n: cols[n][i] for n in names} for i in range(len(feats))]


def _label_text(lc: LabelClass, row: dict) -> str | None:
    if lc.expression is not None:
        return lc.expression.text_for(row)
    v = row[lc.field]
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return str(v)


def label_specs(layer: Layer, idx: np.ndarray, grid: Grid, datum: tuple = (),
                area: object = COMPUTE) -> list[LabelSpec]:
    """Labels for the features ``idx`` (pixel anchors, text and placement), for the classes
    in scale range, each class for the features its ``where`` selects."""
    table = layer.table
    if table is None or not layer.labels or len(idx) == 0:
        return []
    scale = grid.scale
    classes = [lc for lc in layer.labels
               if not (lc.min_scale and scale > lc.min_scale
                       or lc.max_scale and scale < lc.max_scale)]
    if not classes:
        return []
    k = grid.dpi / 72.0
    grow = symbol_scale_for(layer, grid)  # referenceScale: labels scale with the symbols
    out: list[LabelSpec] = []
    for lc in classes:
        if grow != 1.0:
            lc = dataclasses.replace(lc, size=lc.size * grow, halo_size=lc.halo_size * grow)
        sel = idx
        if lc.where is not None:
            sel = idx[table.where_mask(lc.where, idx)]
            if not len(sel):
                continue
        place = placement(lc.placement, lc.size)
        pix, feats, angles = label_anchors(layer, sel, grid, datum, at=place.at, area=area)
        rows = _label_rows(table, lc, feats)
        for (x, y), angle, row in zip(pix, angles, rows, strict=True):
            if not (0 <= x <= grid.width and 0 <= y <= grid.height):
                continue
            text = _label_text(lc, row)
            if text is None:
                continue
            rot = 0.0
            if place.along:
                rot = float(angle)
                if rot > 90.0:
                    rot -= 180.0
                elif rot < -90.0:
                    rot += 180.0
            # offset in points (x right, y up), turned with the text, to pixels (y down)
            c, s_ = np.cos(np.radians(rot)), np.sin(np.radians(rot))
            ox = (place.dx * c - place.dy * s_) * k
            oy = (place.dx * s_ + place.dy * c) * k
            out.append(LabelSpec(float(x + ox), float(y - oy), text, lc, place.ha, place.va,
                                 rot))
    return out


def _label_box(s: LabelSpec, size_px: float) -> tuple[float, float, float, float]:
    """An approximate pixel box of a label (for collisions), from its alignment."""
    lines = s.text.split("\n")
    w = 0.6 * size_px * max(len(line) for line in lines)
    h = 1.2 * size_px * len(lines)
    if abs(s.rotation) > 45:
        w, h = h, w
    x0 = {"center": s.x - w / 2, "left": s.x, "right": s.x - w}[s.ha]
    y0 = {"center": s.y - h / 2, "bottom": s.y - h, "top": s.y, "baseline": s.y - h}[s.va]
    return (x0, y0, x0 + w, y0 + h)


def draw_labels(ax: Axes, specs: Iterable[LabelSpec], grid: Grid,
                selectable: bool = False) -> None:
    """Place labels greedily, skipping any that would overlap one already placed.

    ``selectable`` (vector output): the halo is a text artist of its own under the label, so
    the label itself carries no path effect and stays real text (matplotlib draws text with
    path effects as outlines)."""
    from matplotlib import patheffects

    k = grid.dpi / 72.0
    placed: list[tuple[float, float, float, float]] = []
    for s in specs:
        box = _label_box(s, s.label.size * k)
        if outside_window(box):  # a metatile's edge (render/labels.py): dropped, never cut
            continue
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
               for b in placed):
            continue
        placed.append(box)
        effects = None
        if s.label.halo_color is not None and s.label.halo_size > 0:
            effects = [patheffects.withStroke(linewidth=s.label.halo_size * 2,
                                              foreground=s.label.halo_color)]
        kw = dict(fontsize=s.label.size, color=s.label.color, fontweight=s.label.weight,
                  family=s.label.family, ha=s.ha, va=s.va, rotation=s.rotation,
                  rotation_mode="anchor", multialignment="center", clip_on=True)
        if selectable and effects:
            ax.text(s.x, s.y, s.text, path_effects=[patheffects.Stroke(
                linewidth=s.label.halo_size * 2, foreground=s.label.halo_color)], **kw)
            effects = None
        ax.text(s.x, s.y, s.text, path_effects=effects, **kw)


def draw_symbol(ax: Axes, symbol: object, grid: Grid, alpha: float = 1.0) -> None:
    """One legend swatch on a small pixel ``grid``, through the same drawing code as the map:
    a fill symbol as a patch (inset so its outline shows), a line symbol as a horizontal line,
    a marker centred."""
    w, h = grid.width, grid.height
    if isinstance(symbol, MarkerSymbol):
        _draw_markers(ax, np.array([[w / 2.0, h / 2.0]]), symbol, grid, alpha)
        return
    if isinstance(symbol, PictureMarkerSymbol):
        _draw_pictures(ax, np.array([[w / 2.0, h / 2.0]]), symbol, grid, alpha)
        return
    k = grid.dpi / 72.0
    if isinstance(symbol, PictureFillSymbol):
        line = symbol.outline
        inset = max(1.0, (line.width * k / 2.0) if line is not None and line.visible else 0.0)
        rect = Path([(inset, inset), (w - inset, inset), (w - inset, h - inset),
                     (inset, h - inset), (inset, inset)], closed=True)
        _draw_paths(ax, [rect], symbol, True, alpha, grid=grid)
        return
    if isinstance(symbol, FillSymbol):
        line = symbol.outline
        inset = max(1.0, (line.width * k / 2.0) if line is not None and line.visible else 0.0)
        rect = Path([(inset, inset), (w - inset, inset), (w - inset, h - inset),
                     (inset, h - inset), (inset, inset)], closed=True)
        _draw_paths(ax, [rect], symbol, True, alpha)
        return
    if isinstance(symbol, LineSymbol):
        pad = min(w / 4.0, symbol.width * k / 2.0 + 1.0)
        _draw_paths(ax, [Path([(pad, h / 2.0), (w - pad, h / 2.0)])], symbol, False, alpha)
