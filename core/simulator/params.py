"""Parameters of the marginX market simulator: frozen, typed, one documented field each.

Fixed-point grid: every market quotes prices on a tick grid and sizes on a lot grid chosen so that
``tick_raw × lot_raw == 1e30``. One lot traded at one tick is then exactly one micro-USD, so every
notional, fee, PnL and loss the model computes is an exact integer of micro-USD (USDC, 6 decimals)
and the waterfall conserves value to the last unit. A what-if is ``dataclasses.replace(preset, …)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from core import protocol

E18 = 10**18
#: tick_raw × lot_raw: one lot at one tick is one micro-USD.
GRID = 10**30
#: Default first day of simulated history (UTC midnight), so the demo is reproducible.
DEFAULT_START = dt.datetime(2026, 8, 1, tzinfo=dt.timezone.utc)
#: About one million trades over the default 90 days.
DEFAULT_TRADES_PER_DAY = 11_000
DEFAULT_DAYS = 90


@dataclass(frozen=True)
class MarketParams:
    """One market: its listing, price process and risk limits."""

    symbol: str  #: market symbol as registered in MarketRegistry, e.g. "BTC-PERP"
    perp: bool  #: True for a perpetual, False for spot
    asset: str  #: underlying asset; spot and perp markets on one asset share its index price
    start_price: float  #: USD per whole base unit at the start of the run
    tick_decimals: int  #: tick = 10**-tick_decimals USD; lot = 10**(tick_decimals-6) base units
    annual_vol: float  #: long-run annualised volatility of the index (crypto majors 0.5–0.9)
    weight: float  #: share of order flow that goes to this market (normalised over markets)
    initial_margin: float = protocol.INITIAL_MARGIN_BPS / 10_000  #: IM fraction: max leverage 1/IM (seed 001 §1.1: 5%)
    maintenance_margin: float = protocol.MAINTENANCE_MARGIN_BPS / 10_000  #: MM fraction (seed 001 §1.1: 3%): liquidated when equity < MM × notional
    liquidation_depth_usd: float = 400_000.0  #: book depth liquidations can take per oracle push (reduce-only IOC at mark)
    oracle_deviation: float = 0.005  #: push a price when the mark moved this much since the last push (Chainlink-style)
    premium_vol: float = 0.00004  #: per-minute noise of the perp/index premium (basis; stationary sd ≈ 0.02%)
    jump_rate_per_day: float = 0.3  #: expected idiosyncratic price jumps per day
    jump_size: float = 0.02  #: standard deviation of a jump's log-return
    crash_drop: float = 0.2  #: peak-to-trough log drop of this asset on the crash day
    squeeze_rise: float = 0.0  #: peak log rise on the short-squeeze day (only the thin market)
    short_bias: float = 0.0  #: extra probability that a new position is a short (crowded shorts)

    def __post_init__(self) -> None:
        assert 0 < self.maintenance_margin < self.initial_margin < 1, self.symbol
        assert 0 <= self.tick_decimals <= 6, "tick ≤ 1 USD and lot ≤ 1 base unit"
        assert self.start_price > 0 and self.weight > 0 and self.annual_vol > 0, self.symbol

    @property
    def tick_raw(self) -> int:
        """One tick in the chain's 1e18 price units."""
        return int(10 ** (18 - self.tick_decimals))

    @property
    def lot_raw(self) -> int:
        """One lot in the chain's 1e18 size units (tick_raw × lot_raw == 1e30)."""
        return GRID // self.tick_raw

    @property
    def market_type(self) -> int:
        """EVENTS.md marketType: 0 spot, 1 perp."""
        return 1 if self.perp else 0


