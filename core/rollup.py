"""Incremental hourly and daily rollups, so pages cost O(buckets × markets), not O(trades).

After every indexer commit, :func:`refresh` rebuilds the buckets from the first UTC day touched by
new blocks (or invalidated by a reorg rewind) onwards, from the event tables, in one transaction.
Rollups are derived data: rebuilding any range from the raw rows gives the same rows, which the
tests check against a full recomputation over random splits of the history.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from core import db, schema
from core.utc import DAY, HOUR

WINDOW_DAYS = 7  # days of raw rows a refresh reads and rolls up at a time


def _read(conn: Connection, sql: str, params: dict[str, object], schema_: dict[str, pl.DataType]) -> pl.DataFrame:
    return db.read_frame(conn, sql, schema_, params)


def _raw_frames(conn: Connection, chain_id: int, first_block: int, end_block: int | None = None) -> dict[str, pl.DataFrame]:
    """The event rows rollups are built from, for first_block ≤ block < end_block, in chain order."""
    p = {"c": chain_id, "b": first_block, "e": end_block if end_block is not None else 2**62}
    where = "WHERE chain_id = :c AND block_number >= :b AND block_number < :e ORDER BY block_number, log_index"
    f64, i64, s, b = pl.Float64(), pl.Int64(), pl.String(), pl.Boolean()
    return {
        "trades": _read(conn, f"SELECT block_timestamp, market, maker, taker, taker_is_buy, size, price, notional_usd, "
                              f"maker_fee_usd + taker_fee_usd FROM trades {where}", p,
                        {"ts": i64, "market": s, "maker": s, "taker": s, "taker_is_buy": b, "size": f64, "price": f64,
                         "notional_usd": f64, "fees_usd": f64}),
        "liquidations": _read(conn, f"SELECT block_timestamp, market, is_long, notional_usd, adl_covered_usd, "
                                    f"backstop_loss_usd, insurance_cover_usd, socialized_usd FROM liquidations {where}", p,
                              {"ts": i64, "market": s, "is_long": b, "notional_usd": f64, "adl_covered_usd": f64,
                               "backstop_loss_usd": f64, "insurance_cover_usd": f64, "socialized_usd": f64}),
        "open_interest": _read(conn, f"SELECT block_timestamp, market, long_open_interest, short_open_interest "
                                     f"FROM open_interest {where}", p,
                               {"ts": i64, "market": s, "long_open_interest": f64, "short_open_interest": f64}),
        "prices": _read(conn, f"SELECT block_timestamp, market, mark_price FROM prices {where}", p,
                        {"ts": i64, "market": s, "mark_price": f64}),
        "funding": _read(conn, f"SELECT block_timestamp, market, funding_rate FROM funding {where}", p,
                         {"ts": i64, "market": s, "funding_rate": f64}),
        "debt": _read(conn, f"SELECT block_timestamp, amount_usd FROM socialized_debt {where}", p,
                      {"ts": i64, "amount_usd": f64}),
        "fund": _read(conn, f"SELECT block_timestamp, balance_usd FROM insurance_fund_events {where}", p,
                      {"ts": i64, "balance_usd": f64}),
        "vault": _read(conn, f"SELECT block_timestamp, value_change_usd FROM backstop_vault_events {where}", p,
                       {"ts": i64, "value_change_usd": f64}),
        "blocks": _read(conn, "SELECT timestamp FROM blocks WHERE chain_id = :c AND number >= :b AND number < :e", p, {"ts": i64}),
    }



POSITION_COLUMNS = ("position_key", "account", "market", "is_long", "size", "entry_price", "collateral_usd",
                    "block_number", "log_index", "block_timestamp")
# A position update's place in the chain as one integer (log indexes stay far below 100,000 per block).
_ORDER = "block_number * 100000 + log_index"


def _insert_latest(conn: Connection, chain_id: int, where: str, params: dict[str, object]) -> None:
    """Insert into positions_latest each matching key's last update (``where`` filters position_updates)."""
    cols = ", ".join(POSITION_COLUMNS)
    conn.execute(sa.text(
        f"INSERT INTO positions_latest (chain_id, {cols}) SELECT u.chain_id, {', '.join('u.' + c for c in POSITION_COLUMNS)} "
        f"FROM (SELECT position_key, MAX({_ORDER}) AS k FROM position_updates WHERE chain_id = :c AND {where} "
        f"GROUP BY position_key) m JOIN position_updates u ON u.chain_id = :c "
        f"AND u.block_number = m.k / 100000 AND u.log_index = m.k % 100000"), {"c": chain_id, **params})


