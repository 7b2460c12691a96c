"""The what-if vault's parameters: one frozen dataclass, one documented field each, and the presets.

Each field's comment names where its value comes from. Sources: Hyperliquid docs ("Liquidations",
"Vaults / HLP"), Extended docs ("Vault", "Liquidations"), Lighter docs ("LLP"), and seed 001 (§1
marginX today, §3 the proposal). Where a venue publishes no number, the preset says "assumed".
A what-if is a preset with overrides: ``preset("hyperliquid-hlp").with_overrides(vault_size_usd=5e6)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any


class ParamError(ValueError):
    """A preset, field or value the vault engine cannot use; the message says which and what to do."""


@dataclass(frozen=True)
class VaultParams:
    """One vault design. Percentages are fractions (0.05 = 5%); ``None`` for a limit means no limit."""

    # --- size and where the vault stands in the waterfall
    vault_size_usd: float = 0.0  #: initial NAV in USD; 0 = no vault, the status quo as recorded (seed 001 §3: the unified vault's capital)
    vault_before_adl: bool = True  #: the vault takes the residual before ADL (Hyperliquid, Lighter docs) or after it (marginX today, EVENTS.md)
    insurance_senior: bool = True  #: the insurance fund pays after the vault (senior, EVENTS.md's tranche) or before it (junior; seed 001 §3 option)
    # --- takeover
    trigger_mm_fraction: float = 2 / 3  #: take over when equity < k × maintenance margin (Hyperliquid docs, Liquidations: k = 2/3)
    maintenance_margin: float = 0.03  #: maintenance margin fraction of notional (seed 001 §1: 3%)
    takeover_at_bankruptcy: bool = True  #: take positions at the bankruptcy price, eating the deficit and keeping any margin left (Hyperliquid docs), rather than at mark
    unwind_hours: float = 4.0  #: taken-over positions close evenly over this horizon at the recorded marks (assumed; no venue publishes one)
    slippage_coef: float = 0.5  #: square-root impact, cost = coef × √(notional / daily volume) × notional (square-root law; coef assumed)
    healthy_liquidation_fee: float = 0.0  #: fee to the vault on liquidations the book closes with equity left (Extended, Lighter docs: 1%)
    # --- risk limits
    daily_loss_cap_pct: float | None = None  #: losses absorbed per UTC day ≤ this × NAV at the day's start (seed 001 §3 limit)
    per_market_daily_budget_pct: float | None = None  #: the same, per market (seed 001 §3 limit)
    thin_market_daily_budget_pct: float | None = None  #: the per-market budget of thin markets, None = the normal one (seed 001 §3: smaller for thin markets)
    thin_market_volume_share: float = 0.10  #: a market is thin when its share of recorded volume is below this (assumed)
    per_liquidation_cap_usd: float | None = None  #: loss absorbed from one liquidation ≤ this (seed 001 §3 limit)
    max_utilization: float | None = None  #: open taken-over notional ≤ this × NAV (seed 001 §1: today's BackstopVault 80%)
    # --- market making (the MarketMakingVault's income folded in)
    mm_fee_share: float = 0.0  #: share of the recorded trading fees paid to the vault (seed 001 §3: the MarketMakingVault's share)
    mm_spread_capture: float = 0.0  #: spread captured as a fraction of recorded volume, 0.00002 = 0.2 bp (assumed)
    # --- depositor terms
    withdrawal_lock_days: float = 0.0  #: a deposit can leave after this many days (Hyperliquid docs: 4; Extended docs: 1)
    performance_fee: float = 0.0  #: fee on share-price gains above the high-water mark, charged daily (seed 001 §3 depositor terms)
    withdraw_fee: float = 0.0  #: fee on the amount withdrawn (seed 001 §3 depositor terms)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or v is None:
                continue
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ParamError(f"{f.name} must be a finite number, got {v!r}")
            if v < 0:
                raise ParamError(f"{f.name} must be ≥ 0, got {v}")
        for name in ("performance_fee", "withdraw_fee", "mm_fee_share", "thin_market_volume_share"):
            if getattr(self, name) > 1:
                raise ParamError(f"{name} is a fraction between 0 and 1, got {getattr(self, name)}")

    @property
    def enabled(self) -> bool:
        """Whether there is a vault at all (a cent or more of capital)."""
        return self.vault_size_usd >= 0.01

    def with_overrides(self, **changes: Any) -> VaultParams:
        """A copy with ``changes`` applied (unknown fields raise ParamError)."""
        known = {f.name for f in fields(self)}
        for k in changes:
            if k not in known:
                raise ParamError(f"unknown vault parameter {k!r}: choose one of {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)


def field_docs() -> dict[str, str]:
    """Each field's one-line doc (its ``#:`` comment), for help texts."""
    import inspect
    import re

    docs: dict[str, str] = {}
    for line in inspect.getsource(VaultParams).splitlines():
        m = re.match(r"\s+(\w+): [^=]+=.*#: (.*)$", line)
        if m:
            docs[m.group(1)] = m.group(2)
    return docs


