"""Replay a history's liquidations through a vault design, and compare it with the status quo.

The replay walks the liquidations in chain order. A liquidation's book leg is as recorded. What it
leaves is the *residual*: the loss beyond the position's collateral at mark (its deficit, which the
chain's tiers ADL + BackstopVault + InsuranceFund + socialized debt covered) and the size the book
could not fill. The vault takes the residual when the trigger (equity < k × maintenance margin) and
every risk limit allow, partly when a limit binds, and the rest goes down the waterfall:

- ``vault_before_adl``:  vault → ADL → BackstopVault → InsuranceFund → socialized
- otherwise:             ADL → vault → BackstopVault → InsuranceFund → socialized
- a junior insurance fund pays just before the vault instead of after the BackstopVault.

ADL and today's BackstopVault absorb at most what they recorded for that liquidation (the
counterparties and capital that were there), so they only ever absorb less than they did; the
insurance fund at most what it recorded plus what it has saved so far. With no vault every tier is
exactly as recorded, and a vault can only take losses off the tiers below it: that is what makes
"no vault = status quo" and "a larger vault never adds bad debt" hold. (Folding today's BackstopVault
capital into the new vault is a matter of its size: ``vault_size_usd``.) Taking over at the bankruptcy price, the vault
books the deficit as a loss (or the margin left as a gain) and holds the residual size from the
recorded mark, closing it evenly over ``unwind_hours`` at the recorded marks (its time-weighted
average) less square-root slippage. Healthy liquidations pay the vault ``healthy_liquidation_fee``
out of the equity left after the recorded penalty; market making pays a share of each day's recorded
fees and a spread capture on its volume, credited at the day's end. Limits use the NAV at the start
of the UTC day (daily and per-market budgets) or now (cash, utilisation); a loss the vault cannot pay
from its NAV when a position closes becomes socialized debt, so no balance goes negative.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from core.vault import stats
from core.utc import DAY, HOUR
from core.vault.history import History, MarkBook
from core.vault.params import VaultParams

CAP_KINDS = ("per_liquidation", "daily_loss", "market_budget", "utilization", "nav")
TOLERANCE_USD = 1e-6


class ConservationError(AssertionError):
    """A replay broke one of the vault's laws (a bug, never a user error)."""


@dataclass(frozen=True)
class Result:
    """A replay's outcome: headline figures and the frames behind them."""

    params: VaultParams
    summary: dict[str, Any]
    nav: pl.DataFrame  # ts, nav_usd, share_price, drawdown (hourly; net of performance fees)
    liquidations: pl.DataFrame  # one row per liquidation with a residual: recorded vs replayed tiers
    per_market: pl.DataFrame
    worst: pl.DataFrame  # the vault's worst liquidations by PnL
    cap_hits: dict[str, int] = field(default_factory=dict)


