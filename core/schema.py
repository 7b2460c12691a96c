"""The one place the database schema lives: SQLModel tables, their keys and indexes.

Conventions (shared by every table):
- Every event row carries where it sits in the chain (``chain_id``, ``block_number``,
  ``log_index``: its primary key, see :class:`EventRow`), its transaction (``tx_hash``) and its
  block's time (``block_timestamp``, UTC seconds), so each table can be queried by time × market
  without joins and rows above a reorged block can be deleted table by table.
- Addresses and hashes are lower-case 0x-hex strings.
- Fixed-point chain integers are converted once at decode (EVENTS.md units): USD amounts are
  floats in dollars, prices and sizes floats in whole units. Where exact sums matter the raw
  integer is kept beside the float: ``*_raw`` USD columns hold micro-USD (6 decimals) as
  BIGINT; ``*_raw`` price/size columns hold the 1e18 fixed-point integer as a decimal string,
  because it does not fit a 64-bit column.
- Rollup tables (``ROLLUP_TABLES``) are derived from the event tables by core/rollup.py, keyed by
  chain and bucket (an hour or a UTC day, its start in seconds) or by trader / position.

Next to the tables, :func:`frame_schema` gives the polars schema of the frame that feeds each one;
the loader checks frames against it before writing.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import AutoString


def _bigint(**kw: Any) -> Any:
    return Field(sa_type=sa.BigInteger, **kw)


class EventRow(SQLModel):
    """Columns every event table starts with: the log's identity and the block it came in.

    A log is identified by (chain_id, tx_hash, log_index) or, equivalently on a canonical chain, by
    (chain_id, block_number, log_index): log indexes are per block, and reorged blocks are deleted
    before their replacements are stored. The primary key uses the second form because it grows
    with the chain, so bulk inserts append to the B-tree instead of scattering random hashes
    (measured ~1.9× faster on 200k trades); tx_hash is a plain column.
    """

    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    block_number: int = Field(primary_key=True, sa_type=sa.BigInteger)
    log_index: int = Field(primary_key=True)
    tx_hash: str
    block_timestamp: int = _bigint()


class Market(SQLModel, table=True):
    """One row per `MarketCreated`: the market's address is the order book that emits its trades."""

    __tablename__ = "markets"
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    market: str = Field(primary_key=True)
    symbol: str
    market_type: str  # "spot" | "perp" (or "unknown(N)" for a type EVENTS.md does not define)
    base_token: str
    quote_token: str
    tx_hash: str
    log_index: int
    block_number: int = _bigint(index=True)
    block_timestamp: int = _bigint()


class Trade(EventRow, table=True):
    """`Trade`: one match on an order book. notional_usd = price × size."""

    __tablename__ = "trades"
    __table_args__ = (
        sa.Index("ix_trades_market_time", "market", "block_timestamp"),
        # the account page: one account's newest trades as maker or as taker, read off the index
        sa.Index("ix_trades_maker", "chain_id", "maker", "block_number"),
        sa.Index("ix_trades_taker", "chain_id", "taker", "block_number"),
    )
    market: str
    maker: str
    taker: str
    taker_is_buy: bool
    price: float
    size: float
    notional_usd: float
    maker_fee_usd: float
    taker_fee_usd: float
    fill_type: int  # 0 normal, 1 liquidation, 2 ADL, 3 backstop
    price_raw: str
    size_raw: str


class PositionUpdate(EventRow, table=True):
    """`PositionUpdated`: size, entry price and collateral are the position's values after the change."""

    __tablename__ = "position_updates"
    __table_args__ = (
        sa.Index("ix_position_updates_market_time", "market", "block_timestamp"),
        # the vault replay's reader: each liquidated position's latest earlier update (core/read/history.py)
        sa.Index("ix_position_updates_key_block", "chain_id", "position_key", "block_number", "block_timestamp"),
    )
    position_key: str
    account: str
    market: str
    is_long: bool
    size_delta: float
    size: float
    price: float
    entry_price: float
    collateral_usd: float
    realized_pnl_usd: float
    funding_paid_usd: float
    fee_usd: float
    size_raw: str


