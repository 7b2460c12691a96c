"""Replay a history's liquidations through a vault design, and compare it with the status quo.

The model (each step is one method of :class:`core.vault.book.VaultBook`):

- **Waterfall.** ``waterfall`` orders the tiers; seed 001 §3.2's is book → ADL → vault → (today's
  BackstopVault) → insurance fund → socialized. The book leg is as recorded; ADL, today's BackstopVault
  and the insurance fund absorb at most what they recorded (the fund also what the vault saved it
  earlier); what is left is socialized. With no vault every tier is exactly as recorded.
- **Takeover.** With the vault after the book it takes what the tiers before it leave — the size the
  book (and ADL) could not close and the loss beyond the collateral — at the bankruptcy price, when the
  position's equity at its liquidation is below k × maintenance margin. With the vault first
  (Hyperliquid, Lighter) it takes the whole position at the first mark where the trigger is crossed:
  the position's equity is reconstructed from PositionLiquidated's size, entry price and collateral
  along the recorded marks since the position last changed, and the vault keeps the equity left
  (the margin buffer) or absorbs the deficit; the recorded liquidation then happens only to the part
  a limit did not let it take.
- **Holding and unwinding.** A takeover closes evenly over ``unwind_hours`` at the recorded marks,
  marked and realised every hour; slippage is the square-root law on the vault's net closes per market
  over its current unwind, against the market's average daily volume.
- **Limits.** Every loss of a takeover — absorbed at takeover, and while held and unwound — counts
  against the per-liquidation cap, the day's cap (× NAV at the UTC day's start) and its market's daily
  budget; a takeover is cut to what the limits allow, and the limits are checked at every recorded
  oracle push (PriceUpdated) of a market the vault holds, not only at the hourly marks: at the first
  push where holding further would breach one, the vault closes the rest at once at that push's mark and
  pays that close's slippage. (Which hours need their pushes walked is decided from each hour's lowest and
  highest push, precomputed per history: an hour where even the most adverse push breaches nothing is
  skipped.) So a takeover loses at most its cap, plus its size × one push interval's move, plus that
  close's slippage. Utilisation limits open notional vs
  NAV; a loss the vault cannot pay (NAV at 0) is bad debt.
- **Income and fees.** The vault's fee on healthy book liquidations (from the equity left after the
  recorded penalty), market making (a share of each day's fees and a spread capture on its volume,
  credited at the day's end); a performance fee at each UTC midnight on the share price above the
  high-water mark, which starts at 1.0 at inception.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import multiprocessing as mp
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from core.utc import DAY, HOUR
from core.vault import stats
from core.vault.book import CAP_KINDS, Liq, Outcome, VaultBook
from core.vault.history import History, MarkBook
from core.vault.params import VaultParams

TOLERANCE_USD = 1e-6
#: APR and Sharpe need at least this many daily points; shorter windows show the period return only.
MIN_DAYS_ANNUALISED = 30

__all__ = ["CAP_KINDS", "MIN_DAYS_ANNUALISED", "ConservationError", "Prepared", "Result", "compare", "replay", "sweep"]


class ConservationError(AssertionError):
    """A replay broke one of the vault's laws (a bug, never a user error)."""


@dataclass(frozen=True)
class Result:
    """A replay's outcome: headline figures and the frames behind them."""

    params: VaultParams
    summary: dict[str, Any]
    nav: pl.DataFrame  # ts, nav_usd, share_price, drawdown, performance_fees_usd (hourly)
    liquidations: pl.DataFrame  # one row per liquidation the design touched: recorded vs replayed tiers
    per_market: pl.DataFrame
    worst: pl.DataFrame  # the vault's worst takeovers by all-in PnL
    cap_hits: dict[str, int] = field(default_factory=dict)


