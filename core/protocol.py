"""marginX's protocol rules, written once: margin factors, the BackstopVault's and the insurance fund's
caps, fees, and the loss waterfall.

The simulator runs them on exact integers (micro-USD, ticks × lots) and the vault what-if engine on
floats (USD), so every rule here is generic over the number type: integer inputs give the
simulator's exact integer results (floor division, ``int`` truncation where the contracts truncate),
float inputs the same rule without rounding. Sources: seed 001 §1 (marginX today) and EVENTS.md's
waterfall.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import numpy as np

Num = TypeVar("Num", int, float)
#: A number or an array of them (the simulator checks a market's positions at once).
Amounts = TypeVar("Amounts", int, float, "np.ndarray[Any, Any]")

#: Seed 001 §1.1: "Initial margin INITIAL_MARGIN_FACTOR = 500 bps (5%) → up to 20x."
INITIAL_MARGIN_BPS = 500
#: Seed 001 §1.1: "Maintenance margin MAINTENCANCE_MARGIN_FACTOR = 300 bps (3%)."
MAINTENANCE_MARGIN_BPS = 300
#: The liquidation penalty to the InsuranceFund, 0.3% of notional when equity allows (the simulator's
#: marginX; seed 001 §1.2: "liquidationFee --> InsuranceFund").
LIQUIDATION_FEE_BPS = 30
TAKER_FEE_BPS = 5  #: taker fee, 0.05% of notional
MAKER_FEE_BPS = 2  #: fee of a resting trader order, 0.02%
MM_REBATE_BPS = 1  #: maker rebate paid to market makers, 0.01% (a negative makerFee)
#: The BackstopVault absorbs at most this share of its value per liquidation.
BACKSTOP_MAX_LOSS_PER_LIQUIDATION = 0.03
#: The BackstopVault stops absorbing below (1 − this) × its value at the start of the UTC day.
BACKSTOP_MAX_DAILY_DRAWDOWN = 0.10
#: Seed 001 §1.3: BackstopVault "`MAX_UTILIZATION` 80%" (open interest it backs vs its size).
BACKSTOP_MAX_UTILIZATION = 0.8


def _exact(amount: object) -> bool:
    """Integers (Python's or an integer array) take the contracts' floor division."""
    return isinstance(amount, int) or (isinstance(amount, np.ndarray) and amount.dtype.kind in "iu")


def _bps(amount: Amounts, bps: int) -> Amounts:
    if _exact(amount):
        exact: Amounts = amount * bps // 10_000
        return exact
    scaled: Amounts = cast(Any, amount) * (bps / 10_000)  # float in, float out (no rounding)
    return scaled


def _fraction(amount: Num, fraction: float) -> Num:
    value = amount * fraction
    return int(value) if isinstance(amount, int) else value


def margin_bps(fraction: float) -> int:
    """A margin fraction (0.03) as the contracts' basis points (300)."""
    return round(fraction * 10_000)


def maintenance_requirement(notional: Amounts, mm_bps: int = MAINTENANCE_MARGIN_BPS) -> Amounts:
    """Maintenance margin of a position of ``notional``; it is liquidatable when equity < this."""
    return _bps(notional, mm_bps)


def liquidation_fee(notional: Num, equity: Num, fee_bps: int = LIQUIDATION_FEE_BPS) -> Num:
    """The penalty booked to the InsuranceFund: ``fee_bps`` of notional, only out of positive equity."""
    if equity <= 0:
        return notional * 0
    fee: Num = _bps(notional, fee_bps)
    return min(fee, equity)


def backstop_capacity(value: Num, day_start_value: Num, *,
                      per_liquidation: float = BACKSTOP_MAX_LOSS_PER_LIQUIDATION,
                      daily_drawdown: float = BACKSTOP_MAX_DAILY_DRAWDOWN) -> Num:
    """What the BackstopVault may absorb from one liquidation: ≤ ``per_liquidation`` × its value, and
    never below ``(1 − daily_drawdown)`` × its value at the start of the day."""
    floor = _fraction(day_start_value, 1 - daily_drawdown)
    return max(value * 0, min(_fraction(value, per_liquidation), value - floor))


def absorb(loss: Num, capacities: Sequence[Num]) -> tuple[list[Num], Num]:
    """The loss waterfall: each tier in order absorbs what it can of what is left; the rest is
    socialized. Returns (what each tier absorbed, the socialized rest); Σ absorbed + rest == loss."""
    left = loss
    taken: list[Num] = []
    for capacity in capacities:
        t = min(left, max(capacity, capacity * 0))
        if t < 0:
            t = left * 0
        taken.append(t)
        left -= t
    return taken, left