def _sorted_income(times: np.ndarray, amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(times, kind="stable")
    return times[order], np.cumsum(amounts[order])


def _cum_at(ts: list[float], cum: list[float], t: float) -> float:
    """Cumulative income credited at or before t."""
    k = bisect.bisect_right(ts, t)
    return cum[k - 1] if k else 0.0


def _market_income(history: History, p: VaultParams) -> pl.DataFrame:
    """Per market and day: the market-making income credited at the day's end."""
    return history.daily.filter((pl.col("day") >= history.start) & (pl.col("day") < history.end)).select(
        "market", "day",
        (pl.col("fees_usd").clip(lower_bound=0) * p.mm_fee_share + pl.col("volume_usd") * p.mm_spread_capture)
        .alias("mm_income"))


def _healthy_fees(liq: pl.DataFrame, p: VaultParams) -> pl.Series:
    """The vault's fee on each liquidation closed by the book with equity left (0 elsewhere)."""
    deficit = liq["adl_usd"] + liq["backstop_usd"] + liq["insurance_usd"] + liq["socialized_usd"]
    healthy = (deficit <= 0) & (liq["book_filled"] >= liq["size"]) & (liq["equity"] > 0)
    left = (liq["equity"] - liq["penalty_usd"]).clip(lower_bound=0)
    fee = pl.select(pl.min_horizontal(liq["notional"] * p.healthy_liquidation_fee, left)).to_series()
    return pl.select(pl.when(healthy).then(fee).otherwise(0.0)).to_series().rename("vault_fee")


class Prepared:
    """The design-independent part of a replay (the liquidations with a residual, as Python lists, and
    exit prices per unwind horizon), computed once per history and shared by compare and sweep."""

    def __init__(self, history: History, marks: MarkBook | None = None) -> None:
        self.history = history
        self.marks = marks or MarkBook(history.marks)
        liq = history.liquidations
        mk = history.markets
        self.symbols = dict(zip(mk["market"].to_list(), mk["symbol"].to_list(), strict=True))
        self.share = dict(zip(mk["market"].to_list(), mk["volume_share"].to_list(), strict=True))
        days_seen = max(1.0, history.days)
        self.daily_volume = {m: float(v) / days_seen for m, v in zip(mk["market"].to_list(), mk["volume_usd"].to_list(),
                                                                     strict=True)}
        self.deficit_all = (liq["adl_usd"] + liq["backstop_usd"] + liq["insurance_usd"] + liq["socialized_usd"]).to_numpy()
        self.residual_all = np.clip(liq["size"].to_numpy() - liq["book_filled"].to_numpy(), 0, None)
        self.idx = np.flatnonzero((self.deficit_all > 0) | (self.residual_all > 0))
        self.work = liq[self.idx]
        w = self.work
        self.ts = w["ts"].to_numpy()
        self.mark = w["mark"].to_numpy()
        self.rows = list(zip(*(w[c].to_list() for c in ("ts", "market", "size", "equity", "notional", "adl_size",
                                                        "adl_usd", "backstop_usd", "insurance_usd", "socialized_usd",
                                                        "mark")),
                             [1.0 if x else -1.0 for x in w["is_long"].to_list()],
                             self.deficit_all[self.idx].tolist(), self.residual_all[self.idx].tolist(), strict=True))
        self._exit: dict[float, list[float]] = {}

    def exit_prices(self, hours: float) -> list[float]:
        """Each residual's exit price over an unwind of ``hours`` (its own mark when 0)."""
        if hours not in self._exit:
            px = self.mark.astype(float).copy()
            if hours > 0:
                mk = self.work["market"].to_numpy()
                for m in np.unique(mk) if len(mk) else []:
                    sel = mk == m
                    px[sel] = self.marks.twap(str(m), self.ts[sel].astype(float), self.ts[sel] + hours * HOUR,
                                              self.mark[sel])
            self._exit[hours] = px.tolist()
        return self._exit[hours]


def replay(history: History, p: VaultParams, *, marks: MarkBook | None = None,
           prepared: Prepared | None = None) -> Result:
    """Run ``history`` through design ``p`` (see the module docstring for the model)."""
    prep = prepared if prepared is not None and prepared.history is history else Prepared(history, marks)
    marks = prep.marks
    liq = history.liquidations
    symbols, share, daily_volume = prep.symbols, prep.share, prep.daily_volume

    # Income that does not depend on the vault's decisions: fees on healthy liquidations, market making.
    on = p.enabled
    fees = _healthy_fees(liq, p) if on else pl.Series("vault_fee", np.zeros(liq.height))
    mm = _market_income(history, p) if on else _market_income(history, p).clear()
    inc_ts_np, inc_cum_np = _sorted_income(
        np.concatenate([liq["ts"].to_numpy().astype(float), mm["day"].to_numpy().astype(float) + DAY]),
        np.concatenate([fees.to_numpy(), mm["mm_income"].to_numpy()]))
    inc_ts, inc_cum = inc_ts_np.tolist(), inc_cum_np.tolist()

    deficit_all, residual_all, idx, work = prep.deficit_all, prep.residual_all, prep.idx, prep.work
    n = work.height
    exit_px = prep.exit_prices(p.unwind_hours) if on else [0.0] * n

    out_vault = [0.0] * n
    out_buffer = [0.0] * n
    out_pos = [0.0] * n
    out_unwind = [0.0] * n
    out_adl = [0.0] * n
    out_bv = [0.0] * n
    out_if = [0.0] * n
    out_soc = [0.0] * n
    hits = dict.fromkeys(CAP_KINDS, 0)

    mm_k = p.trigger_mm_fraction * p.maintenance_margin
    initial = p.vault_size_usd
    realized = 0.0
    shortfall = 0.0
    exposure = 0.0
    savings = 0.0
    pending: list[tuple[float, int, float, float]] = []  # (exit time, row, pnl, notional)
    cur_day = -1
    nav0 = initial
    used_day = 0.0
    used_market: dict[str, float] = {}
    thin = {m: share.get(m, 0.0) < p.thin_market_volume_share for m in symbols}
    horizon = p.unwind_hours * HOUR

    def settle(until: float) -> None:
        nonlocal realized, exposure, shortfall
        while pending and pending[0][0] <= until:
            t_exit, _, pnl, notional = heapq.heappop(pending)
            nav_now = initial + _cum_at(inc_ts, inc_cum, t_exit) + realized
            if nav_now + pnl < 0:  # the vault cannot lose more than it has: the rest is bad debt
                shortfall += -(nav_now + pnl)
                pnl = -nav_now
            realized += pnl
            exposure = max(0.0, exposure - notional)

    for i, (t, m, size, eq, notional, adl_size, adl_rec, bv_rec, if_rec, soc_rec, mark_i, sign_i, deficit_i,
            residual_i) in enumerate(prep.rows):
        if not on:  # the status quo: the recorded tiers, exactly
            out_adl[i], out_bv[i], out_if[i], out_soc[i] = adl_rec, bv_rec, if_rec, soc_rec
            continue
        day = t // DAY * DAY
        if day != cur_day:
            settle(day)
            cur_day = day
            nav0 = initial + _cum_at(inc_ts, inc_cum, day) + realized
            used_day = 0.0
            used_market.clear()
        if pending:
            settle(t)
        rem = deficit_i
        R = residual_i
        adl_take = bv_take = if_take = 0.0
        if not p.vault_before_adl:
            adl_take = min(adl_rec, rem)
            rem -= adl_take
            R = max(0.0, R - adl_size)
        if not p.insurance_senior:
            if_take = min(if_rec + savings, rem)
            rem -= if_take
        if eq < mm_k * notional and (rem > 0 or R > 0):
            nav = initial + _cum_at(inc_ts, inc_cum, t) + realized
            ask = rem if p.takeover_at_bankruptcy else 0.0
            f = 1.0
            kind = None
            if ask > 0:
                budget = p.per_market_daily_budget_pct
                if thin[m] and p.thin_market_daily_budget_pct is not None:
                    budget = p.thin_market_daily_budget_pct
                caps = (("per_liquidation", p.per_liquidation_cap_usd),
                        ("daily_loss", None if p.daily_loss_cap_pct is None else p.daily_loss_cap_pct * nav0 - used_day),
                        ("market_budget", None if budget is None else budget * nav0 - used_market.get(m, 0.0)),
                        ("nav", nav))
                for name, cap in caps:
                    if cap is not None and cap < ask * f:
                        f = max(0.0, cap) / ask
                        kind = name
            if p.max_utilization is not None:
                need = R * mark_i
                room = p.max_utilization * nav - exposure
                if p.max_utilization <= 0 or nav <= 0:
                    f, kind = 0.0, "utilization"
                elif need > 0 and room < need * f:
                    f = max(0.0, room) / need
                    kind = "utilization"
            if kind is not None:
                hits[kind] += 1
            if f > 0:
                loss = f * ask
                pos = f * R
                buffer = f * max(eq, 0.0) * (R / size) if p.takeover_at_bankruptcy and size > 0 else 0.0
                out_vault[i] = loss
                out_buffer[i] = buffer
                out_pos[i] = pos
                realized += buffer - loss
                used_day += loss
                used_market[m] = used_market.get(m, 0.0) + loss
                rem -= loss
                if pos > 0:
                    exit_notional = pos * exit_px[i]
                    vol = daily_volume.get(m, 0.0)
                    slip = p.slippage_coef * math.sqrt(exit_notional / vol) * exit_notional if vol > 0 else 0.0
                    pnl = pos * (exit_px[i] - mark_i) * sign_i - slip
                    out_unwind[i] = pnl
                    exposure += pos * mark_i
                    heapq.heappush(pending, (t + horizon, i, pnl, pos * mark_i))
        if p.vault_before_adl:
            adl_take = min(adl_rec, rem)
            rem -= adl_take
        bv_take = min(bv_rec, rem)
        rem -= bv_take
        if p.insurance_senior:
            if_take = min(if_rec + savings, rem)
            rem -= if_take
        savings += if_rec - if_take
        # Float dust from the subtractions is not debt.
        out_adl[i], out_bv[i], out_if[i], out_soc[i] = adl_take, bv_take, if_take, rem if rem > 1e-9 else 0.0
    # Close what is still open (exits past the history's end use the last recorded marks).
    settle(math.inf)
    out_vault, out_buffer, out_pos, out_unwind, out_adl, out_bv, out_if, out_soc = (
        np.asarray(x, dtype=float) for x in (out_vault, out_buffer, out_pos, out_unwind, out_adl, out_bv, out_if, out_soc))
    # Shortfall at exits is bad debt too; the unwind PnL actually booked is what the NAV got.
    booked_unwind = float(out_unwind.sum()) + shortfall

    # ---- laws
    tiers = out_vault + out_adl + out_bv + out_if + out_soc
    if n and not np.allclose(tiers, deficit_all[idx], atol=TOLERANCE_USD, rtol=1e-12):
        raise ConservationError("vault + ADL + backstop + insurance + socialized differs from a liquidation's deficit")
    if min(out_vault.min(initial=0), out_adl.min(initial=0), out_bv.min(initial=0), out_if.min(initial=0),
           out_soc.min(initial=-0.0)) < -TOLERANCE_USD:
        raise ConservationError("a waterfall tier paid a negative amount")

    rows = work.select("ts", "block_number", "log_index", "tx_hash", "account", "market", "is_long", "size", "notional",
                       "equity").with_columns(
        symbol=pl.col("market").replace_strict(symbols, default=pl.col("market")),
        deficit_usd=pl.Series(deficit_all[idx]), residual_size=pl.Series(residual_all[idx]),
        adl_status_quo=work["adl_usd"], backstop_status_quo=work["backstop_usd"],
        insurance_status_quo=work["insurance_usd"], socialized_status_quo=work["socialized_usd"],
        vault_loss=pl.Series(out_vault), vault_buffer=pl.Series(out_buffer), vault_size_taken=pl.Series(out_pos),
        vault_unwind_pnl=pl.Series(out_unwind), adl=pl.Series(out_adl), backstop=pl.Series(out_bv),
        insurance=pl.Series(out_if), socialized=pl.Series(out_soc),
    ).with_columns(vault_pnl=pl.col("vault_buffer") - pl.col("vault_loss") + pl.col("vault_unwind_pnl"))

    nav = _nav_series(history, p, rows, inc_ts_np, inc_cum_np, marks)
    summary = _summary(history, p, liq, rows, fees, mm, nav, hits, booked_unwind, shortfall)
    per_market = _per_market(history, rows, liq.with_columns(fees), mm, symbols)
    worst = rows.filter(pl.col("vault_loss") + pl.col("vault_size_taken") > 0).sort("vault_pnl").head(10).select(
        "ts", "tx_hash", "account", "symbol", "is_long", "size", "deficit_usd", "vault_loss", "vault_buffer",
        "vault_unwind_pnl", "vault_pnl")
    return Result(params=p, summary=summary, nav=nav, liquidations=rows, per_market=per_market, worst=worst,
                  cap_hits={k: v for k, v in hits.items()})


def _nav_series(history: History, p: VaultParams, rows: pl.DataFrame, inc_ts: np.ndarray, inc_cum: np.ndarray,
                marks: MarkBook) -> pl.DataFrame:
    """Hourly NAV (realized + open positions marked to the recorded marks), net of performance fees."""
    last_exit = float(rows["ts"].max()) + p.unwind_hours * HOUR if rows.height else history.end
    end = max(history.end, int(math.ceil(last_exit / HOUR)) * HOUR)
    grid = np.arange(history.start, end + HOUR, HOUR, dtype=float)
    if not p.enabled:
        z = np.zeros(grid.size)
        return pl.DataFrame({"ts": grid.astype(np.int64), "nav_usd": z, "share_price": z, "drawdown": z,
                             "performance_fees_usd": z})
    k = np.searchsorted(inc_ts, grid, side="right")
    income = np.where(k > 0, inc_cum[np.clip(k - 1, 0, None)], 0.0) if inc_ts.size else np.zeros(grid.size)
    # Realized: absorption at the liquidation, unwind PnL at the exit.
    taken = rows.filter((pl.col("vault_loss") > 0) | (pl.col("vault_size_taken") > 0) | (pl.col("vault_buffer") > 0))
    t_in = taken["ts"].to_numpy().astype(float)
    t_out = t_in + p.unwind_hours * HOUR
    ev_t = np.concatenate([t_in, t_out])
    ev_v = np.concatenate([(taken["vault_buffer"] - taken["vault_loss"]).to_numpy(), taken["vault_unwind_pnl"].to_numpy()])
    order = np.argsort(ev_t, kind="stable")
    ev_t, ev_c = ev_t[order], np.cumsum(ev_v[order])
    k = np.searchsorted(ev_t, grid, side="right")
    realized = np.where(k > 0, ev_c[np.clip(k - 1, 0, None)], 0.0) if ev_t.size else np.zeros(grid.size)
    # Unrealized: open positions at each hour, marked at the last recorded mark.
    unreal = np.zeros(grid.size)
    held = taken.filter(pl.col("vault_size_taken") > 0)
    horizon = p.unwind_hours * HOUR
    for (market,), g in held.group_by(["market"]) if horizon > 0 else []:
        t0 = g["ts"].to_numpy().astype(float)
        entry = (g["notional"] / g["size"]).to_numpy()
        scale = g["vault_size_taken"].to_numpy() * np.where(g["is_long"].to_numpy(), 1.0, -1.0)
        lo = np.searchsorted(grid, t0, side="right")
        hi = np.searchsorted(grid, t0 + horizon, side="left")
        width = int((hi - lo).max(initial=0))
        if width <= 0:
            continue
        cell = lo[:, None] + np.arange(width)[None, :]  # the grid hours each position is open at
        live = cell < hi[:, None]
        cell = np.minimum(cell, grid.size - 1)
        at = grid[cell]
        px = marks.at(str(market), at.ravel(), np.repeat(entry, width)).reshape(at.shape)
        # Marked to the recorded mark, on the share not yet unwound (linear unwind).
        value = scale[:, None] * (px - entry[:, None]) * (1 - (at - t0[:, None]) / horizon)
        np.add.at(unreal, cell[live], value[live])
    gross = np.maximum(p.vault_size_usd + income + realized + unreal, 0.0)
    price_gross = gross / p.vault_size_usd
    # Performance fees at each day's close on the high-water mark, applied from then on.
    day_idx = ((grid - history.start) // DAY).astype(np.int64)
    closes = np.flatnonzero(np.r_[day_idx[1:] != day_idx[:-1], True])
    fee_close = stats.high_water_fees(price_gross[closes], p.performance_fee)
    fee_at = np.zeros(grid.size)
    if closes.size:
        j = np.searchsorted(closes, np.arange(grid.size), side="left") - 1  # the last close strictly before
        fee_at = np.where(j >= 0, fee_close[np.clip(j, 0, None)], 0.0)
    price = np.maximum(price_gross - fee_at, 0.0)  # fees already paid out cannot take it below zero
    return pl.DataFrame({"ts": grid.astype(np.int64), "nav_usd": price * p.vault_size_usd, "share_price": price,
                         "drawdown": stats.drawdown(price), "performance_fees_usd": fee_at * p.vault_size_usd})


def _summary(history: History, p: VaultParams, liq: pl.DataFrame, rows: pl.DataFrame, fees: pl.Series,
             mm: pl.DataFrame, nav: pl.DataFrame, hits: dict[str, int], booked_unwind: float,
             shortfall: float) -> dict[str, Any]:
    sq = float(liq["socialized_usd"].sum())
    proposed = float(rows["socialized"].sum()) + shortfall
    absorbed = rows.filter(pl.col("vault_loss") + pl.col("vault_size_taken") > 0)
    liq_pnl = float((rows["vault_buffer"] - rows["vault_loss"]).sum()) + booked_unwind
    fee_income = float(fees.sum())
    mm_income = float(mm["mm_income"].sum()) if mm.height else 0.0
    price = nav["share_price"].to_numpy()
    daily_close = nav.with_columns(day=(pl.col("ts") - history.start) // DAY).group_by("day").agg(
        pl.col("share_price").last()).sort("day")["share_price"].to_numpy()
    seconds = float(nav["ts"][-1] - nav["ts"][0]) if nav.height > 1 else 0.0
    final_nav = float(nav["nav_usd"][-1]) if nav.height else 0.0
    return {
        "vault_size_usd": p.vault_size_usd,
        "final_nav_usd": final_nav,
        "share_price": float(price[-1]) if price.size else 0.0,
        "apr": stats.apr(1.0, float(price[-1]), seconds) if p.enabled and price.size else 0.0,
        "max_drawdown": stats.max_drawdown(price) if p.enabled else 0.0,
        "sharpe": stats.sharpe(daily_close) if p.enabled else 0.0,
        "liquidation_pnl_usd": liq_pnl,
        "fee_income_usd": fee_income,
        "mm_income_usd": mm_income,
        "performance_fees_usd": float(nav["performance_fees_usd"][-1]) if nav.height else 0.0,
        "deficit_usd": float(rows["deficit_usd"].sum()),
        "vault_loss_absorbed_usd": float(rows["vault_loss"].sum()),
        "adl_usd": float(rows["adl"].sum()),
        "adl_status_quo_usd": float(rows["adl_status_quo"].sum()),
        "backstop_usd": float(rows["backstop"].sum()),
        "backstop_status_quo_usd": float(rows["backstop_status_quo"].sum()),
        "insurance_draw_usd": float(rows["insurance"].sum()),
        "insurance_draw_status_quo_usd": float(rows["insurance_status_quo"].sum()),
        "bad_debt_status_quo_usd": sq,
        "bad_debt_proposed_usd": proposed,
        "bad_debt_avoided_usd": sq - proposed,
        "vault_shortfall_usd": shortfall,
        "liquidations": liq.height,
        "liquidations_with_residual": rows.height,
        "liquidations_absorbed": absorbed.height,
        "cap_hits": dict(hits),
        "days": round(history.days, 3),
    }


def _per_market(history: History, rows: pl.DataFrame, liq: pl.DataFrame, mm: pl.DataFrame,
                symbols: dict[str, str]) -> pl.DataFrame:
    """Per market: liquidations, what the vault absorbed and earned, bad debt status quo vs replayed."""
    base = history.markets.select("market", "symbol")
    a = liq.group_by("market").agg(pl.len().alias("liquidations"), pl.col("vault_fee").sum().alias("fee_income_usd"),
                                   pl.col("socialized_usd").sum().alias("bad_debt_status_quo_usd"))
    b = rows.group_by("market").agg(
        (pl.col("vault_loss") + pl.col("vault_size_taken") > 0).sum().alias("absorbed"),
        pl.col("vault_loss").sum().alias("loss_absorbed_usd"), pl.col("vault_pnl").sum().alias("liquidation_pnl_usd"),
        pl.col("socialized").sum().alias("bad_debt_proposed_usd"))
    c = mm.group_by("market").agg(pl.col("mm_income").sum().alias("mm_income_usd"))
    out = base.join(a, on="market", how="left").join(b, on="market", how="left").join(c, on="market", how="left")
    out = out.with_columns(pl.exclude("market", "symbol").fill_null(0)).with_columns(
        (pl.col("liquidation_pnl_usd") + pl.col("fee_income_usd") + pl.col("mm_income_usd")).alias("vault_pnl_usd"),
        (pl.col("bad_debt_status_quo_usd") - pl.col("bad_debt_proposed_usd")).alias("bad_debt_avoided_usd"))
    return out.sort("vault_pnl_usd")


def compare(history: History, a: VaultParams, b: VaultParams) -> tuple[Result, Result]:
    """Two designs on the same history (the marks are indexed once)."""
    prep = Prepared(history)
    return replay(history, a, prepared=prep), replay(history, b, prepared=prep)


SWEEP_COLUMNS = ("final_nav_usd", "apr", "max_drawdown", "sharpe", "liquidation_pnl_usd", "bad_debt_proposed_usd",
                 "bad_debt_avoided_usd", "liquidations_absorbed")


def sweep(history: History, base: VaultParams, x: tuple[str, Sequence[Any]], y: tuple[str, Sequence[Any]]) -> pl.DataFrame:
    """Every combination of two parameters' values on ``base``: one row of outcomes each."""
    prep = Prepared(history)
    out: list[dict[str, Any]] = []
    for vx, vy in itertools.product(x[1], y[1]):
        r = replay(history, base.with_overrides(**{x[0]: vx, y[0]: vy}), prepared=prep)
        out.append({x[0]: vx, y[0]: vy, **{k: r.summary[k] for k in SWEEP_COLUMNS},
                    "cap_hits": sum(r.cap_hits.values())})
    return pl.DataFrame(out)
