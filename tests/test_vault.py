"""The vault what-if engine: each waterfall branch and limit on hand-computed cases, its laws as
properties (conservation per tier, caps that bound losses, monotone in vault size, size 0 = the status
quo), the return statistics on known series, and the replay of a simulated history read from a
database (exact book legs, the report's figures, the CLI, the page)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import dashboard, db
from core.fmt import format_usd
from core.period import Filters
from core.read.history import load, open_positions
from core.simulator import build_database
from core.utc import DAY, HOUR
from core.vault import History, VaultParams, preset, replay, sweep
from core.vault.history import LIQUIDATION_SCHEMA, MarkBook, assemble
from core.vault.params import PRESETS, SEED_WATERFALL, SOURCES, ParamError, field_docs, parse_value, preset_sources
from core.vault.replay import MIN_DAYS_ANNUALISED
from core.vault.scenarios import Shock, run_shock, thin_market
from core.vault.stats import apr, depositor_path, drawdown, high_water_fees, max_drawdown, sharpe

T0 = 1_790_000_000 // DAY * DAY  # a UTC midnight
BIG, THIN = "0xbig", "0xthin"
PLAIN = VaultParams(vault_size_usd=1_000.0, unwind_hours=0.0, slippage_coef=0.0, trigger_mm_fraction=1.0)
VAULT_FIRST = "vault>book>adl>backstop>insurance"


def liq(t: float = 3600, market: str = BIG, *, deficit: tuple[float, float, float, float] = (0, 0, 0, 0),
        size: float = 1.0, mark: float = 100.0, equity: float | None = None, book: float | None = None,
        adl_size: float = 0.0, long: bool = True, penalty: float = 0.0, entry: float | None = None,
        collateral: float | None = None, opened: int | None = None) -> dict[str, Any]:
    """One liquidation row; ``deficit`` = the recorded (ADL, backstop, insurance, socialized) tiers.

    Without ``entry``/``collateral`` they are what makes the equity at ``mark`` come out (collateral =
    the equity left, at least 0)."""
    d = sum(deficit)
    eq = -d if equity is None else equity
    coll = max(eq, 0.0) if collateral is None else collateral
    sign = 1.0 if long else -1.0
    return {"ts": int(T0 + t), "block_number": int(t), "log_index": 0, "tx_hash": f"0x{int(t):x}", "account": "0xa",
            "market": market, "is_long": long, "size": size, "mark": mark, "notional": size * mark, "equity": eq,
            "entry_price": mark - (eq - coll) / (sign * size) if entry is None else entry, "collateral": coll,
            "opened_ts": None if opened is None else int(T0 + opened),
            "book_filled": size if book is None else book, "adl_size": adl_size, "adl_usd": deficit[0],
            "backstop_usd": deficit[1], "insurance_usd": deficit[2], "socialized_usd": deficit[3], "penalty_usd": penalty}


def history(rows: list[dict[str, Any]], *, marks: list[tuple[str, float, float]] | None = None, days: int = 3,
            volume: dict[str, float] | None = None, fees: float = 0.0) -> History:
    volume = volume or {BIG: 9_000.0, THIN: 100.0}
    liqs = pl.DataFrame(rows, schema=LIQUIDATION_SCHEMA) if rows else pl.DataFrame(schema=LIQUIDATION_SCHEMA)
    mk = pl.DataFrame(marks or [(BIG, float(T0), 100.0), (THIN, float(T0), 100.0)], schema=["market", "ts", "mark"],
                      orient="row").with_columns(pl.col("ts").cast(pl.Int64))
    daily = pl.DataFrame([(m, T0 + d * DAY, v / days, fees) for m, v in volume.items() for d in range(days)],
                         schema=["market", "day", "volume_usd", "fees_usd"], orient="row")
    markets = pl.DataFrame({"market": [BIG, THIN], "symbol": ["BIG-PERP", "THIN-PERP"], "market_type": ["perp", "perp"]})
    return assemble(1, liqs, mk, daily, markets, start=T0, end=T0 + days * DAY)


def tiers(result: Any) -> list[tuple[float, ...]]:
    cols = ("vault_loss", "adl", "backstop", "insurance", "socialized")
    return [tuple(round(x, 9) for x in row) for row in result.liquidations.select(cols).iter_rows()]


def falling(market: str = BIG, start: float = 100.0, step: float = -2.0, hours: int = 48) -> list[tuple[str, float, float]]:
    """Hourly marks from T0 moving by ``step`` an hour."""
    return [(market, float(T0 + h * HOUR), start + step * h) for h in range(hours)]


def nav_law(s: dict[str, Any]) -> float:
    """NAV at the end from the summary's own incomes and losses (an independent ledger of the figures)."""
    return (s["vault_size_usd"] + s["fees_income_usd"] + s["mm_income_usd"] + s["kept_margin_usd"]
            - s["vault_absorbed_usd"] + s["unwind_pnl_usd"] - s["slippage_usd"] - s["performance_fees_usd"]
            + s["vault_bad_debt_usd"])


# --------------------------------------------------------------------------- waterfall order (issue #12 item 1)


def test_without_a_vault_every_tier_is_as_recorded() -> None:
    h = history([liq(deficit=(30, 40, 20, 10)), liq(7200, deficit=(0, 5, 0, 0))])
    r = replay(h, preset("marginx-today"))
    assert tiers(r) == [(0, 30, 40, 20, 10), (0, 0, 5, 0, 0)]
    assert r.summary["bad_debt_proposed_usd"] == r.summary["bad_debt_status_quo_usd"] == 10
    assert r.summary["liquidations_absorbed"] == 0 and r.summary["final_nav_usd"] == 0


def test_the_seed_order_puts_the_vault_after_adl_and_before_the_fund() -> None:
    assert preset("proposed").order == ("book", "adl", "vault", "backstop", "insurance") == tuple(SEED_WATERFALL.split(">"))
    r = replay(history([liq(deficit=(30, 40, 20, 10))]), PLAIN)
    assert tiers(r) == [(70, 30, 0, 0, 0)]  # ADL keeps its recorded 30; the vault takes the 70 left
    assert r.summary["bad_debt_avoided_usd"] == 10


