"""Oracle pushes and liquidations: at each push, every position of the market below maintenance is
liquidated through marginX's waterfall (:mod:`core.protocol`), all legs in EVENTS.md's order.
"""

from __future__ import annotations

import math

import numpy as np

from core import protocol
from core.simulator.chain import Event, count_calls
from core.simulator.contracts import MAX_MULTICALL_CALLS
from core.simulator.positions import Positions
from core.simulator.state import _RECORD_STRIDE, _Acc


class Liquidations(Positions):
    """The oracle and the liquidation engine."""

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
        acc = _Acc(liquidations=1, liquidated_notional=notional)
        if filled:
            self._book_leg(mi, a, s, filled, mark, events, acc)
        # 2. ADL: the rest is closed against the most profitable opposite positions at the
        #    bankruptcy price (rounded towards the mark), which absorbs rest × |P_b − M|.
        deficit = -equity if equity < 0 else 0
        rest = n - filled
        adl_covered = 0
        if rest:
            p_b = (k - c_eff) // n if s > 0 else max(1, -(-(k + c_eff) // n))
            gap = p_b - mark if s > 0 else mark - p_b
            assert gap >= 0
            self._adl_leg(mi, s, rest, p_b, mark, key, events)
            adl_covered = rest * gap
        loss = deficit - adl_covered
        assert loss >= 0
        # 3. BackstopVault, up to its per-liquidation and daily utilisation limits; 4. the InsuranceFund,
        #    up to its balance; 5. whatever is left is bad debt, socialized.
        capacity = protocol.backstop_capacity(self.vault_value, self.vault_day_start,
                                              per_liquidation=eco.vault_max_loss_per_liquidation,
                                              daily_drawdown=eco.vault_max_daily_drawdown)
        self._absorb_loss(maddr, key, protocol.absorb(loss, (capacity, self.insurance_fund)), tick_ts, events, acc)
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
        self._close_liquidated(mi, a, s, n)
        events.append(("PositionHandler", "PositionUpdated", (
            key, taddr, maddr, s > 0, -n * lot_raw, 0, mark * tick_raw, entry, 0, max(upnl, -c_eff), paid, fee)))
        self.records.pop(mi * _RECORD_STRIDE + a, None)
        self.flush_records(events)
        return events, acc

    def _book_leg(self, mi: int, a: int, s: int, filled: int, mark: int, events: list[Event], acc: _Acc) -> None:
        """The book leg: ``filled`` lots at mark, split evenly over the other market makers (fill type 1)."""
        m = self.markets[mi]
        maddr, taddr = self.maddr[mi], self.addr[a]
        tick_raw, lot_raw = self.tick_raw[mi], self.lot_raw[mi]
        makers = [x for x in self.mm_ids if x != a]
        parts = min(len(makers), filled)
        for j, mm in enumerate(makers[:parts]):
            q = filled // parts + (1 if j < filled % parts else 0)
            events.append((m.symbol, "Trade", (maddr, self.addr[mm], taddr, s < 0, mark * tick_raw, q * lot_raw, 0, 0, 1)))
            self.change(mi, mm, s * q, mark, 0)
            acc.volume += q * mark
            acc.trades += 1
            self.ledger.traders.add(self.addr[mm])
        self.ledger.traders.add(taddr)

    def _adl_leg(self, mi: int, s: int, rest: int, p_b: int, mark: int, key: bytes, events: list[Event]) -> None:
        """ADL: ``rest`` lots closed against the most profitable opposite positions at the bankruptcy price."""
        maddr = self.maddr[mi]
        tick_raw, lot_raw = self.tick_raw[mi], self.lot_raw[mi]
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

    def _absorb_loss(self, maddr: str, key: bytes, waterfall: tuple[list[int], int], tick_ts: int,
                     events: list[Event], acc: _Acc) -> None:
        """Book the BackstopVault's, the InsuranceFund's and the socialized share of a loss as events."""
        (vault_loss, cover), socialized = waterfall
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

    def _close_liquidated(self, mi: int, a: int, s: int, n: int) -> None:
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
