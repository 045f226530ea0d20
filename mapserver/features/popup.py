"""The result object identify and find share: one feature as a popup sees it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapserver.catalog.model import Layer
from mapserver.features.attributes import display_value, popup_attributes
from mapserver.features.geometry_out import generalize, project, to_esri
from mapserver.geo.sr import SpatialRef


@dataclass(frozen=True)
class OutputOptions:
    """How identify/find results are written: output SR, geometry and attribute style."""

    sr: SpatialRef
    return_geometry: bool = True
    max_offset: float | None = None
    precision: int | None = None
    field_names: bool = False
    unformatted: bool = False


def feature_results(layer: Layer, idx: np.ndarray, opts: OutputOptions,
                    extra: list[dict] | None = None) -> list[dict]:
    """One result per feature index; ``extra[k]`` is merged in first (find's foundFieldName)."""
    table = layer.table
    assert table is not None
    geoms = None
    if opts.return_geometry and len(idx):
        geoms = generalize(project(table.geometry[idx], table.sr, opts.sr), opts.max_offset)
    sr_json = opts.sr.to_json()
    display = table.field(layer.display_field) if layer.display_field else None
    out = []
    for k, i in enumerate(idx.tolist()):
        res: dict = {"layerId": layer.id, "layerName": layer.name}
        if extra is not None:
            res.update(extra[k])
        else:
            res["value"] = display_value(table, layer.display_field, i)
        res["displayFieldName"] = display.name if display else ""
        res["attributes"] = popup_attributes(table, i, opts.field_names, opts.unformatted)
        res["geometryType"] = table.geometry_type
        if geoms is not None:
            g = to_esri(geoms[k], opts.precision)
            if g is not None:
                g["spatialReference"] = sr_json
            res["geometry"] = g
        out.append(res)
    return out
