"""A JSON-RPC client over HTTP that knows which node failures are worth retrying.

Hosted nodes fail in a handful of ways; each is classified once, here:
- transient (retried with exponential backoff, or after the node's ``Retry-After``): connection
  refused/reset, HTTP 429 and 5xx, truncated or non-JSON bodies, JSON-RPC rate-limit /
  "header not found" / internal errors;
- range too large (the caller narrows its eth_getLogs range): "query returned more than N
  results", response-size/payload limits, HTTP 413, and read timeouts of eth_getLogs;
- anything else is an IndexerError with a one-line message.
Messages never contain the RPC URL's path, query or credentials (API keys live there): exception
texts from the HTTP stack embed the URL, so they are never shown; :func:`redact_url` is.

The transport is a plain ``requests.Session`` posting JSON-RPC 2.0, not web3's HTTPProvider: the
classification needs the raw answer (status, ``Retry-After``, the body when it is not JSON), and
importing web3 cost the CLI a second of its start-up for four lines of transport.
"""

from __future__ import annotations

import contextlib
import email.utils
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import requests

from core.indexer.errors import IndexerError, RangeTooLargeError, TransientRPCError

T = TypeVar("T")
_BODY_PIECE = 1 << 22  # bytes of an answer read at a time (see RPC._send)

_TOO_LARGE = re.compile(
    r"more than \d+ results|too many (results|logs)|response size|payload|too large|range (is )?too (wide|large)"
    r"|exceed(s|ed)? .*(range|limit|size)|limit exceeded|limited to .*range|block range|query timeout|returned more than",
    re.IGNORECASE,
)
# Checked before _TOO_LARGE: "daily request count exceeded, request rate limited" is a rate limit,
# and narrowing the range on it would only send more requests.
_RATE_LIMIT = re.compile(r"rate.?limit|rate exceeded|too many requests|capacity|request count|credits|throughput",
                         re.IGNORECASE)
_TRANSIENT = re.compile(
    r"header not found|unknown block|try again|temporar|busy|timeout|internal error|overloaded|unavailable",
    re.IGNORECASE,
)
_SUGGESTED_RANGE = re.compile(r"\[(0x[0-9a-f]+),\s*(0x[0-9a-f]+)\]", re.IGNORECASE)  # Alchemy's hint


def redact_url(url: str) -> str:
    """scheme://host[:port] plus '/…' if the URL had a path or query (where API keys live)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    hidden = "/…" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


def _secrets(url: str) -> list[str]:
    """The parts of an RPC URL that may be credentials: user info, path segments, query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [parts.username or "", parts.password or ""]
    found += [unquote(seg) for seg in parts.path.split("/")]
    found += [v for _, v in parse_qsl(parts.query)]
    return sorted({f for f in found if len(f) >= 6}, key=len, reverse=True)


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def hex_quantity(value: Any, what: str) -> int:
    """A JSON-RPC quantity ("0x1a") as int; a node answering anything else is a node fault."""
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise TransientRPCError(f"{what}: the node answered {str(value)[:40]!r}, not a hex quantity")


