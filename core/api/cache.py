"""The ``/stats`` response cache: an ASGI layer in front of the endpoints.

A response is stored (cachetools TTL) under its path, its sorted query parameters and the newest
indexed block of every chain (the *head*); the head itself is read at most once per TTL. So within
a TTL a repeated request touches neither the endpoint nor the database, and once the TTL has passed
a newly committed block changes the key: the next request computes the new figures. Concurrent
requests for the same missing key wait for the first one's answer instead of all computing it.

Every 200 carries ``ETag`` (a hash of the body) and ``Cache-Control: max-age=<TTL>``; a request
whose ``If-None-Match`` names the current ETag gets a bodiless 304. With a TTL of 0 nothing is
stored and every request computes (the ETag and 304 still apply).
"""

from __future__ import annotations

import asyncio
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


class Stored:
    """A cached 200: its body, headers and ETag."""

    __slots__ = ("body", "etag", "headers")

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        self.headers = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"etag", b"cache-control")]


class Unavailable(Exception):
    """The database cannot be read; the message is the one-line reason (a 503)."""


class ResponseCache:
    """The ASGI layer: serves stored responses for ``/stats/*`` and stores the endpoints' 200s.

    ``head()`` returns the newest indexed block of every chain (it raises :class:`Unavailable` when
    the database cannot be read); it runs in a worker thread, at most once per TTL."""

    def __init__(self, app: ASGIApp, *, head: Callable[[], Hashable], ttl: int, count_sql: bool = False,
                 maxsize: int = 4096) -> None:
        self.app, self.head, self.ttl, self.count_sql = app, head, ttl, count_sql
        self.responses: TTLCache[Hashable, Stored] | None = TTLCache(maxsize, ttl) if ttl > 0 else None
        self.heads: TTLCache[str, Hashable] = TTLCache(1, max(ttl, 1))
        self.pending: dict[Hashable, asyncio.Event] = {}
        self.cache_control = f"public, max-age={ttl}".encode() if ttl > 0 else b"no-cache"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not (
                scope["path"].startswith("/stats/") or scope["path"] == "/health"):
            await self.app(scope, receive, send)
            return
        counter = [0] if self.count_sql else None
        statements.set(counter)
        if self.responses is None or scope["path"] == "/health":
            await self._forward(scope, receive, send, None, counter)
            return
        try:
            head = self.heads.get("head")
            if head is None:
                head = await anyio.to_thread.run_sync(self.head)
                self.heads["head"] = head
        except Unavailable as e:
            await self._send(send, 503, error_body(503, str(e)), [(b"content-type", b"application/json")], counter, None)
            return
        query = scope.get("query_string", b"")
        key = (scope["path"], tuple(sorted(query.split(b"&"))), head)
        while (stored := self.responses.get(key)) is None and key in self.pending:
            await self.pending[key].wait()  # another request is computing it
        if stored is not None:
            await self._reply(scope, send, stored, counter)
            return
        self.pending[key] = event = asyncio.Event()
        try:
            await self._forward(scope, receive, send, key, counter)
        finally:
            del self.pending[key]
            event.set()

    async def _forward(self, scope: Scope, receive: Receive, send: Send, key: Hashable | None,
                       counter: list[int] | None) -> None:
        """Run the endpoint, buffer its answer, store it when it is a 200 and ``key`` is given."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        status = int(start["status"])
        headers = list(start.get("headers", []))
        body = b"".join(chunks)
        if status != 200:
            await self._send(send, status, body, headers, counter, None)
            return
        stored = Stored(body, headers)
        if key is not None and self.responses is not None and scope["path"] != "/health":
            self.responses[key] = stored
        await self._reply(scope, send, stored, counter, cache=scope["path"] != "/health")

    async def _reply(self, scope: Scope, send: Send, stored: Stored, counter: list[int] | None, cache: bool = True) -> None:
        if_none_match = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"if-none-match"), None)
        control = self.cache_control if cache else b"no-store"
        if if_none_match is not None and _matches(if_none_match, stored.etag):
            await self._send(send, 304, b"", [], counter, (stored.etag.encode(), control))
            return
        await self._send(send, 200, stored.body, stored.headers, counter, (stored.etag.encode(), control))

    async def _send(self, send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]],
                    counter: list[int] | None, cached: tuple[bytes, bytes] | None) -> None:
        out = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"cache-control")]
        if status != 304:  # a 304 has no body and describes the stored one
            out.append((b"content-length", str(len(body)).encode()))
        if cached is None:
            out.append((b"cache-control", b"no-store"))
        else:
            out += [(b"etag", cached[0]), (b"cache-control", cached[1])]
        if counter is not None:
            out.append((b"x-sql-statements", str(counter[0]).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})
