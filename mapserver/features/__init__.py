"""Feature operations (identify, find, query) over in-memory layers, independent of HTTP.

:func:`~mapserver.features.filtering.filter_features` is the one selection path (where clauses,
layerDefs, definitionExpression, time, geometry with any ``esriSpatialRel``, object ids);
the other modules parse Esri geometry in and write Esri JSON / GeoJSON out.
"""

from mapserver.features.filtering import SpatialFilter, filter_features

__all__ = ["SpatialFilter", "filter_features"]
