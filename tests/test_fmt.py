"""core/fmt: every formatter, table-driven, including the missing values (None, NaN, inf) shown as –."""

from __future__ import annotations

import math
from collections.abc import Callable

import polars as pl
import pytest

from core import fmt

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("formatter, x, shown", [
    (fmt.format_usd, 1_490_123_456.0, "$1.49B"),
    (fmt.format_usd, 12_340_000.0, "$12.34M"),
    (fmt.format_usd, 517_123.4, "$517,123"),
    (fmt.format_usd, 8.834, "$8.83"),
    (fmt.format_usd, -52_063.4, "-$52,063"),
    (fmt.format_usd, 0.0, "$0.00"),
    (fmt.compact_usd, 20_000_000.0, "$20M"),
    (fmt.compact_usd, 1_200_000_000.0, "$1.2B"),
    (fmt.compact_usd, 517_123.4, "$517K"),
    (fmt.compact_usd, 1_250.0, "$1.25K"),
    (fmt.compact_usd, 999_960.0, "$1M"),  # rounds up a unit, never "$1,000K"
    (fmt.compact_usd, 8.834, "$8.83"),
    (fmt.compact_usd, 0.5, "$0.5"),
    (fmt.compact_usd, 0.0, "$0"),
    (fmt.compact_usd, -52_063.4, "-$52.1K"),
    (fmt.compact_usd, 4_000_000_000_000.0, "$4T"),
    (fmt.signed_usd, 3_460_000.0, "+$3.46M"),
    (fmt.signed_usd, -52_063.4, "-$52,063"),
    (fmt.signed_usd, 0.0, "$0.00"),
    (fmt.format_count, 1_234_567, "1,234,567"),
    (fmt.format_count, 0, "0"),
    (fmt.format_count, 36_742.0, "36,742"),
    (fmt.card_count, 9_999_999, "9,999,999"),
    (fmt.card_count, 10_396_492, "10.4M"),
    (fmt.compact_count, 950, "950"),
    (fmt.compact_count, 20_000, "20K"),
    (fmt.compact_count, 1_500_000, "1.5M"),
    (fmt.format_pct, 0.1234, "12.3%"),
    (fmt.format_pct, 1.0, "100.0%"),
    (fmt.format_pct, -0.005, "-0.5%"),
    (fmt.format_funding, 0.00001, "8.76%"),
    (fmt.format_funding, -0.0000125, "-10.95%"),
    (fmt.format_funding_hourly, 0.00001, "0.0010%/h"),
    (fmt.format_price, 65_432.1, "65,432.10"),
    (fmt.format_price, 0.012345, "0.01235"),
])
def test_formatters(formatter: Callable[[float], str], x: float, shown: str) -> None:
    assert formatter(x) == shown


@pytest.mark.parametrize("formatter", [fmt.format_usd, fmt.compact_usd, fmt.signed_usd, fmt.format_count, fmt.card_count,
                                       fmt.compact_count, fmt.format_pct, fmt.format_funding, fmt.format_funding_hourly,
                                       fmt.format_price])
@pytest.mark.parametrize("missing", [None, NAN, INF, -INF], ids=["None", "NaN", "inf", "-inf"])
def test_missing_is_a_dash(formatter: Callable[[float | None], str], missing: float | None) -> None:
    assert formatter(missing) == fmt.MISSING == "–"


@pytest.mark.parametrize("rate, yearly", [(0.00001, 0.0876), (0.0, 0.0), (None, None), (NAN, None)])
def test_annualised_funding(rate: float | None, yearly: float | None) -> None:
    got = fmt.annualised(rate)
    assert got == (None if yearly is None else pytest.approx(yearly))


def test_annualised_expr_is_annualised() -> None:
    rates = [0.00001, -0.0000125, None]
    got = pl.DataFrame({"rate": rates}).select(fmt.annualised_expr("rate"))["rate"].to_list()
    assert got == [fmt.annualised(r) for r in rates]


@pytest.mark.parametrize("address, shown", [
    ("0x8c2c5f0e3b1a9d7c6e4f2a0b8d6c4e2a0b1f1f83", "0x8c2c…1f83"),
    ("0x1234", "0x1234"),  # already short: kept whole
    ("", "–"),
    (None, "–"),
])
def test_short_address(address: str | None, shown: str) -> None:
    assert fmt.short_address(address) == shown


def test_short_address_expr_is_short_address() -> None:
    addresses = ["0x8c2c5f0e3b1a9d7c6e4f2a0b8d6c4e2a0b1f1f83", "0x1234", None]
    got = pl.DataFrame({"account": addresses}).select(fmt.short_address_expr("account"))["account"].to_list()
    assert got == [fmt.short_address(a) for a in addresses]


@pytest.mark.parametrize("ts, granularity, shown", [
    (1_767_225_600 + 14 * 3600, "hour", "2026-01-01 14:00"),
    (1_767_225_600, "day", "2026-01-01"),
    (1_767_225_600 + 4 * 86_400, "week", "week of 2026-01-05"),
])
def test_format_bucket(ts: int, granularity: str, shown: str) -> None:
    assert fmt.format_bucket(ts, granularity) == shown


@pytest.mark.parametrize("start, end, shown", [
    (1_767_225_600, 1_767_225_600 + 30 * 86_400, "2026-01-01 00:00 → 2026-01-31 00:00 UTC"),
    (None, 1_767_225_600 + 90, "the first block → 2026-01-01 00:01 UTC"),
])
def test_format_period_says_utc_once(start: int | None, end: int | None, shown: str) -> None:
    assert fmt.format_period(start, end) == shown


def test_text_expr_formats_nulls_too() -> None:
    df = pl.DataFrame({"oi": [20_000_000.0, None]})
    assert df.select(fmt.text_expr("oi", fmt.compact_usd, "shown"))["shown"].to_list() == ["$20M", "–"]


@pytest.mark.parametrize("expr, pieces", [
    (fmt.vega_usd(), ["'$,.3~r'", "/ 1e+09", "'B'", "'M'", "'K'", "'$0'"]),
    (fmt.vega_count(), ["',.3~r'", "'M'", "'K'"]),
    (fmt.vega_pct(), ["'.3~%'"]),
])
def test_vega_expressions_carry_the_same_units(expr: str, pieces: list[str]) -> None:
    """The axis expressions use the units of the Python forms (their rendering is checked in tests/test_layout.py)."""
    assert all(p in expr for p in pieces), expr
    assert expr.count("(") == expr.count(")")