def test_the_vault_before_adl_and_a_junior_vault_are_orders_too() -> None:
    row = liq(deficit=(30, 40, 20, 10))
    assert tiers(replay(history([row]), PLAIN.with_overrides(waterfall="book>vault>adl>backstop>insurance"))) == [
        (100, 0, 0, 0, 0)]
    # The fund pays first (the vault is junior to it): it pays its recorded 20, the vault the rest after ADL.
    assert tiers(replay(history([row]), PLAIN.with_overrides(waterfall="book>adl>insurance>vault>backstop"))) == [
        (50, 30, 0, 20, 0)]
    with pytest.raises(ParamError, match="waterfall orders"):
        PLAIN.with_overrides(waterfall="adl>book>vault>backstop>insurance")


def test_per_liquidation_cap_sends_the_rest_down_the_waterfall() -> None:
    r = replay(history([liq(deficit=(30, 40, 20, 10))]), PLAIN.with_overrides(per_liquidation_cap_usd=25.0))
    # 70 after ADL: the vault 25, the backstop its recorded 40, the fund 5; nothing is socialized.
    assert tiers(r) == [(25, 30, 40, 5, 0)]
    assert r.cap_hits["per_liquidation"] == 1


def test_daily_loss_cap_uses_the_nav_at_the_start_of_the_day() -> None:
    rows = [liq(1000, deficit=(0, 0, 0, 30)), liq(2000, deficit=(0, 0, 0, 30)), liq(DAY + 1000, deficit=(0, 0, 0, 60))]
    r = replay(history(rows), PLAIN.with_overrides(daily_loss_cap_pct=0.05))
    # Day 1: budget 5% × 1000 = 50 → 30, then 20. Day 2: NAV 950 → budget 47.5.
    assert [t[0] for t in tiers(r)] == [30, 20, 47.5]
    assert [t[4] for t in tiers(r)] == [0, 10, 12.5]
    assert r.cap_hits["daily_loss"] == 2


def test_thin_markets_get_their_own_smaller_budget() -> None:
    rows = [liq(1000, BIG, deficit=(0, 0, 0, 40)), liq(2000, THIN, deficit=(0, 0, 0, 40))]
    p = PLAIN.with_overrides(per_market_daily_budget_pct=0.03, thin_market_daily_budget_pct=0.01)
    r = replay(history(rows), p)
    assert [t[0] for t in tiers(r)] == [30, 10]
    assert r.cap_hits["market_budget"] == 2


def test_utilization_limits_the_share_of_a_position_taken_over() -> None:
    # 10 units unfilled at mark 10 = 100 notional; 5% × NAV 1000 = 50 of room → half of it.
    row = liq(deficit=(0, 0, 0, 8), size=10, mark=10, book=0, equity=-8)
    r = replay(history([row], marks=[(BIG, float(T0), 10.0)]), PLAIN.with_overrides(max_utilization=0.05))
    assert r.liquidations["vault_size_taken"][0] == pytest.approx(5)
    assert tiers(r) == [(4, 0, 0, 0, 4)]
    assert r.cap_hits["utilization"] == 1


def test_the_vault_cannot_pay_more_than_its_nav() -> None:
    r = replay(history([liq(deficit=(0, 0, 0, 80))]), PLAIN.with_overrides(vault_size_usd=50.0))
    assert tiers(r) == [(50, 0, 0, 0, 30)] and r.cap_hits["nav"] == 1
    assert r.nav["nav_usd"].min() >= 0


def test_the_insurance_fund_spends_what_the_vault_saved_it_later() -> None:
    rows = [liq(1000, deficit=(0, 0, 20, 0)), liq(DAY + 1000, deficit=(0, 0, 5, 20))]
    r = replay(history(rows), PLAIN.with_overrides(daily_loss_cap_pct=0.02))
    # Day 1: 2% × 1000 = 20 → the vault takes it all and the fund keeps its 20. Day 2: 2% × 980 = 19.6;
    # the fund pays the last 5.4 (more than its recorded 5, out of what it saved); nothing is socialized.
    assert tiers(r) == [(20, 0, 0, 0, 0), pytest.approx((19.6, 0, 0, 5.4, 0))]
    assert r.summary["bad_debt_status_quo_usd"] == 20 and r.summary["bad_debt_proposed_usd"] == pytest.approx(0)


def test_healthy_liquidation_fee_comes_from_the_equity_left_after_the_penalty() -> None:
    rows = [liq(equity=5.0, penalty=0.3), liq(7200, equity=0.5, penalty=0.3)]  # notional 100
    r = replay(history(rows), PLAIN.with_overrides(healthy_liquidation_fee=0.01))
    assert r.summary["fees_income_usd"] == pytest.approx(1.0 + 0.2)


def test_market_making_income_is_credited_at_the_end_of_each_day() -> None:
    h = history([], volume={BIG: 3_000_000.0, THIN: 0.0}, fees=100.0, days=3)
    r = replay(h, PLAIN.with_overrides(mm_fee_share=0.5, mm_spread_capture=0.0001))
    per_day = 0.5 * 100 * 2 + 0.0001 * 1_000_000  # both markets' fees; BIG's volume
    assert r.summary["mm_income_usd"] == pytest.approx(3 * per_day)
    nav = r.nav
    assert nav.filter(pl.col("ts") == T0 + DAY - 3600)["nav_usd"][0] == pytest.approx(1000)
    assert nav.filter(pl.col("ts") == T0 + DAY)["nav_usd"][0] == pytest.approx(1000 + per_day)


# --------------------------------------------------------------------------- presets and their sources


def test_every_preset_value_cites_the_sentence_it_comes_from_or_says_assumed() -> None:
    assert set(PRESETS) == set(SOURCES) == {"marginx-today", "hyperliquid-hlp", "extended-vault", "lighter-llp",
                                            "proposed"}
    for name, values in SOURCES.items():
        p = preset(name)
        for field, (value, source) in values.items():
            assert getattr(p, field) == value, (name, field)
            assert '"' in source or source.startswith("assumed") or "EVENTS.md" in source, (name, field, source)
        # Fields a preset leaves at the default name the default's source.
        assert set(preset_sources(name)) == {f.name for f in dataclasses.fields(VaultParams)}
        for field in {f.name for f in dataclasses.fields(VaultParams)} - set(values):
            assert getattr(p, field) == getattr(VaultParams(), field), (name, field)


def test_extended_vault_has_the_seeds_fifteen_percent_day_and_per_market_budgets() -> None:
    ext = preset("extended-vault")
    assert ext.daily_loss_cap_pct == 0.15 and "15% in a day" in SOURCES["extended-vault"]["daily_loss_cap_pct"][1]
    assert ext.per_market_daily_budget_pct is not None and ext.thin_market_daily_budget_pct is not None
    assert ext.thin_market_daily_budget_pct < ext.per_market_daily_budget_pct
    assert preset("proposed").daily_loss_cap_pct == 0.15