class _Parsed:
    """An answer a caller's ``fast`` parser took (see :meth:`RPC.call`)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class RPC:
    """eth_* calls with retries; one instance per node."""

    def __init__(self, url: str, *, timeout: float = 30.0, retries: int = 6, backoff: float = 0.25,
                 max_retry_after: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> None:
        if not url or urlsplit(url).scheme not in ("http", "https"):
            raise IndexerError(f"RPC URL must be an http(s) URL, got {redact_url(url) if url else 'nothing'}: "
                               "pass --rpc-url or set RPC_URL")
        self.url = url
        self.safe_url = redact_url(url)
        self.secrets = _secrets(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self._local = threading.local()  # one HTTP session per thread: the indexer fetches ranges in parallel
        self._pause_lock = threading.Lock()
        self._serial = threading.Lock()  # held around each request once the node has rate-limited us
        self._not_before = 0.0  # monotonic time before which no request is sent (a Retry-After)
        self.rate_limited = False  # the node has said we ask too much: the indexer then asks one range at a time
        self.ids = itertools.count(1)
        self.answered = False  # has the node ever answered with JSON (tells a wrong URL from a hiccup)
        self.calls = 0

    # -- transport ---------------------------------------------------------------------------
    @property
    def session(self) -> requests.Session:
        """This thread's HTTP session (keep-alive connections are not shared between threads)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
            self._local.session = session
        return session

    def _node_text(self, text: str, limit: int = 200) -> str:
        """A node's error message fit for one line of output: whitespace collapsed, at most 200
        characters, and any part of the RPC URL that may be a credential cut out (nodes echo keys)."""
        for secret in self.secrets:
            text = text.replace(secret, "…")
        return " ".join(text.split())[:limit]

    def _classify_response(self, method: str, response: Any) -> Any:
        if not isinstance(response, dict):
            raise TransientRPCError(f"{method}: malformed response")
        if "error" in response and response["error"]:
            err = response["error"]
            message = self._node_text(str(err.get("message", err)) if isinstance(err, dict) else str(err))
            code = err.get("code") if isinstance(err, dict) else None
            if _RATE_LIMIT.search(message) or code == 429:
                raise TransientRPCError(f"{method}: node error {code!s:.20}: {message}", rate_limited=True)
            if method == "eth_getLogs" and _TOO_LARGE.search(message):
                hint = _SUGGESTED_RANGE.search(message)
                width = int(hint[2], 16) - int(hint[1], 16) + 1 if hint else None
                raise RangeTooLargeError(message, suggested_width=width)
            if code in (-32005, -32603, -32000, -32002, -32099) or _TRANSIENT.search(message):
                raise TransientRPCError(f"{method}: node error {code!s:.20}: {message}")
            offer = f" (the node does not offer {method}: use one that does)" if code == -32601 else ""
            raise IndexerError(f"{method} failed on {self.safe_url}: node error {code!s:.20}: {message}{offer}")
        if "result" not in response:
            raise TransientRPCError(f"{method}: response without result")
        return response["result"]

    def _rate_limited_for(self, seconds: float | None) -> None:
        """The node said we ask too much (and, if it said, for how long): set before any other thread
        can send again."""
        self.rate_limited = True
        if seconds is not None:
            with self._pause_lock:
                self._not_before = max(self._not_before, time.monotonic() + min(self.max_retry_after, seconds))

    def _honour_retry_after(self) -> None:
        """Wait out a Retry-After the node gave any thread (they share one node's patience)."""
        if (wait := self._not_before - time.monotonic()) > 0:
            self.sleep(wait)

    def _post(self, method: str, payload: Any, fast: Callable[[bytes], Any] | None = None) -> Any:
        """POST one JSON-RPC payload and return the decoded JSON answer, or raise a classified error.

        Once the node has rate-limited us, requests go one at a time, each after any Retry-After."""
        self.calls += 1
        with self._serial if self.rate_limited else contextlib.nullcontext():
            self._honour_retry_after()
            return self._post_once(method, payload, fast)

    def _send(self, method: str, payload: Any) -> tuple[requests.Response, bytes]:
        """The HTTP answer to one POST and its body, or a classified error of the transport."""
        try:
            resp = self.session.post(self.url, data=json.dumps(payload), timeout=self.timeout, stream=True)
            # ``resp.content`` reads a body in 10 KB pieces: for the 4-25 MB of a catch-up's eth_getLogs
            # answer 2-3x the CPU of 4 MB pieces, which raise the same transport errors
            return resp, b"".join(resp.iter_content(_BODY_PIECE))
        except requests.exceptions.ConnectTimeout:
            raise TransientRPCError(f"{method}: cannot connect to {self.safe_url}") from None
        except requests.exceptions.Timeout:
            if method == "eth_getLogs":
                raise RangeTooLargeError("timeout", transient=True) from None
            raise TransientRPCError(f"{method}: timeout after {self.timeout:g} s") from None
        except requests.exceptions.ConnectionError:
            raise TransientRPCError(f"{method}: cannot connect to {self.safe_url}") from None
        except requests.exceptions.RequestException as e:  # a body cut short, a broken chunk
            raise TransientRPCError(f"{method}: {type(e).__name__}") from None

    def _post_once(self, method: str, payload: Any, fast: Callable[[bytes], Any] | None = None) -> Any:
        resp, body = self._send(method, payload)
        status = resp.status_code
        if fast is not None and status == 200 and (parsed := fast(body)) is not None:
            self.answered = True
            return _Parsed(parsed)
        if status == 413 and method == "eth_getLogs":
            raise RangeTooLargeError("HTTP 413 payload too large")
        if status == 429:
            self._rate_limited_for(_retry_after(resp))
        if status == 429 or status >= 500:
            raise TransientRPCError(f"{method}: HTTP {status}", retry_after=_retry_after(resp), rate_limited=status == 429)
        try:
            answer = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            answer = None
        if status >= 400 and not (isinstance(answer, dict | list) and status == 400):
            raise IndexerError(f"{method} failed on {self.safe_url}: HTTP {status}"
                               + (" (check the API key in RPC_URL)" if status in (401, 403) else "")
                               + (" (is the URL the node's JSON-RPC endpoint?)" if status in (404, 405) else ""))
        if answer is None:
            html = "html" in resp.headers.get("Content-Type", "") or body.lstrip()[:1] == b"<"
            if html and not self.answered:
                raise IndexerError(f"{self.safe_url} answered {method} with an HTML page, not JSON-RPC: "
                                   "point --rpc-url at the node's JSON-RPC endpoint")
            raise TransientRPCError(f"{method}: {'an HTML page' if html else 'a truncated or non-JSON body'} "
                                    f"({len(body)} bytes) instead of JSON-RPC")
        self.answered = True
        return answer

    def _with_retries(self, method: str, attempt: Callable[[], T]) -> T:
        last: TransientRPCError | None = None
        for n in range(self.retries + 1):
            try:
                return attempt()
            except TransientRPCError as e:
                last = e
                self.rate_limited = self.rate_limited or e.rate_limited
                if n < self.retries:
                    delay = min(8.0, self.backoff * 2**n) * (0.5 + random.random() / 2)
                    if e.retry_after is not None:
                        delay = max(delay, min(self.max_retry_after, e.retry_after))
                        with self._pause_lock:  # every thread waits, not only the one that was told
                            self._not_before = max(self._not_before, time.monotonic() + delay)
                    self.sleep(delay)
        assert last is not None
        if "cannot connect" in str(last):
            raise IndexerError(f"cannot reach the RPC node at {self.safe_url}: is it running and is RPC_URL right?")
        hint = ("raise --rpc-timeout or use a faster node" if "timeout" in str(last)
                else "try again later, raise --rpc-retries or use another node")
        raise IndexerError(f"{self._node_text(str(last), 400)} (gave up after {self.retries + 1} attempts on {self.safe_url}): {hint}")

    def call(self, method: str, params: Sequence[Any], parse: Callable[[Any], T] | None = None,
             fast: Callable[[bytes], Any] | None = None) -> Any:
        """One JSON-RPC call; transient failures retried, RangeTooLargeError passed to the caller.

        ``parse`` converts the result inside the retry loop: a node answering nonsense is retried.
        ``fast`` may parse an HTTP 200 body itself (returning None when it does not take it): what it
        returns is the call's answer, unclassified and unparsed; any other body goes the usual way."""
        def attempt() -> Any:
            payload = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": list(params)}
            answer = self._post(method, payload, fast)
            if isinstance(answer, _Parsed):
                return answer.value
            result = self._classify_response(method, answer)
            return parse(result) if parse is not None else result
        return self._with_retries(method, attempt)

    def batch(self, method: str, params_list: Sequence[Sequence[Any]], size: int = 100) -> list[Any]:
        """The same method over many params in JSON-RPC batches of ``size``; results in order."""
        results: list[Any] = []
        for i in range(0, len(params_list), size):
            part = params_list[i : i + size]

            def attempt(part: Sequence[Sequence[Any]] = part) -> list[Any]:
                ids = [next(self.ids) for _ in part]
                answer = self._post(method, [{"jsonrpc": "2.0", "id": n, "method": method, "params": list(p)}
                                             for n, p in zip(ids, part, strict=True)])
                if isinstance(answer, dict):  # the node answered the batch with one error
                    self._classify_response(method, answer)
                    raise TransientRPCError(f"{method}: batch answered with a single object")
                by_id = {r.get("id"): r for r in answer if isinstance(r, dict)} if isinstance(answer, list) else {}
                if any(n not in by_id for n in ids):
                    raise TransientRPCError(f"{method}: batch answer is missing requests")
                return [self._classify_response(method, by_id[n]) for n in ids]
            results.extend(self._with_retries(method, attempt))
        return results

    # -- eth_* -------------------------------------------------------------------------------
    def chain_id(self) -> int:
        return int(self.call("eth_chainId", [], lambda r: hex_quantity(r, "eth_chainId")))

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber", [], lambda r: hex_quantity(r, "eth_blockNumber")))

    def get_logs(self, from_block: int, to_block: int, addresses: Sequence[str], topics: Sequence[str],
                 fast: Callable[[bytes], Any] | None = None) -> Any:
        """The logs of the range as the node's list of log objects; with ``fast`` (see
        :func:`core.indexer.raw.frame_from_body`) a well-formed answer is instead what ``fast`` parsed
        from its bytes."""
        def as_list(result: Any) -> list[dict[str, Any]]:
            if not isinstance(result, list):
                raise TransientRPCError(f"eth_getLogs: the node answered {type(result).__name__}, not a list of logs")
            return result
        return self.call("eth_getLogs", [{
            "fromBlock": hex(from_block), "toBlock": hex(to_block),
            "address": list(addresses), "topics": [list(topics)],
        }], as_list, fast)

    def blocks_by_number(self, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
        return self.batch("eth_getBlockByNumber", [[hex(n), False] for n in numbers])

    def blocks_by_hash(self, hashes: Sequence[str]) -> list[dict[str, Any] | None]:
        return self.batch("eth_getBlockByHash", [[h, False] for h in hashes])


def index_lag(url: str, last_block: int, last_timestamp: int, timeout: float = 5.0) -> tuple[int, int] | None:
    """(blocks, seconds) the index is behind the node's latest block, or None if the node can't be asked."""
    try:
        block = RPC(url, timeout=timeout, retries=1).call("eth_getBlockByNumber", ["latest", False])
        head, head_ts = int(block["number"], 16), int(block["timestamp"], 16)
    except (IndexerError, RangeTooLargeError, KeyError, TypeError, ValueError):
        return None
    return max(0, head - last_block), max(0, head_ts - last_timestamp)