def _replace_positions(conn: Connection, chain_id: int, first_block: int) -> None:
    """Rebuild positions_latest for every key updated from ``first_block`` on, in the database.

    Rows from ``first_block`` on go; the keys updated since drop their older row and get their latest
    update. A key whose row went and that has no update left from ``first_block`` on (a reorg rewound
    them) gets its latest older update back."""
    t = schema.table_of(schema.PositionLatest)
    p = {"b": first_block}
    if conn.execute(sa.select(t.c.chain_id).where(t.c.chain_id == chain_id).limit(1)).first() is None:
        _insert_latest(conn, chain_id, "block_number >= :b", p)  # nothing to replace (a first build)
        return
    stale = {k for (k,) in conn.execute(sa.select(t.c.position_key).where(
        t.c.chain_id == chain_id, t.c.block_number >= first_block))}
    conn.execute(sa.delete(t).where(t.c.chain_id == chain_id, t.c.block_number >= first_block))
    conn.execute(sa.text("DELETE FROM positions_latest WHERE chain_id = :c AND position_key IN "
                         "(SELECT position_key FROM position_updates WHERE chain_id = :c AND block_number >= :b)"),
                 {"c": chain_id, **p})
    _insert_latest(conn, chain_id, "block_number >= :b", p)
    present = {k for (k,) in conn.execute(sa.select(t.c.position_key).where(
        t.c.chain_id == chain_id, t.c.block_number >= first_block))}
    orphans = sorted(stale - present)
    for i in range(0, len(orphans), 500):
        chunk = {f"k{j}": k for j, k in enumerate(orphans[i:i + 500])}
        _insert_latest(conn, chain_id, f"position_key IN ({', '.join(':' + n for n in chunk)})", chunk)


