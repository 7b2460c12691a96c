"""The indexer's domain errors: each carries a one-line message fit for a user's terminal."""

from __future__ import annotations


class IndexerError(Exception):
    """A failure the user must act on (bad input, unreachable node, node refusing a range)."""


class TransientRPCError(Exception):
    """A failure worth retrying with backoff (HTTP 5xx/429, timeouts, truncated bodies, rate limits)."""


class RangeTooLargeError(Exception):
    """The node refused an eth_getLogs range as too large (too many results, payload, timeout)."""


class ReorgDuringFetchError(TransientRPCError):
    """The chain changed under a chunk being fetched (a block vanished or hashes disagree)."""
