"""An ArcGIS REST MapServer-compatible map server backed by real rendering."""

__version__ = "0.1.0"
