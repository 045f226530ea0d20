"""The vector fast paths (issue 13) against the exact paths they replace.

* Polygons and lines: the fast route (a table's rings projected once per map SR, only the grid's
  affine per request: ``geo/project.py`` ``to_pixel_rings``, ``render/geometry.py``
  ``pixel_paths``) gives, feature by feature, the same vertices and path codes as the exact
  route (``to_pixel_parts`` + ``feature_paths``): on the sample countries in 4326, Web
  Mercator (3857 and 102100), a view that clips, a rotated view, a view across the
  antimeridian (central meridian 150, where the exact route cuts) and a view wider than the
  world; and on holes, multipolygons, empty geometries, sub-pixel features and lines.
* Paths are built without Path's constructor: same arrays and the same ``should_simplify``.
* Markers: the PathCollection made directly gives the pixels ``ax.scatter`` gave (sub-pixel
  positions, per-marker colours and sizes, line-only markers).
* End to end: the first export of a view (exact route: a table is projected on the second
  request that draws it) and later ones (fast route) are the same bytes.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.markers import MarkerStyle
from matplotlib.path import Path

from mapserver.geo import project
from mapserver.geo.grid import Grid
from mapserver.geo.project import projected_rings, to_pixel_parts, to_pixel_rings
from mapserver.geo.sr import from_wkid, from_wkt
from mapserver.render.geometry import _path, feature_paths, pixel_paths
from mapserver.render.style import LineSymbol, MarkerSymbol
from mapserver.render.vector import MARKERS, _draw_markers, new_axes
from tests.conftest import decode

GCS = ('GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,'
       '298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]')
MERCATOR_150 = ('PROJCS["WGS_1984_Web_Mercator_Auxiliary_Sphere",' + GCS
                + ',PROJECTION["Mercator_Auxiliary_Sphere"],PARAMETER["False_Easting",0.0],'
                'PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",150.0],'
                'PARAMETER["Standard_Parallel_1",0.0],PARAMETER["Auxiliary_Sphere_Type",0.0],'
                'UNIT["Meter",1.0]]')
WGS84 = from_wkid(4326)
HALF = 20037508.342789244
EXPORT = "/arcgis/rest/services/World/MapServer/export"


def exact_paths(geometry: np.ndarray, idx: np.ndarray, grid: Grid, closed: bool,
                src=WGS84) -> list[Path]:
    parts, owner = to_pixel_parts(geometry[idx], src, grid)
    return feature_paths(parts, owner, len(idx), closed)


def fast_paths(geometry: np.ndarray, idx: np.ndarray, grid: Grid, closed: bool,
               src=WGS84) -> list[Path]:
    projected_rings(geometry, src, grid.sr, closed, build=True)
    return pixel_paths(geometry, idx, src, grid, closed=closed)


def assert_same_paths(a: list[Path], b: list[Path]) -> None:
    assert len(a) == len(b)
    for i, (p, q) in enumerate(zip(a, b, strict=True)):
        assert np.array_equal(p.vertices, q.vertices), f"feature {i}: vertices differ"
        assert np.array_equal(p.codes, q.codes), f"feature {i}: codes differ"
        assert p.should_simplify == q.should_simplify


@pytest.fixture(scope="module")
def countries(app) -> np.ndarray:
    service = app.extensions["mapserver"].catalog.service("World")
    layer = next(lyr for lyr in service.layers
                 if lyr.table is not None and lyr.table.geometry_type == "esriGeometryPolygon")
    assert layer.table.sr == WGS84 and len(layer.table.geometry) > 100
    return layer.table.geometry


GRIDS = {
    "4326 world": Grid.from_bbox((-180, -90, 180, 90), 1024, 512, WGS84),
    "3857 world": Grid.from_bbox((-HALF, -HALF, HALF, HALF), 1024, 1024, from_wkid(3857)),
    "102100 world": Grid.from_bbox((-HALF, -HALF, HALF, HALF), 512, 512, from_wkid(102100)),
    "3857 europe (clips)": Grid.from_bbox((-1669792.0, 3662100.0, 3896182.0, 9228074.0), 512,
                                          512, from_wkid(3857)),
    "4326 zoom (clips)": Grid.from_bbox((0, 40, 20, 50), 400, 200, WGS84),
    "4326 rotated 30°": Grid.from_bbox((-60, -30, 60, 30), 600, 300, WGS84, rotation=30.0),
    "mercator cm 150 (cut)": Grid.from_bbox((-HALF, -15e6, HALF, 15e6), 800, 600,
                                            from_wkt(MERCATOR_150)),
    "3857 wider than the world": Grid.from_bbox((-2 * HALF, -HALF, 2 * HALF, HALF), 1024, 256,
                                                from_wkid(3857)),
}


@pytest.mark.parametrize("name", list(GRIDS))
def test_fast_route_equals_exact_route_on_the_countries(countries: np.ndarray,
                                                        name: str) -> None:
    grid = GRIDS[name]
    idx = np.arange(len(countries))
    assert_same_paths(fast_paths(countries, idx, grid, True),
                      exact_paths(countries, idx, grid, True))
    # a subset, out of order, with a repeat: per-feature paths do not depend on the others
    sub = np.array([5, 3, 100, 3, len(countries) - 1])
    assert_same_paths(fast_paths(countries, sub, grid, True),
                      exact_paths(countries, sub, grid, True))


def test_fast_route_takes_the_affine_only_where_nothing_is_clipped(countries) -> None:
    """The world views need no clipping: every feature takes the fast route; a zoomed view
    sends the features that reach past the margin through the exact route."""
    idx = np.arange(len(countries))
    world = to_pixel_rings(countries, idx, WGS84, GRIDS["4326 world"])
    assert world is not None and not world[3].any()
    zoom = to_pixel_rings(countries, idx, WGS84, GRIDS["4326 zoom (clips)"])
    assert zoom is not None and 0 < zoom[3].sum() < len(idx)
    # datum transformations asked for: no fast route at all
    assert to_pixel_rings(countries, idx, WGS84, GRIDS["3857 world"], datum=("x",)) is None


def synthetic() -> np.ndarray:
    """Holes, a multipolygon with a holed part, an empty polygon, a missing geometry, a
    polygon far below a pixel, one across the whole world, one outside the view."""
    square = shapely.Polygon([(0, 0), (40, 0), (40, 30), (0, 30)],
                             [[(10, 10), (20, 10), (20, 20), (10, 20)],
                              [(25, 5), (35, 5), (35, 15), (25, 15)]])
    multi = shapely.MultiPolygon([
        shapely.Polygon([(-100, -50), (-60, -50), (-60, -10), (-100, -10)],
                        [[(-90, -40), (-70, -40), (-70, -20), (-90, -20)]]),
        shapely.Polygon([(-50, 40), (-30, 40), (-40, 60)])])
    tiny = shapely.Polygon([(100, 10), (100.001, 10), (100.001, 10.001)])
    everything = shapely.box(-180, -85, 180, 85)
    away = shapely.box(500, 500, 510, 510)
    return np.array([square, multi, shapely.Polygon(), None, tiny, everything, away,
                     square], dtype=object)


@pytest.mark.parametrize("name", ["4326 world", "3857 world", "4326 zoom (clips)",
                                  "mercator cm 150 (cut)", "4326 rotated 30°"])
def test_holes_multipolygons_empty_and_subpixel_features(name: str) -> None:
    geoms = synthetic()
    grid = GRIDS[name]
    idx = np.arange(len(geoms))
    fast = fast_paths(geoms, idx, grid, True)
    assert_same_paths(fast, exact_paths(geoms, idx, grid, True))
    if name == "4326 world":
        # the holed square: 3 rings, each MOVETO ... CLOSEPOLY; the empty and missing: no path
        assert (fast[0].codes == Path.MOVETO).sum() == 3
        assert (fast[0].codes == Path.CLOSEPOLY).sum() == 3
        assert len(fast[2].vertices) == 0 and len(fast[3].vertices) == 0
        assert (fast[1].codes == Path.MOVETO).sum() == 3  # 2 parts, one holed


def test_lines_keep_the_constructors_simplify_flag() -> None:
    """Lines of 128 vertices or more are simplified by Agg (as Path(...) decides); polygons
    and short lines are not."""
    x = np.linspace(-170, 170, 300)
    long_line = shapely.LineString(np.column_stack([x, 10 * np.sin(x / 10)]))
    short = shapely.LineString([(0, 0), (10, 10), (20, 0)])
    geoms = np.array([long_line, short, shapely.LineString()], dtype=object)
    for name in ("4326 world", "3857 world", "4326 zoom (clips)"):
        grid = GRIDS[name]
        idx = np.arange(3)
        fast = fast_paths(geoms, idx, grid, False)
        assert_same_paths(fast, exact_paths(geoms, idx, grid, False))
    world = fast_paths(geoms, np.arange(3), GRIDS["4326 world"], False)
    assert world[0].should_simplify and not world[1].should_simplify
    assert world[0].should_simplify == Path(world[0].vertices, world[0].codes).should_simplify
    ring = _path(np.zeros((200, 2)), np.r_[1, np.full(198, 2), 79].astype(np.uint8), True)
    assert not ring.should_simplify
    assert ring.should_simplify == Path(ring.vertices, ring.codes).should_simplify


def test_a_table_is_projected_on_its_second_use_only() -> None:
    """A geometry array seen once (a table made for one request) is not projected; the
    second request drawing it builds the rings; a new array is a new entry."""
    geoms = synthetic()
    grid = GRIDS["4326 world"]
    assert projected_rings(geoms, WGS84, grid.sr, True) is None
    built = projected_rings(geoms, WGS84, grid.sr, True)
    assert built is not None and built is projected_rings(geoms, WGS84, grid.sr, True)
    copy = geoms.copy()
    assert projected_rings(copy, WGS84, grid.sr, True) is None
    assert project._rings  # kept, bounded
    assert len(project._rings) <= project.RINGS_KEPT


def render_markers(draw, pix: np.ndarray) -> np.ndarray:
    grid = Grid.from_bbox((0, 0, 64, 48), 64, 48, WGS84)
    fig, ax = new_axes(grid)
    draw(ax, grid)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


@pytest.mark.parametrize("style", ["esriSMSCircle", "esriSMSSquare", "esriSMSCross",
                                   "esriSMSX", "esriSMSTriangle"])
def test_marker_collection_equals_scatter(style: str) -> None:
    """The marker collection made directly gives the pixels ax.scatter gave (the exact
    path before issue 13): same sub-pixel positions, colours, sizes and outline."""
    rng = np.random.default_rng(3)
    pix = rng.uniform(4, 44, size=(25, 2))
    outline = LineSymbol(color=(0.1, 0.1, 0.1, 1.0), width=1.0)
    sym = MarkerSymbol(style=style, color=(0.8, 0.1, 0.1, 0.9), size=7.0, outline=outline)

    def ours(ax, grid):
        _draw_markers(ax, pix, sym, grid, 1.0)

    def scatter(ax, grid):
        face = sym.color
        edge, width = [outline.color], outline.width
        if style in ("esriSMSCross", "esriSMSX"):  # unfilled: scatter strokes in the face
            edge, width = None, max(width, 1.0)
        ax.scatter(pix[:, 0], pix[:, 1], s=np.square(sym.size), marker=MarkerStyle(
            MARKERS[style]), c=[face], edgecolors=edge, linewidths=width,
            plotnonfinite=False, snap=False, antialiaseds=(True, True))

    a, b = render_markers(ours, pix), render_markers(scatter, pix)
    assert a[..., 3].any()
    assert np.array_equal(a, b)


def test_marker_collection_equals_scatter_with_visual_variables() -> None:
    from mapserver.render.vector import Visual

    rng = np.random.default_rng(5)
    pix = rng.uniform(4, 44, size=(12, 2))
    pix[3] = (np.nan, 10.0)  # a point that did not project: left out, as scatter masks it
    colors = rng.uniform(0, 1, size=(12, 4))
    colors[:, 3] = 1.0
    sizes = rng.uniform(3, 9, size=12)
    vis = Visual(color=colors, size=sizes)
    sym = MarkerSymbol(style="esriSMSCircle", color=(0.2, 0.2, 0.2, 1.0), size=6.0,
                       outline=None)

    def ours(ax, grid):
        _draw_markers(ax, pix, sym, grid, 1.0, vis)

    def scatter(ax, grid):
        ax.scatter(pix[:, 0], pix[:, 1], s=np.square(sizes), marker=MarkerStyle("o"),
                   c=colors, edgecolors=[(0.0, 0.0, 0.0, 0.0)], linewidths=0.0,
                   plotnonfinite=False, snap=False, antialiaseds=(True, True))

    a, b = render_markers(ours, pix), render_markers(scatter, pix)
    assert a[..., 3].any()
    assert np.array_equal(a, b)


def test_a_pool_with_room_keeps_each_size_and_a_full_one_resizes_its_oldest(monkeypatch) -> None:
    """While the pool has room a new size gets a figure of its own (a steady mix of a few
    sizes never resizes); once full, a new size takes the least recently used figure."""
    from mapserver.render import compose

    monkeypatch.setattr(compose, "SCRATCH_SIZES", 2)
    compose.clear_scratch()
    grids = [Grid.from_bbox((0, 0, 10, 10), n, n, WGS84) for n in (16, 24, 40)]
    figures = []
    for grid in grids[:2]:
        with compose.scratch_axes(grid) as (ax, render):
            render()
            figures.append(ax.figure)
    with compose.scratch_axes(grids[0]) as (ax, render):  # 16 is now the most recent
        assert ax.figure is figures[0]
    with compose.scratch_axes(grids[2]) as (ax, render):
        assert ax.figure is figures[1]  # the oldest, 24², resized to 40²
        assert render().shape == (40, 40, 4)
    assert sorted(compose._scratch) == [(16, 16, 96.0), (40, 40, 96.0)]
    compose.clear_scratch()


def test_scratch_figures_are_shared_by_threads_but_never_by_two_passes() -> None:
    """The kept figures are one pool per process: a figure is out of the pool while a pass
    uses it (a nested pass of the same size gets another), another thread reuses a kept one,
    and a pass that failed does not put its figure back."""
    import threading

    from mapserver.render.compose import clear_scratch, scratch_axes

    clear_scratch()
    grid = Grid.from_bbox((0, 0, 10, 10), 32, 32, WGS84)
    with scratch_axes(grid) as (outer, render_outer):
        with scratch_axes(grid) as (inner, _render):
            assert inner is not outer
            inner.add_collection(PathCollection([Path([(0, 0), (30, 30)])]), autolim=False)
        assert not render_outer()[..., 3].any()  # the other pass's drawing is not here
    got: list = []

    def other_thread() -> None:
        with scratch_axes(grid) as (ax, render):
            got.append((ax, render()[..., 3].any()))

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert got[0][0] in (outer, inner) and not got[0][1]
    with pytest.raises(RuntimeError), scratch_axes(grid) as (failed, _render):
        raise RuntimeError("a pass that fails")
    with scratch_axes(grid) as (after, _render):
        assert after is not failed
    clear_scratch()


@pytest.mark.parametrize("query", [
    {"bbox": "-180,-90,180,90", "size": "800,400"},
    {"bbox": f"{-HALF},{-HALF},{HALF},{HALF}", "bboxSR": "3857", "imageSR": "3857",
     "size": "512,512"},
    {"bbox": "-15,31,35,63", "bboxSR": "4326", "imageSR": "102100", "size": "400,400"},
    {"bbox": "-60,-30,60,30", "size": "600,300", "rotation": "30"},
    {"bbox": "-20000000,-15000000,20000000,15000000", "size": "600,450",
     "bboxSR": MERCATOR_150, "imageSR": MERCATOR_150},
])
def test_first_and_later_exports_are_the_same_bytes(client, query: dict) -> None:
    """The first request drawing a table takes the exact route (and, without warm-up, the
    second builds the rings); the third takes the fast route: the same PNG bytes."""
    params = {"f": "image", "format": "png32", "transparent": "true", "dpi": "96", **query}
    project._rings.clear()  # as a worker that did not warm up
    project._seen.clear()
    bodies = [client.get(EXPORT, query_string=params).data for _ in range(3)]
    assert decode(bodies[0])[..., 3].any()
    assert bodies[0] == bodies[1] == bodies[2]


VIEWS = [  # (size, dpi, extra): world maps with labels, odd sizes, a high dpi, a rotation
    ("800,400", "96", {}), ("256,256", "96", {}), ("333,217", "96", {}),
    ("600,300", "192", {}), ("500,500", "96", {"rotation": "30"}),
]


def test_a_kept_figure_resized_draws_what_a_new_figure_draws(client, monkeypatch) -> None:
    """A request of a size a full pool does not hold takes a kept figure of another size and
    resizes it (``compose._resize``) instead of building one: every view comes out the same
    bytes drawn on a new figure and on a figure kept from each of the other views."""
    from mapserver.render import compose
    from mapserver.render.compose import clear_scratch

    monkeypatch.setattr(compose, "SCRATCH_SIZES", 1)  # one kept figure: full at once

    def export(size: str, dpi: str, extra: dict) -> bytes:
        params = {"f": "image", "format": "png32", "transparent": "true", "bbox": "-180,-90,180,90",
                  "size": size, "dpi": dpi, "layers": "show:0,1", **extra}
        resp = client.get(EXPORT, query_string=params)
        assert resp.status_code == 200 and resp.mimetype == "image/png"
        return resp.data

    fresh = {}
    for view in VIEWS:
        clear_scratch()  # a new figure for this view
        fresh[view[:2]] = export(*view)
    assert decode(fresh[("800,400", "96")])[..., 3].any()
    for before in VIEWS:
        for view in VIEWS:
            if view is before:
                continue
            clear_scratch()
            export(*before)  # the pool now holds only a figure of the other size
            kept = next(iter(compose._scratch.values()))
            assert export(*view) == fresh[view[:2]], (before[:2], view[:2])
            assert next(iter(compose._scratch.values())) is kept  # resized, not rebuilt
    clear_scratch()
