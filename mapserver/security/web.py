"""Access control in the Flask app: tokens in, 499/498/403 out, CORS per resource.

- ``/arcgis/tokens/generateToken`` (and ``/arcgis/tokens/``, which the ArcGIS Maps SDK posts
  to): ``username``/``password`` checked against the users file, ``expiration`` in minutes,
  ``client=referer|requestip|ip`` binding; answers ``{"token", "expires", "ssl"}``.
- A token travels as the ``token`` parameter (query or form) or as
  ``X-Esri-Authorization: Bearer <token>`` (or ``Authorization: Bearer``).
- :func:`authorize_service` is called by the URL dispatcher for every request to a service:
  public services (no ``access`` block) need nothing and ignore tokens; secured ones answer
  499 "Token Required" without a token, 498 "Invalid Token" for a bad, expired or
  wrongly bound one, 403 when the user is not allowed.
- :func:`visible_catalog`: the catalog and folder listings show only what the caller may use.
- ``/v1`` (the batch API): switched off entirely by ``MAPSERVER_JOBS_API=off``; once security
  is configured (a users file or API keys) it needs ``Authorization: Bearer <token or key>``
  (Google-style 401/403 bodies).
- CORS: ``*`` for public resources (when ``MAPSERVER_CORS_ORIGINS`` contains ``*``, the
  default); secured services, token generation and ``/v1`` echo only the origins configured
  there by name, and are never cached publicly.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, g, request

from mapserver.catalog.model import Catalog, Service
from mapserver.errors import InvalidParameter, MapServerError
from mapserver.jobs.errors import ApiError
from mapserver.security.errors import InvalidToken, PermissionDenied, TokenRequired
from mapserver.security.tokens import (
    Claims,
    TokenInvalid,
    TokenSigner,
    referer_key,
    referer_matches,
)
from mapserver.security.users import UserStore
from mapserver.settings import Settings

log = logging.getLogger(__name__)
EXT = "mapserver_security"
TOKENS_PATH = "/arcgis/tokens/"
SERVICES_PATH = "/arcgis/rest/services/"
ALLOW_HEADERS = "Content-Type, Authorization, X-Esri-Authorization, X-Requested-With"
ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"

bp = Blueprint("tokens", __name__)


@dataclass(frozen=True)
class Principal:
    user: str | None  # None for an API key
    roles: frozenset[str] = frozenset()
    api_key: bool = False


class Security:
    """The access-control state of one app (settings, users, signer); read-only after start."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.users = UserStore.load(settings.users_file) if settings.users_file else None
        self.api_keys = tuple(k.encode() for k in settings.api_keys)
        self.enabled = self.users is not None or bool(self.api_keys)
        secret = settings.secret
        if not secret:
            if self.enabled:
                log.warning("MAPSERVER_SECRET is not set: tokens are signed with a random key "
                            "made at start-up; they stop working at restart and are accepted "
                            "only by workers forked from this process (preload_app)")
            secret = secrets.token_urlsafe(32)
        self.signer = TokenSigner(secret)
        self.public_any = "*" in settings.cors_origins
        self.origins = frozenset(o for o in (referer_key(x) for x in settings.cors_origins
                                             if x != "*") if o)
        self.use_catalog(catalog)

    def use_catalog(self, catalog: Catalog) -> None:
        """Start using ``catalog`` (at start, and when catalog/reload.py swaps in a new one)."""
        secured = frozenset(n for n, s in catalog.services.items() if access_of(s) is not None)
        for name in sorted(secured - getattr(self, "secured_services", frozenset())):
            if self.users is None:
                log.warning("service %s declares 'access' but no users file is configured "
                            "(MAPSERVER_USERS): nobody can use it", name)
        self.catalog, self.secured_services = catalog, secured

    # --- tokens ------------------------------------------------------------------------

    def issue(self, user: str, minutes: float, referer: str | None, ip: str | None) -> dict:
        account = self.users.get(user) if self.users else None
        if account is None:
            raise InvalidParameter("Unable to generate token.", ["Invalid username or password."])
        expires = time.time() + minutes * 60
        token = self.signer.issue(Claims(user=user, expires=expires, referer=referer, ip=ip,
                                         fingerprint=account.fingerprint(self.signer.secret)))
        return {"token": token, "expires": int(expires) * 1000, "ssl": False}

    def verify(self, token: str) -> Principal:
        """A valid token for this request, else :class:`InvalidToken` saying why."""
        try:
            claims = self.signer.verify(token)
        except TokenInvalid as exc:
            raise InvalidToken(details=[str(exc)]) from exc
        account = self.users.get(claims.user) if self.users else None
        if account is None or not hmac.compare_digest(
                claims.fingerprint, account.fingerprint(self.signer.secret)):
            raise InvalidToken(details=["the token's user no longer exists or has a new "
                                        "password"])
        if claims.referer and not referer_matches(
                claims.referer, request.headers.get("Referer") or request.headers.get("Origin")):
            raise InvalidToken(details=["the token was issued for another referer"])
        if claims.ip and claims.ip != request.remote_addr:
            raise InvalidToken(details=["the token was issued for another client address"])
        return Principal(user=account.name, roles=account.roles)

    def principal(self, allow_api_key: bool = False) -> Principal | None:
        """Who sent this request: None without a token; 498 for a bad one."""
        token = request_token()
        if token is None:
            return None
        if allow_api_key and any(hmac.compare_digest(token.encode(), k)
                                 for k in self.api_keys):
            return Principal(user=None, api_key=True)
        cache = g.setdefault("mapserver_principals", {})
        if token not in cache:
            cache[token] = self.verify(token)
        return cache[token]

    # --- services ----------------------------------------------------------------------

    def may_use(self, principal: Principal | None, service: Service) -> bool:
        access = access_of(service)
        if access is None:
            return True
        if principal is None:
            return False
        return principal.api_key or access.allows(principal.user, principal.roles)

    def path_is_secured(self, path: str) -> bool:
        """For CORS preflights (no view runs): does this path belong to a secured resource?"""
        if path.startswith(TOKENS_PATH) or path.rstrip("/") == TOKENS_PATH.rstrip("/"):
            return True
        name = service_name_from_path(path)
        return name is not None and name in self.secured_services


