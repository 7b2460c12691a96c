"""Stress scenarios: a price shock or squeeze applied to the open positions, and the liquidations
that would follow, run through the status quo and a vault design.

**The path.** A shock moves markets from their last mark m0 in oracle pushes one minute apart, each
``step`` of m0 further (default: ``shock`` / ``minutes``), the last one partial, then holds. A larger
shock at the same step is the same path continued: the same pushes, more of them. Each open position
(rebuilt from PositionUpdated) is liquidated at the first push beyond its crossing level: the move x
(a fraction of m0) at which its equity falls below the maintenance margin, C + s·n·(M − E) < mm·n·M.
Every liquidation of the path takes one place in one order, (push, x, market, position): a position
that crosses a smaller level comes first, whatever the shock's size.

**The status-quo waterfall** (today's marginX rules, seed 001 §1, as the simulator models them),
down that order; every shared resource is consumed in it:

1. book leg at the push's mark against ``book_depth_usd`` of depth per push (default: the most the book
   took from that market's liquidations in one recorded block), counted in size at m0 (depth / m0), so
   a lower crash price does not buy more size; a solvent liquidation closes in full;
2. ADL of the unfilled size at the bankruptcy price, which absorbs deficit × ADL size / size, up to the
   opposite positions in profit at the mark before the push (less what ADL already used);
3. the BackstopVault, at most 3% of its value per liquidation and 10% per day;
4. the InsuranceFund, up to its balance;
5. the rest is socialized.

**Why a larger shock never helps the vault** (by construction; the tests check it as a property).
For a larger shock every push of the smaller one is at the same mark or further, so every liquidation
of the smaller shock happens at the same push and the same place in the order, with the same book
fill and ADL size and a deficit at least as large. The new liquidations come after them in the order
(a larger crossing level, or a later push), so they take only what is left of the book, ADL and the
funds; a position that grows (the whale, the attacker) takes them first, but each unit it adds costs
the vault at least what it saves it. A position the vault holds is marked at prices at least as bad.
What the tails count (``core.vault.tails``) also takes no income the shock would bring: no fee on
healthy liquidations, no gain on a takeover that ends the shock solvent.

The generated liquidations carry those tiers as their "recorded" ones, so the same
:func:`core.vault.replay.replay` runs both the status quo and the design over them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from core import protocol
from core.utc import DAY
from core.vault.history import LIQUIDATION_SCHEMA, History, MarkBook, assemble, liquidation_frame
from core.vault.params import VaultParams, preset
from core.vault.replay import Result, replay

MAX_PUSHES = 24 * 60
PUSH_SECONDS = 60


class ScenarioError(ValueError):
    """A scenario the history cannot support; the message says what to change."""


@dataclass(frozen=True)
class Shock:
    """A price move on one market: ``shock`` (fraction, signed) in one-minute pushes of ``step`` × the
    last mark (default ``|shock|`` / ``minutes``: ``minutes`` pushes), starting at ``at``."""

    market: str
    shock: float
    minutes: int = 10
    at: int | None = None  #: when the shock starts (default: the end of the history)
    book_depth_usd: float | None = None  #: book depth per push for liquidations (default: from history)
    step: float | None = None  #: the move per push, a positive fraction of the last mark (default |shock| / minutes)

    def __post_init__(self) -> None:
        if not -0.99 <= self.shock <= 10:
            raise ScenarioError(f"shock must be between -0.99 and 10 (a fraction), got {self.shock}")
        if not 1 <= self.minutes <= MAX_PUSHES:
            raise ScenarioError(f"minutes must be between 1 and {MAX_PUSHES}, got {self.minutes}")
        if self.step is not None and not self.step > 0:
            raise ScenarioError(f"step must be a positive fraction of the mark, got {self.step}")
        if self.pushes > MAX_PUSHES:
            raise ScenarioError(f"the shock needs {self.pushes} one-minute pushes of {self.step}: at most {MAX_PUSHES}")

    @property
    def pushes(self) -> int:
        if self.step is None or self.shock == 0:
            return self.minutes
        return max(1, math.ceil(abs(self.shock) / self.step - 1e-12))

    def levels(self) -> np.ndarray:
        """The move at each push, as a positive fraction of the last mark (the last push partial)."""
        n = self.pushes
        step = self.step if self.step is not None else abs(self.shock) / self.minutes
        out: np.ndarray = np.minimum(np.arange(1, n + 1) * step, abs(self.shock))
        return out


def default_depth(history: History, market: str) -> float:
    """The most notional the book took from one market's liquidations in one recorded block."""
    liq = history.liquidations.filter(pl.col("market") == market)
    if liq.height == 0:
        return 0.0
    per_block = liq.group_by("block_number").agg((pl.col("book_filled") * pl.col("mark")).sum().alias("usd"))
    return float(per_block["usd"].to_numpy().max())


