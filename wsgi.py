"""WSGI entry point for ``gunicorn wsgi:app`` from the clone (settings: gunicorn.conf.py, which
imports :mod:`mapserver.gunicorn_config`, and the ``MAPSERVER_*`` environment). Installed, use
``mapserver serve``, which needs no file in the current directory."""

from mapserver.app import create_app

app = create_app()
