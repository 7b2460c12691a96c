"""The pure series of core/metrics, table-driven: small frames in, the figures worked out by hand out."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from core import metrics, schema
from core.period import Filters
from core.utc import DAY

MON = 1_789_948_800  # 2026-09-21, a Monday 00:00 UTC
assert MON % (7 * DAY) == 4 * DAY  # epoch day 0 was a Thursday: Mondays sit 4 days into a 7-day cycle


def stats(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """MarketStatsDaily-shaped rows: the given columns, the table's defaults for the rest."""
    target = schema.frame_schema(schema.MarketStatsDaily)
    defaults = {c: (None if c in ("open_price", "high_price", "low_price", "close_price", *metrics.STATES) else 0)
                for c in target}
    return pl.DataFrame([{**defaults, "chain_id": 1, **r} for r in rows], schema=target)


@pytest.mark.parametrize(("bucket", "monday"), [
    (MON, MON), (MON + 6 * DAY + DAY - 1, MON), (MON + 7 * DAY, MON + 7 * DAY), (MON - 1, MON - 7 * DAY),
    (MON + 3 * DAY, MON),
])
def test_week_start_is_the_monday_of_the_bucket(bucket: int, monday: int) -> None:
    assert pl.select(metrics.week_start(pl.lit(bucket))).item() == monday