def test_extended_and_lighter_differ_where_the_venues_differ() -> None:
    # A long liquidated at equity 1 (below 2/3 × 3% of 100) that the book closed, and one with a deficit.
    rows = [liq(3600, equity=1.0, penalty=0.3), liq(7200, deficit=(0, 10, 0, 5), book=0.5)]
    h = history(rows, marks=falling(step=0.5))
    ext, llp = replay(h, preset("extended-vault")), replay(h, preset("lighter-llp"))
    assert preset("lighter-llp").takes_over_first and not preset("extended-vault").takes_over_first
    assert ext.summary["kept_margin_usd"] == 0 < llp.summary["kept_margin_usd"]  # close-out keeps the collateral
    assert ext.summary["fees_income_usd"] > 0 == llp.summary["fees_income_usd"]  # Extended's 1% on the healthy one
    assert ext.summary["final_nav_usd"] != llp.summary["final_nav_usd"]


# --------------------------------------------------------------------------- caps bound losses (item 2)


def test_a_takeover_held_while_the_price_falls_is_closed_at_its_cap() -> None:
    # Long 10 taken at 98 with nothing to absorb (equity 0); the mark falls 2 an hour: the loss is 20 at the
    # next hour (below the cap of 30), over it the hour after, when the vault closes the rest: ≤ 30 + one hour's move.
    row = liq(3600, equity=0.0, size=10, book=0.0, mark=98.0)
    p = PLAIN.with_overrides(unwind_hours=12.0, per_liquidation_cap_usd=30.0)
    r = replay(history([row], marks=falling()), p)
    L = r.liquidations
    assert L["forced_close"][0] == "per_liquidation" and r.cap_hits["per_liquidation"] == 1
    loss = -L["vault_pnl"][0]
    assert 30 <= loss <= 30 + 10 * 2.0 + 1e-9
    uncapped = replay(history([row], marks=falling()), p.with_overrides(per_liquidation_cap_usd=None))
    assert -uncapped.liquidations["vault_pnl"][0] > 3 * loss  # what the cap saved


def test_a_bad_day_is_stopped_at_the_daily_cap() -> None:
    rows = [liq(3600, equity=0.0, size=10, book=0.0, mark=98.0), liq(3700, BIG, equity=0.0, size=10, book=0.0, mark=98.0)]
    p = PLAIN.with_overrides(unwind_hours=12.0, daily_loss_cap_pct=0.05)
    r = replay(history(rows, marks=falling()), p)
    # Two longs of 10 lose 40 an hour together; the day's cap is 5% × 1000 = 50.
    day_loss = 1000 - r.nav.filter(pl.col("ts") == T0 + DAY)["nav_usd"][0]
    assert 50 <= day_loss <= 50 + 20 * 2.0 + 1e-9
    assert set(r.liquidations["forced_close"].to_list()) == {"daily_loss"}
    assert r.summary["worst_day_loss_pct"] == pytest.approx(day_loss / 1000)


def pushes(step: float, every: float = 300.0, hours: int = 48) -> list[tuple[str, float, float]]:
    """BIG's oracle pushed every ``every`` seconds: 100 until T0 + 1 h, then ``step`` more at each push."""
    n = int(hours * HOUR / every)
    return [(BIG, float(T0 + k * every), 100.0 + step * max(0.0, (k * every - HOUR) / every)) for k in range(n)]


def test_a_cap_is_checked_at_every_oracle_push_not_only_at_the_hourly_marks() -> None:
    # A short of 10 taken at 100 (nothing to absorb) at T0 + 61 min; the oracle pushes every 5 minutes, each 1
    # higher: the takeover loses 10 a push. The per-liquidation cap of 30 is reached at the third push, where
    # the vault closes it: 30 lost (≤ 30 + one push's move × 10). Checked at the hourly marks only, the first
    # check would have come at T0 + 2 h, 12 pushes in: 120 lost.
    row = liq(HOUR + 60, equity=0.0, size=10, book=0.0, mark=100.0, long=False)
    p = PLAIN.with_overrides(unwind_hours=12.0, per_liquidation_cap_usd=30.0)
    r = replay(history([row], marks=pushes(1.0)), p)
    assert r.liquidations["forced_close"][0] == "per_liquidation"
    assert 30 <= -r.liquidations["vault_pnl"][0] <= 30 + 10 * 1.0 + 1e-9


def test_the_daily_cap_is_checked_at_every_oracle_push() -> None:
    # Two shorts of 10 lose 20 a push together; the day's cap is 5% × 1000 = 50: closed at the third push (60).
    rows = [liq(HOUR + 60, equity=0.0, size=10, book=0.0, mark=100.0, long=False),
            liq(HOUR + 70, equity=0.0, size=10, book=0.0, mark=100.0, long=False)]
    r = replay(history(rows, marks=pushes(1.0)), PLAIN.with_overrides(unwind_hours=12.0, daily_loss_cap_pct=0.05))
    assert set(r.liquidations["forced_close"].to_list()) == {"daily_loss"}
    assert 50 <= -float(r.liquidations["vault_pnl"].sum()) <= 50 + 20 * 1.0 + 1e-9


# --------------------------------------------------------------------------- the takeover from the price path (item 3)


def test_the_vault_first_takes_over_where_equity_crossed_the_trigger_and_keeps_the_margin() -> None:
    # Long 1 at entry 100 with collateral 5, opened at T0; marks fall 0.5 an hour. Maintenance 3% of the mark.
    # Equity M − 95 < k × 0.03 × M first at M < 95 / (1 − 0.03k): k = 2/3 → the mark 96.5, equity 1.5 kept.
    rows = [liq(20 * HOUR, equity=-5.0, mark=90.0, entry=100.0, collateral=5.0, opened=0, deficit=(0, 0, 0, 5.0),
                book=0.0)]
    h = history(rows, marks=falling(step=-0.5))
    kept = {}
    for k in (0.0, 1 / 3, 2 / 3, 1.0, 2.0):
        r = replay(h, PLAIN.with_overrides(waterfall=VAULT_FIRST, trigger_mm_fraction=k))
        kept[k] = r.summary["kept_margin_usd"]
        mark = 100.0 - 0.5 * (r.liquidations["takeover_ts"][0] - T0) / HOUR
        assert 5 - (100 - mark) < k * 0.03 * mark  # crossed at the takeover mark
        if mark < 100:
            assert 5 - (100 - (mark + 0.5)) >= k * 0.03 * (mark + 0.5)  # not at the mark before
    assert kept[0.0] == pytest.approx(0.0) and len(set(kept.values())) == 5  # depends on k
    assert kept[2 / 3] == pytest.approx(1.5) and kept[2.0] > kept[1.0] > kept[2 / 3] > kept[1 / 3] > 0
    # Today's replay took over at the recorded liquidation, where the equity is −5: nothing kept.


