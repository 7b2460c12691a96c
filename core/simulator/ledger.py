"""The simulator's own ledger of a history: the headline figures of EVENTS.md from the model's state.

Money is kept in exact integers (micro-USD) while the model runs and turned into USD floats only
in :meth:`Ledger.truth`, so the figures can be compared with the indexed database (which sums the
decoded floats) and with the contracts' views (which hold the same integers).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

USD = 10**6


@dataclass(frozen=True)
class DailyTruth:
    """One UTC day of the history (only days with at least one transaction)."""

    date: str  #: "YYYY-MM-DD" (UTC day of the block timestamp)
    volume_usd: float  #: Σ price × size of the day's Trade events (every fill type)
    trades: int  #: Trade events
    liquidations: int  #: PositionLiquidated events
    liquidated_notional_usd: float  #: Σ size × liquidationPrice
    socialized_debt_usd: float  #: Σ DebtSocialized.amount


@dataclass(frozen=True)
class Truth:
    """The run's headline figures, by EVENTS.md's "Definitions of the headline figures"."""

    total_volume_usd: float
    total_trades: int
    liquidations: int
    liquidated_notional_usd: float
    socialized_debt_usd: float
    insurance_fund_usd: float  #: balance of the latest InsuranceFund event
    backstop_vault_usd: float  #: latest totalVaultValue
    open_interest_usd: float  #: Σ perps latest long OI × latest oracle mark
    active_traders: int  #: distinct maker/taker addresses of Trade events
    daily: list[DailyTruth]
    #: Exact chain integers behind the floats (micro-USD), for reconciliation with the views.
    socialized_debt_raw: int = 0
    insurance_fund_raw: int = 0
    backstop_vault_raw: int = 0
    events: dict[str, int] = field(default_factory=dict)  #: events emitted per EVENTS.md name
    blocks: int = 0  #: blocks (= transactions) of the simulated history, after the deployment's blocks

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json(), encoding="utf-8")
        return p


@dataclass
class _Day:
    volume: int = 0
    trades: int = 0
    liquidations: int = 0
    liquidated_notional: int = 0
    socialized: int = 0


class Ledger:
    """Running totals, updated by the model as it emits each transaction."""

    def __init__(self) -> None:
        self.days: dict[int, _Day] = {}
        self.traders: set[str] = set()
        self.insurance_fund = 0
        self.vault_value = 0
        self.socialized = 0
        #: perp market → long open interest in lots (one lot at one tick is one micro-USD)
        self.open_interest: dict[str, int] = {}
        self.mark: dict[str, int] = {}  #: market → latest oracle mark, in ticks
        self.events: dict[str, int] = {}
        self.blocks = 0

    def day(self, ts: int) -> _Day:
        key = ts // 86_400
        d = self.days.get(key)
        if d is None:
            d = self.days[key] = _Day()
        return d

    def truth(self) -> Truth:
        oi_micro = sum(lots * self.mark[market] for market, lots in self.open_interest.items())
        daily = [
            DailyTruth(
                date=dt.datetime.fromtimestamp(k * 86_400, dt.timezone.utc).strftime("%Y-%m-%d"),
                volume_usd=d.volume / USD, trades=d.trades, liquidations=d.liquidations,
                liquidated_notional_usd=d.liquidated_notional / USD, socialized_debt_usd=d.socialized / USD,
            )
            for k, d in sorted(self.days.items())
        ]
        return Truth(
            total_volume_usd=sum(d.volume for d in self.days.values()) / USD,
            total_trades=sum(d.trades for d in self.days.values()),
            liquidations=sum(d.liquidations for d in self.days.values()),
            liquidated_notional_usd=sum(d.liquidated_notional for d in self.days.values()) / USD,
            socialized_debt_usd=self.socialized / USD,
            insurance_fund_usd=self.insurance_fund / USD,
            backstop_vault_usd=self.vault_value / USD,
            open_interest_usd=oi_micro / USD,
            active_traders=len(self.traders),
            daily=daily,
            socialized_debt_raw=self.socialized,
            insurance_fund_raw=self.insurance_fund,
            backstop_vault_raw=self.vault_value,
            events=dict(sorted(self.events.items())),
            blocks=self.blocks,
        )
