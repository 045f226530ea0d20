"""One selection path for identify, find and query: which features of a layer match.

Order matters for cost only: the STRtree narrows to envelope candidates first, then object ids,
time, the exact spatial relation, and last the where clause (the layer's definitionExpression
AND the request's layerDefs AND ``where``), evaluated over just the surviving rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from mapserver.catalog.model import Layer
from mapserver.errors import WhereClauseError
from mapserver.features.relations import relate
from mapserver.sources.features import FeatureTable
from mapserver.timefilter import time_mask
from mapserver.where import WhereExpression, combine_and, compile_where


@dataclass(frozen=True)
class SpatialFilter:
    """A query geometry already in the layer's SR, and how features must relate to it."""

    geometry: shapely.Geometry
    rel: str = "esriSpatialRelIntersects"
    relation_param: str | None = None


def compile_clause(table: FeatureTable, text: str | None, param: str,
                   message: str | None = None) -> WhereExpression | None:
    """Compile one clause; errors name the parameter it came from (``where``, ``layerDefs``)."""
    try:
        return compile_where(text, table.field_infos)
    except WhereClauseError as exc:
        raise WhereClauseError(message or exc.message,
                               [f"'{param}' parameter is invalid", *exc.details]) from None


def layer_where(layer: Layer, where: str | None = None, layer_def: str | None = None,
                message: str | None = None) -> WhereExpression | None:
    table = layer.table
    assert table is not None
    return combine_and(
        compile_clause(table, layer.definition_expression or None, "definitionExpression",
                       message),
        compile_clause(table, layer_def, "layerDefs", message),
        compile_clause(table, where, "where", message))


def filter_features(layer: Layer, where: str | None = None, layer_def: str | None = None,
                    time: tuple[int | None, int | None] | None = None,
                    spatial: SpatialFilter | None = None,
                    object_ids: Sequence[int] | None = None,
                    message: str | None = None,
                    expression: WhereExpression | None = None) -> np.ndarray:
    """Sorted indexes (into the layer's FeatureTable) of matching features.

    ``expression``, when given, is ANDed with the compiled clauses (e.g. find's text match).
    """
    table = layer.table
    assert table is not None
    expr = combine_and(layer_where(layer, where, layer_def, message), expression)
    if spatial is not None:
        if spatial.geometry.is_empty:
            return np.empty(0, dtype=np.int64)
        idx = table.candidates(spatial.geometry)
    else:
        idx = np.arange(table.n)
    if object_ids is not None and len(idx):
        idx = idx[np.isin(table.columns[table.oid_field][idx], np.asarray(object_ids))]
    if time is not None and layer.time_info is not None and len(idx):
        idx = idx[time_mask(layer, idx, time)]
    if spatial is not None and len(idx):
        idx = idx[relate(table.geometry[idx], spatial.geometry, spatial.rel,
                         spatial.relation_param)]
    if expr is not None and len(idx):
        idx = idx[table.where_mask(expr, idx)]
    return idx.astype(np.int64, copy=False)
