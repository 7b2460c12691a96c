"""decode: raw ``eth_getLogs`` logs → typed, unit-converted frames, one per table.

The words of most events decode column by column (:mod:`core.indexer.columnar`), `MarketCreated`
(a dynamic string) log by log here, and a liquidation's legs are joined to it
(:mod:`core.indexer.waterfall`).

A log with a known topic0 whose topics/data do not decode (wrong length, values out of range,
non-hex) is returned in ``Decoded.undecodable`` with a reason — counted, stored, never fatal.
A log from an address that is not the deployment's emitter for that event is counted as foreign.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlmodel import SQLModel

from core import schema
from core.abi import EventSpec, event_specs
from core.arrow_pool import hex_strings, owned_series
from core.indexer.columnar import COLUMNS, NEGATED, UNDECODABLE_SCHEMA, Unit, decode_event, undecodable
from core.indexer.manifest import Manifest
from core.indexer.raw import RAW_LOG_SCHEMA, logs_to_frame
from core.indexer.waterfall import join_waterfall

# Importable from here as before (the simulator's raw path uses them).
__all__ = ["COLUMNS", "NEGATED", "RAW_LOG_SCHEMA", "Decoded", "Unit", "decode_chunk", "decode_logs", "hex_strings",
           "import_in_background", "join_waterfall", "logs_to_frame", "owned_series"]

MARKET_TYPES = {0: "spot", 1: "perp"}



@dataclass
class Decoded:
    """What one batch of logs decoded into."""

    frames: dict[type[SQLModel], pl.DataFrame] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # EVENTS.md name → rows decoded
    undecodable: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=UNDECODABLE_SCHEMA))
    foreign: int = 0  # logs from addresses that are not this deployment's emitter of that event
    new_markets: dict[str, str] = field(default_factory=dict)  # market address → symbol



def import_in_background() -> None:
    """Import what decoding needs beyond this module (eth_abi, ~0.2 s of CPU) in a thread of its own: a
    catch-up starts it with its first request, so that the import runs while the node answers
    rather than in the first batch's decode (which waits for it if it comes first)."""
    threading.Thread(target=importlib.import_module, args=("eth_abi.abi",), name="decode-imports", daemon=True).start()


