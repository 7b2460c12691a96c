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
from sqlalchemy.engine import Connection, Engine

from core import db, rollup, schema
from core.utc import DAY, HOUR

Granularity = Literal["hour", "day", "week"]
UTC = dt.timezone.utc


@dataclass(frozen=True)
class Filters:
    """What a view selects: [start, end) in UTC seconds (None = unbounded) and market addresses."""

    start: int | None = None
    end: int | None = None
    markets: tuple[str, ...] | None = None  # None = all markets


def _frame(engine: Engine, query: sa.Select[Any], model: type[Any]) -> pl.DataFrame:
    """Rows of ``query`` typed by ``model``'s frame schema (the columns it selects)."""
    target = schema.frame_schema(model)
    with engine.connect() as conn:
        return db.read_frame(conn, query, {c.name: target[c.name] for c in query.selected_columns})


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
    q = _bounded(t, sa.select(t).where(t.c.chain_id == chain_id), f).order_by(t.c.bucket, t.c.market)
    df = _frame(engine, q, model)
    return to_weeks(df) if granularity == "week" else df


def load_protocol_stats(engine: Engine, chain_id: int, f: Filters, granularity: Granularity = "day") -> pl.DataFrame:
    model = schema.ProtocolStatsHourly if granularity == "hour" else schema.ProtocolStatsDaily
    t = schema.table_of(model)
    q = _bounded(t, sa.select(t).where(t.c.chain_id == chain_id), f, with_markets=False).order_by(t.c.bucket)
    df = _frame(engine, q, model)
    if granularity == "week":
        df = df.with_columns(week_start(pl.col("bucket"))).group_by("chain_id", "bucket").agg(
            pl.col("socialized_debt_usd").sum(), pl.col("insurance_fund_usd").drop_nulls().last(),
            pl.col("backstop_vault_change_usd").sum(), pl.col("blocks").sum()).sort("bucket")
    return df


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
    df = _frame(engine, q.order_by(t.c.bucket, t.c.market), schema.MarketStatsDaily)
    return df.group_by("market").agg(
        pl.col("long_open_interest").drop_nulls().last(), pl.col("short_open_interest").drop_nulls().last(),
        pl.col("mark_price").drop_nulls().last())


def open_interest_usd(latest: pl.DataFrame, markets: pl.DataFrame) -> float:
    """Σ over perp markets of latest long OI × latest mark (EVENTS.md)."""
    # summed in market order: the same float on every run and backend
    perps = latest.join(markets.filter(pl.col("market_type") == "perp").select("market"), on="market").sort("market")
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


def active_traders(engine: Engine, chain_id: int, f: Filters) -> int:
    """Distinct makers and takers in the period (whole UTC days), counted by the database.

    A period from the first block is read off trader_totals (each trader's first day per market);
    one with a start, off the trader-days in it."""
    stored = trader_counts(engine, chain_id) if f.start is None and f.markets is None else None
    if stored is not None and (f.end is None or f.end > stored[0]) and stored[0] == latest_timestamp(engine, chain_id):
        return stored[2]  # the whole history up to the newest block: counted by the last refresh
    if f.start is None:
        t = schema.table_of(schema.TraderTotal)
        q = sa.select(sa.func.count(sa.distinct(t.c.trader))).where(t.c.chain_id == chain_id)
        q = q.where(t.c.first_day < f.end) if f.end is not None else q
        q = q.where(t.c.market.in_(f.markets)) if f.markets is not None else q
    else:
        t = schema.table_of(schema.TraderDay)
        q = _bounded(t, sa.select(sa.func.count(sa.distinct(t.c.trader))).where(t.c.chain_id == chain_id), f)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


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
        "active_traders": active_traders(engine, chain_id, f),
        "daily": [
            {"date": r["date"].isoformat(), "volume_usd": r["volume_usd"], "trades": r["trades"],
             "liquidations": r["liquidations"], "liquidated_notional_usd": r["liquidated_notional_usd"],
             "socialized_debt_usd": r["socialized_debt_usd"]}
            for r in daily.iter_rows(named=True)
        ],
    }


