"""Optional dependencies (the ``pyproject.toml`` extras) and the message a user sees without one.

The default install serves every map, feature and OGC request; only some batch features need
more: video encoding and a Dask cluster (``batch``: PyAV, dask.distributed) and S3-compatible
buckets (``s3``: boto3). Those modules are imported inside the functions that use them, and
each feature checks :func:`missing` first, so a missing extra is a one-line answer naming the
``pip install`` command, never an ``ImportError`` or a failed job with a traceback.
"""

from __future__ import annotations

import importlib.util
import sys


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (``import distributed`` alone
    costs about a second). A ``None`` entry in ``sys.modules`` means "blocked", as for import."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def hint(feature: str, extra: str) -> str:
    return f"{feature} needs the {extra} extra: pip install 'mapserver[{extra}]'"


def missing(module: str, extra: str, feature: str) -> str | None:
    """The message for ``feature`` when ``module`` (from ``extra``) is not installed, else
    None."""
    return None if available(module) else hint(feature, extra)