class Liquidation(EventRow, table=True):
    """One row per `PositionLiquidated`, with its waterfall legs joined from the same transaction.

    Legs are the logs of the same transaction that precede this `PositionLiquidated` and follow the
    previous one (EVENTS.md emits each liquidation's legs in order); legs that carry the position
    key (ADL, vault PnL, shortfall, fee) must also match it. Book-filled size is the Σ size of the
    liquidation's `Trade` fills with fillType 1 on the same market.
    """

    __tablename__ = "liquidations"
    __table_args__ = (
        sa.Index("ix_liquidations_time_market", "block_timestamp", "market"),
        sa.Index("ix_liquidations_account", "account"),
    )
    position_key: str
    account: str
    market: str
    is_long: bool
    size: float
    entry_price: float
    liquidation_price: float
    mark_price: float
    collateral_usd: float
    liquidation_fee_usd: float
    remaining_equity_usd: float
    liquidator: str
    notional_usd: float  # size × liquidationPrice (EVENTS.md "liquidated notional")
    book_filled_size: float
    adl_size: float
    adl_covered_usd: float  # Σ sizeReduced × |ADL price − markPrice|: loss the ADL'd counterparties took
    backstop_loss_usd: float  # −Σ negative VaultPnLUpdated.pnl of this liquidation
    insurance_cover_usd: float  # Σ ShortfallCovered.amount
    socialized_usd: float  # Σ DebtSocialized.amount
    fee_collected_usd: float  # Σ LiquidationFeeCollected.amount (by position key)


class ADLEvent(EventRow, table=True):
    """`ADLExecuted`: a profitable counterparty force-reduced at the bankruptcy price."""

    __tablename__ = "adl_events"
    __table_args__ = (sa.Index("ix_adl_events_time_market", "block_timestamp", "market"),)
    market: str
    account: str
    liquidated_position_key: str
    is_long: bool
    size_reduced: float
    price: float
    realized_pnl_usd: float


class Price(EventRow, table=True):
    """`PriceUpdated` from the oracle; ts is the oracle's own timestamp (seconds)."""

    __tablename__ = "prices"
    __table_args__ = (sa.Index("ix_prices_market_time", "market", "block_timestamp"),)
    market: str
    index_price: float
    mark_price: float
    ts: int = _bigint()


class OpenInterest(EventRow, table=True):
    """`OpenInterestUpdated`: long and short open interest in base units."""

    __tablename__ = "open_interest"
    __table_args__ = (sa.Index("ix_open_interest_market_time", "market", "block_timestamp"),)
    market: str
    long_open_interest: float
    short_open_interest: float
    long_open_interest_raw: str
    short_open_interest_raw: str


class Funding(EventRow, table=True):
    """`FundingUpdated`: rate per hour and cumulative index, both 1e18 on chain."""

    __tablename__ = "funding"
    __table_args__ = (sa.Index("ix_funding_market_time", "market", "block_timestamp"),)
    market: str
    funding_rate: float
    cumulative_funding_index: float
    ts: int = _bigint()


class InsuranceFundEvent(EventRow, table=True):
    """All four InsuranceFund events; `event` is the EVENTS.md name, balance the fund after it."""

    __tablename__ = "insurance_fund_events"
    __table_args__ = (sa.Index("ix_insurance_fund_events_time", "block_timestamp"),)
    event: str  # InsuranceFundDeposit | InsuranceFundWithdraw | LiquidationFeeCollected | ShortfallCovered
    account: str | None = None  # sender (deposit) or recipient (withdraw)
    market: str | None = None
    position_key: str | None = None
    amount_usd: float
    balance_usd: float
    amount_raw: int = _bigint()
    balance_raw: int = _bigint()


