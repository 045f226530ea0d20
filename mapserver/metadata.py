"""The JSON documents that describe services and layers (root, /layers, /{id}, catalog, info).

Plain dicts built from the immutable catalog; the HTTP layer serialises them as JSON, pretty
JSON, JSONP or an HTML page. Field names and nesting follow what ArcGIS clients read.
"""

from __future__ import annotations

from mapserver.catalog.model import Catalog, Layer, Service
from mapserver.encode.image import SUPPORTED_IMAGE_FORMAT_TYPES
from mapserver.features.query import layer_has_z

CURRENT_VERSION = 11.1
FULL_VERSION = "11.1.0"
CAPABILITIES = "Map,Query,Data"


def info_json() -> dict:
    return {"currentVersion": CURRENT_VERSION, "fullVersion": FULL_VERSION,
            "soapUrl": None, "secureSoapUrl": None, "owningSystemUrl": None,
            "authInfo": {"isTokenBasedSecurity": False}}


def catalog_json(catalog: Catalog, folder: str = "") -> dict:
    """Root (folder "") or one folder: sub-folders and services (names carry the folder)."""
    services = [{"name": s.name, "type": "MapServer"}
                for s in catalog.services.values() if s.folder == folder]
    return {"currentVersion": CURRENT_VERSION,
            "folders": list(catalog.folders) if not folder else [],
            "services": sorted(services, key=lambda s: s["name"])}


def _extent(box: tuple[float, float, float, float], service: Service) -> dict:
    return {"xmin": box[0], "ymin": box[1], "xmax": box[2], "ymax": box[3],
            "spatialReference": service.sr.to_json()}


def service_json(service: Service) -> dict:
    out = {
        "currentVersion": CURRENT_VERSION,
        "cimVersion": "3.1.0",
        "serviceDescription": service.service_description,
        "mapName": service.map_name,
        "description": service.description,
        "copyrightText": service.copyright,
        "supportsDynamicLayers": True,
        "layers": [{"id": lyr.id, "name": lyr.name, "parentLayerId": lyr.parent_id,
                    "defaultVisibility": lyr.default_visibility,
                    "subLayerIds": list(lyr.sublayer_ids) if lyr.kind == "group" else None,
                    "minScale": lyr.min_scale, "maxScale": lyr.max_scale,
                    "type": lyr.type_name,
                    **({"geometryType": lyr.geometry_type} if lyr.geometry_type else {}),
                    "supportsDynamicLegends": True}
                   for lyr in service.layers],
        "tables": [],
        "spatialReference": service.sr.to_json(),
        "singleFusedMapCache": False,
        "initialExtent": _extent(service.initial_extent, service),
        "fullExtent": _extent(service.full_extent, service),
        "datesInUnknownTimezone": False,
        "minScale": 0,
        "maxScale": 0,
        "units": service.sr.units,
        "supportedImageFormatTypes": SUPPORTED_IMAGE_FORMAT_TYPES,
        "documentInfo": {"Title": service.map_name, "Author": "", "Comments": "",
                         "Subject": service.description, "Category": "", "Keywords": "",
                         "AntialiasingMode": "Fast", "TextAntialiasingMode": "Force"},
        "capabilities": CAPABILITIES,
        "supportedQueryFormats": "JSON, geoJSON",
        "exportTilesAllowed": False,
        "maxExportTilesCount": 100000,
        "maxRecordCount": service.max_record_count,
        "maxImageHeight": service.max_image_height,
        "maxImageWidth": service.max_image_width,
        "supportedExtensions": "",
        "supportsDatumTransformation": True,
        "referenceScale": service.source.get("referenceScale", 0) or 0,
        "supportsTimeRelation": True,
        "supportsClipping": True,
        "supportsSpatialFilter": True,
        "supportsQueryDataElements": False,
        "supportsQueryDomains": True,
        "resampling": False,
        "tileServers": [],
    }
    if service.versions:  # gdbVersion: the versions export accepts
        out["hasVersionedData"] = True
        out["versions"] = list(service.versions)
    if service.tiling is not None:  # a cached service: clients switch to /tile/{z}/{y}/{x}
        out["singleFusedMapCache"] = True
        out["tileInfo"] = service.tiling.to_json()
        out["storageInfo"] = {"storageFormat": "esriMapCacheStorageModeExploded",
                              "packetSize": 128}
    if service.time_info is not None and service.time_info.extent is not None:
        ti = service.time_info
        out["timeInfo"] = {"timeExtent": list(ti.extent),
                           "timeReference": {"timeZone": "UTC",
                                             "respectsDaylightSaving": False},
                           "timeRelation": "esriTimeRelationOverlaps",
                           "defaultTimeInterval": ti.interval,
                           "defaultTimeIntervalUnits": ti.interval_units,
                           "defaultTimeWindow": 0, "hasLiveData": False}
    return out


