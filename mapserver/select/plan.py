"""The planner: one request's filters + a service -> the layers and features every entry
point uses.

:func:`resolve_map` turns the typed :class:`MapFilters` into :class:`MapLayers` (dynamic layers
with their own sources and versions, ``gdbVersion``, the declared filters: archiving,
parameters, ranges; per-layer time options; visibility). :func:`layer_filter` is its
selection half: the one :class:`LayerFilter` of a layer (definitionExpression AND layerDefs
AND declared filters, time window and relation, spatial filter). :func:`plan_map` adds a view:
the draw items of a grid. ``/export``, ``/tile``, legend and batch images call
``plan_map``; identify, find and query call ``resolve_map`` + ``layer_filter`` and select with
:func:`mapserver.select.features.select_features`, so a click can only find what is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mapserver.catalog.model import Layer, Service
from mapserver.datum import Requested
from mapserver.errors import InvalidParameter, UnsupportedOperation
from mapserver.geo.grid import Grid
from mapserver.geo.project import project_geometry, view_area
from mapserver.params.filters import DECLARED_PARAMS, MapFilters, Selection, TimeOptions
from mapserver.render.compose import DrawItem
from mapserver.render.style import Renderer, parse_renderer
from mapserver.select.declared import apply_version, declared_filters, declares, series_layer
from mapserver.select.dynamic import resolve_dynamic_layers
from mapserver.select.features import LayerFilter, SpatialFilter, layer_where, select_features
from mapserver.select.layers import in_scale, resolve_layers
from mapserver.select.time import layer_window
from mapserver.where import WhereExpression, combine_and

MESSAGE = "Invalid or missing input parameters."


@dataclass(frozen=True)
class MapLayers:
    """A service's layers as one request sees them (first listed draws on top)."""

    service: Service
    layers: tuple[Layer, ...]
    visible: frozenset[int]
    filters: MapFilters
    time_options: Mapping[int, TimeOptions] = field(default_factory=dict)
    labels_off: frozenset[int] = frozenset()
    declared_where: Mapping[int, WhereExpression] = field(default_factory=dict)
    dynamic: bool = False

    def layer(self, lid: int) -> Layer | None:
        return next((lyr for lyr in self.layers if lyr.id == lid), None)

    @property
    def datum(self) -> tuple[Requested, ...]:
        return self.filters.datum

    def in_scale(self, layer: Layer, scale: float) -> bool:
        if self.dynamic:  # dynamic layers stand alone, outside the service's groups
            return layer.visible_at(scale)
        return in_scale(self.service, layer, scale)


def resolve_map(service: Service, filters: MapFilters) -> MapLayers:
    """Validate ``filters`` against ``service`` and resolve its layers for this request."""
    time_options = dict(filters.layer_time_options)
    labels_off: frozenset[int] = frozenset()
    own_version: frozenset[int] = frozenset()
    if filters.dynamic_layers is not None:
        dyn = resolve_dynamic_layers(service, filters.dynamic_layers)
        layers: list[Layer] = [d.layer for d in dyn]
        visible = frozenset(d.layer.id for d in dyn)
        for d in dyn:
            if d.time_options is not None:
                time_options[d.layer.id] = d.time_options
        labels_off = frozenset(d.layer.id for d in dyn if not d.show_labels)
        own_version = frozenset(d.layer.id for d in dyn if d.own_version)
    else:
        layers = list(service.layers)
        visible = frozenset(resolve_layers(service, filters.layers))
    check_filters(service, filters, layers)
    layers = apply_version(service, layers, filters.declared.get("gdbVersion"), own_version)
    return MapLayers(service=service, layers=tuple(layers), visible=visible, filters=filters,
                     time_options=time_options, labels_off=labels_off,
                     declared_where=declared_filters(layers, filters.declared),
                     dynamic=filters.dynamic_layers is not None)


def layer_filter(m: MapLayers, layer: Layer, message: str | None = None) -> LayerFilter:
    """The one filter of a vector layer for this request (no view). ``message``: the
    operation's error message for a bad clause (None: the where engine's own)."""
    table = layer.table
    assert table is not None
    f = m.filters
    where = combine_and(layer_where(layer, f.layer_defs.get(layer.id), message),
                        m.declared_where.get(layer.id))
    spatial = None
    if f.spatial_filter is not None:
        sf = f.spatial_filter
        spatial = SpatialFilter(project_geometry(sf.geometry.geometry, sf.geometry.sr,
                                                 table.sr, m.datum),
                                sf.rel, sf.relation_param)
    return LayerFilter(where=where, window=layer_window(f.time, m.time_options.get(layer.id)),
                       relation=f.time_relation, spatial=spatial)


def drawn_raster(m: MapLayers, layer: Layer) -> Layer | None:
    """The raster layer as drawn for this request's time (a time series picks one date);
    None when a time series has no raster in the window."""
    return series_layer(layer, layer_window(m.filters.time, m.time_options.get(layer.id)),
                        m.filters.time_relation)


