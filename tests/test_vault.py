"""The vault what-if engine: each waterfall branch on hand-computed cases, its laws as properties,
the return statistics on known series, and the replay of a simulated history read from a database."""

from __future__ import annotations

import dataclasses
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
from core.simulator import build_database
from core.vault import History, VaultParams, load, preset, replay, sweep
from core.vault.history import LIQUIDATION_SCHEMA, MarkBook, assemble, open_positions
from core.vault.params import PRESETS, ParamError, field_docs, parse_value
from core.vault.scenarios import Shock, run_shock, thin_market
from core.vault.stats import apr, depositor_path, drawdown, high_water_fees, max_drawdown, sharpe

DAY = 86_400
T0 = 1_790_000_000 // DAY * DAY  # a UTC midnight
BIG, THIN = "0xbig", "0xthin"
PLAIN = VaultParams(vault_size_usd=1_000.0, unwind_hours=0.0, slippage_coef=0.0, trigger_mm_fraction=1.0)


def liq(t: float = 3600, market: str = BIG, *, deficit: tuple[float, float, float, float] = (0, 0, 0, 0),
        size: float = 1.0, mark: float = 100.0, equity: float | None = None, book: float | None = None,
        adl_size: float = 0.0, long: bool = True, penalty: float = 0.0) -> dict[str, Any]:
    """One liquidation row; ``deficit`` = the recorded (ADL, backstop, insurance, socialized) tiers."""
    d = sum(deficit)
    return {"ts": int(T0 + t), "block_number": int(t), "log_index": 0, "tx_hash": f"0x{int(t):x}", "account": "0xa",
            "market": market, "is_long": long, "size": size, "mark": mark, "notional": size * mark,
            "equity": -d if equity is None else equity, "book_filled": size if book is None else book,
            "adl_size": adl_size, "adl_usd": deficit[0], "backstop_usd": deficit[1], "insurance_usd": deficit[2],
            "socialized_usd": deficit[3], "penalty_usd": penalty}


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


# --------------------------------------------------------------------------- waterfall branches


def test_without_a_vault_every_tier_is_as_recorded() -> None:
    h = history([liq(deficit=(30, 40, 20, 10)), liq(7200, deficit=(0, 5, 0, 0))])
    r = replay(h, preset("marginx-today"))
    assert tiers(r) == [(0, 30, 40, 20, 10), (0, 0, 5, 0, 0)]
    assert r.summary["bad_debt_proposed_usd"] == r.summary["bad_debt_status_quo_usd"] == 10
    assert r.summary["liquidations_absorbed"] == 0 and r.summary["final_nav_usd"] == 0


def test_vault_before_adl_takes_the_whole_residual() -> None:
    r = replay(history([liq(deficit=(30, 40, 20, 10))]), PLAIN)
    assert tiers(r) == [(100, 0, 0, 0, 0)]
    assert r.summary["liquidation_pnl_usd"] == -100 and r.summary["bad_debt_avoided_usd"] == 10
    assert r.summary["final_nav_usd"] == pytest.approx(900)


def test_vault_after_adl_leaves_the_recorded_adl_in_place() -> None:
    r = replay(history([liq(deficit=(30, 40, 20, 10))]), PLAIN.with_overrides(vault_before_adl=False))
    assert tiers(r) == [(70, 30, 0, 0, 0)]


def test_per_liquidation_cap_sends_the_rest_down_the_waterfall() -> None:
    r = replay(history([liq(deficit=(30, 40, 20, 10))]), PLAIN.with_overrides(per_liquidation_cap_usd=25.0))
    # 75 left: ADL takes its recorded 30, the backstop 40, the fund 5; nothing is socialized.
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


