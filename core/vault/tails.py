"""Tails beyond the history: three shocks the replayed window did not contain, each run from the
vault's NAV at the worst point of the replay (its deepest drawdown), not from a fresh vault.

Every scenario builds its liquidations with :func:`core.vault.scenarios.shocked_liquidations` (today's
marginX waterfall for the status quo: book depth, ADL, BackstopVault, InsuranceFund, socialized, as
core.protocol rules them, every shared resource consumed in one order) and replays them through the
design with the replay's own book (:func:`core.vault.scenarios.run_shock`). What each adds:

- **Thin-market squeeze** (Hyperliquid JELLY, 26 March 2025: a ~$4–6M short on a ~$10–20M token was
  handed to HLP, ~$230M, and the price rose over 400% within an hour; reported unrealised loss ~$12M).
  The thinnest perp rises by ``squeeze_shock`` in ``squeeze_minutes`` one-minute pushes against a
  thinned book (``squeeze_depth_share`` of its best recorded block per push). An attacker's short of
  ``attacker_share`` × NAV, at exactly its maintenance margin, is added to the open positions. The
  vault's own buying to close what it took over **moves the price**: its square-root impact
  coef × √(Q / daily volume) on the notional Q it took raises the squeeze's top to
  (1 + shock)(1 + impact) − 1, reached by more pushes at the same speed, and the squeeze is rerun,
  ``feedback_rounds`` times (a fixed point: Q and the top only grow from round to round).
- **Whale larger than the book** (Hyperliquid, 12 March 2025: a ~160k ETH (~$306M) long taken over
  by HLP, ~$400M, at $1,915 and unwound at a loss of ~$4M). A long of ``whale_share`` × NAV on the
  most traded perp with its margin withdrawn (the Mar-2025 whale "withdrew, which lowered their
  margin"), while that market falls ``whale_move`` over ``whale_minutes``: it is liquidated below
  its bankruptcy price at the first push, the book takes its recorded depth per push, ADL the
  profitable shorts, and the rest is the vault's to hold and unwind.
- **Correlated crash**: every perp falls ``crash_shock`` in one hour, in ``crash_minutes`` oracle pushes
  (a fall in one-minute steps of 0.5% never gaps a position past its bankruptcy price: a crash does).
  Every market's liquidations go down today's waterfall in one order (push, crossing level), sharing
  the BackstopVault and InsuranceFund, and all of them go through the vault together.

**What a tail counts.** No market-making income, performance fee or withdrawals: the figure is the
shock alone. ``nav_after_usd`` is the NAV at the worst point less every takeover's loss (its all-in
PnL when below zero), never below zero; the income the shock would also bring the vault — the fee on
healthy liquidations, the gain of a takeover that ended the shock solvent (the margin a vault-first
design keeps) — is ``income_usd`` beside it, and ``nav_after_with_income_usd`` is the replay's own
final NAV with it. Marks after a shock's path hold at its last value while the vault unwinds.

**A larger shock never leaves the vault better off.** A tail's row is the worst of its sizes up to the
one asked for (:func:`up_to`): the tail is run at every tenth of its default size up to its own
(:data:`LADDER`; the default squeeze at +40%, +80%, …, +400%), and the row is the run whose ``nav_after_usd`` is lowest, with the
whole ladder beside it (``ladder``) and the full size's own figures (``full_size``). A size is a
whole number of tenths (:class:`TailSpec` rounds it), so a larger size's ladder holds the smaller's and
the law holds for every design, by construction (tested for all three tails, loss limits included).

Why the worst and not the size alone. One run at one size (:func:`squeeze_at`, :func:`whale_at`,
:func:`crash_at`) is monotone for a design without loss limits: :meth:`TailSpec.scaled` scales the
sizes (the moves, the attacker's and the whale's notional) and keeps each tail's speed (its move per
push), so a larger shock is the same path continued; :mod:`core.vault.scenarios` says why its
liquidations then cost the vault at least as much, and the feedback only raises the squeeze (tested as
a property for such designs). A design's loss limits break that: a limit that sizes a takeover (the
day's cap, a market's budget, utilisation, the per-liquidation cap with its close-cost estimate) cuts
it by what came before, and a limit breached between two pushes is closed at the next push's price, past
the limit by however far that push gapped. Where the breach lands in a push moves with the shock's size,
so one size's loss is a sawtooth. On a simulated database (``build_database(seed=5, days=4,
trades_per_day=1_500)``, its ladder up to ×2), one tenth more left ``extended-vault``'s squeeze better off 6
times, by up to 6.6k USD (0.34% of its NAV), its whale 4 times (up to 1.0k), and ``proposed``'s squeeze 5
times (up to 2.2k); the crash never. The committee's figure is the worst it can lose to a shock of up
to that size, which is what the row reports; the ladder shows the sawtooth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from core.vault.history import History, MarkBook
from core.vault.params import ParamError, VaultParams
from core.vault.replay import Result
from core.vault.scenarios import ScenarioError, Shock, default_depth, run_shock, thin_market

POSITION_COLUMNS = ("position_key", "account", "market", "is_long", "size", "entry_price", "collateral_usd")
#: A tail's sizes are whole tenths of :class:`TailSpec`'s: :func:`up_to` runs each tenth up to the size.
LADDER = 10


@dataclass(frozen=True)
class TailSpec:
    """The three tails' sizes: each names its source or says assumed."""

    squeeze_shock: float = 4.0  #: +400% (JELLY "rose over 400% within an hour", news reports of 26 March 2025)
    squeeze_minutes: int = 60  #: within an hour (the same reports)
    attacker_share: float = 0.025  #: the short handed over, × NAV (JELLY: ~$6M vs HLP's ~$230M ≈ 2.6%)
    squeeze_depth_share: float = 0.1  #: the squeezed book's depth per minute × its best recorded block (assumed)
    feedback_rounds: int = 3  #: impact fed back this many times (assumed; the tests check it converges)
    whale_share: float = 0.75  #: the whale's notional × NAV (Mar-2025: ~$306M of ETH vs HLP's ~$408M ≈ 75%)
    whale_move: float = -0.02  #: the market's fall while it is liquidated (assumed; ETH fell ~2% that day)
    whale_minutes: int = 10  #: over this many minutes (assumed)
    crash_shock: float = -0.30  #: every perp's fall in one hour (assumed: beyond any hour of the history)
    crash_minutes: int = 4  #: the hour's fall in this many oracle pushes (assumed: one every 15 min; run a minute apart, as scenarios.Shock does; pushes of 0.5% each would never gap a position past its bankruptcy price)
    scale: float = 1.0  #: every size above × this, at the same speed per push (:meth:`scaled`); rounded to a whole number of tenths (at least one)

    def __post_init__(self) -> None:
        if not self.scale > 0 or not np.isfinite(self.scale):
            raise ScenarioError(f"a tail's scale is a positive factor, got {self.scale}")
        object.__setattr__(self, "scale", self.steps / LADDER)

    @property
    def steps(self) -> int:
        """The size in tenths of the default (:data:`LADDER`), at least one."""
        return max(1, round(self.scale * LADDER))

    def at_step(self, i: int) -> TailSpec:
        """The same tail at ``i`` tenths of the default sizes."""
        return replace(self, scale=i / LADDER)

    def scaled(self, k: float) -> TailSpec:
        """Every shock's size × ``k`` at the same move per push: the same paths, continued (or cut short)."""
        return replace(self, scale=self.scale * k)

    def squeeze_path(self) -> tuple[float, float]:
        """(rise, rise per push) of the squeeze at this scale."""
        return min(10.0, self.squeeze_shock * self.scale), self.squeeze_shock / self.squeeze_minutes

    def whale_path(self) -> tuple[float, float]:
        """(move, |move| per push) of the whale's market at this scale."""
        return max(-0.99, self.whale_move * self.scale), abs(self.whale_move) / self.whale_minutes

    def crash_path(self) -> tuple[float, float]:
        """(fall, |fall| per push) of every perp at this scale."""
        return max(-0.99, self.crash_shock * self.scale), abs(self.crash_shock) / self.crash_minutes


