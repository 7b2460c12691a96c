"""Raw logs: the node's ``eth_getLogs`` objects as one columnar frame, the decoder's input."""

from __future__ import annotations

from typing import Any

import polars as pl

RAW_LOG_SCHEMA = pl.Schema({
    "address": pl.String, "topic0": pl.String, "topic1": pl.String, "topic2": pl.String,
    "topic3": pl.String, "n_topics": pl.Int64, "data": pl.String, "block_number": pl.Int64,
    "block_hash": pl.String, "tx_hash": pl.String, "log_index": pl.Int64,
})



def _hex_int(column: str) -> pl.Expr:
    """A 0x-hex quantity column as an integer column of the same name."""
    return pl.col(column).str.slice(2).str.to_integer(base=16)


def logs_to_frame(logs: list[dict[str, Any]]) -> pl.DataFrame:
    """Raw JSON-RPC log objects → one columnar frame (hex kept as lower-case strings)."""
    def topic(i: int) -> list[str | None]:
        return [t[i] if len(t) > i else None for t in (lg["topics"] for lg in logs)]

    frame = pl.DataFrame(
        {
            "address": [lg["address"] for lg in logs],
            "topic0": topic(0), "topic1": topic(1), "topic2": topic(2), "topic3": topic(3),
            "n_topics": [len(lg["topics"]) for lg in logs],
            "data": [lg["data"] for lg in logs],
            "block_number": [lg["blockNumber"] for lg in logs],
            "block_hash": [lg["blockHash"] for lg in logs],
            "tx_hash": [lg["transactionHash"] for lg in logs],
            "log_index": [lg["logIndex"] for lg in logs],
        },
        schema_overrides={k: pl.String for k in ("topic0", "topic1", "topic2", "topic3")},
    )
    return frame.with_columns(
        # data and topics 1-3 are decoded as bytes (hex case does not matter); these are compared as text
        pl.col("address", "topic0", "block_hash", "tx_hash").str.to_lowercase(),
        _hex_int("block_number"), _hex_int("log_index"),
    ).select(RAW_LOG_SCHEMA.names()).unique(subset=["block_number", "log_index"], keep="first", maintain_order=True)
