"""Capital flows: the opening insurance fund and vault deposits, depositors' deposits and withdrawals
at the share price, the vault's daily fee income and the insurance fund's weekly fee share.
"""

from __future__ import annotations

from core.simulator.chain import Event
from core.simulator.prices import MINUTES_PER_DAY
from core.simulator.state import ZERO_KEY, State


class VaultFlows(State):
    """The BackstopVault's and the InsuranceFund's own flows."""

    def _genesis(self, tick_ts: int) -> None:
        """The protocol's opening capital: the insurance fund and the vault's first depositors."""
        self.insurance_fund = self.if_initial
        self.ledger.insurance_fund = self.insurance_fund
        events: list[Event] = [("InsuranceFund", "InsuranceFundDeposit", (self.treasury, self.if_initial, self.insurance_fund))]
        total = self.eco.vault_initial_usd_per_1k * self.cfg.scale * 1e6
        founders = min(10, len(self.depositors))
        for i in range(founders):
            events.append(self._deposit(i, int(total / founders * (0.5 + self.rng.random()))))
        self.emit(tick_ts, events)

    def _deposit(self, i: int, assets: int) -> Event:
        shares = assets if self.vault_supply == 0 or self.vault_value == 0 else assets * self.vault_supply // self.vault_value
        self.vault_value += assets
        self.vault_supply += shares
        self.vault_shares[i] += shares
        self.ledger.vault_value = self.vault_value
        d = self.depositors[i]
        return ("BackstopVault", "Deposit", (d, d, assets, shares))

    def _draw_vault_flows(self, day: int) -> dict[int, list[tuple[str, float]]]:
        n = int(self.rng.poisson(self.eco.vault_flows_per_day))
        minutes = self.rng.integers(10, MINUTES_PER_DAY, n).tolist()
        kinds = ["deposit" if u < 0.55 else "withdraw" for u in self.rng.random(n).tolist()]
        sizes = self.rng.random(n).tolist()
        flows: dict[int, list[tuple[str, float]]] = {}
        for minute, kind, u in sorted(zip(minutes, kinds, sizes, strict=True)):
            flows.setdefault(minute, []).append((kind, u))
        return flows

    def _vault_flow(self, kind: str, u: float, tick_ts: int) -> None:
        n = len(self.depositors)
        if kind == "deposit":
            i = int(u * 997) % n
            base = self.eco.vault_initial_usd_per_1k * self.cfg.scale * 1e6 / 60
            self.emit(tick_ts, [self._deposit(i, int(base * (0.2 + 2 * u)))])
            return
        holders = [i for i in range(n) if self.vault_shares[i] > 0]
        if not holders or self.vault_supply == 0:
            return
        i = holders[int(u * 997) % len(holders)]
        shares = max(1, int(self.vault_shares[i] * (0.1 + 0.5 * u)))
        assets = shares * self.vault_value // self.vault_supply
        self.vault_value -= assets
        self.vault_supply -= shares
        self.vault_shares[i] -= shares
        self.ledger.vault_value = self.vault_value
        d = self.depositors[i]
        self.emit(tick_ts, [("BackstopVault", "Withdraw", (d, d, d, assets, shares))])

    def _daily(self, day: int, tick_ts: int) -> None:
        """The vault's fee income for the past day; the weekly fee share to the insurance fund."""
        income = int(self.taker_fees_day * self.eco.vault_fee_share)
        self.taker_fees_day = 0
        if income > 0:
            self.vault_value += income
            self.ledger.vault_value = self.vault_value
            self.emit(tick_ts, [("BackstopVault", "VaultPnLUpdated", (ZERO_KEY, income, self.vault_value))])
        if day % 7 == 0:
            amount = int(self.taker_fees_week * self.eco.insurance_fee_share)
            self.taker_fees_week = 0
            if amount > 0:
                self.insurance_fund += amount
                self.ledger.insurance_fund = self.insurance_fund
                self.emit(tick_ts, [("InsuranceFund", "InsuranceFundDeposit", (self.treasury, amount, self.insurance_fund))])
        if day % 7 == 0 and self.insurance_fund > 3 * self.if_initial:
            amount = self.insurance_fund - 2 * self.if_initial  # the treasury sweeps a large surplus (rare)
            self.insurance_fund -= amount
            self.ledger.insurance_fund = self.insurance_fund
            self.emit(tick_ts, [("InsuranceFund", "InsuranceFundWithdraw", (self.treasury, amount, self.insurance_fund))])