def worst_point(result: Result) -> tuple[int, float]:
    """(time, NAV) at the replay's deepest drawdown (its start when it never fell)."""
    nav = result.nav
    i = int(np.argmax(nav["drawdown"].to_numpy())) if nav.height else 0
    return int(nav["ts"][i]), float(nav["nav_usd"][i])


def _tail_design(design: VaultParams, nav: float) -> VaultParams:
    return design.with_overrides(vault_size_usd=max(0.0, nav), mm_fee_share=0.0, mm_spread_capture=0.0, performance_fee=0.0)


def _mark(history: History, market: str) -> float:
    m = float(MarkBook(history.marks).at(market, np.array([float(history.end)]), np.array([np.nan]))[0])
    if not np.isfinite(m) or m <= 0:
        raise ScenarioError(f"market {market} has no recorded price: the tail cannot start from it")
    return m


def _with_position(positions: pl.DataFrame, key: str, market: str, long: bool, notional: float, mark: float,
                   margin: float) -> pl.DataFrame:
    """``positions`` plus one opened at ``mark`` with ``margin`` × notional of collateral."""
    row = pl.DataFrame({"position_key": [key], "account": [key], "market": [market], "is_long": [long],
                        "size": [notional / mark], "entry_price": [mark], "collateral_usd": [margin * notional]})
    base = positions.select(POSITION_COLUMNS) if positions.height else positions.select(POSITION_COLUMNS).clear()
    return pl.concat([base, row.cast(base.schema)]) if notional > 0 else base


