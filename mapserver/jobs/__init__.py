"""Earth Engine–shaped batch exports (image:export, map:export, video:export) and Operations.

Layout: :mod:`.errors` (Google error bodies), :mod:`.config` (env settings), :mod:`.wire` (request
bodies to a typed :class:`~.wire.JobPlan`), :mod:`.expression` (the whitelisted EE expression
subset), :mod:`.imagery` (pixels for an expression on a Grid, through the /export pipeline),
:mod:`.shards` (the unit of work a worker runs), :mod:`.writers` (GeoTIFF/VRT/PNG/JPEG/MP4/viewer),
:mod:`.destinations` (bucket -> local dir or S3), :mod:`.store` (SQLite operations and shards),
:mod:`.executor` (process pool or Dask), :mod:`.dispatcher` (claims and runs operations),
:mod:`.service` (the API the REST layer and CLI call).
"""
