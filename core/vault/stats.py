"""Return statistics of a vault's value series: APR, drawdown, Sharpe, fees on a high-water mark.

Pure functions on numpy arrays / polars frames; the definitions are the usual ones for vault pages:

- APR: simple annualisation of the period's share-price return, (p_end / p_start − 1) × 365 / days.
- Max drawdown: the largest fall from a running peak, max_t (1 − p_t / max_{s≤t} p_s), as a fraction.
- Sharpe: mean / standard deviation (sample, ddof=1) of daily simple returns × √365, risk-free 0.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from core.utc import DAY


def apr(start_value: float, end_value: float, seconds: float) -> float:
    """Simple annualised return of going from ``start_value`` to ``end_value`` in ``seconds``."""
    if start_value <= 0 or seconds <= 0:
        return 0.0
    return (end_value / start_value - 1.0) * 365.0 * DAY / seconds


def drawdown(values: np.ndarray) -> np.ndarray:
    """The fall from the running peak at each point, as a fraction (0 at new highs)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return v
    peak = np.maximum.accumulate(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, 1.0 - v / peak, 0.0)
    return dd


def max_drawdown(values: np.ndarray) -> float:
    """The largest fall from a running peak, as a fraction."""
    dd = drawdown(values)
    return float(dd.max()) if dd.size else 0.0


def sharpe(daily_values: np.ndarray) -> float:
    """Annualised Sharpe ratio of the daily simple returns of ``daily_values`` (0 when undefined)."""
    v = np.asarray(daily_values, dtype=float)
    if v.size < 3 or np.any(v[:-1] <= 0):
        return 0.0
    r = v[1:] / v[:-1] - 1.0
    sd = float(r.std(ddof=1))
    if sd == 0 or not math.isfinite(sd):
        return 0.0
    return float(r.mean() / sd * math.sqrt(365.0))


def high_water_fees(gross: np.ndarray, rate: float) -> np.ndarray:
    """Cumulative performance fees per unit, charged at each point on gains above the high-water mark.

    ``gross`` is the share price before fees; the net price is ``gross − fees``. At each point the fee
    is ``rate × (net before fee − hwm)`` when positive, and the mark moves up to the net price after it.
    """
    g = np.asarray(gross, dtype=float)
    fees = np.zeros_like(g)
    if rate <= 0 or g.size == 0:
        return fees
    hwm = g[0]
    cum = 0.0
    for i in range(g.size):
        net = g[i] - cum
        if net > hwm:
            cum += rate * (net - hwm)
            hwm = g[i] - cum
        fees[i] = cum
    return fees


def depositor_path(prices: pl.DataFrame, deposit_usd: float, deposit_ts: int, lock_days: float,
                   withdraw_fee: float, withdraw_ts: int | None = None) -> dict[str, object]:
    """Deposit ``deposit_usd`` at ``deposit_ts``, withdraw at ``withdraw_ts`` (default: when the lock ends).

    ``prices`` has ``ts`` and ``share_price`` (net of fees). Shares are bought at the first price at or
    after the deposit; the withdrawal is refused before the lock ends (clamped to it) and is paid at the
    last price at or before the withdrawal, less the withdraw fee. Returns the equity path (``ts``,
    ``equity_usd``, ``drawdown``), the amount received, the PnL and the path's max drawdown."""
    p = prices.sort("ts")
    earliest = deposit_ts + int(lock_days * DAY)
    end = max(earliest, withdraw_ts if withdraw_ts is not None else earliest)
    window = p.filter((pl.col("ts") >= deposit_ts) & (pl.col("ts") <= end))
    if window.height == 0:
        raise ValueError("the deposit date is outside the replayed history: pick a date within it")
    entry = float(window["share_price"][0])
    if entry <= 0:
        raise ValueError("the vault had no value at the deposit date: pick a later date")
    shares = deposit_usd / entry
    eq = window["share_price"].to_numpy() * shares
    path = window.select("ts").with_columns(equity_usd=pl.Series(eq), drawdown=pl.Series(drawdown(eq)))
    received = float(eq[-1]) * (1.0 - withdraw_fee)
    return {
        "path": path,
        "received_usd": received,
        "pnl_usd": received - deposit_usd,
        "max_drawdown": max_drawdown(eq),
        "withdraw_ts": int(window["ts"][-1]),
        "lock_clamped": withdraw_ts is not None and withdraw_ts < earliest,
    }
