"""Incremental hourly and daily rollups, so pages cost O(buckets × markets), not O(trades).

After every indexer commit, :func:`refresh_in` folds the rows of the blocks the commit added into
the rollups, in the commit's transaction, reading those rows and the few stored rollup rows they
touch, so a commit costs what it adds, not the day it lands in:

- hours: the new rows' aggregates; the one stored hour they continue (the hour the last refresh
  stopped in) is merged with them (sums added, first/last/high/low combined). Its distinct
  traders per market are recounted over that hour's trades: no trader-hour keys are stored.
- days: derived from their hours; distinct traders per day and market, and per day across markets,
  kept exactly through the trader-day keys (trader_daily): the stored count plus the keys (or, across
  markets, the traders) the new rows bring that the day did not have yet.
- trader_totals and trader_last_trade: the new trader-day keys and trades added; trader_counts
  from them (an index range count and a row count); positions_latest from the new updates only.

A reorg rewind (or any invalidation: ``dirty_from``) first takes every rollup back to the start of the
first dirty UTC day, restoring the per-trader and per-position rows from the rows before it, and
then folds everything from there as new blocks. So rollups are a function of the raw rows and the
commits they came in: any split of a history gives the rows one build gives, floats sums to
rounding (the tests check both backends against a rebuild over random splits).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from core import db, schema
from core.utc import DAY, HOUR

WINDOW_DAYS = 7  # days of raw rows a refresh reads and folds in at a time (bounded memory on a long catch-up)
_IN_CHUNK = 500  # keys per IN (…) list
_NO_END = 2**62
_BLOCKS = schema.table_of(schema.Block)


def _read(conn: Connection, sql: str, params: dict[str, object], schema_: dict[str, pl.DataType]) -> pl.DataFrame:
    return db.read_frame(conn, sql, schema_, params)


#: The table each raw frame of :func:`_raw_frames` reads (its columns by name, ``block_timestamp`` as ``ts``).
RAW_SOURCES: dict[str, type[SQLModel]] = {
    "trades": schema.Trade, "updates": schema.PositionUpdate, "liquidations": schema.Liquidation,
    "open_interest": schema.OpenInterest, "prices": schema.Price, "funding": schema.Funding,
    "debt": schema.SocializedDebt, "fund": schema.InsuranceFundEvent, "vault": schema.BackstopVaultEvent,
    "blocks": schema.Block,
}


def raw_from_frames(conn: Connection, chain_id: int, added: Sequence[tuple[type[SQLModel], pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    """:func:`_raw_frames` of the rows a commit writes, taken from its frames instead of read back."""
    empty = _raw_frames(conn, chain_id, _NO_END)  # the frames' schemas (no rows)
    by_model = dict(added)
    out = {}
    for name, model in RAW_SOURCES.items():
        target = empty[name].schema
        frame = by_model.get(model)
        if frame is None or not frame.height:
            out[name] = empty[name]
            continue
        ts = "timestamp" if model is schema.Block else "block_timestamp"
        out[name] = frame.select(pl.col(ts).alias("ts"), *(c for c in target.names() if c != "ts")).cast(dict(target))  # type: ignore[arg-type]
    return out


def _raw_frames(conn: Connection, chain_id: int, first_block: int, end_block: int | None = None) -> dict[str, pl.DataFrame]:
    """The event rows rollups are built from, for first_block ≤ block < end_block, in chain order."""
    p: dict[str, object] = {"c": chain_id, "b": first_block, "e": end_block if end_block is not None else _NO_END}
    where = "WHERE chain_id = :c AND block_number >= :b AND block_number < :e ORDER BY block_number, log_index"
    f64, i64, s, b = pl.Float64(), pl.Int64(), pl.String(), pl.Boolean()
    return {
        "trades": _read(conn, f"SELECT block_timestamp, market, maker, taker, taker_is_buy, size, price, notional_usd, "
                              f"maker_fee_usd, taker_fee_usd, fill_type FROM trades {where}", p,
                        {"ts": i64, "market": s, "maker": s, "taker": s, "taker_is_buy": b, "size": f64, "price": f64,
                         "notional_usd": f64, "maker_fee_usd": f64, "taker_fee_usd": f64, "fill_type": i64}),
        "updates": _read(conn, f"SELECT block_timestamp, market, account, realized_pnl_usd, funding_paid_usd, fee_usd "
                               f"FROM position_updates {where}", p,
                         {"ts": i64, "market": s, "account": s, "realized_pnl_usd": f64, "funding_paid_usd": f64,
                          "fee_usd": f64}),
        "liquidations": _read(conn, f"SELECT block_timestamp, market, is_long, notional_usd, adl_covered_usd, "
                                    f"backstop_loss_usd, insurance_cover_usd, socialized_usd FROM liquidations {where}", p,
                              {"ts": i64, "market": s, "is_long": b, "notional_usd": f64, "adl_covered_usd": f64,
                               "backstop_loss_usd": f64, "insurance_cover_usd": f64, "socialized_usd": f64}),
        "open_interest": _read(conn, f"SELECT block_timestamp, market, long_open_interest, short_open_interest "
                                     f"FROM open_interest {where}", p,
                               {"ts": i64, "market": s, "long_open_interest": f64, "short_open_interest": f64}),
        "prices": _read(conn, f"SELECT block_timestamp, market, mark_price, index_price FROM prices {where}", p,
                        {"ts": i64, "market": s, "mark_price": f64, "index_price": f64}),
        "funding": _read(conn, f"SELECT block_timestamp, market, funding_rate FROM funding {where}", p,
                         {"ts": i64, "market": s, "funding_rate": f64}),
        "debt": _read(conn, f"SELECT block_timestamp, amount_usd FROM socialized_debt {where}", p,
                      {"ts": i64, "amount_usd": f64}),
        "fund": _read(conn, f"SELECT block_timestamp, event, market, amount_usd, balance_usd FROM insurance_fund_events {where}", p,
                      {"ts": i64, "event": s, "market": s, "amount_usd": f64, "balance_usd": f64}),
        "vault": _read(conn, f"SELECT block_timestamp, event, value_change_usd, shares FROM backstop_vault_events {where}", p,
                       {"ts": i64, "event": s, "value_change_usd": f64, "shares": f64}),
        "blocks": _read(conn, "SELECT timestamp FROM blocks WHERE chain_id = :c AND number >= :b AND number < :e", p,
                        {"ts": i64}),
    }


# ------------------------------------------------------------------ pure: raw rows → bucket rows

_MARKET_SUMS = ("volume_usd", "base_volume", "trades", "taker_buy_volume_usd", "taker_buy_trades", "fees_usd", "taker_fees_usd", "maker_fees_usd",
                "volume_liquidation_usd", "volume_adl_usd", "volume_backstop_usd", "liquidation_fees_usd", "liquidations",
                "liquidations_long", "liquidated_notional_usd", "liquidated_notional_long_usd", "adl_covered_usd",
                "backstop_loss_usd", "insurance_cover_usd", "socialized_usd", "realized_pnl_usd", "funding_paid_usd",
                "position_fees_usd")
#: fillType → the market-stats column of its volume (EVENTS.md: 1 liquidation, 2 ADL, 3 backstop; 0 normal is the rest).
_FILL_VOLUMES = {1: "volume_liquidation_usd", 2: "volume_adl_usd", 3: "volume_backstop_usd"}
_MARKET_LAST = ("close_price", "long_open_interest", "short_open_interest", "mark_price", "funding_rate")
_LATEST = {"open_interest": ("long_open_interest", "short_open_interest"), "prices": ("mark_price",),
           "funding": ("funding_rate",)}


def _conform(frame: pl.DataFrame, model: type[SQLModel]) -> pl.DataFrame:
    target = schema.frame_schema(model)
    return frame.select(target.names()).cast(dict(target))  # type: ignore[arg-type]


def market_stats(raw: dict[str, pl.DataFrame], size: int, chain_id: int) -> pl.DataFrame:
    """Per (market, bucket of ``size`` seconds) of the raw rows: the columns of schema.MarketStats."""
    bucket = (pl.col("ts") // size * size).alias("bucket")
    trades = raw["trades"].with_columns(bucket).group_by("market", "bucket").agg(
        pl.col("notional_usd").sum().alias("volume_usd"),
        pl.col("size").sum().alias("base_volume"),
        pl.len().cast(pl.Int64).alias("trades"),
        pl.col("notional_usd").filter(pl.col("taker_is_buy")).sum().alias("taker_buy_volume_usd"),
        pl.col("taker_is_buy").sum().cast(pl.Int64).alias("taker_buy_trades"),
        (pl.col("maker_fee_usd") + pl.col("taker_fee_usd")).sum().alias("fees_usd"),
        pl.col("taker_fee_usd").sum().alias("taker_fees_usd"), pl.col("maker_fee_usd").sum().alias("maker_fees_usd"),
        *(pl.col("notional_usd").filter(pl.col("fill_type") == k).sum().alias(c) for k, c in _FILL_VOLUMES.items()),
        pl.col("price").first().alias("open_price"), pl.col("price").max().alias("high_price"),
        pl.col("price").min().alias("low_price"), pl.col("price").last().alias("close_price"),
        pl.concat_list("maker", "taker").explode().n_unique().cast(pl.Int64).alias("traders"),
    )
    liq = raw["liquidations"].with_columns(bucket).group_by("market", "bucket").agg(
        pl.len().cast(pl.Int64).alias("liquidations"),
        pl.col("is_long").sum().cast(pl.Int64).alias("liquidations_long"),
        pl.col("notional_usd").sum().alias("liquidated_notional_usd"),
        pl.col("notional_usd").filter(pl.col("is_long")).sum().alias("liquidated_notional_long_usd"),
        pl.col("adl_covered_usd").sum(), pl.col("backstop_loss_usd").sum(),
        pl.col("insurance_cover_usd").sum(), pl.col("socialized_usd").sum(),
    )
    penalties = raw["fund"].filter((pl.col("event") == "LiquidationFeeCollected") & pl.col("market").is_not_null()).with_columns(bucket).group_by("market", "bucket").agg(
        pl.col("amount_usd").sum().alias("liquidation_fees_usd"))
    pnl = raw["updates"].with_columns(bucket).group_by("market", "bucket").agg(
        pl.col("realized_pnl_usd").sum(), pl.col("funding_paid_usd").sum(), pl.col("fee_usd").sum().alias("position_fees_usd"))
    latest = [raw[name].with_columns(bucket).group_by("market", "bucket").agg(*(pl.col(c).last() for c in cols))
              for name, cols in _LATEST.items()]
    parts = [trades, liq, penalties, pnl, *latest]
    out = pl.concat([f.select("market", "bucket") for f in parts]).unique()
    for part in parts:
        out = out.join(part, on=["market", "bucket"], how="left")
    return _conform(out.with_columns(pl.lit(chain_id, dtype=pl.Int64).alias("chain_id"),
                                     *(pl.col(c).fill_null(0) for c in (*_MARKET_SUMS, "traders"))),
                    schema.MarketStatsHourly).sort("bucket", "market")


def combine_market_stats(rows: pl.DataFrame, size: int) -> pl.DataFrame:
    """MarketStats rows in time order, combined per market into buckets of ``size`` seconds: sums
    added, the first open, the last close and latest values, the high and low. ``traders`` is summed
    (distinct counts do not add: callers that combine buckets of one trader set replace it)."""
    out = rows.group_by("chain_id", "market", pl.col("bucket") // size * size, maintain_order=True).agg(
        *(pl.col(c).sum() for c in (*_MARKET_SUMS, "traders")),
        pl.col("open_price").drop_nulls().first(), pl.col("high_price").max(), pl.col("low_price").min(),
        *(pl.col(c).drop_nulls().last() for c in _MARKET_LAST),
    )
    return _conform(out, schema.MarketStatsHourly).sort("bucket", "market")


def protocol_stats(raw: dict[str, pl.DataFrame], size: int, chain_id: int) -> pl.DataFrame:
    """Per bucket: socialized debt, the insurance fund's last balance, the vault's value change."""
    bucket = (pl.col("ts") // size * size).alias("bucket")
    parts = [
        raw["debt"].with_columns(bucket).group_by("bucket").agg(pl.col("amount_usd").sum().alias("socialized_debt_usd")),
        raw["fund"].with_columns(bucket).group_by("bucket").agg(pl.col("balance_usd").last().alias("insurance_fund_usd")),
        raw["vault"].with_columns(bucket).group_by("bucket").agg(
            pl.col("value_change_usd").sum().alias("backstop_vault_change_usd"),
            (pl.when(pl.col("event") == "Deposit").then(pl.col("shares")).when(pl.col("event") == "Withdraw").then(-pl.col("shares"))
             .otherwise(0.0).fill_null(0.0)).sum().alias("backstop_shares_change")),
        raw["blocks"].with_columns(bucket).group_by("bucket").agg(pl.len().cast(pl.Int64).alias("blocks")),
    ]
    out = pl.concat([p.select("bucket") for p in parts]).unique()
    for part in parts:
        out = out.join(part, on="bucket", how="left")
    return _conform(out.with_columns(
        pl.lit(chain_id, dtype=pl.Int64).alias("chain_id"),
        pl.col("socialized_debt_usd", "backstop_vault_change_usd", "backstop_shares_change").fill_null(0.0),
        pl.col("blocks").fill_null(0),
    ), schema.ProtocolStatsHourly).sort("bucket")


def combine_protocol_stats(rows: pl.DataFrame, size: int) -> pl.DataFrame:
    """ProtocolStats rows in time order, combined into buckets of ``size`` seconds."""
    out = rows.group_by("chain_id", pl.col("bucket") // size * size, maintain_order=True).agg(
        pl.col("socialized_debt_usd").sum(), pl.col("insurance_fund_usd").drop_nulls().last(),
        pl.col("backstop_vault_change_usd").sum(), pl.col("backstop_shares_change").sum(), pl.col("blocks").sum())
    return _conform(out, schema.ProtocolStatsHourly).sort("bucket")


def trader_daily(raw: dict[str, pl.DataFrame], chain_id: int) -> pl.DataFrame:
    """Per (UTC day, market, trader): the volume and trades the trader took part in (maker or taker)."""
    t = raw["trades"].with_columns((pl.col("ts") // DAY * DAY).alias("bucket"))
    sides = pl.concat([t.select("bucket", "market", pl.col(side).alias("trader"), "notional_usd") for side in ("maker", "taker")])
    target = schema.frame_schema(schema.TraderDay)
    return sides.group_by("bucket", "market", "trader").agg(
        pl.col("notional_usd").sum().alias("volume_usd"), pl.len().cast(pl.Int64).alias("trades"),
    ).with_columns(pl.lit(chain_id, dtype=pl.Int64).alias("chain_id")).select(target.names()).sort(
        "bucket", "market", "trader")


def trader_pnl_daily(raw: dict[str, pl.DataFrame], chain_id: int) -> pl.DataFrame:
    """Per (UTC day, account) of the position updates: Σ realized PnL, funding paid and fees."""
    return _conform(raw["updates"].with_columns((pl.col("ts") // DAY * DAY).alias("bucket")).group_by("bucket", "account").agg(
        pl.col("realized_pnl_usd").sum(), pl.col("funding_paid_usd").sum(), pl.col("fee_usd").sum().alias("fees_usd"),
    ).rename({"account": "trader"}).with_columns(pl.lit(chain_id, dtype=pl.Int64).alias("chain_id")), schema.TraderPnlDay).sort(
        "bucket", "trader")


def trader_pnl_counts(pnl_days: pl.DataFrame) -> pl.DataFrame:
    """Per UTC day: the accounts of :func:`trader_pnl_daily` whose net (realized − funding − fees) is above and below zero."""
    net = pl.col("realized_pnl_usd") - pl.col("funding_paid_usd") - pl.col("fees_usd")
    return _conform(pnl_days.group_by("chain_id", "bucket").agg(
        (net > 0).sum().cast(pl.Int64).alias("profitable_traders"), (net < 0).sum().cast(pl.Int64).alias("losing_traders")),
        schema.TraderPnlCounts).sort("bucket")


def premium_hourly(raw: dict[str, pl.DataFrame], chain_id: int) -> pl.DataFrame:
    """Per (market, hour) of the oracle pushes: Σ mark − index, Σ index and their count (schema.PremiumHourly)."""
    return _conform(raw["prices"].group_by("market", (pl.col("ts") // HOUR * HOUR).alias("bucket")).agg(
        (pl.col("mark_price") - pl.col("index_price")).sum().alias("premium_sum_usd"),
        pl.col("index_price").sum().alias("index_sum_usd"), pl.len().cast(pl.Int64).alias("pushes"),
    ).with_columns(pl.lit(chain_id, dtype=pl.Int64).alias("chain_id")), schema.PremiumHourly).sort("bucket", "market")


def traders_daily(per_trader: pl.DataFrame) -> pl.DataFrame:
    """Per UTC day: distinct traders across markets, from :func:`trader_daily`'s rows."""
    return _conform(per_trader.group_by("chain_id", "bucket").agg(pl.col("trader").n_unique().alias("traders")),
                    schema.DailyActiveTraders).sort("bucket")