def security() -> Security:
    return current_app.extensions[EXT]


def access_of(service: Service):  # -> Access | None
    return getattr(service, "access", None)


def service_name_from_path(path: str) -> str | None:
    if not path.startswith(SERVICES_PATH):
        return None
    parts = [p for p in path[len(SERVICES_PATH):].split("/") if p]
    lowered = [p.lower() for p in parts]
    if "mapserver" not in lowered:
        return None
    return "/".join(parts[:lowered.index("mapserver")])


def request_token() -> str | None:
    """The token of this request: a Bearer header, else the ``token`` parameter."""
    for header in ("X-Esri-Authorization", "Authorization"):
        scheme, _, value = request.headers.get(header, "").strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    pairs = list(request.args.items(multi=True))
    if request.method == "POST" and request.mimetype in ("application/x-www-form-urlencoded",
                                                         "multipart/form-data"):
        pairs += list(request.form.items(multi=True))
    for key, value in pairs:
        if key.lower() == "token" and value.strip():
            return value.strip()
    return None


def _mark_secured() -> None:
    g.mapserver_secured = True


def authorize_service(service: Service) -> None:
    """Raise 499/498/403 unless the caller may use ``service`` (public services: nothing)."""
    if access_of(service) is None:
        return
    _mark_secured()
    sec = security()
    principal = sec.principal()
    if principal is None:
        raise TokenRequired(details=[f"Service {service.name}/MapServer is secured: send a "
                                     "token from /arcgis/tokens/generateToken"])
    if not sec.may_use(principal, service):
        raise PermissionDenied()


