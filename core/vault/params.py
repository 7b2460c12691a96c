"""The what-if vault's parameters: one frozen dataclass, one documented field each, and the presets.

Each field's comment names where its default comes from, and :data:`SOURCES` quotes, for every value
a preset sets, the sentence it comes from: Hyperliquid docs ("Liquidations"), Extended docs ("Vault"),
seed 001 (§1 marginX today, §2 the venues, §3 the proposal) or "assumed" where no source gives a
number.
A what-if is a preset with overrides: ``preset("hyperliquid-hlp").with_overrides(vault_size_usd=5e6)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from core import protocol

#: The tiers a liquidation's loss can go to, besides socialization (always last).
TIERS = ("book", "adl", "vault", "backstop", "insurance")
#: Seed 001 §3.2: book → ADL → the vault → insurance fund → socialize; today's BackstopVault keeps
#: what it recorded, right after the vault (the vault extends it, seed 001 §4 P0).
SEED_WATERFALL = "book>adl>vault>backstop>insurance"


class ParamError(ValueError):
    """A preset, field or value the vault engine cannot use; the message says which and what to do."""


@dataclass(frozen=True)
class VaultParams:
    """One vault design. Percentages are fractions (0.05 = 5%); ``None`` for a limit means no limit."""

    # --- size and where the vault stands in the waterfall
    vault_size_usd: float = 0.0  #: initial NAV in USD; 0 = no vault, the status quo as recorded (seed 001 §3.1: one depositor vault; size assumed)
    waterfall: str = SEED_WATERFALL  #: who absorbs a liquidation, in order, before the rest is socialized; "vault" before "book" = the vault takes over at its trigger (seed 001 §3.2; Hyperliquid docs)
    # --- takeover
    trigger_mm_fraction: float = 1.0  #: take over when equity < k × maintenance margin (Hyperliquid docs, Liquidations: k = 2/3)
    maintenance_margin: float = protocol.MAINTENANCE_MARGIN_BPS / 10_000  #: maintenance margin fraction of notional (seed 001 §1.1: 3%)
    unwind_hours: float = 4.0  #: taken-over positions close evenly over this horizon, marked hourly (assumed; no venue publishes one)
    slippage_coef: float = 0.05  #: square-root impact on the vault's total closes per market, cost = coef × √(Q / daily volume) × Q (square-root law: coef = Y × daily volatility, Y ≈ 1, crypto σ ≈ 5%/day; assumed)
    healthy_liquidation_fee: float = 0.0  #: fee to the vault on liquidations the book closes with equity left (Extended, Lighter docs: 1%)
    # --- risk limits: every loss of a takeover (absorbed, held, unwound) counts; a breach closes the rest at once
    daily_loss_cap_pct: float | None = None  #: takeover losses per UTC day ≤ this × NAV at the day's start (seed 001 §2.2/§3.5, Extended: 15%)
    per_market_daily_budget_pct: float | None = None  #: the same, per market (seed 001 §3.5 Extended's per-market budget; fraction assumed)
    thin_market_daily_budget_pct: float | None = None  #: the per-market budget of thin markets, None = the normal one (seed 001 §2.2: less liquid assets get a smaller share; fraction assumed)
    thin_market_volume_share: float = 0.10  #: a market is thin when its share of recorded volume is below this (assumed)
    per_liquidation_cap_usd: float | None = None  #: all-in loss of one takeover ≤ this (seed 001 §3.5 Extended's per-liquidation cap; amount assumed)
    max_utilization: float | None = None  #: open taken-over notional ≤ this × NAV (seed 001 §1.3/§3.5: today's BackstopVault 80%)
    # --- market making (the MarketMakingVault's income folded in)
    mm_fee_share: float = 0.0  #: share of the recorded trading fees paid to the vault (seed 001 §3.3: fees --> NAV; share assumed)
    mm_spread_capture: float = 0.0  #: spread captured as a fraction of recorded volume, 0.00002 = 0.2 bp (assumed)
    # --- depositor terms
    withdrawal_lock_days: float = 0.0  #: a deposit can leave after this many days (Hyperliquid docs: 4; Extended docs: 1)
    performance_fee: float = 0.0  #: fee on share-price gains above the high-water mark (1.0 at inception), charged daily (seed 001 §3.4: 10%)
    withdraw_fee: float = 0.0  #: fee on the amount withdrawn (seed 001 §3.4: 0.1%)

    def __post_init__(self) -> None:
        check_waterfall(self.waterfall)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (bool, str)) or v is None:
                continue
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ParamError(f"{f.name} must be a finite number, got {v!r}")
            if v < 0:
                raise ParamError(f"{f.name} must be ≥ 0, got {v}")
        for name in ("performance_fee", "withdraw_fee", "mm_fee_share", "thin_market_volume_share"):
            if getattr(self, name) > 1:
                raise ParamError(f"{name} is a fraction between 0 and 1, got {getattr(self, name)}")

    @property
    def order(self) -> tuple[str, ...]:
        """The waterfall's tiers in order."""
        return tuple(self.waterfall.split(">"))

    @property
    def takes_over_first(self) -> bool:
        """The vault takes whole positions at its trigger, before the book (Hyperliquid, Lighter)."""
        return self.order[0] == "vault"

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