def _usd(x: float) -> float:
    return 0.0 if abs(x) < 1e-6 else float(x)  # float dust of the tiers' subtractions is not debt


def _row(name: str, nav_before: float, sq: Result, res: Result, **extra: Any) -> dict[str, Any]:
    s = res.summary
    pnl = res.liquidations["vault_pnl"].to_numpy() if res.liquidations.height else np.zeros(0)
    losses = float(np.minimum(pnl, 0.0).sum())
    income = float(np.maximum(pnl, 0.0).sum()) + float(s["fees_income_usd"])
    taken = sum(_taken_notional(res, m) for m in set(res.liquidations["market"].to_list()))
    return {"name": name, "nav_before_usd": nav_before, "nav_after_usd": max(0.0, nav_before + losses),
            "income_usd": income, "nav_after_with_income_usd": float(s["final_nav_usd"]),
            "bad_debt_usd": _usd(s["bad_debt_proposed_usd"]), "bad_debt_status_quo_usd": _usd(sq.summary["bad_debt_proposed_usd"]),
            "vault_taken_usd": taken,
            "caps_hit": sorted(k for k, v in res.cap_hits.items() if v > 0), "cap_hits": dict(res.cap_hits),
            "liquidations": int(s["liquidations"]), "vault_absorbed_usd": float(s["vault_absorbed_usd"]),
            "adl_usd": float(s["adl_usd"]), **extra}


def _taken_notional(res: Result, market: str) -> float:
    rows = res.liquidations.filter((pl.col("market") == market) & (pl.col("vault_size_taken") > 0))
    return float((rows["vault_size_taken"] * rows["notional"] / rows["size"]).sum()) if rows.height else 0.0


def squeeze_at(history: History, positions: pl.DataFrame, design: VaultParams, nav: float, spec: TailSpec, *,
               backstop_usd: float, insurance_usd: float) -> dict[str, Any]:
    """The JELLY-style squeeze at ``spec``'s size, with the vault's own impact fed back into the marks
    (module docstring)."""
    market = thin_market(history)
    if market is None:
        raise ScenarioError("the history has no perp market to squeeze")
    p = _tail_design(design, nav)
    pos = _with_position(positions, "tail-attacker", market, False, spec.attacker_share * spec.scale * nav,
                         _mark(history, market), p.maintenance_margin)
    volume = float(history.markets.filter(pl.col("market") == market)["volume_usd"][0]) / max(1.0, history.days)
    base, step = spec.squeeze_path()
    shock, impact = base, 0.0
    depth = spec.squeeze_depth_share * default_depth(history, market)

    def run(top: float) -> tuple[Result, Result]:
        return run_shock(history, pos, Shock(market, top, spec.squeeze_minutes, book_depth_usd=depth, step=step), p,
                         backstop_usd=backstop_usd, insurance_usd=insurance_usd)

    sq, res = run(shock)
    for _ in range(spec.feedback_rounds):
        q = _taken_notional(res, market)
        impact = p.slippage_coef * float(np.sqrt(q / volume)) if volume > 0 else 0.0
        moved = min(10.0, (1 + base) * (1 + impact) - 1)
        if abs(moved - shock) < 1e-9:
            break
        shock = moved
        sq, res = run(shock)
    return _row("thin-market squeeze", nav, sq, res, scale=spec.scale, market=market, shock=shock, own_impact=impact,
                book_depth_usd=depth)


def whale_at(history: History, positions: pl.DataFrame, design: VaultParams, nav: float, spec: TailSpec, *,
             backstop_usd: float, insurance_usd: float) -> dict[str, Any]:
    """A long larger than the book on the most traded perp, handed to the vault, at ``spec``'s size
    (module docstring)."""
    perps = history.markets.filter(pl.col("market_type") == "perp").sort("volume_usd", descending=True)
    if perps.height == 0:
        raise ScenarioError("the history has no perp market for the whale")
    market = str(perps["market"][0])
    p = _tail_design(design, nav)
    notional = spec.whale_share * spec.scale * nav
    pos = _with_position(positions, "tail-whale", market, True, notional, _mark(history, market), 0.0)
    move, step = spec.whale_path()
    sq, res = run_shock(history, pos, Shock(market, move, spec.whale_minutes, step=step), p,
                        backstop_usd=backstop_usd, insurance_usd=insurance_usd)
    depth = default_depth(history, market)
    return _row("whale larger than the book", nav, sq, res, scale=spec.scale, market=market, whale_notional_usd=notional,
                shock=move, book_depth_usd=depth)


