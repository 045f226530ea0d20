"""The ArcGIS access errors that clients react to (esri-leaflet fires
``authenticationrequired`` on 498/499; the ArcGIS Maps SDK signs in on them).

Answered like every other ArcGIS error by ``rest/errors.py`` (HTTP 200, the code in the body).
"""

from __future__ import annotations

from mapserver.errors import MapServerError


class AccessDenied(MapServerError):
    message_code: str | None = None

    def to_json(self) -> dict:
        body = super().to_json()
        if self.message_code:
            body["error"]["messageCode"] = self.message_code
        return body


class TokenRequired(AccessDenied):
    code = 499
    default_message = "Token Required"
    message_code = "GWM_0003"


class InvalidToken(AccessDenied):
    code = 498
    default_message = "Invalid Token"


class PermissionDenied(AccessDenied):
    code = 403
    default_message = ("You do not have permissions to access this resource or perform this "
                       "operation.")
    message_code = "GWM_0003"
