"""Compose layers, bottom to top, onto one grid.

Raster outputs: every layer becomes an RGBA array (rasters by warping, vectors by an Agg pass of
their own, so layer transparency applies to the layer as a whole), composited with straight
alpha "over"; labels are placed last, on top of every layer, as ArcGIS does. Vector outputs
(pdf/svg/ps) put everything into one matplotlib figure so vectors stay vectors.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.path import Path

from mapserver import limits
from mapserver.catalog.model import Layer
from mapserver.errors import InvalidParameter
from mapserver.geo.grid import Grid
from mapserver.geo.project import COMPUTE
from mapserver.observe.timing import layer_timer
from mapserver.render.clip import apply_mask
from mapserver.render.raster import render_raster
from mapserver.render.style import (
    FillSymbol,
    LineSymbol,
    MarkerSymbol,
    PictureFillSymbol,
    PictureMarkerSymbol,
    Renderer,
    Symbol,
)
from mapserver.render.vector import LabelSpec, draw_features, draw_labels, label_specs, new_axes

RGBA8 = tuple[int, int, int, int]


@dataclass(frozen=True)
class DrawItem:
    """One layer to draw: which features (vector layers), with which renderer and opacity."""

    layer: Layer
    idx: np.ndarray | None = None
    renderer: Renderer | None = None
    opacity: float = 1.0
    show_labels: bool = True
    mask: np.ndarray | None = None  # clipping: per-pixel alpha factor (render/clip.py)
    datum: tuple = ()  # the request's datumTransformations (mapserver/datum.py)
    area: object = COMPUTE  # the view's area in the layer's SR, when the planner has it


def agg_rgba(fig: Figure, grid: Grid) -> np.ndarray:
    """Render a figure with Agg to an (h, w, 4) uint8 array of exactly the grid's size."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    buf = np.asarray(canvas.buffer_rgba())
    if buf.shape[:2] != (grid.height, grid.width):  # float rounding of figsize x dpi
        out = np.zeros((grid.height, grid.width, 4), dtype=np.uint8)
        h, w = min(buf.shape[0], grid.height), min(buf.shape[1], grid.width)
        out[:h, :w] = buf[:h, :w]
        return out
    return buf


# Figures kept between requests, one pool per process, keyed by (width, height, dpi). Building a
# Figure with its Axes and an Agg renderer costs ~15 ms, more than drawing a world of country
# polygons; a kept
# figure is cleared of its artists after each pass and redrawn for the next request; once the
# pool is full (workers fill it at boot), a request of a size it does not hold resizes the
# least recently used kept figure. Bounded:
# a few sizes, each at most SCRATCH_MAX_PIXELS (its Agg buffer stays allocated).
# Isolation: a kept figure goes back into the cache only after a pass that ended normally and
# left it empty; a pass that raised (Agg overflow, a timeout, anything) throws the figure away,
# so no state of a failed request reaches the next one.
_scratch_lock = threading.Lock()
_scratch: OrderedDict = OrderedDict()  # (width, height, dpi) -> (axes, canvas) not in use
SCRATCH_SIZES = 4
SCRATCH_MAX_PIXELS = 2048 * 2048


@contextmanager
def scratch_axes(grid: Grid) -> Iterator[tuple[Axes, Callable[[], np.ndarray]]]:
    """Empty pixel-space axes for ``grid`` and a function that renders them to RGBA (a copy).

    Everything drawn on the axes is removed on exit, so the figure can serve the next pass.
    The kept figures are shared by the process's threads (issue 13: per thread, a gthread
    worker's 4 threads each built and kept their own, 4x the memory and the ~15 ms build);
    a figure is taken out of the pool while in use, so two passes never share one."""
    if grid.width * grid.height > SCRATCH_MAX_PIXELS:
        fig, ax = new_axes(grid)
        yield ax, lambda: agg_rgba(fig, grid)
        return
    key = (grid.width, grid.height, grid.dpi)
    with _scratch_lock:
        entry = _scratch.pop(key, None)
        if entry is None and len(_scratch) >= SCRATCH_SIZES:
            # a full pool and another size: its least recently used figure, resized (the pool
            # keeps its sizes while it has room, so a steady mix of a few sizes never resizes)
            _, entry = _scratch.popitem(last=False)
            _resize(entry[1].figure, grid)
    if entry is None:
        fig, ax = new_axes(grid)
        entry = (ax, FigureCanvasAgg(fig))
    ax, canvas = entry

    def render() -> np.ndarray:
        ax.set_xlim(0, grid.width)
        ax.set_ylim(grid.height, 0)
        canvas.draw()
        return _fit(np.asarray(canvas.buffer_rgba()), grid).copy()

    ok = False
    try:
        yield ax, render
        ok = True
    finally:
        try:
            for artist in (*ax.collections, *ax.lines, *ax.patches, *ax.texts, *ax.images):
                artist.remove()
            ok = ok and not (ax.collections or ax.lines or ax.patches or ax.texts or ax.images)
        except Exception:  # noqa: BLE001 - a figure we cannot clean is simply not kept
            ok = False
        if ok:
            with _scratch_lock:
                _scratch[key] = entry
                while len(_scratch) > SCRATCH_SIZES:
                    _scratch.popitem(last=False)