def check_waterfall(text: str) -> None:
    """ParamError unless ``text`` orders every tier once, the book first (or second, after the vault)."""
    order = text.split(">")
    if sorted(order) != sorted(TIERS) or order.index("book") > (1 if order[0] == "vault" else 0):
        raise ParamError(f"waterfall orders {', '.join(TIERS)} once each, separated by '>', the book first "
                         f"(or right after the vault), got {text!r}")


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
    if t == "str":
        check_waterfall(s)
        return s
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


_HLP_ORDER = "vault>book>adl>backstop>insurance"
_PLAIN = VaultParams()

#: Each preset's values and the sentence each comes from ("assumed" where no source gives a number).
SOURCES: dict[str, dict[str, tuple[Any, str]]] = {
    "marginx-today": {
        "vault_size_usd": (0.0, "EVENTS.md: today's BackstopVault and InsuranceFund only; no new vault"),
        "waterfall": (SEED_WATERFALL, "EVENTS.md: book leg, ADLExecuted, VaultPnLUpdated, ShortfallCovered, "
                      "DebtSocialized, in this order"),
    },
    "hyperliquid-hlp": {
        "vault_size_usd": (2_000_000.0, "assumed: the demo's backstop + insurance capital, rounded"),
        "waterfall": (_HLP_ORDER, "Hyperliquid docs, Liquidations: \"If the account equity drops below 2/3 of the "
                      "maintenance margin without successful liquidation through the book, a backstop liquidation "
                      "happens through the liquidator vault.\" ADL comes after (Hyperliquid docs, Auto-deleveraging: "
                      "\"The liquidator has one last option\")"),
        "trigger_mm_fraction": (2 / 3, "Hyperliquid docs, Liquidations: \"below 2/3 of the maintenance margin\""),
        "healthy_liquidation_fee": (0.0, "Hyperliquid docs, Liquidations: \"During backstop liquidation, the "
                                    "maintenance margin is not returned to the user\" (a buffer, no fee)"),
        "mm_spread_capture": (0.00003, "assumed: seed 001 §2.1 \"provides liquidity via multiple market-making "
                              "strategies\"; no figure published"),
        "withdrawal_lock_days": (4.0, "seed 001 §2.1: \"4-day withdrawal lock from last deposit\""),
    },
    "extended-vault": {
        "vault_size_usd": (2_000_000.0, "assumed: the same capital as the other vault presets"),
        "waterfall": ("book>vault>adl>backstop>insurance", "Extended docs, Vault: \"The vault handles all "
                      "liquidations on the exchange\"; it takes the loss of a position \"closed below the bankruptcy "
                      "price\" after the order book"),
        "healthy_liquidation_fee": (0.01, "Extended docs, Vault: \"earning a 1% liquidation fee in cases of healthy "
                                    "liquidations\""),
        "daily_loss_cap_pct": (0.15, "seed 001 §2.2: \"the vault can't be depleted by more than 15% in a day for "
                               "liquidations\""),
        "per_market_daily_budget_pct": (0.05, "seed 001 §2.2: \"each market may use only a fraction of vault balance "
                                        "/ 24h\" (fraction assumed)"),
        "thin_market_daily_budget_pct": (0.02, "seed 001 §2.2: \"less liquid assets get a smaller share\" (fraction "
                                         "assumed)"),
        "per_liquidation_cap_usd": (100_000.0, "seed 001 §2.2: \"a hard cap on the max absorbable loss per single "
                                    "liquidation\" (amount assumed)"),
        "mm_spread_capture": (0.00002, "assumed: Extended docs, Vault: \"The vault actively quotes on all markets\"; "
                              "no figure published"),
        "withdrawal_lock_days": (1.0, "Extended docs, Vault: \"A 24-hour lockup period applies to each deposit.\""),
    },
    "lighter-llp": {
        "vault_size_usd": (2_000_000.0, "assumed: the same capital as the other vault presets"),
        "waterfall": (_HLP_ORDER, "seed 001 §2.3: \"Close-out: below the close-out margin, LLP closes all positions "
                      "and absorbs the remaining collateral\"; \"ADL is the last resort\""),
        "trigger_mm_fraction": (2 / 3, "assumed: Lighter's close-out margin is below maintenance; its docs give no "
                                "ratio, Hyperliquid's 2/3 is used"),
        "healthy_liquidation_fee": (0.01, "seed 001 §2.3: \"if filled better than zero, it takes up to 1% fee → "
                                    "LLP\""),
        "mm_spread_capture": (0.00002, "assumed: seed 001 §2.3 \"liquidity provider, price generator\"; no figure "
                              "published"),
        "withdrawal_lock_days": (0.0, "assumed: seed 001 names no LLP lock"),
    },
    "proposed": {
        "vault_size_usd": (2_000_000.0, "assumed: seed 001 gives no size; the demo's backstop + insurance capital"),
        "waterfall": (SEED_WATERFALL, "seed 001 §3.2: \"1. Book\", \"2. ADL profitable counterparties\", \"3. HLP "
                      "VAULT takes over the position\", \"4. InsuranceFund cover\", \"5. SOCIALIZE residual\""),
        "trigger_mm_fraction": (1.0, "seed 001 §3.2: the vault takes every post-ADL residual \"as counterparty at "
                                "bankruptcy price\" (no extra trigger: k = 1, the liquidation itself)"),
        "healthy_liquidation_fee": (0.0, "seed 001 §3.2: \"filled --> penalty --> InsuranceFund\" (the penalty stays "
                                    "with the fund)"),
        "daily_loss_cap_pct": (0.15, "seed 001 §3.5: \"Daily global loss cap (≤15%/day)\""),
        "per_market_daily_budget_pct": (0.05, "seed 001 §3.5: \"Per-market daily budget (fraction/24h, smaller for "
                                        "illiquid)\" (fraction assumed)"),
        "thin_market_daily_budget_pct": (0.02, "seed 001 §3.5: \"smaller for illiquid\" (fraction assumed)"),
        "per_liquidation_cap_usd": (100_000.0, "seed 001 §3.5: \"Per-liquidation loss cap\" to \"bound a single "
                                    "toxic unwind\" (amount assumed)"),
        "max_utilization": (0.8, "seed 001 §3.5: \"MAX_UTILIZATION (OI vs vault size, 80%)\""),
        "mm_fee_share": (0.2, "assumed: seed 001 §3.3 \"funding + spread + fees\" --> NAV; no share given"),
        "mm_spread_capture": (0.00002, "assumed: seed 001 §3.3 \"quotes bids/asks\"; no figure given"),
        "withdrawal_lock_days": (4.0, "seed 001 §3.4: \"lock window starts (e.g. 4 days, HLP-style)\""),
        "performance_fee": (0.10, "seed 001 §3.4: \"Reuse BackstopVault's share math (dead-shares anti-inflation, "
                            "10% performance fee, 0.1% withdraw fee)\""),
        "withdraw_fee": (0.001, "seed 001 §3.4: \"0.1% withdraw fee\""),
    },
}


def _source_of_default(name: str) -> str:
    doc = field_docs().get(name, "")
    return f"default ({doc.rsplit('(', 1)[-1].rstrip(')')})" if "(" in doc else "default"


def preset_sources(name: str) -> dict[str, str]:
    """Every field of preset ``name`` with where its value comes from (the default's source when the
    preset does not set it)."""
    given = SOURCES[preset_name(name)]
    return {f.name: given[f.name][1] if f.name in given else _source_of_default(f.name) for f in fields(VaultParams)}


PRESETS: dict[str, VaultParams] = {
    name: VaultParams(**{k: v for k, (v, _) in values.items()}) for name, values in SOURCES.items()
}


def preset_name(name: str) -> str:
    if name not in SOURCES:
        raise ParamError(f"unknown preset {name!r}: choose one of {', '.join(SOURCES)}")
    return name


def preset(name: str) -> VaultParams:
    """The named preset; ParamError naming the known ones otherwise."""
    return PRESETS[preset_name(name)]