class BackstopVaultEvent(EventRow, table=True):
    """Deposit / Withdraw / VaultPnLUpdated of the BackstopVault; `event` is the EVENTS.md name.

    ``value_change_usd`` is the signed change of vault value (+assets deposited, −assets
    withdrawn, ±pnl), so the vault's value is its running sum;
    ``total_vault_value_usd`` is only emitted by VaultPnLUpdated (None otherwise).
    """

    __tablename__ = "backstop_vault_events"
    __table_args__ = (sa.Index("ix_backstop_vault_events_time", "block_timestamp"),)
    event: str  # Deposit | Withdraw | VaultPnLUpdated
    sender: str | None = None
    receiver: str | None = None
    owner: str | None = None
    position_key: str | None = None
    value_change_usd: float
    shares: float | None = None  # vault shares, assumed 6 decimals like the asset (ERC-4626 default)
    total_vault_value_usd: float | None = None
    value_change_raw: int = _bigint()
    total_vault_value_raw: int | None = _bigint(default=None)


class SocializedDebt(EventRow, table=True):
    """`DebtSocialized`: loss nobody could absorb (bad debt)."""

    __tablename__ = "socialized_debt"
    __table_args__ = (sa.Index("ix_socialized_debt_time", "block_timestamp"),)
    amount_usd: float
    amount_raw: int = _bigint()
    ts: int = _bigint()


class UndecodableLog(SQLModel, table=True):
    """A log with a known topic0 that could not be decoded or was rejected; kept, never dropped."""

    __tablename__ = "undecodable_logs"
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    block_number: int = Field(primary_key=True, sa_type=sa.BigInteger)
    log_index: int = Field(primary_key=True)
    tx_hash: str
    address: str
    event: str
    reason: str
    topics: str
    data: str


class Block(SQLModel, table=True):
    """Blocks the indexer has seen (those with logs and each chunk's last): reorg detection."""

    __tablename__ = "blocks"
    __table_args__ = (sa.Index("ix_blocks_time", "chain_id", "timestamp"),)  # "now", and a time window's blocks
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    number: int = Field(primary_key=True, sa_type=sa.BigInteger)
    hash: str
    timestamp: int = _bigint()


class Checkpoint(SQLModel, table=True):
    """How far a deployment is indexed; written in the same transaction as the rows."""

    __tablename__ = "checkpoints"
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    deployment: str = Field(primary_key=True)
    last_block: int = _bigint()
    last_block_hash: str
    updated_at: int = _bigint()


class MarketStats(SQLModel):
    """Per market and time bucket (hour or UTC day, ``bucket`` = its start in seconds): what pages need.

    Rollups are derived data: each commit's rows are folded into the buckets they touch, a reorg
    rebuilds from the start of its day (core/rollup.py), so pages cost O(buckets × markets), not O(trades).
    """

    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    market: str = Field(primary_key=True)
    bucket: int = Field(primary_key=True, sa_type=sa.BigInteger)
    volume_usd: float = 0.0  # Σ price × size, every fill type
    base_volume: float = 0.0  # Σ size
    trades: int = 0
    taker_buy_volume_usd: float = 0.0
    taker_buy_trades: int = 0  # Trades whose taker bought
    fees_usd: float = 0.0  # Σ maker + taker fees (maker rebates negative)
    taker_fees_usd: float = 0.0  # Σ Trade.takerFee
    maker_fees_usd: float = 0.0  # Σ Trade.makerFee (rebates negative)
    volume_liquidation_usd: float = 0.0  # Σ price × size of fillType 1 (a liquidation's book leg)
    volume_adl_usd: float = 0.0  # fillType 2
    volume_backstop_usd: float = 0.0  # fillType 3 (normal = volume_usd − the three)
    liquidation_fees_usd: float = 0.0  # Σ LiquidationFeeCollected.amount of this market's liquidations
    realized_pnl_usd: float = 0.0  # traders' Σ PositionUpdated.realizedPnl
    funding_paid_usd: float = 0.0  # traders' Σ PositionUpdated.fundingPaid
    position_fees_usd: float = 0.0  # traders' Σ PositionUpdated.fee
    open_price: float | None = None
    high_price: float | None = None
    low_price: float | None = None
    close_price: float | None = None
    liquidations: int = 0
    liquidations_long: int = 0
    liquidated_notional_usd: float = 0.0  # Σ size × liquidationPrice
    liquidated_notional_long_usd: float = 0.0
    adl_covered_usd: float = 0.0
    backstop_loss_usd: float = 0.0
    insurance_cover_usd: float = 0.0
    socialized_usd: float = 0.0  # socialized by this market's liquidations
    long_open_interest: float | None = None  # latest in the bucket (base units)
    short_open_interest: float | None = None
    mark_price: float | None = None  # latest oracle mark in the bucket
    funding_rate: float | None = None  # latest in the bucket (per hour)
    traders: int = 0  # distinct makers and takers in the bucket


