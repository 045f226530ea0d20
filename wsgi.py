"""gunicorn entry point: ``gunicorn wsgi:app`` (settings from gunicorn.conf.py and env)."""

from mapserver.app import create_app

app = create_app()