# --------------------------------------------------------------------------- NAV, impact, fees (items 4–6)


def test_nav_marks_the_open_part_and_realises_the_closed_part_every_hour() -> None:
    # Long 4 taken at 100 (deficit 0), unwound over 4 h while the mark rises 1 an hour: at hour h the vault
    # has realised Σ_{j≤h} 1 × j and holds 4 − h at 100 + h.
    row = liq(0, equity=0.0, size=4.0, book=0.0)
    r = replay(history([row], marks=falling(step=1.0)), PLAIN.with_overrides(unwind_hours=4.0))
    nav = dict(zip(r.nav["ts"].to_list(), r.nav["nav_usd"].to_list(), strict=True))
    for h in range(5):
        realised = sum(range(1, h + 1))
        assert nav[T0 + h * HOUR] == pytest.approx(1000 + realised + (4 - h) * h), h
    assert r.summary["unwind_pnl_usd"] == pytest.approx(1 + 2 + 3 + 4)


def test_slippage_is_the_square_root_law_on_the_markets_total() -> None:
    # Two longs of 5 at mark 100 in one market, closed at once: impact on the total 1,000 USD, not twice on 500.
    rows = [liq(3600, equity=0.0, size=5.0, book=0.0), liq(3600.5, equity=0.0, size=5.0, book=0.0)]
    p = PLAIN.with_overrides(unwind_hours=1.0, slippage_coef=0.1)
    r = replay(history(rows, volume={BIG: 3 * 40_000.0, THIN: 1.0}), p)
    total = 0.1 * math.sqrt(1_000 / 40_000) * 1_000
    assert r.summary["slippage_usd"] == pytest.approx(total)
    assert r.summary["slippage_usd"] > 2 * 0.1 * math.sqrt(500 / 40_000) * 500


def test_a_recovery_to_the_inception_price_pays_no_performance_fee() -> None:
    # Day 1 the vault loses 100; days 2–3 market making earns it back to exactly 1.0 and then 2% more.
    rows = [liq(3600, deficit=(0, 0, 0, 100))]
    h = history(rows, volume={BIG: 3 * 600_000.0, THIN: 0.0}, days=3)
    p = PLAIN.with_overrides(mm_spread_capture=1e-4, performance_fee=0.1)  # 60 a day
    r = replay(h, p)
    assert r.summary["performance_fees_usd"] == pytest.approx(0.1 * (1000 - 100 + 180 - 1000))
    back = replay(h, p.with_overrides(mm_spread_capture=1e-4 * 100 / 180))  # ends at 1000 exactly
    assert back.summary["final_nav_usd"] == pytest.approx(1000) and back.summary["performance_fees_usd"] == 0


# --------------------------------------------------------------------------- honest figures, the ledger (items 8–9)


def test_short_windows_show_the_period_return_and_no_annualised_figures() -> None:
    h = history([liq(3600, deficit=(0, 0, 0, 10))], days=10, volume={BIG: 10 * 100_000.0, THIN: 0.0})
    s = replay(h, PLAIN.with_overrides(mm_spread_capture=1e-4)).summary
    assert s["apr"] is None and s["sharpe"] is None and "30 days" in s["annualised_note"]
    assert s["period_return"] == pytest.approx((1000 - 10 + 100) / 1000 - 1)
    long_ = history([liq(3600, deficit=(0, 0, 0, 10))], days=MIN_DAYS_ANNUALISED, volume={BIG: 1e6, THIN: 0.0})
    s = replay(long_, PLAIN.with_overrides(mm_spread_capture=1e-4)).summary
    assert s["apr"] == pytest.approx(s["period_return"] * 365 / MIN_DAYS_ANNUALISED) and s["sharpe"] is not None


def test_nav_at_the_end_is_the_start_plus_every_income_less_every_loss() -> None:
    rows = [liq(3600, deficit=(0, 5, 5, 10), book=0.5, equity=-20.0), liq(7200, equity=1.0, penalty=0.3),
            liq(DAY, THIN, deficit=(0, 0, 0, 40), book=0.0, long=False)]
    h = history(rows, marks=falling(step=0.3) + falling(THIN, step=-0.2), fees=50.0)
    for name in PRESETS:
        p = preset(name).with_overrides(vault_size_usd=1_000.0) if name != "marginx-today" else preset(name)
        s = replay(h, p).summary
        if p.enabled:
            assert round(s["final_nav_usd"], 2) == round(nav_law(s), 2), name
        assert s["vault_absorbed_usd"] + s["adl_usd"] + s["backstop_usd"] + s["insurance_usd"] + s["socialized_usd"] \
            == pytest.approx(s["shortfall_usd"], abs=1e-6), name


# --------------------------------------------------------------------------- laws as properties

tier = st.floats(0, 500, allow_nan=False, allow_infinity=False)


@st.composite
def histories(draw: st.DrawFn) -> History:
    n = draw(st.integers(1, 25))
    rows = []
    for i in range(n):
        d = (draw(tier), draw(tier), draw(tier), draw(tier))
        size = draw(st.floats(0.1, 50))
        mark = draw(st.floats(1, 200))
        book = draw(st.sampled_from([size, 0.0, size / 2]))
        healthy = draw(st.booleans()) and sum(d) == 0
        t = draw(st.integers(0, 3 * DAY - 1)) + i * 1e-3
        rows.append(liq(t, draw(st.sampled_from([BIG, THIN])), deficit=d, size=size, mark=mark, book=book,
                        adl_size=min(size - book, draw(st.floats(0, 10))), long=draw(st.booleans()),
                        equity=draw(st.floats(0, 5)) if healthy else None, penalty=draw(st.floats(0, 1)),
                        opened=draw(st.one_of(st.none(), st.integers(0, max(0, int(t) - 1))))))
    walk = [(m, float(T0 + k * 1800), float(100 * (1 + 0.3 * math.sin(k * draw(st.floats(0.01, 1))))))
            for m in (BIG, THIN) for k in range(0, 3 * 48)]
    return history(rows, marks=walk)


