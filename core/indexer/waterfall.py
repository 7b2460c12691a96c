"""The loss waterfall of a liquidation: its legs joined from the logs of its transaction (EVENTS.md)."""

from __future__ import annotations

import polars as pl
from sqlmodel import SQLModel

from core import schema

_LEG_COLUMNS = ("book_filled_size", "adl_size", "adl_covered_usd", "backstop_loss_usd", "insurance_cover_usd",
                "socialized_usd", "fee_collected_usd")



def _sum(values: pl.Expr) -> pl.Expr:
    """Σ in row order, one addition after another (a group keeps its rows' order).

    ``Expr.sum`` picks its kernel by the frame's layout and thread count (pairwise on a sorted slice,
    sequential on gathered rows), so the same legs could sum to floats an ulp apart on another
    machine or from another batch layout; a running sum's last value is the same everywhere."""
    return values.cum_sum().last()



def empty() -> pl.DataFrame:
    """No leg sums: (tx_hash, liq_log_index, v)."""
    return pl.DataFrame(schema={"tx_hash": pl.String, "liq_log_index": pl.Int64, "v": pl.Float64})


def join_waterfall(frames: dict[type[SQLModel], pl.DataFrame]) -> pl.DataFrame:
    """One row per PositionLiquidated with the legs of its transaction (see schema.Liquidation)."""
    liq = frames[schema.Liquidation].drop(*_LEG_COLUMNS, "notional_usd")
    key = ["tx_hash", "liq_log_index"]
    pls = liq.select("tx_hash", pl.col("log_index").alias("liq_log_index"), "position_key", "market",
                     "mark_price").sort("liq_log_index")

    def assign(legs: pl.DataFrame) -> pl.DataFrame:
        """Attach each leg to the first PositionLiquidated at or after it in the same transaction."""
        return legs.sort("log_index").join_asof(
            pls, left_on="log_index", right_on="liq_log_index", by="tx_hash", strategy="forward", check_sortedness=False,
            suffix="_liq",
        ).filter(pl.col("liq_log_index").is_not_null())

    sums: dict[str, pl.DataFrame] = {}
    trades = frames.get(schema.Trade)
    sums["book_filled_size"] = (
        assign(trades.filter(pl.col("fill_type") == 1).select("tx_hash", "log_index", "market", "size"))
        .filter(pl.col("market") == pl.col("market_liq")).group_by(key).agg(_sum(pl.col("size")).alias("v"))
        if trades is not None else empty()
    )
    adl = frames.get(schema.ADLEvent)
    adl_legs = (
        assign(adl.select("tx_hash", "log_index", "liquidated_position_key", "size_reduced", "price"))
        .filter(pl.col("liquidated_position_key") == pl.col("position_key"))
        if adl is not None else None
    )
    sums["adl_size"] = (
        adl_legs.group_by(key).agg(_sum(pl.col("size_reduced")).alias("v")) if adl_legs is not None else empty()
    )
    sums["adl_covered_usd"] = (
        adl_legs.group_by(key).agg(
            _sum(pl.col("size_reduced") * (pl.col("price") - pl.col("mark_price")).abs()).alias("v"))
        if adl_legs is not None else empty()
    )
    vault = frames.get(schema.BackstopVaultEvent)
    sums["backstop_loss_usd"] = (
        assign(vault.filter(pl.col("event") == "VaultPnLUpdated").select(
            "tx_hash", "log_index", pl.col("position_key").alias("leg_key"), "value_change_usd"))
        .filter(pl.col("leg_key") == pl.col("position_key"))
        .group_by(key).agg((-_sum(pl.col("value_change_usd"))).alias("v"))
        if vault is not None else empty()
    )
    fund = frames.get(schema.InsuranceFundEvent)
    sums["insurance_cover_usd"] = (
        assign(fund.filter(pl.col("event") == "ShortfallCovered").select(
            "tx_hash", "log_index", pl.col("position_key").alias("leg_key"), "amount_usd"))
        .filter(pl.col("leg_key") == pl.col("position_key"))
        .group_by(key).agg(_sum(pl.col("amount_usd")).alias("v"))
        if fund is not None else empty()
    )
    debt = frames.get(schema.SocializedDebt)
    sums["socialized_usd"] = (
        assign(debt.select("tx_hash", "log_index", "amount_usd")).group_by(key).agg(_sum(pl.col("amount_usd")).alias("v"))
        if debt is not None else empty()
    )
    # The fee is booked after PositionLiquidated: match it backwards by transaction and position key.
    if fund is not None:
        fees = fund.filter(pl.col("event") == "LiquidationFeeCollected").select("tx_hash", "log_index", "position_key", "amount_usd").sort("log_index")
        sums["fee_collected_usd"] = fees.join_asof(
            pls.rename({"market": "market_liq"}).drop("mark_price"), left_on="log_index", right_on="liq_log_index",
            by=["tx_hash", "position_key"], strategy="backward", check_sortedness=False,
        ).filter(pl.col("liq_log_index").is_not_null()).group_by(key).agg(_sum(pl.col("amount_usd")).alias("v"))
    else:
        sums["fee_collected_usd"] = empty()

    out = liq.with_columns(pl.col("log_index").alias("liq_log_index"))
    for col in _LEG_COLUMNS:
        out = out.join(sums[col].rename({"v": col}), on=key, how="left").with_columns(pl.col(col).fill_null(0.0))
    out = out.with_columns((pl.col("size") * pl.col("liquidation_price")).alias("notional_usd"))
    return out.select(schema.frame_schema(schema.Liquidation).names()).cast(dict(schema.frame_schema(schema.Liquidation)))  # type: ignore[arg-type]
