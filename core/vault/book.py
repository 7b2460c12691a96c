"""The vault's book: what one design does with one history, one method per step.

:class:`VaultBook` is walked by :func:`core.vault.replay.replay` in time order: :meth:`~VaultBook.settle`
each liquidation down the design's waterfall (taking over through :meth:`~VaultBook.take_over`), and
every hour :meth:`~VaultBook.mark` the open takeovers, :meth:`~VaultBook.unwind` the scheduled part,
:meth:`~VaultBook.apply_caps` (closing at once what would breach a limit) and at each UTC midnight
:meth:`~VaultBook.close_day` (performance fee on the high-water mark, the day's loss budgets). Between the
hourly marks, :meth:`~VaultBook.watch` bounds what the open takeovers could lose at the hour's extreme
oracle pushes; where a limit could be breached, every push goes to :meth:`~VaultBook.push`, which applies
the limits at that push's mark.

Money is booked once, in ``cash``; income that does not depend on the vault's decisions (healthy
liquidation fees of the book, market making) is a step function of time kept by the replay, so the
NAV at any hour is ``cash + income(t) + Σ open positions at their mark``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core import protocol
from core.utc import HOUR
from core.vault.params import VaultParams

CAP_KINDS = ("per_liquidation", "daily_loss", "market_budget", "utilization", "nav")


@dataclass(eq=False, slots=True)  # one object per position: closes are keyed by it
class Takeover:
    """One position the vault holds: taken at ``entry`` (the mark at takeover), closed evenly until ``t_end``."""

    row: int
    market: str
    sign: float
    qty0: float
    qty: float
    entry: float
    t0: float
    t_end: float
    pnl: float  #: all-in so far: kept margin − loss absorbed + the closed part's market PnL − slippage
    mark: float

    def value(self) -> float:
        """The open part at its last mark."""
        return self.sign * self.qty * (self.mark - self.entry)

    def total(self) -> float:
        return self.pnl + self.value()


@dataclass(slots=True)
class Outcome:
    """What the design did with one liquidation (one row of the replay's liquidation frame)."""

    deficit: float = 0.0  #: the loss this liquidation leaves under the design (Σ of the tiers)
    vault: float = 0.0
    adl: float = 0.0
    backstop: float = 0.0
    insurance: float = 0.0
    socialized: float = 0.0
    kept: float = 0.0
    taken_size: float = 0.0
    takeover_ts: int = -1
    fee: float = 0.0
    unwind_pnl: float = 0.0
    slippage: float = 0.0
    pnl: float = 0.0  #: the takeover's all-in PnL when it closed
    forced: str = ""  #: the limit that closed it early, if one did


@dataclass(slots=True)
class Liq:
    """One liquidation as the replay walks it (design-independent, prepared once per history)."""

    row: int
    ts: int
    market: str
    sign: float
    size: float
    mark: float
    equity: float
    residual: float
    adl_size: float
    adl: float
    backstop: float
    insurance: float
    socialized: float
    deficit: float


@dataclass(slots=True)
class _Open:
    """Sums over the open takeovers: value at mark, all-in PnL (total and per market), notional."""

    value: float = 0.0
    total: float = 0.0
    exposure: float = 0.0
    market: dict[str, float] = field(default_factory=dict)

    def add(self, tk: Takeover, sign: float = 1.0) -> None:
        v = tk.value()
        self.value += sign * v
        self.total += sign * (tk.pnl + v)
        self.exposure += sign * tk.qty * tk.mark
        self.market[tk.market] = self.market.get(tk.market, 0.0) + sign * (tk.pnl + v)


@dataclass
class VaultBook:
    """The vault's cash, open takeovers and limits under design ``p``."""

    p: VaultParams
    income: Callable[[float], float]  #: income credited at or before t (book fees, market making)
    daily_volume: dict[str, float]
    thin: dict[str, bool]
    cash: float = 0.0
    open: list[Takeover] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    closed_pnl: float = 0.0
    market_closed: dict[str, float] = field(default_factory=dict)
    traded: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)  #: per market: (time, notional) closed
    traded_sum: dict[str, float] = field(default_factory=dict)  #: Σ of ``traded`` per market
    nav0: float = 0.0
    day_base: float = 0.0
    market_base: dict[str, float] = field(default_factory=dict)
    savings: float = 0.0  #: what the insurance fund did not pay, available to it later
    hwm: float = 1.0  #: high-water mark of the share price, from inception
    performance_fees: float = 0.0
    vault_bad_debt: float = 0.0  #: losses the vault could not pay (its NAV hit zero)
    fee_income: float = 0.0
    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CAP_KINDS, 0))
    cash_events: list[tuple[float, float]] = field(default_factory=list)
    watching: bool = False  #: a limit could be breached before the next hour: check it at every oracle push
    _agg: _Open | None = None  #: sums over the open takeovers, None when a mark or close changed them
    lows: dict[str, list[float]] = field(default_factory=dict)  #: per market and hour: its lowest push (+inf: none)
    highs: dict[str, list[float]] = field(default_factory=dict)  #: per market and hour: its highest push
    _h: int = -1  #: the hour (index into lows/highs) the floors are for
    _floor: float = 0.0  #: Σ over the open takeovers of the least each could be worth at a push this hour
    _floor_market: dict[str, float] = field(default_factory=dict)
    _t: float = 0.0  #: when the floors were taken
    _impacts: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    _impact_t: float = -math.inf

    def __post_init__(self) -> None:
        order = self._order = self.p.order
        self._first = self.p.takes_over_first
        self._around = (order[1:order.index("vault")], order[order.index("vault") + 1:])  # the tiers before/after it
        self.cash = self.p.vault_size_usd
        self.cash_events.append((-math.inf, self.cash))

    # ------------------------------------------------------------------ state

    def _book(self, cash_delta: float, t: float) -> None:
        self.cash += cash_delta
        self.cash_events.append((t, self.cash))

    def _open_sums(self) -> _Open:
        if self._agg is None:
            agg = _Open()
            for tk in self.open:
                agg.add(tk)
            self._agg = agg
        return self._agg

    def open_value(self) -> float:
        """The open takeovers at their last marks."""
        return self._open_sums().value

    def nav(self, t: float) -> float:
        return self.cash + self.income(t) + self._open_sums().value

    def book_total(self, market: str | None = None) -> float:
        """All-in PnL of every takeover so far (of one market), open ones at their last mark."""
        agg = self._open_sums()
        if market is None:
            return self.closed_pnl + agg.total
        return self.market_closed.get(market, 0.0) + agg.market.get(market, 0.0)

    def _budget(self, market: str) -> float | None:
        p = self.p
        if self.thin.get(market, False) and p.thin_market_daily_budget_pct is not None:
            return p.thin_market_daily_budget_pct
        return p.per_market_daily_budget_pct

    def rooms(self, market: str, t: float) -> list[tuple[str, float]]:
        """What each loss limit still allows (USD) for a new takeover in ``market`` at ``t``."""
        p = self.p
        out: list[tuple[str, float]] = [("nav", self.nav(t))]
        if p.per_liquidation_cap_usd is not None:
            out.append(("per_liquidation", p.per_liquidation_cap_usd))
        if p.daily_loss_cap_pct is not None:
            out.append(("daily_loss", p.daily_loss_cap_pct * self.nav0 - (self.day_base - self.book_total())))
        budget = self._budget(market)
        if budget is not None:
            used = self.market_base.get(market, self.market_closed.get(market, 0.0)) - self.book_total(market)
            out.append(("market_budget", budget * self.nav0 - used))
        return out

    def _fraction(self, market: str, t: float, ask: float, need: float) -> float:
        """The share of a takeover the limits allow: ``ask`` is its loss at takeover, ``need`` its notional."""
        f, kind = 1.0, None
        rooms = self.rooms(market, t)
        for name, room in rooms:
            if room <= 0:
                f, kind = 0.0, name
                break
            if ask > 0 and room < ask * f:
                f, kind = room / ask, name
        u = self.p.max_utilization
        if u is not None and u <= 0:
            f, kind = 0.0, "utilization"  # no exposure allowed: the vault takes nothing over
        elif u is not None and need > 0 and f > 0:
            room = u * rooms[0][1] - self._open_sums().exposure
            if room < need * f:
                f, kind = max(0.0, room) / need, "utilization"
        if kind is not None:
            self.hits[kind] += 1
        return f

    # ------------------------------------------------------------------ steps

    def settle(self, liq: Liq, t: float, crossing: tuple[float, float, float] | None, fee: float) -> Outcome:
        """One liquidation down the design's waterfall, at ``t`` (its recorded time, or when a vault that
        takes over first crossed its trigger). ``crossing`` is (time, mark, equity) of the first mark where
        the trigger was crossed, or None; ``fee`` the vault's fee if the book closes it healthily."""
        out = self.outcomes.get(liq.row)
        if out is None:
            out = self.outcomes[liq.row] = Outcome()
        order = self._order
        if self._first:
            f = 0.0
            if crossing is not None:
                tc, mark, equity = crossing
                f = self.take_over(liq, tc, mark, liq.size, max(-equity, 0.0), max(equity, 0.0), out)
                out.deficit = f * max(-equity, 0.0)
            rest = (1 - f) * liq.deficit
            out.deficit += rest
            if rest > 0 or liq.insurance > 0:
                self._socialize(self._tiers(liq, order[2:], rest, out), out)
            self._fee((1 - f) * fee, t, out)
            return out
        before, after = self._around
        out.deficit = liq.deficit
        left = self._tiers(liq, before, liq.deficit, out)
        size = max(0.0, liq.residual - liq.adl_size) if "adl" in before else liq.residual
        if crossing is not None and (left > 0 or size > 0):
            kept = max(liq.equity, 0.0) * (size / liq.size) if liq.size > 0 else 0.0
            f = self.take_over(liq, t, liq.mark, size, left, kept, out)
            left -= f * left
        self._socialize(self._tiers(liq, after, left, out), out)
        self._fee(fee, t, out)
        return out

    def _tiers(self, liq: Liq, names: tuple[str, ...], loss: float, out: Outcome) -> float:
        """``loss`` through recorded tiers in order (each at most what it recorded; the fund also what
        it saved earlier); returns what is left."""
        caps = [liq.adl if n == "adl" else liq.backstop if n == "backstop" else liq.insurance + self.savings
                for n in names]
        taken, left = protocol.absorb(loss, caps)
        for name, amount in zip(names, taken, strict=True):
            if name == "adl":
                out.adl += amount
            elif name == "backstop":
                out.backstop += amount
            else:
                out.insurance += amount
                self.savings += liq.insurance - amount
        return left

    @staticmethod
    def _socialize(left: float, out: Outcome) -> None:
        out.socialized += left if left > 1e-9 else 0.0  # float dust of the subtractions is not debt

    def _fee(self, fee: float, t: float, out: Outcome) -> None:
        if fee > 0:
            out.fee += fee
            self.fee_income += fee
            self._book(fee, t)

    def take_over(self, liq: Liq, t: float, mark: float, size: float, absorbed: float, kept: float,
                  out: Outcome) -> float:
        """Take ``size`` of ``liq``'s position at ``mark``, absorbing ``absorbed`` and keeping ``kept``, as far
        as the limits allow (what closing it at once would cost counts as a loss); returns the share taken."""
        f = self._fraction(liq.market, t, absorbed - kept + self.close_cost(liq.market, size * mark, t), size * mark)
        if f <= 0:
            return 0.0
        upfront = f * (kept - absorbed)
        self._book(upfront, t)
        out.vault += f * absorbed
        out.kept += f * kept
        out.taken_size += f * size
        out.takeover_ts = int(t)
        if f * size <= 0:  # a loss only (ADL or the book closed the size): booked at once, nothing to hold
            self.closed_pnl += upfront
            self.market_closed[liq.market] = self.market_closed.get(liq.market, 0.0) + upfront
            out.pnl += upfront
            self._cover(t)
            if not self.watching and self.open and self._capped():
                self.watching = self._breach_possible(math.inf)
            return f
        tk = Takeover(liq.row, liq.market, liq.sign, f * size, f * size, mark, t, t + self.p.unwind_hours * HOUR,
                      upfront, mark)
        self.open.append(tk)
        if self._agg is not None:
            self._agg.add(tk)
        if self.p.unwind_hours <= 0:
            self._execute({tk: tk.qty}, t)
            if self.open:  # its close moved the market's recent closes: every floor may have changed
                self.watch(self._h, t)
        elif not self.watching and self._capped():
            self._watch_add(tk, t)
        return f

    def mark(self, marks: dict[str, float]) -> None:
        """Mark every open takeover at its market's mark (the last recorded one at this hour)."""
        for tk in self.open:
            px = marks.get(tk.market)
            if px is not None and math.isfinite(px):
                tk.mark = px
        self._agg = None

    def unwind(self, t: float) -> dict[Takeover, float]:
        """The quantity each open takeover closes at ``t`` on its even schedule."""
        horizon = self.p.unwind_hours * HOUR
        out: dict[Takeover, float] = {}
        for tk in self.open:
            target = tk.qty0 * max(0.0, tk.t_end - t) / horizon if horizon > 0 else 0.0
            if tk.qty - target > 0:
                out[tk] = tk.qty - target if target > 0 else tk.qty
        return out

    def _recent(self, market: str, t: float) -> float:
        """Notional the vault closed in ``market`` over the unwind window before ``t`` (at least an hour)."""
        window = max(self.p.unwind_hours, 1.0) * HOUR
        legs = self.traded.get(market)
        if not legs:
            return 0.0
        while legs and legs[0][0] <= t - window:
            self.traded_sum[market] -= legs.popleft()[1]
        return max(0.0, self.traded_sum[market])

    def _impact(self, market: str, t: float) -> tuple[float, float, float]:
        """(coef / √(daily volume), A, A^1.5) of ``market`` at ``t``, A its recent closes (cached until the
        time moves or the vault closes something)."""
        if t != self._impact_t:
            self._impacts.clear()
            self._impact_t = t
        got = self._impacts.get(market)
        if got is None:
            vol = self.daily_volume.get(market, 0.0)
            k = self.p.slippage_coef / math.sqrt(vol) if vol > 0 and self.p.slippage_coef > 0 else 0.0
            a = self._recent(market, t) if k > 0 else 0.0
            got = self._impacts[market] = (k, a, a**1.5)
        return got

    def close_cost(self, market: str, notional: float, t: float) -> float:
        """The slippage of closing ``notional`` of ``market`` at once at ``t`` (on top of the recent closes)."""
        if notional <= 0:
            return 0.0
        k, a, a15 = self._impact(market, t)
        if k <= 0:
            return 0.0
        return float(k * ((a + notional) ** 1.5 - a15))

    def slippage(self, closes: dict[Takeover, float], t: float) -> dict[Takeover, float]:
        """Square-root impact on the vault's net closes per market, on top of what it closed there over the
        unwind window: coef × ((A + N)^1.5 − A^1.5) / √(daily volume), shared pro rata by size."""
        net: dict[str, float] = {}
        gross: dict[str, float] = {}
        for tk, q in closes.items():
            v = tk.sign * q * tk.mark
            net[tk.market] = net.get(tk.market, 0.0) + v
            gross[tk.market] = gross.get(tk.market, 0.0) + abs(v)
        rate: dict[str, float] = {}
        for market, flow in net.items():
            k, a, a15 = self._impact(market, t)
            cost = k * ((a + abs(flow)) ** 1.5 - a15) if k > 0 else 0.0
            rate[market] = cost / gross[market] if gross[market] > 0 else 0.0
        return {tk: rate[tk.market] * abs(q * tk.mark) for tk, q in closes.items()}

    def apply_caps(self, t: float, closes: dict[Takeover, float]) -> tuple[dict[Takeover, float], dict[Takeover, float]]:
        """Close at once every takeover whose limit the scheduled closes would leave breached (its own
        cap, the day's, its market's budget, or a NAV below zero); returns the closes and their slippage."""
        slip = self.slippage(closes, t)
        for _ in range(len(self.open) + 1):
            forced = self._breaches(t, closes, slip)
            new = {tk: kind for tk, kind in forced.items() if closes.get(tk) != tk.qty}
            if not new:
                break
            for tk, kind in new.items():
                closes[tk] = tk.qty
                out = self.outcomes[tk.row]
                if not out.forced:
                    out.forced = kind
                    self.hits[kind] += 1
            slip = self.slippage(closes, t)
        return closes, slip

    def _breaches(self, t: float, closes: dict[Takeover, float], slip: dict[Takeover, float]) -> dict[Takeover, str]:
        p = self.p
        if self.nav(t) - sum(slip.values()) < 0:
            return dict.fromkeys(self.open, "nav")
        if p.per_liquidation_cap_usd is None and p.daily_loss_cap_pct is None and self._budget_free():
            return {}
        # Each takeover after this hour's closes, less what closing the rest at once would cost: a limit
        # is breached when holding on could no longer be paid for within it.
        after: dict[Takeover, float] = {}
        by_market: dict[str, float] = {}
        impact: dict[str, tuple[float, float, float]] = {}
        for tk in self.open:
            m = tk.market
            k, a, a15 = impact[m] if m in impact else impact.setdefault(m, self._impact(m, t))
            n = (tk.qty - closes.get(tk, 0.0)) * tk.mark
            v = tk.pnl + tk.sign * tk.qty * (tk.mark - tk.entry) - slip.get(tk, 0.0) \
                - (k * ((a + n) ** 1.5 - a15) if k > 0 and n > 0 else 0.0)
            after[tk] = v
            by_market[m] = by_market.get(m, 0.0) + v
        out: dict[Takeover, str] = {}
        cap = p.per_liquidation_cap_usd
        if cap is not None:
            out.update({k: "per_liquidation" for k, v in after.items() if -v >= cap})
        if p.daily_loss_cap_pct is not None:
            total = self.closed_pnl + sum(by_market.values())
            if self.day_base - total >= p.daily_loss_cap_pct * self.nav0:
                return {k: out.get(k, "daily_loss") for k in after}
        if self._budget_free():
            return out
        for market, held in by_market.items():
            budget = self._budget(market)
            if budget is None:
                continue
            closed = self.market_closed.get(market, 0.0)
            if self.market_base.get(market, closed) - (closed + held) >= budget * self.nav0:
                out.update({tk: out.get(tk, "market_budget") for tk in self.open if tk.market == market})
        return out

    # ------------------------------------------------------------------ limits between the hourly marks

    def _capped(self) -> bool:
        p = self.p
        return p.per_liquidation_cap_usd is not None or p.daily_loss_cap_pct is not None or not self._budget_free()

    def _floor_of(self, tk: Takeover) -> float:
        """The least ``tk`` could be worth, all-in, at any push of the hour: its open part at the hour's
        most adverse push, less what closing it at the highest one would cost."""
        lo = hi = tk.mark
        if self._h >= 0 and tk.market in self.lows:
            lo, hi = min(lo, self.lows[tk.market][self._h]), max(hi, self.highs[tk.market][self._h])
        k, a, a15 = self._impact(tk.market, self._t)
        n = tk.qty * hi
        cost = k * ((a + n) ** 1.5 - a15) if k > 0 and n > 0 else 0.0
        return tk.pnl + tk.sign * tk.qty * ((lo if tk.sign > 0 else hi) - tk.entry) - cost

    def _breach_possible(self, per_liq: float) -> bool:
        """Whether the floors could breach a limit (the per-liquidation one at ``per_liq``, the worst floor)."""
        p = self.p
        if p.per_liquidation_cap_usd is not None and -per_liq >= p.per_liquidation_cap_usd:
            return True
        if p.daily_loss_cap_pct is not None and \
                self.day_base - (self.closed_pnl + self._floor) >= p.daily_loss_cap_pct * self.nav0:
            return True
        for market, floor in self._floor_market.items():
            budget = self._budget(market)
            if budget is not None and self.market_base.get(market, self.market_closed.get(market, 0.0)) \
                    - (self.market_closed.get(market, 0.0) + floor) >= budget * self.nav0:
                return True
        return False

    def watch(self, h: int, t: float) -> None:
        """From ``t`` to the next hourly mark (hour ``h`` of lows/highs): watch every push if at one of them
        holding on could breach a limit (bounded from the hour's extreme pushes)."""
        self._h, self._t = h, t
        self.watching = False
        if not self.open or not self._capped():
            return
        floors: dict[str, float] = {}
        worst = math.inf
        ranges: dict[str, tuple[float, float, float, float, float]] = {}
        for tk in self.open:
            m = tk.market
            got = ranges.get(m)
            if got is None:
                got = ranges[m] = (self.lows[m][h], self.highs[m][h], *self._impact(m, t)) if m in self.lows \
                    else (math.inf, -math.inf, *self._impact(m, t))
            lo, hi, k, a, a15 = got
            px = tk.mark
            lo, hi = (lo if lo < px else px), (hi if hi > px else px)
            n = tk.qty * hi
            f = tk.pnl + tk.sign * tk.qty * ((lo if tk.sign > 0 else hi) - tk.entry) \
                - (k * ((a + n) ** 1.5 - a15) if k > 0 and n > 0 else 0.0)
            if f < worst:
                worst = f
            floors[m] = floors.get(m, 0.0) + f
        self._floor, self._floor_market = sum(floors.values()), floors
        self.watching = self._breach_possible(worst)

    def _watch_add(self, tk: Takeover, t: float) -> None:
        """A takeover made between the hourly marks joins the floors (the hour's range bounds its pushes too)."""
        self._t = t
        f = self._floor_of(tk)
        self._floor += f
        self._floor_market[tk.market] = self._floor_market.get(tk.market, 0.0) + f
        self.watching = self._breach_possible(f)

    def push(self, t: float, market: str, price: float) -> None:
        """An oracle push between the hourly marks: mark ``market``'s takeovers and close at once, at this
        price, every takeover a limit says holding on would breach."""
        hit = False
        for tk in self.open:
            if tk.market == market:
                tk.mark = price
                hit = True
        if not hit:
            return
        self._agg = None
        closes, slip = self.apply_caps(t, {})
        if closes:
            self._execute(closes, t, slip)

    def _budget_free(self) -> bool:
        return self.p.per_market_daily_budget_pct is None and self.p.thin_market_daily_budget_pct is None

    def step(self, t: float, marks: dict[str, float]) -> None:
        """One hour: mark, unwind on schedule, close what a limit says, book it."""
        if not self.open:
            return
        self.mark(marks)
        closes, slip = self.apply_caps(t, self.unwind(t))
        self._execute(closes, t, slip)

    def _execute(self, closes: dict[Takeover, float], t: float, slip: dict[Takeover, float] | None = None) -> None:
        if not closes:
            return
        if slip is None:
            slip = self.slippage(closes, t)
        net: dict[str, float] = {}
        for tk, q in closes.items():
            net[tk.market] = net.get(tk.market, 0.0) + tk.sign * q * tk.mark
        for market, flow in net.items():
            self.traded.setdefault(market, deque()).append((t, abs(flow)))
            self.traded_sum[market] = self.traded_sum.get(market, 0.0) + abs(flow)
        self._impacts.clear()
        agg = self._agg
        delta = 0.0
        for tk, q in closes.items():
            if q <= 0:
                continue
            if agg is not None:
                agg.add(tk, -1.0)
            realized = tk.sign * q * (tk.mark - tk.entry)
            cost = slip.get(tk, 0.0)
            tk.pnl += realized - cost
            tk.qty = max(0.0, tk.qty - q)
            if agg is not None and tk.qty > 0:
                agg.add(tk)
            out = self.outcomes[tk.row]
            out.unwind_pnl += realized
            out.slippage += cost
            delta += realized - cost
        self._book(delta, t)
        self._finish([tk for tk in closes if tk.qty <= 0], closes)
        self._cover(t)

    def _cover(self, t: float) -> None:
        nav = self.nav(t)
        if nav < 0:  # the vault cannot lose more than it has: the rest is bad debt
            self.vault_bad_debt += -nav
            self._book(-nav, t)

    def _finish(self, done: list[Takeover], closes: dict[Takeover, float]) -> None:
        """Book the takeovers closed in full: their all-in PnL leaves the open book for the closed one."""
        if not done:
            return
        finished = set(done)
        self.open = [tk for tk in self.open if tk not in finished]
        for tk in done:
            if self._agg is not None and closes[tk] <= 0:  # nothing was left to close: still counted as open
                self._agg.add(tk, -1.0)
            self.closed_pnl += tk.pnl
            self.market_closed[tk.market] = self.market_closed.get(tk.market, 0.0) + tk.pnl
            self.outcomes[tk.row].pnl += tk.pnl

    def close_day(self, t: float) -> None:
        """At a UTC midnight: the performance fee on gains above the high-water mark, then the new day's
        loss budgets from the NAV after it."""
        p = self.p
        shares = p.vault_size_usd  # one share per USD at inception (share price 1.0)
        nav = self.nav(t)
        price = nav / shares if shares > 0 else 0.0
        if p.performance_fee > 0 and price > self.hwm:
            fee = p.performance_fee * (price - self.hwm) * shares
            self.performance_fees += fee
            self._book(-fee, t)
            price -= fee / shares
        self.hwm = max(self.hwm, price)
        self.nav0 = self.nav(t)
        self.day_base = self.book_total()
        markets = set(self.market_closed) | {tk.market for tk in self.open}
        self.market_base = {m: self.book_total(m) for m in markets}

    def cash_at(self, grid: np.ndarray) -> np.ndarray:
        """The cash balance at each time of ``grid`` (its last change at or before)."""
        events = np.array(self.cash_events, dtype=float)
        k = np.searchsorted(events[:, 0], grid, side="right") - 1
        out: np.ndarray = events[np.clip(k, 0, None), 1]
        return out
