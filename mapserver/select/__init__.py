"""The planner: which layers and which features a request means, for every entry point.

``plan.py`` (resolve the request's layers, one filter per layer, draw items for a grid),
``features.py`` (the one selection path), ``layers.py`` (visibility, groups, scale ranges),
``dynamic.py`` (``dynamicLayers``), ``declared.py`` (versions, archiving, parameter and range
filters, raster time series), ``time.py`` (time windows and relations).
"""
