"""Entry points that draw: ``/export``, ``/tile``, ``legend`` (batch images call them too).

Each is a thin caller of the one pipeline: typed request values (``params/``) → a Grid
(``geo/``) → the planner (``select/``) → renderers (``render/``) → encoders (``encode/``).
"""