class MarketStatsHourly(MarketStats, table=True):
    __tablename__ = "stats_hourly"
    __table_args__ = (sa.Index("ix_stats_hourly_bucket", "chain_id", "bucket"),)


class MarketStatsDaily(MarketStats, table=True):
    __tablename__ = "stats_daily"
    __table_args__ = (sa.Index("ix_stats_daily_bucket", "chain_id", "bucket"),)


class DayTotals(SQLModel, table=True):
    """Per UTC day: the sums of every market's stats_daily row of the day (the whole protocol), so a
    figure of all markets reads one row per day instead of one per market and day (the /stats
    overview and series; a market filter reads stats_daily itself). Derived from stats_daily by
    core/rollup.py whenever one of the day's rows changes."""

    __tablename__ = "totals_daily"
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    bucket: int = Field(primary_key=True, sa_type=sa.BigInteger)
    volume_usd: float = 0.0
    trades: int = 0
    liquidations: int = 0
    liquidated_notional_usd: float = 0.0
    socialized_usd: float = 0.0
    taker_fees_usd: float = 0.0
    maker_fees_usd: float = 0.0
    liquidation_fees_usd: float = 0.0
    volume_liquidation_usd: float = 0.0
    volume_adl_usd: float = 0.0
    volume_backstop_usd: float = 0.0


#: The stats_daily columns totals_daily adds up.
DAY_TOTAL_COLUMNS = tuple(c for c in DayTotals.model_fields if c not in ("chain_id", "bucket"))


class ProtocolStats(SQLModel):
    """Protocol-wide per bucket: socialized debt and end-of-bucket fund balances."""

    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    bucket: int = Field(primary_key=True, sa_type=sa.BigInteger)
    socialized_debt_usd: float = 0.0  # Σ DebtSocialized.amount in the bucket
    insurance_fund_usd: float | None = None  # balance of the bucket's last InsuranceFund event
    backstop_vault_change_usd: float = 0.0  # Σ signed vault value changes in the bucket
    backstop_shares_change: float = 0.0  # Σ Deposit.shares − Σ Withdraw.shares in the bucket
    blocks: int = 0  # blocks with indexed logs in the bucket: a bucket "with activity" has some


class ProtocolStatsHourly(ProtocolStats, table=True):
    __tablename__ = "protocol_hourly"


class ProtocolStatsDaily(ProtocolStats, table=True):
    __tablename__ = "protocol_daily"


class TraderDay(SQLModel, table=True):
    """Per UTC day, market and trader (maker or taker): active traders, new vs returning, top lists."""

    __tablename__ = "trader_daily"
    __table_args__ = (sa.Index("ix_trader_daily_trader", "chain_id", "trader", "bucket"),)
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    bucket: int = Field(primary_key=True, sa_type=sa.BigInteger)
    market: str = Field(primary_key=True)
    trader: str = Field(primary_key=True)
    volume_usd: float = 0.0  # notional of the trades the trader was maker or taker of
    trades: int = 0


class DailyActiveTraders(SQLModel, table=True):
    """Per UTC day: distinct makers and takers across all markets (daily active traders, unfiltered)."""

    __tablename__ = "traders_daily"
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    bucket: int = Field(primary_key=True, sa_type=sa.BigInteger)
    traders: int = 0


