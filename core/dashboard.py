"""What each page and each ``/stats`` endpoint shows: the read layer's frames (core/read) run through
the pure series (core/metrics). The one place both front ends get their figures, so a number on a
page and in the API is the same computation."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from core import metrics
from core.metrics import accounts, funds, revenue, risk, totals
from core.metrics import funding as funding_metrics
from core.period import Filters, Granularity
from core.read import accounts as read_accounts
from core.read import funding as read_funding
from core.read import funds as read_funds
from core.read import history as read_history
from core.read import stats as read
from core.utc import DAY, format_day


def market_stats(engine: Engine, chain_id: int, f: Filters, granularity: Granularity = "day") -> pl.DataFrame:
    """Market-stats rows per market and bucket in the period (week = 7 daily buckets summed)."""
    df = read.market_stats(engine, chain_id, f, hourly=granularity == "hour")
    return metrics.to_weeks(df) if granularity == "week" else df


def protocol_stats(engine: Engine, chain_id: int, f: Filters, granularity: Granularity = "day") -> pl.DataFrame:
    """Protocol-stats rows per bucket in the period (week = 7 daily buckets)."""
    df = read.protocol_stats(engine, chain_id, f, hourly=granularity == "hour")
    return metrics.protocol_to_weeks(df) if granularity == "week" else df


def balances_before(engine: Engine, chain_id: int, end: int | None) -> tuple[float, float]:
    """(insurance fund, backstop vault) in USD as of ``end`` (exclusive)."""
    return totals.balances(read.protocol_rows(engine, chain_id, Filters(end=end), totals.PROTOCOL_COLUMNS))


def latest_state(engine: Engine, chain_id: int, end: int | None, markets: tuple[str, ...] | None) -> pl.DataFrame:
    """Per market, the latest long/short OI and mark at or before ``end``."""
    return metrics.latest_state(read.market_state_rows(engine, chain_id, end, markets))


def _headline(engine: Engine, chain_id: int, f: Filters) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The report's figures of a period except active traders, and its daily totals (core.metrics.totals:
    three reads of the daily rollups on one connection)."""
    with engine.connect() as conn:
        stats = read.total_rows(conn, chain_id, f, totals.STAT_COLUMNS)
        protocol = read.protocol_rows(conn, chain_id, Filters(end=f.end), totals.PROTOCOL_COLUMNS)
        perps = read.perp_states(conn, chain_id, f.end, f.markets)
    return totals.headline(stats, protocol, perps, f.start, by_market=f.markets is not None)


def backstop_share_price(engine: Engine, chain_id: int, end: int | None) -> float | None:
    """The BackstopVault's value ÷ share supply as of ``end`` (None before the first share), from the daily rollup."""
    return totals.share_price(read.protocol_rows(engine, chain_id, Filters(end=end), totals.PROTOCOL_COLUMNS))


def report(engine: Engine, chain_id: int, f: Filters) -> dict[str, Any]:
    """The headline figures and daily series of a period (the JSON of ``python -m core.report``)."""
    figures, daily = _headline(engine, chain_id, f)
    return {
        **figures,
        "active_traders": read.active_traders(engine, chain_id, f),
        "daily": [
            {"date": format_day(bucket), "volume_usd": volume, "trades": trades, "liquidations": liquidations,
             "liquidated_notional_usd": notional, "socialized_debt_usd": debt}
            for bucket, volume, trades, liquidations, notional, debt in daily
        ],
    }


@dataclass(frozen=True)
class Card:
    """One stat card: its label, value, definition (help) and change vs the previous period."""

    label: str
    value: float
    help: str
    delta: float | None = None
    money: bool = True


def previous_period(f: Filters, as_of: int) -> Filters:
    """The period a card's Δ compares with: the one of equal length just before ``f``; for a period
    from the first block, the same period ending 24 hours earlier (Δ = what the last 24 h changed)."""
    end = f.end if f.end is not None else as_of + 1
    if f.start is None:
        return Filters(None, end - DAY, f.markets)
    return Filters(f.start - (end - f.start), f.start, f.markets)


