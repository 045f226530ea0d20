"""``find``: search text in attribute fields across layers.

``contains=true`` (the default) is a case-insensitive substring match, ``contains=false`` an
exact, case-sensitive match, as ArcGIS documents. Without ``searchFields`` every string field
is searched; numeric fields named in ``searchFields`` match when the text is that number. Each
(feature, field) match is one result, so ``foundFieldName`` tells the client where it hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mapserver.catalog.model import Layer, Service
from mapserver.errors import InvalidParameter
from mapserver.features.attributes import format_value
from mapserver.features.common import opt_bool, opt_float, opt_precision, opt_sr
from mapserver.features.popup import OutputOptions, feature_results
from mapserver.params.common import Params, parse_f, parse_int_list
from mapserver.params.filters import MapFilters, parse_map_filters
from mapserver.select.features import select_features
from mapserver.select.plan import MapLayers, layer_filter, resolve_map
from mapserver.sources.features import NUMERIC_FIELD_TYPES, FeatureTable

MESSAGE = "Invalid or missing input parameters."


@dataclass(frozen=True)
class FindRequest:
    f: str
    text: str
    contains: bool
    layer_ids: tuple[int, ...]
    search_fields: tuple[str, ...] | None
    opts: OutputOptions
    filters: MapFilters = field(default_factory=MapFilters)


def parse_find(params: Params, service: Service) -> FindRequest:
    f = parse_f(params, ("html", "json", "pjson"), "html")
    text = params.raw("searchText")
    if text is None:
        raise InvalidParameter(MESSAGE, ["'searchText' parameter is required"])
    layers_raw = params.raw("layers")
    if layers_raw is None:
        raise InvalidParameter(MESSAGE, ["'layers' parameter is required"])
    ids = tuple(dict.fromkeys(parse_int_list(layers_raw.partition(":")[2]
                                             if ":" in layers_raw else layers_raw, "layers")))
    fields_raw = params.raw("searchFields")
    search_fields = None
    if fields_raw is not None:
        search_fields = tuple(n.strip() for n in fields_raw.split(",") if n.strip()) or None
    opts = OutputOptions(
        sr=opt_sr(params, "sr", service.sr, MESSAGE),
        return_geometry=opt_bool(params, "returnGeometry", True, MESSAGE),
        max_offset=opt_float(params, "maxAllowableOffset", MESSAGE, 0.0),
        precision=opt_precision(params, MESSAGE),
        field_names=opt_bool(params, "returnFieldName", False, MESSAGE),
        unformatted=opt_bool(params, "returnUnformattedValues", False, MESSAGE))
    return FindRequest(f=f, text=text, contains=opt_bool(params, "contains", True, MESSAGE),
                       layer_ids=ids, search_fields=search_fields, opts=opts,
                       filters=parse_map_filters(params, service.sr, layers=False, time=False))


def _layers(m: MapLayers, ids: tuple[int, ...]) -> list[Layer]:
    out: list[Layer] = []
    for lid in ids:
        layer = m.layer(lid)
        if layer is None:
            raise InvalidParameter(MESSAGE,
                                   [f"The requested layer (layerId: {lid}) was not found."])
        members = [layer] if layer.kind != "group" else \
            [m.layer(s) for s in layer.sublayer_ids]
        for member in members:
            if member is not None and member.table is not None and member not in out:
                out.append(member)
    return out


def _match(table: FeatureTable, name: str, idx: np.ndarray, text: str, contains: bool
           ) -> np.ndarray:
    fld = table.field(name)
    assert fld is not None
    col = table.columns[fld.name][idx]
    if fld.type == "esriFieldTypeString":
        if contains:
            needle = text.lower()
            return np.fromiter((v is not None and needle in v.lower() for v in col), bool,
                               len(col))
        return np.fromiter((v == text for v in col), bool, len(col))
    if fld.type in NUMERIC_FIELD_TYPES:
        try:
            number = float(text)
        except ValueError:
            return np.zeros(len(col), dtype=bool)
        ok = col == number
        null = table.columns.get(fld.name + "__null")
        return ok & ~null[idx] if null is not None else ok
    return np.zeros(len(col), dtype=bool)


def run_find(service: Service, req: FindRequest) -> dict:
    results: list[dict] = []
    m = resolve_map(service, req.filters)
    for layer in _layers(m, req.layer_ids):
        table = layer.table
        assert table is not None
        if req.search_fields is None:
            names = [f.name for f in table.fields if f.type == "esriFieldTypeString"]
        else:
            names = [table.field(n).name for n in req.search_fields  # type: ignore[union-attr]
                     if table.field(n) is not None]
        if not names:
            continue
        idx = select_features(layer, layer_filter(m, layer))
        hits = [(name, _match(table, name, idx, req.text, req.contains)) for name in names]
        rows: list[int] = []
        extra: list[dict] = []
        for k, i in enumerate(idx.tolist()):
            for name, mask in hits:
                if mask[k]:
                    fld = table.field(name)
                    assert fld is not None
                    rows.append(i)
                    extra.append({"foundFieldName": fld.name if req.opts.field_names
                                  else fld.alias,
                                  "value": format_value(fld, table.value(fld.name, i))})
        results.extend(feature_results(layer, np.asarray(rows, dtype=np.int64), req.opts,
                                       extra))
    return {"results": results}