def crash_at(history: History, positions: pl.DataFrame, design: VaultParams, nav: float, spec: TailSpec, *,
             backstop_usd: float, insurance_usd: float) -> dict[str, Any]:
    """Every perp down ``crash_shock`` × scale in one hour, with the liquidations it causes (module
    docstring)."""
    p = _tail_design(design, nav)
    book = MarkBook(history.marks)
    t0 = float(history.end)
    perps = [m for m in sorted(history.markets.filter(pl.col("market_type") == "perp")["market"].to_list())
             if np.isfinite(book.at(m, np.array([t0]), np.array([np.nan]))[0])]
    if not perps:
        raise ScenarioError("no perp market has a recorded price to crash")
    fall, step = spec.crash_path()
    sq, res = run_shock(history, positions, [Shock(m, fall, spec.crash_minutes, step=step) for m in perps], p,
                        backstop_usd=backstop_usd, insurance_usd=insurance_usd)
    return _row("correlated crash", nav, sq, res, scale=spec.scale, shock=fall, markets=len(perps))


#: One tail at one size: (history, positions, design, NAV, spec, backstop_usd=, insurance_usd=) -> its row.
TailAt = Callable[..., dict[str, Any]]


def up_to(at: TailAt, history: History, positions: pl.DataFrame, design: VaultParams, nav: float, spec: TailSpec, *,
          backstop_usd: float, insurance_usd: float) -> dict[str, Any]:
    """The worst of tail ``at`` over every tenth of the default size up to ``spec``'s (module docstring): the run with
    the lowest ``nav_after_usd`` (the larger size on a tie), its every figure, plus ``up_to_scale``,
    ``worst_at_scale``, the full size's own figures (``full_size``) and each size's (``ladder``)."""
    rows = [at(history, positions, design, nav, spec.at_step(i), backstop_usd=backstop_usd, insurance_usd=insurance_usd)
            for i in range(1, spec.steps + 1)]
    worst = rows[0]
    for r in rows[1:]:
        if r["nav_after_usd"] <= worst["nav_after_usd"]:
            worst = r
    full = rows[-1]
    return {**worst, "up_to_scale": spec.scale, "worst_at_scale": worst["scale"],
            "full_size": {k: full[k] for k in ("shock", "nav_after_usd", "bad_debt_usd", "caps_hit")},
            "ladder": [{k: r[k] for k in ("scale", "shock", "nav_after_usd", "bad_debt_usd")} for r in rows]}


def squeeze(history: History, positions: pl.DataFrame, design: VaultParams, nav: float, spec: TailSpec, *,
            backstop_usd: float, insurance_usd: float) -> dict[str, Any]:
    """The worst squeeze up to ``spec``'s size (:func:`up_to` of :func:`squeeze_at`)."""
    return up_to(squeeze_at, history, positions, design, nav, spec, backstop_usd=backstop_usd,
                 insurance_usd=insurance_usd)


def whale(history: History, positions: pl.DataFrame, design: VaultParams, nav: float, spec: TailSpec, *,
          backstop_usd: float, insurance_usd: float) -> dict[str, Any]:
    """The worst whale up to ``spec``'s size (:func:`up_to` of :func:`whale_at`)."""
    return up_to(whale_at, history, positions, design, nav, spec, backstop_usd=backstop_usd,
                 insurance_usd=insurance_usd)


def crash(history: History, positions: pl.DataFrame, design: VaultParams, nav: float, spec: TailSpec, *,
          backstop_usd: float, insurance_usd: float) -> dict[str, Any]:
    """The worst correlated crash up to ``spec``'s size (:func:`up_to` of :func:`crash_at`)."""
    return up_to(crash_at, history, positions, design, nav, spec, backstop_usd=backstop_usd,
                 insurance_usd=insurance_usd)


def tails(history: History, result: Result, positions: pl.DataFrame, *, backstop_usd: float, insurance_usd: float,
          spec: TailSpec | None = None) -> list[dict[str, Any]]:
    """The three tails, each the worst up to its size, from the NAV at the replay's worst point:
    ``scenarios`` of the decision JSON."""
    spec = spec or TailSpec()
    if not result.params.enabled:
        raise ParamError("tails need a vault: vault_size_usd is 0")
    when, nav = worst_point(result)
    out = []
    for fn in (squeeze, whale, crash):
        row = fn(history, positions, result.params, nav, spec, backstop_usd=backstop_usd, insurance_usd=insurance_usd)
        out.append({**row, "worst_point": int(when)})
    return out


__all__ = ["LADDER", "TailAt", "TailSpec", "crash", "crash_at", "squeeze", "squeeze_at", "tails", "up_to", "whale",
           "whale_at", "worst_point"]