def _daily_market_stats(hourly: pl.DataFrame, per_trader: pl.DataFrame) -> pl.DataFrame:
    """Days from their hours; traders per day and market: the trader-day keys."""
    keys = per_trader.group_by("bucket", "market").agg(pl.len().cast(pl.Int64).alias("_keys"))
    days = combine_market_stats(hourly, DAY).join(keys, on=["bucket", "market"], how="left")
    return days.with_columns(pl.col("_keys").fill_null(0).alias("traders")).drop("_keys")


def day_totals(daily: pl.DataFrame) -> pl.DataFrame:
    """totals_daily's rows of stats_daily's ``daily`` rows: per chain and day, the sums over its markets
    (added in market order, so a day's totals do not depend on the order the rows came in)."""
    return _conform(daily.sort("chain_id", "bucket", "market").group_by("chain_id", "bucket", maintain_order=True).agg(
        pl.col(schema.DAY_TOTAL_COLUMNS).sum()), schema.DayTotals)


def build(raw: dict[str, pl.DataFrame], chain_id: int) -> list[tuple[type[SQLModel], pl.DataFrame]]:
    """Every bucketed rollup table's rows for the raw rows given (whole days), as a refresh folds them
    into empty tables: days derived from hours."""
    per_trader = trader_daily(raw, chain_id)
    hourly, protocol = market_stats(raw, HOUR, chain_id), protocol_stats(raw, HOUR, chain_id)
    daily = _conform(_daily_market_stats(hourly, per_trader), schema.MarketStatsDaily)
    return [
        (schema.MarketStatsHourly, hourly),
        (schema.MarketStatsDaily, daily),
        (schema.DayTotals, day_totals(daily)),
        (schema.ProtocolStatsHourly, protocol),
        (schema.ProtocolStatsDaily, _conform(combine_protocol_stats(protocol, DAY), schema.ProtocolStatsDaily)),
        (schema.TraderDay, per_trader),
        (schema.DailyActiveTraders, traders_daily(per_trader)),
        (schema.TraderPnlDay, pnl_days := trader_pnl_daily(raw, chain_id)),
        (schema.TraderPnlCounts, trader_pnl_counts(pnl_days)),
        (schema.PremiumHourly, premium_hourly(raw, chain_id)),
    ]


