"""``create_app()``: settings, catalog, blueprints, one error map, access control and CORS."""

from __future__ import annotations

import logging

from flask import Flask, Response, redirect

from mapserver.catalog.loader import load_catalog
from mapserver.output import OutputStore
from mapserver.rest.context import AppState
from mapserver.rest.errors import register_error_handlers
from mapserver.rest.limits import install as install_limits
from mapserver.serving import wrap_wsgi
from mapserver.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    install_limits(app, settings.limits)  # body/JSON limits, per-request budget (rest/limits.py)
    catalog = load_catalog(list(settings.service_dirs), settings.data_dir)
    for problem in catalog.problems:
        log.error("service not loaded: %s", problem)
    app.extensions["mapserver"] = AppState(
        settings=settings, catalog=catalog,
        outputs=OutputStore(settings.output_dir, settings.output_max_age,
                            s3_endpoint=settings.s3_endpoint))

    # importing registers the operations with the dispatcher
    from mapserver.ogc import views as ogc_views  # noqa: F401 - WMSServer, WMTS (OGC)
    from mapserver.rest import export as export_views
    from mapserver.rest import find as find_views  # noqa: F401
    from mapserver.rest import html as html_views
    from mapserver.rest import identify as identify_views  # noqa: F401
    from mapserver.rest import jobs as job_views
    from mapserver.rest import legend as legend_views  # noqa: F401
    from mapserver.rest import query as query_views  # noqa: F401
    from mapserver.rest import service_info as service_info_views  # noqa: F401
    from mapserver.rest import services as service_views
    from mapserver.rest import tiles as tile_views  # noqa: F401

    app.register_blueprint(service_views.bp)
    app.register_blueprint(export_views.bp)
    app.register_blueprint(job_views.bp)
    app.register_blueprint(html_views.bp)
    register_error_handlers(app)

    # access control (tokens, 499/498/403, /v1 bearer rule) and CORS per resource
    # (mapserver/security/web.py); health check; long-URL guard and proxy headers (serving.py)
    from mapserver.rest import health as health_views
    from mapserver.security.web import init_app as install_security

    install_security(app, settings, catalog)
    app.register_blueprint(health_views.bp)
    from mapserver.rest import schema as schema_views  # the definitions' JSON Schema

    app.register_blueprint(schema_views.bp)
    # metrics, logs with request ids, gzip, ETag/304 (observe/); hot reload (catalog/reload.py)
    from mapserver.catalog.reload import install as install_reload
    from mapserver.observe import install as install_observe
    from mapserver.warmup import warm

    install_observe(app, settings)
    install_reload(app, settings)
    warm(catalog, settings.data_dir)
    app.wsgi_app = wrap_wsgi(app.wsgi_app, settings)

    @app.route("/")
    def _home() -> Response:
        return redirect("/arcgis/rest/services")

    return app