def crossing_levels(size: np.ndarray, entry: np.ndarray, coll: np.ndarray, long: np.ndarray, m0: float,
                    mm: float) -> np.ndarray:
    """The adverse move (fraction of ``m0``) beyond which each position's equity is below maintenance:
    a long's mark below (E − C/n) / (1 − mm), a short's above (E + C/n) / (1 + mm)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(size > 0, coll / size, np.inf)
        long_x = 1.0 - (entry - per) / (1.0 - mm) / m0
        short_x = (entry + per) / (1.0 + mm) / m0 - 1.0
    return np.where(long, long_x, short_x)


def _start_mark(book: MarkBook, market: str, t0: int) -> float:
    m0 = float(book.at(market, np.array([float(t0)]), np.array([np.nan]))[0])
    if not np.isfinite(m0) or m0 <= 0:
        raise ScenarioError(f"market {market} has no recorded price before the shock: pick another market or date")
    return m0


@dataclass
class _Market:
    """One shocked market's path, its open positions and what the shock has used of its book and ADL."""

    shock: Shock
    m0: float
    path: np.ndarray
    ts: np.ndarray
    accounts: list[str]
    size: np.ndarray
    entry: np.ndarray
    coll: np.ndarray
    sign: np.ndarray
    push: np.ndarray  #: the push each position is liquidated at (−1: never)
    depth_size: float  #: the book's depth per push, in size at m0
    depth_left: dict[int, float] = field(default_factory=dict)
    adl_used: dict[float, float] = field(default_factory=lambda: {1.0: 0.0, -1.0: 0.0})
    in_profit: dict[tuple[int, float], float] = field(default_factory=dict)

    def fill(self, j: int, n: float) -> float:
        """The book's fill of size ``n`` at push ``j`` (its depth at that push is used in the one order)."""
        left = self.depth_left.get(j, self.depth_size)
        filled = min(n, left)
        self.depth_left[j] = left - filled
        return filled

    def adl(self, j: int, side: float, unfilled: float) -> float:
        """ADL's size for ``unfilled`` of a ``side`` position at push ``j``: the opposite positions in profit
        at the mark before the push and still open, less what ADL used already."""
        if (j, side) not in self.in_profit:
            before = float(self.path[j - 1]) if j > 0 else self.m0
            gone = (self.push >= 0) & (self.push < j)
            opposite = (self.sign == -side) & ~gone & (-side * (before - self.entry) > 0)
            self.in_profit[(j, side)] = float(self.size[opposite].sum())
        got = min(unfilled, max(0.0, self.in_profit[(j, side)] - self.adl_used[side]))
        self.adl_used[side] += got
        return got