@pytest.mark.parametrize(("days", "want"), [
    # one week, two days of one market: flows add, states keep the week's last non-null, OHLC spans the week
    ([{"market": "a", "bucket": MON, "volume_usd": 10.0, "trades": 2, "open_price": 5.0, "high_price": 6.0,
       "low_price": 4.0, "close_price": 5.5, "long_open_interest": 3.0, "mark_price": 5.4, "traders": 2},
      {"market": "a", "bucket": MON + DAY, "volume_usd": 5.0, "trades": 1, "open_price": 5.5, "high_price": 9.0,
       "low_price": 5.0, "close_price": 8.0, "long_open_interest": None, "mark_price": 7.9, "traders": 3}],
     [{"market": "a", "bucket": MON, "volume_usd": 15.0, "trades": 3, "open_price": 5.0, "high_price": 9.0,
       "low_price": 4.0, "close_price": 8.0, "long_open_interest": 3.0, "mark_price": 7.9, "traders": 3}]),
    # Sunday and the next Monday fall in two weeks
    ([{"market": "a", "bucket": MON + 6 * DAY, "volume_usd": 1.0, "trades": 1},
      {"market": "a", "bucket": MON + 7 * DAY, "volume_usd": 2.0, "trades": 1}],
     [{"market": "a", "bucket": MON, "volume_usd": 1.0, "trades": 1},
      {"market": "a", "bucket": MON + 7 * DAY, "volume_usd": 2.0, "trades": 1}]),
    # two markets in one week stay apart
    ([{"market": "b", "bucket": MON, "liquidations": 2, "socialized_usd": 4.0},
      {"market": "a", "bucket": MON + DAY, "liquidations": 1, "socialized_usd": 1.0}],
     [{"market": "a", "bucket": MON, "liquidations": 1, "socialized_usd": 1.0},
      {"market": "b", "bucket": MON, "liquidations": 2, "socialized_usd": 4.0}]),
])
def test_to_weeks(days: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    got = metrics.to_weeks(stats(days))
    assert got.columns == stats(days).columns
    assert got.select(want[0].keys()).to_dicts() == want


@pytest.mark.parametrize(("rows", "want"), [
    ([], {}),
    # per tier, the running sum over buckets; markets of one bucket add
    ([{"market": "a", "bucket": MON, "adl_covered_usd": 1.0, "backstop_loss_usd": 2.0},
      {"market": "b", "bucket": MON, "socialized_usd": 3.0},
      {"market": "a", "bucket": MON + DAY, "adl_covered_usd": 4.0, "insurance_cover_usd": 5.0}],
     {(MON, "adl"): 1.0, (MON, "backstop"): 2.0, (MON, "insurance"): 0.0, (MON, "socialized"): 3.0,
      (MON + DAY, "adl"): 5.0, (MON + DAY, "backstop"): 2.0, (MON + DAY, "insurance"): 5.0,
      (MON + DAY, "socialized"): 3.0}),
])
def test_waterfall_series_is_cumulative_per_tier_in_waterfall_order(rows: list[dict[str, Any]], want: dict[Any, float]) -> None:
    got = metrics.waterfall_series(stats(rows))
    assert {(r["bucket"], r["tier"]): r["cumulative_usd"] for r in got.iter_rows(named=True)} == want
    order = dict(zip(got["tier"], got["tier_order"], strict=True))
    assert sorted(order, key=order.__getitem__) == (["adl", "backstop", "insurance", "socialized"] if want else [])


@pytest.mark.parametrize(("oi", "balances", "want"), [
    # buffers of both series add; OI of markets adds; a bucket without OI (or with zero OI) has no coverage
    ([(MON, "A", 100.0), (MON, "B", 100.0), (MON + DAY, "A", 0.0)],
     [(MON, "Insurance fund", 30.0), (MON, "Backstop vault", 10.0), (MON + DAY, "Insurance fund", 5.0),
      (MON + 2 * DAY, "Insurance fund", 5.0)],
     {MON: 0.2}),
    ([(MON, "A", 50.0), (MON + DAY, "A", 25.0)], [(MON, "x", 50.0), (MON + DAY, "x", 50.0)], {MON: 1.0, MON + DAY: 2.0}),
    ([], [(MON, "x", 1.0)], {}),
])
def test_coverage_series(oi: list[tuple[int, str, float]], balances: list[tuple[int, str, float]], want: dict[int, float]) -> None:
    oi_df = pl.DataFrame(oi, schema={"bucket": pl.Int64, "symbol": pl.String, "oi_usd": pl.Float64}, orient="row")
    bal_df = pl.DataFrame(balances, schema={"bucket": pl.Int64, "series": pl.String, "usd": pl.Float64}, orient="row")
    got = metrics.coverage_series(oi_df, bal_df)
    assert dict(zip(got["bucket"], got["coverage"], strict=True)) == pytest.approx(want)
    assert got["bucket"].is_sorted()


@pytest.mark.parametrize(("start", "end", "kept"), [
    (None, None, [MON, MON + DAY, MON + 2 * DAY]), (MON + DAY, None, [MON + DAY, MON + 2 * DAY]),
    (None, MON + DAY, [MON]), (MON + DAY, MON + DAY, []),
])
def test_in_period_is_start_inclusive_end_exclusive(start: int | None, end: int | None, kept: list[int]) -> None:
    df = pl.DataFrame({"bucket": [MON, MON + DAY, MON + 2 * DAY]})
    assert metrics.in_period(df, Filters(start, end))["bucket"].to_list() == kept


@pytest.mark.parametrize(("f", "want"), [
    (Filters(MON + 1, MON + 3_601), (MON, MON + 7_200)), (Filters(MON, MON + 3_600), (MON, MON + 3_600)),
    (Filters(None, MON + 5), (None, MON + 3_600)),
])
def test_hour_aligned_is_the_smallest_whole_hour_period_holding_it(f: Filters, want: tuple[int | None, int | None]) -> None:
    got = metrics.hour_aligned(f)
    assert (got.start, got.end) == want


def test_liquidation_series_splits_sides_and_drops_empty_ones() -> None:
    df = stats([{"market": "a", "bucket": MON, "liquidations": 3, "liquidations_long": 1,
                 "liquidated_notional_usd": 30.0, "liquidated_notional_long_usd": 10.0},
                {"market": "a", "bucket": MON + DAY, "liquidations": 2, "liquidations_long": 2,
                 "liquidated_notional_usd": 7.0, "liquidated_notional_long_usd": 7.0}]).with_columns(symbol=pl.lit("A"))
    got = metrics.liquidation_series(df)
    assert got.select("bucket", "series", "count", "notional_usd").rows() == [
        (MON, "A · long", 1, 10.0), (MON, "A · short", 2, 20.0), (MON + DAY, "A · long", 2, 7.0)]


@pytest.mark.parametrize(("by_market", "want"), [
    # protocol debt counts on days with blocks even without trades; by market, the market's own debt
    (False, [(MON, 10.0, 1, 5.0), (MON + DAY, 0.0, 0, 2.0)]),
    (True, [(MON, 10.0, 1, 1.0)]),
])
def test_daily_totals(by_market: bool, want: list[tuple[int, float, int, float]]) -> None:
    market = stats([{"market": "a", "bucket": MON, "volume_usd": 10.0, "trades": 1, "socialized_usd": 1.0}])
    protocol = pl.DataFrame({"chain_id": [1, 1, 1], "bucket": [MON, MON + DAY, MON + 2 * DAY],
                             "socialized_debt_usd": [5.0, 2.0, 9.0], "insurance_fund_usd": [None, None, None],
                             "backstop_vault_change_usd": [0.0, 0.0, 0.0], "backstop_shares_change": [0.0, 0.0, 0.0],
                             "blocks": [3, 1, 0]},
                            schema=schema.frame_schema(schema.ProtocolStatsDaily))
    got = metrics.daily_totals(market, protocol, by_market_debt=by_market)
    assert got.select("bucket", "volume_usd", "trades", "socialized_debt_usd").rows() == want
