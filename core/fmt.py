"""Numbers for people: the one place figures are turned into the text a card, a table, a tooltip or
an axis shows.

Python formatters serve cards, tables and tooltips; the ``vega_*`` functions return Vega expressions
of the same rules for chart axes, whose tick values only exist in the browser. A missing value
(None, NaN, ±inf) is always shown as :data:`MISSING`, never ``None`` or ``NaN``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import polars as pl

from core.utc import format_day, format_minute

MISSING = "–"
HOURS_PER_YEAR = 24 * 365
#: (scale, suffix) of the compact forms, largest first: $1.2B, $20M, $517K.
UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def is_missing(x: object) -> bool:
    """True for None and for floats that are not finite (NaN, ±inf)."""
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def _value(x: float | None) -> float | None:
    """``x`` as a float, or None when it is missing."""
    return None if x is None or is_missing(x) else float(x)


def _signed(x: float, body: Callable[[float], str], symbol: str = "") -> str:
    return ("-" if x < 0 else "") + symbol + body(abs(x))


def _three_digits(a: float) -> str:
    """``a`` (0 <= a < 1000) to three significant digits, trailing zeros dropped: 1.25, 12.5, 125, 0.5."""
    if a == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(a)))
    text = f"{a:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _compact(a: float) -> str:
    """A non-negative number with a K/M/B/T suffix, three significant digits: 517K, 20M, 1.2B."""
    for scale, suffix in UNITS:
        if a >= scale * 0.9995:  # 999,950 rounds to 1M, not 1,000K
            return _three_digits(a / scale) + suffix
    return _three_digits(a) if a >= 0.001 else ("0" if a == 0 else f"{a:.2g}")


def format_usd(x: float | None) -> str:
    """Card-sized dollars: $1.49B, $12.34M, $15,556, $8.83 (sign first: -$52,063); missing: –."""
    x = _value(x)
    if x is None:
        return MISSING

    def body(a: float) -> str:
        if a >= 1e9:
            return f"{a / 1e9:,.2f}B"
        if a >= 1e6:
            return f"{a / 1e6:,.2f}M"
        return f"{a:,.0f}" if a >= 100 else f"{a:,.2f}"

    return _signed(x, body, "$")


def compact_usd(x: float | None) -> str:
    """Axis-sized dollars, three significant digits: $20M, $1.2B, $517K, $8.83, -$52.1K; missing: –."""
    x = _value(x)
    if x is None:
        return MISSING
    return _signed(x, _compact, "$")


def signed_usd(x: float | None) -> str:
    """A change in dollars with its sign: +$3.46M, -$52,063, $0.00; missing: –."""
    v = _value(x)
    return "+" + format_usd(v) if v is not None and v > 0 else format_usd(v)


def format_count(n: float | None) -> str:
    """A count with thousands separators: 1,234,567; missing: –."""
    v = _value(n)
    return MISSING if v is None else f"{v:,.0f}"


def card_count(n: float | None) -> str:
    """A count for a card: separators up to 9,999,999, then compact (10.4M) so a card stays short."""
    n = _value(n)
    if n is None:
        return MISSING
    return format_count(n) if abs(n) < 1e7 else _signed(n, _compact)


def compact_count(n: float | None) -> str:
    """A count for an axis: 950, 20K, 1.5M; missing: –."""
    n = _value(n)
    if n is None:
        return MISSING
    return _signed(n, _compact)


def format_pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: 0.1234 → 12.3%; missing: –."""
    v = _value(x)
    return MISSING if v is None else f"{v:.{digits}%}"


def annualised(rate_per_hour: float | None) -> float | None:
    """A funding rate per hour (a fraction, EVENTS.md) as a simple yearly rate (× 24 × 365)."""
    v = _value(rate_per_hour)
    return None if v is None else v * HOURS_PER_YEAR