# ------------------------------------------------------------------ reads of stored rows

def _chunks(values: list[str]) -> Iterator[tuple[str, dict[str, object]]]:
    """(``:k0, :k1, …``, their parameters) for IN lists of at most _IN_CHUNK values."""
    for i in range(0, len(values), _IN_CHUNK):
        chunk: dict[str, object] = {f"k{j}": v for j, v in enumerate(values[i:i + _IN_CHUNK])}
        yield ", ".join(":" + n for n in chunk), chunk


def _stored(conn: Connection, model: type[SQLModel], chain_id: int, first: int, end: int) -> pl.DataFrame:
    """Stored rows of a bucketed rollup table with first ≤ bucket < end, in bucket order."""
    t = schema.table_of(model)
    keys = [c.name for c in t.primary_key.columns]
    return db.read_frame(conn, f"SELECT * FROM {t.name} WHERE chain_id = :c AND bucket >= :f AND bucket < :e "
                               f"ORDER BY {', '.join(keys[1:])}", dict(schema.frame_schema(model)),
                         {"c": chain_id, "f": first, "e": end})


def _first_block_in(conn: Connection, chain_id: int, start: int, end: int) -> int | None:
    """The first stored block with start ≤ timestamp < end (None: none). Bounded by ``end`` so the
    index range is the bucket's blocks, not every later one (mid-chain, after a reorg rewind)."""
    found = conn.execute(sa.select(sa.func.min(_BLOCKS.c.number)).where(
        _BLOCKS.c.chain_id == chain_id, _BLOCKS.c.timestamp >= start, _BLOCKS.c.timestamp < end)).scalar()
    return None if found is None else int(found)


def _last_block_before(conn: Connection, chain_id: int, ts: int) -> int:
    """The last stored block with a timestamp below ``ts`` (-1: none)."""
    b = schema.table_of(schema.Block)
    row = conn.execute(sa.select(b.c.number).where(b.c.chain_id == chain_id, b.c.timestamp < ts)
                       .order_by(b.c.timestamp.desc(), b.c.number.desc()).limit(1)).first()
    return -1 if row is None else int(row[0])


