"""The report's headline figures and per-bucket totals (core.report, the Overview's cards, ``/stats``),
from the rollups' rows as plain tuples: no frame is built, so a figure of a 90-day period costs
a few hundred microseconds whatever the number of trades.

Float sums are exact sums rounded once (:func:`math.fsum`), so a figure does not depend on the
order the database returns rows in: SQLite and PostgreSQL give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import polars as pl

from core.metrics.revenue import FILL_VOLUMES
from core.utc import DAY, WEEK

#: The market-stats columns the totals read, in this order (a row of the readers' total_rows: one per
#: market and bucket, or per bucket: the totals add a bucket's rows up either way).
BUCKET_COLUMNS = ("bucket", "volume_usd", "trades", "liquidations", "liquidated_notional_usd", "socialized_usd")
FEE_COLUMNS = ("taker_fees_usd", "maker_fees_usd", "liquidation_fees_usd",
               *(c for c in FILL_VOLUMES.values() if c))
STAT_COLUMNS = BUCKET_COLUMNS + FEE_COLUMNS
#: The protocol-stats columns, in this order.
PROTOCOL_COLUMNS = ("bucket", "socialized_debt_usd", "insurance_fund_usd", "backstop_vault_change_usd",
                    "backstop_shares_change", "blocks")
#: The columns of a bucket's totals (:func:`bucket_totals`).
TOTAL_COLUMNS = ("bucket", "volume_usd", "trades", "liquidations", "liquidated_notional_usd", "socialized_debt_usd")

Row = Sequence[Any]  #: a row of the readers (a tuple, or a database row)
B = TypeVar("B", int, pl.Expr)


def week_of(bucket: B) -> B:
    """Monday 00:00 UTC of the bucket's ISO week (1970-01-01 was a Thursday)."""
    return (bucket + 3 * DAY) // WEEK * WEEK - 3 * DAY


def _columns(rows: Sequence[Row], width: int) -> list[Sequence[Any]]:
    """The first ``width`` columns of ``rows`` (``width`` empty ones when there are none)."""
    if not rows:
        return [()] * width
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    return columns[:width]


def _runs(buckets: Sequence[int], bucket_of: Callable[[int], int] | None) -> list[tuple[int, int, int]]:
    """(bucket, first, end) of each run of equal buckets (mapped by ``bucket_of``) of an ascending column."""
    keys = buckets if bucket_of is None else [bucket_of(b) for b in buckets]
    runs, i, n = [], 0, len(keys)
    while i < n:
        j, key = i + 1, keys[i]
        while j < n and keys[j] == key:
            j += 1
        runs.append((key, i, j))
        i = j
    return runs


def bucket_totals(stats: Sequence[Row], protocol: Sequence[Row], *, by_market_debt: bool,
                  bucket_of: Callable[[int], int] | None = None) -> list[tuple[Any, ...]]:
    """One row per bucket with indexed activity, ascending (:data:`TOTAL_COLUMNS`): Σ volume, trades,
    liquidations, liquidated notional of the ``stats`` rows (:data:`STAT_COLUMNS` or its first
    :data:`BUCKET_COLUMNS`, in bucket order) and the bucket's socialized debt.

    Buckets are those with blocks in ``protocol`` (:data:`PROTOCOL_COLUMNS`, its debt is protocol-wide)
    and those with stats rows; with ``by_market_debt`` the debt is the markets' own (``socialized_usd``)
    and only buckets with trades, liquidations or debt are kept. ``bucket_of`` maps a row's bucket
    to a coarser one (:func:`week_of`)."""
    return _bucket_totals(_columns(stats, len(BUCKET_COLUMNS)), protocol, by_market_debt=by_market_debt, bucket_of=bucket_of)


