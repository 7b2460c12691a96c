"""The indexer's domain errors: each carries a one-line message fit for a user's terminal."""

from __future__ import annotations


class IndexerError(Exception):
    """A failure the user must act on (bad input, unreachable node, node refusing a range)."""


class TransientRPCError(Exception):
    """A failure worth retrying with backoff (HTTP 5xx/429, timeouts, truncated bodies, rate limits).

    ``retry_after``: seconds the node asked us to wait (HTTP Retry-After), if it said;
    ``rate_limited``: the node said we ask too much (HTTP 429, a rate-limit error)."""

    def __init__(self, message: str, *, retry_after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class RangeTooLargeError(Exception):
    """The node refused an eth_getLogs range as too large (too many results, payload, timeout).

    ``transient``: the refusal may be a hiccup rather than the range (a read timeout), so at the
    smallest range it is retried instead of given up on. ``suggested_width``: the span the node
    said would work, when it said (Alchemy names a block range)."""

    def __init__(self, message: str, *, transient: bool = False, suggested_width: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.suggested_width = suggested_width


class ReorgDuringFetchError(TransientRPCError):
    """The chain changed under a chunk being fetched (a block vanished or hashes disagree)."""


class MalformedAnswerError(TransientRPCError):
    """The node's answer is well-formed JSON-RPC but not what the method returns (a faulty node)."""