def _sides(conn: Connection, chain_id: int, first_block: int, last_block: int) -> pl.DataFrame:
    """(market, trader, ts) of both sides of the trades in first_block..last_block."""
    trades = _read(conn, "SELECT market, maker, taker, block_timestamp FROM trades WHERE chain_id = :c "
                         "AND block_number >= :b AND block_number <= :e", {"c": chain_id, "b": first_block, "e": last_block},
                   {"market": pl.String(), "maker": pl.String(), "taker": pl.String(), "ts": pl.Int64()})
    return pl.concat([trades.select("market", pl.col(side).alias("trader"), "ts") for side in ("maker", "taker")])


# ------------------------------------------------------------------ fold new rows in

class _Keys:
    """(market, trader) pairs, with how many each market has and their traders, added to in place."""

    __slots__ = ("pairs", "per_market", "traders")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self.pairs: set[tuple[str, str]] = set()
        self.per_market: Counter[str] = Counter()
        self.traders: set[str] = set()
        self.add(pairs)

    def add(self, pairs: Iterable[tuple[str, str]]) -> None:
        for pair in pairs:
            if pair not in self.pairs:
                self.pairs.add(pair)
                self.per_market[pair[0]] += 1
                self.traders.add(pair[1])

    def matches(self, stored: pl.DataFrame) -> bool:
        """Whether each market's count is the ``traders`` of ``stored`` (rollup rows of one bucket)."""
        return dict(self.per_market) == {m: int(n) for m, n in zip(
            stored["market"].to_list(), stored["traders"].to_list(), strict=True) if n}


@dataclass
class _Hot:
    """What the last fold of a chain in this process left in the hour and the UTC day it ended in: the
    (market, trader) pairs of that hour's trades and that day's trader-day keys, through block
    ``through``. The next commit continues exactly there (an indexer's writer folds commit after
    commit), so its fold takes them from here instead of reading the hour's trades and the day's
    keys back. Used only when that fold starts at block ``through`` + 1 and the stored rollups agree
    (each market's distinct traders of the hour and of the day, the day's traders across markets);
    otherwise they are read from the database, as after a start, a rolled-back transaction or a
    reorg's rewind. The rollups stay a function of the stored rows: this only saves re-reading them."""

    through: int
    hour: int | None = None
    hour_keys: _Keys = field(default_factory=_Keys)
    day: int | None = None
    day_keys: _Keys = field(default_factory=_Keys)


_HOT: dict[tuple[str, int], _Hot] = {}


def _hot_key(conn: Connection, chain_id: int) -> tuple[str, int]:
    return conn.engine.url.render_as_string(hide_password=False), chain_id


def _pairs(trades: pl.DataFrame) -> Iterator[tuple[str, str]]:
    """(market, trader) of both sides of ``trades``."""
    markets = trades["market"].to_list()
    yield from zip(markets, trades["maker"].to_list(), strict=True)
    yield from zip(markets, trades["taker"].to_list(), strict=True)


def _hour_keys(conn: Connection, chain_id: int, hot: _Hot | None, hour: int, stored: pl.DataFrame, through: int) -> _Keys:
    """The (market, trader) pairs of the stored trades of ``hour`` (through block ``through``): the hot
    ones when they are that hour's and match the stored hour's traders, else read from its trades."""
    if hot is not None and hot.hour == hour and hot.hour_keys.matches(stored):
        return hot.hour_keys
    start = _first_block_in(conn, chain_id, hour, hour + HOUR)
    if start is None or start > through:
        return _Keys()
    old = _sides(conn, chain_id, start, through)
    return _Keys(zip(old["market"].to_list(), old["trader"].to_list(), strict=True))


def _fold_hours(conn: Connection, chain_id: int, raw: dict[str, pl.DataFrame], through: int,
                hot: _Hot | None, after: _Hot) -> pl.DataFrame:
    """Write the new rows' hours (merged into the stored hour they continue); the new rows' hourly market
    rows. ``hot``: what the previous fold left (or None); ``after`` is given the pairs of the last hour
    with trades."""
    fresh = market_stats(raw, HOUR, chain_id)
    protocol = protocol_stats(raw, HOUR, chain_id)
    first_hour = min((int(f["bucket"].min()) for f in (fresh, protocol) if f.height), default=0)  # type: ignore[arg-type]
    stored = _stored(conn, schema.MarketStatsHourly, chain_id, first_hour, first_hour + HOUR)
    trades = raw["trades"]
    hourly = fresh
    keys = _Keys()
    if stored.height:
        hourly = combine_market_stats(pl.concat([stored, fresh]), HOUR)
        if int(stored["trades"].sum()):  # the hour's distinct traders: its earlier trades and the new ones
            keys = _hour_keys(conn, chain_id, hot, first_hour, stored, through)
            keys.add(_pairs(trades.filter(pl.col("ts") < first_hour + HOUR)))  # in place: hot keys are not used again
            counts = pl.DataFrame({"market": list(keys.per_market), "_n": list(keys.per_market.values())},
                                  schema={"market": pl.String(), "_n": pl.Int64()})
            hourly = hourly.join(counts, on="market", how="left").with_columns(
                pl.when(pl.col("bucket") == first_hour).then(pl.col("_n").fill_null(0)).otherwise(pl.col("traders"))
                .alias("traders")).drop("_n")
    if trades.height:
        last_hour = int(trades["ts"].max()) // HOUR * HOUR  # type: ignore[arg-type]
        in_last = _pairs(trades.filter(pl.col("ts") >= last_hour))
        if last_hour == first_hour:
            keys.add(in_last)
        after.hour, after.hour_keys = last_hour, keys if last_hour == first_hour else _Keys(in_last)
    elif hot is not None:
        after.hour, after.hour_keys = hot.hour, hot.hour_keys
    db.upsert_frame(conn, schema.MarketStatsHourly, hourly)
    stored_p = _stored(conn, schema.ProtocolStatsHourly, chain_id, first_hour, first_hour + HOUR)
    db.upsert_frame(conn, schema.ProtocolStatsHourly,
                    combine_protocol_stats(pl.concat([stored_p, protocol]), HOUR) if stored_p.height else protocol)
    return hourly


def _day_keys(conn: Connection, chain_id: int, hot: _Hot | None, day: int) -> _Keys:
    """The stored trader-day keys of ``day`` as (market, trader) pairs: the hot ones when they are that
    day's and match the stored distinct traders (per market and across markets), else read (every key
    of the day, so the next commit's fold has them)."""
    if hot is not None and hot.day == day:
        across = conn.execute(sa.text("SELECT traders FROM traders_daily WHERE chain_id = :c AND bucket = :d"),
                              {"c": chain_id, "d": day}).scalar()
        if len(hot.day_keys.traders) == int(across or 0) and hot.day_keys.matches(
                _stored(conn, schema.MarketStatsDaily, chain_id, day, day + DAY)):
            return hot.day_keys
    rows = conn.execute(sa.text("SELECT market, trader FROM trader_daily WHERE chain_id = :c AND bucket = :d"),
                        {"c": chain_id, "d": day}).all()
    return _Keys((str(m), str(t)) for m, t in rows)