class Prepared:
    """The design-independent part of a replay, computed once per history and shared by compare and
    sweep: the liquidations as :class:`Liq` rows, each market's marks on the hourly grid, and the
    trigger crossings per (k, maintenance margin)."""

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
        self.deficit = (liq["adl_usd"] + liq["backstop_usd"] + liq["insurance_usd"] + liq["socialized_usd"]).to_numpy()
        # Book legs and sizes compare exactly (core.read.history rebuilds book_filled from raw integers).
        self.residual = np.where(liq["book_filled"].to_numpy() >= liq["size"].to_numpy(), 0.0,
                                 liq["size"].to_numpy() - liq["book_filled"].to_numpy())
        self.sign = np.where(liq["is_long"].to_numpy(), 1.0, -1.0)
        self.cols = {c: liq[c].to_numpy() for c in ("ts", "size", "mark", "notional", "equity", "entry_price",
                                                    "collateral", "adl_size", "adl_usd", "backstop_usd",
                                                    "insurance_usd", "socialized_usd", "penalty_usd")}
        self.opened = liq["opened_ts"].fill_null(-1).to_numpy()
        self.market = liq["market"].to_list()
        self.touched = np.flatnonzero((self.deficit > 0) | (self.residual > 0))
        self._crossings: dict[tuple[float, float], dict[int, tuple[float, float, float]]] = {}
        self._grid_marks: dict[tuple[int, int], tuple[dict[str, list[float]], dict[str, list[float]],
                                                      dict[str, list[float]]]] = {}
        self._pushes: dict[str, tuple[list[float], list[float]]] = {}
        self._liqs: dict[int, Liq] = {}

    def healthy_fees(self, rate: float) -> np.ndarray:
        """The vault's fee on each liquidation the book closed with equity left (0 elsewhere)."""
        c = self.cols
        healthy = (self.deficit <= 0) & (self.residual <= 0) & (c["equity"] > 0)
        left = np.clip(c["equity"] - c["penalty_usd"], 0, None)
        return np.where(healthy, np.minimum(c["notional"] * rate, left), 0.0)

    def crossings(self, k: float, mm: float) -> dict[int, tuple[float, float, float]]:
        """Per liquidation whose trigger (equity < k × mm × notional) was crossed: (time, mark, equity)
        at the first such mark since its position last changed, the liquidation itself included."""
        key = (k, mm)
        if key not in self._crossings:
            c = self.cols
            at_liq = np.flatnonzero(c["equity"] < k * mm * c["notional"])
            out = {int(i): (float(c["ts"][i]), float(c["mark"][i]), float(c["equity"][i])) for i in at_liq}
            out.update(self._earlier_crossings(k * mm))
            self._crossings[key] = out
        return self._crossings[key]

    def _earlier_crossings(self, threshold: float) -> dict[int, tuple[float, float, float]]:
        """The first recorded mark in [opened, liquidation) where a position's reconstructed equity
        C + s·n·(M − E) falls below threshold × n × M: for a long, M < (n·E − C) / (n·(1 − threshold));
        for a short, M > (C + n·E) / (n·(1 + threshold)). Found for every position at once by bisection
        on range minima / maxima of each market's marks."""
        out: dict[int, tuple[float, float, float]] = {}
        c = self.cols
        markets = np.array(self.market, dtype=object)
        for m in set(self.market):
            series = self.marks.series(m)
            rows = np.flatnonzero((markets == m) & (self.opened >= 0) & (c["size"] > 0))
            if series is None or rows.size == 0 or threshold >= 1:
                continue
            ts, px = series
            lo = np.searchsorted(ts, self.opened[rows], side="left")
            hi = np.searchsorted(ts, c["ts"][rows], side="left")
            n, entry, coll, long_ = c["size"][rows], c["entry_price"][rows], c["collateral"][rows], self.sign[rows] > 0
            bound = np.where(long_, (n * entry - coll) / (n * (1 - threshold)), (coll + n * entry) / (n * (1 + threshold)))
            # Crossing in [lo, e) means min(−px) > −bound for a long (px < bound), max(px) > bound for a short.
            flipped = np.where(long_, -1.0, 1.0)
            table = _RangeMax(px), _RangeMax(-px)
            hit = _crossed(table, lo, hi, hi, flipped, bound)
            first = _bisect(table, lo, hi, flipped, bound, hit)
            for r, j in zip(rows[hit].tolist(), first[hit].tolist(), strict=True):
                out[r] = (float(ts[j]), float(px[j]), float(c["collateral"][r] + self.sign[r] * c["size"][r]
                                                            * (px[j] - c["entry_price"][r])))
        return out

    def liq(self, i: int) -> Liq:
        got = self._liqs.get(i)
        if got is None:
            c = self.cols
            got = self._liqs[i] = Liq(
                i, int(c["ts"][i]), self.market[i], float(self.sign[i]), float(c["size"][i]), float(c["mark"][i]),
                float(c["equity"][i]), float(self.residual[i]), float(c["adl_size"][i]), float(c["adl_usd"][i]),
                float(c["backstop_usd"][i]), float(c["insurance_usd"][i]), float(c["socialized_usd"][i]),
                float(self.deficit[i]))
        return got

    def grid_marks(self, grid: np.ndarray) -> dict[str, list[float]]:
        """Each market's last recorded mark at each grid hour (NaN before its first mark)."""
        return self._grid(grid)[0]

    def hour_ranges(self, grid: np.ndarray) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """Per market and grid hour h: the lowest and highest oracle push strictly between grid[h] and
        grid[h + 1] (+inf / −inf when there is none)."""
        got = self._grid(grid)
        return got[1], got[2]

    def pushes(self, market: str) -> tuple[list[float], list[float]]:
        """A market's oracle pushes (times, marks) as lists, for the walk between hourly marks."""
        got = self._pushes.get(market)
        if got is None:
            series = self.marks.series(market)
            got = self._pushes[market] = ([], []) if series is None else (series[0].tolist(), series[1].tolist())
        return got

    def _grid(self, grid: np.ndarray) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
        key = (int(grid[0]), grid.size)
        if key not in self._grid_marks:
            nan = np.full(grid.size, np.nan)
            at = {m: self.marks.at(m, grid, nan).tolist() for m in self.symbols}
            lows: dict[str, list[float]] = {}
            highs: dict[str, list[float]] = {}
            for m in self.symbols:
                series = self.marks.series(m)
                if series is None:
                    lows[m], highs[m] = [math.inf] * grid.size, [-math.inf] * grid.size
                    continue
                ts, px = series
                lo = np.searchsorted(ts, grid, side="right")
                hi = np.append(np.searchsorted(ts, grid[1:], side="left"), lo[-1])
                hi = np.maximum(hi, lo)
                lows[m] = (-_RangeMax(-px)(lo, hi)).tolist()
                highs[m] = _RangeMax(px)(lo, hi).tolist()
            self._grid_marks[key] = (at, lows, highs)
        return self._grid_marks[key]