def day_start(date: dt.date) -> int:
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=UTC).timestamp())


def days_window(first: dt.date, last: dt.date) -> tuple[int, int]:
    """[start, end) seconds covering the UTC days first..last inclusive."""
    return day_start(first), day_start(last) + DAY


def trailing_window(as_of: int, days: int | None) -> tuple[int | None, int]:
    """[start, end) seconds of the ``days`` up to and including ``as_of`` (None: since the first block)."""
    return (None if days is None else as_of - days * DAY + 1), as_of + 1




# ---------------------------------------------------------------------------------------------
# Series for the pages (pure: frames in, frames out)

def with_symbols(stats: pl.DataFrame, markets: pl.DataFrame) -> pl.DataFrame:
    """Attach each market's symbol and type (symbols are untrusted text, kept verbatim)."""
    return stats.join(markets, on="market", how="left").with_columns(pl.col("symbol").fill_null(pl.col("market")))


def volume_series(stats: pl.DataFrame) -> pl.DataFrame:
    return stats.select("bucket", "symbol", "volume_usd", "trades").sort("bucket", "symbol")


def liquidation_series(stats: pl.DataFrame) -> pl.DataFrame:
    """Per bucket, market and side: liquidation count and notional."""
    long = stats.select("bucket", "symbol", pl.lit("long").alias("side"), pl.col("liquidations_long").alias("count"),
                        pl.col("liquidated_notional_long_usd").alias("notional_usd"))
    short = stats.select("bucket", "symbol", pl.lit("short").alias("side"),
                         (pl.col("liquidations") - pl.col("liquidations_long")).alias("count"),
                         (pl.col("liquidated_notional_usd") - pl.col("liquidated_notional_long_usd")).alias("notional_usd"))
    return pl.concat([long, short]).filter(pl.col("count") > 0).with_columns(
        pl.concat_str("symbol", pl.lit(" · "), "side").alias("series")).sort("bucket", "series")


def cumulative_bad_debt(protocol_all: pl.DataFrame, f: Filters) -> pl.DataFrame:
    """Running Σ DebtSocialized since the first block, shown over the period."""
    out = protocol_all.sort("bucket").select("bucket", pl.col("socialized_debt_usd").cum_sum().alias("cumulative_usd"))
    return _in_period(out, f)


def balance_series(protocol_all: pl.DataFrame, f: Filters) -> pl.DataFrame:
    """Insurance fund (latest balance, carried forward) and backstop vault (running value) per bucket."""
    df = protocol_all.sort("bucket").select(
        "bucket", pl.col("insurance_fund_usd").forward_fill().fill_null(0.0).alias("Insurance fund"),
        pl.col("backstop_vault_change_usd").cum_sum().alias("Backstop vault"))
    return _in_period(df, f).unpivot(index="bucket", variable_name="series", value_name="usd")


def open_interest_series(stats_all: pl.DataFrame, f: Filters) -> pl.DataFrame:
    """Per perp market and bucket: latest long OI × latest mark, carried forward between updates."""
    perps = stats_all.filter(pl.col("market_type") == "perp").sort("bucket")
    df = perps.with_columns(
        pl.col("long_open_interest").forward_fill().over("market"), pl.col("mark_price").forward_fill().over("market"),
    ).select("bucket", "symbol", (pl.col("long_open_interest") * pl.col("mark_price")).fill_null(0.0).alias("oi_usd"))
    return _in_period(df, f)


def waterfall_series(stats: pl.DataFrame) -> pl.DataFrame:
    """Cumulative loss absorbed per tier (ADL → backstop → insurance → socialized) over the period."""
    tiers = {"adl": "adl_covered_usd", "backstop": "backstop_loss_usd", "insurance": "insurance_cover_usd",
             "socialized": "socialized_usd"}
    per = stats.group_by("bucket").agg(*(pl.col(c).sum().alias(t) for t, c in tiers.items())).sort("bucket")
    cum = per.with_columns(*(pl.col(t).cum_sum() for t in tiers))
    return cum.unpivot(index="bucket", variable_name="tier", value_name="cumulative_usd").with_columns(
        pl.col("tier").replace_strict({t: i for i, t in enumerate(tiers)}, return_dtype=pl.Int64).alias("tier_order"))


