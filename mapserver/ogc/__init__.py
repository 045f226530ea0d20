"""The OGC doors of every map service: WMS 1.1.1 / 1.3.0 and, for cached services, WMTS 1.0.0.

ArcGIS Server exposes each MapServer also as ``…/MapServer/WMSServer`` and ``…/MapServer/WMTS``;
so does this package, as thin translators onto the one pipeline:

- ``wms.py``: GetCapabilities (layers, styles, CRS list, time dimension); GetMap builds a
  :class:`~mapserver.params.filters.MapFilters` from ``LAYERS``/``TIME`` and a pixel
  :class:`~mapserver.geo.grid.Grid` from ``BBOX``/``CRS``/``WIDTH``/``HEIGHT`` and draws with
  ``maps.export.draw_map``; GetFeatureInfo runs ``features.identify.run_identify``;
  GetLegendGraphic lays out ``maps.legend`` swatches.
- ``wmts.py``: the tile matrix sets (morecantile models built from the service's
  ``tiling.TilingScheme``), the capabilities, and GetTile (KVP and RESTful) through
  ``maps.tiles.get_tile``, so a WMTS tile is byte-for-byte the ArcGIS ``/tile``.
- ``common.py``: OGC exceptions, CRS codes and axis order, ISO 8601 times, XML writing.
- ``views.py``: the two ``service_op`` registrations (so the dispatcher's access check
  applies) and the HTTP answers; every failure becomes an OGC exception document.
"""