def visible_catalog(catalog: Catalog) -> Catalog:
    """The catalog as this caller may see it (folders without a visible service vanish)."""
    sec = security()
    if not sec.secured_services:
        return catalog
    principal = sec.principal() if request_token() is not None else None
    services = {n: s for n, s in catalog.services.items() if sec.may_use(principal, s)}
    if any(n in sec.secured_services for n in services):
        _mark_secured()
    folders = tuple(f for f in catalog.folders if any(s.folder == f for s in services.values()))
    return Catalog(services=services, folders=folders, problems=catalog.problems)


def auth_info() -> dict:
    """``authInfo`` of ``/arcgis/rest/info``."""
    sec = security()
    if sec.users is None:
        return {"isTokenBasedSecurity": False}
    return {"isTokenBasedSecurity": True,
            "tokenServicesUrl": request.url_root.rstrip("/") + TOKENS_PATH,
            "shortLivedTokenValidity": int(sec.settings.token_expiration)}


# --- /arcgis/tokens -------------------------------------------------------------------------

def _param(name: str) -> str | None:
    for key, value in list(request.form.items()) + list(request.args.items()):
        if key.lower() == name.lower():
            return value
    return None


@bp.route("/arcgis/tokens", methods=["GET", "POST"])
@bp.route("/arcgis/tokens/", methods=["GET", "POST"])
@bp.route("/arcgis/tokens/generateToken", methods=["GET", "POST"])
def generate_token() -> Response:
    from mapserver.rest.http import wrap_json

    _mark_secured()
    sec = security()
    if sec.users is None:
        raise MapServerError("Token-based security is not enabled on this server.",
                             ["No users file is configured (MAPSERVER_USERS)."], code=400)
    if request.method != "POST":
        raise MapServerError("Unable to generate token.",
                             ["generateToken accepts POST only, so that passwords stay out of "
                              "URLs and logs"], code=405)
    username, password = _param("username"), _param("password")
    if not username or password is None:
        raise InvalidParameter("Unable to generate token.",
                               ["'username' and 'password' are required."])
    settings = sec.settings
    raw = _param("expiration")
    minutes = settings.token_expiration
    if raw not in (None, ""):
        try:
            minutes = float(raw)
        except ValueError:
            minutes = math.nan
        if not math.isfinite(minutes) or minutes <= 0:
            raise InvalidParameter("Unable to generate token.",
                                   ["'expiration' must be a positive number of minutes"])
    minutes = min(minutes, settings.token_max_expiration)
    client = (_param("client") or "").strip().lower()
    referer = ip = None
    if client == "referer" or (not client and _param("referer")):
        referer = referer_key(_param("referer"))
        if referer is None:
            raise InvalidParameter("Unable to generate token.",
                                   ["client=referer needs a 'referer' (the web application's "
                                    "URL)"])
    elif client == "requestip":
        ip = request.remote_addr
    elif client == "ip":
        ip = (_param("ip") or "").strip()
        if not re.fullmatch(r"[0-9A-Fa-f:.]{2,45}", ip):
            raise InvalidParameter("Unable to generate token.", ["client=ip needs an 'ip'"])
    elif client not in ("",):
        raise InvalidParameter("Unable to generate token.",
                               ["'client' must be referer, requestip or ip"])
    if sec.users.authenticate(username, password) is None:
        log.info("generateToken: failed sign-in for %r from %s", username[:64],
                 request.remote_addr)
        raise InvalidParameter("Unable to generate token.", ["Invalid username or password."])
    body = sec.issue(username, minutes, referer, ip)
    from mapserver.rest.http import json_body

    resp = wrap_json(json_body(body), None)
    resp.headers["Cache-Control"] = "no-store"
    return resp


# --- /v1 ------------------------------------------------------------------------------------

