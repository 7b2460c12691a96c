"""The simulator's state: every account's positions, the oracle, the book's depth and the protocol's
capital, set up from a :class:`~core.simulator.params.RunConfig`; and how a transaction is sealed.

The behaviour lives in the mixins built on it (:mod:`~core.simulator.positions`,
:mod:`~core.simulator.liquidation`, :mod:`~core.simulator.orders`, :mod:`~core.simulator.flows`),
combined by :class:`core.simulator.model.Simulation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from Crypto.Hash import keccak as _keccak

from core.simulator.chain import CAPACITY, AddressBook, Event, Tx, check_fits
from core.simulator.contracts import MAX_MULTICALL_CALLS
from core.simulator.ledger import Ledger
from core.simulator.params import MarketParams, RunConfig
from core.simulator.prices import MINUTES_PER_DAY, simulate_prices

ZERO_KEY = bytes(32)
_TRADE_CAP = CAPACITY["Trade"]
_PU_CAP = CAPACITY["PositionUpdated"]
#: Settlement batches stop taking orders at this many calls (one order adds at most 3 more).
_SETTLEMENT_CALLS = MAX_MULTICALL_CALLS - 4
_RECORD_STRIDE = 1 << 32
Order = tuple[int, int, list[float], float]
"""A taker order as drawn: (market index, trader index, 9 uniforms, one standard normal)."""


@dataclass
class _Acc:
    """Ledger amounts of one transaction, applied with its block timestamp."""

    volume: int = 0  #: micro-USD
    trades: int = 0
    liquidations: int = 0
    liquidated_notional: int = 0
    socialized: int = 0

    def add(self, other: _Acc) -> None:
        self.volume += other.volume
        self.trades += other.trades
        self.liquidations += other.liquidations
        self.liquidated_notional += other.liquidated_notional
        self.socialized += other.socialized


class State:
    """One seeded history's state; :attr:`ledger` holds the totals as transactions are sealed."""

    def __init__(self, cfg: RunConfig, book: AddressBook, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.eco = eco = cfg.economy
        self.book = book
        self.rng = rng
        self.ledger = Ledger()
        self.markets: tuple[MarketParams, ...] = cfg.markets
        self.maddr = [book.markets[m.symbol] for m in self.markets]
        self.perps = [i for i, m in enumerate(self.markets) if m.perp]
        self.is_perp = [m.perp for m in self.markets]
        self.paths = simulate_prices(cfg, rng)
        n_min = cfg.days * MINUTES_PER_DAY
        ticks = [10 ** m.tick_decimals for m in self.markets]
        mark_ticks = np.maximum(1, np.rint(self.paths.mark * np.array(ticks)[:, None])).astype(np.int64)
        #: Marks padded with an hour in front (the momentum signal looks an hour back); the
        #: current day's slice is kept as Python lists (``day_mark``) for the per-order loop.
        self.mark_pad = np.concatenate([np.repeat(mark_ticks[:, :1], 60, axis=1), mark_ticks], axis=1)
        self.index_ticks = np.maximum(1, np.rint(self.paths.index * np.array(ticks)[:, None])).astype(np.int64)
        self.day_lo = 0
        self.day_mark: list[list[int]] = []
        premium = self.paths.mark / self.paths.index - 1.0
        self.hourly_premium = premium.reshape(len(self.markets), -1, 60).mean(axis=2)

        # Accounts: traders, market makers, the liquidation keeper, the treasury, vault depositors.
        n_tr = int(min(eco.max_traders, max(eco.min_traders, round(cfg.scale * eco.traders_per_1k_daily_trades))))
        self.n_tr, self.n_mm = n_tr, eco.market_makers
        n_addr = n_tr + self.n_mm + 2 + eco.vault_depositors
        raw = rng.bytes(20 * n_addr)
        addrs = ["0x" + raw[20 * i : 20 * i + 20].hex() for i in range(n_addr)]
        assert len(set(addrs)) == n_addr
        self.addr = addrs[: n_tr + self.n_mm]
        self.keeper, self.treasury = addrs[n_tr + self.n_mm], addrs[n_tr + self.n_mm + 1]
        self.depositors = addrs[n_tr + self.n_mm + 2 :]
        self.mm_ids = list(range(n_tr, n_tr + self.n_mm))
        buckets = eco.leverage_mix
        pick = rng.choice(len(buckets), size=n_tr, p=[b[0] for b in buckets])
        lo = np.array([b[1] for b in buckets])[pick]
        hi = np.array([b[2] for b in buckets])[pick]
        self.leverage = (lo + (hi - lo) * rng.random(n_tr)).tolist() + [eco.mm_leverage] * self.n_mm
        whale = rng.random(n_tr) < eco.whale_share
        size_mult = np.where(whale, 10.0, 1.0) * rng.lognormal(0.0, 0.5, n_tr)
        #: Each trader's median order notional in micro-USD.
        self.order_usd = (eco.median_order_usd * 1e6 * size_mult).tolist()
        activity = rng.pareto(1.5, n_tr) + 0.2
        self.trader_cum = np.cumsum(activity) / activity.sum()
        weights = np.array([m.weight * (1.0 if m.perp else eco.spot_share_of_trader_flow) for m in self.markets])
        self.market_cum = np.cumsum(weights) / weights.sum()

        # Order arrivals: busier when volatile and in the US/EU afternoon; scaled to the target count.
        hours = (np.arange(n_min) // 60) % 24
        seasonal = 1.0 + 0.35 * np.sin(2 * np.pi * (hours - 8) / 24)
        shape = seasonal * self.paths.activity**eco.trading_follows_vol
        self.order_rate = shape * (cfg.trades_per_day * cfg.days / eco.fills_per_order) / shape.sum()

        # Positions (perp markets), one per account and market, long or short: exact state in lists,
        # int64 mirrors refreshed lazily for the vectorised margin checks.
        n_acc = n_tr + self.n_mm
        n_mk = len(self.markets)
        self.side = [[0] * n_acc for _ in range(n_mk)]
        self.lots = [[0] * n_acc for _ in range(n_mk)]
        self.cost = [[0] * n_acc for _ in range(n_mk)]
        self.coll = [[0] * n_acc for _ in range(n_mk)]
        self.fidx = [[0] * n_acc for _ in range(n_mk)]
        self.book_state = [(self.side[i], self.lots[i], self.cost[i], self.coll[i], self.fidx[i]) for i in range(n_mk)]
        self.mirror = [np.zeros((5, n_acc), dtype=np.int64) for _ in range(n_mk)]
        self.dirty: list[set[int]] = [set() for _ in range(n_mk)]
        #: Liquidation prices (float, a quick superset test before the exact check): −inf / +inf
        #: where the account holds no long / short; recomputed for changed positions and, after
        #: funding moved every position's equity, for all (``stale_liq``).
        self.liq_long = [np.full(n_acc, -np.inf) for _ in range(n_mk)]
        self.liq_short = [np.full(n_acc, np.inf) for _ in range(n_mk)]
        self.stale_liq = [False] * n_mk
        self.long_oi = [0] * n_mk
        self.short_oi = [0] * n_mk
        self.funding_index = [0] * n_mk  #: cumulative funding, 1e-9 USD per lot (longs pay when rising)
        self.spot_inventory = [0] * n_mk  #: market makers' net spot lots (quote skew)
        self.keys: dict[int, bytes] = {}  #: (market × stride + account) × 2 + is long → position key
        #: Collateral posted per unit of notional, per market and account (1 / leverage, at least IM).
        self.margin = [[max(1.0 / lev, m.initial_margin) for lev in self.leverage] for m in self.markets]
        self.mmr = [m.maintenance_margin for m in self.markets]
        self.tick_raw = [m.tick_raw for m in self.markets]
        self.lot_raw = [m.lot_raw for m in self.markets]
        #: Traders holding a position, per market (swap-remove list + index), to draw who manages one.
        self.holders: list[list[int]] = [[] for _ in range(n_mk)]
        self.holder_at: list[dict[int, int]] = [{} for _ in range(n_mk)]

        # Oracle, book and capital.
        self.oracle_mark = [0] * n_mk
        self.next_push = [0] * n_mk
        self.depth_left = [0] * n_mk
        self.if_initial = int(eco.insurance_fund_initial_usd_per_1k * cfg.scale * 1e6)
        self.insurance_fund = 0
        self.vault_value = 0
        self.vault_supply = 0
        self.vault_shares = [0] * len(self.depositors)
        self.vault_day_start = 0
        self.heartbeats: list[int] = []  #: the day's oracle heartbeat draws, popped as pushes are due
        self.taker_fees_day = 0
        self.taker_fees_week = 0

        self.last_ts = cfg.start_ts + book.deploy_blocks - 1  # the deployment's blocks come first
        #: Positions changed in the transaction being built (key market × stride + account), netted
        #: into PositionUpdated events when it is sealed.
        self.records: dict[int, list[int]] = {}
        self.out: list[Tx] = []

    def key(self, a: int, mi: int, side: int) -> bytes:
        """positionKey = keccak(account ‖ market ‖ isLong): one key per account, market and side."""
        slot = (mi * _RECORD_STRIDE + a) * 2 + (side > 0)  # an int, not a tuple: this runs per fill
        k = self.keys.get(slot)
        if k is None:
            preimage = bytes.fromhex(self.addr[a][2:]) + bytes.fromhex(self.maddr[mi][2:]) + (b"\x01" if side > 0 else b"\x00")
            k = self.keys[slot] = _keccak.new(digest_bits=256, data=preimage).digest()
        return k

    def emit(self, tick_ts: int, events: list[Event], acc: _Acc | None = None) -> None:
        """Seal one transaction at the next free second and book it in the ledger."""
        ts = max(tick_ts, self.last_ts + 1)
        self.last_ts = ts
        check_fits(events)
        led = self.ledger
        counts = led.events
        for _, name, _ in events:
            counts[name] = counts.get(name, 0) + 1
        if acc is not None:
            day = led.day(ts)
            day.volume += acc.volume
            day.trades += acc.trades
            day.liquidations += acc.liquidations
            day.liquidated_notional += acc.liquidated_notional
            day.socialized += acc.socialized
        else:
            led.day(ts)
        led.blocks += 1
        self.out.append(Tx(ts, tuple(events)))