def shocked_liquidations(history: History, positions: pl.DataFrame, shock: Shock | Sequence[Shock], *,
                         maintenance_margin: float, backstop_usd: float,
                         insurance_usd: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The liquidations the shock(s) cause (with status-quo tiers) and the shocked mark paths.

    Several shocks (the correlated crash) start together and share one order and one BackstopVault and
    InsuranceFund (see the module docstring)."""
    shocks = [shock] if isinstance(shock, Shock) else list(shock)
    if not shocks:
        raise ScenarioError("no market to shock")
    book = MarkBook(history.marks)
    t0 = shocks[0].at if shocks[0].at is not None else history.end
    events: list[tuple[int, float, int, int]] = []  # (push, crossing level, market, position): the one order
    markets: list[_Market] = []
    for k, sh in enumerate(shocks):
        m0 = _start_mark(book, sh.market, t0)
        lv = sh.levels()
        direction = 1.0 if sh.shock >= 0 else -1.0
        pos = positions.filter(pl.col("market") == sh.market)
        size = pos["size"].to_numpy().astype(float)
        entry = pos["entry_price"].to_numpy().astype(float)
        coll = pos["collateral_usd"].to_numpy().astype(float)
        long = pos["is_long"].to_numpy().astype(bool)
        x = crossing_levels(size, entry, coll, long, m0, maintenance_margin)
        crossed = (long == (direction < 0)) & (size > 0) & (x < lv[-1])
        push = np.searchsorted(lv, np.where(crossed, x, np.inf), side="right")  # the first push whose level is > x
        events.extend((int(push[i]), float(x[i]), k, int(i)) for i in np.flatnonzero(crossed))
        depth = sh.book_depth_usd if sh.book_depth_usd is not None else default_depth(history, sh.market)
        markets.append(_Market(sh, m0, m0 * (1.0 + direction * lv), t0 + PUSH_SECONDS * np.arange(1, lv.size + 1),
                               pos["account"].to_list(), size, entry, coll, np.where(long, 1.0, -1.0),
                               np.where(crossed, push, -1), max(0.0, depth) / m0))
    events.sort()
    bv, fund = backstop_usd, insurance_usd
    rows: list[dict[str, object]] = []
    for j, _x, k, i in events:
        d = markets[k]
        n, s = float(d.size[i]), float(d.sign[i])
        mark = float(d.path[j])
        equity = float(d.coll[i]) + s * n * (mark - float(d.entry[i]))
        filled = d.fill(j, n)
        deficit = max(0.0, -equity)
        adl_size = d.adl(j, s, n - filled) if deficit > 0 and n > filled else 0.0
        adl = deficit * adl_size / n
        (backstop, cover), rest = protocol.absorb(deficit - adl, (protocol.backstop_capacity(bv, backstop_usd), fund))
        bv -= backstop
        fund -= cover
        notional = n * mark
        rows.append({
            "ts": int(d.ts[j]), "block_number": -1, "log_index": len(rows), "tx_hash": f"stress-{j + 1}min",
            "account": d.accounts[i], "market": d.shock.market, "is_long": s > 0,
            "size": n, "mark": mark, "notional": notional, "equity": equity,
            "book_filled": filled if deficit > 0 else n, "adl_size": adl_size, "adl_usd": adl,
            "backstop_usd": backstop, "insurance_usd": cover, "socialized_usd": rest,
            "penalty_usd": protocol.liquidation_fee(notional, equity)})
    liqs = liquidation_frame(pl.DataFrame(rows, schema=LIQUIDATION_SCHEMA) if rows
                             else pl.DataFrame(schema=LIQUIDATION_SCHEMA))
    marks = pl.concat([pl.DataFrame({"market": [d.shock.market] * d.path.size, "ts": d.ts.astype(np.int64),
                                     "mark": d.path}) for d in markets])
    return liqs, marks


def shock_history(history: History, liqs: pl.DataFrame, path: pl.DataFrame, t0: int, hold_seconds: float) -> History:
    """The shock's own history: each shocked market's last recorded mark before ``t0``, its path, and the
    liquidations, until ``hold_seconds`` after the path ends."""
    markets = path["market"].unique(maintain_order=True).to_list()
    before = history.marks.filter(pl.col("market").is_in(markets) & (pl.col("ts") <= t0)).group_by(
        "market", maintain_order=True).tail(1).select("market", "ts", "mark")
    marks = pl.concat([before.cast(path.schema), path.select(before.columns).cast(path.schema)])
    end = int(path["ts"].to_numpy().max()) + int(hold_seconds) + 1
    return assemble(history.chain_id, liqs, marks, history.daily, history.markets, start=t0, end=end)


def run_shock(history: History, positions: pl.DataFrame, shock: Shock | Sequence[Shock], design: VaultParams, *,
              backstop_usd: float, insurance_usd: float) -> tuple[Result, Result]:
    """(status quo, design) on the liquidations the shock causes; the vaults start fresh at the shock."""
    liqs, path = shocked_liquidations(history, positions, shock, maintenance_margin=design.maintenance_margin,
                                      backstop_usd=backstop_usd, insurance_usd=insurance_usd)
    t0 = int(path["ts"].to_numpy().min()) - PUSH_SECONDS
    h = shock_history(history, liqs, path, t0, design.unwind_hours * 3600)
    book = MarkBook(h.marks)
    return replay(h, preset("marginx-today"), marks=book), replay(h, design, marks=book)


def thin_market(history: History) -> str | None:
    """The perp market with the least recorded volume (the squeeze's natural target)."""
    perps = history.markets.filter(pl.col("market_type") == "perp").sort("volume_usd")
    return str(perps["market"][0]) if perps.height else None


__all__ = ["DAY", "Shock", "ScenarioError", "crossing_levels", "default_depth", "run_shock", "shock_history",
           "shocked_liquidations", "thin_market"]
