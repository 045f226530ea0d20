"""gunicorn settings for ``gunicorn wsgi:app`` run from the clone (and ``bench/run.sh``).

The settings and hooks are in the package, :mod:`mapserver.gunicorn_config`, shared with
``mapserver serve``; add new ones there, not here.
"""

from mapserver.gunicorn_config import *  # noqa: F403 - every gunicorn setting and hook
