"""The ``/stats`` response cache: an ASGI layer in front of the endpoints.

A response is stored (cachetools TTL) under its path, its sorted query parameters and the newest
indexed block of every chain (the *head*); the head itself is read at most once per TTL. So within
a TTL a repeated request touches neither the endpoint nor the database, and once the TTL has passed
a newly committed block changes the key: the next request computes the new figures. Concurrent
requests for the same missing key wait for the first one's answer instead of all computing it
(within one worker process: each worker of ``--workers N`` keeps its own cache).

Every 200 carries ``ETag`` (a hash of the body) and ``Cache-Control: max-age=<TTL>``; a request
whose ``If-None-Match`` names the current ETag gets a bodiless 304. With a TTL of 0 nothing is
stored and nothing is shared: every request computes its own answer from the database (the ETag
and 304 still apply).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import Any

import anyio
from cachetools import TTLCache
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Per request, the SQL statements run while serving it (set only when counting is on).
statements: ContextVar[list[int] | None] = ContextVar("statements", default=None)


def count_statement(*_: Any) -> None:
    """SQLAlchemy ``before_cursor_execute`` listener: one more statement for the current request."""
    counter = statements.get()
    if counter is not None:
        counter[0] += 1


def error_body(status: int, message: str, parameter: str | None = None) -> bytes:
    body: dict[str, Any] = {"error": message}
    if parameter is not None:
        body["parameter"] = parameter
    return json.dumps({"status": status, **body}).encode()


def _matches(if_none_match: str, etag: str) -> bool:
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


class Answer:
    """An endpoint's response, buffered: status, headers, body and (for a 200) its ETag."""

    __slots__ = ("body", "etag", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status, self.body = status, body
        self.headers = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"etag", b"cache-control")]
        self.etag = ('"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"').encode() if status == 200 else b""


class Unavailable(Exception):
    """The database cannot be read; the message is the one-line reason (a 503)."""


class ResponseCache:
    """The ASGI layer: serves stored responses for ``/stats/*`` and stores the endpoints' 200s.

    ``head()`` returns the newest indexed block of every chain (it raises :class:`Unavailable` when
    the database cannot be read); it runs in a worker thread, at most once per TTL.

    With ``ttl`` 0 nothing is stored and every request runs the endpoint itself."""

    def __init__(self, app: ASGIApp, *, head: Callable[[], Hashable], ttl: int, count_sql: bool = False,
                 max_bytes: int = 64 << 20) -> None:
        self.app, self.head, self.ttl, self.count_sql = app, head, ttl, count_sql
        # bounded by the bodies' bytes: distinct valid queries (every start/end pair) cannot exhaust memory
        self.responses: TTLCache[Hashable, Answer] | None = TTLCache(
            max_bytes, ttl, getsizeof=lambda answer: len(answer.body) + 512) if ttl > 0 else None
        self.heads: TTLCache[str, Hashable] = TTLCache(1, max(ttl, 1))
        self.pending: dict[Hashable, asyncio.Event] = {}
        self.cache_control = f"public, max-age={ttl}".encode() if ttl > 0 else b"no-cache"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")  # a lifespan scope has none
        if scope["type"] != "http" or scope["method"] != "GET" or not (path.startswith("/stats/") or path == "/health"):
            await self.app(scope, receive, send)
            return
        counter = [0] if self.count_sql else None
        statements.set(counter)
        if path == "/health":
            await self._deliver(scope, send, await self._run(scope, receive), counter, b"no-store")
            return
        if self.responses is None:
            await self._deliver(scope, send, await self._run(scope, receive), counter, self.cache_control)
            return
        query = tuple(sorted(scope.get("query_string", b"").split(b"&")))
        try:
            head = self.heads.get("head")
            if head is None:
                head = await anyio.to_thread.run_sync(self.head)
                self.heads["head"] = head
        except Unavailable as e:
            await self._deliver(scope, send, Answer(503, [(b"content-type", b"application/json")], error_body(503, str(e))),
                                counter, b"no-store")
            return
        await self._deliver(scope, send, await self._cached((path, query, head), scope, receive), counter, self.cache_control)

    async def _cached(self, key: Hashable, scope: Scope, receive: Receive) -> Answer:
        """The stored answer for ``key``, or the endpoint's (stored when a 200); one computation per key at a time."""
        assert self.responses is not None
        while (stored := self.responses.get(key)) is None and key in self.pending:
            await self.pending[key].wait()  # another request is computing it
        if stored is not None:
            return stored
        self.pending[key] = event = asyncio.Event()
        try:
            answer = await self._run(scope, receive)
            if answer.status == 200:
                with contextlib.suppress(ValueError):  # an answer larger than the whole cache is not kept
                    self.responses[key] = answer
            return answer
        finally:
            del self.pending[key]
            event.set()

    async def _run(self, scope: Scope, receive: Receive) -> Answer:
        """Run the endpoint and buffer its response."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        return Answer(int(start["status"]), list(start.get("headers", [])), b"".join(chunks))

    async def _deliver(self, scope: Scope, send: Send, answer: Answer, counter: list[int] | None, control: bytes) -> None:
        """Send ``answer``: a 200 with its ETag and ``control`` (or a bodiless 304 when If-None-Match
        names the ETag); anything else as it is, never to be cached."""
        status, body, out = answer.status, answer.body, list(answer.headers)
        if status == 200:
            if_none_match = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"if-none-match"), None)
            if if_none_match is not None and _matches(if_none_match, answer.etag.decode()):
                status, body = 304, b""
                out = []
            out += [(b"etag", answer.etag), (b"cache-control", control)]
        else:
            out.append((b"cache-control", b"no-store"))
        if status != 304:  # a 304 has no body and describes the stored one
            out.append((b"content-length", str(len(body)).encode()))
        if counter is not None:
            out.append((b"x-sql-statements", str(counter[0]).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})
