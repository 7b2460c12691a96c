"""A small seeded history of every EVENTS.md event, sent to the test contracts, with its own ledger.

The ledger is kept from the arguments *sent* (Python integers), never from decoded logs, so it is an
independent account of what the chain should hold. One step = one transaction = one block.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from core.simulator.contracts import Deployment, MarketSpec, deploy, set_next_block_timestamp

E6, E18 = 10**6, 10**18
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
MARKETS = [
    MarketSpec("BTC-PERP", 1, "0x" + "0b" * 20, "0x" + "0c" * 20),
    MarketSpec("ETH-PERP", 1, "0x" + "0e" * 20, "0x" + "0c" * 20),
    MarketSpec("<b>SOL</b> *USDC*", 0, "0x" + "05" * 20, "0x" + "0c" * 20),  # hostile symbol
]
TRADERS = ["0x" + f"{0xA0 + i:02x}" * 20 for i in range(12)]


@dataclass
class Ledger:
    counts: Counter[str] = field(default_factory=Counter)
    volume_usd: float = 0.0
    size_raw: int = 0
    fees_raw: int = 0
    socialized_raw: int = 0
    insurance_balance_raw: int = 0
    vault_value_raw: int = 0
    liq_legs_raw: Counter[str] = field(default_factory=Counter)  # tier → micro-USD
    liq_book_size_raw: int = 0
    liq_adl_size_raw: int = 0
    oi: dict[str, tuple[int, int]] = field(default_factory=dict)
    traders: set[str] = field(default_factory=set)


class History:
    """Emits seeded steps on a deployment and keeps the ledger of what was sent."""

    def __init__(self, w3: Web3, seed: int, *, t0: int = T0) -> None:
        self.w3 = w3
        self.rng = random.Random(seed)
        self.dep: Deployment = deploy(w3, MARKETS)
        self.ledger = Ledger()
        self.ledger.counts["MarketCreated"] = len(MARKETS)
        self.t = max(t0, int(w3.eth.get_block("latest")["timestamp"]) + 1)
        self.n_liq = 0

    def _tx(self, calls: list[tuple[str, bytes]]) -> None:
        self.t += self.rng.randint(30, 600)
        set_next_block_timestamp(self.w3, self.t)
        receipts = self.dep.multicall_tx(calls)
        assert len(receipts) == 1

    def trades(self) -> list[tuple[str, bytes]]:
        symbol = self.rng.choice([m.symbol for m in MARKETS])
        fills = []
        for _ in range(self.rng.randint(1, 8)):
            maker, taker = self.rng.sample(TRADERS, 2)
            price = self.rng.randint(10, 90_000) * E18 + self.rng.randint(0, E18)
            size = self.rng.randint(1, 5 * E18)
            maker_fee = self.rng.randint(-3 * E6, 5 * E6)
            taker_fee = self.rng.randint(0, 20 * E6)
            fills.append((maker, taker, self.rng.random() < 0.5, price, size, maker_fee, taker_fee, 0))
            self.ledger.volume_usd += (price / E18) * (size / E18)
            self.ledger.size_raw += size
            self.ledger.fees_raw += maker_fee + taker_fee
            self.ledger.traders |= {maker, taker}
        self.ledger.counts["Trade"] += len(fills)
        return self.dep.batch_calls(symbol, "emitTrades", fills)

    def market_data(self) -> list[tuple[str, bytes]]:
        perps = [self.dep.markets[m.symbol] for m in MARKETS if m.market_type == 1]
        prices = [(self.dep.markets[m.symbol], 100 * E18 + self.rng.randint(0, E18), 100 * E18, self.t)
                  for m in MARKETS]
        ois = []
        for market in perps:
            side = self.rng.randint(0, 1_000 * E18)
            ois.append((market, side, side))
            self.ledger.oi[market.lower()] = (side, side)
        funding = [(m, self.rng.randint(-E18 // 1000, E18 // 1000), self.rng.randint(-E18, E18), self.t) for m in perps]
        key = "0x" + self.rng.randbytes(32).hex()
        account = self.rng.choice(TRADERS)
        updates = [(key, account, perps[0], True, -E18 // 2, 3 * E18, 100 * E18, 99 * E18, 500 * E6, -7 * E6, 2 * E6, E6)]
        self.ledger.counts.update({"PriceUpdated": len(prices), "OpenInterestUpdated": len(ois),
                                   "FundingUpdated": len(funding), "PositionUpdated": len(updates)})
        return [
            self.dep.encode_call("Oracle", "updatePrices", prices),
            self.dep.encode_call("PositionHandler", "updateOpenInterest", ois),
            self.dep.encode_call("PositionHandler", "updateFunding", funding),
            self.dep.encode_call("PositionHandler", "updatePositions", updates),
        ]

    def funds(self) -> list[tuple[str, bytes]]:
        who = self.rng.choice(TRADERS)
        calls = []
        amount = self.rng.randint(1_000, 50_000) * E6
        calls.append(self.dep.encode_call("InsuranceFund", "deposit", who, amount))
        self.ledger.insurance_balance_raw += amount
        self.ledger.counts["InsuranceFundDeposit"] += 1
        if self.rng.random() < 0.3 and self.ledger.insurance_balance_raw > 2 * E6:
            out = self.rng.randint(1, self.ledger.insurance_balance_raw // 2)
            calls.append(self.dep.encode_call("InsuranceFund", "withdraw", who, out))
            self.ledger.insurance_balance_raw -= out
            self.ledger.counts["InsuranceFundWithdraw"] += 1
        assets = self.rng.randint(1_000, 100_000) * E6
        calls.append(self.dep.encode_call("BackstopVault", "deposit", who, who, assets, assets))
        self.ledger.vault_value_raw += assets
        self.ledger.counts["Deposit"] += 1
        if self.rng.random() < 0.3:
            out = self.rng.randint(1, self.ledger.vault_value_raw // 4)
            calls.append(self.dep.encode_call("BackstopVault", "withdraw", who, who, who, out, out))
            self.ledger.vault_value_raw -= out
            self.ledger.counts["Withdraw"] += 1
        return calls

    def liquidation(self) -> list[tuple[str, bytes]]:
        """All legs of one liquidation, EVENTS.md order, sized so each tier fits its funds."""
        self.n_liq += 1
        symbol = self.rng.choice([m.symbol for m in MARKETS if m.market_type == 1])
        market = self.dep.markets[symbol]
        key = "0x" + self.rng.randbytes(32).hex()
        account, counterparty = self.rng.sample(TRADERS, 2)
        mark = 100 * E18
        book = self.rng.randint(0, 3) * E18 // 2
        adl = self.rng.randint(0, 2) * E18 // 2
        deficit = self.rng.randint(0, 3_000) * E6 if self.rng.random() < 0.7 else 0
        if adl * 2 // E18 * E6 > deficit:
            adl = 0  # ADL only reduces counterparties when there is a deficit to cover
        adl_cover = adl * 2 // E18 * E6  # ADL at 2 USD above mark
        rest = deficit - adl_cover
        vault = min(rest, self.ledger.vault_value_raw // 2, self.rng.randint(0, 2_000) * E6)
        rest -= vault
        cover = min(rest, self.ledger.insurance_balance_raw // 2)
        debt = rest - cover
        fee = self.rng.randint(0, 50) * E6 if deficit == 0 else 0
        calls: list[tuple[str, bytes]] = []
        if book:
            calls += self.dep.batch_calls(symbol, "emitTrades", [(counterparty, account, False, mark, book, 0, 0, 1)])
            self.ledger.counts["Trade"] += 1
            self.ledger.volume_usd += 100 * book / E18
            self.ledger.size_raw += book
            self.ledger.traders |= {counterparty, account}
            self.ledger.liq_book_size_raw += book
        if adl:
            calls.append(self.dep.encode_call("PositionHandler", "executeADL",
                                              [(market, counterparty, key, False, adl, mark + 2 * E18, 10 * E6)]))
            self.ledger.counts["ADLExecuted"] += 1
            self.ledger.liq_adl_size_raw += adl
            self.ledger.liq_legs_raw["adl"] += adl * 2 // E18 * E6
        if vault:
            calls.append(self.dep.encode_call("BackstopVault", "recordPnl", key, -vault))
            self.ledger.vault_value_raw -= vault
            self.ledger.counts["VaultPnLUpdated"] += 1
            self.ledger.liq_legs_raw["backstop"] += vault
        if cover:
            calls.append(self.dep.encode_call("InsuranceFund", "coverShortfall", market, key, cover))
            self.ledger.insurance_balance_raw -= cover
            self.ledger.counts["ShortfallCovered"] += 1
            self.ledger.liq_legs_raw["insurance"] += cover
        if debt:
            calls.append(self.dep.encode_call("BackstopVault", "socializeDebt", debt, self.t))
            self.ledger.socialized_raw += debt
            self.ledger.counts["DebtSocialized"] += 1
            self.ledger.liq_legs_raw["socialized"] += debt
        size = book + adl + E18
        calls.append(self.dep.encode_call("PositionHandler", "liquidatePositions", [
            (key, account, market, True, size, 105 * E18, 101 * E18, mark, 400 * E6, fee, -deficit if deficit else 5 * E6,
             "0x" + "1f" * 20)]))
        self.ledger.counts["PositionLiquidated"] += 1
        self.ledger.liq_legs_raw["notional_e36"] += size * 101 * E18
        if fee:
            calls.append(self.dep.encode_call("InsuranceFund", "collectLiquidationFee", market, key, fee))
            self.ledger.insurance_balance_raw += fee
            self.ledger.counts["LiquidationFeeCollected"] += 1
            self.ledger.liq_legs_raw["fee"] += fee
        return calls

    def step(self) -> None:
        """One random transaction (the first ones fund the insurance fund and the vault)."""
        r = self.rng.random()
        if self.ledger.counts["InsuranceFundDeposit"] == 0 or r < 0.1:
            calls = self.funds()
        elif r < 0.5:
            calls = self.trades()
        elif r < 0.75:
            calls = self.market_data()
        else:
            calls = self.liquidation()
        self._tx(calls)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()


def snapshot_ledger(ledger: Ledger) -> Ledger:
    """A deep copy, to roll the ledger back with the chain (evm_revert)."""
    import copy

    return copy.deepcopy(ledger)


def rpc(w3: Web3, method: str, params: list[Any] | None = None) -> Any:
    return w3.provider.make_request(method, params or [])["result"]  # type: ignore[arg-type]
