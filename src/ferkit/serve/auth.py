"""Bearer-token access control for ``ferkit serve --token``, and who may listen where.

A pure ASGI middleware (no request body is touched, so uploads stream as before): every path
but the page at ``/`` needs ``Authorization: Bearer <token>``, else a JSON 401. The page itself
holds nothing secret and asks the user for the token; the API is what costs CPU and sees the
photos. Tokens are compared in constant time. Without a token the server listens on loopback
only, unless the user says ``insecure``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket

from starlette.types import ASGIApp, Receive, Scope, Send

from ferkit.errors import FerkitError

PUBLIC_PATHS = frozenset({"/"})
MIN_TOKEN_CHARS = 16
TOKEN_ENV = "FERKIT_SERVE_TOKEN"


def bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of an ``Authorization: Bearer ...`` header (scheme case-insensitive), or None."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


class BearerAuth:
    """Refuse any request but ``GET /`` that lacks the right bearer token (401, JSON)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    def allowed(self, scope: Scope) -> bool:
        if scope["path"] in PUBLIC_PATHS and scope["method"] in ("GET", "HEAD"):
            return True
        given = bearer_token(scope.get("headers", []))
        return given is not None and hmac.compare_digest(given, self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        given = bearer_token(scope.get("headers", []))
        why = "missing" if given is None else "wrong"
        body = json.dumps(
            {"error": f"{why} access token: send the header Authorization: Bearer <token>"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="ferkit"'),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def is_loopback(host: str) -> bool:
    """True when ``host`` only reaches this machine: ``localhost`` or a loopback address. A name
    is resolved; one that resolves to anything else (or not at all) is not loopback."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_token(token: str | None) -> str | None:
    """The token, stripped, or ``None``; a FerkitError for one too short to resist guessing."""
    if token is None or not token.strip():
        return None
    token = token.strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise FerkitError(
            f"the serve token is {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    return token


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to listen beyond loopback without a token, unless the user says ``insecure``
    (e.g. a reverse proxy or a firewall in front does the access control)."""
    if token is None and not insecure and not is_loopback(host):
        raise FerkitError(
            f"refusing to listen on {host} without a token: anyone who can reach this machine "
            f"could use the server. Pass --token (or set {TOKEN_ENV}), or --insecure when "
            "something in front (a reverse proxy, a firewall) controls access"
        )
