"""Readers of the rollup tables and the few raw-row aggregates the dashboard needs (typed frames out).

Everything a page or endpoint shows for a period reads the rollups (core/rollup.py), so its cost
grows with buckets × markets, not with trades; the raw tables are read only where a figure is
exact by definition (a 24-hour distinct-trader window, one day's liquidation rows).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import db, rollup, schema
from core.period import Filters
from core.read.where import in_period
from core.utc import DAY


def _frame(engine: Engine, query: sa.Select[Any], model: type[Any]) -> pl.DataFrame:
    """Rows of ``query`` typed by ``model``'s frame schema (the columns it selects)."""
    target = schema.frame_schema(model)
    with engine.connect() as conn:
        return db.read_frame(conn, query, {c.name: target[c.name] for c in query.selected_columns})


def _bounded(t: sa.Table, q: sa.Select[Any], f: Filters, *, with_markets: bool = True) -> sa.Select[Any]:
    return in_period(q, t, f, time="bucket", markets=with_markets)


Bind = Engine | sa.Connection


@contextmanager
def _connected(bind: Bind) -> Iterator[sa.Connection]:
    """``bind`` itself when it is a connection (several reads on one), else a new one for this read."""
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


# The small per-request statements, built once (their values are bound parameters).
_CHECKPOINT, _BLOCK, _COUNTS = (schema.table_of(m) for m in (schema.Checkpoint, schema.Block, schema.TraderCounts))
_CHAIN: sa.BindParameter[int] = sa.bindparam("chain_id")
_CHAIN_IDS = sa.select(_CHECKPOINT.c.chain_id)
_LAST_BLOCK = sa.select(sa.func.max(_CHECKPOINT.c.last_block)).where(_CHECKPOINT.c.chain_id == _CHAIN)
_LATEST_TIMESTAMP = sa.select(sa.func.max(_BLOCK.c.timestamp)).where(_BLOCK.c.chain_id == _CHAIN)
_HEADS = sa.select(_CHECKPOINT.c.chain_id, sa.func.max(_CHECKPOINT.c.last_block), sa.select(sa.func.max(_BLOCK.c.timestamp)).where(
    _BLOCK.c.chain_id == _CHECKPOINT.c.chain_id).scalar_subquery()).group_by(_CHECKPOINT.c.chain_id)
_TRADER_COUNTS = sa.select(_COUNTS.c.as_of, _COUNTS.c.traders_24h, _COUNTS.c.traders_total).where(
    _COUNTS.c.chain_id == _CHAIN)


def chain_ids(bind: Bind) -> list[int]:
    """Chains with a checkpoint (indexed deployments), ascending."""
    with _connected(bind) as conn:
        return sorted({int(c) for (c,) in conn.execute(_CHAIN_IDS)})


def heads(bind: Bind) -> dict[int, tuple[int, int | None]]:
    """Per indexed chain: (:func:`last_block`, :func:`latest_timestamp`), in one statement (what each
    /stats request resolves first)."""
    with _connected(bind) as conn:
        return {int(c): (int(last), None if ts is None else int(ts)) for c, last, ts in conn.execute(_HEADS)}


def last_block(bind: Bind, chain_id: int) -> int:
    """The checkpoint: the last block the indexer has fully stored (−1 before the first)."""
    with _connected(bind) as conn:
        last = conn.execute(_LAST_BLOCK, {"chain_id": chain_id}).scalar()
    return int(last) if last is not None else -1


def latest_timestamp(bind: Bind, chain_id: int) -> int | None:
    """The newest indexed block's timestamp: the dashboard's "now" (data may be historical)."""
    with _connected(bind) as conn:
        value = conn.execute(_LATEST_TIMESTAMP, {"chain_id": chain_id}).scalar()
    return int(value) if value is not None else None


