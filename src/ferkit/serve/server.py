"""The uvicorn side of ``ferkit serve``: connection limits, timeouts and who may listen where.

uvicorn (0.55, h11) starts no timer when a connection opens: a client that sends half a
request line, or a header byte every few seconds, holds its connection for ever, and nothing
caps how many such connections pile up (its ``limit_concurrency`` counts them too, so it
answers every honest request 503 while they are held). :class:`GuardedH11Protocol` adds what
is missing, at the protocol level where the bytes arrive:

* a header deadline: from the moment a connection opens, or the first byte of the next request
  on a kept-alive one, the request line and headers must be complete within
  ``header_timeout_s``, however slowly they trickle in (else a JSON 408 and the connection is
  closed);
* a drain deadline: a client still sending a body the app has already answered (a refused
  upload) gets ``keep_alive_s`` to finish, then the connection is closed;
* a connection cap: past ``max_connections`` open connections, a new one is answered a JSON
  503 and closed at once, so half-open connections cannot exhaust file descriptors;
* JSON errors: uvicorn's own 400 (malformed HTTP, headers over the size limit) is text; here
  it is ``{"error": ...}`` like every other error of the service.

Idle kept-alive connections close after ``keep_alive_s`` (uvicorn's ``timeout_keep_alive``); the
request line and headers together may take at most ``MAX_HEADER_BYTES`` (h11's buffer limit).
The body is bounded by the app (size limit and upload timeout, :mod:`ferkit.serve.limits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ferkit.errors import OptionError

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_KEEP_ALIVE_S = 5
DEFAULT_MAX_CONNECTIONS = 256
MAX_HEADER_BYTES = 16 * 1024
REFUSAL_LOG_S = 10.0

logger = logging.getLogger("ferkit.serve")


def raw_json_response(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, for the moments before h11 has
    a request to answer (a timeout during the headers, a connection over the cap)."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline, a drain deadline and a connection cap.

    The limits are class attributes: :func:`guarded_protocol` makes a subclass per server,
    since uvicorn instantiates the protocol class itself.
    """

    header_timeout_s: ClassVar[float] = DEFAULT_HEADER_TIMEOUT_S
    drain_timeout_s: ClassVar[float] = float(DEFAULT_KEEP_ALIVE_S)
    max_connections: ClassVar[int] = DEFAULT_MAX_CONNECTIONS
    refused: ClassVar[int] = 0  # connections refused since the last warning
    refusal_logged_at: ClassVar[float] = float("-inf")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_kind = ""
        self._partial = False  # bytes of a request whose headers are not complete yet
        self._drained: object = None  # the request whose unwanted body is being drained

    # -- deadlines ----------------------------------------------------------------------------

    def _arm(self, kind: str, seconds: float) -> None:
        self._disarm()
        self._deadline_kind = kind
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._deadline_kind = ""

    def _expired(self) -> None:
        kind, self._deadline = self._deadline_kind, None
        if self.transport.is_closing():
            return
        if kind == "headers" and self._partial:
            message = (
                f"the request line and headers did not arrive within {self.header_timeout_s:g} s"
            )
            self.transport.write(raw_json_response(408, "Request Timeout", message))
        logger.info("closing %s: %s deadline passed", _peer(self.client), kind)
        with contextlib.suppress(h11.LocalProtocolError):  # mid-response: closes all the same
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()

    # -- protocol events ----------------------------------------------------------------------

    # typeshed says BaseTransport; a TCP server's loop always passes a Transport (write, close)
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            message = f"server busy: {self.max_connections} connections are open already"
            self._log_refusal(message)
            transport.write(raw_json_response(503, "Service Unavailable", message))
            transport.close()
            return
        self._arm("headers", self.header_timeout_s)

    def _log_refusal(self, message: str) -> None:
        """One warning per ``REFUSAL_LOG_S`` with the count: a flood of connections must not
        become a flood of log lines."""
        cls = type(self)
        cls.refused += 1
        now = self.loop.time()
        if now - cls.refusal_logged_at >= REFUSAL_LOG_S:
            logger.warning(
                "refused %d connection(s), last from %s: %s",
                cls.refused,
                _peer(self.client),
                message,
            )
            cls.refused, cls.refusal_logged_at = 0, now

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._deadline_kind != "headers":
            self._arm("headers", self.header_timeout_s)  # the next request on a kept-alive one
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            # still waiting for (the rest of) a request's headers; also after a drained body
            # whose next request began in the same bytes
            if self._deadline_kind != "headers":
                self._arm("headers", self.header_timeout_s)
            self._partial = bool(self.conn.trailing_data[0])
        elif self._deadline_kind == "headers" or (
            self._deadline_kind == "body" and self.cycle is not self._drained
        ):
            self._disarm()  # headers complete: the app bounds the body and the work
            self._partial = False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # answered before the body ended (a refused upload): a little time to finish
            # sending, not a connection held open for ever by a trickle
            self._arm("body", self.drain_timeout_s)
            self._drained = self.cycle

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP (or headers past the size limit), as
        JSON; the connection is closed as uvicorn does."""
        self._disarm()
        detail = f"{msg.rstrip('.')}: malformed request line or headers, or headers over "
        detail += f"{MAX_HEADER_BYTES:,} bytes"
        self.transport.write(raw_json_response(400, "Bad Request", detail))
        self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


def guarded_protocol(
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    drain_timeout_s: float = float(DEFAULT_KEEP_ALIVE_S),
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass with these limits (what ``uvicorn.Config(http=)``
    takes)."""
    if not header_timeout_s > 0 or not drain_timeout_s > 0:
        raise OptionError("header and drain timeouts must be > 0 seconds")
    if max_connections < 1:
        raise OptionError(f"max_connections must be >= 1, got {max_connections}")
    attrs = {
        "header_timeout_s": float(header_timeout_s),
        "drain_timeout_s": float(drain_timeout_s),
        "max_connections": int(max_connections),
    }
    return type("ServeProtocol", (GuardedH11Protocol,), attrs)


def check_port(host: str, port: int) -> None:
    """A FerkitError naming ``host:port`` when it cannot be listened on (in use, not an
    address of this machine, a privileged port), checked before the model is loaded: uvicorn
    would only log the reason and exit 1 once the model had been loaded for nothing. Bound
    with SO_REUSEADDR, as uvicorn binds, so a port in TIME_WAIT is not refused."""
    if port == 0:
        return  # any free port: nothing to check
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OptionError(f"cannot listen on {host}:{port}: {reason} (--host / --port)") from None


def server_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    keep_alive_s: int = DEFAULT_KEEP_ALIVE_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    log_level: str = "info",
) -> Any:
    """The ``uvicorn.Config`` every ferkit server runs with (tests included): the guarded h11
    protocol, keep-alive and header limits, a short graceful shutdown."""
    import uvicorn

    protocol = guarded_protocol(header_timeout_s, float(keep_alive_s), max_connections)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        timeout_keep_alive=keep_alive_s,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        log_level=log_level,
        timeout_graceful_shutdown=5,
    )
