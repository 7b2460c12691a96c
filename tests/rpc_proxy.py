"""A loopback JSON-RPC proxy in front of a real node that misbehaves the ways hosted nodes do.

Tests point the indexer at :class:`FaultyRPCProxy` instead of anvil. Every request is forwarded to
the node unless the proxy decides (seeded RNG, ``fault_rate``) to fail it in one of ``FAULTS``:

    http_500 / http_502 / http_503   the status with a gateway's HTML or text body
    http_429                         "Too Many Requests" with a ``Retry-After`` header
    rpc_header_not_found             JSON-RPC error -32000 "header not found" (a lagging backend)
    rpc_rate_limit                   JSON-RPC error -32005 "daily request count exceeded, request rate limited"
    truncated_body                   the node's JSON answer cut in half (Content-Length of the half)
    cut_body                         the whole answer's Content-Length, half of it sent, the connection closed
    connection_reset                 the socket closed without an answer
    timeout                          no answer until after the client's timeout

``fault_methods`` limits the random faults to some methods. Independently of them:
- ``getlogs_max_blocks``: eth_getLogs over more blocks is refused with -32005 "query returned more
  than 10000 results" (Infura's cap); counted as ``getlogs_range_cap``;
- ``duplicate_logs`` / ``shuffle_logs``: eth_getLogs answers repeat some logs / come out of
  block order (a faulty node or load balancer merging backends);
- ``tamper``: a function (method, params, result) → result to corrupt answers in tests;
- ``fixed``: a constant answer for every request ("html", "http_401", "http_404") or
  ``reject_methods``: a JSON-RPC error for the given methods.

``counts`` holds how many times each fault kind fired, so tests can assert each one did;
``log`` holds (monotonic time, method, fault or None) per request.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("http_500", "http_502", "http_503", "http_429", "rpc_header_not_found", "rpc_rate_limit",
          "truncated_body", "cut_body", "connection_reset", "timeout")
GATEWAY_HTML = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
Tamper = Callable[[str, list[Any], Any], Any]


class FaultyRPCProxy:
    """Forward JSON-RPC to ``upstream``; fail a share of calls; count what was injected."""

    def __init__(self, upstream: str, *, seed: int = 0, fault_rate: float = 0.0,
                 faults: tuple[str, ...] = FAULTS, max_per_fault: int | None = None,
                 fault_methods: set[str] | None = None,
                 timeout_s: float = 2.0, retry_after_s: int = 1, getlogs_max_blocks: int | None = None,
                 duplicate_logs: bool = False, shuffle_logs: bool = False, tamper: Tamper | None = None,
                 fixed: str | None = None, reject_methods: dict[str, tuple[int, str]] | None = None) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}")
        self.upstream = upstream
        self.rng = random.Random(seed)
        self.fault_rate = fault_rate
        self.faults = faults
        self.max_per_fault = max_per_fault
        self.fault_methods = fault_methods
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.getlogs_max_blocks = getlogs_max_blocks
        self.duplicate_logs = duplicate_logs
        self.shuffle_logs = shuffle_logs
        self.tamper = tamper
        self.fixed = fixed
        self.reject_methods = reject_methods or {}
        self.counts: Counter[str] = Counter()
        self.methods: Counter[str] = Counter()
        self.log: list[tuple[float, str, str | None]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FaultyRPCProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- decisions (under the lock: one seeded sequence however requests interleave) ----------------
    def _pick_fault(self, method: str) -> str | None:
        with self.lock:
            self.methods[method] += 1
            fault = None
            if (self.fault_methods is None or method in self.fault_methods) and self.rng.random() < self.fault_rate:
                open_ = [f for f in self.faults if self.max_per_fault is None or self.counts[f] < self.max_per_fault]
                unseen = [f for f in open_ if not self.counts[f]]  # every kind fires early, then at random
                choices = unseen or open_
                if choices:
                    fault = self.rng.choice(choices)
                    self.counts[fault] += 1
            self.log.append((time.monotonic(), method, fault))
            return fault

    def _count(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1

    def forward(self, body: bytes) -> bytes:
        req = urllib.request.Request(self.upstream, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return bytes(resp.read())

    def _rewrite(self, request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        """Apply the log-level misbehaviours to one answered request."""
        method, result = request.get("method", ""), response.get("result")
        if method == "eth_getLogs" and isinstance(result, list) and result:
            with self.lock:
                if self.duplicate_logs:
                    repeats = [lg for i, lg in enumerate(result) if i % 3 == 0]
                    result = result + [dict(lg) for lg in repeats]
                    self.rng.shuffle(result)
                    self.counts["duplicate_logs"] += len(repeats)
                if self.shuffle_logs and len({lg["blockNumber"] for lg in result}) > 1:
                    shuffled = result[:]
                    while shuffled == result:
                        self.rng.shuffle(shuffled)
                    result = shuffled
                    self.counts["shuffled_answers"] += 1
        if self.tamper is not None and "result" in response:
            result = self.tamper(method, request.get("params", []), result)
        return {**response, "result": result} if "result" in response else response

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"proxy": self})


class _Handler(BaseHTTPRequestHandler):
    """Answers one request the way its :class:`FaultyRPCProxy` says (``proxy``, set per proxy)."""

    proxy: FaultyRPCProxy

    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error_answer(self, payload: Any, code: int, message: str) -> bytes:
        def one(req: Any) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "id": req.get("id") if isinstance(req, dict) else None,
                    "error": {"code": code, "message": message}}
        return json.dumps([one(r) for r in payload] if isinstance(payload, list) else one(payload)).encode()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            self._post()
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout fault): nothing to answer

    def _post(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        payload = json.loads(body)
        requests = payload if isinstance(payload, list) else [payload]
        method = requests[0].get("method", "?") if requests else "?"
        if self._refused(payload, method):
            return
        fault = self.proxy._pick_fault(method)
        if not self._failed(payload, fault):
            self._forward(body, payload, requests, fault)

    def _refused(self, payload: Any, method: str) -> bool:
        """Answer what this proxy always answers (a fixed failure, a rejected method, a range cap)."""
        if self.proxy.fixed == "html":
            self.proxy._count("html")
            self._send(200, b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>", "text/html")
            return True
        if self.proxy.fixed in ("http_401", "http_404"):
            self.proxy._count(self.proxy.fixed)
            status = int(self.proxy.fixed[-3:])
            self._send(status, b'{"error": "invalid project id"}' if status == 401 else b"Not Found")
            return True
        if method in self.proxy.reject_methods:
            self.proxy._count(f"rejected_{method}")
            self._send(200, self._error_answer(payload, *self.proxy.reject_methods[method]))
            return True
        if method == "eth_getLogs" and self.proxy.getlogs_max_blocks is not None and not isinstance(payload, list):
            flt = payload["params"][0]
            if int(flt["toBlock"], 16) - int(flt["fromBlock"], 16) + 1 > self.proxy.getlogs_max_blocks:
                self.proxy._count("getlogs_range_cap")
                self._send(200, self._error_answer(payload, -32005, "query returned more than 10000 results"))
                return True
        return False

    def _failed(self, payload: Any, fault: str | None) -> bool:
        """Fail the call the way ``fault`` says, unless it is a fault of the upstream's answer."""
        if fault in ("http_500", "http_502", "http_503"):
            status = int(fault[-3:])
            self._send(status, GATEWAY_HTML if status == 502 else b"upstream unavailable",
                       "text/html" if status == 502 else "text/plain")
        elif fault == "http_429":
            self._send(429, json.dumps({"jsonrpc": "2.0", "error": {"code": 429, "message": "Too Many Requests"}}).encode(),
                       headers={"Retry-After": str(self.proxy.retry_after_s)})
        elif fault == "connection_reset":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault == "timeout":
            time.sleep(self.proxy.timeout_s)
            self.close_connection = True
        elif fault == "rpc_rate_limit":
            self._send(200, self._error_answer(payload, -32005, "daily request count exceeded, request rate limited"))
        else:
            return False
        return True

    def _forward(self, body: bytes, payload: Any, requests: list[Any], fault: str | None) -> None:
        """The upstream's answer, rewritten as the proxy's options say (or broken by ``fault``)."""
        answer = json.loads(self.proxy.forward(body))
        if fault == "rpc_header_not_found":
            err = {"code": -32000, "message": "header not found"}
            if isinstance(answer, list):  # one element of the batch fails, the rest is answered
                answer[0] = {"jsonrpc": "2.0", "id": answer[0].get("id"), "error": err}
            else:
                answer = {"jsonrpc": "2.0", "id": answer.get("id"), "error": err}
        elif isinstance(answer, list):
            by_id = {r.get("id"): r for r in requests}
            answer = [self.proxy._rewrite(by_id.get(a.get("id"), {}), a) for a in answer]
        else:
            answer = self.proxy._rewrite(payload, answer)
        out = json.dumps(answer).encode()
        if fault == "cut_body":
            self._send(200, out[: len(out) // 2], length=len(out))
            self.close_connection = True
            return
        self._send(200, out[: len(out) // 2] if fault == "truncated_body" else out)


@contextmanager
def faulty_proxy(upstream: str, **options: Any) -> Iterator[FaultyRPCProxy]:
    """A started :class:`FaultyRPCProxy`, shut down on exit."""
    proxy = FaultyRPCProxy(upstream, **options).start()
    try:
        yield proxy
    finally:
        proxy.stop()
