"""Bearer-token access control for ``ferkit serve --token``.

A pure ASGI middleware (no request body is touched, so uploads stream as before): every path
but the page at ``/`` needs ``Authorization: Bearer <token>``, else a JSON 401. The page itself
holds nothing secret and asks the user for the token; the API is what costs CPU and sees the
photos. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_PATHS = frozenset({"/"})


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