def _decode_market_created(spec: EventSpec, logs: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """MarketCreated carries a dynamic string, so it is decoded per log (markets are few)."""
    from eth_abi.abi import decode as abi_decode  # not at import: see import_in_background

    data_types = [("bytes" if p.type == "string" else p.type) for p in spec.data]
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for log in logs.iter_rows(named=True):
        try:
            if log["n_topics"] != 2 or log["topic1"] is None:
                raise ValueError("wrong number of topics")
            (market_word,) = abi_decode(["address"], bytes.fromhex(log["topic1"][2:]))
            symbol_bytes, market_type, base, quote = abi_decode(data_types, bytes.fromhex(log["data"][2:]))
        except Exception as e:  # any malformed encoding is reported, never fatal
            bad.append({**log, "_reason": f"cannot decode {spec.signature}: {type(e).__name__}"})
            continue
        rows.append({
            "chain_id": log["chain_id"], "market": market_word.lower(),
            # On-chain strings are untrusted: invalid UTF-8 and NUL (which PostgreSQL text cannot
            # hold, so one symbol would stop the indexer there) become U+FFFD, the rest is verbatim.
            "symbol": symbol_bytes.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
            "market_type": MARKET_TYPES.get(market_type, f"unknown({market_type})"),
            "base_token": base.lower(), "quote_token": quote.lower(),
            "tx_hash": log["tx_hash"], "log_index": log["log_index"],
            "block_number": log["block_number"], "block_timestamp": log["block_timestamp"],
        })
    market_schema = schema.frame_schema(schema.Market)
    good = pl.DataFrame(rows, schema=market_schema)
    bad_frame = pl.DataFrame(bad, schema={**logs.schema, "_reason": pl.String}) if bad else logs.clear().with_columns(
        pl.lit(None, dtype=pl.String).alias("_reason"))
    return good, undecodable(bad_frame, spec.name)



def _decode_markets(out: Decoded, created: pl.DataFrame, spec: EventSpec, registry: str) -> pl.DataFrame:
    """Decode the batch's `MarketCreated` logs from the registry into ``out``; the undecodable ones."""
    if not created.height:
        return undecodable(created.with_columns(pl.lit(None, dtype=pl.String).alias("_reason")), spec.name)
    from_registry = created.filter(pl.col("address") == registry)
    out.foreign += created.height - from_registry.height
    rows, bad = _decode_market_created(spec, from_registry)
    if rows.height:
        rows = rows.unique(subset=["market"], keep="first", maintain_order=True)
        out.frames[schema.Market] = rows
        out.counts["MarketCreated"] = rows.height
        out.new_markets = dict(zip(rows["market"].to_list(), rows["symbol"].to_list(), strict=True))
    return bad


def decode_logs(
    raw: pl.DataFrame,
    *,
    chain_id: int,
    contracts: dict[str, str],
    markets: set[str],
    timestamps: pl.DataFrame,
) -> Decoded:
    """Decode one batch of raw logs (``logs_to_frame`` output) of the deployment.

    ``contracts`` maps manifest role → address (lower-case); ``markets`` the already known market
    addresses (markets created in this batch are added); ``timestamps`` has block_number and
    block_timestamp for every block in the batch.
    """
    out = Decoded()
    if raw.height == 0:
        return out
    specs = event_specs()
    by_topic = {s.topic0: s for s in specs.values()}
    frame = raw.join(timestamps.select("block_number", "block_timestamp"), on="block_number", how="left").with_columns(
        pl.lit(chain_id, dtype=pl.Int64).alias("chain_id"),
        pl.col("topic0").replace_strict({t: s.name for t, s in by_topic.items()}, default=None).alias("_event"),
    )
    missing_ts = frame.filter(pl.col("block_timestamp").is_null()).height
    if missing_ts:
        raise ValueError(f"{missing_ts} logs have no block timestamp")
    known = frame.filter(pl.col("_event").is_not_null())
    out.foreign += frame.height - known.height
    undecodable: list[pl.DataFrame] = []

    undecodable.append(_decode_markets(out, known.filter(pl.col("_event") == "MarketCreated"), specs["MarketCreated"],
                                       contracts.get("MarketRegistry", "").lower()))
    all_markets = markets | set(out.new_markets)

    for name, group in known.filter(pl.col("_event") != "MarketCreated").group_by("_event"):
        spec = specs[str(name[0])]
        if spec.contract == "OrderBook":
            mine = group.filter(pl.col("address").is_in(list(all_markets)) & (pl.col("address") == pl.lit("0x") + pl.col("topic1").str.slice(26, 40)))
        else:
            mine = group.filter(pl.col("address") == contracts.get(spec.contract, "").lower())
        out.foreign += group.height - mine.height
        if mine.height == 0:
            continue
        model = schema.EVENT_TABLES[spec.name]
        rows, bad = decode_event(spec, mine, model)
        undecodable.append(bad)
        if rows.height:
            out.counts[spec.name] = rows.height
            out.frames[model] = pl.concat([out.frames[model], rows]) if model in out.frames else rows
    if undecodable:
        out.undecodable = pl.concat(undecodable)
    if schema.Liquidation in out.frames:
        out.frames[schema.Liquidation] = join_waterfall(out.frames)
    for model, f in out.frames.items():
        if "log_index" in f.columns and not _in_chain_order(f):
            out.frames[model] = f.sort("block_number", "log_index")
    return out


def decode_chunk(raw: pl.DataFrame, blocks: pl.DataFrame, manifest: Manifest, markets: Iterable[str]) -> Decoded:
    """:func:`decode_logs` for one fetched chunk of ``manifest``'s deployment, with its blocks frame
    (number, hash, timestamp) as the timestamps."""
    return decode_logs(raw, chain_id=manifest.chain_id, contracts=manifest.contracts, markets=set(markets),
                       timestamps=blocks.select(pl.col("number").alias("block_number"),
                                                pl.col("timestamp").alias("block_timestamp")))



def _in_chain_order(frame: pl.DataFrame) -> bool:
    """Rows already ascend by (block_number, log_index), as one event's logs usually come: then
    sorting (a gather of every column) can be skipped."""
    block, log = pl.col("block_number"), pl.col("log_index")
    step = (block.diff() > 0) | ((block.diff() == 0) & (log.diff() > 0))
    return bool(frame.select(step.fill_null(True).all()).item())

