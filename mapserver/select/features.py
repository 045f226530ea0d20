"""The one selection path: which features of one vector layer a request means.

Every entry point asks this module, so what the map draws, what identify finds and what query
returns can never disagree. Order matters for cost only: the STRtree narrows to envelope
candidates first (the view and the spatial filter), then object ids, time, the exact spatial
relation, and last the where clause (definitionExpression AND layerDefs AND the declared
filters AND the operation's own clause), evaluated over just the surviving rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from mapserver.catalog.model import Layer
from mapserver.features.relations import relate
from mapserver.params.filters import OVERLAPS, Window
from mapserver.select.time import time_mask
from mapserver.where import WhereExpression, combine_and, compile_clause


@dataclass(frozen=True)
class SpatialFilter:
    """A geometry already in the layer's SR, and how features must relate to it."""

    geometry: shapely.Geometry
    rel: str = "esriSpatialRelIntersects"
    relation_param: str | None = None


@dataclass(frozen=True)
class LayerFilter:
    """Everything that decides one layer's features apart from the view: the combined where
    clause, the (layerTimeOptions-adjusted) time window and relation, a spatial filter."""

    where: WhereExpression | None = None
    window: Window | None = None
    relation: str = OVERLAPS
    spatial: SpatialFilter | None = None

    def and_where(self, expr: WhereExpression | None) -> LayerFilter:
        return LayerFilter(combine_and(self.where, expr), self.window, self.relation,
                           self.spatial)


def layer_where(layer: Layer, layer_def: str | None = None,
                message: str | None = None) -> WhereExpression | None:
    """The layer's ``definitionExpression`` AND the request's ``layerDefs`` entry for it."""
    table = layer.table
    assert table is not None
    return combine_and(
        compile_clause(table.field_infos, layer.definition_expression or None,
                       "definitionExpression", message),
        compile_clause(table.field_infos, layer_def, "layerDefs", message))


def select_features(layer: Layer, filt: LayerFilter, area: shapely.Geometry | None = None,
                    object_ids: Sequence[int] | None = None) -> np.ndarray:
    """Sorted indexes (into the layer's FeatureTable) of the features ``filt`` selects whose
    envelope meets ``area`` (a view or search area in the layer's SR; None: anywhere)."""
    table = layer.table
    assert table is not None
    if area is not None and area.is_empty:
        return np.empty(0, dtype=np.int64)
    idx = table.candidates(area)
    spatial = filt.spatial
    if spatial is not None:
        if spatial.geometry.is_empty:
            return np.empty(0, dtype=np.int64)
        idx = np.intersect1d(idx, table.candidates(spatial.geometry))
    if object_ids is not None and len(idx):
        idx = idx[np.isin(table.columns[table.oid_field][idx], np.asarray(object_ids))]
    if filt.window is not None and layer.time_info is not None and len(idx):
        idx = idx[time_mask(layer, idx, filt.window, filt.relation)]
    if spatial is not None and len(idx):
        idx = idx[relate(table.geometry[idx], spatial.geometry, spatial.rel,
                         spatial.relation_param)]
    if filt.where is not None and len(idx):
        idx = idx[table.where_mask(filt.where, idx)]
    return idx.astype(np.int64, copy=False)