def test_trigger_decides_takeover_of_a_healthy_residual_and_the_margin_buffer_is_kept() -> None:
    # Equity 2 on notional 100: below 2/3 × 3% × 100 = 2 ⇒ no; equity 1.5 ⇒ taken over, buffer kept.
    p = PLAIN.with_overrides(trigger_mm_fraction=2 / 3)
    above = replay(history([liq(equity=2.0, book=0.5)]), p)
    below = replay(history([liq(equity=1.5, book=0.5)]), p)
    assert above.summary["liquidations_absorbed"] == 0
    assert below.summary["liquidations_absorbed"] == 1
    assert below.liquidations["vault_buffer"][0] == pytest.approx(0.75)  # half the size unfilled
    assert below.liquidations["vault_size_taken"][0] == pytest.approx(0.5)


def test_a_junior_insurance_fund_pays_before_the_vault() -> None:
    r = replay(history([liq(deficit=(30, 40, 20, 10))]), PLAIN.with_overrides(insurance_senior=False))
    assert tiers(r) == [(80, 0, 0, 20, 0)]


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
    assert r.summary["fee_income_usd"] == pytest.approx(1.0 + 0.2)


def test_market_making_income_is_credited_at_the_end_of_each_day() -> None:
    h = history([], volume={BIG: 3_000_000.0, THIN: 0.0}, fees=100.0, days=3)
    r = replay(h, PLAIN.with_overrides(mm_fee_share=0.5, mm_spread_capture=0.0001))
    per_day = 0.5 * 100 * 2 + 0.0001 * 1_000_000  # both markets' fees; BIG's volume
    assert r.summary["mm_income_usd"] == pytest.approx(3 * per_day)
    nav = r.nav
    assert nav.filter(pl.col("ts") == T0 + DAY - 3600)["nav_usd"][0] == pytest.approx(1000)
    assert nav.filter(pl.col("ts") == T0 + DAY)["nav_usd"][0] == pytest.approx(1000 + per_day)


def test_unwind_at_the_time_weighted_mark_less_square_root_slippage() -> None:
    # Long 1 unit taken at mark 100; marks 100 then 110 after 1 h of a 2 h unwind ⇒ TWAP 105.
    marks = [(BIG, float(T0), 100.0), (BIG, float(T0 + 3600 + 3600), 110.0)]
    row = liq(3600, deficit=(0, 0, 0, 10), book=0)
    p = PLAIN.with_overrides(unwind_hours=2.0, slippage_coef=0.1)
    r = replay(history([row], marks=marks, volume={BIG: 3 * 10_500.0, THIN: 1.0}), p)
    slip = 0.1 * math.sqrt(105 / 10_500) * 105
    assert r.liquidations["vault_unwind_pnl"][0] == pytest.approx(5 - slip)
    assert r.summary["liquidation_pnl_usd"] == pytest.approx(-10 + 5 - slip)


def test_losses_beyond_the_nav_at_exit_become_bad_debt_not_a_negative_balance() -> None:
    marks = [(BIG, float(T0), 100.0), (BIG, float(T0 + 3600 + 1), 1.0)]  # crashes right after takeover
    row = liq(3600, deficit=(0, 0, 0, 10), size=10, book=0)
    r = replay(history([row], marks=marks), PLAIN.with_overrides(vault_size_usd=100.0, unwind_hours=1.0))
    assert r.summary["vault_shortfall_usd"] > 0
    assert r.nav["nav_usd"].min() >= 0 and r.summary["final_nav_usd"] == pytest.approx(0, abs=1e-9)
    assert r.summary["bad_debt_proposed_usd"] == pytest.approx(r.summary["vault_shortfall_usd"])


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
        rows.append(liq(draw(st.integers(0, 3 * DAY - 1)) + i * 1e-3, draw(st.sampled_from([BIG, THIN])), deficit=d,
                        size=size, mark=mark, book=book, adl_size=min(size - book, draw(st.floats(0, 10))),
                        long=draw(st.booleans()), equity=draw(st.floats(0, 5)) if healthy else None,
                        penalty=draw(st.floats(0, 1))))
    walk = [(m, float(T0 + k * 1800), float(100 * (1 + 0.3 * math.sin(k * draw(st.floats(0.01, 1))))))
            for m in (BIG, THIN) for k in range(0, 3 * 48)]
    return history(rows, marks=walk)


