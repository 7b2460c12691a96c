"""Order flow: the day's taker orders drawn in bulk, matched against market makers and resting traders,
settled in as few Multicall transactions as the limits allow.
"""

from __future__ import annotations

import math

import numpy as np

from core.simulator.chain import Event
from core.simulator.positions import Positions
from core.simulator.prices import MINUTES_PER_DAY
from core.simulator.state import _PU_CAP, _RECORD_STRIDE, _SETTLEMENT_CALLS, _TRADE_CAP, Order, _Acc


class OrderFlow(Positions):
    """Taker orders, the book walk and settlement batches."""

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