def parse_value(name: str, text: str) -> Any:
    """``text`` as the type of field ``name`` (for ``--set name=value``); ParamError if it is not one."""
    types = {f.name: f.type for f in fields(VaultParams)}
    if name not in types:
        raise ParamError(f"unknown vault parameter {name!r}: choose one of {', '.join(sorted(types))}")
    t = str(types[name])
    s = text.strip()
    if t == "bool":
        if s.lower() in ("true", "1", "yes"):
            return True
        if s.lower() in ("false", "0", "no"):
            return False
        raise ParamError(f"{name} is true or false, got {text!r}")
    if "None" in t and s.lower() in ("none", "", "unlimited"):
        return None
    try:
        return float(s.rstrip("%")) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise ParamError(f"{name} must be a number, got {text!r}") from None


_HLP = VaultParams(
    vault_size_usd=2_000_000.0,  # assumed: sized against the demo's backstop + insurance capital
    vault_before_adl=True,  # Hyperliquid: backstop liquidation by HLP; ADL only when HLP cannot
    trigger_mm_fraction=2 / 3,  # Hyperliquid: equity < 2/3 of maintenance margin
    takeover_at_bankruptcy=True,
    unwind_hours=4.0,
    healthy_liquidation_fee=0.0,  # Hyperliquid charges no liquidation fee; HLP keeps the margin buffer
    daily_loss_cap_pct=None, per_market_daily_budget_pct=None, per_liquidation_cap_usd=None,
    max_utilization=None,  # HLP publishes no limits
    mm_fee_share=0.0, mm_spread_capture=0.00003,  # assumed: HLP quotes every book
    withdrawal_lock_days=4.0,  # Hyperliquid: HLP deposits locked 4 days
    performance_fee=0.0, withdraw_fee=0.0,
)

PRESETS: dict[str, VaultParams] = {
    # The status quo: no new vault; every liquidation's tiers exactly as recorded on chain.
    "marginx-today": VaultParams(
        vault_size_usd=0.0, vault_before_adl=False, insurance_senior=True,
        max_utilization=0.8,  # today's BackstopVault: 80% utilisation
    ),
    "hyperliquid-hlp": _HLP,
    "extended-vault": dataclasses.replace(
        _HLP,
        healthy_liquidation_fee=0.01,  # Extended: 1% liquidation fee to the vault
        withdrawal_lock_days=1.0,  # Extended: 24 h
        per_liquidation_cap_usd=250_000.0, daily_loss_cap_pct=0.10,  # assumed
        mm_spread_capture=0.00002,
    ),
    "lighter-llp": dataclasses.replace(
        _HLP,
        healthy_liquidation_fee=0.01,  # Lighter: 1% liquidation fee to the LLP
        withdrawal_lock_days=0.0,  # assumed
        mm_spread_capture=0.00002,
    ),
    # Seed 001 §3: one depositor-owned vault taking the BackstopVault's, the InsuranceFund's shortfall
    # and the MarketMakingVault's roles, before ADL, under explicit risk limits.
    "proposed": VaultParams(
        vault_size_usd=2_000_000.0,
        vault_before_adl=True, insurance_senior=True,
        trigger_mm_fraction=2 / 3, takeover_at_bankruptcy=True, unwind_hours=4.0, slippage_coef=0.5,
        healthy_liquidation_fee=0.01,
        daily_loss_cap_pct=0.05, per_market_daily_budget_pct=0.03, thin_market_daily_budget_pct=0.01,
        per_liquidation_cap_usd=100_000.0, max_utilization=0.8,
        mm_fee_share=0.2, mm_spread_capture=0.00002,
        withdrawal_lock_days=1.0, performance_fee=0.10, withdraw_fee=0.001,
    ),
}


def preset(name: str) -> VaultParams:
    """The named preset; ParamError naming the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ParamError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None