def annualised_expr(column: str, alias: str | None = None) -> pl.Expr:
    """:func:`annualised` as a polars expression (nulls stay null)."""
    return (pl.col(column) * HOURS_PER_YEAR).alias(alias or column)


def format_funding(rate_per_hour: float | None) -> str:
    """Funding annualised in %: 0.00001 per hour → 8.76%; missing: –."""
    return format_pct(annualised(rate_per_hour), 2)


def format_funding_hourly(rate_per_hour: float | None) -> str:
    """Funding per hour in %: 0.00001 → 0.0010%/h; missing: –."""
    v = _value(rate_per_hour)
    return MISSING if v is None else format_pct(v, 4) + "/h"


def format_price(x: float | None) -> str:
    """A price: four significant decimals below 1, two above (65,432.10); missing: –."""
    x = _value(x)
    if x is None:
        return MISSING
    return f"{x:,.2f}" if abs(x) >= 1 else f"{x:,.4g}"


def short_address(address: str | None) -> str:
    """0x8c2c5f…1f83 → 0x8c2c…1f83 (first 4 and last 4 hex digits); missing: –."""
    if not address:
        return MISSING
    return address if len(address) <= 12 else f"{address[:6]}…{address[-4:]}"


def short_address_expr(column: str) -> pl.Expr:
    """:func:`short_address` as a polars expression over a column of addresses (same name)."""
    c = pl.col(column)
    return (pl.when(c.str.len_chars() > 12).then(pl.concat_str(c.str.slice(0, 6), pl.lit("…"), c.str.slice(-4)))
            .otherwise(c).fill_null(MISSING).alias(column))


def format_bucket(ts: int | float, granularity: str = "day") -> str:
    """The label of a bucket starting at ``ts`` (UTC, said once per page by :func:`format_period`):
    2026-01-03 14:00 (hour), 2026-01-03 (day), week of 2026-01-05."""
    if granularity == "hour":
        return format_minute(ts).removesuffix(" UTC")
    return f"week of {format_day(ts)}" if granularity == "week" else format_day(ts)


def format_period(start: int | None, end: int | None) -> str:
    """A page's period [start, end) in UTC seconds: "2026-01-01 00:00 → 2026-01-31 00:00 UTC"; an open
    start is "the first block". The page says UTC here, once, and nowhere else."""
    first = "the first block" if start is None else format_minute(start).removesuffix(" UTC")
    last = "the latest block" if end is None else format_minute(end).removesuffix(" UTC")
    return f"{first} → {last} UTC"


def text_expr(column: str, formatter: Callable[[Any], str], alias: str | None = None) -> pl.Expr:
    """``formatter`` applied to every value of ``column`` (nulls included) as a string column."""
    return pl.col(column).map_elements(formatter, return_dtype=pl.String, skip_nulls=False).alias(alias or column)


# ---------------------------------------------------------------------------------------------
# The same rules as Vega expressions, for axis labels (``alt.Axis(labelExpr=...)``).

def vega_compact(value: str = "datum.value", symbol: str = "") -> str:
    """A Vega expression giving :func:`compact_usd` (symbol ``$``) or :func:`compact_count` of ``value``."""
    expr = f"format({value}, '{symbol},.3~r')"
    for scale, suffix in reversed(UNITS):
        expr = f"abs({value}) >= {scale * 0.9995:g} ? format({value} / {scale:g}, '{symbol},.3~r') + '{suffix}' : {expr}"
    return f"({value} == 0 ? '{symbol}0' : {expr})"


def vega_usd(value: str = "datum.value") -> str:
    """Axis labels in compact dollars: $0, $500K, $20M, $1.2B."""
    return vega_compact(value, "$")


def vega_count(value: str = "datum.value") -> str:
    """Axis labels as compact counts: 0, 950, 20K, 1.5M."""
    return vega_compact(value)


def vega_pct(value: str = "datum.value") -> str:
    """Axis labels as percentages with what precision the ticks need: 0%, 2.5%, 100%."""
    return f"format({value}, '.3~%')"