def _in_period(df: pl.DataFrame, f: Filters) -> pl.DataFrame:
    if f.start is not None:
        df = df.filter(pl.col("bucket") >= f.start)
    if f.end is not None:
        df = df.filter(pl.col("bucket") < f.end)
    return df


def latest_timestamp(engine: Engine, chain_id: int) -> int | None:
    """The newest indexed block's timestamp: the dashboard's "now" (data may be historical)."""
    t = schema.table_of(schema.Block)
    with engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.max(t.c.timestamp)).where(t.c.chain_id == chain_id)).scalar()
    return int(value) if value is not None else None


@dataclass(frozen=True)
class Card:
    label: str
    value: float
    help: str
    delta: float | None = None
    money: bool = True


def overview_cards(engine: Engine, chain_id: int, f: Filters, as_of: int) -> list[Card]:
    """The Overview's stat cards for the period, each with its EVENTS.md definition as help."""
    rep = report(engine, chain_id, f)
    day_now = Filters(start=as_of - DAY + 1, end=as_of + 1, markets=f.markets)
    day_before = Filters(start=as_of - 2 * DAY + 1, end=as_of - DAY + 1, markets=f.markets)
    hourly_now = load_market_stats(engine, chain_id, _hour_aligned(day_now), "hour")
    hourly_before = load_market_stats(engine, chain_id, _hour_aligned(day_before), "hour")
    vol_24h = float(hourly_now["volume_usd"].sum())
    vol_prev = float(hourly_before["volume_usd"].sum())
    stored = trader_counts(engine, chain_id) if f.markets is None else None
    traders_24h = stored[1] if stored is not None and stored[0] == as_of else \
        active_traders_between(engine, chain_id, as_of - DAY + 1, as_of + 1, f.markets)
    outstanding = float(load_protocol_stats(engine, chain_id, Filters(end=f.end), "day")["socialized_debt_usd"].sum())
    return [
        Card("Total volume", rep["total_volume_usd"], "Σ price × size of every Trade in the period (all fill types)."),
        Card("24h volume", vol_24h, "Σ price × size of Trades in the 24 hours up to the latest block; Δ vs the 24 hours before.",
             delta=vol_24h - vol_prev),
        Card("Trades", rep["total_trades"], "Count of Trade events in the period.", money=False),
        Card("Open interest", rep["open_interest_usd"],
             "Σ over perp markets of the latest long open interest × the latest mark price (one side)."),
        Card("Liquidations", rep["liquidations"], "Count of PositionLiquidated events in the period.", money=False),
        Card("Liquidated notional", rep["liquidated_notional_usd"], "Σ size × liquidation price of the period's liquidations."),
        Card("Bad debt outstanding", outstanding,
             "Σ DebtSocialized.amount since the first block (= BackstopVault.totalSocializedDebt())."),
        Card("Insurance fund", rep["insurance_fund_usd"], "Balance of the latest InsuranceFund event."),
        Card("Backstop vault", rep["backstop_vault_usd"], "Vault value implied by Deposit − Withdraw + VaultPnLUpdated."),
        Card("Active traders (24h)", traders_24h,
             "Distinct makers and takers of Trades in the 24 hours up to the latest block.", money=False),
    ]


def active_traders_between(engine: Engine, chain_id: int, start: int, end: int, markets: tuple[str, ...] | None) -> int:
    """Distinct makers and takers of trades with start <= block time < end (exact, from raw trades)."""
    with engine.connect() as conn:
        return rollup.traders_between(conn, chain_id, start, end, markets)