def _fold_trader_days(conn: Connection, chain_id: int, raw: dict[str, pl.DataFrame], hot: _Hot | None,
                      after: _Hot) -> pl.DataFrame:
    """Add the new trades to trader_daily, trader_totals and trader_last_trade; the new rows' trader-day
    keys with ``new`` (the day had no such key) and ``new_on_day`` (the day had no key of the trader).
    ``hot``: what the previous fold left (or None); ``after`` is given the keys of the last day with trades."""
    delta = trader_daily(raw, chain_id)
    if not delta.height:
        if hot is not None:
            after.day, after.day_keys = hot.day, hot.day_keys
        return delta.with_columns(pl.lit(True).alias("new"), pl.lit(True).alias("new_on_day"))
    first_day = int(delta["bucket"].min())  # type: ignore[arg-type]
    keys = _day_keys(conn, chain_id, hot, first_day)
    days, markets, names = delta["bucket"].to_list(), delta["market"].to_list(), delta["trader"].to_list()
    merged = delta.with_columns(
        pl.Series("new", [d != first_day or (m, t) not in keys.pairs for d, m, t in zip(days, markets, names, strict=True)]),
        pl.Series("new_on_day", [d != first_day or t not in keys.traders for d, t in zip(days, names, strict=True)]))
    db.upsert_frame(conn, schema.TraderDay, delta, add=("volume_usd", "trades"))
    last_day = max(days)
    in_last = ((m, t) for d, m, t in zip(days, markets, names, strict=True) if d == last_day)
    if last_day == first_day:
        keys.add(in_last)  # in place: hot keys are not used again
    after.day, after.day_keys = last_day, keys if last_day == first_day else _Keys(in_last)
    totals = merged.group_by("chain_id", "market", "trader").agg(
        pl.col("bucket").min().alias("first_day"), pl.col("volume_usd").sum(), pl.col("trades").sum(),
        pl.col("new").sum().cast(pl.Int64).alias("active_days"))
    db.upsert_frame(conn, schema.TraderTotal, _conform(totals, schema.TraderTotal),
                    add=("volume_usd", "trades", "active_days"), keep=("first_day",))
    trades = raw["trades"]
    last = pl.concat([trades.select(pl.col(side).alias("trader"), "ts") for side in ("maker", "taker")]).group_by(
        "trader").agg(pl.col("ts").max().alias("last_ts"))
    db.upsert_frame(conn, schema.TraderLastTrade, _conform(
        last.with_columns(pl.lit(chain_id, dtype=pl.Int64).alias("chain_id")), schema.TraderLastTrade),
        keep_greater=("last_ts",))
    return merged.select("bucket", "market", "trader", "new", "new_on_day")


def _fold_days(conn: Connection, chain_id: int, hourly: pl.DataFrame, keys: pl.DataFrame,
               protocol_days: list[int]) -> None:
    """Derive the touched days from their stored hours; their traders from the stored counts plus the new keys."""
    days = sorted(set(hourly["bucket"].to_list()) | set(protocol_days))
    if not days:
        return
    first, end = days[0] // DAY * DAY, days[-1] // DAY * DAY + DAY
    per_market = keys.filter("new").group_by("bucket", "market").agg(pl.len().cast(pl.Int64).alias("_new"))
    if hourly.height:
        old = _stored(conn, schema.MarketStatsDaily, chain_id, first, end).select(
            "bucket", "market", pl.col("traders").alias("_old"))
        derived = combine_market_stats(_stored(conn, schema.MarketStatsHourly, chain_id, first, end), DAY)
        derived = derived.join(old, on=["bucket", "market"], how="left").join(per_market, on=["bucket", "market"], how="left")
        daily = _conform(derived.with_columns((pl.col("_old").fill_null(0) + pl.col("_new").fill_null(0)).alias("traders")),
                         schema.MarketStatsDaily)
        db.upsert_frame(conn, schema.MarketStatsDaily, daily)
        # every market's row of these days: days derive from hours, and these are all their hours
        db.upsert_frame(conn, schema.DayTotals, day_totals(daily))
    protocol = combine_protocol_stats(_stored(conn, schema.ProtocolStatsHourly, chain_id, first, end), DAY)
    db.upsert_frame(conn, schema.ProtocolStatsDaily, _conform(protocol, schema.ProtocolStatsDaily))
    on_day = keys.filter("new_on_day").group_by("bucket").agg(pl.col("trader").n_unique().cast(pl.Int64).alias("_new"))
    if on_day.height:
        old_days = _stored(conn, schema.DailyActiveTraders, chain_id, first, end).select("bucket", pl.col("traders").alias("_old"))
        active = on_day.join(old_days, on="bucket", how="left").with_columns(
            pl.lit(chain_id, dtype=pl.Int64).alias("chain_id"),
            (pl.col("_old").fill_null(0) + pl.col("_new")).alias("traders"))
        db.upsert_frame(conn, schema.DailyActiveTraders, _conform(active, schema.DailyActiveTraders))


POSITION_COLUMNS = ("position_key", "account", "market", "is_long", "size", "entry_price", "collateral_usd",
                    "block_number", "log_index", "block_timestamp")
# A position update's place in the chain as one integer (log indexes stay far below 100,000 per block).
_ORDER = "block_number * 100000 + log_index"


def _insert_latest(conn: Connection, chain_id: int, where: str, params: dict[str, object], *, replace: bool = False) -> None:
    """Write into positions_latest each matching key's last update (``where`` filters position_updates);
    with ``replace``, over the key's stored row."""
    cols = ", ".join(POSITION_COLUMNS)
    upsert = (" ON CONFLICT (chain_id, position_key) DO UPDATE SET "
              + ", ".join(f"{c} = excluded.{c}" for c in POSITION_COLUMNS[1:])) if replace else ""
    conn.execute(sa.text(
        f"INSERT INTO positions_latest (chain_id, {cols}) SELECT u.chain_id, {', '.join('u.' + c for c in POSITION_COLUMNS)} "
        f"FROM (SELECT position_key, MAX({_ORDER}) AS k FROM position_updates WHERE chain_id = :c AND {where} "
        f"GROUP BY position_key) m JOIN position_updates u ON u.chain_id = :c "
        f"AND u.block_number = m.k / 100000 AND u.log_index = m.k % 100000 WHERE true{upsert}"),  # WHERE: SQLite's upsert rule
        {"c": chain_id, **params})


def _fold(conn: Connection, chain_id: int, first_block: int, end_block: int | None,
          raw: dict[str, pl.DataFrame] | None = None) -> None:
    """Fold the rows of first_block ≤ block < end_block in (the rollups are built through first_block − 1);
    ``raw``: those rows, when the caller has them (else they are read)."""
    if raw is None:
        raw = _raw_frames(conn, chain_id, first_block, end_block)
    if not any(f.height for f in raw.values()):
        return
    hot = _HOT.pop(_hot_key(conn, chain_id), None)
    hot = hot if hot is not None and hot.through == first_block - 1 else None
    last = end_block - 1 if end_block is not None else conn.execute(sa.select(sa.func.max(_BLOCKS.c.number)).where(
        _BLOCKS.c.chain_id == chain_id)).scalar()
    after = _Hot(through=int(last) if last is not None else first_block - 1)
    hourly = _fold_hours(conn, chain_id, raw, first_block - 1, hot, after)
    keys = _fold_trader_days(conn, chain_id, raw, hot, after)
    protocol_days = sorted({int(ts) // DAY * DAY for name in ("debt", "fund", "vault", "blocks") for ts in
                            raw[name]["ts"].unique().to_list()})
    _fold_days(conn, chain_id, hourly, keys, protocol_days)
    pnl_days = trader_pnl_daily(raw, chain_id)
    db.upsert_frame(conn, schema.TraderPnlDay, pnl_days, add=("realized_pnl_usd", "funding_paid_usd", "fees_usd"))
    _count_pnl_days(conn, chain_id, pnl_days["bucket"].unique().to_list())
    _fold_premium(conn, chain_id, raw)
    _insert_latest(conn, chain_id, "block_number >= :b AND block_number < :e",
                   {"b": first_block, "e": end_block if end_block is not None else _NO_END}, replace=True)
    _HOT[_hot_key(conn, chain_id)] = after