limit = st.one_of(st.none(), st.floats(0, 0.5))
designs = st.builds(
    VaultParams, vault_size_usd=st.floats(0, 5_000), vault_before_adl=st.booleans(), insurance_senior=st.booleans(),
    trigger_mm_fraction=st.floats(0, 1), unwind_hours=st.floats(0, 12),
    slippage_coef=st.floats(0, 1), healthy_liquidation_fee=st.floats(0, 0.02), daily_loss_cap_pct=limit,
    per_market_daily_budget_pct=limit, thin_market_daily_budget_pct=limit,
    per_liquidation_cap_usd=st.one_of(st.none(), st.floats(0, 300)), max_utilization=st.one_of(st.none(), st.floats(0, 2)),
    mm_fee_share=st.floats(0, 1), mm_spread_capture=st.floats(0, 0.001), performance_fee=st.floats(0, 0.3))
laws = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@laws
@given(h=histories(), p=designs)
def test_value_is_conserved_and_no_balance_goes_negative(h: History, p: VaultParams) -> None:
    r = replay(h, p)
    L = r.liquidations
    s = r.summary
    paid = L["vault_loss"] + L["adl"] + L["backstop"] + L["insurance"] + L["socialized"]
    assert ((paid - L["deficit_usd"]).abs() <= 1e-6).all()
    # The form: the vault's liquidation loss (less the buffers it kept and its market PnL on the
    # unwind) + insurance draw + socialized + ADL (+ today's backstop vault) = Σ deficits.
    vault_loss = -(s["liquidation_pnl_usd"] - L["vault_buffer"].sum() - L["vault_unwind_pnl"].sum() - s["vault_shortfall_usd"])
    assert vault_loss + s["insurance_draw_usd"] + (s["bad_debt_proposed_usd"] - s["vault_shortfall_usd"]) + s["adl_usd"] \
        + s["backstop_usd"] == pytest.approx(s["deficit_usd"], abs=1e-6)
    for c in ("vault_loss", "adl", "backstop", "insurance", "socialized", "vault_size_taken"):
        assert (L[c] >= -1e-9).all(), c
    assert (r.nav["nav_usd"] >= -1e-9).all()
    # The fund never pays more than it recorded plus what it saved earlier.
    assert (L["insurance"].cum_sum() <= L["insurance_status_quo"].cum_sum() + 1e-6).all()
    assert (L["adl"] <= L["adl_status_quo"] + 1e-9).all() and (L["backstop"] <= L["backstop_status_quo"] + 1e-9).all()


@laws
@given(h=histories(), p=designs)
def test_no_vault_is_the_status_quo(h: History, p: VaultParams) -> None:
    r = replay(h, p.with_overrides(vault_size_usd=0.0))
    L = r.liquidations
    assert r.summary["liquidations_absorbed"] == 0 and (L["vault_loss"] == 0).all()
    for new, old in (("adl", "adl_status_quo"), ("backstop", "backstop_status_quo"),
                     ("insurance", "insurance_status_quo"), ("socialized", "socialized_status_quo")):
        assert ((L[new] - L[old]).abs() <= 1e-9).all(), new
    assert r.summary["bad_debt_proposed_usd"] == pytest.approx(r.summary["bad_debt_status_quo_usd"])


@laws
@given(h=histories(), before_adl=st.booleans(), senior=st.booleans())
def test_an_unlimited_vault_socializes_nothing(h: History, before_adl: bool, senior: bool) -> None:
    p = VaultParams(vault_size_usd=1e12, vault_before_adl=before_adl, insurance_senior=senior, trigger_mm_fraction=1.0)
    r = replay(h, p)
    assert r.summary["bad_debt_proposed_usd"] == pytest.approx(0, abs=1e-6)


@laws
@given(h=histories(), p=designs, which=st.sampled_from(["daily_loss_cap_pct", "per_market_daily_budget_pct",
                                                        "per_liquidation_cap_usd", "max_utilization"]))
