"""A JSON-RPC client over web3's HTTPProvider that knows which node failures are worth retrying.

Hosted nodes fail in a handful of ways; each is classified once, here:
- transient (retried with exponential backoff): connection refused/reset, HTTP 429 and 5xx,
  truncated or non-JSON bodies, JSON-RPC rate-limit / "header not found" / internal errors;
- range too large (the caller halves its eth_getLogs range): "query returned more than N results",
  response-size/payload limits, HTTP 413, and timeouts of eth_getLogs;
- anything else is an IndexerError with a one-line message.
Messages never contain the RPC URL's path, query or credentials (API keys live there): exception
texts from the HTTP stack embed the URL, so they are never shown; :func:`redact_url` is.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from web3 import HTTPProvider

from core.indexer.errors import IndexerError, RangeTooLargeError, TransientRPCError

T = TypeVar("T")

_TOO_LARGE = re.compile(
    r"more than \d+ results|too many (results|logs)|response size|payload|too large|range (is )?too (wide|large)"
    r"|exceed(s|ed)? .*(range|limit|size)|limit exceeded|block range|query timeout|returned more than",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"rate.?limit|too many requests|capacity|header not found|unknown block|try again|temporar|busy|timeout"
    r"|internal error|overloaded|unavailable",
    re.IGNORECASE,
)


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


class RPC:
    """eth_* calls with retries; one instance per node."""

    def __init__(self, url: str, *, timeout: float = 30.0, retries: int = 6, backoff: float = 0.25,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not url or urlsplit(url).scheme not in ("http", "https"):
            raise IndexerError(f"RPC URL must be an http(s) URL, got {redact_url(url) if url else 'nothing'}: "
                               "pass --rpc-url or set RPC_URL")
        self.url = url
        self.safe_url = redact_url(url)
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.provider = HTTPProvider(url, exception_retry_configuration=None, request_kwargs={"timeout": timeout})
        self.calls = 0

    # -- transport ---------------------------------------------------------------------------
    def _classify_response(self, method: str, response: Any) -> Any:
        if not isinstance(response, dict):
            raise TransientRPCError(f"{method}: malformed response")
        if "error" in response and response["error"]:
            err = response["error"]
            message = str(err.get("message", err)) if isinstance(err, dict) else str(err)
            code = err.get("code") if isinstance(err, dict) else None
            if method == "eth_getLogs" and (_TOO_LARGE.search(message) or code == -32005 and "result" in message):
                raise RangeTooLargeError(message[:200])
            if code in (429, -32005, -32603, -32000, -32002, -32099) or _TRANSIENT.search(message):
                raise TransientRPCError(f"{method}: node error {code}: {message[:200]}")
            raise IndexerError(f"{method} failed on {self.safe_url}: node error {code}: {message[:200]}")
        if "result" not in response:
            raise TransientRPCError(f"{method}: response without result")
        return response["result"]

    def _once(self, method: str, send: Callable[[], T]) -> T:
        self.calls += 1
        try:
            return send()
        except requests.exceptions.HTTPError as e:
            status = e.response.status_code if e.response is not None else 0
            if status == 413 and method == "eth_getLogs":
                raise RangeTooLargeError("HTTP 413 payload too large") from None
            if status == 429 or status >= 500:
                raise TransientRPCError(f"{method}: HTTP {status}") from None
            raise IndexerError(f"{method} failed on {self.safe_url}: HTTP {status}"
                               + (" (check the API key in RPC_URL)" if status in (401, 403) else "")) from None
        except requests.exceptions.Timeout:
            if method == "eth_getLogs":
                raise RangeTooLargeError("timeout") from None
            raise TransientRPCError(f"{method}: timeout") from None
        except requests.exceptions.ConnectionError:
            raise TransientRPCError(f"{method}: cannot connect to {self.safe_url}") from None
        except requests.exceptions.RequestException as e:
            raise TransientRPCError(f"{method}: {type(e).__name__}") from None
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
            # web3 raises on bodies that are not JSON (truncated, HTML error pages)
            raise TransientRPCError(f"{method}: unreadable response ({type(e).__name__})") from None

    def _with_retries(self, method: str, attempt: Callable[[], T]) -> T:
        last: TransientRPCError | None = None
        for n in range(self.retries + 1):
            try:
                return attempt()
            except TransientRPCError as e:
                last = e
                if n < self.retries:
                    self.sleep(min(8.0, self.backoff * 2**n) * (0.5 + random.random() / 2))
        assert last is not None
        if "cannot connect" in str(last):
            raise IndexerError(f"cannot reach the RPC node at {self.safe_url}: is it running and is RPC_URL right?")
        raise IndexerError(f"{last} (gave up after {self.retries + 1} attempts on {self.safe_url})")

    def call(self, method: str, params: Sequence[Any]) -> Any:
        """One JSON-RPC call; transient failures retried, RangeTooLargeError passed to the caller."""
        def attempt() -> Any:
            response = self._once(method, lambda: self.provider.make_request(method, list(params)))  # type: ignore[arg-type]
            return self._classify_response(method, response)
        return self._with_retries(method, attempt)

    def batch(self, method: str, params_list: Sequence[Sequence[Any]], size: int = 100) -> list[Any]:
        """The same method over many params in JSON-RPC batches of ``size``; results in order."""
        results: list[Any] = []
        for i in range(0, len(params_list), size):
            part = params_list[i : i + size]

            def attempt(part: Sequence[Sequence[Any]] = part) -> list[Any]:
                responses = self._once(method, lambda: self.provider.make_batch_request(
                    [(method, list(p)) for p in part]))  # type: ignore[misc]
                if isinstance(responses, dict):  # the node answered the batch with one error
                    self._classify_response(method, responses)
                    raise TransientRPCError(f"{method}: batch answered with a single object")
                if not isinstance(responses, list) or len(responses) != len(part):
                    raise TransientRPCError(f"{method}: batch answer has the wrong length")
                by_id = sorted(responses, key=lambda r: int(r.get("id", 0)) if isinstance(r, dict) else 0)
                return [self._classify_response(method, r) for r in by_id]
            results.extend(self._with_retries(method, attempt))
        return results

    # -- eth_* -------------------------------------------------------------------------------
    def chain_id(self) -> int:
        return int(self.call("eth_chainId", []), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber", []), 16)

    def get_logs(self, from_block: int, to_block: int, addresses: Sequence[str], topics: Sequence[str]) -> list[dict[str, Any]]:
        logs = self.call("eth_getLogs", [{
            "fromBlock": hex(from_block), "toBlock": hex(to_block),
            "address": list(addresses), "topics": [list(topics)],
        }])
        if not isinstance(logs, list):
            raise TransientRPCError("eth_getLogs: result is not a list")
        return logs

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