def market_stats(raw: dict[str, pl.DataFrame], size: int, chain_id: int) -> pl.DataFrame:
    """Per (market, bucket of ``size`` seconds): the columns of schema.MarketStats."""
    bucket = (pl.col("ts") // size * size).alias("bucket")
    trades = raw["trades"].with_columns(bucket).group_by("market", "bucket").agg(
        pl.col("notional_usd").sum().alias("volume_usd"),
        pl.col("size").sum().alias("base_volume"),
        pl.len().cast(pl.Int64).alias("trades"),
        pl.col("notional_usd").filter(pl.col("taker_is_buy")).sum().alias("taker_buy_volume_usd"),
        pl.col("fees_usd").sum(),
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
    last = lambda name, cols: raw[name].with_columns(bucket).group_by("market", "bucket").agg(  # noqa: E731
        *(pl.col(c).last() for c in cols))
    keys = pl.concat([f.select("market", "bucket") for f in (
        trades, liq, last("open_interest", []), last("prices", []), last("funding", []))]).unique()
    out = (keys.join(trades, on=["market", "bucket"], how="left")
           .join(liq, on=["market", "bucket"], how="left")
           .join(last("open_interest", ["long_open_interest", "short_open_interest"]), on=["market", "bucket"], how="left")
           .join(last("prices", ["mark_price"]), on=["market", "bucket"], how="left")
           .join(last("funding", ["funding_rate"]), on=["market", "bucket"], how="left"))
    target = schema.frame_schema(schema.MarketStatsDaily)
    zero_filled = [n for n, t in target.items() if n not in (
        "chain_id", "market", "bucket", "open_price", "high_price", "low_price", "close_price",
        "long_open_interest", "short_open_interest", "mark_price", "funding_rate")]
    return out.with_columns(pl.lit(chain_id, dtype=pl.Int64).alias("chain_id"), *(pl.col(c).fill_null(0) for c in zero_filled)) \
        .select(target.names()).cast(dict(target)).sort("bucket", "market")  # type: ignore[arg-type]


def protocol_stats(raw: dict[str, pl.DataFrame], size: int, chain_id: int) -> pl.DataFrame:
    """Per bucket: socialized debt, the insurance fund's last balance, the vault's value change."""
    bucket = (pl.col("ts") // size * size).alias("bucket")
    parts = [
        raw["debt"].with_columns(bucket).group_by("bucket").agg(pl.col("amount_usd").sum().alias("socialized_debt_usd")),
        raw["fund"].with_columns(bucket).group_by("bucket").agg(pl.col("balance_usd").last().alias("insurance_fund_usd")),
        raw["vault"].with_columns(bucket).group_by("bucket").agg(pl.col("value_change_usd").sum().alias("backstop_vault_change_usd")),
        raw["blocks"].with_columns(bucket).group_by("bucket").agg(pl.len().cast(pl.Int64).alias("blocks")),
    ]
    out = pl.concat([p.select("bucket") for p in parts]).unique()
    for part in parts:
        out = out.join(part, on="bucket", how="left")
    target = schema.frame_schema(schema.ProtocolStatsDaily)
    return out.with_columns(
        pl.lit(chain_id, dtype=pl.Int64).alias("chain_id"),
        pl.col("socialized_debt_usd", "backstop_vault_change_usd").fill_null(0.0), pl.col("blocks").fill_null(0),
    ).select(target.names()).cast(dict(target)).sort("bucket")  # type: ignore[arg-type]


def trader_daily(raw: dict[str, pl.DataFrame], chain_id: int) -> pl.DataFrame:
    """Per (UTC day, market, trader): the volume and trades the trader took part in (maker or taker)."""
    t = raw["trades"].with_columns((pl.col("ts") // DAY * DAY).alias("bucket"))
    sides = pl.concat([t.select("bucket", "market", pl.col(side).alias("trader"), "notional_usd") for side in ("maker", "taker")])
    target = schema.frame_schema(schema.TraderDay)
    return sides.group_by("bucket", "market", "trader").agg(
        pl.col("notional_usd").sum().alias("volume_usd"), pl.len().cast(pl.Int64).alias("trades"),
    ).with_columns(pl.lit(chain_id, dtype=pl.Int64).alias("chain_id")).select(target.names()).sort(
        "bucket", "market", "trader")


def traders_daily(per_trader: pl.DataFrame) -> pl.DataFrame:
    """Per UTC day: distinct traders across markets, from :func:`trader_daily`'s rows."""
    target = schema.frame_schema(schema.DailyActiveTraders)
    return per_trader.group_by("chain_id", "bucket").agg(pl.col("trader").n_unique().alias("traders")).select(
        target.names()).cast(dict(target)).sort("bucket")  # type: ignore[arg-type]


def build(raw: dict[str, pl.DataFrame], chain_id: int) -> list[tuple[type[SQLModel], pl.DataFrame]]:
    """Every bucketed rollup table's rows for the raw rows given (whole days)."""
    per_trader = trader_daily(raw, chain_id)
    return [
        (schema.MarketStatsHourly, market_stats(raw, HOUR, chain_id)),
        (schema.MarketStatsDaily, market_stats(raw, DAY, chain_id)),
        (schema.ProtocolStatsHourly, protocol_stats(raw, HOUR, chain_id)),
        (schema.ProtocolStatsDaily, protocol_stats(raw, DAY, chain_id)),
        (schema.TraderDay, per_trader),
        (schema.DailyActiveTraders, traders_daily(per_trader)),
    ]


_DAY_SUMS = ("SELECT market, trader, MIN(bucket) AS first_day, SUM(volume_usd) AS volume_usd, SUM(trades) AS trades, "
             "COUNT(*) AS active_days FROM trader_daily WHERE chain_id = :c AND bucket >= :d GROUP BY market, trader")


def _take_from_totals(conn: Connection, chain_id: int, day0: int) -> None:
    """Take trader_daily's rows from ``day0`` on out of trader_totals (before they are replaced)."""
    p = {"c": chain_id, "d": day0}
    conn.execute(sa.text(
        "UPDATE trader_totals SET volume_usd = trader_totals.volume_usd - s.volume_usd, "
        "trades = trader_totals.trades - s.trades, active_days = trader_totals.active_days - s.active_days "
        f"FROM ({_DAY_SUMS}) AS s WHERE trader_totals.chain_id = :c AND trader_totals.market = s.market "
        "AND trader_totals.trader = s.trader"), p)
    # A row left with no day began at or after day0; one with days left began before it (first_day stays).
    conn.execute(sa.text("DELETE FROM trader_totals WHERE chain_id = :c AND active_days <= 0"), p)


def _add_to_totals(conn: Connection, chain_id: int, day0: int) -> None:
    """Add trader_daily's rows from ``day0`` on to trader_totals (after they are written)."""
    conn.execute(sa.text(
        "INSERT INTO trader_totals (chain_id, market, trader, first_day, volume_usd, trades, active_days) "
        f"SELECT :c, s.market, s.trader, s.first_day, s.volume_usd, s.trades, s.active_days FROM ({_DAY_SUMS}) AS s "
        "WHERE true ON CONFLICT (chain_id, market, trader) DO UPDATE SET "  # WHERE: SQLite's upsert-after-SELECT rule
        "volume_usd = trader_totals.volume_usd + excluded.volume_usd, trades = trader_totals.trades + excluded.trades, "
        "active_days = trader_totals.active_days + excluded.active_days"), {"c": chain_id, "d": day0})


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
    """Store trader_counts for the newest block (after trader_totals is current)."""
    b, totals, t = (schema.table_of(m) for m in (schema.Block, schema.TraderTotal, schema.TraderCounts))
    as_of = conn.execute(sa.select(sa.func.max(b.c.timestamp)).where(b.c.chain_id == chain_id)).scalar()
    conn.execute(sa.delete(t).where(t.c.chain_id == chain_id))
    if as_of is None:
        return
    total = conn.execute(sa.select(sa.func.count(sa.distinct(totals.c.trader))).where(totals.c.chain_id == chain_id)).scalar_one()
    conn.execute(sa.insert(t).values(chain_id=chain_id, as_of=int(as_of), traders_total=int(total),
                                     traders_24h=traders_between(conn, chain_id, as_of - DAY + 1, as_of + 1, None)))


def _state(conn: Connection, chain_id: int) -> tuple[int, int | None]:
    t = schema.table_of(schema.RollupState)
    row = conn.execute(sa.select(t.c.through_block, t.c.dirty_from).where(t.c.chain_id == chain_id)).first()
    return (int(row[0]), row[1]) if row else (-1, None)


def _replace_from(chain_id: int, day0: int, through_block: int, first_block: int) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        _replace_positions(conn, chain_id, first_block)
        _take_from_totals(conn, chain_id, day0)
        for model in schema.ROLLUP_TABLES:
            t = schema.table_of(model)
            if model in (schema.PositionLatest, schema.TraderTotal, schema.TraderCounts):
                continue
            conn.execute(sa.delete(t).where(t.c.chain_id == chain_id, t.c.bucket >= day0))
        t = schema.table_of(schema.RollupState)
        conn.execute(sa.delete(t).where(t.c.chain_id == chain_id))
        conn.execute(sa.insert(t).values(chain_id=chain_id, through_block=through_block, dirty_from=None))
    return run


def _empty(conn: Connection, model: type[SQLModel], chain_id: int) -> bool:
    t = schema.table_of(model)
    return conn.execute(sa.select(t.c.chain_id).where(t.c.chain_id == chain_id).limit(1)).first() is None


def _backfill_positions(conn: Connection, chain_id: int) -> None:
    """Fill positions_latest when it is empty but updates exist (a database indexed before the table
    existed): once; incremental refreshes keep it from then on."""
    if _empty(conn, schema.PositionLatest, chain_id) and not _empty(conn, schema.PositionUpdate, chain_id):
        _replace_positions(conn, chain_id, 0)


def _backfill_traders(conn: Connection, chain_id: int) -> None:
    """Fill traders_daily and trader_totals from trader_daily when they are empty but it is not (a
    database rolled up before they existed): once; refreshes keep them from then on."""
    if _empty(conn, schema.TraderDay, chain_id):
        return
    if _empty(conn, schema.DailyActiveTraders, chain_id):
        conn.execute(sa.text("INSERT INTO traders_daily (chain_id, bucket, traders) SELECT :c, bucket, COUNT(DISTINCT trader) "
                             "FROM trader_daily WHERE chain_id = :c GROUP BY bucket"), {"c": chain_id})
    if _empty(conn, schema.TraderTotal, chain_id):
        _add_to_totals(conn, chain_id, 0)


def upgrade(engine: Engine) -> None:
    """Fill the rollup tables added since a database was last rolled up (positions_latest, the trader
    tables), so a reader opening it sees them before the indexer's next refresh. Writes only when
    one is empty while the rows it derives from are not."""
    state = schema.table_of(schema.RollupState)
    with engine.connect() as conn:
        chains = [int(c) for (c,) in conn.execute(sa.select(state.c.chain_id).where(state.c.through_block >= 0))]
        stale = [c for c in chains if any(_empty(conn, m, c) for m in (
            schema.DailyActiveTraders, schema.TraderTotal, schema.TraderCounts, schema.PositionLatest))]
    for chain_id in stale:
        with engine.begin() as conn:
            _backfill_positions(conn, chain_id)
            _backfill_traders(conn, chain_id)
            _count_traders(conn, chain_id)


def refresh(engine: Engine, chain_id: int) -> int | None:
    """Rebuild the buckets touched since the last refresh, in one transaction; the first day rebuilt (or None)."""
    with engine.begin() as conn:
        return refresh_in(conn, chain_id)


def refresh_in(conn: Connection, chain_id: int) -> int | None:
    """:func:`refresh` inside the caller's transaction: the indexer commits a chunk's rows and the
    rollups they change together, so a reader never sees rows the headline figures do not count."""
    through, dirty_from = _state(conn, chain_id)
    if through >= 0:  # rollups built before positions_latest or the trader tables existed (a first build fills them below)
        _backfill_positions(conn, chain_id)
        _backfill_traders(conn, chain_id)
    b = schema.table_of(schema.Block)
    newest, first_new_ts = conn.execute(sa.select(sa.func.max(b.c.number), sa.func.min(b.c.timestamp)).where(
        b.c.chain_id == chain_id, b.c.number > through)).one()
    starts = [ts for ts in (first_new_ts, dirty_from) if ts is not None]
    if not starts:
        return None
    day0 = min(starts) // DAY * DAY
    first_block = conn.execute(sa.select(sa.func.min(b.c.number)).where(
        b.c.chain_id == chain_id, b.c.timestamp >= day0)).scalar()
    newest = newest if newest is not None else through
    first = first_block if first_block is not None else newest + 1
    _replace_from(chain_id, day0, newest, first)(conn)
    last_ts = conn.execute(sa.select(sa.func.max(b.c.timestamp)).where(b.c.chain_id == chain_id, b.c.number >= first)).scalar()
    # WINDOW_DAYS of raw rows at a time: buckets never straddle whole days, and a rebuild of a
    # long history no longer holds all of it in memory at once (13 GB at 10M trades).
    window = WINDOW_DAYS * DAY
    for start in range(day0, (last_ts + 1) if last_ts is not None else day0, window):
        lo, hi = (conn.execute(sa.select(sa.func.min(b.c.number)).where(b.c.chain_id == chain_id, b.c.timestamp >= t)).scalar()
                  for t in (start, start + window))
        db.insert_frames(conn, build(_raw_frames(conn, chain_id, max(lo, first), hi), chain_id))
    _add_to_totals(conn, chain_id, day0)
    _count_traders(conn, chain_id)
    return day0


def invalidate(conn: Connection, chain_id: int, last_good: int) -> None:
    """Mark the buckets of blocks above ``last_good`` dirty (a reorg rewind; call before deleting them)."""
    b = schema.table_of(schema.Block)
    first_ts = conn.execute(sa.select(sa.func.min(b.c.timestamp)).where(
        b.c.chain_id == chain_id, b.c.number > last_good)).scalar()
    through, dirty_from = _state(conn, chain_id)
    if first_ts is None and through <= last_good:
        return
    dirty = min(ts for ts in (first_ts, dirty_from) if ts is not None) if (first_ts or dirty_from) else None
    t = schema.table_of(schema.RollupState)
    conn.execute(sa.delete(t).where(t.c.chain_id == chain_id))
    conn.execute(sa.insert(t).values(chain_id=chain_id, through_block=min(through, last_good), dirty_from=dirty))
