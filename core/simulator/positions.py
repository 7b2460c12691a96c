"""Positions and margin: fills change a position's lots, cost basis and collateral exactly; funding
settles into collateral; each transaction's changes become PositionUpdated / OpenInterestUpdated events.
"""

from __future__ import annotations

import math

import numpy as np

from core.simulator.chain import Event
from core.simulator.state import _RECORD_STRIDE, State


class Positions(State):
    """Position changes, funding and the int64 mirrors the margin checks read."""

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
        self._rebook(mi, a, s_before, n_before, s, n, k, c)
        rec[4] += realized
        rec[5] += fee
        rec[7] += q * price
        rec[8] += q
        if s:
            rec[3] = s
        return realized

    def _rebook(self, mi: int, a: int, s_before: int, n_before: int, s: int, n: int, k: int, c: int) -> None:
        """Open interest and the position's liquidation prices after a change from (s_before, n_before)."""
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
