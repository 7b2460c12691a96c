"""Raw logs: the node's ``eth_getLogs`` objects as one columnar frame, the decoder's input."""

from __future__ import annotations

import io
import re
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


_BODY_FIELDS: dict[str, pl.DataType] = {
    "address": pl.String(), "topics": pl.List(pl.String), "data": pl.String(), "blockHash": pl.String(),
    "blockNumber": pl.String(), "transactionHash": pl.String(), "logIndex": pl.String()}
# What the fast path reads of an answer; other fields (transactionIndex, ...) are skipped. Given the
# types, polars reads the body in one pass instead of two (inferring them first: 2.3x the CPU),
# but it then coerces what it can: a number or a boolean into text (which the 0x checks below
# refuse), and a lone string into a one-element list, which _TOPICS_NOT_A_LIST refuses first.
# An ``error`` member is read as text: an error object then fails the read and a string is not null,
# so either goes to the slow path, which raises it (scanning the body for it cost 0.28 s per 374 MB).
_BODY_SCHEMA = pl.Schema({"result": pl.List(pl.Struct({**_BODY_FIELDS, "blockTimestamp": pl.String(),
                                                       "removed": pl.Boolean()})), "error": pl.String()})
_TOPICS_NOT_A_LIST = re.compile(rb'"topics"\s*:\s*[^\s\[]')


def frame_from_body(body: bytes) -> tuple[pl.DataFrame, dict[str, str]] | None:
    """An ``eth_getLogs`` answer's raw bytes → (the raw frame :func:`logs_to_frame` gives, block hash →
    ``blockTimestamp``), parsed by polars' JSON reader without a Python object per log (json.loads
    and the per-log lists cost ~2.2 s of CPU per 122k logs).

    Only a well-formed answer takes this path: a JSON-RPC object with a ``result`` list of log
    objects whose fields all have the types the method returns (``removed`` logs dropped). Anything
    else (an error object, a missing or mistyped field, a non-hex quantity, a timestamp on some logs
    only) returns None, and the caller parses the body as before, with the messages that path gives."""
    # Topics that are not a list: hex words never hold a quote, so the pattern cannot match inside a
    # well-formed log.
    if body.lstrip()[:1] != b"{" or _TOPICS_NOT_A_LIST.search(body):
        return None
    try:
        answer = pl.read_json(io.BytesIO(body), schema=_BODY_SCHEMA)
        if answer.height != 1 or answer.get_column("error").null_count() != 1:
            return None
        result = answer.get_column("result")
        if result.null_count():  # no result list
            return None
        if result.list.len().item() == 0:
            return pl.DataFrame(schema=RAW_LOG_SCHEMA), {}
        logs = result.explode().struct.unnest()
        logs = logs.filter(pl.col("removed").fill_null(False).not_())
        if not logs.height:
            return pl.DataFrame(schema=RAW_LOG_SCHEMA), {}
        stamped = logs.get_column("blockTimestamp").null_count() < logs.height
        required = [*_BODY_FIELDS, *(["blockTimestamp"] if stamped else [])]
        texts = [c for c in required if c != "topics"]
        hex_text = pl.col(texts).str.starts_with("0x") | pl.col(texts).str.starts_with("0X")
        if logs.select(pl.any_horizontal(pl.col(required).is_null()).any()).item() \
                or not logs.select(pl.all_horizontal(hex_text).all()).item() \
                or not logs.select(pl.col("topics").list.eval(pl.element().str.starts_with("0x").fill_null(False))
                                   .list.all().all()).item():
            return None
        topics = pl.col("topics")
        frame = logs.select(
            pl.col("address").str.to_lowercase(),
            *(topics.list.get(i, null_on_oob=True).alias(f"topic{i}") for i in range(4)),
            topics.list.len().cast(pl.Int64).alias("n_topics"),
            "data",
            _hex_int("blockNumber").cast(pl.Int64).alias("block_number"),
            pl.col("blockHash").str.to_lowercase().alias("block_hash"),
            pl.col("transactionHash").str.to_lowercase().alias("tx_hash"),
            _hex_int("logIndex").cast(pl.Int64).alias("log_index"),
            *([pl.col("blockTimestamp")] if stamped else []),
        ).with_columns(pl.col("topic0").str.to_lowercase())
        stamps: dict[str, str] = {}
        if stamped:
            pairs = frame.select("block_hash", "blockTimestamp").unique()
            if pairs["block_hash"].n_unique() != pairs.height:  # two timestamps for one block: the slow path keeps the last
                return None
            stamps = dict(zip(pairs["block_hash"].to_list(), pairs["blockTimestamp"].to_list(), strict=True))
        frame = frame.select(RAW_LOG_SCHEMA.names()).unique(subset=["block_number", "log_index"], keep="first",
                                                              maintain_order=True)
        return frame, stamps
    except Exception:  # anything polars cannot read as a well-formed answer: the slow path names what is wrong
        return None