class TraderPnlDay(SQLModel, table=True):
    """Per UTC day and account with PositionUpdated events: Σ realizedPnl, fundingPaid and fee (every
    market), so the profitable and losing traders of a day are counted without scanning the updates."""

    __tablename__ = "trader_pnl_daily"
    __table_args__ = (sa.Index("ix_trader_pnl_daily_trader", "chain_id", "trader", "bucket"),)  # the account page
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    bucket: int = Field(primary_key=True, sa_type=sa.BigInteger)
    trader: str = Field(primary_key=True)
    realized_pnl_usd: float = 0.0
    funding_paid_usd: float = 0.0
    fees_usd: float = 0.0


class TraderPnlCounts(SQLModel, table=True):
    """Per UTC day: accounts whose net PnL that day (trader_pnl_daily: realized − funding − fees) was above
    and below zero, recounted for the days a commit touches (a day is a few thousand accounts)."""

    __tablename__ = "trader_pnl_counts"
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    bucket: int = Field(primary_key=True, sa_type=sa.BigInteger)
    profitable_traders: int = 0
    losing_traders: int = 0


class TraderTotal(SQLModel, table=True):
    """Per market and trader: trader_daily summed over all days, kept by adding each commit's trades
    (and taking away the days a rewind replaces), so whole-history trader figures need not scan every
    trader-day. Volumes are sums of floats kept incrementally: equal to trader_daily's to ~1e-12."""

    __tablename__ = "trader_totals"
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    market: str = Field(primary_key=True)
    trader: str = Field(primary_key=True)
    first_day: int = _bigint()  # the first UTC day (bucket) the trader traded this market
    volume_usd: float = 0.0
    trades: int = 0
    active_days: int = 0  # days with trades in this market (the row goes when none is left)


class TraderCounts(SQLModel, table=True):
    """The unfiltered Overview's trader cards as of the newest indexed block, stored by each refresh
    from trader_last_trade (a range count and a row count): as distinct counts over the raw trades
    they are too slow per page view at 10M trades."""

    __tablename__ = "trader_counts"
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    as_of: int = _bigint()  # the newest block's timestamp the counts are for
    traders_24h: int = 0  # distinct makers and takers of trades with as_of − 24 h < time ≤ as_of
    traders_total: int = 0  # distinct makers and takers of all trades


class TraderLastTrade(SQLModel, table=True):
    """Per trader: the block time of their last trade (maker or taker, any market), kept by each refresh,
    so the 24-hour active traders are a range count on an index rather than a distinct count over a
    day of raw trades, and all-time traders a count of rows."""

    __tablename__ = "trader_last_trade"
    __table_args__ = (sa.Index("ix_trader_last_trade_time", "chain_id", "last_ts"),)
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    trader: str = Field(primary_key=True)
    last_ts: int = _bigint()


class PositionLatest(SQLModel, table=True):
    """Each position's latest PositionUpdated (size 0 = closed): the open book of positions, kept
    by the rollup so stress tests need not scan every update."""

    __tablename__ = "positions_latest"
    __table_args__ = (sa.Index("ix_positions_latest_market", "chain_id", "market"),
                      sa.Index("ix_positions_latest_block", "chain_id", "block_number"),
                      sa.Index("ix_positions_latest_account", "chain_id", "account"),  # the account page
                      # The open book (the risk page): only open positions (31k of 160k at 10M trades), every
                      # column core.read.history.open_positions reads, so it reads this index and not the table.
                      sa.Index("ix_positions_latest_open", "chain_id", "market", "position_key", "account", "is_long",
                               "size", "entry_price", "collateral_usd",
                               sqlite_where=sa.text("size > 0"), postgresql_where=sa.text("size > 0")))
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    position_key: str = Field(primary_key=True)
    account: str
    market: str
    is_long: bool
    size: float
    entry_price: float
    collateral_usd: float
    block_number: int = _bigint()
    log_index: int
    block_timestamp: int = _bigint()


