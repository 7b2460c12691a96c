"""The marginX market model: traders, market makers, the book, funding, the oracle and liquidations.

It produces the history as a deterministic sequence of transactions (:class:`~core.simulator.chain.Tx`,
one block each), every event one of EVENTS.md with raw chain integers, and keeps its own
:class:`~core.simulator.ledger.Ledger` of the headline figures as it goes.

Exactness: prices live on each market's tick grid and sizes on its lot grid with one lot × one tick
= one micro-USD, so notionals, fees, PnL, funding, collateral and every waterfall tier are exact
integers. A position keeps its cost basis (Σ lots × ticks) rather than an entry price, so realised
PnL is exact too; entry prices are derived for the events.

Minute loop: funding (hourly) → treasury and vault flows → oracle pushes (heartbeat 5–15 min or a
deviation) → liquidations of the pushed perp markets → settlement of the minute's orders. Each step
is one or more transactions with strictly increasing timestamps. The settlement batch nets each
position once per transaction (one PositionUpdated per position and batch, two when it flips side).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from Crypto.Hash import keccak as _keccak

from core import protocol
from core.contracts import MAX_MULTICALL_CALLS
from core.simulator.chain import CAPACITY, AddressBook, Event, Tx, check_fits, count_calls
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


class Simulation:
    """One seeded history. Iterate :meth:`transactions`; afterwards :attr:`ledger` holds the totals."""

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
        self.taker_fees_day = 0
        self.taker_fees_week = 0

        self.last_ts = cfg.start_ts + book.deploy_blocks - 1  # the deployment's blocks come first
        #: Positions changed in the transaction being built (key market × stride + account), netted
        #: into PositionUpdated events when it is sealed.
        self.records: dict[int, list[int]] = {}
        self.out: list[Tx] = []

    # ------------------------------------------------------------------ helpers

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

    def change(self, mi: int, a: int, signed_q: int, price: int, fee: int) -> int:
        """Account ``a`` buys (+) or sells (−) ``|signed_q|`` lots at ``price`` ticks; returns realised PnL.

        Funding is settled first; an increase posts collateral at the account's leverage, a
        reduction releases collateral pro rata, and a trade through zero flips the position.
        """
        side, lots, cost, coll, fidx = self.book_state[mi]
        s, n, k, c = side[a], lots[a], cost[a], coll[a]
        rkey = mi * _RECORD_STRIDE + a
        rec = self.records.get(rkey)
        if rec is None:
            # [side0, lots0, cost0, last side, realised, fee, funding, Σ lots×price, Σ lots]
            rec = self.records[rkey] = [s, n, k, s, 0, 0, 0, 0, 0]
        idx = self.funding_index[mi]
        if n:
            paid = s * n * (idx - fidx[a]) // 1000
            c -= paid
            rec[6] += paid
        fidx[a] = idx
        q = signed_q if signed_q > 0 else -signed_q
        d = 1 if signed_q > 0 else -1
        n_before, s_before = n, s
        realized = 0
        if n == 0 or s == d:
            k += q * price
            n += q
            s = d
            c += int(q * price * self.margin[mi][a])
        else:
            r = q if q < n else n
            kr = k * r // n
            realized = s * (r * price - kr)
            c -= c * r // n
            k -= kr
            n -= r
            if n == 0:
                s = c = k = 0
            rest = q - r
            if rest:
                s, n, k = d, rest, rest * price
                c = int(rest * price * self.margin[mi][a])
        side[a], lots[a], cost[a], coll[a] = s, n, k, c
        if (n_before == 0) != (n == 0) and a < self.n_tr:
            self._hold(mi, a, n > 0)
        if s_before > 0:
            self.long_oi[mi] -= n_before
        elif s_before < 0:
            self.short_oi[mi] -= n_before
        if s > 0:
            self.long_oi[mi] += n
            self.liq_long[mi][a] = (k - c) / (n * (1 - self.mmr[mi]))  # funding just settled: c is effective
            if s_before < 0:
                self.liq_short[mi][a] = math.inf
        elif s < 0:
            self.short_oi[mi] += n
            self.liq_short[mi][a] = (k + c) / (n * (1 + self.mmr[mi]))
            if s_before > 0:
                self.liq_long[mi][a] = -math.inf
        else:
            self.liq_long[mi][a] = -math.inf
            self.liq_short[mi][a] = math.inf
        self.dirty[mi].add(a)
        rec[4] += realized
        rec[5] += fee
        rec[7] += q * price
        rec[8] += q
        if s:
            rec[3] = s
        return realized

    def _hold(self, mi: int, a: int, holding: bool) -> None:
        holders, at = self.holders[mi], self.holder_at[mi]
        if holding:
            at[a] = len(holders)
            holders.append(a)
        else:
            i = at.pop(a)
            last = holders.pop()
            if last != a:
                holders[i] = last
                at[last] = i

    def flush_records(self, events: list[Event]) -> None:
        """PositionUpdated event(s) of every position changed since the last flush."""
        for rkey, (s0, n0, k0, last_side, realized, fee, funding, vw_num, vw_den) in self.records.items():
            mi, a = divmod(rkey, _RECORD_STRIDE)
            tick_raw, lot_raw = self.tick_raw[mi], self.lot_raw[mi]
            side, lots, cost, coll, _ = self.book_state[mi]
            s1, n1, k1, c1 = side[a], lots[a], cost[a], coll[a]
            price = vw_num * tick_raw // vw_den
            entry0 = k0 * tick_raw // n0 if n0 else 0
            account, market = self.addr[a], self.maddr[mi]
            if n0 and n1 and s0 != s1:  # flipped: close the old side, open the new one
                events.append(("PositionHandler", "PositionUpdated", (
                    self.key(a, mi, s0), account, market, s0 > 0, -n0 * lot_raw, 0, price, entry0, 0,
                    realized, funding, 0)))
                events.append(("PositionHandler", "PositionUpdated", (
                    self.key(a, mi, s1), account, market, s1 > 0, n1 * lot_raw, n1 * lot_raw, price,
                    k1 * tick_raw // n1, c1, 0, 0, fee)))
                continue
            s = s1 if n1 else (s0 if n0 else last_side)
            entry = k1 * tick_raw // n1 if n1 else entry0
            events.append(("PositionHandler", "PositionUpdated", (
                self.key(a, mi, s), account, market, s > 0, (n1 - n0) * lot_raw, n1 * lot_raw, price, entry, c1,
                realized, funding, fee)))
        self.records.clear()

    def oi_event(self, mi: int) -> Event:
        assert self.long_oi[mi] == self.short_oi[mi], f"OI long != short in {self.markets[mi].symbol}"
        lot_raw = self.markets[mi].lot_raw
        self.ledger.open_interest[self.maddr[mi]] = self.long_oi[mi]
        return ("PositionHandler", "OpenInterestUpdated",
                (self.maddr[mi], self.long_oi[mi] * lot_raw, self.short_oi[mi] * lot_raw))

    def price_event(self, mi: int, t: int, tick_ts: int) -> Event:
        m = self.markets[mi]
        mark = self.day_mark[mi][t - self.day_lo + 60]
        self.oracle_mark[mi] = mark
        self.ledger.mark[self.maddr[mi]] = mark
        return ("Oracle", "PriceUpdated",
                (self.maddr[mi], int(self.index_ticks[mi, t]) * m.tick_raw, mark * m.tick_raw, tick_ts))

    # ------------------------------------------------------------------ the run

    def transactions(self) -> Iterator[Tx]:
        """Every transaction of the history, in order (the generator advances the model)."""
        cfg = self.cfg
        eco = self.eco
        for day in range(cfg.days):
            self.vault_day_start = self.vault_value
            self.day_lo = lo = day * MINUTES_PER_DAY
            self.day_mark = self.mark_pad[:, lo : lo + MINUTES_PER_DAY + 60].tolist()
            self.heartbeats = self.rng.integers(eco.oracle_heartbeat_min, eco.oracle_heartbeat_max + 1,
                                                len(self.markets) * MINUTES_PER_DAY).tolist()
            orders = self._draw_orders(day)
            flows = self._draw_vault_flows(day)
            for minute in range(MINUTES_PER_DAY):
                t = day * MINUTES_PER_DAY + minute
                tick_ts = cfg.start_ts + 60 * t
                if t == 0:
                    self._genesis(tick_ts)
                elif minute % 60 == 0:
                    self._funding(t, tick_ts)
                if minute == 5 and day > 0:
                    self._daily(day, tick_ts)
                for kind, u in flows.get(minute, ()):
                    self._vault_flow(kind, u, tick_ts)
                self._oracle(t, tick_ts)
                self._settle(t, tick_ts, orders.get(minute, ()))
                yield from self.out
                self.out.clear()

    def _genesis(self, tick_ts: int) -> None:
        """The protocol's opening capital: the insurance fund and the vault's first depositors."""
        self.insurance_fund = self.if_initial
        self.ledger.insurance_fund = self.insurance_fund
        events: list[Event] = [("InsuranceFund", "InsuranceFundDeposit", (self.treasury, self.if_initial, self.insurance_fund))]
        total = self.eco.vault_initial_usd_per_1k * self.cfg.scale * 1e6
        founders = min(10, len(self.depositors))
        for i in range(founders):
            events.append(self._deposit(i, int(total / founders * (0.5 + self.rng.random()))))
        self.emit(tick_ts, events)

    def _deposit(self, i: int, assets: int) -> Event:
        shares = assets if self.vault_supply == 0 or self.vault_value == 0 else assets * self.vault_supply // self.vault_value
        self.vault_value += assets
        self.vault_supply += shares
        self.vault_shares[i] += shares
        self.ledger.vault_value = self.vault_value
        d = self.depositors[i]
        return ("BackstopVault", "Deposit", (d, d, assets, shares))

    def _draw_vault_flows(self, day: int) -> dict[int, list[tuple[str, float]]]:
        n = int(self.rng.poisson(self.eco.vault_flows_per_day))
        minutes = self.rng.integers(10, MINUTES_PER_DAY, n).tolist()
        kinds = ["deposit" if u < 0.55 else "withdraw" for u in self.rng.random(n).tolist()]
        sizes = self.rng.random(n).tolist()
        flows: dict[int, list[tuple[str, float]]] = {}
        for minute, kind, u in sorted(zip(minutes, kinds, sizes, strict=True)):
            flows.setdefault(minute, []).append((kind, u))
        return flows

    def _vault_flow(self, kind: str, u: float, tick_ts: int) -> None:
        n = len(self.depositors)
        if kind == "deposit":
            i = int(u * 997) % n
            base = self.eco.vault_initial_usd_per_1k * self.cfg.scale * 1e6 / 60
            self.emit(tick_ts, [self._deposit(i, int(base * (0.2 + 2 * u)))])
            return
        holders = [i for i in range(n) if self.vault_shares[i] > 0]
        if not holders or self.vault_supply == 0:
            return
        i = holders[int(u * 997) % len(holders)]
        shares = max(1, int(self.vault_shares[i] * (0.1 + 0.5 * u)))
        assets = shares * self.vault_value // self.vault_supply
        self.vault_value -= assets
        self.vault_supply -= shares
        self.vault_shares[i] -= shares
        self.ledger.vault_value = self.vault_value
        d = self.depositors[i]
        self.emit(tick_ts, [("BackstopVault", "Withdraw", (d, d, d, assets, shares))])

    def _daily(self, day: int, tick_ts: int) -> None:
        """The vault's fee income for the past day; the weekly fee share to the insurance fund."""
        income = int(self.taker_fees_day * self.eco.vault_fee_share)
        self.taker_fees_day = 0
        if income > 0:
            self.vault_value += income
            self.ledger.vault_value = self.vault_value
            self.emit(tick_ts, [("BackstopVault", "VaultPnLUpdated", (ZERO_KEY, income, self.vault_value))])
        if day % 7 == 0:
            amount = int(self.taker_fees_week * self.eco.insurance_fee_share)
            self.taker_fees_week = 0
            if amount > 0:
                self.insurance_fund += amount
                self.ledger.insurance_fund = self.insurance_fund
                self.emit(tick_ts, [("InsuranceFund", "InsuranceFundDeposit", (self.treasury, amount, self.insurance_fund))])
        if day % 7 == 0 and self.insurance_fund > 3 * self.if_initial:
            amount = self.insurance_fund - 2 * self.if_initial  # the treasury sweeps a large surplus (rare)
            self.insurance_fund -= amount
            self.ledger.insurance_fund = self.insurance_fund
            self.emit(tick_ts, [("InsuranceFund", "InsuranceFundWithdraw", (self.treasury, amount, self.insurance_fund))])

    def _funding(self, t: int, tick_ts: int) -> None:
        """Hourly funding from the past hour's average premium (8h convention, capped)."""
        eco = self.eco
        events: list[Event] = []
        hour = t // 60 - 1
        for mi in self.perps:
            m = self.markets[mi]
            premium = float(self.hourly_premium[mi, hour])
            interest_8h = eco.funding_interest_per_hour * 8
            rate = (premium + min(max(interest_8h - premium, -0.0005), 0.0005)) / 8
            rate = min(max(rate, -eco.funding_cap_per_hour), eco.funding_cap_per_hour)
            rate_raw = round(rate * 1e18)
            self.funding_index[mi] += rate_raw * self.day_mark[mi][t - self.day_lo + 60] // 10**15
            self.stale_liq[mi] = True
            events.append(("PositionHandler", "FundingUpdated", (
                self.maddr[mi], rate_raw, self.funding_index[mi] * 10**27 // m.lot_raw, tick_ts)))
        if events:
            self.emit(tick_ts, events)

    # ------------------------------------------------------------------ oracle and liquidations

    def _oracle(self, t: int, tick_ts: int) -> None:
        due = []
        at = t - self.day_lo + 60
        for mi, m in enumerate(self.markets):
            mark = self.day_mark[mi][at]
            last = self.oracle_mark[mi]
            if t >= self.next_push[mi] or abs(mark - last) >= m.oracle_deviation * last:
                due.append(mi)
                self.next_push[mi] = t + self.heartbeats.pop()
        if not due:
            return
        self.emit(tick_ts, [self.price_event(mi, t, tick_ts) for mi in due])
        for mi in due:
            m = self.markets[mi]
            self.depth_left[mi] = int(m.liquidation_depth_usd * 1e6) // self.day_mark[mi][at]
            if m.perp:
                self._liquidations(mi, t, tick_ts)

    def _refresh(self, mi: int) -> np.ndarray:
        """The int64 mirror of market ``mi``'s positions (rows side, lots, cost, collateral, funding
        index), brought up to date, with the liquidation prices of the changed positions."""
        mirror = self.mirror[mi]
        dirty = self.dirty[mi]
        if dirty:
            ids = np.fromiter(dirty, dtype=np.int64, count=len(dirty))
            for row, state in enumerate((self.side[mi], self.lots[mi], self.cost[mi], self.coll[mi], self.fidx[mi])):
                mirror[row, ids] = [state[a] for a in dirty]
            dirty.clear()
        if self.stale_liq[mi]:
            self.stale_liq[mi] = False
            side, lots, cost, coll, fidx = mirror
            c_eff = (coll - side * lots * (self.funding_index[mi] - fidx) // 1000).astype(np.float64)
            mmr = self.markets[mi].maintenance_margin
            with np.errstate(divide="ignore", invalid="ignore"):
                self.liq_long[mi][:] = np.where((side > 0) & (lots > 0), (cost - c_eff) / (lots * (1 - mmr)), -np.inf)
                self.liq_short[mi][:] = np.where((side < 0) & (lots > 0), (cost + c_eff) / (lots * (1 + mmr)), np.inf)
        return mirror

    def _liquidations(self, mi: int, t: int, tick_ts: int) -> None:
        """Liquidate every position of market ``mi`` below maintenance at the pushed mark, worst first."""
        m = self.markets[mi]
        mark = self.oracle_mark[mi]
        if self.stale_liq[mi]:
            self._refresh(mi)
        if mark > self.liq_long[mi].max() * (1 + 1e-6) + 1 and mark < self.liq_short[mi].min() * (1 - 1e-6) - 1:
            return
        side, lots, cost, coll, fidx = self._refresh(mi)
        open_ = lots > 0
        assert int(lots.max()) * mark < 2**62, "position too large for the int64 margin check"
        idx = self.funding_index[mi]
        equity = coll - side * lots * (idx - fidx) // 1000 + side * (lots * mark - cost)
        required = protocol.maintenance_requirement(lots * mark, protocol.margin_bps(m.maintenance_margin))
        below = np.flatnonzero(open_ & (equity < required))
        if below.size == 0:
            return
        ratio = equity[below] / np.maximum(required[below], 1)
        candidates = below[np.argsort(ratio, kind="stable")].tolist()
        header = self.price_event(mi, t, tick_ts)
        events: list[Event] = [header]
        acc = _Acc()
        for a in candidates:
            done = self._liquidate(mi, a, mark, tick_ts)
            if done is None:
                continue
            legs, legs_acc = done
            if count_calls([*events, *legs]) + 1 > MAX_MULTICALL_CALLS:
                events.append(self.oi_event(mi))
                self.emit(tick_ts, events, acc)
                events, acc = [header], _Acc()
            events += legs
            acc.add(legs_acc)
        if len(events) > 1:
            events.append(self.oi_event(mi))
            self.emit(tick_ts, events, acc)

    def _liquidate(self, mi: int, a: int, mark: int, tick_ts: int) -> tuple[list[Event], _Acc] | None:
        """The waterfall of one position, all legs in EVENTS.md order; None if it is no longer below MM."""
        m = self.markets[mi]
        eco = self.eco
        s, n, k, c = self.side[mi][a], self.lots[mi][a], self.cost[mi][a], self.coll[mi][a]
        if n == 0:
            return None
        paid = s * n * (self.funding_index[mi] - self.fidx[mi][a]) // 1000
        c_eff = c - paid
        upnl = s * (n * mark - k)
        equity = c_eff + upnl
        notional = n * mark
        if equity >= protocol.maintenance_requirement(notional, protocol.margin_bps(m.maintenance_margin)):
            return None
        key = self.key(a, mi, s)
        tick_raw, lot_raw = self.tick_raw[mi], self.lot_raw[mi]
        maddr, taddr = self.maddr[mi], self.addr[a]
        events: list[Event] = []
        # 1. Book leg: reduce-only IOC at mark against the market makers' remaining depth. A
        #    solvent position is closed in full; an insolvent one only as far as depth allows.
        filled = n if equity >= 0 else min(n, max(0, self.depth_left[mi]))
        self.depth_left[mi] = max(0, self.depth_left[mi] - filled)
        makers = [x for x in self.mm_ids if x != a]
        acc = _Acc(liquidations=1, liquidated_notional=notional)
        if filled:
            parts = min(len(makers), filled)
            for j, mm in enumerate(makers[:parts]):
                q = filled // parts + (1 if j < filled % parts else 0)
                events.append((m.symbol, "Trade", (maddr, self.addr[mm], taddr, s < 0, mark * tick_raw, q * lot_raw, 0, 0, 1)))
                self.change(mi, mm, s * q, mark, 0)
                acc.volume += q * mark
                acc.trades += 1
                self.ledger.traders.add(self.addr[mm])
            self.ledger.traders.add(taddr)
        # 2. ADL: the rest is closed against the most profitable opposite positions at the
        #    bankruptcy price (rounded towards the mark), which absorbs rest × |P_b − M|.
        deficit = -equity if equity < 0 else 0
        rest = n - filled
        adl_covered = 0
        if rest:
            p_b = (k - c_eff) // n if s > 0 else max(1, -(-(k + c_eff) // n))
            gap = p_b - mark if s > 0 else mark - p_b
            assert gap >= 0
            side_m, lots_m, cost_m, coll_m, _ = self._refresh(mi)
            opposite = np.flatnonzero((side_m == -s) & (lots_m > 0))
            roe = (-s) * (lots_m[opposite] * mark - cost_m[opposite]) / np.maximum(coll_m[opposite], 1)
            ranked = opposite[np.argsort(-roe, kind="stable")].tolist()
            left = rest
            for j in ranked:
                q = min(self.lots[mi][j], left)
                realized = self.change(mi, j, s * q, p_b, 0)
                events.append(("PositionHandler", "ADLExecuted",
                               (maddr, self.addr[j], key, s < 0, q * lot_raw, p_b * tick_raw, realized)))
                left -= q
                if left == 0:
                    break
            assert left == 0, "OI long == short guarantees enough opposite size"
            adl_covered = rest * gap
        loss = deficit - adl_covered
        assert loss >= 0
        # 3. BackstopVault, up to its per-liquidation and daily utilisation limits; 4. the InsuranceFund,
        #    up to its balance; 5. whatever is left is bad debt, socialized.
        capacity = protocol.backstop_capacity(self.vault_value, self.vault_day_start,
                                              per_liquidation=eco.vault_max_loss_per_liquidation,
                                              daily_drawdown=eco.vault_max_daily_drawdown)
        (vault_loss, cover), socialized = protocol.absorb(loss, (capacity, self.insurance_fund))
        if vault_loss:
            self.vault_value -= vault_loss
            self.ledger.vault_value = self.vault_value
            events.append(("BackstopVault", "VaultPnLUpdated", (key, -vault_loss, self.vault_value)))
        if cover:
            self.insurance_fund -= cover
            self.ledger.insurance_fund = self.insurance_fund
            events.append(("InsuranceFund", "ShortfallCovered", (maddr, key, cover, self.insurance_fund)))
        if socialized:
            self.ledger.socialized += socialized
            acc.socialized += socialized
            events.append(("BackstopVault", "DebtSocialized", (socialized, tick_ts)))
        # 6. The record, then the penalty (only from positive equity).
        fee = protocol.liquidation_fee(notional, equity, eco.liquidation_fee_bps)
        entry = k * tick_raw // n
        events.append(("PositionHandler", "PositionLiquidated", (
            key, taddr, maddr, s > 0, n * lot_raw, entry, mark * tick_raw, mark * tick_raw, max(c_eff, 0), fee,
            equity, self.keeper)))
        if fee:
            self.insurance_fund += fee
            self.ledger.insurance_fund = self.insurance_fund
            events.append(("InsuranceFund", "LiquidationFeeCollected", (maddr, key, fee, self.insurance_fund)))
        # The liquidated position closes; then the counterparties' positions.
        self.side[mi][a] = self.lots[mi][a] = self.cost[mi][a] = self.coll[mi][a] = 0
        self.liq_long[mi][a] = -math.inf
        self.liq_short[mi][a] = math.inf
        if a < self.n_tr:
            self._hold(mi, a, False)
        if s > 0:
            self.long_oi[mi] -= n
        else:
            self.short_oi[mi] -= n
        self.dirty[mi].add(a)
        events.append(("PositionHandler", "PositionUpdated", (
            key, taddr, maddr, s > 0, -n * lot_raw, 0, mark * tick_raw, entry, 0, max(upnl, -c_eff), paid, fee)))
        self.records.pop(mi * _RECORD_STRIDE + a, None)
        self.flush_records(events)
        return events, acc

    # ------------------------------------------------------------------ order flow

    def _draw_orders(self, day: int) -> dict[int, list[Order]]:
        """The day's taker orders by minute: (market, trader, uniforms, normal) each, drawn in bulk."""
        rng = self.rng
        lo = day * MINUTES_PER_DAY
        counts = rng.poisson(self.order_rate[lo : lo + MINUTES_PER_DAY])
        n = int(counts.sum())
        minutes = np.repeat(np.arange(MINUTES_PER_DAY), counts).tolist()
        markets = np.searchsorted(self.market_cum, rng.random(n), side="right").tolist()
        traders = np.minimum(np.searchsorted(self.trader_cum, rng.random(n), side="right"), self.n_tr - 1).tolist()
        uniforms = rng.random((n, 9)).tolist()
        normals = rng.standard_normal(n).tolist()
        orders: dict[int, list[Order]] = {}
        for i in range(n):
            orders.setdefault(minutes[i], []).append((markets[i], traders[i], uniforms[i], normals[i]))
        return orders

    def _settle(self, t: int, tick_ts: int, orders: list[Order]) -> None:
        """Match the minute's orders and settle them in as few transactions as Multicall allows."""
        if not orders:
            return
        fills: dict[int, list[Event]] = {}
        acc = _Acc()
        records = self.records
        for order in orders:
            # Upper bound of the calls so far: a Trade call per market touched plus one per 15
            # fills, PositionUpdated calls (a flip makes two events), one OpenInterestUpdated call.
            if len(fills) + acc.trades // _TRADE_CAP + (2 * len(records)) // _PU_CAP + 2 > _SETTLEMENT_CALLS:
                self._seal_settlement(tick_ts, fills, acc)
                fills, acc = {}, _Acc()
            self._order(t, order, fills, acc)
        self._seal_settlement(tick_ts, fills, acc)

    def _seal_settlement(self, tick_ts: int, fills: dict[int, list[Event]], acc: _Acc) -> None:
        if not fills:
            return
        events: list[Event] = []
        for mi in sorted(fills):
            events += fills[mi]
        touched = sorted({rkey // _RECORD_STRIDE for rkey in self.records})
        self.flush_records(events)
        events += [self.oi_event(mi) for mi in touched]
        self.emit(tick_ts, events, acc)

    def _order(self, t: int, order: Order, fills: dict[int, list[Event]], acc: _Acc) -> None:
        mi, a, u, z = order
        eco = self.eco
        price = self.day_mark[mi][t - self.day_lo + 60]
        notional = self.order_usd[a] * math.exp(eco.order_size_sigma * z)
        if self.is_perp[mi]:
            holders = self.holders[mi]
            if u[8] < eco.p_manage and holders:  # someone managing an open position (finite lifetimes)
                a = holders[int(u[8] / eco.p_manage * len(holders))]
            s, n = self.side[mi][a], self.lots[mi][a]
            if n == 0:
                d, q = (1 if u[1] < self._p_long(mi, t) else -1), max(1, int(notional / price))
            elif u[0] < eco.p_reduce:
                d, q = -s, max(1, int(n * (0.2 + 0.6 * u[2])))
            elif u[0] < eco.p_reduce + eco.p_add:
                d, q = s, max(1, int(0.5 * notional / price))
            else:
                d, q = -s, n
        else:
            inventory = self.spot_inventory[mi] * price / 1e6 / (eco.median_order_usd * 20)
            d = 1 if u[1] < 0.5 + eco.mm_inventory_skew * math.tanh(inventory) * 0.5 else -1
            q = max(1, int(notional / price))
        self._match(mi, a, d, q, price, u, fills, acc)

    def _p_long(self, mi: int, t: int) -> float:
        """Probability a new position is long: momentum, crowding and the market makers' quote skew."""
        m = self.markets[mi]
        eco = self.eco
        marks = self.day_mark[mi]
        now = marks[t - self.day_lo + 60]
        momentum = (now / marks[t - self.day_lo] - 1.0) * eco.momentum
        bias = m.short_bias
        sq = self.paths.squeeze_minute
        if m.squeeze_rise > 0 and sq - eco.crowding_days * MINUTES_PER_DAY <= t < sq:
            bias += 0.2
        side, lots = self.side[mi], self.lots[mi]
        mm_net = 0
        for x in self.mm_ids:
            mm_net += side[x] * lots[x]
        skew = eco.mm_inventory_skew * math.tanh(mm_net * now / 1e6 / (eco.median_order_usd * 40))
        return min(0.9, max(0.1, 0.5 + momentum - bias + skew))

    def _match(self, mi: int, a: int, d: int, q: int, price: int, u: list[float], fills: dict[int, list[Event]],
               acc: _Acc) -> None:
        """Walk the book: up to four fills at widening levels, makers drawn from MMs and resting traders.

        A market's market-maker fills go mostly (80%) to its primary market maker.
        """
        eco = self.eco
        n_fills = 1 + (u[3] < 0.2) + (u[3] < 0.06) + (u[3] < 0.015)
        if n_fills > q:
            n_fills = q
        half_spread = max(1, price // 10_000)
        step = max(1, price // 5_000)
        book = fills.get(mi)
        if book is None:
            book = fills[mi] = []
        addr = self.addr
        taddr = addr[a]
        maddr = self.maddr[mi]
        symbol = self.markets[mi].symbol
        tick_raw, lot_raw = self.tick_raw[mi], self.lot_raw[mi]
        traders = self.ledger.traders
        traders.add(taddr)
        perp = self.is_perp[mi]
        p_mm, n_tr, mm_ids = eco.maker_is_mm, self.n_tr, self.mm_ids
        primary = mm_ids[mi % len(mm_ids)]
        taker_bps, maker_bps, rebate_bps = eco.taker_fee_bps, eco.maker_fee_bps, eco.mm_rebate_bps
        taker_fee_total = 0
        volume = 0
        for level in range(n_fills):
            part = q // n_fills + (1 if level < q % n_fills else 0)
            fill_price = price + d * (half_spread + level * step)
            if fill_price < 1:
                fill_price = 1
            v = u[4 + level]
            if v < p_mm:
                x = v / p_mm
                maker = primary if x < 0.8 else mm_ids[int((x - 0.8) * 5 * len(mm_ids))]
            else:
                maker = int((v - p_mm) / (1 - p_mm) * n_tr)
                if maker >= n_tr:
                    maker = n_tr - 1
                if maker == a:
                    maker = primary
            notional = part * fill_price
            taker_fee = notional * taker_bps // 10_000
            is_mm = maker >= n_tr
            maker_fee = -(notional * rebate_bps // 10_000) if is_mm else notional * maker_bps // 10_000
            maker_addr = addr[maker]
            book.append((symbol, "Trade", (maddr, maker_addr, taddr, d > 0, fill_price * tick_raw,
                                           part * lot_raw, maker_fee, taker_fee, 0)))
            traders.add(maker_addr)
            volume += notional
            taker_fee_total += taker_fee
            if perp:
                self.change(mi, a, d * part, fill_price, taker_fee)
                self.change(mi, maker, -d * part, fill_price, maker_fee if maker_fee > 0 else 0)
            elif is_mm:
                self.spot_inventory[mi] -= d * part
        acc.volume += volume
        acc.trades += n_fills
        self.taker_fees_day += taker_fee_total
        self.taker_fees_week += taker_fee_total
