"""One small error hierarchy, mapped to ArcGIS error JSON in one place (``rest/errors.py``).

Every problem a client can cause is raised as a :class:`MapServerError`; the HTTP layer turns it
into ``{"error": {"code", "message", "details"}}``. Core modules never build responses themselves.
"""

from __future__ import annotations


class MapServerError(Exception):
    """Base of every error a client may see. ``code`` is the ArcGIS error code (not HTTP status)."""

    code: int = 400
    default_message: str = "Unable to complete operation."

    def __init__(self, message: str | None = None, details: list[str] | None = None,
                 code: int | None = None) -> None:
        self.message = message if message is not None else self.default_message
        self.details = list(details or [])
        if code is not None:
            self.code = code
        super().__init__(self.message)

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def __reduce__(self) -> tuple:
        # picklable whatever a subclass's __init__ takes (errors cross process boundaries in
        # the batch pool; an unpicklable one would break the pool)
        return (_restore, (type(self), self.__dict__.copy()))


def _restore(cls: type, state: dict) -> MapServerError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class InvalidParameter(MapServerError):
    """A request parameter is malformed or out of range."""

    code = 400
    default_message = "Invalid or missing input parameters."


class NotFound(MapServerError):
    """A service, layer, folder or output file does not exist."""

    code = 404
    default_message = "Requested resource not found."


class UnsupportedOperation(MapServerError):
    """The operation is valid ArcGIS but not offered by this service (e.g. a capability is off)."""

    code = 400
    default_message = "Requested operation is not supported by this service."


class WhereClauseError(InvalidParameter):
    """A where-clause (layerDefs, where, definitionExpression) failed to parse or validate."""

    default_message = "Invalid where clause."


class ServiceDefinitionError(Exception):
    """A service definition file is invalid. Raised at load time; names the file and the field.

    Not a MapServerError: clients never see it, the catalog logs it and skips that one service.
    """

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        super().__init__(f"{path}: {field}: {problem}")