limit = st.one_of(st.none(), st.floats(0, 0.5))
designs = st.builds(
    VaultParams, vault_size_usd=st.floats(0, 5_000),
    waterfall=st.sampled_from([SEED_WATERFALL, VAULT_FIRST, "book>vault>adl>backstop>insurance",
                               "book>adl>insurance>vault>backstop"]),
    trigger_mm_fraction=st.floats(0, 2), unwind_hours=st.floats(0, 12),
    slippage_coef=st.floats(0, 1), healthy_liquidation_fee=st.floats(0, 0.02), daily_loss_cap_pct=limit,
    per_market_daily_budget_pct=limit, thin_market_daily_budget_pct=limit,
    per_liquidation_cap_usd=st.one_of(st.none(), st.floats(0, 300)), max_utilization=st.one_of(st.none(), st.floats(0, 2)),
    mm_fee_share=st.floats(0, 1), mm_spread_capture=st.floats(0, 0.001), performance_fee=st.floats(0, 0.3))
laws = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@laws
@given(h=histories(), p=designs)
def test_value_is_conserved_per_tier_and_no_balance_goes_negative(h: History, p: VaultParams) -> None:
    r = replay(h, p)
    L = r.liquidations
    s = r.summary
    paid = L["vault_loss"] + L["adl"] + L["backstop"] + L["insurance"] + L["socialized"]
    assert ((paid - L["deficit_usd"]).abs() <= 1e-6).all()
    assert s["vault_absorbed_usd"] + s["adl_usd"] + s["backstop_usd"] + s["insurance_usd"] + s["socialized_usd"] \
        == pytest.approx(s["shortfall_usd"], abs=1e-6)
    for c in ("vault_loss", "adl", "backstop", "insurance", "socialized", "vault_size_taken", "vault_slippage"):
        assert (L[c] >= -1e-9).all(), c
    assert (r.nav["nav_usd"] >= -1e-9).all()
    if p.enabled:
        assert s["final_nav_usd"] == pytest.approx(nav_law(s), abs=1e-6)
    # The fund never pays more than it recorded plus what it saved earlier, in the order the design acted
    # (a vault first acts at the trigger's crossing, which can come before an earlier row's liquidation).
    acted = pl.when(pl.lit(p.takes_over_first) & (pl.col("takeover_ts") >= 0)).then(pl.col("takeover_ts")).otherwise("ts")
    by_act = L.with_row_index("row").sort(acted, "row")
    assert (by_act["insurance"].cum_sum() <= by_act["insurance_status_quo"].cum_sum() + 1e-6).all()
    assert (L["adl"] <= L["adl_status_quo"] + 1e-9).all() and (L["backstop"] <= L["backstop_status_quo"] + 1e-9).all()


@laws
@given(h=histories(), p=designs, cap=st.floats(0.5, 100))
def test_no_takeover_loses_more_than_its_cap_plus_one_intervals_move_and_its_close(
        h: History, p: VaultParams, cap: float) -> None:
    r = replay(h, p.with_overrides(per_liquidation_cap_usd=cap))
    book = MarkBook(h.marks)
    taken = r.liquidations.filter(pl.col("vault_size_taken") > 0)
    for row in taken.iter_rows(named=True):
        t = float(row["takeover_ts"])
        # The generated marks are pushed every half hour, on the half hours: sampled there, consecutive points
        # are consecutive pushes. The largest move over one push interval while it could be held bounds the
        # move before its forced close; the jump from the takeover's own mark to a push bounds the first one.
        horizon = np.arange(math.floor(t / (HOUR / 2)) * HOUR / 2, t + (p.unwind_hours + 2) * HOUR, HOUR / 2)
        path = book.at(row["market"], horizon, np.full(horizon.size, row["notional"] / row["size"]))
        push = np.abs(np.diff(path)).max(initial=0.0)
        jump = np.abs(path - row["notional"] / row["size"]).max(initial=0.0)
        bound = cap + row["vault_size_taken"] * max(push, jump) + row["vault_slippage"]
        assert -row["vault_pnl"] <= bound + 1e-6, row


@laws
@given(h=histories(), p=designs, sizes=st.tuples(st.floats(0, 5_000), st.floats(0, 5_000)))
def test_a_larger_vault_never_increases_bad_debt(h: History, p: VaultParams, sizes: tuple[float, float]) -> None:
    small, large = sorted(sizes)
    # Other parameters fixed. The vault holds no market risk here (it closes at the takeover mark, without
    # slippage): with it, a larger vault taking more of a position that then loses can end with less capital
    # than a smaller one, and absorb less later (the README says so).
    p = p.with_overrides(unwind_hours=0.0, slippage_coef=0.0)
    bad_small = replay(h, p.with_overrides(vault_size_usd=small)).summary["bad_debt_proposed_usd"]
    bad_large = replay(h, p.with_overrides(vault_size_usd=large)).summary["bad_debt_proposed_usd"]
    assert bad_large <= bad_small + 1e-6


@laws
@given(h=histories(), p=designs)
def test_size_zero_is_the_status_quo_exactly(h: History, p: VaultParams) -> None:
    r = replay(h, p.with_overrides(vault_size_usd=0.0))
    L = r.liquidations
    assert r.summary["liquidations_absorbed"] == 0 and (L["vault_loss"] == 0).all()
    for new, old in (("adl", "adl_status_quo"), ("backstop", "backstop_status_quo"),
                     ("insurance", "insurance_status_quo"), ("socialized", "socialized_status_quo")):
        assert (L[new] == L[old]).all(), new
    assert r.summary["bad_debt_proposed_usd"] == r.summary["bad_debt_status_quo_usd"]


@laws
@given(h=histories(), order=st.sampled_from([SEED_WATERFALL, VAULT_FIRST]))
def test_an_unlimited_vault_socializes_nothing(h: History, order: str) -> None:
    p = VaultParams(vault_size_usd=1e12, waterfall=order, trigger_mm_fraction=1.0)
    r = replay(h, p)
    assert r.summary["bad_debt_proposed_usd"] == pytest.approx(0, abs=1e-6)


@laws
@given(h=histories(), p=designs, which=st.sampled_from(["daily_loss_cap_pct", "per_market_daily_budget_pct",
                                                        "max_utilization"]))
def test_a_limit_at_zero_takes_nothing_over(h: History, p: VaultParams, which: str) -> None:
    changes: dict[str, Any] = {which: 0.0}
    if which == "per_market_daily_budget_pct":
        changes["thin_market_daily_budget_pct"] = None
    r = replay(h, p.with_overrides(**changes))
    assert (r.liquidations["vault_loss"] == 0).all() and r.summary["liquidations_absorbed"] == 0


# --------------------------------------------------------------------------- statistics on known series


