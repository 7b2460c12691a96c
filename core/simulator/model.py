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

from collections.abc import Iterator

from core.simulator.chain import Tx
from core.simulator.flows import VaultFlows
from core.simulator.liquidation import Liquidations
from core.simulator.orders import OrderFlow
from core.simulator.prices import MINUTES_PER_DAY


class Simulation(Liquidations, OrderFlow, VaultFlows):
    """One seeded history. Iterate :meth:`transactions`; afterwards :attr:`ledger` holds the totals."""

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
                self._settle(t, tick_ts, orders.get(minute, []))
                yield from self.out
                self.out.clear()