def overview_cards(engine: Engine, chain_id: int, f: Filters, as_of: int) -> list[Card]:
    """The Overview's stat cards for the period, each with its EVENTS.md definition as help and its
    change vs the previous period (:func:`previous_period`; the 24-hour cards vs the 24 hours before)."""
    now, _ = _headline(engine, chain_id, f)
    before, _ = _headline(engine, chain_id, previous_period(f, as_of))
    day_now = Filters(start=as_of - DAY + 1, end=as_of + 1, markets=f.markets)
    day_before = Filters(start=as_of - 2 * DAY + 1, end=as_of - DAY + 1, markets=f.markets)
    vol_24h = float(market_stats(engine, chain_id, metrics.hour_aligned(day_now), "hour")["volume_usd"].sum())
    vol_prev = float(market_stats(engine, chain_id, metrics.hour_aligned(day_before), "hour")["volume_usd"].sum())
    traders_24h = read.traders_24h(engine, chain_id, as_of, f.markets)
    # Δ from the trader-day rollup (an exact 24-hour window before this one would scan a day of raw trades)
    today = as_of // DAY * DAY
    traders_day = read.active_traders(engine, chain_id, Filters(today, today + DAY, f.markets))
    traders_day_before = read.active_traders(engine, chain_id, Filters(today - DAY, today, f.markets))
    debt_now = float(protocol_stats(engine, chain_id, Filters(end=f.end), "day")["socialized_debt_usd"].sum())
    debt_before = float(protocol_stats(engine, chain_id, Filters(end=previous_period(f, as_of).end), "day")["socialized_debt_usd"].sum())
    vs = " Δ vs the previous period of the same length (for All: vs 24 hours earlier)."

    def card(label: str, key: str, help_: str, money: bool = True) -> Card:
        return Card(label, now[key], help_ + vs, delta=now[key] - before[key], money=money)

    return [
        card("Total volume", "total_volume_usd", "Σ price × size of every Trade in the period (all fill types)."),
        Card("24h volume", vol_24h, "Σ price × size of Trades in the 24 hours up to the latest block; Δ vs the 24 hours before.",
             delta=vol_24h - vol_prev),
        card("Trades", "total_trades", "Count of Trade events in the period.", money=False),
        card("Open interest", "open_interest_usd",
             "Σ over perp markets of the latest long open interest × the latest mark price (one side), at the period's end."),
        card("Liquidations", "liquidations", "Count of PositionLiquidated events in the period.", money=False),
        card("Liquidated notional", "liquidated_notional_usd", "Σ size × liquidation price of the period's liquidations."),
        Card("Bad debt outstanding", debt_now,
             "Σ DebtSocialized.amount since the first block (= BackstopVault.totalSocializedDebt())." + vs,
             delta=debt_now - debt_before),
        card("Insurance fund", "insurance_fund_usd", "Balance of the latest InsuranceFund event."),
        card("Backstop vault", "backstop_vault_usd", "Vault value implied by Deposit − Withdraw + VaultPnLUpdated."),
        Card("Active traders (24h)", traders_24h,
             "Distinct makers and takers of Trades in the 24 hours up to the latest block; Δ: the latest block's UTC day's "
             "distinct traders vs the day before's.", delta=traders_day - traders_day_before, money=False),
    ]


def overview_series(engine: Engine, chain_id: int, f: Filters, granularity: Granularity) -> dict[str, pl.DataFrame]:
    """Every chart frame of the Overview page for the period."""
    markets = read.markets(engine, chain_id)
    stats = metrics.with_symbols(market_stats(engine, chain_id, f, granularity), markets)
    history = metrics.with_symbols(market_stats(engine, chain_id, Filters(end=f.end, markets=f.markets), granularity), markets)
    protocol_all = protocol_stats(engine, chain_id, Filters(end=f.end), granularity)
    return {
        "volume": metrics.volume_series(stats),
        "liquidations": metrics.liquidation_series(stats),
        "open_interest": metrics.open_interest_series(history, f),
        "bad_debt": metrics.cumulative_bad_debt(protocol_all, f),
        "balances": metrics.balance_series(protocol_all, f),
        "waterfall": metrics.waterfall_series(stats),
    }