def markets(engine: Engine, chain_id: int) -> pl.DataFrame:
    """market, symbol, market_type of every discovered market (symbols are untrusted text)."""
    t = schema.table_of(schema.Market)
    return _frame(engine, sa.select(t.c.market, t.c.symbol, t.c.market_type).where(t.c.chain_id == chain_id)
                  .order_by(t.c.block_number, t.c.log_index), schema.Market)


def market_stats(engine: Engine, chain_id: int, f: Filters, *, hourly: bool = False) -> pl.DataFrame:
    """Rollup rows per market and bucket (day, or hour) in the period, in bucket then market order."""
    model = schema.MarketStatsHourly if hourly else schema.MarketStatsDaily
    t = schema.table_of(model)
    return _frame(engine, _bounded(t, sa.select(t).where(t.c.chain_id == chain_id), f).order_by(t.c.bucket, t.c.market),
                  model)


def protocol_stats(engine: Engine, chain_id: int, f: Filters, *, hourly: bool = False) -> pl.DataFrame:
    """Protocol-wide rollup rows (debt, insurance fund, backstop vault change, blocks) per bucket in the period."""
    model = schema.ProtocolStatsHourly if hourly else schema.ProtocolStatsDaily
    t = schema.table_of(model)
    q = _bounded(t, sa.select(t).where(t.c.chain_id == chain_id), f, with_markets=False).order_by(t.c.bucket)
    return _frame(engine, q, model)


def market_state_rows(engine: Engine, chain_id: int, end: int | None, markets: tuple[str, ...] | None) -> pl.DataFrame:
    """Daily long/short OI and mark per market before ``end`` (the latest of each is the state at ``end``)."""
    t = schema.table_of(schema.MarketStatsDaily)
    q = sa.select(t.c.market, t.c.bucket, t.c.long_open_interest, t.c.short_open_interest, t.c.mark_price).where(
        t.c.chain_id == chain_id)
    if end is not None:
        q = q.where(t.c.bucket < end)
    if markets is not None:
        q = q.where(t.c.market.in_(markets))
    return _frame(engine, q.order_by(t.c.bucket, t.c.market), schema.MarketStatsDaily)


def balance_rows(engine: Engine, chain_id: int, end: int | None) -> pl.DataFrame:
    """Daily insurance-fund balance, backstop-vault value change and share-supply change before ``end``, in day order."""
    t = schema.table_of(schema.ProtocolStatsDaily)
    q = sa.select(t.c.bucket, t.c.insurance_fund_usd, t.c.backstop_vault_change_usd, t.c.backstop_shares_change).where(
        t.c.chain_id == chain_id)
    if end is not None:
        q = q.where(t.c.bucket < end)
    return _frame(engine, q.order_by(t.c.bucket), schema.ProtocolStatsDaily)


# --------------------------------------------------------------------------- rows as plain tuples
# The report's totals (core.metrics.totals) read these: no frame and no statement built per call, so
# a 90-day period costs well under a millisecond of SQL (the /stats API computes every answer anew).

def _all(bind: Bind, q: sa.Select[Any], params: dict[str, Any]) -> Sequence[Sequence[Any]]:
    with _connected(bind) as conn:
        return conn.execute(q, params).all()


def _params(chain_id: int, f: Filters) -> dict[str, Any]:
    return {"chain_id": chain_id, "start": f.start, "end": f.end, "markets": list(f.markets or ())}


@lru_cache(maxsize=64)
def _rows_query(model: type[Any], columns: tuple[str, ...], start: bool, end: bool, markets: bool) -> sa.Select[Any]:
    """SELECT ``columns`` of ``model``'s rollup in [:start, :end) and :markets (the where.in_period
    conditions as bound parameters, so one statement per shape is built and compiled)."""
    t = schema.table_of(model)
    q = sa.select(*(t.c[c] for c in columns)).where(t.c.chain_id == sa.bindparam("chain_id"))
    if start:
        q = q.where(t.c.bucket >= sa.bindparam("start"))
    if end:
        q = q.where(t.c.bucket < sa.bindparam("end"))
    if markets:
        q = q.where(t.c.market.in_(sa.bindparam("markets", expanding=True)))
    return q.order_by(t.c.bucket)