def test_a_limit_at_zero_absorbs_nothing(h: History, p: VaultParams, which: str) -> None:
    changes: dict[str, Any] = {which: 0.0}
    if which == "per_market_daily_budget_pct":
        changes["thin_market_daily_budget_pct"] = None
    r = replay(h, p.with_overrides(**changes))
    assert (r.liquidations["vault_loss"] == 0).all()
    if which == "max_utilization":
        assert r.summary["liquidations_absorbed"] == 0


@laws
@given(h=histories(), p=designs, sizes=st.tuples(st.floats(0, 5_000), st.floats(0, 5_000)))
def test_a_larger_vault_never_increases_bad_debt(h: History, p: VaultParams, sizes: tuple[float, float]) -> None:
    small, large = sorted(sizes)
    # Other parameters fixed. The vault holds no market risk here (it closes at the takeover mark, without
    # slippage): with it, a larger vault taking more of a position that then loses can end with less capital
    # than a smaller one, and absorb less later (the README's methodology says so).
    p = p.with_overrides(unwind_hours=0.0, slippage_coef=0.0)
    bad_small = replay(h, p.with_overrides(vault_size_usd=small)).summary["bad_debt_proposed_usd"]
    bad_large = replay(h, p.with_overrides(vault_size_usd=large)).summary["bad_debt_proposed_usd"]
    assert bad_large <= bad_small + 1e-6


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
    assert parse_value("vault_before_adl", "false") is False
    with pytest.raises(ParamError, match="true or false"):
        parse_value("vault_before_adl", "maybe")
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
    assert status_quo.summary["deficit_usd"] == pytest.approx(design.summary["deficit_usd"])
    assert status_quo.summary["bad_debt_proposed_usd"] == pytest.approx(status_quo.summary["bad_debt_status_quo_usd"])
    if design.summary["deficit_usd"] > 0:
        assert design.summary["liquidations_absorbed"] > 0


def test_cli_prints_one_json_object_last_and_one_line_errors(simulated: str) -> None:
    run = [sys.executable, "-m", "core.vault", "--database-url", simulated]
    ok = subprocess.run([*run, "--preset", "hyperliquid-hlp", "--set", "vault_size_usd=1e6", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout.strip().splitlines()[-1])
    for key in ("final_nav_usd", "apr", "max_drawdown", "sharpe", "liquidation_pnl_usd", "fee_income_usd",
                "bad_debt_status_quo_usd", "bad_debt_proposed_usd", "liquidations_absorbed", "cap_hits"):
        assert key in out
    assert set(out["cap_hits"]) == {"per_liquidation", "daily_loss", "market_budget", "utilization", "nav"}
    for args, needle in ((["--preset", "nope"], "unknown preset 'nope'"),
                         (["--set", "bogus=1"], "unknown vault parameter 'bogus'"),
                         (["--set", "vault_size_usd=lots"], "vault_size_usd must be a number"),
                         (["--set", "vault_size_usd"], "--set takes field=value"),
                         (["--set", "performance_fee=2"], "performance_fee is a fraction")):
        bad = subprocess.run([*run, *args], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and bad.stdout == ""
        assert len(bad.stderr.strip().splitlines()) == 1 and needle in bad.stderr, bad.stderr


# --------------------------------------------------------------------------- the page


def test_vault_page_compares_two_designs_and_runs_sweep_stress_and_depositor(
        simulated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.apptest import open_app

    at = open_app(simulated, monkeypatch, "pages/vault.py", {"range": "All"}, timeout=300)
    cards = {m.label: m.value for m in at.metric}
    # The cards are the engine's figures for the presets on the same history.
    engine = db.make_engine(simulated, create=False)
    h = load(engine)
    a, b = replay(h, preset("proposed")), replay(h, preset("hyperliquid-hlp"))
    assert cards["A: Final NAV"] == format_usd(a.summary["final_nav_usd"])
    assert cards["B: Final NAV"] == format_usd(b.summary["final_nav_usd"])
    assert cards["A: Liquidations absorbed"] == f"{a.summary['liquidations_absorbed']:,}"
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
