"""What a view needs: the catalog, settings, output store, the service and parsed params.

Operations register themselves by name (``export``, ``legend``, ``identify``, ...), so new
endpoints are added in their own module without touching the dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Response

from mapserver.catalog.model import Catalog, Layer, Service
from mapserver.output import OutputStore
from mapserver.params.common import Params
from mapserver.settings import Settings


@dataclass(frozen=True)
class AppState:
    settings: Settings
    catalog: Catalog
    outputs: OutputStore


@dataclass(frozen=True)
class Ctx:
    state: AppState
    service: Service
    params: Params
    base_url: str  # e.g. http://host/arcgis/rest/services/World/MapServer
    root_url: str  # e.g. http://host


ServiceOp = Callable[[Ctx, list[str]], Response]
LayerOp = Callable[[Ctx, Layer, list[str]], Response]

SERVICE_OPS: dict[str, ServiceOp] = {}
LAYER_OPS: dict[str, LayerOp] = {}


def service_op(name: str) -> Callable[[ServiceOp], ServiceOp]:
    """Register ``…/MapServer/<name>[/...]``; the handler gets the remaining path parts."""
    def deco(fn: ServiceOp) -> ServiceOp:
        SERVICE_OPS[name.lower()] = fn
        return fn
    return deco


def layer_op(name: str) -> Callable[[LayerOp], LayerOp]:
    """Register ``…/MapServer/<layerId>/<name>[/...]``; the handler gets the remaining parts."""
    def deco(fn: LayerOp) -> LayerOp:
        LAYER_OPS[name.lower()] = fn
        return fn
    return deco