@dataclass(frozen=True)
class EconomyParams:
    """Traders, fees, funding and the loss-absorption capital of the protocol."""

    traders_per_1k_daily_trades: float = 250.0  #: trader population per 1,000 trades a day
    min_traders: int = 150  #: population floor for small runs
    max_traders: int = 20_000  #: population cap (bounded memory at 10M trades)
    market_makers: int = 3  #: market-maker accounts quoting every market
    fills_per_order: float = 1.3  #: mean Trade events per taker order (walks extra book levels)
    maker_is_mm: float = 0.75  #: probability a fill's maker is a market maker (else a resting trader order)
    median_order_usd: float = 2_500.0  #: median taker order notional (lognormal)
    order_size_sigma: float = 1.1  #: lognormal sigma of order notional
    whale_share: float = 0.03  #: fraction of traders that are whales (10× order size)
    leverage_mix: tuple[tuple[float, float, float], ...] = ((0.55, 1.5, 4.0), (0.3, 4.0, 10.0), (0.15, 10.0, 25.0))
    """(probability, low, high) buckets of a trader's preferred leverage (capped by 1/IM)."""
    p_manage: float = 0.55  #: share of perp orders that come from a random current position holder
    p_reduce: float = 0.3  #: an order on an open position reduces it by 20–80%
    p_add: float = 0.25  #: … adds half an order's size to it (otherwise it closes it)
    mm_inventory_skew: float = 0.35  #: how strongly MM quote skew steers new flow against MM inventory
    momentum: float = 8.0  #: sensitivity of new-position side to the last hour's return
    spot_share_of_trader_flow: float = 1.0  #: scales spot market weights (spot orders have no position)
    taker_fee_bps: int = protocol.TAKER_FEE_BPS  #: taker fee, 0.05% of notional
    maker_fee_bps: int = protocol.MAKER_FEE_BPS  #: fee of a resting trader order, 0.02%
    mm_rebate_bps: int = protocol.MM_REBATE_BPS  #: maker rebate paid to market makers, 0.01% (negative makerFee)
    liquidation_fee_bps: int = protocol.LIQUIDATION_FEE_BPS  #: liquidation penalty to the insurance fund, 0.3% of notional, if equity allows
    mm_leverage: float = 0.5  #: market makers post 2× notional as collateral: never liquidated in practice
    funding_cap_per_hour: float = 0.005  #: |funding rate| cap per hour (0.5%)
    funding_interest_per_hour: float = 0.0000125  #: interest component (0.01% per 8h)
    premium_reversion: float = 0.02  #: per-minute mean reversion of the perp premium
    insurance_fund_initial_usd_per_1k: float = 2_500.0  #: initial InsuranceFund deposit per 1,000 trades/day
    vault_initial_usd_per_1k: float = 40_000.0  #: initial BackstopVault deposits per 1,000 trades/day
    vault_depositors: int = 40  #: BackstopVault depositor population
    vault_flows_per_day: float = 4.0  #: expected vault Deposit/Withdraw events a day
    vault_max_loss_per_liquidation: float = protocol.BACKSTOP_MAX_LOSS_PER_LIQUIDATION  #: vault absorbs ≤ 3% of its value per liquidation
    vault_max_daily_drawdown: float = protocol.BACKSTOP_MAX_DAILY_DRAWDOWN  #: vault stops absorbing below 90% of its start-of-day value (utilisation cap)
    vault_fee_share: float = 0.05  #: share of the day's taker fees paid to the vault as daily PnL
    insurance_fee_share: float = 0.02  #: share of the week's taker fees deposited to the InsuranceFund weekly
    vol_persistence: float = 0.996  #: GARCH alpha+beta of the shared 1-minute variance (half-life ≈ 3 h)
    vol_shock: float = 0.05  #: GARCH alpha of the shared 1-minute variance
    market_beta: float = 0.7  #: correlation of each asset with the common crypto factor
    trading_follows_vol: float = 0.6  #: order-arrival elasticity to volatility (busier when volatile)
    oracle_heartbeat_min: int = 5  #: oracle pushes at least every 5–15 minutes
    oracle_heartbeat_max: int = 15
    crash_fraction: float = 0.45  #: the crash happens this far into the run (all markets)
    squeeze_fraction: float = 0.72  #: the thin market's short squeeze happens this far into the run
    crowding_days: float = 4.0  #: days before the squeeze when shorts crowd into the thin market


@dataclass(frozen=True)
class RunConfig:
    """One simulated history: everything that determines its events."""

    seed: int  #: seeds the numpy Generator that drives everything
    days: int = DEFAULT_DAYS  #: length of the history in UTC days
    trades_per_day: int = DEFAULT_TRADES_PER_DAY  #: target Trade events per day (about)
    markets: tuple[MarketParams, ...] = field(default_factory=lambda: DEFAULT_MARKETS)  #: markets, deploy order
    start: dt.datetime = DEFAULT_START  #: first UTC day of the history (deployment at its midnight)
    economy: EconomyParams = field(default_factory=EconomyParams)  #: traders, fees and capital

    def __post_init__(self) -> None:
        assert self.days >= 1, "days must be ≥ 1"
        assert self.trades_per_day >= 1, "trades_per_day must be ≥ 1"
        assert self.markets, "at least one market"
        symbols = [m.symbol for m in self.markets]
        assert len(set(symbols)) == len(symbols), f"duplicate markets: {symbols}"
        assert self.start.tzinfo is not None, "start must be timezone-aware (UTC)"

    @property
    def start_ts(self) -> int:
        return int(self.start.timestamp())

    @property
    def scale(self) -> float:
        """Capital and population scale with trading activity (thousands of trades a day)."""
        return self.trades_per_day / 1000.0


#: The demo's markets: three majors, one thin altcoin perp with stricter margins, two spot books.
DEFAULT_MARKETS: tuple[MarketParams, ...] = (
    MarketParams("BTC-PERP", True, "BTC", 98_000.0, 1, 0.55, 0.30, liquidation_depth_usd=2_500_000.0,
                 crash_drop=0.2, jump_size=0.015),
    MarketParams("ETH-PERP", True, "ETH", 3_800.0, 2, 0.70, 0.22, liquidation_depth_usd=1_200_000.0,
                 crash_drop=0.27),
    MarketParams("SOL-PERP", True, "SOL", 180.0, 3, 0.90, 0.14, liquidation_depth_usd=400_000.0,
                 crash_drop=0.33, jump_size=0.025),
    MarketParams("ALT-PERP", True, "ALT", 0.80, 4, 1.40, 0.07, initial_margin=0.10, maintenance_margin=0.06,
                 liquidation_depth_usd=20_000.0, oracle_deviation=0.01, jump_rate_per_day=0.5,
                 jump_size=0.05, crash_drop=0.4, squeeze_rise=0.9, short_bias=0.15),
    MarketParams("ETH-USDC", False, "ETH", 3_800.0, 2, 0.70, 0.17),
    MarketParams("SOL-USDC", False, "SOL", 180.0, 3, 0.90, 0.10),
)


def market_by_symbol(symbols: Sequence[str] | None) -> tuple[MarketParams, ...]:
    """The default markets with these symbols, in the order given (all defaults when None)."""
    if not symbols:
        return DEFAULT_MARKETS
    known = {m.symbol: m for m in DEFAULT_MARKETS}
    unknown = [s for s in symbols if s not in known]
    if unknown:
        raise ValueError(f"unknown market(s) {unknown}; known: {sorted(known)}")
    return tuple(known[s] for s in symbols)
