"""Service and layer definitions: validated once at load, immutable afterwards.

A :class:`Layer` knows its data (a :class:`FeatureTable` or a :class:`RasterSource`), its
symbology, scale range and time info. A :class:`Service` is an ordered tuple of layers plus
service-level metadata. Request handling only reads these values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mapserver.catalog.declared import Archiving, ParameterFilter, RangeInfo, SeriesEntry
from mapserver.geo.sr import SpatialRef
from mapserver.render.style import Renderer
from mapserver.security.policy import Access
from mapserver.sources.features import FeatureTable
from mapserver.sources.rasters import RasterSource
from mapserver.tiling import TilingScheme


@dataclass(frozen=True)
class RasterStyle:
    """How a raster layer becomes RGBA: band selection, linear stretch, optional colour ramp."""

    bands: tuple[int, ...]
    stretch_min: tuple[float, ...] | None  # per selected band; None: values used as they are
    stretch_max: tuple[float, ...] | None
    colormap: np.ndarray | None = field(default=None, compare=False, hash=False)  # (256, 4) u8
    resampling: str = "nearest"
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class LabelClass:
    """One entry of ``labelingInfo``: what to print (``expression``: VBScript
    ``labelExpression`` or Arcade ``labelExpressionInfo``, render/labels.py), for which
    features (``where``, a compiled where clause), where (``placement``: an
    ``esriServer*Placement*`` name, "" for centred), font size (points), colour, halo."""

    field: str  # the first field the expression reads ("" for a constant text)
    size: float = 8.0
    color: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    halo_color: tuple[float, float, float, float] | None = None
    halo_size: float = 0.0
    weight: str = "normal"
    family: str = "DejaVu Sans"
    min_scale: float = 0.0
    max_scale: float = 0.0
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    expression: Any = field(default=None, compare=False, hash=False)  # LabelExpression
    where: Any = field(default=None, compare=False, hash=False)  # WhereExpression | None
    placement: str = ""


@dataclass(frozen=True)
class TimeInfo:
    start_field: str
    end_field: str | None
    extent: tuple[int, int] | None  # epoch ms
    interval: float = 1
    interval_units: str = "esriTimeUnitsYears"

    def to_json(self) -> dict:
        return {"startTimeField": self.start_field, "endTimeField": self.end_field,
                "trackIdField": None,
                "timeExtent": list(self.extent) if self.extent else None,
                "timeReference": {"timeZone": "UTC", "respectsDaylightSaving": False},
                "timeInterval": self.interval, "timeIntervalUnits": self.interval_units,
                "exportOptions": {"useTime": True, "timeDataCumulative": False,
                                  "timeOffset": None, "timeOffsetUnits": None},
                "hasLiveData": False}


@dataclass(frozen=True)
class Layer:
    id: int
    name: str
    kind: str  # "feature" | "raster" | "group"
    parent_id: int = -1
    sublayer_ids: tuple[int, ...] = ()
    description: str = ""
    copyright: str = ""
    default_visibility: bool = True
    min_scale: float = 0.0
    max_scale: float = 0.0
    display_field: str | None = None
    definition_expression: str = ""
    transparency: int = 0
    renderer: Renderer | None = None
    labels: tuple[LabelClass, ...] = ()
    reference_scale: float = 0.0  # the service's referenceScale (0: symbols keep their size)
    scale_symbols: bool = True  # drawingInfo.scaleSymbols: follow referenceScale
    time_info: TimeInfo | None = None
    table: FeatureTable | None = field(default=None, compare=False, hash=False)
    raster: RasterSource | None = field(default=None, compare=False, hash=False)
    raster_style: RasterStyle | None = None
    # declarations that export parameters act on (catalog/declared.py)
    range_infos: tuple[RangeInfo, ...] = ()
    parameter_filter: ParameterFilter | None = None
    archiving: Archiving | None = None
    time_series: tuple[SeriesEntry, ...] = ()  # raster layers: dated rasters, by time

    @property
    def type_name(self) -> str:
        return {"feature": "Feature Layer", "raster": "Raster Layer",
                "group": "Group Layer"}[self.kind]

    @property
    def geometry_type(self) -> str | None:
        return self.table.geometry_type if self.table is not None else None

    @property
    def sr(self) -> SpatialRef | None:
        if self.table is not None:
            return self.table.sr
        if self.raster is not None:
            return self.raster.sr
        return None

    @property
    def native_bounds(self) -> tuple[float, float, float, float] | None:
        if self.table is not None:
            return self.table.bounds
        if self.raster is not None:
            return self.raster.bounds
        return None

    def visible_at(self, scale: float) -> bool:
        """ArcGIS scale range: minScale is the most zoomed-out scale shown (0 = no limit)."""
        if self.min_scale and scale > self.min_scale * (1 + 1e-9):
            return False
        return not (self.max_scale and scale < self.max_scale * (1 - 1e-9))


@dataclass(frozen=True)
class Service:
    name: str  # includes the folder: "Folder/Name"
    path: str  # the definition file
    sr: SpatialRef
    layers: tuple[Layer, ...]
    full_extent: tuple[float, float, float, float]
    initial_extent: tuple[float, float, float, float]
    description: str = ""
    service_description: str = ""
    map_name: str = "Layers"
    copyright: str = ""
    max_image_width: int = 4096
    max_image_height: int = 4096
    max_record_count: int = 1000
    time_info: TimeInfo | None = None
    tiling: TilingScheme | None = None  # set when the definition declares "tiling": cached
    # dynamicLayers dataLayer sources: workspace id -> folder (absolute path)
    workspaces: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # gdbVersion: version name -> {layer id: the layer's table in that version}
    versions: Mapping[str, Mapping[int, FeatureTable]] = field(default_factory=dict,
                                                               compare=False, hash=False)
    # who may use the service (``access`` in the definition); None: public
    access: Access | None = None

    @property
    def folder(self) -> str:
        return self.name.rsplit("/", 1)[0] if "/" in self.name else ""

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def layer(self, layer_id: int) -> Layer | None:
        for lyr in self.layers:
            if lyr.id == layer_id:
                return lyr
        return None

    @property
    def layer_ids(self) -> tuple[int, ...]:
        return tuple(lyr.id for lyr in self.layers)


@dataclass(frozen=True)
class Catalog:
    """All services that loaded, plus the problems of those that did not."""

    services: Mapping[str, Service]
    folders: tuple[str, ...]
    problems: tuple[str, ...] = ()
    # definition file -> its stamp when it was read (catalog/definitions.py), so the hot
    # reloader (catalog/live.py) can take over a catalog without reading every file again
    files: Mapping[str, tuple[int, ...]] = field(default_factory=dict, compare=False,
                                                 hash=False)

    def service(self, name: str) -> Service | None:
        return self.services.get(name)
