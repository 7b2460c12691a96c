"""Stress scenarios: a price shock or squeeze applied to the open positions, and the liquidations
that would follow, run through the status quo and a vault design.

A scenario moves one market's mark linearly by ``shock`` (−0.3 = −30%, +0.5 = a +50% squeeze) over
``minutes``, then holds it. Each open position (rebuilt from PositionUpdated) is liquidated at the
first minute its equity falls below the maintenance margin. The status-quo waterfall is today's
marginX rules (seed 001 §1, as the simulator models them):

1. book leg at mark, against ``book_depth_usd`` of depth per minute (default: the most the book took
   from liquidations of that market in one recorded block);
2. ADL of the unfilled size at the bankruptcy price, which absorbs deficit × unfilled / size, up to
   the size of profitable opposite positions still open;
3. the BackstopVault, at most 3% of its value per liquidation and 10% per day;
4. the InsuranceFund, up to its balance;
5. the rest is socialized.

The generated liquidations carry those tiers as their "recorded" ones, so the same
:func:`core.vault.replay.replay` runs both the status quo and the design over them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from core import protocol
from core.utc import DAY
from core.vault.history import LIQUIDATION_SCHEMA, History, MarkBook, assemble, liquidation_frame
from core.vault.params import VaultParams, preset
from core.vault.replay import Result, replay


class ScenarioError(ValueError):
    """A scenario the history cannot support; the message says what to change."""


@dataclass(frozen=True)
class Shock:
    """A price move on one market: ``shock`` (fraction, signed) over ``minutes``, starting at ``at``."""

    market: str
    shock: float
    minutes: int = 10
    at: int | None = None  #: when the shock starts (default: the end of the history)
    book_depth_usd: float | None = None  #: book depth per minute for liquidations (default: from history)

    def __post_init__(self) -> None:
        if not -0.99 <= self.shock <= 10:
            raise ScenarioError(f"shock must be between -0.99 and 10 (a fraction), got {self.shock}")
        if not 1 <= self.minutes <= 24 * 60:
            raise ScenarioError(f"minutes must be between 1 and 1440, got {self.minutes}")


def default_depth(history: History, market: str) -> float:
    """The most notional the book took from one market's liquidations in one recorded block."""
    liq = history.liquidations.filter(pl.col("market") == market)
    if liq.height == 0:
        return 0.0
    per_block = liq.group_by("block_number").agg((pl.col("book_filled") * pl.col("mark")).sum().alias("usd"))
    return float(per_block["usd"].to_numpy().max())