def plan_map(m: MapLayers, grid: Grid, clip: np.ndarray | None = None) -> list[DrawItem]:
    """Draw items bottom to top. ArcGIS draws the first layer in the service (or the first
    dynamic layer) on top; selection highlights go over everything. ``clip`` is the
    ``clipping`` mask on this grid (render/clip.py)."""
    f = m.filters
    excluded = f.clipping.excluded if f.clipping is not None else frozenset()
    items = []
    scale = grid.scale
    drawn: dict[int, np.ndarray] = {}
    areas: dict[str, object] = {}  # the view's area per layer SR (layers often share one)
    for layer in reversed(m.layers):
        if layer.kind == "group" or layer.id not in m.visible or not m.in_scale(layer, scale):
            continue
        opacity = 1.0 - layer.transparency / 100.0
        mask = clip if layer.id not in excluded else None
        if layer.kind == "raster":
            raster = drawn_raster(m, layer)
            if raster is not None:
                items.append(DrawItem(layer=raster, opacity=opacity, mask=mask, datum=m.datum))
            continue
        sr = layer.table.sr
        if sr.key not in areas:  # once per SR: selection and drawing share it
            areas[sr.key] = view_area(grid, sr)
        area = areas[sr.key]
        idx = select_features(layer, layer_filter(m, layer, MESSAGE), area)
        drawn[layer.id] = idx
        items.append(DrawItem(layer=layer, idx=idx, opacity=opacity, mask=mask,
                              show_labels=layer.id not in m.labels_off, datum=m.datum,
                              area=area))
    for sel in f.selections:
        layer = m.layer(sel.layer_id)
        assert layer is not None and layer.table is not None
        idx = drawn.get(layer.id)
        if idx is None:  # highlighted although the layer itself is hidden: same filters
            idx = select_features(layer, layer_filter(m, layer, MESSAGE),
                                  view_area(grid, layer.table.sr))
        idx = idx[np.isin(layer.table.columns[layer.table.oid_field][idx], sel.object_ids)]
        items.append(DrawItem(layer=layer, idx=idx, renderer=selection_renderer(layer, sel),
                              show_labels=False,
                              mask=clip if layer.id not in excluded else None, datum=m.datum))
    return items


SELECTION_COLOR = (0, 255, 255, 255)  # ArcGIS Pro's default selection colour (cyan)


def selection_renderer(layer: Layer, sel: Selection) -> Renderer:
    """A simple renderer in the selection colours: outline/line/marker in ``selectionColor``,
    polygons filled with ``selectionFillColor`` when given (hollow otherwise)."""
    color = list(sel.color or SELECTION_COLOR)
    color = color + [255] if len(color) == 3 else color
    fill = list(sel.fill_color) if sel.fill_color else None
    if fill is not None and len(fill) == 3:
        fill.append(255)
    line = {"type": "esriSLS", "style": "esriSLSSolid", "color": color, "width": 2}
    gtype = layer.geometry_type
    if gtype == "esriGeometryPolygon":
        sym = {"type": "esriSFS", "style": "esriSFSSolid" if fill else "esriSFSNull",
               "color": fill, "outline": line}
    elif gtype == "esriGeometryPolyline":
        sym = line
    else:
        sym = {"type": "esriSMS", "style": "esriSMSCircle", "color": fill or color, "size": 8,
               "outline": {"type": "esriSLS", "color": color, "width": 1.5}}
    return parse_renderer({"type": "simple", "symbol": sym}, "selection", [])


DECLARED_HELP = {
    "historicMoment": "historicMoment applies only to archiving-enabled layers "
                      "(supportsQueryWithHistoricMoment); no layer of this service is.",
    "gdbVersion": "gdbVersion applies only to versioned data; this service declares no "
                  "versions.",
    "layerParameterValues": "layerParameterValues applies only to layers with parameterInfos; "
                            "no layer of this service has them.",
    "mapRangeValues": "mapRangeValues applies only to layers with rangeInfos; no layer of this "
                      "service has them.",
    "layerRangeValues": "layerRangeValues applies only to layers with rangeInfos; no layer of "
                        "this service has them.",
}


def check_filters(service: Service, f: MapFilters, layers: list[Layer]) -> None:
    """Refuse parameters that name layers or service features that do not exist."""
    by_id = {lyr.id: lyr for lyr in layers}
    for name in DECLARED_PARAMS:
        if name in f.declared and not declares(service, layers, name):
            raise UnsupportedOperation(
                f"'{name}' is not supported by this service.",
                [DECLARED_HELP[name], f"Service '{service.name}' declares nothing '{name}' "
                                      "could apply to."])
    for lid in f.layer_defs:
        layer = by_id.get(lid)
        if layer is None:
            raise InvalidParameter(MESSAGE, [f"'layerDefs': the requested layer (layerId: "
                                             f"{lid}) was not found."])
        if layer.kind != "feature":
            raise InvalidParameter(MESSAGE, [f"'layerDefs': layer {lid} is not a feature layer"])
    for lid in f.layer_time_options:
        if lid not in by_id:
            raise InvalidParameter(MESSAGE, [f"'layerTimeOptions': the requested layer "
                                             f"(layerId: {lid}) was not found."])
    if f.clipping is not None:
        for lid in f.clipping.excluded:
            if lid not in by_id:
                raise InvalidParameter(MESSAGE, [f"'clipping' excludedLayers: the requested "
                                                 f"layer (layerId: {lid}) was not found."])
    if f.spatial_filter is not None and not any(lyr.kind == "feature" for lyr in layers):
        raise InvalidParameter(MESSAGE, ["'spatialFilter' needs a feature layer; this service "
                                         "has none"])
    for sel in f.selections:
        layer = by_id.get(sel.layer_id)
        if layer is None:
            raise InvalidParameter(MESSAGE, [f"'selectionDefinitions': the requested layer "
                                             f"(layerId: {sel.layer_id}) was not found."])
        if layer.kind != "feature":
            raise InvalidParameter(MESSAGE, [f"'selectionDefinitions': layer {sel.layer_id} is "
                                             "not a feature layer"])
        if sel.unique_ids:
            raise InvalidParameter(MESSAGE, [f"'selectionDefinitions': layer {sel.layer_id} "
                                             "declares no uniqueIdInfo; select with objectIds"])