def _bucket_totals(columns: Sequence[Sequence[Any]], protocol: Sequence[Row], *, by_market_debt: bool,
                   bucket_of: Callable[[int], int] | None) -> list[tuple[Any, ...]]:
    buckets, volume, trades, liquidations, notional, socialized = columns[:6]
    fsum = math.fsum
    sums = {b: (fsum(volume[i:j]), sum(trades[i:j]), sum(liquidations[i:j]), fsum(notional[i:j]), fsum(socialized[i:j]))
            if j - i > 1 else (float(volume[i]), trades[i], liquidations[i], float(notional[i]), float(socialized[i]))
            for b, i, j in _runs(buckets, bucket_of)}  # one row: its values (fsum of one value is that value)
    debt: dict[int, list[float]] = {}
    blocks: dict[int, int] = {}
    for p in protocol:
        b = p[0] if bucket_of is None else bucket_of(p[0])
        debt.setdefault(b, []).append(p[1])
        blocks[b] = blocks.get(b, 0) + p[5]
    out: list[tuple[Any, ...]] = []
    none = (0.0, 0, 0, 0.0, 0.0)
    for b in sorted(sums.keys() | {b for b, n in blocks.items() if n > 0}):
        v, n, liq, ln, own = sums.get(b, none)
        if not by_market_debt:
            out.append((b, v, n, liq, ln, fsum(debt.get(b, ()))))
        elif n > 0 or liq > 0 or own > 0:
            out.append((b, v, n, liq, ln, own))
    return out


def balances(protocol: Sequence[Row]) -> tuple[float, float]:
    """(insurance fund, backstop vault) in USD after the daily ``protocol`` rows: the latest
    insurance-fund balance and Σ of the vault's value changes."""
    latest = max(((p[0], p[2]) for p in protocol if p[2] is not None), default=(None, 0.0))
    return float(latest[1]), math.fsum(p[3] for p in protocol)


def share_price(protocol: Sequence[Row]) -> float | None:
    """The BackstopVault's value ÷ share supply after the ``protocol`` rows (None while no share is out)."""
    shares = math.fsum(p[4] for p in protocol)
    return math.fsum(p[3] for p in protocol) / shares if shares > 1e-9 else None


def open_interest(perp_states: Iterable[tuple[str, float | None, float | None]]) -> float:
    """Σ over perp markets of the latest long open interest × the latest mark (EVENTS.md; a market
    missing either counts 0)."""
    return math.fsum((oi or 0.0) * (mark or 0.0) for _, oi, mark in perp_states)


def fill_types(volume: float, forced: dict[str, float]) -> dict[str, float]:
    """The period's volume by fill type: ``normal`` is what the forced fills leave of ``volume``."""
    return {"normal": max(0.0, volume - math.fsum(forced.values())), **forced}


def headline(stats: Sequence[Row], protocol_to_end: Sequence[Row], perp_states: Iterable[tuple[str, float | None, float | None]],
             start: int | None, *, by_market: bool) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The report's figures of a period except active traders, and its daily totals.

    ``stats``: the period's market-stats rows (:data:`STAT_COLUMNS`, in bucket order); ``protocol_to_end``: every
    protocol row before the period's end (balances are as of the end; the period's debt is the
    rows from ``start``); ``perp_states``: (market, latest long OI, latest mark) of the selected perp
    markets as of the end."""
    period = [p for p in protocol_to_end if start is None or p[0] >= start]
    columns = _columns(stats, len(STAT_COLUMNS))
    days = _bucket_totals(columns, period, by_market_debt=by_market, bucket_of=None)
    fees = [math.fsum(c) for c in columns[len(BUCKET_COLUMNS):]]
    volume = math.fsum(d[1] for d in days)
    fund, vault = balances(protocol_to_end)
    forced = dict(zip((k for k, c in FILL_VOLUMES.items() if c), fees[3:], strict=True))
    figures = {
        "total_volume_usd": volume,
        "total_trades": sum(d[2] for d in days),
        "liquidations": sum(d[3] for d in days),
        "liquidated_notional_usd": math.fsum(d[4] for d in days),
        "socialized_debt_usd": math.fsum(d[5] for d in days) if by_market else math.fsum(p[1] for p in period),
        "insurance_fund_usd": fund,
        "backstop_vault_usd": vault,
        "open_interest_usd": open_interest(sorted(perp_states)),
        "fees_taker_usd": fees[0],
        "fees_maker_usd": fees[1],
        "liquidation_fees_usd": fees[2],
        "volume_by_fill_type_usd": fill_types(volume, forced),
        "backstop_share_price": share_price(protocol_to_end),
    }
    return figures, days