def _fold_premium(conn: Connection, chain_id: int, raw: dict[str, pl.DataFrame]) -> None:
    """Add the new pushes' hourly sums to premium_hourly (sums and counts add: the hour's means merge)."""
    db.upsert_frame(conn, schema.PremiumHourly, premium_hourly(raw, chain_id),
                    add=("premium_sum_usd", "index_sum_usd", "pushes"))


def _count_pnl_days(conn: Connection, chain_id: int, days: list[int]) -> None:
    """Recount trader_pnl_counts for ``days`` from their trader_pnl_daily rows."""
    for day in sorted(int(d) for d in days):
        conn.execute(sa.text(
            "INSERT INTO trader_pnl_counts (chain_id, bucket, profitable_traders, losing_traders) "
            "SELECT :c, :d, COALESCE(SUM(CASE WHEN realized_pnl_usd - funding_paid_usd - fees_usd > 0 THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN realized_pnl_usd - funding_paid_usd - fees_usd < 0 THEN 1 ELSE 0 END), 0) "
            "FROM trader_pnl_daily WHERE chain_id = :c AND bucket = :d "
            "ON CONFLICT (chain_id, bucket) DO UPDATE SET profitable_traders = excluded.profitable_traders, "
            "losing_traders = excluded.losing_traders"), {"c": chain_id, "d": day})


# ------------------------------------------------------------------ rewind to a day

_DAY_SUMS = ("SELECT market, trader, MIN(bucket) AS first_day, SUM(volume_usd) AS volume_usd, SUM(trades) AS trades, "
             "COUNT(*) AS active_days FROM trader_daily WHERE chain_id = :c AND bucket >= :d GROUP BY market, trader")


def _take_from_totals(conn: Connection, chain_id: int, day0: int) -> None:
    """Take trader_daily's rows from ``day0`` on out of trader_totals (before they are deleted)."""
    p = {"c": chain_id, "d": day0}
    conn.execute(sa.text(
        "UPDATE trader_totals SET volume_usd = trader_totals.volume_usd - s.volume_usd, "
        "trades = trader_totals.trades - s.trades, active_days = trader_totals.active_days - s.active_days "
        f"FROM ({_DAY_SUMS}) AS s WHERE trader_totals.chain_id = :c AND trader_totals.market = s.market "
        "AND trader_totals.trader = s.trader"), p)
    # A row left with no day began at or after day0; one with days left began before it (first_day stays).
    conn.execute(sa.text("DELETE FROM trader_totals WHERE chain_id = :c AND active_days <= 0"), p)


def _add_to_totals(conn: Connection, chain_id: int, day0: int) -> None:
    """Add trader_daily's rows from ``day0`` on to trader_totals (a backfill of an empty trader_totals)."""
    conn.execute(sa.text(
        "INSERT INTO trader_totals (chain_id, market, trader, first_day, volume_usd, trades, active_days) "
        f"SELECT :c, s.market, s.trader, s.first_day, s.volume_usd, s.trades, s.active_days FROM ({_DAY_SUMS}) AS s "
        "WHERE true ON CONFLICT (chain_id, market, trader) DO UPDATE SET "  # WHERE: SQLite's upsert-after-SELECT rule
        "volume_usd = trader_totals.volume_usd + excluded.volume_usd, trades = trader_totals.trades + excluded.trades, "
        "active_days = trader_totals.active_days + excluded.active_days"), {"c": chain_id, "d": day0})


def _rewind_positions(conn: Connection, chain_id: int, cut: int) -> None:
    """positions_latest as of the blocks below ``cut``, for a fold of every stored block from ``cut`` on:
    rows from ``cut`` on go; a key with no update left from ``cut`` on (a reorg deleted them) gets its
    latest older update back (the fold writes the others' latest)."""
    t = schema.table_of(schema.PositionLatest)
    stale = {str(k) for (k,) in conn.execute(sa.select(t.c.position_key).where(
        t.c.chain_id == chain_id, t.c.block_number >= cut))}
    conn.execute(sa.delete(t).where(t.c.chain_id == chain_id, t.c.block_number >= cut))
    if cut <= 0 or not stale:
        return
    u = schema.table_of(schema.PositionUpdate)
    present = {str(k) for (k,) in conn.execute(sa.select(u.c.position_key).distinct().where(
        u.c.chain_id == chain_id, u.c.block_number >= cut))}
    for names, params in _chunks(sorted(stale - present)):
        _insert_latest(conn, chain_id, f"block_number < :cut AND position_key IN ({names})", {"cut": cut, **params})


def _rewind_last_trades(conn: Connection, chain_id: int, day0: int, cut: int) -> None:
    """trader_last_trade as of the trades before ``day0`` (blocks below ``cut``), for a fold of every
    stored block from ``cut`` on: a trader last seen from ``day0`` on with no trade left from there (a
    reorg deleted them) gets the time of their last earlier trade, read from the raw trades of their
    last earlier day (the fold writes the others'). Call before trader_daily's rows from ``day0`` go."""
    t = schema.table_of(schema.TraderLastTrade)
    stale = {str(k) for (k,) in conn.execute(sa.select(t.c.trader).where(t.c.chain_id == chain_id, t.c.last_ts >= day0))}
    conn.execute(sa.delete(t).where(t.c.chain_id == chain_id, t.c.last_ts >= day0))
    if not stale:
        return
    last = conn.execute(sa.select(sa.func.max(schema.table_of(schema.Block).c.number)).where(
        schema.table_of(schema.Block).c.chain_id == chain_id)).scalar()
    present = set(_sides(conn, chain_id, cut, int(last))["trader"].to_list()) if last is not None and last >= cut else set()
    previous: dict[int, set[str]] = {}
    for names, params in _chunks(sorted(stale - present)):
        for trader, day in conn.execute(sa.text(
                f"SELECT trader, MAX(bucket) FROM trader_daily WHERE chain_id = :c AND bucket < :d AND trader IN ({names}) "
                "GROUP BY trader"), {"c": chain_id, "d": day0, **params}):
            previous.setdefault(int(day), set()).add(str(trader))
    for day, traders in previous.items():
        first = _first_block_in(conn, chain_id, day, day + DAY)
        if first is None:
            continue
        found = _sides(conn, chain_id, first, _last_block_before(conn, chain_id, day + DAY)).filter(
            pl.col("trader").is_in(sorted(traders)))
        db.upsert_frame(conn, schema.TraderLastTrade, _conform(found.group_by("trader").agg(
            pl.col("ts").max().alias("last_ts")).with_columns(pl.lit(chain_id, dtype=pl.Int64).alias("chain_id")),
            schema.TraderLastTrade))