def coverage(engine: Engine, chain_id: int, f: Filters, granularity: Granularity) -> pl.DataFrame:
    """(insurance fund + backstop vault) / open interest of every market per bucket (buffers are shared)."""
    series = overview_series(engine, chain_id, Filters(f.start, f.end, None), granularity)
    return metrics.coverage_series(series["open_interest"], series["balances"])


def market_table(engine: Engine, chain_id: int, f: Filters) -> pl.DataFrame:
    """Per market over the period: volume, share, trades, OI, funding, liquidations, last price."""
    stats = metrics.with_symbols(market_stats(engine, chain_id, f, "day"), read.markets(engine, chain_id))
    history = market_stats(engine, chain_id, Filters(end=f.end, markets=f.markets), "day")
    return metrics.market_table(stats, latest_state(engine, chain_id, f.end, f.markets), history)


def market_series(engine: Engine, chain_id: int, market: str, f: Filters, granularity: Granularity) -> pl.DataFrame:
    """One market's buckets: volume, OHLC, funding (for its charts)."""
    return market_stats(engine, chain_id, Filters(f.start, f.end, (market,)), granularity).sort("bucket")


def liquidation_rows(engine: Engine, chain_id: int, f: Filters, limit: int | None = None) -> pl.DataFrame:
    """Liquidations in the period, newest first, with each one's waterfall (book → ADL → backstop → insurance → socialized)."""
    return metrics.liquidation_table(read.liquidation_rows(engine, chain_id, f, limit))