class _JobsAuthError(ApiError):
    def __init__(self, status: str, http: int, message: str) -> None:
        super().__init__(status, message)
        self.code = http


def _jobs_gate() -> None:
    if request.blueprint != "jobs":
        return
    sec = security()
    _mark_secured()
    if not sec.settings.jobs_api:
        raise ApiError("NOT_FOUND", "The batch export API is switched off on this server")
    from mapserver.rest.jobs import VERSIONS

    version = (request.view_args or {}).get("version")
    # the discovery document is public metadata (clients fetch it before they authenticate);
    # an unknown API version is answered 404 by the view, whoever asks
    if request.method == "OPTIONS" or not sec.enabled or request.endpoint == "jobs.discovery" \
            or (version is not None and version not in VERSIONS):
        return
    try:
        principal = sec.principal(allow_api_key=True)
    except InvalidToken as exc:
        raise _JobsAuthError("UNAUTHENTICATED", 401, "Request had invalid authentication "
                             f"credentials: {'; '.join(exc.details)}") from None
    if principal is None:
        raise _JobsAuthError("UNAUTHENTICATED", 401,
                             "Request is missing required authentication credential: send "
                             "'Authorization: Bearer <token>' (a token from "
                             "/arcgis/tokens/generateToken, or an API key)")
    roles = sec.settings.jobs_roles
    if not principal.api_key and roles and principal.roles.isdisjoint(roles):
        raise _JobsAuthError("PERMISSION_DENIED", 403,
                             f"User {principal.user} may not use the batch export API")
    if request.method == "POST" and sec.secured_services and not principal.api_key:
        for name in _named_services(sec):
            if not sec.may_use(principal, sec.catalog.services[name]):
                raise _JobsAuthError("PERMISSION_DENIED", 403,
                                     f"User {principal.user} may not use service {name}")


def _named_services(sec: Security) -> set[str]:
    """Secured services named by ``constantValue`` strings in a batch request body (an
    ``Image.load`` id is ``"<service>"`` or ``"<service>/<layerId>"``)."""
    try:
        body = request.get_json(silent=True)
    except (ValueError, RecursionError):
        return set()
    found: set[str] = set()
    stack, seen = [body], 0
    while stack and seen < 100_000:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            value = item.get("constantValue")
            if isinstance(value, str):
                name = re.sub(r"/\d+$", "", value.strip().strip("/"))
                if name in sec.secured_services:
                    found.add(name)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


# --- CORS -----------------------------------------------------------------------------------

def _cors(resp: Response) -> Response:
    sec = security()
    secured = bool(g.get("mapserver_secured")) or (
        request.method == "OPTIONS" and sec.path_is_secured(request.path))
    origin = request.headers.get("Origin")
    resp.headers.pop("Access-Control-Allow-Origin", None)
    if not secured and sec.public_any:
        resp.headers["Access-Control-Allow-Origin"] = "*"
    else:
        if origin and referer_key(origin) in sec.origins:
            resp.headers["Access-Control-Allow-Origin"] = origin
        resp.vary.add("Origin")
    resp.headers.setdefault("Access-Control-Allow-Headers", ALLOW_HEADERS)
    if request.method == "OPTIONS":
        resp.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        resp.headers["Access-Control-Max-Age"] = "600"
    if secured:
        cache = resp.headers.get("Cache-Control", "")
        if "public" in cache:
            resp.headers["Cache-Control"] = cache.replace("public", "private")
        resp.vary.add("Authorization")
        resp.vary.add("X-Esri-Authorization")
    if resp.status_code == 401 and request.blueprint == "jobs":
        resp.headers["WWW-Authenticate"] = 'Bearer realm="mapserver"'
    return resp


def init_app(app: Flask, settings: Settings, catalog: Catalog) -> Security:
    sec = Security(settings, catalog)
    app.extensions[EXT] = sec
    app.register_blueprint(bp)
    app.before_request(_jobs_gate)
    app.after_request(_cors)
    return sec