_BUCKETED = (schema.MarketStatsHourly, schema.MarketStatsDaily, schema.DayTotals, schema.ProtocolStatsHourly, schema.ProtocolStatsDaily,
             schema.TraderDay, schema.DailyActiveTraders, schema.TraderPnlDay, schema.TraderPnlCounts, schema.PremiumHourly)


def rewind(conn: Connection, chain_id: int, day0: int) -> int:
    """Take every rollup back to the start of UTC day ``day0``, for a fold of every stored block from
    there (as :func:`refresh_in` does); the last block before it (-1: none)."""
    before = _last_block_before(conn, chain_id, day0)
    _rewind_positions(conn, chain_id, before + 1)
    _rewind_last_trades(conn, chain_id, day0, before + 1)
    _take_from_totals(conn, chain_id, day0)
    for model in _BUCKETED:
        t = schema.table_of(model)
        conn.execute(sa.delete(t).where(t.c.chain_id == chain_id, t.c.bucket >= day0))
    return before


# ------------------------------------------------------------------ trader counts

def traders_between(conn: Connection, chain_id: int, start: int, end: int, markets: tuple[str, ...] | None) -> int:
    """Distinct makers and takers of trades with start <= block time < end (an exact window, from raw trades).

    Blocks give the window's block range, so the trades are read by their primary key."""
    b, t = schema.table_of(schema.Block), schema.table_of(schema.Trade)
    lo, hi = conn.execute(sa.select(sa.func.min(b.c.number), sa.func.max(b.c.number)).where(
        b.c.chain_id == chain_id, b.c.timestamp >= start, b.c.timestamp < end)).one()
    if lo is None:
        return 0
    where = [t.c.chain_id == chain_id, t.c.block_number >= lo, t.c.block_number <= hi]
    if markets is not None:
        where.append(t.c.market.in_(markets))
    sides = sa.union(sa.select(t.c.maker.label("trader")).where(*where), sa.select(t.c.taker).where(*where)).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(sides)).scalar_one())


def _count_traders(conn: Connection, chain_id: int) -> None:
    """Store trader_counts for the newest block, from trader_last_trade (after it is current)."""
    b, last, t = (schema.table_of(m) for m in (schema.Block, schema.TraderLastTrade, schema.TraderCounts))
    row = conn.execute(sa.select(b.c.timestamp).where(b.c.chain_id == chain_id).order_by(b.c.number.desc()).limit(1)).first()
    conn.execute(sa.delete(t).where(t.c.chain_id == chain_id))
    if row is None:
        return
    as_of = int(row[0])

    def count(*where: sa.ColumnElement[bool]) -> int:
        q = sa.select(sa.func.count()).select_from(last).where(last.c.chain_id == chain_id, *where)
        return int(conn.execute(q).scalar_one())

    conn.execute(sa.insert(t).values(chain_id=chain_id, as_of=as_of, traders_total=count(),
                                     traders_24h=count(last.c.last_ts > as_of - DAY)))


# ------------------------------------------------------------------ state, backfills, entry points

def _state(conn: Connection, chain_id: int) -> tuple[int, int | None]:
    t = schema.table_of(schema.RollupState)
    row = conn.execute(sa.select(t.c.through_block, t.c.dirty_from).where(t.c.chain_id == chain_id)).first()
    return (int(row[0]), row[1]) if row else (-1, None)


def _set_state(conn: Connection, chain_id: int, through: int, dirty_from: int | None) -> None:
    t = schema.table_of(schema.RollupState)
    conn.execute(sa.delete(t).where(t.c.chain_id == chain_id))
    conn.execute(sa.insert(t).values(chain_id=chain_id, through_block=through, dirty_from=dirty_from))


def _empty(conn: Connection, model: type[SQLModel], chain_id: int) -> bool:
    t = schema.table_of(model)
    return conn.execute(sa.select(t.c.chain_id).where(t.c.chain_id == chain_id).limit(1)).first() is None


def _backfill_positions(conn: Connection, chain_id: int, through: int) -> None:
    """Fill positions_latest when it is empty but updates exist (a database indexed before the table
    existed): once; refreshes keep it from then on."""
    if _empty(conn, schema.PositionLatest, chain_id) and not _empty(conn, schema.PositionUpdate, chain_id):
        _insert_latest(conn, chain_id, "block_number <= :t", {"t": through})


def _backfill_traders(conn: Connection, chain_id: int, through: int) -> None:
    """Fill traders_daily, trader_totals and trader_last_trade when they are empty but trader_daily
    is not (a database rolled up before they existed): once; refreshes keep them from then on."""
    if _empty(conn, schema.TraderDay, chain_id):
        return
    if _empty(conn, schema.DailyActiveTraders, chain_id):
        conn.execute(sa.text("INSERT INTO traders_daily (chain_id, bucket, traders) SELECT :c, bucket, COUNT(DISTINCT trader) "
                             "FROM trader_daily WHERE chain_id = :c GROUP BY bucket"), {"c": chain_id})
    if _empty(conn, schema.TraderTotal, chain_id):
        _add_to_totals(conn, chain_id, 0)
    if _empty(conn, schema.TraderPnlCounts, chain_id) and not _empty(conn, schema.TraderPnlDay, chain_id):
        days = [int(d) for (d,) in conn.execute(sa.text("SELECT DISTINCT bucket FROM trader_pnl_daily WHERE chain_id = :c"),
                                                   {"c": chain_id})]
        _count_pnl_days(conn, chain_id, days)
    if _empty(conn, schema.TraderLastTrade, chain_id):
        conn.execute(sa.text(
            "INSERT INTO trader_last_trade (chain_id, trader, last_ts) SELECT :c, trader, MAX(ts) FROM ("
            "SELECT maker AS trader, block_timestamp AS ts FROM trades WHERE chain_id = :c AND block_number <= :t "
            "UNION ALL SELECT taker, block_timestamp FROM trades WHERE chain_id = :c AND block_number <= :t) AS sides "
            "GROUP BY trader"), {"c": chain_id, "t": through})


def _backfill_day_totals(conn: Connection, chain_id: int) -> None:
    """Fill totals_daily from stats_daily when it is empty but stats_daily is not (a database rolled up
    before the table existed): once, :func:`day_totals` of every daily row; refreshes keep it from then on."""
    if not _empty(conn, schema.DayTotals, chain_id) or _empty(conn, schema.MarketStatsDaily, chain_id):
        return
    db.upsert_frame(conn, schema.DayTotals, day_totals(_stored(conn, schema.MarketStatsDaily, chain_id, 0, _NO_END)))


def _backfill_premium(conn: Connection, chain_id: int, through: int) -> None:
    """Fill premium_hourly from the raw prices through block ``through`` when it is empty but prices
    exist (a database rolled up before the table existed): that table only, once (one GROUP BY over
    the prices; the other rollups are left as they are)."""
    if not _empty(conn, schema.PremiumHourly, chain_id) or _empty(conn, schema.Price, chain_id):
        return
    conn.execute(sa.text(
        "INSERT INTO premium_hourly (chain_id, market, bucket, premium_sum_usd, index_sum_usd, pushes) "
        f"SELECT :c, market, block_timestamp / {HOUR} * {HOUR}, SUM(mark_price - index_price), SUM(index_price), COUNT(*) "
        f"FROM prices WHERE chain_id = :c AND block_number <= :t GROUP BY market, block_timestamp / {HOUR} * {HOUR}"),
        {"c": chain_id, "t": through})