def shocked_liquidations(history: History, positions: pl.DataFrame, shock: Shock, *, maintenance_margin: float,
                         backstop_usd: float, insurance_usd: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The liquidations the shock causes (with status-quo tiers) and the shocked mark path."""
    book = MarkBook(history.marks)
    t0 = shock.at if shock.at is not None else history.end
    m0 = float(book.at(shock.market, np.array([float(t0)]), np.array([np.nan]))[0])
    if not np.isfinite(m0):
        raise ScenarioError("the market has no recorded price before the shock: pick another market or date")
    steps = np.arange(1, shock.minutes + 1)
    path = m0 * (1.0 + shock.shock * steps / shock.minutes)
    path_ts = t0 + 60 * steps
    pos = positions.filter(pl.col("market") == shock.market)
    depth = shock.book_depth_usd if shock.book_depth_usd is not None else default_depth(history, shock.market)
    rows: list[dict[str, object]] = []
    if pos.height:
        size = pos["size"].to_numpy()
        entry = pos["entry_price"].to_numpy()
        coll = pos["collateral_usd"].to_numpy()
        sgn = np.where(pos["is_long"].to_numpy(), 1.0, -1.0)
        equity = coll[:, None] + size[:, None] * (path[None, :] - entry[:, None]) * sgn[:, None]
        below = equity < maintenance_margin * size[:, None] * path[None, :]
        first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
        # Profitable opposite size available to ADL, consumed as liquidations use it.
        adl_left = {1.0: 0.0, -1.0: 0.0}
        adl_used = {1.0: 0.0, -1.0: 0.0}
        bv = backstop_usd
        fund = insurance_usd
        liquidated = first >= 0
        for j in range(shock.minutes):
            now = first == j
            if not now.any():
                continue
            alive = ~liquidated | (first > j)
            for side in (1.0, -1.0):
                profit = alive & (sgn == side) & (equity[:, j] > coll)
                adl_left[side] = max(0.0, float(size[profit].sum()) - adl_used[side])
            left = depth
            for i in np.flatnonzero(now)[np.argsort(equity[now, j] / (size[now] * path[j]))]:
                mark = float(path[j])
                e = float(equity[i, j])
                filled = min(float(size[i]), max(0.0, left) / mark)
                left -= filled * mark
                deficit = max(0.0, -e)
                unfilled = float(size[i]) - filled
                adl_size = min(unfilled, adl_left[-sgn[i]]) if deficit > 0 else 0.0
                adl_left[-sgn[i]] -= adl_size
                adl_used[-sgn[i]] += adl_size
                adl = deficit * adl_size / float(size[i])
                (backstop, cover), rest = protocol.absorb(deficit - adl, (protocol.backstop_capacity(bv, backstop_usd), fund))
                bv -= backstop
                fund -= cover
                notional = float(size[i]) * mark
                penalty = protocol.liquidation_fee(notional, e)
                rows.append({
                    "ts": int(path_ts[j]), "block_number": -1, "log_index": len(rows), "tx_hash": f"stress-{j + 1}min",
                    "account": pos["account"][int(i)], "market": shock.market, "is_long": bool(sgn[i] > 0),
                    "size": float(size[i]), "mark": mark, "notional": notional, "equity": e,
                    "book_filled": filled if deficit > 0 or unfilled <= 0 else float(size[i]),
                    "adl_size": adl_size, "adl_usd": adl, "backstop_usd": backstop, "insurance_usd": cover,
                    "socialized_usd": rest, "penalty_usd": penalty})
    liqs = liquidation_frame(pl.DataFrame(rows, schema=LIQUIDATION_SCHEMA) if rows
                             else pl.DataFrame(schema=LIQUIDATION_SCHEMA))
    marks = pl.DataFrame({"market": [shock.market] * len(path), "ts": path_ts.astype(np.int64), "mark": path})
    return liqs, marks


def run_shock(history: History, positions: pl.DataFrame, shock: Shock, design: VaultParams, *,
              backstop_usd: float, insurance_usd: float) -> tuple[Result, Result]:
    """(status quo, design) on the liquidations the shock causes; the vaults start fresh at the shock."""
    liqs, path = shocked_liquidations(history, positions, shock, maintenance_margin=design.maintenance_margin,
                                      backstop_usd=backstop_usd, insurance_usd=insurance_usd)
    t0 = int(path["ts"][0]) - 60
    before = history.marks.filter((pl.col("market") == shock.market) & (pl.col("ts") <= t0)).tail(1)
    marks = pl.concat([before, path]) if before.height else path
    h = assemble(history.chain_id, liqs, marks, history.daily, history.markets, start=t0,
                 end=t0 + shock.minutes * 60 + int(design.unwind_hours * 3600) + 1)
    book = MarkBook(h.marks)
    return replay(h, preset("marginx-today"), marks=book), replay(h, design, marks=book)


def thin_market(history: History) -> str | None:
    """The perp market with the least recorded volume (the squeeze's natural target)."""
    perps = history.markets.filter(pl.col("market_type") == "perp").sort("volume_usd")
    return str(perps["market"][0]) if perps.height else None


__all__ = ["DAY", "Shock", "ScenarioError", "default_depth", "run_shock", "shocked_liquidations", "thin_market"]