def stat_rows(bind: Bind, chain_id: int, f: Filters, columns: Sequence[str], *, hourly: bool = False) -> Sequence[Sequence[Any]]:
    """``columns`` of the market-stats rollup (day, or hour) per market and bucket in the period, in bucket order."""
    model = schema.MarketStatsHourly if hourly else schema.MarketStatsDaily
    q = _rows_query(model, tuple(columns), f.start is not None, f.end is not None, f.markets is not None)
    return _all(bind, q, _params(chain_id, f))


def total_rows(bind: Bind, chain_id: int, f: Filters, columns: Sequence[str], *, hourly: bool = False) -> Sequence[Sequence[Any]]:
    """``columns`` (of :data:`schema.DAY_TOTAL_COLUMNS`, after ``bucket``) of the selected markets per
    bucket in the period, in bucket order, for callers that add them up per bucket: with no market
    selected and days as buckets, totals_daily's one row per day; otherwise :func:`stat_rows`' row
    per market and bucket."""
    if hourly or f.markets is not None:
        return stat_rows(bind, chain_id, f, columns, hourly=hourly)
    q = _rows_query(schema.DayTotals, tuple(columns), f.start is not None, f.end is not None, False)
    return _all(bind, q, _params(chain_id, f))


def protocol_rows(bind: Bind, chain_id: int, f: Filters, columns: Sequence[str], *, hourly: bool = False) -> Sequence[Sequence[Any]]:
    """``columns`` of the protocol-stats rollup (day, or hour) per bucket in the period (markets do not apply), in bucket order."""
    model = schema.ProtocolStatsHourly if hourly else schema.ProtocolStatsDaily
    q = _rows_query(model, tuple(columns), f.start is not None, f.end is not None, False)
    return _all(bind, q, _params(chain_id, f))


@lru_cache(maxsize=8)
def _perp_state_query(end: bool, markets: bool) -> sa.Select[Any]:
    t, m = schema.table_of(schema.MarketStatsDaily), schema.table_of(schema.Market)

    def latest(column: str) -> sa.ScalarSelect[Any]:
        q = sa.select(t.c[column]).where(t.c.chain_id == m.c.chain_id, t.c.market == m.c.market, t.c[column].is_not(None))
        q = q.where(t.c.bucket < sa.bindparam("end")) if end else q
        return q.order_by(t.c.bucket.desc()).limit(1).scalar_subquery()

    q = sa.select(m.c.market, latest("long_open_interest"), latest("mark_price")).where(
        m.c.chain_id == sa.bindparam("chain_id"), m.c.market_type == "perp")
    return q.where(m.c.market.in_(sa.bindparam("markets", expanding=True))) if markets else q


def perp_states(bind: Bind, chain_id: int, end: int | None, markets: tuple[str, ...] | None) -> list[tuple[str, float | None, float | None]]:
    """(market, latest long open interest, latest mark) of each selected perp market from its daily rows
    before ``end`` (None where it has none)."""
    rows = _all(bind, _perp_state_query(end is not None, markets is not None), _params(chain_id, Filters(end=end, markets=markets)))
    return [(str(r[0]), r[1], r[2]) for r in rows]


def trader_counts(bind: Bind, chain_id: int) -> tuple[int, int, int] | None:
    """(as_of, traders in the 24 h up to it, traders ever) as the last rollup refresh stored them."""
    with _connected(bind) as conn:
        row = conn.execute(_TRADER_COUNTS, {"chain_id": chain_id}).first()
    return (int(row[0]), int(row[1]), int(row[2])) if row else None