def trader_counts(engine: Engine, chain_id: int) -> tuple[int, int, int] | None:
    """(as_of, traders in the 24 h up to it, traders ever) as the last rollup refresh stored them."""
    t = schema.table_of(schema.TraderCounts)
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.c.as_of, t.c.traders_24h, t.c.traders_total).where(t.c.chain_id == chain_id)).first()
    return (int(row[0]), int(row[1]), int(row[2])) if row else None


def _hour_aligned(f: Filters) -> Filters:
    return Filters(start=None if f.start is None else f.start // HOUR * HOUR,
                   end=None if f.end is None else -(-f.end // HOUR) * HOUR, markets=f.markets)


def index_freshness(engine: Engine, chain_id: int) -> dict[str, int]:
    """The checkpoint: the last block the indexer has fully stored."""
    t = schema.table_of(schema.Checkpoint)
    with engine.connect() as conn:
        last = conn.execute(sa.select(sa.func.max(t.c.last_block)).where(t.c.chain_id == chain_id)).scalar()
    return {"last_block": int(last) if last is not None else -1}


def overview_series(engine: Engine, chain_id: int, f: Filters, granularity: Granularity) -> dict[str, pl.DataFrame]:
    """Every chart frame of the Overview page for the period."""
    markets = load_markets(engine, chain_id)
    stats = with_symbols(load_market_stats(engine, chain_id, f, granularity), markets)
    history = with_symbols(load_market_stats(engine, chain_id, Filters(end=f.end, markets=f.markets), granularity), markets)
    protocol_all = load_protocol_stats(engine, chain_id, Filters(end=f.end), granularity)
    return {
        "volume": volume_series(stats),
        "liquidations": liquidation_series(stats),
        "open_interest": open_interest_series(history, f),
        "bad_debt": cumulative_bad_debt(protocol_all, f),
        "balances": balance_series(protocol_all, f),
        "waterfall": waterfall_series(stats),
    }


def market_table(engine: Engine, chain_id: int, f: Filters) -> pl.DataFrame:
    """Per market over the period: volume, share, trades, OI, funding, liquidations, last price."""
    markets = load_markets(engine, chain_id)
    stats = with_symbols(load_market_stats(engine, chain_id, f, "day"), markets)
    latest = _latest_before(engine, chain_id, f.end, f.markets)
    hist = load_market_stats(engine, chain_id, Filters(end=f.end, markets=f.markets), "day").sort("bucket")
    last = hist.group_by("market").agg(pl.col("close_price").drop_nulls().last().alias("last_price"),
                                       pl.col("funding_rate").drop_nulls().last().alias("funding_rate_per_hour"))
    per = stats.group_by("market", "symbol", "market_type").agg(
        pl.col("volume_usd").sum(), pl.col("trades").sum(), pl.col("liquidations").sum(),
        pl.col("liquidated_notional_usd").sum(), pl.col("fees_usd").sum())
    total = float(per["volume_usd"].sum()) or 1.0
    return per.join(latest, on="market", how="left").join(last, on="market", how="left").with_columns(
        (pl.col("volume_usd") / total).alias("share"),
        pl.when(pl.col("market_type") == "perp").then(pl.col("long_open_interest") * pl.col("mark_price"))
        .otherwise(None).alias("open_interest_usd"),
    ).select("symbol", "market_type", "volume_usd", "share", "trades", "open_interest_usd", "funding_rate_per_hour",
             "liquidations", "liquidated_notional_usd", "fees_usd", "last_price", "market").sort("volume_usd", descending=True)


def market_series(engine: Engine, chain_id: int, market: str, f: Filters, granularity: Granularity) -> pl.DataFrame:
    """One market's buckets: volume, OHLC, funding (for its charts)."""
    return load_market_stats(engine, chain_id, Filters(f.start, f.end, (market,)), granularity).sort("bucket")


def liquidation_rows(engine: Engine, chain_id: int, f: Filters, limit: int | None = None) -> pl.DataFrame:
    """Liquidations in the period, newest first, with each one's waterfall (book → ADL → backstop → insurance → socialized)."""
    t = schema.table_of(schema.Liquidation)
    m = schema.table_of(schema.Market)
    cols = [t.c.block_timestamp, t.c.tx_hash, t.c.account, m.c.symbol, t.c.is_long, t.c.size, t.c.liquidation_price,
            t.c.mark_price, t.c.notional_usd, t.c.remaining_equity_usd, t.c.book_filled_size, t.c.adl_size,
            t.c.adl_covered_usd, t.c.backstop_loss_usd, t.c.insurance_cover_usd, t.c.socialized_usd, t.c.fee_collected_usd]
    q = sa.select(*cols).select_from(t.join(m, (m.c.chain_id == t.c.chain_id) & (m.c.market == t.c.market))).where(
        t.c.chain_id == chain_id)
    if f.start is not None:
        q = q.where(t.c.block_timestamp >= f.start)
    if f.end is not None:
        q = q.where(t.c.block_timestamp < f.end)
    if f.markets is not None:
        q = q.where(t.c.market.in_(f.markets))
    q = q.order_by(t.c.block_number.desc(), t.c.log_index.desc())
    if limit:
        q = q.limit(limit)
    types = {**schema.frame_schema(schema.Liquidation), "symbol": pl.String()}
    with engine.connect() as conn:
        df = db.read_frame(conn, q, {c.name: types[c.name] for c in cols})
    return df.with_columns(
        pl.from_epoch("block_timestamp", time_unit="s").dt.replace_time_zone("UTC").alias("time"),
        pl.when(pl.col("is_long")).then(pl.lit("long")).otherwise(pl.lit("short")).alias("side"),
        (-pl.col("remaining_equity_usd")).clip(lower_bound=0).alias("deficit_usd"),
    ).drop("block_timestamp", "is_long").select("time", pl.exclude("time"))


def top_liquidated_accounts(engine: Engine, chain_id: int, f: Filters, n: int = 15) -> pl.DataFrame:
    """Accounts with the largest liquidated notional in the period (aggregated by the database)."""
    t = schema.table_of(schema.Liquidation)
    deficit = sa.case((t.c.remaining_equity_usd < 0, -t.c.remaining_equity_usd), else_=0.0)
    q = sa.select(t.c.account, sa.func.count().label("liquidations"), sa.func.sum(t.c.notional_usd).label("notional_usd"),
                  sa.func.sum(deficit).label("deficit_usd"), sa.func.sum(t.c.socialized_usd).label("socialized_usd")
                  ).where(t.c.chain_id == chain_id)
    if f.start is not None:
        q = q.where(t.c.block_timestamp >= f.start)
    if f.end is not None:
        q = q.where(t.c.block_timestamp < f.end)
    if f.markets is not None:
        q = q.where(t.c.market.in_(f.markets))
    q = q.group_by(t.c.account).order_by(sa.func.sum(t.c.notional_usd).desc(), t.c.account).limit(n)
    with engine.connect() as conn:
        return db.read_frame(conn, q, {"account": pl.String(), "liquidations": pl.Int64(), "notional_usd": pl.Float64(),
                                       "deficit_usd": pl.Float64(), "socialized_usd": pl.Float64()})


def coverage_series(series: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """(insurance fund + backstop vault) / open interest per bucket, from overview_series' frames."""
    oi = series["open_interest"].group_by("bucket").agg(pl.col("oi_usd").sum())
    buffers = series["balances"].group_by("bucket").agg(pl.col("usd").sum().alias("buffers_usd"))
    return buffers.join(oi, on="bucket", how="inner").filter(pl.col("oi_usd") > 0).with_columns(
        (pl.col("buffers_usd") / pl.col("oi_usd")).alias("coverage"), pl.lit("coverage").alias("series")).sort("bucket")


def trader_activity(engine: Engine, chain_id: int, f: Filters, n: int = 25) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per day: active, new and returning traders; the top ``n`` traders by volume in the period), from rollups.

    A trader is new on the first UTC day they traded (in the selected markets) since the first block.
    Daily actives of all markets come from traders_daily, of a market selection from trader_daily;
    first days, and the top list of the whole history, from trader_totals; the top list of a
    bounded period from the trader-days in it. Active days are counted for the top traders only."""
    daily, totals, each = (schema.table_of(m) for m in (schema.TraderDay, schema.TraderTotal, schema.DailyActiveTraders))
    in_markets = (lambda t: [t.c.market.in_(f.markets)]) if f.markets is not None else (lambda t: [])
    period = [daily.c.chain_id == chain_id, *in_markets(daily)] + (
        [daily.c.bucket >= f.start] if f.start is not None else []) + ([daily.c.bucket < f.end] if f.end is not None else [])
    if f.markets is None:
        active_q = _bounded(each, sa.select(each.c.bucket, each.c.traders).where(each.c.chain_id == chain_id), f,
                            with_markets=False)
    else:
        active_q = sa.select(daily.c.bucket, sa.func.count(sa.distinct(daily.c.trader))).where(*period).group_by(daily.c.bucket)
    first = sa.select(totals.c.trader, sa.func.min(totals.c.first_day).label("first_day")).where(
        totals.c.chain_id == chain_id, *in_markets(totals)).group_by(totals.c.trader).subquery()
    new_q = sa.select(first.c.first_day, sa.func.count()).group_by(first.c.first_day)
    with engine.connect() as conn:
        # The whole history (no start, no trader-day at or after the end): the top list from the totals.
        whole = f.start is None and (f.end is None or conn.execute(sa.select(daily.c.bucket).where(
            daily.c.chain_id == chain_id, daily.c.bucket >= f.end).limit(1)).first() is None)
        src = totals if whole else daily
        where = [totals.c.chain_id == chain_id, *in_markets(totals)] if whole else period
        volume = sa.func.sum(src.c.volume_usd)
        top_q = (sa.select(src.c.trader, volume, sa.func.sum(src.c.trades)).where(*where).group_by(src.c.trader)
                 .order_by(volume.desc(), src.c.trader).limit(n))
        active = db.read_frame(conn, active_q, {"bucket": pl.Int64(), "active": pl.Int64()})
        new = db.read_frame(conn, new_q, {"bucket": pl.Int64(), "new": pl.Int64()})
        top = db.read_frame(conn, top_q, {"trader": pl.String(), "volume_usd": pl.Float64(), "trades": pl.Int64()})
        days_q = sa.select(daily.c.trader, sa.func.count(sa.distinct(daily.c.bucket))).where(
            *period, daily.c.trader.in_(top["trader"].to_list())).group_by(daily.c.trader)
        active_days = db.read_frame(conn, days_q, {"trader": pl.String(), "active_days": pl.Int64()})
    top = top.with_row_index("rank").join(active_days, on="trader", how="left").sort("rank").drop("rank")
    days = active.join(new, on="bucket", how="left").with_columns(pl.col("new").fill_null(0)).with_columns(
        (pl.col("active") - pl.col("new")).alias("returning")).sort("bucket")
    return days, top


def format_day(bucket: int) -> str:
    return dt.datetime.fromtimestamp(bucket, UTC).strftime("%Y-%m-%d")


def index_status(engine: Engine) -> list[dict[str, object]]:
    """Per indexed deployment: its checkpoint and rows stored per event (core.indexer.load)."""
    from core.indexer.load import index_status as status

    return status(engine)


@dataclass(frozen=True)
class Check:
    name: str
    expected: float
    actual: float
    ok: bool
    detail: str


def reconciliation(engine: Engine, chain_id: int) -> list[Check]:
    """Independent recomputations that must agree with what the pages show (exact where the chain is).

    All read one snapshot: rows and rollups commit together, so a check never compares two states."""
    with db.snapshot(engine) as conn:
        return _reconciliation(conn, chain_id)


def _reconciliation(conn: Connection, chain_id: int) -> list[Check]:
    def one(sql: str) -> float:
        return float(conn.execute(sa.text(sql), {"c": chain_id}).scalar() or 0)

    checks: list[Check] = []
    headline = one("SELECT SUM(volume_usd) FROM stats_daily WHERE chain_id = :c")
    raw = one("SELECT SUM(notional_usd) FROM trades WHERE chain_id = :c")
    checks.append(Check("Per-market volume sums to the headline", raw, headline,
                        abs(raw - headline) <= 1e-6 * max(1.0, abs(raw)), "Σ daily per-market rollups vs Σ price × size of all trades"))
    debt_rollup = one("SELECT SUM(socialized_debt_usd) FROM protocol_daily WHERE chain_id = :c")
    debt_raw = one("SELECT SUM(amount_raw) FROM socialized_debt WHERE chain_id = :c") / 1e6
    debt_liq = one("SELECT SUM(socialized_usd) FROM liquidations WHERE chain_id = :c")
    checks.append(Check("Σ DebtSocialized = bad debt shown", debt_raw, debt_rollup,
                        abs(debt_raw - debt_rollup) <= 1e-6 * max(1.0, debt_raw), "exact event sum vs rollups"))
    checks.append(Check("Bad debt is attributed to liquidations", debt_raw, debt_liq, abs(debt_raw - debt_liq) <= 1e-6 * max(1.0, debt_raw),
                        "Σ DebtSocialized vs Σ socialized legs joined to PositionLiquidated"))
    flows = one("SELECT SUM(CASE WHEN event IN ('InsuranceFundDeposit', 'LiquidationFeeCollected') THEN amount_raw "
                "ELSE -amount_raw END) FROM insurance_fund_events WHERE chain_id = :c")
    latest = one("SELECT balance_raw FROM insurance_fund_events WHERE chain_id = :c ORDER BY block_number DESC, log_index DESC LIMIT 1")
    checks.append(Check("Insurance fund balance = its events", flows / 1e6, latest / 1e6, flows == latest,
                        "latest emitted balance vs deposits + fees − withdrawals − shortfall cover (micro-USD, exact)"))
    vault_sum = one("SELECT SUM(value_change_raw) FROM backstop_vault_events WHERE chain_id = :c AND block_number <= "
                    "(SELECT MAX(block_number) FROM backstop_vault_events WHERE chain_id = :c AND event = 'VaultPnLUpdated')")
    vault_last = one("SELECT total_vault_value_raw FROM backstop_vault_events WHERE chain_id = :c AND event = 'VaultPnLUpdated' "
                     "ORDER BY block_number DESC, log_index DESC LIMIT 1")
    if vault_last:
        checks.append(Check("Backstop vault value = its events", vault_sum / 1e6, vault_last / 1e6, vault_sum == vault_last,
                            "latest totalVaultValue vs deposits − withdrawals + PnL up to it (micro-USD, exact)"))
    tiers = one("SELECT SUM(adl_covered_usd + backstop_loss_usd + insurance_cover_usd + socialized_usd) FROM liquidations WHERE chain_id = :c")
    deficit = one("SELECT SUM(CASE WHEN remaining_equity_usd < 0 THEN -remaining_equity_usd ELSE 0 END) "
                  "FROM liquidations WHERE chain_id = :c")  # max(0, −equity), in SQL both backends share
    checks.append(Check("Waterfall tiers cover every deficit", deficit, tiers, abs(tiers - deficit) <= 1e-6 * max(1.0, deficit),
                        "Σ ADL + backstop + insurance + socialized vs Σ max(0, −remaining equity)"))
    return checks


def format_usd(x: float) -> str:
    """Card-sized dollars: $1.49B, $12.34M, $15,556, $8.83 (sign first: -$52,063)."""
    sign, a = ("-" if x < 0 else ""), abs(x)
    if a >= 1e9:
        return f"{sign}${a / 1e9:,.2f}B"
    if a >= 1e6:
        return f"{sign}${a / 1e6:,.2f}M"
    return f"{sign}${a:,.0f}" if a >= 100 else f"{sign}${a:,.2f}"
