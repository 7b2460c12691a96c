"""The vault what-if engine's reader: one chain's liquidations (with their recorded waterfall), the
oracle's marks, daily market volume and fees, and the open positions, as a :class:`History`.

Everything the replay needs is read here, once; :mod:`core.vault` never opens a database. Two
columns of the liquidation frame are rebuilt from raw chain integers rather than the stored floats:

- ``book_filled``: the book leg's size, Σ of its fill-type-1 trades' ``size_raw`` as an exact integer,
  converted once as the decoder converts a size (float of the integer ÷ 1e18). A book leg that filled
  the whole position then equals its ``size`` exactly, which a float sum of the fills does not (the
  fixed-point dust of issue #12);
- ``opened_ts``: when the position last changed before its liquidation (its latest PositionUpdated in
  an earlier block), the start of the stretch over which its size, entry and collateral are the
  ones PositionLiquidated records: the replay reconstructs its equity along the marks from there.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import db, schema
from core.read import stats
from core.vault.history import History, HistoryError, assemble, liquidation_frame

E18 = 10.0**18
_DEFICIT_TIERS = {"adl_covered_usd": "adl_usd", "backstop_loss_usd": "backstop_usd",
                  "insurance_cover_usd": "insurance_usd", "socialized_usd": "socialized_usd"}


def pick_chain(chains: list[int], chain_id: int | None) -> int:
    """``chain_id`` if it is indexed (default: the first indexed chain); HistoryError otherwise."""
    if not chains:
        raise HistoryError("the database has no indexed chain: index a deployment or build the demo first")
    if chain_id is None:
        return chains[0]
    if chain_id not in chains:
        raise HistoryError(f"chain {chain_id} is not indexed in this database (indexed: {', '.join(map(str, chains))})")
    return chain_id


def _window(q: sa.Select[Any], column: sa.ColumnElement[Any], start: int | None, end: int | None) -> sa.Select[Any]:
    if start is not None:
        q = q.where(column >= start)
    if end is not None:
        q = q.where(column < end)
    return q


def _liquidation_rows(conn: sa.Connection, cid: int, start: int | None, end: int | None) -> pl.DataFrame:
    L = schema.table_of(schema.Liquidation)
    cols = [L.c.block_timestamp.label("ts"), L.c.block_number, L.c.log_index, L.c.tx_hash, L.c.position_key,
            L.c.account, L.c.market, L.c.is_long, L.c.size, L.c.entry_price, L.c.collateral_usd.label("collateral"),
            L.c.mark_price.label("mark"), L.c.notional_usd.label("notional"), L.c.remaining_equity_usd.label("equity"),
            L.c.book_filled_size.label("book_filled"), L.c.adl_size, *(L.c[c] for c in _DEFICIT_TIERS),
            L.c.fee_collected_usd.label("penalty_usd")]
    f64, i64, s = pl.Float64(), pl.Int64(), pl.String()
    types: dict[str, pl.DataType] = {
        "ts": i64, "block_number": i64, "log_index": i64, "tx_hash": s, "position_key": s, "account": s, "market": s,
        "is_long": pl.Boolean(), "size": f64, "entry_price": f64, "collateral": f64, "mark": f64, "notional": f64,
        "equity": f64, "book_filled": f64, "adl_size": f64, **dict.fromkeys(_DEFICIT_TIERS, f64), "penalty_usd": f64}
    assert list(types) == [c.name for c in cols]  # read_frame matches columns by position
    q = _window(sa.select(*cols).where(L.c.chain_id == cid), L.c.block_timestamp, start, end)
    return db.read_frame(conn, q, types).rename(_DEFICIT_TIERS)


def _exact_book_fills(conn: sa.Connection, cid: int, liqs: pl.DataFrame) -> pl.DataFrame:
    """Per liquidation (tx_hash, log_index): its book leg's size from the raw integers of its fills."""
    if liqs.height == 0:
        return pl.DataFrame(schema={"tx_hash": pl.String(), "log_index": pl.Int64(), "book_exact": pl.Float64()})
    T = schema.table_of(schema.Trade)
    L = schema.table_of(schema.Liquidation)
    # A book leg is in its liquidation's block: look the blocks up by the primary key.
    blocks = sa.select(L.c.block_number).where(L.c.chain_id == cid, L.c.block_number.between(
        int(liqs["block_number"].min()), int(liqs["block_number"].max())))  # type: ignore[arg-type]
    q = sa.select(T.c.tx_hash, T.c.log_index, T.c.market, T.c.size_raw).where(
        T.c.chain_id == cid, T.c.block_number.in_(blocks), T.c.fill_type == 1)
    fills = db.read_frame(conn, q, {"tx_hash": pl.String(), "log_index": pl.Int64(), "market": pl.String(),
                                    "size_raw": pl.String()})
    # A leg belongs to the first PositionLiquidated at or after it in its transaction (schema.Liquidation).
    heads = liqs.select("tx_hash", pl.col("log_index").alias("liq_log_index"), pl.col("market").alias("liq_market"))
    legs = fills.sort("log_index").join_asof(heads.sort("liq_log_index"), left_on="log_index",
                                             right_on="liq_log_index", by="tx_hash", strategy="forward",
                                             check_sortedness=False)
    legs = legs.filter(pl.col("market") == pl.col("liq_market"))
    totals: dict[tuple[str, int], int] = {}
    for tx, li, raw in legs.select("tx_hash", "liq_log_index", "size_raw").iter_rows():
        totals[(tx, li)] = totals.get((tx, li), 0) + int(raw)
    return pl.DataFrame({"tx_hash": [k[0] for k in totals], "log_index": [k[1] for k in totals],
                         "book_exact": [float(v) / E18 for v in totals.values()]},
                        schema={"tx_hash": pl.String(), "log_index": pl.Int64(), "book_exact": pl.Float64()})


