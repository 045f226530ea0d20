"""Signed tokens: what ``generateToken`` hands out and every request may carry.

A token is ``itsdangerous``-signed JSON (HMAC-SHA256 with the ``MAPSERVER_SECRET`` setting):
the user, the expiry, an optional client binding (the referer's origin, or an IP address) and
a fingerprint of the user's password hash. Any gunicorn worker, or another host with the
same secret, verifies it without shared state; changing a user's password or removing the
user revokes that user's tokens.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "mapserver.arcgis-token.v1"


class TokenInvalid(Exception):
    """Why a token is refused (said in the 498 error's details)."""


@dataclass(frozen=True)
class Claims:
    user: str
    expires: float  # epoch seconds
    referer: str | None = None  # origin (scheme://host:port) or bare host name
    ip: str | None = None
    fingerprint: str = ""


def referer_key(value: str | None) -> str | None:
    """What referer binding compares: the origin of a URL, or a bare host name lower-cased.

    Browsers send only the origin as ``Referer`` on cross-origin requests (the default
    ``strict-origin-when-cross-origin`` policy), so a token made for
    ``https://app.example/map.html`` must match a request from any page of that origin."""
    if not value:
        return None
    value = value.strip()
    parts = urlsplit(value if "//" in value else "//" + value)
    host = (parts.hostname or "").lower()
    if not host:
        return None
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}" if parts.scheme else host + port


def referer_matches(bound: str, request_referer: str | None) -> bool:
    got = referer_key(request_referer)
    if got is None:
        return False
    if "://" in bound:
        return got == bound
    # bound to a bare host[:port]: any scheme
    return got.split("://", 1)[-1] == bound


class TokenSigner:
    def __init__(self, secret: str | bytes) -> None:
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self._serializer = URLSafeSerializer(self.secret, salt=SALT,
                                             signer_kwargs={"digest_method": hashlib.sha256})

    def issue(self, claims: Claims) -> str:
        payload = {"u": claims.user, "e": int(claims.expires), "f": claims.fingerprint}
        if claims.referer:
            payload["r"] = claims.referer
        if claims.ip:
            payload["i"] = claims.ip
        return self._serializer.dumps(payload)

    def verify(self, token: str, now: float | None = None) -> Claims:
        """The claims of a well-signed, unexpired token; else :class:`TokenInvalid`.
        Client binding is checked by the caller, which knows the request."""
        if not token or len(token) > 2048:
            raise TokenInvalid("the token is malformed")
        try:
            payload = self._serializer.loads(token)
        except BadSignature as exc:
            raise TokenInvalid("the token's signature does not verify") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("u"), str) \
                or not isinstance(payload.get("e"), int):
            raise TokenInvalid("the token is malformed")
        if (time.time() if now is None else now) >= payload["e"]:
            raise TokenInvalid("the token has expired")
        return Claims(user=payload["u"], expires=float(payload["e"]),
                      referer=payload.get("r"), ip=payload.get("i"),
                      fingerprint=str(payload.get("f", "")))