def test_apr_drawdown_sharpe_and_high_water_fees_on_known_series() -> None:
    assert apr(1.0, 1.1, 365 * DAY) == pytest.approx(0.10)
    assert apr(100.0, 105.0, 73 * DAY) == pytest.approx(0.25)
    assert max_drawdown(np.array([1, 2, 1, 3, 1.5])) == pytest.approx(0.5)
    assert drawdown(np.array([1, 2, 1.5, 2.5])).tolist() == pytest.approx([0, 0, 0.25, 0])
    values = np.cumprod([1.0, 1.01, 0.99, 1.02, 1.0])  # returns +1%, −1%, +2%, 0%
    assert sharpe(values) == pytest.approx(0.005 / math.sqrt(5e-4 / 3) * math.sqrt(365))
    assert sharpe(np.array([1.0, 1.01, 1.0201, 1.030301])) == 0.0  # no variance
    assert high_water_fees(np.array([1, 1.1, 1.05, 1.2]), 0.2).tolist() == pytest.approx([0, 0.02, 0.02, 0.04])


def test_depositor_path_respects_the_lock_and_the_withdraw_fee() -> None:
    prices = pl.DataFrame({"ts": [T0 + d * DAY for d in range(6)], "share_price": [1.0, 1.1, 0.99, 1.2, 1.3, 1.4]})
    out = depositor_path(prices, 1_000.0, T0 + DAY, lock_days=2, withdraw_fee=0.01, withdraw_ts=T0 + 2 * DAY)
    assert out["lock_clamped"] and out["withdraw_ts"] == T0 + 3 * DAY  # asked for day 2, the lock ends on day 3
    assert out["received_usd"] == pytest.approx(1_000 / 1.1 * 1.2 * 0.99)
    assert out["max_drawdown"] == pytest.approx(1 - 0.99 / 1.1)
    with pytest.raises(ValueError, match="outside the replayed history"):
        depositor_path(prices, 1.0, T0 + 30 * DAY, 0, 0)


def test_parameters_reject_bad_values_with_one_line() -> None:
    with pytest.raises(ParamError, match="unknown preset 'nope'"):
        preset("nope")
    with pytest.raises(ParamError, match="unknown vault parameter 'size'"):
        preset("proposed").with_overrides(size=1)
    with pytest.raises(ParamError, match="must be ≥ 0"):
        VaultParams(vault_size_usd=-1)
    with pytest.raises(ParamError, match="finite"):
        VaultParams(daily_loss_cap_pct=float("nan"))
    assert parse_value("daily_loss_cap_pct", "5%") == pytest.approx(0.05)
    assert parse_value("daily_loss_cap_pct", "none") is None
    assert parse_value("waterfall", VAULT_FIRST) == VAULT_FIRST
    with pytest.raises(ParamError, match="waterfall orders"):
        parse_value("waterfall", "book>vault")
    assert set(PRESETS) == {"marginx-today", "hyperliquid-hlp", "extended-vault", "lighter-llp", "proposed"}
    # Every field has a one-line doc naming its source (the page's help text).
    docs = field_docs()
    assert set(docs) == {f.name for f in dataclasses.fields(VaultParams)}
    assert all(re.search(r"\([^)]*(?:seed 001|Hyperliquid|Extended|Lighter|EVENTS|assumed|square-root)", d) for d in docs.values()), docs


def test_mark_book_twap_of_a_step_function() -> None:
    book = MarkBook(pl.DataFrame({"market": [BIG] * 3, "ts": [0, 10, 20], "mark": [1.0, 3.0, 5.0]}))
    assert book.twap(BIG, np.array([0.0]), np.array([20.0]), np.array([0.0])).tolist() == [2.0]
    assert book.twap(BIG, np.array([5.0]), np.array([5.0]), np.array([0.0])).tolist() == [1.0]
    assert book.twap(BIG, np.array([15.0]), np.array([30.0]), np.array([0.0])).tolist() == pytest.approx([(3 * 5 + 5 * 10) / 15])
    assert book.at("0xnone", np.array([1.0]), np.array([7.0])).tolist() == [7.0]


def test_sweep_is_one_row_per_combination() -> None:
    h = history([liq(1000, deficit=(0, 0, 0, 30)), liq(2000, deficit=(0, 0, 0, 30))])
    grid = sweep(h, PLAIN, ("vault_size_usd", [0.0, 20.0, 1000.0]), ("per_liquidation_cap_usd", [None, 10.0]))
    assert grid.height == 6
    bad = {(r["vault_size_usd"], r["per_liquidation_cap_usd"]): r["bad_debt_proposed_usd"] for r in grid.iter_rows(named=True)}
    assert bad[(0.0, None)] == 60 and bad[(20.0, None)] == 40 and bad[(1000.0, None)] == 0 and bad[(1000.0, 10.0)] == 40
    forked = sweep(h, PLAIN, ("vault_size_usd", [0.0, 20.0, 1000.0]), ("per_liquidation_cap_usd", [None, 10.0]), workers=2)
    assert forked.equals(grid)  # the forked workers replay the same history to the same figures


# --------------------------------------------------------------------------- a simulated history in a database


@pytest.fixture(scope="module")
def simulated(new_database: Callable[[str], str]) -> str:
    url = new_database("vault")
    build_database(url, seed=5, days=6, trades_per_day=2_500)
    return url


def test_replay_of_an_indexed_history_reconciles_with_the_report(simulated: str) -> None:
    engine = db.make_engine(simulated, create=False)
    h = load(engine)
    report = dashboard.report(engine, h.chain_id, Filters())
    today = replay(h, preset("marginx-today"))
    assert today.summary["liquidations"] == report["liquidations"] > 0
    assert today.summary["bad_debt_status_quo_usd"] == pytest.approx(report["socialized_debt_usd"], abs=1e-6)
    assert today.summary["bad_debt_proposed_usd"] == pytest.approx(report["socialized_debt_usd"], abs=1e-6)
    design = replay(h, preset("proposed"))
    assert design.summary["liquidations_absorbed"] > 0
    assert design.summary["bad_debt_proposed_usd"] <= today.summary["bad_debt_status_quo_usd"] + 1e-6
    assert design.per_market["symbol"].to_list() != [] and design.nav.height >= 24 * 6


