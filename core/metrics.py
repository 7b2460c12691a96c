"""The protocol's health series, as polars frames, with exactly EVENTS.md's definitions.

Everything here reads the rollup tables (core/rollup.py), never the raw trades, so a page's cost
grows with buckets × markets. Loading (``load_*``) is separate from the pure series functions
(``DataFrame -> DataFrame``), which pages and tests call on the loaded frames.

Definitions (EVENTS.md "Definitions of the headline figures"):
- volume: Σ price × size of every Trade (all fill types); trades: count of Trade events;
- liquidations: count of PositionLiquidated; liquidated notional: Σ size × liquidationPrice;
- bad debt: Σ DebtSocialized.amount (per market: the amount socialized by its liquidations);
- insurance fund: the balance of the latest InsuranceFund event (as of the period's end);
- backstop vault: the value implied by Deposit / Withdraw / VaultPnLUpdated (as of the period's end);
- open interest: Σ over perp markets of latest long OI × latest mark price (as of the period's end);
- active traders: distinct makers and takers of Trade events in the period. A day is a UTC day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema
from core.rollup import DAY

Granularity = Literal["hour", "day", "week"]
UTC = dt.timezone.utc


@dataclass(frozen=True)
class Filters:
    """What a view selects: [start, end) in UTC seconds (None = unbounded) and market addresses."""

    start: int | None = None
    end: int | None = None
    markets: tuple[str, ...] | None = None  # None = all markets


def _frame(engine: Engine, query: sa.Select[Any], model: type[Any]) -> pl.DataFrame:
    target = schema.frame_schema(model)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    names = [c.name for c in query.selected_columns]
    return pl.DataFrame([tuple(r) for r in rows], schema={n: target[n] for n in names}, orient="row")


def chain_ids(engine: Engine) -> list[int]:
    t = schema.table_of(schema.Checkpoint)
    with engine.connect() as conn:
        return sorted({int(c) for (c,) in conn.execute(sa.select(t.c.chain_id))})


def load_markets(engine: Engine, chain_id: int) -> pl.DataFrame:
    """market, symbol, market_type of every discovered market (symbols are untrusted text)."""
    t = schema.table_of(schema.Market)
    return _frame(engine, sa.select(t.c.market, t.c.symbol, t.c.market_type).where(t.c.chain_id == chain_id)
                  .order_by(t.c.block_number, t.c.log_index), schema.Market)


def _bounded(t: sa.Table, q: sa.Select[Any], f: Filters, *, with_markets: bool = True) -> sa.Select[Any]:
    if f.start is not None:
        q = q.where(t.c.bucket >= f.start)
    if f.end is not None:
        q = q.where(t.c.bucket < f.end)
    if with_markets and f.markets is not None:
        q = q.where(t.c.market.in_(f.markets))
    return q


def load_market_stats(engine: Engine, chain_id: int, f: Filters, granularity: Granularity = "day") -> pl.DataFrame:
    """Rollup rows per market and bucket in the period (week = 7 daily buckets summed)."""
    model = schema.MarketStatsHourly if granularity == "hour" else schema.MarketStatsDaily
    t = schema.table_of(model)
    df = _frame(engine, _bounded(t, sa.select(t).where(t.c.chain_id == chain_id), f), model)
    return to_weeks(df) if granularity == "week" else df


def load_protocol_stats(engine: Engine, chain_id: int, f: Filters, granularity: Granularity = "day") -> pl.DataFrame:
    model = schema.ProtocolStatsHourly if granularity == "hour" else schema.ProtocolStatsDaily
    t = schema.table_of(model)
    df = _frame(engine, _bounded(t, sa.select(t).where(t.c.chain_id == chain_id), f, with_markets=False), model)
    if granularity == "week":
        df = df.with_columns(week_start(pl.col("bucket"))).group_by("chain_id", "bucket").agg(
            pl.col("socialized_debt_usd").sum(), pl.col("insurance_fund_usd").drop_nulls().last(),
            pl.col("backstop_vault_change_usd").sum(), pl.col("blocks").sum()).sort("bucket")
    return df


def load_trader_days(engine: Engine, chain_id: int, f: Filters) -> pl.DataFrame:
    t = schema.table_of(schema.TraderDaily)
    return _frame(engine, _bounded(t, sa.select(t).where(t.c.chain_id == chain_id), f), schema.TraderDaily)


def week_start(bucket: pl.Expr) -> pl.Expr:
    """Monday 00:00 UTC of the bucket's week (1970-01-01 was a Thursday)."""
    return ((bucket + 3 * DAY) // (7 * DAY) * (7 * DAY) - 3 * DAY).alias("bucket")


def to_weeks(daily: pl.DataFrame) -> pl.DataFrame:
    """Daily market stats summed into ISO weeks (last values stay last; traders = max daily, a lower bound)."""
    return daily.sort("bucket").with_columns(week_start(pl.col("bucket"))).group_by("chain_id", "market", "bucket").agg(
        *(pl.col(c).sum() for c in ("volume_usd", "base_volume", "trades", "taker_buy_volume_usd", "fees_usd",
                                    "liquidations", "liquidations_long", "liquidated_notional_usd",
                                    "liquidated_notional_long_usd", "adl_covered_usd", "backstop_loss_usd",
                                    "insurance_cover_usd", "socialized_usd")),
        pl.col("open_price").drop_nulls().first(), pl.col("high_price").max(), pl.col("low_price").min(),
        pl.col("close_price").drop_nulls().last(),
        *(pl.col(c).drop_nulls().last() for c in ("long_open_interest", "short_open_interest", "mark_price", "funding_rate")),
        pl.col("traders").max(),
    ).select(daily.columns).sort("bucket", "market")


def _latest_before(engine: Engine, chain_id: int, end: int | None, markets: tuple[str, ...] | None) -> pl.DataFrame:
    """Per market, the latest long/short OI and mark price at or before the period's end."""
    t = schema.table_of(schema.MarketStatsDaily)
    q = sa.select(t.c.market, t.c.bucket, t.c.long_open_interest, t.c.short_open_interest, t.c.mark_price).where(
        t.c.chain_id == chain_id)
    if end is not None:
        q = q.where(t.c.bucket < end)
    if markets is not None:
        q = q.where(t.c.market.in_(markets))
    df = _frame(engine, q, schema.MarketStatsDaily)
    return df.sort("bucket").group_by("market").agg(
        pl.col("long_open_interest").drop_nulls().last(), pl.col("short_open_interest").drop_nulls().last(),
        pl.col("mark_price").drop_nulls().last())


def open_interest_usd(latest: pl.DataFrame, markets: pl.DataFrame) -> float:
    """Σ over perp markets of latest long OI × latest mark (EVENTS.md)."""
    perps = latest.join(markets.filter(pl.col("market_type") == "perp").select("market"), on="market")
    return float(perps.select((pl.col("long_open_interest") * pl.col("mark_price")).fill_null(0).sum()).item())


def balances_before(engine: Engine, chain_id: int, end: int | None) -> tuple[float, float]:
    """(insurance fund, backstop vault) in USD as of ``end`` (exclusive), from the daily rollups."""
    t = schema.table_of(schema.ProtocolStatsDaily)
    q = sa.select(t.c.bucket, t.c.insurance_fund_usd, t.c.backstop_vault_change_usd).where(t.c.chain_id == chain_id)
    if end is not None:
        q = q.where(t.c.bucket < end)
    df = _frame(engine, q, schema.ProtocolStatsDaily).sort("bucket")
    fund = df["insurance_fund_usd"].drop_nulls()
    return (float(fund[-1]) if fund.len() else 0.0, float(df["backstop_vault_change_usd"].sum()))


def active_traders(trader_days: pl.DataFrame) -> int:
    return int(trader_days["trader"].n_unique()) if trader_days.height else 0


def daily_totals(stats_daily: pl.DataFrame, protocol_daily: pl.DataFrame, *, by_market_debt: bool) -> pl.DataFrame:
    """One row per UTC day with any indexed activity: volume, trades, liquidations, notional, debt."""
    per_day = stats_daily.group_by("bucket").agg(
        pl.col("volume_usd").sum(), pl.col("trades").sum(), pl.col("liquidations").sum(),
        pl.col("liquidated_notional_usd").sum(), pl.col("socialized_usd").sum())
    days = protocol_daily.filter(pl.col("blocks") > 0).select("bucket", "socialized_debt_usd")
    out = days.join(per_day, on="bucket", how="full", coalesce=True).with_columns(
        pl.col("volume_usd", "liquidated_notional_usd", "socialized_usd", "socialized_debt_usd").fill_null(0.0),
        pl.col("trades", "liquidations").fill_null(0))
    if by_market_debt:
        out = out.with_columns(pl.col("socialized_usd").alias("socialized_debt_usd"))
        out = out.filter((pl.col("trades") > 0) | (pl.col("liquidations") > 0) | (pl.col("socialized_debt_usd") > 0))
    return out.drop("socialized_usd").sort("bucket").with_columns(
        pl.from_epoch("bucket", time_unit="s").dt.replace_time_zone("UTC").dt.date().alias("date"))


def report(engine: Engine, chain_id: int, f: Filters) -> dict[str, Any]:
    """The headline figures and daily series of a period (the JSON of ``python -m core.report``)."""
    markets = load_markets(engine, chain_id)
    stats = load_market_stats(engine, chain_id, f, "day")
    protocol = load_protocol_stats(engine, chain_id, f, "day")
    by_market = f.markets is not None
    daily = daily_totals(stats, protocol, by_market_debt=by_market)
    fund, vault = balances_before(engine, chain_id, f.end)
    latest = _latest_before(engine, chain_id, f.end, f.markets)
    return {
        "total_volume_usd": float(stats["volume_usd"].sum()),
        "total_trades": int(stats["trades"].sum()),
        "liquidations": int(stats["liquidations"].sum()),
        "liquidated_notional_usd": float(stats["liquidated_notional_usd"].sum()),
        "socialized_debt_usd": float((stats["socialized_usd"] if by_market else protocol["socialized_debt_usd"]).sum()),
        "insurance_fund_usd": fund,
        "backstop_vault_usd": vault,
        "open_interest_usd": open_interest_usd(latest, markets),
        "active_traders": active_traders(load_trader_days(engine, chain_id, f)),
        "daily": [
            {"date": r["date"].isoformat(), "volume_usd": r["volume_usd"], "trades": r["trades"],
             "liquidations": r["liquidations"], "liquidated_notional_usd": r["liquidated_notional_usd"],
             "socialized_debt_usd": r["socialized_debt_usd"]}
            for r in daily.iter_rows(named=True)
        ],
    }


def day_start(date: dt.date) -> int:
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=UTC).timestamp())


