"""Web Mercator's numbers, in one place.

``HALF_WORLD`` is the exact half width of the world (pi x 6378137 m): the projection maths
(world copies, a bbox past 180 degrees) use it. Esri's standard cache publishes its origin
rounded to ``ESRI_TILE_ORIGIN`` (-20037508.342787), and every ArcGIS client computes tile
positions from the tileInfo it reads, so the tiling scheme keeps Esri's literal (2.2 mm
from the exact value, far below a pixel at any level).
"""

from __future__ import annotations

import math

RADIUS = 6378137.0
HALF_WORLD = math.pi * RADIUS
MAX_LAT = 85.0511287798066  # where the square world ends: atan(sinh(pi))
ESRI_TILE_ORIGIN = 20037508.342787
ESRI_RESOLUTION0 = 156543.03392800014  # level 0 of Esri's standard cache, m / px
ESRI_SCALE0 = 591657527.591555