def push_move(book: MarkBook, market: str, t0: float, t1: float, default: float) -> float:
    """The largest move of a market's mark from one oracle push to the next between t0 and t1 (from the
    last push before t0; ``default`` stands for the mark before the market's first push)."""
    series = book.series(market)
    if series is None:
        return 0.0
    ts, px = series
    a = max(int(np.searchsorted(ts, t0, side="right")) - 1, 0)
    b = int(np.searchsorted(ts, t1, side="right"))
    path = np.concatenate(([default], px[a:b]))
    return float(np.abs(np.diff(path)).max(initial=0.0))


@pytest.mark.parametrize("cap", ["per_liquidation_cap_usd", "daily_loss_cap_pct"])
def test_caps_bound_the_losses_of_a_simulated_history(simulated: str, cap: str) -> None:
    """The issue's laws on a simulated history: a takeover's all-in loss ≤ its cap + its size × one oracle
    push's move + its slippage; a day's NAV fall ≤ cap × NAV at its start + the day's takeovers × one push's
    move + the slippage paid."""
    h = load(db.make_engine(simulated, create=False))
    book = MarkBook(h.marks)
    p = preset("hyperliquid-hlp").with_overrides(**{cap: 500.0 if cap == "per_liquidation_cap_usd" else 0.02})
    r = replay(h, p)
    taken = r.liquidations.filter(pl.col("vault_size_taken") > 0)
    assert taken.height > 0
    uncapped = replay(h, preset("hyperliquid-hlp"))
    if cap == "per_liquidation_cap_usd":
        assert r.cap_hits["per_liquidation"] > 0
        for row in taken.iter_rows(named=True):
            t = float(row["takeover_ts"])
            move = push_move(book, row["market"], t, t + (p.unwind_hours + 1) * HOUR, row["notional"] / row["size"])
            assert -row["vault_pnl"] <= 500.0 + row["vault_size_taken"] * move + row["vault_slippage"] + 1e-6, row
        assert r.summary["worst_liquidation_loss_usd"] < uncapped.summary["worst_liquidation_loss_usd"]
        return
    midnights = r.nav.filter(pl.col("ts") % DAY == 0)
    for start, nav0 in midnights.select("ts", "nav_usd").iter_rows():
        end = r.nav.filter(pl.col("ts") == start + DAY)["nav_usd"]
        if end.len() == 0 or nav0 <= 0:
            continue
        day = taken.filter((pl.col("takeover_ts") >= start - p.unwind_hours * HOUR) & (pl.col("takeover_ts") < start + DAY))
        slack = sum(row["vault_size_taken"] * push_move(book, row["market"], start, start + DAY, row["notional"] / row["size"])
                    for row in day.iter_rows(named=True))
        assert nav0 - float(end[0]) <= 0.02 * nav0 + slack + float(day["vault_slippage"].sum()) + 1e-6, start
    assert r.summary["worst_day_loss_pct"] <= uncapped.summary["worst_day_loss_pct"] + 1e-9


def test_positions_latest_is_each_keys_last_update_by_plain_sql(simulated: str) -> None:
    """The rollup's open book (what stress tests read) against a plain SQL reading of every update."""
    engine = db.make_engine(simulated, create=False)
    with engine.connect() as conn:
        expected = {r[0]: tuple(r[1:]) for r in conn.execute(sa.text(
            "SELECT u.position_key, u.size, u.entry_price, u.collateral_usd, u.block_number, u.log_index "
            "FROM position_updates u JOIN (SELECT position_key, MAX(block_number * 100000 + log_index) AS k "
            "FROM position_updates GROUP BY position_key) m "
            "ON m.position_key = u.position_key AND m.k = u.block_number * 100000 + u.log_index"))}
        stored = {r[0]: tuple(r[1:]) for r in conn.execute(sa.text(
            "SELECT position_key, size, entry_price, collateral_usd, block_number, log_index FROM positions_latest"))}
    assert stored == expected
    assert any(r[0] == 0 for r in stored.values()) and any(r[0] > 0 for r in stored.values())  # closed and open
    assert open_positions(engine, load(engine).chain_id).height == sum(r[0] > 0 for r in stored.values())


def test_stress_shock_liquidates_open_positions_through_both_designs(simulated: str) -> None:
    engine = db.make_engine(simulated, create=False)
    h = load(engine)
    positions = open_positions(engine, h.chain_id)
    assert positions.height > 0 and (positions["size"] > 0).all()
    target = thin_market(h)
    assert target is not None
    insurance, backstop = dashboard.balances_before(engine, h.chain_id, None)
    status_quo, design = run_shock(h, positions, Shock(target, -0.6, minutes=10), preset("proposed"),
                                   backstop_usd=backstop, insurance_usd=insurance)
    longs = positions.filter((pl.col("market") == target) & pl.col("is_long")).height
    assert 0 < status_quo.summary["liquidations"] <= longs
    assert status_quo.summary["shortfall_usd"] == pytest.approx(design.summary["recorded_deficit_usd"])
    assert status_quo.summary["bad_debt_proposed_usd"] == pytest.approx(status_quo.summary["bad_debt_status_quo_usd"])
    if design.summary["shortfall_usd"] > 0:
        assert design.summary["liquidations_absorbed"] > 0


def test_book_legs_equal_sizes_exactly_in_chain_units(simulated: str) -> None:
    """Solvent positions are closed in full by the book (the simulator's rule): the reader's book leg,
    summed from the fills' raw integers, equals the size exactly, so none loses its healthy fee to dust."""
    engine = db.make_engine(simulated, create=False)
    h = load(engine)
    solvent = h.liquidations.filter(pl.col("equity") >= 0)
    assert solvent.height > 0 and (solvent["book_filled"] == solvent["size"]).all()
    with engine.connect() as conn:  # the stored float sum is what dust came from
        stored = dict(conn.execute(sa.text("SELECT tx_hash || ':' || log_index, book_filled_size FROM liquidations")).all())
    floats = solvent.with_columns(stored=pl.Series([stored[f"{t}:{i}"] for t, i in solvent.select("tx_hash", "log_index")
                                                     .iter_rows()]))
    assert (floats["stored"] - floats["size"]).abs().max() < 1e-9 * float(floats["size"].max())  # type: ignore[operator]
    fee = replay(h, VaultParams(vault_size_usd=1e6, healthy_liquidation_fee=0.01)).summary["fees_income_usd"]
    left = (solvent["equity"] - solvent["penalty_usd"]).clip(lower_bound=0)
    expected = pl.select(pl.min_horizontal(solvent["notional"] * 0.01, left)).to_series()
    assert fee == pytest.approx(float(expected.filter(solvent["equity"] > 0).sum()), rel=1e-12)
    assert h.liquidations["opened_ts"].null_count() == 0
    assert (h.liquidations["opened_ts"] < h.liquidations["ts"] + 1).all()
    # When each position last changed: the reader's one index seek per liquidation against the time of the
    # newest of its updates in an earlier block, found by ordering them (no MAX, no index needed).
    with engine.connect() as conn:
        newest = dict(conn.execute(sa.text(
            "SELECT l.tx_hash || ':' || l.log_index, (SELECT u.block_timestamp FROM position_updates u "
            "WHERE u.position_key = l.position_key AND u.block_number < l.block_number "
            "ORDER BY u.block_number DESC, u.log_index DESC LIMIT 1) FROM liquidations l")).all())
    got = {f"{t}:{i}": o for t, i, o in h.liquidations.select("tx_hash", "log_index", "opened_ts").iter_rows()}
    assert got == newest


