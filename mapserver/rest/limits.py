"""Request limits at the HTTP edge: body size, JSON bodies, the active limits and the budget.

``install(app)`` (called by ``create_app``) sets Flask's body and form limits from the app's
:class:`mapserver.limits.Limits`, parses JSON request bodies within the JSON limits (depth,
size, finite numbers: an error naming the body instead of a ``RecursionError``), makes the
limits active for each request and starts its wall-clock budget.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider

from mapserver import limits
from mapserver.params.common import safe_loads


class LimitedJSONProvider(DefaultJSONProvider):
    """``request.get_json()`` within the request limits; responses are dumped as before."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        lim = limits.current()
        lim = dataclasses.replace(lim, max_json_bytes=max(lim.max_json_bytes,
                                                          lim.max_body_bytes))
        return safe_loads(s, "request body", lim)


def install(app: Flask, lim: limits.Limits) -> None:
    app.config["MAX_CONTENT_LENGTH"] = lim.max_body_bytes
    # werkzeug applies this to a whole url-encoded body (its default is 500 kB): the body limit
    # is the one limit here; single values meet MAX_PARAM_LENGTH and the JSON limits
    app.config["MAX_FORM_MEMORY_SIZE"] = lim.max_body_bytes
    app.json = LimitedJSONProvider(app)

    @app.after_request
    def _close_if_body_unread(resp: Response) -> Response:
        # a body the app never read (refused as too large, or ignored) is left in the socket:
        # close the connection rather than let a keep-alive client's next request follow it
        if request.content_length and not (
                "form" in request.__dict__ or getattr(request, "_cached_data", None) is not None):
            resp.headers["Connection"] = "close"
        return resp

    @app.before_request
    def _limits() -> None:
        limits.activate(lim)
        limits.start_budget(lim.request_seconds)

    @app.teardown_request
    def _budget_end(_exc: BaseException | None) -> None:
        limits.clear_budget()
