"""Feature operations (identify, find, query) over in-memory layers, independent of HTTP.

They select through the planner's selection half (:mod:`mapserver.select`): the same
filters the map is drawn with, so a click, a search and a query answer what the map shows.
The other modules parse Esri geometry in and write Esri JSON / GeoJSON out.
"""