class PremiumHourly(SQLModel, table=True):
    """Per market and hour: Σ (mark − index) and Σ index of the oracle's PriceUpdated pushes, and their
    count, so the funding page's mean premium per hour reads one row instead of the hour's pushes
    (sums add across commits: means merge)."""

    __tablename__ = "premium_hourly"
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    market: str = Field(primary_key=True)
    bucket: int = Field(primary_key=True, sa_type=sa.BigInteger)
    premium_sum_usd: float = 0.0  # Σ mark − index of the hour's pushes
    index_sum_usd: float = 0.0  # Σ index of the hour's pushes
    pushes: int = 0


class RollupState(SQLModel, table=True):
    """How far rollups are built; ``dirty_from`` (seconds) marks buckets a reorg invalidated."""

    __tablename__ = "rollup_state"
    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    through_block: int = _bigint()
    dirty_from: int | None = _bigint(default=None)


ROLLUP_TABLES: tuple[type[SQLModel], ...] = (
    MarketStatsHourly, MarketStatsDaily, DayTotals, ProtocolStatsHourly, ProtocolStatsDaily, TraderDay, DailyActiveTraders,
    TraderPnlDay, TraderPnlCounts, TraderTotal, TraderLastTrade, TraderCounts, PositionLatest, PremiumHourly,
)


# EVENTS.md event name → the table holding its rows (and, for shared tables, the `event` value).
EVENT_TABLES: dict[str, type[SQLModel]] = {
    "MarketCreated": Market,
    "Trade": Trade,
    "PositionUpdated": PositionUpdate,
    "PositionLiquidated": Liquidation,
    "ADLExecuted": ADLEvent,
    "OpenInterestUpdated": OpenInterest,
    "FundingUpdated": Funding,
    "PriceUpdated": Price,
    "InsuranceFundDeposit": InsuranceFundEvent,
    "InsuranceFundWithdraw": InsuranceFundEvent,
    "LiquidationFeeCollected": InsuranceFundEvent,
    "ShortfallCovered": InsuranceFundEvent,
    "Deposit": BackstopVaultEvent,
    "Withdraw": BackstopVaultEvent,
    "VaultPnLUpdated": BackstopVaultEvent,
    "DebtSocialized": SocializedDebt,
}

# The tables a first catch-up fills in bulk: every event's but the few markets', and the rollups'
# that a commit's fold upserts row by row (their indexes serve the pages, not the folds).
BULK_TABLES: tuple[type[SQLModel], ...] = (
    *dict.fromkeys(m for m in EVENT_TABLES.values() if m is not Market),
    MarketStatsHourly, MarketStatsDaily, TraderDay, TraderPnlDay, TraderLastTrade, PositionLatest,
)

# Tables whose rows belong to a block and are deleted on a reorg rewind.
CHAIN_TABLES: tuple[type[SQLModel], ...] = (
    Market, Trade, PositionUpdate, Liquidation, ADLEvent, Price, OpenInterest, Funding,
    InsuranceFundEvent, BackstopVaultEvent, SocializedDebt, UndecodableLog, Block,
)


def table_of(model: type[SQLModel]) -> sa.Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table)
    return table


def _polars_type(column: sa.Column[Any]) -> pl.DataType:
    t = column.type
    if isinstance(t, sa.Boolean):
        return pl.Boolean()
    if isinstance(t, sa.Integer):  # BigInteger is a subclass
        return pl.Int64()
    if isinstance(t, sa.Float):
        return pl.Float64()
    if isinstance(t, (sa.String, AutoString)):
        return pl.String()
    raise TypeError(f"no polars type for column {column.name} of type {t!r}")


def frame_schema(model: type[SQLModel]) -> pl.Schema:
    """The polars schema of the frame that feeds ``model``'s table, in column order."""
    return pl.Schema({c.name: _polars_type(c) for c in table_of(model).columns})