def active_traders(bind: Bind, chain_id: int, f: Filters) -> int:
    """Distinct makers and takers in the period (whole UTC days), counted by the database.

    A period from the first block is read off trader_totals (each trader's first day per market);
    one with a start, off the trader-days in it."""
    stored = trader_counts(bind, chain_id) if f.start is None and f.markets is None else None
    if stored is not None and (f.end is None or f.end > stored[0]) and stored[0] == latest_timestamp(bind, chain_id):
        return stored[2]  # the whole history up to the newest block: counted by the last refresh
    if f.start is None:
        t = schema.table_of(schema.TraderTotal)
        q = sa.select(sa.func.count(sa.distinct(t.c.trader))).where(t.c.chain_id == chain_id)
        q = q.where(t.c.first_day < f.end) if f.end is not None else q
        q = q.where(t.c.market.in_(f.markets)) if f.markets is not None else q
    else:
        t = schema.table_of(schema.TraderDay)
        q = _bounded(t, sa.select(sa.func.count(sa.distinct(t.c.trader))).where(t.c.chain_id == chain_id), f)
    with _connected(bind) as conn:
        return int(conn.execute(q).scalar_one())


def traders_between(engine: Engine, chain_id: int, start: int, end: int, markets: tuple[str, ...] | None) -> int:
    """Distinct makers and takers of trades with start <= block time < end (exact, from raw trades)."""
    with engine.connect() as conn:
        return rollup.traders_between(conn, chain_id, start, end, markets)


def traders_24h(engine: Engine, chain_id: int, as_of: int, markets: tuple[str, ...] | None) -> int:
    """Distinct traders in the 24 hours up to ``as_of``: the stored count when it is for ``as_of``."""
    stored = trader_counts(engine, chain_id) if markets is None else None
    if stored is not None and stored[0] == as_of:
        return stored[1]
    return traders_between(engine, chain_id, as_of - DAY + 1, as_of + 1, markets)


def _in_markets(t: sa.Table, f: Filters) -> list[sa.ColumnElement[bool]]:
    return [t.c.market.in_(f.markets)] if f.markets is not None else []


def trader_activity_frames(engine: Engine, chain_id: int, f: Filters, n: int) -> dict[str, pl.DataFrame]:
    """The Traders page's rows, from rollups: ``active`` (bucket, active), ``new`` (bucket, new: traders
    whose first day in the selected markets it is), ``top`` (trader, volume_usd, trades: the top ``n``
    by volume in the period, ranked) and ``active_days`` (trader, active_days) of those top traders.

    Daily actives of all markets come from traders_daily, of a market selection from trader_daily;
    first days, and the top list of the whole history, from trader_totals; the top list of a
    bounded period from the trader-days in it."""
    daily, totals, each = (schema.table_of(m) for m in (schema.TraderDay, schema.TraderTotal, schema.DailyActiveTraders))
    period = [daily.c.chain_id == chain_id, *_in_markets(daily, f)] + (
        [daily.c.bucket >= f.start] if f.start is not None else []) + ([daily.c.bucket < f.end] if f.end is not None else [])
    if f.markets is None:
        active_q = _bounded(each, sa.select(each.c.bucket, each.c.traders).where(each.c.chain_id == chain_id), f,
                            with_markets=False)
    else:
        active_q = sa.select(daily.c.bucket, sa.func.count(sa.distinct(daily.c.trader))).where(*period).group_by(daily.c.bucket)
    first = sa.select(totals.c.trader, sa.func.min(totals.c.first_day).label("first_day")).where(
        totals.c.chain_id == chain_id, *_in_markets(totals, f)).group_by(totals.c.trader).subquery()
    new_q = sa.select(first.c.first_day, sa.func.count()).group_by(first.c.first_day)
    with engine.connect() as conn:
        # The whole history (no start, no trader-day at or after the end): the top list from the totals.
        whole = f.start is None and (f.end is None or conn.execute(sa.select(daily.c.bucket).where(
            daily.c.chain_id == chain_id, daily.c.bucket >= f.end).limit(1)).first() is None)
        src = totals if whole else daily
        where = [totals.c.chain_id == chain_id, *_in_markets(totals, f)] if whole else period
        volume = sa.func.sum(src.c.volume_usd)
        top_q = (sa.select(src.c.trader, volume, sa.func.sum(src.c.trades)).where(*where).group_by(src.c.trader)
                 .order_by(volume.desc(), src.c.trader).limit(n))
        active = db.read_frame(conn, active_q, {"bucket": pl.Int64(), "active": pl.Int64()})
        new = db.read_frame(conn, new_q, {"bucket": pl.Int64(), "new": pl.Int64()})
        top = db.read_frame(conn, top_q, {"trader": pl.String(), "volume_usd": pl.Float64(), "trades": pl.Int64()})
        days_q = sa.select(daily.c.trader, sa.func.count(sa.distinct(daily.c.bucket))).where(
            *period, daily.c.trader.in_(top["trader"].to_list())).group_by(daily.c.trader)
        active_days = db.read_frame(conn, days_q, {"trader": pl.String(), "active_days": pl.Int64()})
    return {"active": active, "new": new, "top": top, "active_days": active_days}