def trader_activity(engine: Engine, chain_id: int, f: Filters, n: int = 25) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per day: active, new and returning traders; the top ``n`` traders by volume in the period).

    A trader is new on the first UTC day they traded (in the selected markets) since the first block.
    Active days are counted for the top traders only."""
    rows = read.trader_activity_frames(engine, chain_id, f, n)
    return metrics.trader_days(rows["active"], rows["new"]), metrics.top_traders(rows["top"], rows["active_days"])


def period_totals(engine: Engine, chain_id: int, f: Filters, granularity: Granularity = "day") -> list[dict[str, Any]]:
    """The report's ``daily`` rows at any bucket size (the ``/stats`` series), ascending: per bucket with
    activity, bucket, date (the bucket start's UTC day), volume_usd, trades, liquidations,
    liquidated_notional_usd and socialized_debt_usd of the selected markets (core.metrics.totals.bucket_totals),
    plus cumulative_volume_usd (running Σ over the period: the last is the report's total_volume_usd, to
    float rounding) and
    outstanding_debt_usd (Σ socialized debt since the first block, to the bucket's end). A week is
    the Monday-to-Sunday days of the period."""
    by_market, hourly = f.markets is not None, granularity == "hour"
    with engine.connect() as conn:
        stats = read.total_rows(conn, chain_id, f, totals.BUCKET_COLUMNS, hourly=hourly)
        protocol = read.protocol_rows(conn, chain_id, f, totals.PROTOCOL_COLUMNS, hourly=hourly)
        before = 0.0
        if f.start is not None:  # debt socialized before the period
            earlier = Filters(end=f.start, markets=f.markets)
            before = math.fsum(r[1] for r in (read.stat_rows(conn, chain_id, earlier, ("bucket", "socialized_usd"), hourly=hourly)
                                              if by_market else read.protocol_rows(conn, chain_id, earlier, totals.PROTOCOL_COLUMNS,
                                                                                   hourly=hourly)))
    rows = totals.bucket_totals(stats, protocol, by_market_debt=by_market,
                                bucket_of=totals.week_of if granularity == "week" else None)
    cumulative = itertools.accumulate(r[1] for r in rows)
    outstanding = itertools.accumulate((r[5] for r in rows), initial=before)
    next(outstanding)  # the debt before the period
    return [{**dict(zip(totals.TOTAL_COLUMNS, r, strict=True)), "date": format_day(r[0]), "cumulative_volume_usd": c,
             "outstanding_debt_usd": o} for r, c, o in zip(rows, cumulative, outstanding, strict=True)]


def open_interest_totals(engine: Engine, chain_id: int, f: Filters, granularity: Granularity = "day") -> pl.DataFrame:
    """Per bucket of the period (bucket, open_interest_usd): Σ over the selected perp markets of the
    latest long OI × the latest mark as of the bucket's end, each market's last values carried
    across buckets it has no row in, so the last bucket's is the report's open_interest_usd."""
    perps = read.markets(engine, chain_id).filter(pl.col("market_type") == "perp").select("market")
    rows = market_stats(engine, chain_id, Filters(end=f.end, markets=f.markets), granularity).join(perps, on="market")
    grid = rows.select("bucket").unique().join(rows.select("market").unique(), how="cross")
    carried = grid.join(rows.select("bucket", "market", "long_open_interest", "mark_price"), on=["bucket", "market"],
                        how="left").sort("market", "bucket").with_columns(
        pl.col("long_open_interest", "mark_price").forward_fill().over("market"))
    per_bucket = carried.group_by("bucket").agg(
        (pl.col("long_open_interest") * pl.col("mark_price")).fill_null(0.0).sum().alias("open_interest_usd"))
    if granularity != "week":
        return metrics.in_period(per_bucket, f).sort("bucket")
    # a week is in the period when one of its days is (its Monday may lie before the start)
    weeks = market_stats(engine, chain_id, f, "week").select("bucket").unique()
    return per_bucket.join(weeks, on="bucket", how="semi").sort("bucket")


# ---------------------------------------------------------------------------------------------
# The analyses of the peer dashboards (#15): buffers' performance, position risk, ADL, accounts

def buffers(engine: Engine, chain_id: int, f: Filters, as_of: int) -> dict[str, Any]:
    """The BackstopVault and InsuranceFund as their depositors see them over the period.

    ``vault_daily``: per day deposits, withdrawals, liquidation and other PnL, value, shares, share price,
    depositors; ``returns``: share-price return and simple APR over 7/30/90 days to ``as_of`` (whole
    history, not the period); ``fund_flows``: the fund's daily inflows and outflows by kind;
    ``fund_balance``: its end-of-day balance; ``share_price``: as of the period's end."""
    vault = read_funds.vault_events(engine, chain_id, f.end)
    daily = funds.vault_daily(vault)
    price = funds.latest_share_price(funds.vault_path(vault))
    return {"vault_daily": metrics.in_period(daily, f), "returns": funds.vault_returns(daily, as_of),
            "fund_flows": metrics.in_period(funds.insurance_flows(read_funds.insurance_flows(engine, chain_id, f.end)), f),
            "fund_balance": metrics.in_period(funds.insurance_balance(read.balance_rows(engine, chain_id, f.end)), f),
            "share_price": price}


def marked_positions(engine: Engine, chain_id: int, markets: tuple[str, ...] | None) -> pl.DataFrame:
    """Open positions of the selected markets at each market's latest mark, with their symbols (core.metrics.risk)."""
    positions = read_history.open_positions(engine, chain_id, markets)
    marked = risk.marked_positions(positions, latest_state(engine, chain_id, None, markets))
    return marked.join(read.markets(engine, chain_id).select("market", "symbol"), on="market", how="left").with_columns(
        pl.col("symbol").fill_null(pl.col("market")))


def position_risk(engine: Engine, chain_id: int, markets: tuple[str, ...] | None) -> dict[str, pl.DataFrame]:
    """The open book's risk: largest and most-levered positions, leverage distribution, OI by side and
    the liquidation map, per selected market, as of the newest block."""
    marked = marked_positions(engine, chain_id, markets)
    symbols = marked.select("market", "symbol").unique()
    return {"largest": risk.largest(marked), "most_levered": risk.most_levered(marked),
            "leverage": risk.leverage_distribution(marked),
            "open_interest": risk.open_interest_by_side(marked).join(symbols, on="market", how="left"),
            "liquidation_map": risk.liquidation_map(marked).join(symbols, on="market", how="left")}


def adl_exposure(engine: Engine, chain_id: int, market: str, shock: float, book_depth_usd: float = 0.0) -> pl.DataFrame:
    """Profitable positions on ``market`` in ADL order, with what each would be force-reduced by if its
    mark moved by ``shock`` (core.metrics.risk.adl_under_shock)."""
    return risk.adl_under_shock(marked_positions(engine, chain_id, (market,)), market, shock, book_depth_usd)


def adl_history(engine: Engine, chain_id: int, f: Filters) -> pl.DataFrame:
    """The accounts ADL force-reduced in the period, most reduced first."""
    return accounts.adl_history(read_accounts.adl_reductions(engine, chain_id, f))


@dataclass(frozen=True)
class Account:
    """One account's page: totals, daily PnL, positions (size 0 = closed), trades, liquidations, ADL."""

    address: str
    summary: dict[str, float | int]
    pnl_daily: pl.DataFrame
    positions: pl.DataFrame
    trades: pl.DataFrame
    liquidations: pl.DataFrame
    adl: pl.DataFrame

    @property
    def known(self) -> bool:
        """Whether the chain holds anything of this account."""
        return bool(self.summary["trades"] or self.positions.height or self.liquidations.height or self.adl.height)


def account(engine: Engine, chain_id: int, address: str, trade_limit: int = 500) -> Account:
    """Everything indexed about ``address`` (read_accounts.AccountError if it is not an address)."""
    a = read_accounts.normalize_address(address)
    pnl = read_accounts.pnl_days(engine, chain_id, a)
    days = read_accounts.trade_days(engine, chain_id, a)
    liqs = read_accounts.liquidations(engine, chain_id, a)
    adl = read_accounts.adl_reductions(engine, chain_id, Filters(), a)
    names = read.markets(engine, chain_id).select("market", "symbol")

    def named(df: pl.DataFrame) -> pl.DataFrame:  # the market's symbol in place of its address (untrusted text)
        return df.join(names, on="market", how="left").with_columns(pl.col("symbol").fill_null(pl.col("market"))).drop(
            "market").rename({"symbol": "market"}).select(df.columns)

    return Account(a, accounts.summary(pnl, days, liqs, adl), accounts.pnl_daily(pnl),
                   named(read_accounts.positions(engine, chain_id, a)),
                   named(accounts.trade_table(read_accounts.trades(engine, chain_id, a, trade_limit), a)), named(liqs), named(adl))


def funding(engine: Engine, chain_id: int, f: Filters) -> dict[str, pl.DataFrame]:
    """The perp markets' funding over the period: ``series`` (each update's rate, annualised rate and
    cumulative funding), ``summary`` (per market) and ``premium`` (hourly mark − index), with symbols."""
    names = read.markets(engine, chain_id).select("market", "symbol")
    updates = read_funding.funding_updates(engine, chain_id, f)

    def named(df: pl.DataFrame) -> pl.DataFrame:
        return df.join(names, on="market", how="left").with_columns(pl.col("symbol").fill_null(pl.col("market")))

    perps = read.markets(engine, chain_id).filter(pl.col("market_type") == "perp").select("market")
    premium = funding_metrics.premium_series(read_funding.premium_hourly(engine, chain_id, f)).join(perps, on="market")
    return {"series": named(funding_metrics.funding_series(updates)), "summary": named(funding_metrics.funding_summary(updates)),
            "premium": named(premium)}


def revenue_and_pnl(engine: Engine, chain_id: int, f: Filters, granularity: Granularity) -> dict[str, pl.DataFrame]:
    """Fees by kind per bucket and per market with the protocol's net, volume by fill type and by taker
    side per bucket and market, and traders' PnL per bucket (core.metrics.revenue). Traders' PnL and
    their profitable/losing counts are per UTC day whatever the granularity."""
    stats = metrics.with_symbols(market_stats(engine, chain_id, f, granularity), read.markets(engine, chain_id))
    daily = stats if granularity == "day" else metrics.with_symbols(market_stats(engine, chain_id, f, "day"),
                                                                    read.markets(engine, chain_id))
    return {
        "fees": revenue.fees_daily(stats),
        "fees_by_market": revenue.fees_by_market(stats),
        "fill_volume": revenue.fill_volumes(stats),
        "taker_sides": revenue.taker_sides(stats),
        "traders_pnl": revenue.traders_pnl_daily(daily, read.trader_pnl_counts(engine, chain_id, f)),
    }