def layer_json(service: Service, layer: Layer) -> dict:
    parent = service.layer(layer.parent_id) if layer.parent_id >= 0 else None
    bounds = layer.native_bounds
    out: dict = {
        "currentVersion": CURRENT_VERSION,
        "id": layer.id,
        "name": layer.name,
        "type": layer.type_name,
        "description": layer.description,
        "geometryType": layer.geometry_type,
        "sourceSpatialReference": layer.sr.to_json() if layer.sr else service.sr.to_json(),
        "copyrightText": layer.copyright,
        "parentLayer": {"id": parent.id, "name": parent.name} if parent else None,
        "subLayers": [{"id": s, "name": service.layer(s).name} for s in layer.sublayer_ids],
        "minScale": layer.min_scale,
        "maxScale": layer.max_scale,
        "referenceScale": layer.reference_scale,
        "defaultVisibility": layer.default_visibility,
        "extent": ({"xmin": bounds[0], "ymin": bounds[1], "xmax": bounds[2],
                    "ymax": bounds[3], "spatialReference": layer.sr.to_json()}
                   if bounds and layer.sr else None),
        "hasAttachments": False,
        "htmlPopupType": "esriServerHTMLPopupTypeNone",
        "displayField": layer.display_field or "",
        "typeIdField": None,
        "subtypeFieldName": None,
        "subtypeField": None,
        "defaultSubtypeCode": None,
        "fields": None,
        "geometryField": None,
        "indexes": [],
        "subtypes": [],
        "relationships": [],
        "canModifyLayer": False,
        "canScaleSymbols": False,
        "hasLabels": bool(layer.labels),
        "capabilities": CAPABILITIES if layer.kind == "feature" else "Map",
        "maxRecordCount": service.max_record_count,
        "supportsStatistics": layer.kind == "feature",
        "supportsAdvancedQueries": layer.kind == "feature",
        "supportedQueryFormats": "JSON, geoJSON, PBF" if layer.table is not None
        else "JSON, geoJSON",
        "isDataVersioned": False,
        "ownershipBasedAccessControlForFeatures": {"allowOthersToQuery": True},
        "useStandardizedQueries": True,
        "advancedQueryCapabilities": {
            "useStandardizedQueries": True, "supportsStatistics": True,
            "supportsHavingClause": True, "supportsOrderBy": True, "supportsDistinct": True,
            "supportsPercentileStatistics": True,
            "supportsCountDistinct": False, "supportsPagination": True,
            "supportsTrueCurve": False, "supportsReturningQueryExtent": True,
            "supportsQueryWithDistance": True, "supportsSqlExpression": False},
        "supportsDatumTransformation": True,
        "dateFieldsTimeReference": {"timeZone": "UTC", "respectsDaylightSaving": False},
        "supportsCoordinatesQuantization": layer.table is not None,
        "supportsDynamicLegends": True,
        "definitionExpression": layer.definition_expression,
        "drawingInfo": None,
    }
    if layer.table is not None:
        out["fields"] = [f.to_json() for f in layer.table.fields]
        domains = declared_domains(service, layer)  # "domain" declared on a field, if any
        for fj in out["fields"]:
            if fj["name"] in domains:
                fj["domain"] = domains[fj["name"]]
        out["objectIdField"] = layer.table.oid_field
        out["hasZ"] = layer_has_z(layer)
        out["hasM"] = False
        out["geometryField"] = {"name": "Shape", "type": "esriFieldTypeGeometry",
                                "alias": "Shape"}
        out["drawingInfo"] = {"renderer": layer.renderer.to_json() if layer.renderer else None,
                              "scaleSymbols": True, "transparency": layer.transparency,
                              "labelingInfo": [lc.source for lc in layer.labels] or None}
    elif layer.kind == "raster":
        out["drawingInfo"] = {"renderer": None, "transparency": layer.transparency,
                              "labelingInfo": None}
        out["bandCount"] = len(layer.raster_style.bands) if layer.raster_style else None
    if layer.time_info is not None:
        out["timeInfo"] = layer.time_info.to_json()
    if any(layer.id in tables for tables in service.versions.values()):
        out["isDataVersioned"] = True
    if layer.range_infos:
        out["rangeInfos"] = [r.to_json() for r in layer.range_infos]
    if layer.parameter_filter is not None:
        out["parameterInfos"] = [p.to_json() for p in layer.parameter_filter.infos]
    if layer.archiving is not None:
        out["supportsQueryWithHistoricMoment"] = True
        out["archivingInfo"] = layer.archiving.to_json()
    return out


DOMAIN_TYPES = ("codedValue", "range")


def declared_domains(service: Service, layer: Layer) -> dict[str, dict]:
    """Field name -> domain JSON declared in the service definition:
    ``"fields": [{"name": "kind", "domain": {"type": "codedValue", "name": "...",
    "codedValues": [{"name": "School", "code": "school"}]}}]`` on the layer. Only fields the
    layer has, and only coded-value and range domains, are kept."""
    raw = next((d for d in service.source.get("layers", []) or []
                if isinstance(d, dict) and d.get("id") == layer.id), None)
    if raw is None or layer.table is None or not isinstance(raw.get("fields"), list):
        return {}
    types = {f.name.lower(): f for f in layer.table.fields}
    out = {}
    for f in raw["fields"]:
        if not isinstance(f, dict) or not isinstance(f.get("domain"), dict):
            continue
        field = types.get(str(f.get("name", "")).lower())
        dom = f["domain"]
        if field is None or dom.get("type") not in DOMAIN_TYPES:
            continue
        out[field.name] = {"type": dom["type"], "name": str(dom.get("name") or field.name),
                           "description": str(dom.get("description", "")),
                           "fieldType": field.type,
                           **({"codedValues": list(dom.get("codedValues") or [])}
                              if dom["type"] == "codedValue" else
                              {"range": list(dom.get("range") or [None, None])}),
                           "mergePolicy": dom.get("mergePolicy", "esriMPTDefaultValue"),
                           "splitPolicy": dom.get("splitPolicy", "esriSPTDefaultValue")}
    return out


def layers_json(service: Service) -> dict:
    return {"layers": [layer_json(service, lyr) for lyr in service.layers], "tables": []}
