"""What keeps one slow, huge or hostile request from taking the server down with it.

Bodies are counted while they arrive and refused past the limit, so an over-size upload costs
at most ``limit`` bytes of reading, never its full length. Inference runs in a fixed pool of
worker threads: a request waits at most ``timeout_s`` for a free slot (else 503; waiting
requests get one smallest upload first) and for its answer (else 504), and a slot is given
back only when its thread has really finished, so requests that timed out cannot pile extra
work onto the CPU.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.types import Message, Receive

from ferkit.errors import OptionError

T = TypeVar("T")
MiB = 1024 * 1024


class ServeError(Exception):
    """A request that fails in an expected way: answered ``{"error": message}`` with ``status``.

    Not a FerkitError, on purpose: it is the HTTP client's error, not the person running
    ferkit's, and never leaves the app (its handler turns it into the response). As a
    FerkitError (a ValueError) it would be caught by code meant for the user's mistakes, and
    a ServeError escaping into the CLI would print one line for what is then a bug."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def too_large(limit: int) -> ServeError:
    """``limit`` is the image's limit, as the user set it (a form may add a little overhead)."""
    return ServeError(413, f"request body too large: the image limit is {limit:,} bytes")


def check_declared_length(headers: Any, limit: int, shown: int | None = None) -> None:
    """413 straight away when the client announces a body over ``limit`` (nothing is read);
    ``shown`` is the limit the message names (the image's, without form overhead)."""
    declared = headers.get("content-length")
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError:
        raise ServeError(400, f"bad Content-Length header: {declared!r}") from None
    if length > limit:
        raise too_large(limit if shown is None else shown)


def limited_receive(receive: Receive, limit: int, shown: int | None = None) -> Receive:
    """``receive`` that raises 413 once more than ``limit`` body bytes have arrived.

    Wrapping the ASGI channel (rather than checking after a parser is done) also bounds
    what the multipart parser reads, whatever the client declared or left undeclared
    (chunked uploads have no Content-Length).
    """
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large(limit if shown is None else shown)
        return message

    return counted


class Slots:
    """``count`` worker slots of one event loop, handed out smallest job first.

    A plain semaphore serves waiters in arrival order, so a thumbnail queued behind eight
    16-megapixel photos waits for all of them (tens of seconds). Here each waiter says what its
    job costs (the upload's size in bytes: a fair proxy for decoding and detection work) and a
    freed slot goes to the cheapest waiter; among equals, the first come. A costly job still
    runs as soon as no cheaper one waits, and every wait is bounded by the caller's timeout.
    """

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, cost: float, timeout_s: float) -> bool:
        """True once a slot is ours; False when none came within ``timeout_s``."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (cost, next(self._order), waiter))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        except TimeoutError:
            if waiter.done():  # handed over just as the wait ran out: keep it
                return True
            waiter.cancel()  # release() skips it
            return False
        except BaseException:  # the request was cancelled (client gone): no slot may leak
            if waiter.done() and not waiter.cancelled():
                self.release()
            waiter.cancel()
            raise
        return True

    def release(self) -> None:
        """Hand the slot to the cheapest live waiter, else return it to the pool."""
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


def _finished(future: asyncio.Future[Any], slots: Slots) -> None:
    """Free the slot once the thread is done; an answer nobody awaits any more (timed out) is
    collected here so asyncio does not log it as never retrieved."""
    slots.release()
    if not future.cancelled():
        future.exception()


class InferenceGate:
    """At most ``workers`` calls run at once, each answered within ``timeout_s`` or refused.

    Waiting calls get a free worker smallest first (:class:`Slots`). The slots are per event
    loop (a test client may run the app on several loops); the thread pool is shared, so the
    bound on threads holds whatever the loop.
    """

    def __init__(self, workers: int, timeout_s: float) -> None:
        if workers < 1:
            raise OptionError(f"workers must be >= 1, got {workers}")
        if not timeout_s > 0:
            raise OptionError(f"timeout_s must be > 0, got {timeout_s}")
        self.workers = workers
        self.timeout_s = float(timeout_s)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="ferkit-serve")
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Slots] = (
            weakref.WeakKeyDictionary()
        )

    def _for_loop(self, loop: asyncio.AbstractEventLoop) -> Slots:
        if loop not in self._slots:
            self._slots[loop] = Slots(self.workers)
        return self._slots[loop]

    async def run(self, fn: Callable[..., T], *args: Any, cost: float = 0.0) -> T:
        """``fn(*args)`` on a worker thread, cheapest ``cost`` first among waiting calls;
        503 when no slot frees in time, 504 when too slow."""
        loop = asyncio.get_running_loop()
        slots = self._for_loop(loop)
        deadline = time.monotonic() + self.timeout_s
        if not await slots.acquire(cost, self.timeout_s):
            raise ServeError(
                503, f"server busy: no inference slot came free within {self.timeout_s:g} s"
            )
        try:
            future = loop.run_in_executor(self._executor, fn, *args)
        except BaseException:
            slots.release()
            raise
        future.add_done_callback(lambda done: _finished(done, slots))
        try:
            return await asyncio.wait_for(asyncio.shield(future), deadline - time.monotonic())
        except TimeoutError:
            raise ServeError(504, f"inference did not finish within {self.timeout_s:g} s") from None


class ClosingBoundary:
    """Watches a multipart body for its closing delimiter (``--boundary--``).

    The form parser ends quietly on a body cut short: the part being read is dropped and the
    request would look like a form without a file (a misleading 422). With this watch the
    server says what happened: the upload is incomplete (400). Only a delimiter-sized tail is
    kept between chunks.
    """

    def __init__(self, receive: Receive, boundary: bytes) -> None:
        self._receive = receive
        self._needle = b"--" + boundary + b"--"
        self._tail = b""
        self.seen = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request" and not self.seen:
            window = self._tail + message.get("body", b"")
            self.seen = self._needle in window
            self._tail = window[-len(self._needle) :]
        return message


def multipart_boundary(content_type: str) -> bytes | None:
    """The ``boundary`` parameter of a multipart Content-Type (quotes removed), or None."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "boundary" and value.strip():
            return value.strip().strip('"').encode("latin-1")
    return None