def _resize(fig: Figure, grid: Grid) -> None:
    """A kept figure made ``grid``'s size and dpi: ~2 ms (its Agg buffer is reallocated at
    the next draw) against ~16 ms for a new Figure with its Axes, which the first request of
    each new image size paid (a worker's first 1024x512 map: 47 ms against 30 warm). The
    axes fill the figure in figure fractions, so nothing else depends on the size."""
    fig.set_dpi(grid.dpi)
    fig.set_size_inches(grid.width / grid.dpi, grid.height / grid.dpi, forward=False)


def clear_scratch() -> None:
    """Drop the kept figures (tests; after a failed request nothing else is kept)."""
    with _scratch_lock:
        _scratch.clear()


def _fit(buf: np.ndarray, grid: Grid) -> np.ndarray:
    if buf.shape[:2] == (grid.height, grid.width):
        return buf
    out = np.zeros((grid.height, grid.width, 4), dtype=np.uint8)  # float rounding of figsize
    h, w = min(buf.shape[0], grid.height), min(buf.shape[1], grid.width)
    out[:h, :w] = buf[:h, :w]
    return out


def _vector_rgba(item: DrawItem, grid: Grid) -> np.ndarray:
    with scratch_axes(grid) as (ax, render):
        draw_features(ax, item.layer, item.idx, grid, item.renderer, datum=item.datum,
                      area=item.area)
        return render()


def layer_rgba(item: DrawItem, grid: Grid) -> np.ndarray:
    if item.layer.kind == "raster":
        return render_raster(item.layer, grid, item.datum)
    return _vector_rgba(item, grid)