class _RangeMax:
    """Sparse table: the maximum of ``values[a:b]`` in O(1), for many ranges at once."""

    def __init__(self, values: np.ndarray) -> None:
        self.levels = [values]
        k = 1
        while 2 * k <= values.size:
            prev = self.levels[-1]
            self.levels.append(np.maximum(prev[:-k], prev[k:]))
            k *= 2

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """max(values[a:b]) for each pair (−inf where b ≤ a)."""
        span = np.maximum(b - a, 1)
        level = np.floor(np.log2(span)).astype(np.int64)
        out = np.full(a.shape, -np.inf)
        for j in np.unique(level[b > a]):
            sel = (level == j) & (b > a)
            table = self.levels[j]
            out[sel] = np.maximum(table[a[sel]], table[b[sel] - (1 << int(j))])
        return out


def _crossed(tables: tuple[_RangeMax, _RangeMax], lo: np.ndarray, hi: np.ndarray, end: np.ndarray,
             flipped: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Whether marks[lo:end] cross each bound (above it for shorts, below it for longs)."""
    up, down = tables
    return np.where(flipped > 0, up(lo, end) > bound, down(lo, end) > -bound) & (end > lo) & (hi > lo)


def _bisect(tables: tuple[_RangeMax, _RangeMax], lo: np.ndarray, hi: np.ndarray, flipped: np.ndarray,
            bound: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """The first index in [lo, hi) where the bound is crossed, where ``hit`` says one is."""
    left, right = lo.copy(), hi.copy()  # invariant: crossed within [lo, right), not within [lo, left)
    while True:
        open_ = hit & (right - left > 1)
        if not open_.any():
            return np.where(hit, right - 1, lo)
        mid = (left + right) // 2
        yes = _crossed(tables, lo, hi, mid, flipped, bound)
        right = np.where(open_ & yes, mid, right)
        left = np.where(open_ & ~yes, mid, left)


def _market_income(history: History, p: VaultParams) -> pl.DataFrame:
    """Per market and day: the market-making income credited at the day's end."""
    return history.daily.filter((pl.col("day") >= history.start) & (pl.col("day") < history.end)).select(
        "market", "day",
        (pl.col("fees_usd").clip(lower_bound=0) * p.mm_fee_share + pl.col("volume_usd") * p.mm_spread_capture)
        .alias("mm_income"))


class _Income:
    """Income that does not depend on the vault's decisions, as a step function of time."""

    def __init__(self, times: np.ndarray, amounts: np.ndarray) -> None:
        order = np.argsort(times, kind="stable")
        self.ts = times[order].astype(float)
        self.cum = np.cumsum(amounts[order])
        self._ts, self._cum = self.ts.tolist(), self.cum.tolist()  # scalar look-ups: bisect on lists

    def __call__(self, t: float) -> float:
        k = bisect.bisect_right(self._ts, t)
        return float(self._cum[k - 1]) if k else 0.0

    def at(self, grid: np.ndarray) -> np.ndarray:
        k = np.searchsorted(self.ts, grid, side="right")
        return np.where(k > 0, self.cum[np.clip(k - 1, 0, None)], 0.0) if self.ts.size else np.zeros(grid.size)


def _candidates(prep: Prepared, p: VaultParams) -> tuple[list[int], dict[int, tuple[float, float, float]]]:
    """The liquidations the design walks one by one (the rest are healthy book closes), in the order
    it acts on them, with their trigger crossings."""
    crossed = prep.crossings(p.trigger_mm_fraction, p.maintenance_margin)
    rows = set(prep.touched.tolist())
    if p.takes_over_first:
        rows |= set(crossed)
    act = {i: crossed[i][0] if p.takes_over_first and i in crossed else float(prep.cols["ts"][i]) for i in rows}
    return sorted(rows, key=lambda i: (act[i], i)), crossed


def replay(history: History, p: VaultParams, *, marks: MarkBook | None = None,
           prepared: Prepared | None = None) -> Result:
    """Run ``history`` through design ``p`` (see the module docstring for the model)."""
    prep = prepared if prepared is not None and prepared.history is history else Prepared(history, marks)
    liq = history.liquidations
    fees = prep.healthy_fees(p.healthy_liquidation_fee) if p.enabled else np.zeros(liq.height)
    mm = _market_income(history, p) if p.enabled else _market_income(history, p).clear()
    if not p.enabled:
        return _status_quo(history, p, prep, mm)
    order, crossed = _candidates(prep, p)
    walked = np.zeros(liq.height, dtype=bool)
    walked[order] = True
    income = _Income(np.concatenate([prep.cols["ts"][~walked].astype(float), mm["day"].to_numpy().astype(float) + DAY]),
                     np.concatenate([fees[~walked], mm["mm_income"].to_numpy()]))
    thin = {m: prep.share.get(m, 0.0) < p.thin_market_volume_share for m in prep.symbols}
    book = VaultBook(p, income, prep.daily_volume, thin)
    last = max([history.end, *(prep.cols["ts"][i] for i in order[-1:])]) + p.unwind_hours * HOUR
    grid = np.arange(history.start, math.ceil(last / HOUR) * HOUR + 2 * HOUR, HOUR, dtype=float)
    px = prep.grid_marks(grid)
    book.lows, book.highs = prep.hour_ranges(grid)
    unreal = np.zeros(grid.size)
    fee_cum = np.zeros(grid.size)
    ts = prep.cols["ts"]
    act = [crossed[i][0] if p.takes_over_first and i in crossed else float(ts[i]) for i in order]
    fee_of = fees.tolist()
    j, n = 0, len(order)
    prev = -math.inf
    for h, g in enumerate(grid.tolist()):
        # Between the hourly marks: the liquidations in time order, and every oracle push while a limit
        # could be breached before the next mark.
        cursor = prev
        while j < n and act[j] < g:
            if book.watching:
                _walk(book, prep, cursor, act[j], True)
            watching = book.watching
            i = order[j]
            book.settle(prep.liq(i), act[j], crossed.get(i), fee_of[i])
            cursor = act[j]
            j += 1
            if book.watching and not watching:  # marks since the last hour, as the pushes would have set them
                book.mark({m: _mark_at(prep, m, cursor) for m in {tk.market for tk in book.open}})
        if book.watching:
            _walk(book, prep, cursor, g, False)
        if book.open:
            book.step(g, {m: px[m][h] for m in {tk.market for tk in book.open}})
            unreal[h] = book.open_value()
        if g % DAY == 0:
            book.close_day(g)
        fee_cum[h] = book.performance_fees
        book.watch(h, g)
        prev = g
    if book.open:
        raise ConservationError("a takeover was still open at the end of the replay's grid")
    nav_usd = book.cash_at(grid) + income.at(grid) + unreal
    nav = _nav_frame(grid, nav_usd, p, fee_cum)
    rows = _rows(prep, order, book.outcomes)
    _check(rows, nav)
    summary = _summary(history, p, prep, rows, fees[~walked], mm, nav, book)
    per_market = _per_market(history, rows, liq.with_columns(vault_fee=pl.Series(np.where(walked, 0.0, fees))), mm)
    worst = rows.filter(pl.col("vault_size_taken") + pl.col("vault_loss") > 0).sort("vault_pnl").head(10).select(
        "ts", "tx_hash", "account", "symbol", "is_long", "size", "deficit_usd", "vault_loss", "vault_buffer",
        "vault_unwind_pnl", "vault_slippage", "vault_pnl", "forced_close")
    return Result(params=p, summary=summary, nav=nav, liquidations=rows, per_market=per_market, worst=worst,
                  cap_hits=dict(book.hits))


def _mark_at(prep: Prepared, market: str, t: float) -> float:
    """The market's last push at or before ``t`` (NaN before its first)."""
    ts, px = prep.pushes(market)
    k = bisect.bisect_right(ts, t)
    return px[k - 1] if k else math.nan


def _walk(book: VaultBook, prep: Prepared, t0: float, t1: float, inclusive: bool) -> None:
    """Hand the book every push of a market it holds in (t0, t1) (t1 included if ``inclusive``), in time order."""
    events: list[tuple[float, str, float]] = []
    for m in {tk.market for tk in book.open}:
        ts, px = prep.pushes(m)
        a = bisect.bisect_right(ts, t0)
        b = bisect.bisect_right(ts, t1) if inclusive else bisect.bisect_left(ts, t1)
        events.extend(zip(ts[a:b], itertools.repeat(m), px[a:b]))
    events.sort()
    for t, m, price in events:
        if not book.open:
            return
        book.push(t, m, price)


def _nav_frame(grid: np.ndarray, nav_usd: np.ndarray, p: VaultParams, fee_cum: np.ndarray) -> pl.DataFrame:
    price = nav_usd / p.vault_size_usd if p.enabled else np.zeros(grid.size)
    return pl.DataFrame({"ts": grid.astype(np.int64), "nav_usd": nav_usd, "share_price": price,
                         "drawdown": stats.drawdown(price), "performance_fees_usd": fee_cum})


def _rows(prep: Prepared, order: list[int], outcomes: dict[int, Outcome]) -> pl.DataFrame:
    """One row per walked liquidation: recorded tiers beside the design's."""
    idx = sorted(order)
    w = prep.history.liquidations[idx]
    o = [outcomes.get(i, Outcome()) for i in idx]

    def col(name: str) -> pl.Series:
        return pl.Series(np.fromiter((getattr(x, name) for x in o), dtype=np.float64, count=len(o)))

    return w.select("ts", "block_number", "log_index", "tx_hash", "account", "market", "is_long", "size", "notional",
                    "equity").with_columns(
        symbol=pl.col("market").replace_strict(prep.symbols, default=pl.col("market")),
        recorded_deficit_usd=pl.Series(prep.deficit[idx]), residual_size=pl.Series(prep.residual[idx]),
        adl_status_quo=w["adl_usd"], backstop_status_quo=w["backstop_usd"], insurance_status_quo=w["insurance_usd"],
        socialized_status_quo=w["socialized_usd"], deficit_usd=col("deficit"), vault_loss=col("vault"),
        vault_buffer=col("kept"), vault_size_taken=col("taken_size"), vault_unwind_pnl=col("unwind_pnl"),
        vault_slippage=col("slippage"), vault_fee=col("fee"), vault_pnl=col("pnl"), adl=col("adl"),
        backstop=col("backstop"), insurance=col("insurance"), socialized=col("socialized"),
        takeover_ts=pl.Series(np.fromiter((x.takeover_ts for x in o), dtype=np.int64, count=len(o))),
        forced_close=pl.Series([x.forced for x in o], dtype=pl.String()))


def _check(rows: pl.DataFrame, nav: pl.DataFrame) -> None:
    """The laws every replay keeps (a failure is a bug)."""
    tiers = rows["vault_loss"] + rows["adl"] + rows["backstop"] + rows["insurance"] + rows["socialized"]
    if rows.height and not np.allclose(tiers.to_numpy(), rows["deficit_usd"].to_numpy(), atol=TOLERANCE_USD, rtol=1e-12):
        raise ConservationError("vault + ADL + backstop + insurance + socialized differs from a liquidation's deficit")
    for c in ("vault_loss", "adl", "backstop", "insurance", "socialized", "vault_size_taken"):
        if rows.height and float(rows[c].min()) < -TOLERANCE_USD:  # type: ignore[arg-type]
            raise ConservationError(f"a waterfall tier ({c}) paid a negative amount")
    if nav.height and float(nav["nav_usd"].min()) < -TOLERANCE_USD:  # type: ignore[arg-type]
        raise ConservationError("the vault's NAV went below zero")


def _status_quo(history: History, p: VaultParams, prep: Prepared, mm: pl.DataFrame) -> Result:
    """No vault: every tier exactly as recorded."""
    outcomes = {int(i): Outcome(deficit=float(prep.deficit[i]), adl=float(prep.cols["adl_usd"][i]),
                                backstop=float(prep.cols["backstop_usd"][i]),
                                insurance=float(prep.cols["insurance_usd"][i]),
                                socialized=float(prep.cols["socialized_usd"][i])) for i in prep.touched}
    rows = _rows(prep, sorted(outcomes), outcomes)
    grid = np.arange(history.start, history.end + HOUR, HOUR, dtype=float)
    zero = np.zeros(grid.size)
    nav = _nav_frame(grid, zero, p, zero)
    book = VaultBook(p, lambda t: 0.0, prep.daily_volume, {})
    summary = _summary(history, p, prep, rows, np.zeros(0), mm, nav, book)
    liq = history.liquidations.with_columns(vault_fee=pl.lit(0.0))
    return Result(params=p, summary=summary, nav=nav, liquidations=rows,
                  per_market=_per_market(history, rows, liq, mm), worst=rows.head(0).select("ts"),
                  cap_hits=dict(book.hits))


def _returns(history: History, p: VaultParams, nav: pl.DataFrame, wiped: bool) -> dict[str, Any]:
    """Period return, drawdown, the worst day, and APR/Sharpe only over ≥ 30 daily points (Sharpe not
    at all once the NAV reached zero: returns on what is left are not the depositors')."""
    if not p.enabled or nav.height == 0:
        return {"period_return": 0.0, "apr": None, "sharpe": None, "max_drawdown": 0.0, "worst_day_loss_pct": 0.0,
                "annualised_note": "no vault"}
    price = nav["share_price"].to_numpy()
    midnights = nav.filter(pl.col("ts") % DAY == 0)["nav_usd"].to_numpy()
    closes = np.append(midnights, float(nav["nav_usd"][-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        falls = np.where(closes[:-1] > 0, (closes[:-1] - closes[1:]) / closes[:-1], 0.0)
    days = history.days
    enough = days >= MIN_DAYS_ANNUALISED
    period = float(price[-1]) - 1.0
    return {
        "period_return": period,
        "apr": period * 365.0 / days if enough else None,
        "sharpe": stats.sharpe(closes / p.vault_size_usd) if enough and not wiped else None,
        "max_drawdown": stats.max_drawdown(price),
        "worst_day_loss_pct": float(max(0.0, falls.max(initial=0.0))),
        "annualised_note": (f"APR and Sharpe need ≥ {MIN_DAYS_ANNUALISED} days of daily points; this window has "
                            f"{days:.1f}") if not enough else "Sharpe: n/a, the vault's NAV reached zero" if wiped else "",
    }


def _summary(history: History, p: VaultParams, prep: Prepared, rows: pl.DataFrame, book_fees: np.ndarray,
             mm: pl.DataFrame, nav: pl.DataFrame, book: VaultBook) -> dict[str, Any]:
    liq = history.liquidations

    def total(c: str) -> float:
        return float(rows[c].sum()) if rows.height else 0.0

    status_quo = float(liq["socialized_usd"].sum())
    proposed = total("socialized") + book.vault_bad_debt
    fees = float(book_fees.sum()) + book.fee_income
    taken = rows.filter(pl.col("vault_size_taken") + pl.col("vault_loss") + pl.col("vault_buffer") > 0)
    liq_pnl = total("vault_buffer") - total("vault_loss") + total("vault_unwind_pnl") - total("vault_slippage")
    return {
        "vault_size_usd": p.vault_size_usd,
        "final_nav_usd": float(nav["nav_usd"][-1]) if nav.height else 0.0,
        "share_price": float(nav["share_price"][-1]) if nav.height else 0.0,
        **_returns(history, p, nav, book.vault_bad_debt > 0),
        "shortfall_usd": total("deficit_usd"),
        "vault_absorbed_usd": total("vault_loss"),
        "adl_usd": total("adl"),
        "backstop_usd": total("backstop"),
        "insurance_usd": total("insurance"),
        "socialized_usd": total("socialized"),
        "kept_margin_usd": total("vault_buffer"),
        "unwind_pnl_usd": total("vault_unwind_pnl"),
        "slippage_usd": total("vault_slippage"),
        "liquidation_pnl_usd": liq_pnl,
        "fees_income_usd": fees,
        "fee_income_usd": fees,
        "mm_income_usd": float(mm["mm_income"].sum()) if mm.height else 0.0,
        "performance_fees_usd": book.performance_fees,
        "vault_bad_debt_usd": book.vault_bad_debt,
        "worst_liquidation_loss_usd": max(0.0, -float(taken["vault_pnl"].min())) if taken.height else 0.0,  # type: ignore[arg-type]
        "recorded_deficit_usd": float(prep.deficit.sum()),
        "adl_status_quo_usd": float(liq["adl_usd"].sum()),
        "backstop_status_quo_usd": float(liq["backstop_usd"].sum()),
        "insurance_draw_usd": total("insurance"),
        "insurance_draw_status_quo_usd": float(liq["insurance_usd"].sum()),
        "bad_debt_status_quo_usd": status_quo,
        "bad_debt_proposed_usd": proposed,
        "bad_debt_avoided_usd": status_quo - proposed,
        "liquidations": liq.height,
        "liquidations_with_residual": int(prep.touched.size),
        "liquidations_absorbed": taken.height,
        "forced_closes": int((rows["forced_close"] != "").sum()) if rows.height else 0,
        "cap_hits": dict(book.hits),
        "days": round(history.days, 3),
    }


def _per_market(history: History, rows: pl.DataFrame, liq: pl.DataFrame, mm: pl.DataFrame) -> pl.DataFrame:
    """Per market: liquidations, what the vault absorbed and earned, bad debt status quo vs replayed."""
    base = history.markets.select("market", "symbol")
    a = liq.group_by("market").agg(pl.len().alias("liquidations"), pl.col("vault_fee").sum().alias("book_fee_income_usd"),
                                   pl.col("socialized_usd").sum().alias("bad_debt_status_quo_usd"))
    b = rows.group_by("market").agg(
        (pl.col("vault_size_taken") + pl.col("vault_loss") + pl.col("vault_buffer") > 0).sum().alias("absorbed"),
        pl.col("vault_loss").sum().alias("loss_absorbed_usd"), pl.col("vault_buffer").sum().alias("kept_margin_usd"),
        pl.col("vault_pnl").sum().alias("liquidation_pnl_usd"), pl.col("vault_fee").sum().alias("walked_fee_income_usd"),
        pl.col("socialized").sum().alias("bad_debt_proposed_usd"))
    c = mm.group_by("market").agg(pl.col("mm_income").sum().alias("mm_income_usd"))
    out = base.join(a, on="market", how="left").join(b, on="market", how="left").join(c, on="market", how="left")
    out = out.with_columns(pl.exclude("market", "symbol").fill_null(0)).with_columns(
        (pl.col("book_fee_income_usd") + pl.col("walked_fee_income_usd")).alias("fee_income_usd")).drop(
        "book_fee_income_usd", "walked_fee_income_usd").with_columns(
        (pl.col("liquidation_pnl_usd") + pl.col("fee_income_usd") + pl.col("mm_income_usd")).alias("vault_pnl_usd"),
        (pl.col("bad_debt_status_quo_usd") - pl.col("bad_debt_proposed_usd")).alias("bad_debt_avoided_usd"))
    return out.sort("vault_pnl_usd")


def compare(history: History, a: VaultParams, b: VaultParams) -> tuple[Result, Result]:
    """Two designs on the same history (the marks are indexed once)."""
    prep = Prepared(history)
    return replay(history, a, prepared=prep), replay(history, b, prepared=prep)


SWEEP_COLUMNS = ("final_nav_usd", "period_return", "apr", "max_drawdown", "worst_day_loss_pct", "sharpe",
                 "liquidation_pnl_usd", "bad_debt_proposed_usd", "bad_debt_avoided_usd", "liquidations_absorbed")


#: The history a sweep worker process replays, prepared once per worker by :func:`_start_worker`.
_WORKER: Prepared | None = None


def _start_worker(history: History) -> None:
    global _WORKER
    _WORKER = Prepared(history)


def _sweep_row(base: VaultParams, changes: dict[str, Any], prep: Prepared | None = None) -> dict[str, Any]:
    if prep is None:
        assert _WORKER is not None, "a sweep worker runs only in a process started by sweep()"
        prep = _WORKER
    r = replay(prep.history, base.with_overrides(**changes), prepared=prep)
    return {**changes, **{k: r.summary[k] for k in SWEEP_COLUMNS}, "cap_hits": sum(r.cap_hits.values())}


@contextlib.contextmanager
def _no_main_script() -> Iterator[None]:
    """Spawned workers re-run the parent's ``__main__`` script unless it has no file: inside Streamlit or
    a test run that script is the app (app.py), which must not start again in a worker. The workers
    need only this module's functions, imported by name."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is not None and path is not None:
        del main.__file__
    try:
        yield
    finally:
        if main is not None and path is not None:
            main.__file__ = path


def sweep(history: History, base: VaultParams, x: tuple[str, Sequence[Any]], y: tuple[str, Sequence[Any]], *,
          workers: int = 1) -> pl.DataFrame:
    """Every combination of two parameters' values on ``base``: one row of outcomes each.

    With ``workers`` > 1 the combinations are shared among that many worker processes (each replay is
    pure Python on one core). They are spawned, not forked: polars' thread pool does not survive a fork,
    so each receives the history pickled and prepares it once."""
    changes = [{x[0]: vx, y[0]: vy} for vx, vy in itertools.product(x[1], y[1])]
    if workers > 1 and len(changes) > 1:
        with _no_main_script(), ProcessPoolExecutor(min(workers, len(changes)), mp_context=mp.get_context("spawn"),
                                                    initializer=_start_worker, initargs=(history,)) as pool:
            out = list(pool.map(_sweep_row, [base] * len(changes), changes,
                                chunksize=max(1, len(changes) // (4 * workers))))
    else:
        prep = Prepared(history)
        out = [_sweep_row(base, c, prep) for c in changes]
    return pl.DataFrame(out, infer_schema_length=None)