def test_cli_prints_one_json_object_last_and_one_line_errors(simulated: str) -> None:
    run = [sys.executable, "-m", "core.vault", "--database-url", simulated]
    ok = subprocess.run([*run, "--preset", "hyperliquid-hlp", "--set", "vault_size_usd=1e6", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout.strip().splitlines()[-1])
    for key in ("final_nav_usd", "max_drawdown", "liquidation_pnl_usd", "fee_income_usd", "bad_debt_status_quo_usd",
                "bad_debt_proposed_usd", "liquidations_absorbed", "cap_hits", "shortfall_usd", "vault_absorbed_usd",
                "adl_usd", "backstop_usd", "insurance_usd", "socialized_usd", "unwind_pnl_usd", "slippage_usd",
                "kept_margin_usd", "fees_income_usd", "mm_income_usd", "performance_fees_usd",
                "worst_liquidation_loss_usd", "worst_day_loss_pct", "period_return", "apr", "sharpe"):
        assert key in out, key
    assert out["apr"] is None and out["sharpe"] is None and "30 days" in out["annualised_note"]  # a 6-day history
    assert out["vault_absorbed_usd"] + out["adl_usd"] + out["backstop_usd"] + out["insurance_usd"] \
        + out["socialized_usd"] == pytest.approx(out["shortfall_usd"], abs=1e-6)
    assert round(out["final_nav_usd"], 2) == round(nav_law({**out, "vault_size_usd": 1e6}), 2)
    assert set(out["cap_hits"]) == {"per_liquidation", "daily_loss", "market_budget", "utilization", "nav"}
    h = load(db.make_engine(simulated, create=False))
    first = dt.datetime.fromtimestamp(h.start, dt.timezone.utc).date()
    window = subprocess.run([*run, "--preset", "proposed", "--json", "--start", str(first + dt.timedelta(days=1)),
                             "--end", str(first + dt.timedelta(days=2))], capture_output=True, text=True, timeout=120)
    assert window.returncode == 0, window.stderr
    assert json.loads(window.stdout.strip().splitlines()[-1])["days"] == pytest.approx(2, abs=0.01)
    for args, needle in ((["--preset", "nope"], "unknown preset 'nope'"),
                         (["--set", "bogus=1"], "unknown vault parameter 'bogus'"),
                         (["--set", "vault_size_usd=lots"], "vault_size_usd must be a number"),
                         (["--set", "vault_size_usd"], "--set takes field=value"),
                         (["--set", "waterfall=vault>adl"], "waterfall orders"),
                         (["--start", "2026-13-01"], "dates are YYYY-MM-DD"),
                         (["--start", "2026-08-05", "--end", "2026-08-01"], "is before --start"),
                         (["--set", "performance_fee=2"], "performance_fee is a fraction")):
        bad = subprocess.run([*run, *args], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and bad.stdout == ""
        assert len(bad.stderr.strip().splitlines()) == 1 and needle in bad.stderr, bad.stderr


# --------------------------------------------------------------------------- the page


def test_vault_page_compares_two_designs_and_runs_sweep_stress_and_depositor(
        simulated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.apptest import open_app

    at = open_app(simulated, monkeypatch, "views/vault.py", {"range": "All"}, timeout=300)
    cards = {m.label: m.value for m in at.metric}
    # The cards are the engine's figures for the presets on the same history.
    engine = db.make_engine(simulated, create=False)
    h = load(engine)
    a, b = replay(h, preset("proposed")), replay(h, preset("hyperliquid-hlp"))
    assert cards["A: Final NAV"] == format_usd(a.summary["final_nav_usd"])
    assert cards["B: Final NAV"] == format_usd(b.summary["final_nav_usd"])
    assert cards["A: Liquidations absorbed"] == f"{a.summary['liquidations_absorbed']:,}"
    assert cards["A: APR"] == "n/a" and cards["A: Period return"] == f"{a.summary['period_return']:.1%}"  # 6 days
    assert any("Assumed" in c.value and "Recorded" in c.value for c in at.caption)
    charts = len(at.get("vega_lite_chart"))
    assert charts >= 5  # share price, drawdown, bad debt, cap hits, depositor

    # Design A back to the status quo: nothing absorbed, nothing avoided.
    at.selectbox(key="A_preset").set_value("marginx-today").run()
    cards = {m.label: m.value for m in at.metric}
    assert cards["A: Liquidations absorbed"] == "0" and cards["A: Bad debt avoided"] == format_usd(0.0)
    # An edited parameter is a what-if: a bigger HLP absorbs at least as much.
    at.number_input(key="B_vault_size_usd").set_value(50_000_000.0).run()
    assert not at.exception and not at.error
    bigger = replay(h, preset("hyperliquid-hlp").with_overrides(vault_size_usd=50_000_000.0))
    assert {m.label: m.value for m in at.metric}["B: Final NAV"] == format_usd(bigger.summary["final_nav_usd"])

    # The sweep (a heatmap) and the stress test appear on demand.
    at.selectbox(key="A_preset").set_value("proposed").run()
    at.text_input(key="sweep_xv").set_value("1000000, 3000000").run()
    at.text_input(key="sweep_yv").set_value("0.02, none").run()
    at.button(key="sweep_run").click().run()
    assert not at.exception and not at.error
    assert len(at.get("vega_lite_chart")) == charts + 1
    at.button(key="stress_run").click().run()
    assert not at.exception and not at.error
    stress = [d.value for d in at.dataframe if "figure" in d.value.columns]
    assert stress and stress[0]["figure"].to_list()[0] == "liquidations"
    # A bad sweep axis is one clear line, not a crash.
    at.text_input(key="sweep_xv").set_value("lots").run()
    assert [e.value for e in at.error] == ["Sweep: vault_size_usd must be a number, got 'lots'"]
