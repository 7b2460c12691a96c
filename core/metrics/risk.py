"""Position risk from the open book (the rollup's positions_latest): the largest and most-levered
positions, the leverage distribution, open interest by side, the liquidation map (Drift's
liquidation curves) and ADL exposure. Pure: open positions and latest marks in, frames out.

Each open position, at its market's latest mark ``p`` (side s = +1 long, −1 short):
- notional = size × p; unrealized PnL = s × size × (p − entry); equity = collateral + unrealized PnL;
- leverage = notional ÷ equity (None when equity ≤ 0: already liquidatable);
- liquidation price: where equity = maintenance margin × size × price (seed 001 §1.1's rule,
  "equity = collateral + unrealizedPnL < maintenanceMargin", with marginX's 3% factor from
  core/protocol.py): long (size × entry − collateral) ÷ (size × (1 − mm)), short
  (collateral + size × entry) ÷ (size × (1 + mm)).
The liquidation map assumes every other price stays put and no position changes: it is the
notional (size × liquidation price, as EVENTS.md counts liquidated notional) whose liquidation
price a move of the market's mark by x would cross.

ADL priority: marginX's ``_triggerADL`` is not public, so this uses the rule the large venues
publish (Binance, Bybit): profitable positions ranked by PnL share × effective leverage, where PnL
share = unrealized PnL ÷ collateral and effective leverage = notional ÷ equity; the highest rank is
reduced first.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.protocol import MAINTENANCE_MARGIN_BPS

MAINTENANCE_MARGIN = MAINTENANCE_MARGIN_BPS / 10_000
#: Price moves of the liquidation map: −50% … +50% in 1% steps.
MOVES = tuple(m / 100 for m in range(-50, 51))
LEVERAGE_BINS = (0.0, 2.0, 5.0, 10.0, 20.0, 50.0)


def marked_positions(positions: pl.DataFrame, marks: pl.DataFrame, mm: float = MAINTENANCE_MARGIN) -> pl.DataFrame:
    """Open positions at their market's latest mark (``marks``: market, mark_price) with notional, PnL,
    equity, leverage and liquidation price. Positions of a market without a mark are left out."""
    side = pl.when(pl.col("is_long")).then(1.0).otherwise(-1.0)
    df = positions.filter(pl.col("size") > 0).join(marks.select("market", pl.col("mark_price").alias("mark")),
                                                    on="market", how="inner").filter(pl.col("mark").is_not_null())
    df = df.with_columns(
        (pl.col("size") * pl.col("mark")).alias("notional_usd"),
        (side * pl.col("size") * (pl.col("mark") - pl.col("entry_price"))).alias("unrealized_pnl_usd"),
    ).with_columns((pl.col("collateral_usd") + pl.col("unrealized_pnl_usd")).alias("equity_usd"))
    liq_long = (pl.col("size") * pl.col("entry_price") - pl.col("collateral_usd")) / (pl.col("size") * (1 - mm))
    liq_short = (pl.col("collateral_usd") + pl.col("size") * pl.col("entry_price")) / (pl.col("size") * (1 + mm))
    return df.with_columns(
        pl.when(pl.col("equity_usd") > 0).then(pl.col("notional_usd") / pl.col("equity_usd")).otherwise(None).alias("leverage"),
        pl.when(pl.col("is_long")).then(liq_long.clip(lower_bound=0.0)).otherwise(liq_short).alias("liquidation_price"),
    ).with_columns((pl.col("liquidation_price") / pl.col("mark") - 1).alias("move_to_liquidation"))


def largest(marked: pl.DataFrame, n: int = 20) -> pl.DataFrame:
    """The ``n`` largest open positions by notional."""
    return marked.sort(["notional_usd", "position_key"], descending=[True, False]).head(n)


def most_levered(marked: pl.DataFrame, n: int = 20) -> pl.DataFrame:
    """The ``n`` most levered open positions (liquidatable ones, equity ≤ 0, first)."""
    return marked.sort([pl.col("leverage").is_not_null(), "leverage", "position_key"],
                       descending=[False, True, False], nulls_last=False).head(n)


def leverage_distribution(marked: pl.DataFrame) -> pl.DataFrame:
    """Open positions and their notional per leverage bucket (``[lo, hi)``; ``equity ≤ 0`` apart)."""
    labels = [f"{lo:g}–{hi:g}×" for lo, hi in zip(LEVERAGE_BINS, LEVERAGE_BINS[1:], strict=False)] + [f"≥ {LEVERAGE_BINS[-1]:g}×"]
    bucket = pl.lit(labels[-1])
    for hi, label in reversed(list(zip(LEVERAGE_BINS[1:], labels, strict=False))):
        bucket = pl.when(pl.col("leverage") < hi).then(pl.lit(label)).otherwise(bucket)
    bucket = pl.when(pl.col("leverage").is_null()).then(pl.lit("equity ≤ 0")).otherwise(bucket)
    order = {label: i for i, label in enumerate([*labels, "equity ≤ 0"])}
    out = marked.with_columns(bucket.alias("bucket")).group_by("bucket").agg(
        pl.len().alias("positions"), pl.col("notional_usd").sum())
    full = pl.DataFrame({"bucket": list(order)}).join(out, on="bucket", how="left").with_columns(
        pl.col("positions").fill_null(0).cast(pl.Int64), pl.col("notional_usd").fill_null(0.0))
    return full.with_columns(pl.col("bucket").replace_strict(order, return_dtype=pl.Int64).alias("order")).sort("order").drop("order")


def open_interest_by_side(marked: pl.DataFrame) -> pl.DataFrame:
    """Per market and side: open positions, size and notional at the latest mark."""
    return marked.with_columns(pl.when(pl.col("is_long")).then(pl.lit("long")).otherwise(pl.lit("short")).alias("side")).group_by(
        "market", "side").agg(pl.len().alias("positions"), pl.col("size").sum(), pl.col("notional_usd").sum()).sort("market", "side")


def liquidation_map(marked: pl.DataFrame, moves: tuple[float, ...] = MOVES) -> pl.DataFrame:
    """Per market and price move x: the notional (size × liquidation price) that a move of the mark by x
    would liquidate, cumulative from 0 outwards (longs on falls, shorts on rises; those already below
    maintenance count at every move)."""
    grid = np.asarray(moves, dtype=np.float64)
    rows: list[tuple[str, float, float]] = []
    pos = marked.select("market", "is_long", "move_to_liquidation", (pl.col("size") * pl.col("liquidation_price")).alias("liq_notional"))
    for (market,), g in pos.group_by(["market"], maintain_order=False):
        out = np.zeros(len(grid))
        for is_long, falls in ((True, grid <= 0), (False, grid >= 0)):
            side = g.filter(pl.col("is_long") == is_long).sort("move_to_liquidation")
            at = side["move_to_liquidation"].to_numpy()
            cum = np.concatenate(([0.0], np.cumsum(side["liq_notional"].to_numpy())))
            # longs: every position with move_to_liquidation >= x; shorts: every one with it <= x
            hit = (cum[-1] - cum[np.searchsorted(at, grid, side="left")]) if is_long else cum[np.searchsorted(at, grid, side="right")]
            out = out + np.where(falls, hit, 0.0)
        rows.extend((str(market), float(m), float(v)) for m, v in zip(grid, out, strict=True))
    return pl.DataFrame(rows, schema={"market": pl.String, "move": pl.Float64, "liquidated_notional_usd": pl.Float64},
                        orient="row").sort("market", "move")


def adl_ranking(marked: pl.DataFrame) -> pl.DataFrame:
    """Profitable open positions ranked by ADL priority (PnL share × effective leverage, highest first)
    per market and side, with ``rank`` from 1."""
    prof = marked.filter((pl.col("unrealized_pnl_usd") > 0) & (pl.col("equity_usd") > 0) & (pl.col("collateral_usd") > 0))
    prof = prof.with_columns((pl.col("unrealized_pnl_usd") / pl.col("collateral_usd")).alias("pnl_share")).with_columns(
        (pl.col("pnl_share") * pl.col("leverage")).alias("adl_score"))
    return prof.sort(["market", "is_long", "adl_score", "position_key"], descending=[False, False, True, False]).with_columns(
        pl.int_range(1, pl.len() + 1).over("market", "is_long").alias("rank"))


def adl_under_shock(marked: pl.DataFrame, market: str, shock: float, book_depth_usd: float = 0.0) -> pl.DataFrame:
    """The reduction each profitable counterparty would take if ``market``'s mark moved by ``shock``.

    The positions the move liquidates (per the liquidation map) are closed: the book takes up to
    ``book_depth_usd`` of their notional at the shocked mark (0: none, the upper bound for ADL), and
    the rest of their size is force-reduced from the other side's profitable positions in ADL rank
    order (at the shocked mark), each by at most its size. Rank and PnL are taken at the shocked mark."""
    m = marked.filter(pl.col("market") == market)
    if m.is_empty():
        return adl_ranking(m).with_columns(pl.lit(0.0).alias("reduced_size"), pl.lit(0.0).alias("reduced_notional_usd"))
    liquidated_long = shock < 0
    hit = m.filter((pl.col("is_long") == liquidated_long) & (
        (pl.col("move_to_liquidation") >= shock) if liquidated_long else (pl.col("move_to_liquidation") <= shock)))
    mark = float(m["mark"][0]) * (1 + shock)
    unfilled = max(0.0, float(hit["size"].sum()) - max(0.0, book_depth_usd) / mark)
    shocked = marked_positions(m.select("position_key", "account", "market", "is_long", "size", "entry_price", "collateral_usd"),
                               pl.DataFrame({"market": [market], "mark_price": [mark]}))
    ranked = adl_ranking(shocked.filter(pl.col("is_long") != liquidated_long))
    room = (pl.lit(unfilled) - (pl.col("size").cum_sum() - pl.col("size"))).clip(lower_bound=0.0)  # still to reduce
    return ranked.with_columns(pl.min_horizontal(room, pl.col("size")).alias("reduced_size")).with_columns(
        (pl.col("reduced_size") * mark).alias("reduced_notional_usd"))
