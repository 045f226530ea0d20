"""Which layers a request shows: ``layers=show|hide|include|exclude``, default visibility
through the group tree, and scale ranges (a layer inside an out-of-scale group is hidden)."""

from __future__ import annotations

from mapserver.catalog.model import Layer, Service
from mapserver.errors import InvalidParameter
from mapserver.params.filters import LayerSelection

MESSAGE = "Invalid or missing input parameters."


def descendants(service: Service, lid: int) -> list[int]:
    """``lid`` and, for a group, every layer below it. Unknown ids are refused."""
    layer = service.layer(lid)
    if layer is None:
        raise InvalidParameter(MESSAGE, [f"The requested layer (layerId: {lid}) was not found."])
    out = [lid]
    for sub in layer.sublayer_ids:
        out.extend(descendants(service, sub))
    return out


def default_visible(service: Service) -> set[int]:
    """Layers visible by default: their own flag and every ancestor's flag are on."""
    out = set()
    for layer in service.layers:
        cur: Layer | None = layer
        ok = True
        while cur is not None:
            if not cur.default_visibility:
                ok = False
                break
            cur = service.layer(cur.parent_id) if cur.parent_id >= 0 else None
        if ok:
            out.add(layer.id)
    return out


def resolve_layers(service: Service, sel: LayerSelection) -> set[int]:
    """The ids drawn for a ``layers`` parameter (groups expand to their members)."""
    listed = {d for lid in sel.ids for d in descendants(service, lid)}
    default = default_visible(service)
    if sel.verb is None:
        return default
    if sel.verb == "show":
        return listed
    if sel.verb == "hide":
        return {lyr.id for lyr in service.layers} - listed
    if sel.verb == "include":
        return default | listed
    return default - listed  # exclude


def in_scale(service: Service, layer: Layer, scale: float) -> bool:
    """The layer and every group above it are inside their scale ranges at ``scale``."""
    cur: Layer | None = layer
    while cur is not None:
        if not cur.visible_at(scale):
            return False
        cur = service.layer(cur.parent_id) if cur.parent_id >= 0 else None
    return True