def upgrade(engine: Engine) -> None:
    """Fill the rollup tables added since a database was last rolled up (totals_daily from stats_daily;
    positions_latest, the trader tables, premium_hourly from the raw rows; the other rollups left as they are), and build all of them for a chain whose rollups an upgrade dropped, so a reader opening it
    sees them before the indexer's next refresh. Writes only when there is something to fill."""
    state, checkpoints = schema.table_of(schema.RollupState), schema.table_of(schema.Checkpoint)
    with engine.connect() as conn:
        unrolled = sorted({int(c) for (c,) in conn.execute(sa.select(checkpoints.c.chain_id).where(
            checkpoints.c.chain_id.not_in(sa.select(state.c.chain_id))))})
    for chain_id in unrolled:  # indexed, but its rollups were dropped as outdated (db.make_engine): build them
        refresh(engine, chain_id)
    with engine.connect() as conn:
        chains = [(int(c), int(t)) for c, t in conn.execute(
            sa.select(state.c.chain_id, state.c.through_block).where(state.c.through_block >= 0))]
        stale = [(c, t) for c, t in chains if any(_empty(conn, m, c) for m in (
            schema.DailyActiveTraders, schema.TraderTotal, schema.TraderLastTrade, schema.TraderCounts,
            schema.PositionLatest, schema.TraderPnlCounts, schema.DayTotals))]
    for chain_id, through in stale:
        with engine.begin() as conn:
            _backfill_day_totals(conn, chain_id)
            _backfill_positions(conn, chain_id, through)
            _backfill_traders(conn, chain_id, through)
            _count_traders(conn, chain_id)
    with engine.connect() as conn:
        unfilled = [c for c, _ in chains if _empty(conn, schema.PremiumHourly, c) and not _empty(conn, schema.Price, c)]
    if unfilled:  # under a lock: two readers opening the database at once fill it once (the second finds it filled)
        with db.exclusive(engine, "premium-backfill"), engine.begin() as conn:
            for chain_id in unfilled:
                _backfill_premium(conn, chain_id, _state(conn, chain_id)[0])


def refresh(engine: Engine, chain_id: int) -> int | None:
    """Fold the blocks added since the last refresh in, in one transaction; the first UTC day touched (or None)."""
    with engine.begin() as conn:
        return refresh_in(conn, chain_id)


def _windows(conn: Connection, chain_id: int, first: int, end: int | None) -> Iterator[tuple[int, int | None]]:
    """first ≤ block < end (None: to the last) as ranges of at most WINDOW_DAYS whole UTC days each."""
    b = schema.table_of(schema.Block)
    bounds = [b.c.chain_id == chain_id] + ([b.c.number < end] if end is not None else [])
    first_ts, last_ts = conn.execute(sa.select(sa.func.min(b.c.timestamp), sa.func.max(b.c.timestamp)).where(
        *bounds, b.c.number >= first)).one()
    if first_ts is None:
        return
    start, span = int(first_ts) // DAY * DAY, WINDOW_DAYS * DAY
    while start + span <= int(last_ts):
        found = conn.execute(sa.select(b.c.number).where(*bounds, b.c.number >= first, b.c.timestamp >= start + span)
                             .order_by(b.c.number).limit(1)).first()
        if found is None:  # not reached: a block at last_ts ≥ start + span is in range
            break
        yield first, int(found[0])
        first, start = int(found[0]), start + span
    yield first, end


def fold(conn: Connection, chain_id: int, first_block: int, end_block: int | None = None) -> None:
    """Fold the rows of first_block ≤ block < end_block into rollups built through first_block − 1, and
    count the traders again: what :func:`refresh_in` does for the blocks a commit adds (without
    moving rollup_state)."""
    for first, end in _windows(conn, chain_id, first_block, end_block):
        _fold(conn, chain_id, first, end)
    _count_traders(conn, chain_id)


def rolled_up_to_end(conn: Connection, chain_id: int) -> bool:
    """Whether every stored block is rolled up (nothing dirty, no block after rollup_state's)."""
    through, dirty_from = _state(conn, chain_id)
    b = schema.table_of(schema.Block)
    return dirty_from is None and conn.execute(sa.select(b.c.number).where(
        b.c.chain_id == chain_id, b.c.number > through).limit(1)).first() is None


def refresh_in(conn: Connection, chain_id: int,
               added: Sequence[tuple[type[SQLModel], pl.DataFrame]] | None = None) -> int | None:
    """:func:`refresh` inside the caller's transaction: the indexer commits a chunk's rows and the
    rollups they change together, so a reader never sees rows the headline figures do not count.

    ``added``: the frames just written, when every block stored before them was rolled up
    (:func:`rolled_up_to_end`, asked before the insert) — then the new rows are folded from them
    instead of read back; a batch of blocks at or below rollup_state's is read as usual."""
    through, dirty_from = _state(conn, chain_id)
    if through >= 0:  # rollups built before totals_daily, positions_latest, the trader tables or premium_hourly existed
        _backfill_day_totals(conn, chain_id)
        _backfill_positions(conn, chain_id, through)
        _backfill_traders(conn, chain_id, through)
        _backfill_premium(conn, chain_id, through)
    b = schema.table_of(schema.Block)
    newest, first_ts = conn.execute(sa.select(sa.func.max(b.c.number), sa.func.min(b.c.timestamp)).where(
        b.c.chain_id == chain_id, b.c.number > through)).one()
    if newest is None and dirty_from is None:
        return None
    starts = [int(ts) for ts in (first_ts, dirty_from) if ts is not None]
    day0 = min(starts) // DAY * DAY
    if dirty_from is not None:
        through = rewind(conn, chain_id, day0)
        newest = conn.execute(sa.select(sa.func.max(b.c.number)).where(b.c.chain_id == chain_id)).scalar()
    blocks = dict(added or []).get(schema.Block)
    if dirty_from is None and blocks is not None and blocks.height and int(blocks["number"].min()) > through:  # type: ignore[arg-type]
        _fold(conn, chain_id, through + 1, None, raw_from_frames(conn, chain_id, added or []))
        _count_traders(conn, chain_id)
    else:
        fold(conn, chain_id, through + 1)
    _set_state(conn, chain_id, max(through, int(newest)) if newest is not None else through, None)
    return day0


def invalidate(conn: Connection, chain_id: int, last_good: int) -> None:
    """Mark the buckets of blocks above ``last_good`` dirty (a reorg rewind; call before deleting them)."""
    b = schema.table_of(schema.Block)
    first_ts = conn.execute(sa.select(sa.func.min(b.c.timestamp)).where(
        b.c.chain_id == chain_id, b.c.number > last_good)).scalar()
    through, dirty_from = _state(conn, chain_id)
    if first_ts is None and through <= last_good:
        return
    starts = [int(ts) for ts in (first_ts, dirty_from) if ts is not None]
    _set_state(conn, chain_id, min(through, last_good), min(starts) if starts else None)