def over(dst: np.ndarray | None, src: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """Straight-alpha "source over destination" of two (h, w, 4) uint8 images."""
    if opacity < 1.0:
        src = src.copy()
        src[..., 3] = (src[..., 3].astype(np.float32) * opacity).round().astype(np.uint8)
    if dst is None:
        return src
    # Most pixels of a map layer are fully opaque or fully empty, and for those "over" is a
    # plain select; the float arithmetic runs only on the partly transparent (antialiased)
    # pixels. The profile of a three-layer export had this function at half of its CPU time.
    # Every test runs on whole pixels as uint32 (alpha is the top byte on a little-endian
    # machine): comparisons on the strided alpha bytes and a boolean-mask store into the
    # (h, w, 4) array cost 5-10x more (the mixed Landsat view: 40 ms -> 5 ms per layer).
    src = np.ascontiguousarray(src)
    dst = np.ascontiguousarray(dst)
    if not _LITTLE:
        return _over_bytes(dst, src)
    s32, d32 = src.view(np.uint32)[..., 0], dst.view(np.uint32)[..., 0]
    opaque = s32 >= _OPAQUE
    if opaque.all():
        return src
    some = np.flatnonzero(s32 >= _SOME)
    if len(some) * 8 < s32.size:  # a sparse layer (points, lines): touch only its pixels
        # nothing over nothing: transparent black, as the arithmetic gives
        out32 = np.where(d32 >= _SOME, d32, np.uint32(0))
        flat, values = out32.reshape(-1), s32.reshape(-1)[some]
        full = values >= _OPAQUE
        flat[some[full]] = values[full]
        part = some[~full]
    else:
        out32 = np.where(opaque, s32, d32)
        out32 = np.where(out32 >= _SOME, out32, np.uint32(0))
        flat = out32.reshape(-1)
        part = np.flatnonzero((s32 - _SOME) < (_OPAQUE - _SOME))  # 0 < alpha < 255 (wraps)
    if len(part):
        flat[part] = _over_arith(dst.reshape(-1, 4)[part],
                                 src.reshape(-1, 4)[part]).view(np.uint32)[:, 0]
    return out32[..., None].view(np.uint8)


_LITTLE = sys.byteorder == "little"
_SOME = np.uint32(0x01000000)  # alpha >= 1
_OPAQUE = np.uint32(0xFF000000)  # alpha == 255


def _over_bytes(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``over`` on a big-endian machine (the uint32 tricks assume alpha in the top byte)."""
    sa8 = src[..., 3]
    if sa8.min() == 255:
        return src
    s32, d32 = src.view(np.uint32)[..., 0], dst.view(np.uint32)[..., 0]
    out = np.where(sa8 == 255, s32, d32)[..., None].view(np.uint8)
    out[out[..., 3] == 0] = 0
    part = np.flatnonzero((sa8 != 0) & (sa8 != 255))
    if len(part):
        out.reshape(-1, 4)[part] = _over_arith(dst.reshape(-1, 4)[part],
                                               src.reshape(-1, 4)[part])
    return out


def _over_arith(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Straight-alpha "over" of (..., 4) uint8 pixels in float arithmetic."""
    sa = src[..., 3:4].astype(np.float32) / 255.0
    da = dst[..., 3:4].astype(np.float32) / 255.0
    oa = sa + da * (1.0 - sa)
    rgb = src[..., :3] * sa + dst[..., :3] * (da * (1.0 - sa))
    np.divide(rgb, oa, out=rgb, where=oa > 0)
    out = np.empty_like(dst)
    out[..., :3] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    out[..., 3:4] = np.clip(oa * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _symbol_points(sym: Symbol) -> Iterator[tuple[str, float]]:
    if isinstance(sym, LineSymbol):
        yield "width", sym.width
    elif isinstance(sym, FillSymbol):
        if sym.outline is not None:
            yield "outline.width", sym.outline.width
    elif isinstance(sym, PictureMarkerSymbol | PictureFillSymbol):
        yield "width", sym.width * getattr(sym, "xscale", 1.0)
        yield "height", sym.height * getattr(sym, "yscale", 1.0)
        yield "xoffset", abs(sym.xoffset)
        yield "yoffset", abs(sym.yoffset)
        if getattr(sym, "outline", None) is not None:
            yield "outline.width", sym.outline.width
    elif isinstance(sym, MarkerSymbol):
        yield "size", sym.size
        yield "xoffset", abs(sym.xoffset)
        yield "yoffset", abs(sym.yoffset)
        if sym.outline is not None:
            yield "outline.width", sym.outline.width


def check_layer_symbols(layers: Sequence[Layer], dpi: float) -> None:
    """:func:`check_symbol_sizes` for a map's layers, before anything is planned or drawn."""
    check_symbol_sizes([DrawItem(layer=lyr) for lyr in layers], dpi)


def check_symbol_sizes(items: Sequence[DrawItem], dpi: float, map_scale: float = 0.0) -> None:
    """Every symbol size, width, offset and label size of ``items``, in pixels at the grid's
    dpi, within MAPSERVER_MAX_SYMBOL_PIXELS; checked before anything is drawn (a 1e308 pt
    outline would keep Agg busy for a minute and then overflow). The error names ``dpi`` when
    the symbol would fit at 96 dpi, else the request's symbols (``dynamicLayers``)."""
    most = limits.current().max_symbol_pixels
    for item in items:
        if item.layer.kind != "feature":
            continue
        k = dpi / 72.0
        if map_scale > 0 and item.layer.reference_scale and item.layer.scale_symbols:
            k *= item.layer.reference_scale / map_scale  # referenceScale (render/vector.py)
        renderer = item.renderer or item.layer.renderer
        checks: list[tuple[str, float]] = []
        if renderer is not None:
            for cls in renderer.all_classes:
                checks.extend(_symbol_points(cls.symbol))
            for vv in renderer.visual:
                if vv.type == "sizeInfo":
                    checks.extend(("sizeInfo size", v) for v in vv.outputs)
        if item.show_labels:
            for lab in item.layer.labels:
                checks += [("label font size", lab.size), ("label halo size", lab.halo_size)]
        for what, pt in checks:
            if not pt * k <= most:  # also refuses NaN
                source = "dpi" if pt * 96.0 / 72.0 <= most else "dynamicLayers"
                raise InvalidParameter("Invalid or missing input parameters.", [
                    f"'{source}': symbol {what} {pt:g} pt is {pt * k:.4g} px at {dpi:g} "
                    f"dpi, more than {most:g} px (MAPSERVER_MAX_SYMBOL_PIXELS) on layer "
                    f"{item.layer.id}"])


def render_rgba(items: Sequence[DrawItem], grid: Grid,
                background: RGBA8 | None = None,
                label_mask: np.ndarray | None = None) -> np.ndarray:
    """Draw ``items`` (bottom first) and return straight-alpha RGBA (h, w, 4) uint8."""
    check_symbol_sizes(items, grid.dpi, grid.scale)
    canvas: np.ndarray | None = None
    if background is not None and background[3] > 0:
        canvas = np.empty((grid.height, grid.width, 4), dtype=np.uint8)
        # one 32-bit store per pixel: assigning the 4-tuple broadcasts byte by byte (8 ms/MP)
        canvas.view(np.uint32)[...] = np.array(background, dtype=np.uint8).view(np.uint32)[0]
    labels: list[LabelSpec] = []
    clean = True  # the canvas holds transparent black wherever it is empty ("over" makes it so)
    for item in items:
        limits.check_budget(f"before drawing layer {item.layer.id}")
        with layer_timer(item.layer.id):  # render time by layer (observe/timing.py)
            if (item.layer.kind == "raster" and canvas is not None and clean
                    and item.mask is None and item.opacity >= 1.0):
                # an opaque raster is gathered straight onto the canvas (render/approx_warp.py)
                rgba = render_raster(item.layer, grid, item.datum, onto=canvas)
                if rgba is not canvas:
                    canvas = over(canvas, rgba)
                continue
            first = canvas is None
            canvas = over(canvas, apply_mask(layer_rgba(item, grid), item.mask), item.opacity)
            clean = not first or item.layer.kind != "raster"  # empty raster pixels: coloured
            if item.show_labels and item.layer.kind == "feature" and item.idx is not None:
                labels.extend(label_specs(item.layer, item.idx, grid, item.datum, item.area))
    if labels:
        limits.check_budget("before drawing labels")
        with scratch_axes(grid) as (ax, render):
            draw_labels(ax, reversed(labels), grid)  # top layer's labels win collisions
            canvas = over(canvas, apply_mask(render(), label_mask))
    if canvas is None:
        canvas = np.zeros((grid.height, grid.width, 4), dtype=np.uint8)
    return canvas


def render_figure(items: Sequence[DrawItem], grid: Grid,
                  background: RGBA8 | None = None, clip: Path | None = None) -> Figure:
    """One matplotlib figure with every layer, for vector output formats. ``clip``
    (``clipping``, a pixel-space path): the artists of every item with a mask, and the
    labels, are clipped to it."""
    check_symbol_sizes(items, grid.dpi, grid.scale)
    fig, ax = new_axes(grid)

    def artists() -> list:
        return [*ax.collections, *ax.lines, *ax.patches, *ax.texts, *ax.images]

    empty_clip = clip is not None and not len(clip.vertices)
    if background is not None and background[3] > 0:
        fig.patch.set_facecolor(tuple(c / 255.0 for c in background))
        fig.patch.set_alpha(background[3] / 255.0)
    labels: list[LabelSpec] = []
    for item in items:
        limits.check_budget(f"before drawing layer {item.layer.id}")
        clipped = clip is not None and item.mask is not None
        if clipped and empty_clip:
            continue
        seen = {id(a) for a in artists()}
        if item.layer.kind == "raster":
            rgba = render_raster(item.layer, grid, item.datum)
            ax.imshow(rgba, extent=(0, grid.width, grid.height, 0), interpolation="nearest",
                      alpha=item.opacity if item.opacity < 1 else None, resample=False)
        else:
            draw_features(ax, item.layer, item.idx, grid, item.renderer, alpha=item.opacity,
                          datum=item.datum, area=item.area)
            if item.show_labels and item.idx is not None:
                labels.extend(label_specs(item.layer, item.idx, grid, item.datum, item.area))
        if clipped:
            for artist in artists():
                if id(artist) not in seen:
                    artist.set_clip_path(clip, ax.transData)
    ax.set_xlim(0, grid.width)
    ax.set_ylim(grid.height, 0)
    if labels and not empty_clip:
        seen = {id(a) for a in artists()}
        draw_labels(ax, reversed(labels), grid, selectable=True)
        if clip is not None:
            for artist in artists():
                if id(artist) not in seen:
                    artist.set_clip_path(clip, ax.transData)
    return fig
