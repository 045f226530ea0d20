"""Google-style API errors (``{"error": {"code", "message", "status"}}``) for the jobs API.

They subclass :class:`MapServerError` so core code keeps one error hierarchy, but the jobs
blueprint renders them the way Earth Engine clients expect (real HTTP status, ``status`` name).
"""

from __future__ import annotations

from mapserver.errors import MapServerError

HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "NOT_FOUND": 404,
               "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429, "INTERNAL": 500}
RPC_CODE = {"CANCELLED": 1, "INVALID_ARGUMENT": 3, "NOT_FOUND": 5, "ALREADY_EXISTS": 6,
            "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "INTERNAL": 13}


class ApiError(MapServerError):
    """A client-visible jobs API error; ``status`` is the google.rpc.Code name."""

    def __init__(self, status: str, message: str) -> None:
        self.status = status
        super().__init__(message, code=HTTP_STATUS.get(status, 400))

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def invalid(message: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", message)