def _opened(conn: sa.Connection, cid: int, start: int | None, end: int | None) -> pl.DataFrame:
    """Per liquidation: the block time of its position's latest PositionUpdated in an earlier block.

    One seek per liquidation on ``ix_position_updates_key_block`` (block times never decrease along the
    chain, so the latest earlier update's time is the largest earlier time), instead of reading every
    update of every liquidated position (248k of the 90-day demo's 1.2M rows for its 24k liquidations)."""
    U = schema.table_of(schema.PositionUpdate)
    L = schema.table_of(schema.Liquidation)
    last = sa.select(sa.func.max(U.c.block_timestamp)).where(
        U.c.chain_id == L.c.chain_id, U.c.position_key == L.c.position_key,
        U.c.block_number < L.c.block_number).scalar_subquery()
    q = _window(sa.select(L.c.tx_hash, L.c.log_index, last.label("opened_ts")).where(L.c.chain_id == cid),
                L.c.block_timestamp, start, end)
    return db.read_frame(conn, q, {"tx_hash": pl.String(), "log_index": pl.Int64(), "opened_ts": pl.Int64()})


def load(engine: Engine, chain_id: int | None = None, start: int | None = None, end: int | None = None) -> History:
    """The history of ``chain_id`` (default: the first indexed chain) in [start, end); without ``end``,
    through the newest indexed block (the dashboard's "All", so the CLI and the page replay the same span)."""
    try:
        chains = stats.chain_ids(engine)
    except sa.exc.SQLAlchemyError:
        raise HistoryError("the database has no marginX tables: index a deployment or build the demo first") from None
    cid = pick_chain(chains, chain_id)
    if end is None:
        newest = stats.latest_timestamp(engine, cid)
        end = newest + 1 if newest is not None else None
    P = schema.table_of(schema.Price)
    S = schema.table_of(schema.MarketStatsDaily)
    pq = _window(sa.select(P.c.market, P.c.block_timestamp.label("ts"), P.c.mark_price.label("mark"))
                 .where(P.c.chain_id == cid), P.c.block_timestamp, start, end)
    sq = _window(sa.select(S.c.market, S.c.bucket.label("day"), S.c.volume_usd, S.c.fees_usd).where(S.c.chain_id == cid),
                 S.c.bucket, start, end)
    with engine.connect() as conn:
        raw = _liquidation_rows(conn, cid, start, end)
        exact = _exact_book_fills(conn, cid, raw)
        opened = _opened(conn, cid, start, end)
        marks = db.read_frame(conn, pq, {"market": pl.String(), "ts": pl.Int64(), "mark": pl.Float64()})
        daily = db.read_frame(conn, sq, {"market": pl.String(), "day": pl.Int64(), "volume_usd": pl.Float64(),
                                         "fees_usd": pl.Float64()})
    liqs = raw.join(exact, on=["tx_hash", "log_index"], how="left").join(opened, on=["tx_hash", "log_index"], how="left")
    liqs = liqs.with_columns(pl.col("book_exact").fill_null(0.0).alias("book_filled")).drop("book_exact")
    return assemble(cid, liquidation_frame(liqs), marks, daily, stats.markets(engine, cid), start, end)


OPEN_POSITION_COLUMNS = ("position_key", "account", "market", "is_long", "size", "entry_price", "collateral_usd")


def open_positions_query(chain_id: int, markets: tuple[str, ...] | None = None) -> sa.Select[Any]:
    """The open book's SELECT. It reads ix_positions_latest_open, the partial index of open positions that
    holds every column read (31k of 160k rows at 10M trades), not the table: the index's WHERE must appear
    here as written (a literal 0, not a bound parameter) for the planner to match it."""
    t = schema.table_of(schema.PositionLatest)
    q = sa.select(*(t.c[c] for c in OPEN_POSITION_COLUMNS)).where(t.c.chain_id == chain_id,
                                                                  t.c.size > sa.literal_column("0"))
    return q if markets is None else q.where(t.c.market.in_(markets))


def open_positions(engine: Engine, chain_id: int, markets: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Positions open at the newest indexed block (their latest PositionUpdated has a size), from the
    rollup's positions_latest table; of ``markets`` only, if given (its market index).

    Columns: position_key, account, market, is_long, size, entry_price, collateral_usd."""
    q = open_positions_query(chain_id, markets)
    cols = OPEN_POSITION_COLUMNS
    types = schema.frame_schema(schema.PositionLatest)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    # built column by column (a row-wise frame of 31k rows costs twice as much); sorted here, not by an ORDER BY
    columns = list(zip(*rows, strict=True)) or [()] * len(cols)
    return pl.DataFrame(dict(zip(cols, columns, strict=True)), schema={c: types[c] for c in cols}).sort("position_key")