def liquidation_rows(engine: Engine, chain_id: int, f: Filters, limit: int | None = None) -> pl.DataFrame:
    """Liquidations in the period, newest first, with each one's recorded waterfall and its market's symbol."""
    t = schema.table_of(schema.Liquidation)
    m = schema.table_of(schema.Market)
    cols = [t.c.block_timestamp, t.c.tx_hash, t.c.account, m.c.symbol, t.c.is_long, t.c.size, t.c.liquidation_price,
            t.c.mark_price, t.c.notional_usd, t.c.remaining_equity_usd, t.c.book_filled_size, t.c.adl_size,
            t.c.adl_covered_usd, t.c.backstop_loss_usd, t.c.insurance_cover_usd, t.c.socialized_usd, t.c.fee_collected_usd]
    q = sa.select(*cols).select_from(t.join(m, (m.c.chain_id == t.c.chain_id) & (m.c.market == t.c.market))).where(
        t.c.chain_id == chain_id)
    q = in_period(q, t, f).order_by(t.c.block_number.desc(), t.c.log_index.desc())
    if limit:
        q = q.limit(limit)
    types = {**schema.frame_schema(schema.Liquidation), "symbol": pl.String()}
    with engine.connect() as conn:
        return db.read_frame(conn, q, {c.name: types[c.name] for c in cols})


def top_liquidated_accounts(engine: Engine, chain_id: int, f: Filters, n: int = 15) -> pl.DataFrame:
    """Accounts with the largest liquidated notional in the period (aggregated by the database)."""
    t = schema.table_of(schema.Liquidation)
    deficit = sa.case((t.c.remaining_equity_usd < 0, -t.c.remaining_equity_usd), else_=0.0)
    q = sa.select(t.c.account, sa.func.count().label("liquidations"), sa.func.sum(t.c.notional_usd).label("notional_usd"),
                  sa.func.sum(deficit).label("deficit_usd"), sa.func.sum(t.c.socialized_usd).label("socialized_usd")
                  ).where(t.c.chain_id == chain_id)
    q = in_period(q, t, f).group_by(t.c.account).order_by(sa.func.sum(t.c.notional_usd).desc(), t.c.account).limit(n)
    with engine.connect() as conn:
        return db.read_frame(conn, q, {"account": pl.String(), "liquidations": pl.Int64(), "notional_usd": pl.Float64(),
                                       "deficit_usd": pl.Float64(), "socialized_usd": pl.Float64()})


def trader_pnl_counts(engine: Engine, chain_id: int, f: Filters) -> pl.DataFrame:
    """Per UTC day of the period: the accounts with a positive and a negative net PnL that day (every market)."""
    t = schema.table_of(schema.TraderPnlCounts)
    q = _bounded(t, sa.select(t.c.bucket, t.c.profitable_traders, t.c.losing_traders).where(t.c.chain_id == chain_id), f,
                 with_markets=False)
    return _frame(engine, q, schema.TraderPnlCounts)
