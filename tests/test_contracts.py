"""The Vyper test emitters emit every EVENTS.md event exactly as specified, on a real anvil node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import eth_abi
import pytest
from web3 import Web3

from core.abi import EventSpec, event_specs, load_abi
from core.simulator.contracts import (
    BUILD_DIR,
    MANIFEST_CONTRACTS,
    MAX_CALL_DATA,
    ContractTxError,
    Deployment,
    MarketSpec,
    compile_contracts,
    deploy,
    set_next_block_timestamp,
)
from tests.anvil import rpc, run_anvil

E6, E18 = 10**6, 10**18
TS = 1_767_225_600  # 2026-01-01T00:00:00Z


def addr(n: int) -> str:
    return "0x" + f"{n:040x}"


def key(n: int) -> bytes:
    return n.to_bytes(32, "big")


WETH, WBTC, USDC = addr(0xE7), addr(0xB7), addr(0x05DC)
MARKETS = [MarketSpec("ETH-PERP", 1, WETH, USDC), MarketSpec("BTC-USDC", 0, WBTC, USDC)]
ALICE, BOB, CAROL, DAVE, ERIN, LIQUIDATOR = (addr(0xA11CE0 + i) for i in range(6))


def _events(abi: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["name"], bool(e.get("anonymous")), [(i["name"], i["type"], bool(i["indexed"])) for i in e["inputs"]])
        for e in abi
        if e["type"] == "event"
    ]


def test_compiled_events_equal_abi_files() -> None:
    compiled = compile_contracts()
    for name in ("MarketRegistry", "OrderBook", "PositionHandler", "Oracle", "InsuranceFund", "BackstopVault"):
        assert _events(compiled[name].abi) == _events(load_abi(name)), name
        assert list(BUILD_DIR.glob(f"{name}.*.json")), "compiler output is cached on disk"
    assert not _events(compiled["Multicall"].abi)


def test_fast_encoding_equals_eth_abi() -> None:
    fn = compile_contracts()["PositionHandler"].functions["updatePositions"]
    row = (key(7), ALICE, addr(1), False, -(2**255), 2**256 - 1, 3, 4, 5, -6, -7, 8)
    as_dict = dict(zip([c["name"] for c in fn.inputs[0]["components"]], row, strict=True))
    expected = fn.selector + eth_abi.encode(fn.types, [[row, row]])
    assert fn.encode([row, as_dict]) == expected
    with pytest.raises(ValueError, match="out of range"):
        fn.encode([(key(7), ALICE, addr(1), False, 2**255, *row[5:])])
    with pytest.raises(TypeError):
        fn.encode([(key(7), ALICE, addr(1), 1, *row[4:])])


def test_deploy_and_manifest(anvil_url: str, tmp_path: Path) -> None:
    dep = deploy(Web3(Web3.HTTPProvider(anvil_url)), MARKETS)
    manifest = dep.manifest("local")
    assert manifest == {
        "name": "local",
        "chain_id": 31337,
        "start_block": 1,
        "contracts": {c: dep.addresses[c] for c in MANIFEST_CONTRACTS},
    }
    assert list(manifest["contracts"]) == list(MANIFEST_CONTRACTS)
    assert len({*dep.addresses.values(), dep.multicall, *dep.markets.values()}) == 6 + len(MARKETS)
    # start_block is the block of the first deployment transaction.
    registry = dep.addresses["MarketRegistry"]
    assert rpc(anvil_url, "eth_getCode", [registry, hex(dep.start_block - 1)]) == "0x"
    assert rpc(anvil_url, "eth_getCode", [registry, hex(dep.start_block)]) != "0x"
    path = dep.write_manifest(tmp_path / "local.json", "local")
    assert json.loads(path.read_text()) == manifest

    spec = event_specs()["MarketCreated"]
    logs: Any = rpc(anvil_url, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "topics": [spec.topic0]}])
    assert [lg["address"].lower() for lg in logs] == [registry.lower()] * len(MARKETS)
    for log, m in zip(logs, MARKETS, strict=True):
        book = dep.markets[m.symbol]
        assert decode(log, spec) == norm((book, m.symbol, m.market_type, m.base_token, m.quote_token))
        assert log["topics"][1] == "0x" + book[2:].lower().rjust(64, "0")

    with run_anvil() as other:  # deterministic addresses on a fresh node
        again = deploy(Web3(Web3.HTTPProvider(other)), MARKETS)
        assert (again.addresses, again.multicall, again.markets) == (dep.addresses, dep.multicall, dep.markets)


def norm(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.lower() if isinstance(v, str) and v.startswith("0x") else v for v in values)


def decode(log: dict[str, Any], spec: EventSpec) -> tuple[Any, ...]:
    """All of a raw log's values in the event's parameter order (indexed from topics, rest from data)."""
    assert log["topics"][0] == spec.topic0
    topics = iter(log["topics"][1:])
    data = iter(eth_abi.decode([p.type for p in spec.data], bytes.fromhex(log["data"][2:])))
    return norm(
        tuple(
            eth_abi.decode([p.type], bytes.fromhex(next(topics)[2:]))[0] if p.indexed else next(data)
            for p in spec.params
        )
    )


class Recorder:
    """Calls to send through Multicall and the events they must produce, in order."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.calls: list[tuple[str, bytes]] = []
        self.expected: list[tuple[str, str, tuple[Any, ...]]] = []  # (event, emitter, values)

    def add(self, contract: str, fn: str, args: Any, *events: tuple[str, tuple[Any, ...]]) -> None:
        target, data = self.dep.encode_call(contract, fn, *args)
        self.calls.append((target, data))
        self.expected += [(name, target.lower(), norm(values)) for name, values in events]


def test_every_event_emitted_as_specified(anvil_url: str) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil_url))
    dep = deploy(w3, MARKETS)
    eth, btc = dep.markets["ETH-PERP"], dep.markets["BTC-USDC"]
    specs = event_specs()

    # Ordinary events, many per transaction.
    r = Recorder(dep)
    fund = ("InsuranceFund", "deposit", (ALICE, 500_000 * E6))
    r.add(*fund, ("InsuranceFundDeposit", (ALICE, 500_000 * E6, 500_000 * E6)))
    fund = ("InsuranceFund", "withdraw", (ALICE, 100_000 * E6))
    r.add(*fund, ("InsuranceFundWithdraw", (ALICE, 100_000 * E6, 400_000 * E6)))
    deposit = (BOB, CAROL, 1_000_000 * E6, 1_000_000 * E18)
    r.add("BackstopVault", "deposit", deposit, ("Deposit", deposit))
    withdraw = (CAROL, DAVE, CAROL, 200_000 * E6, 150_000 * E18)
    r.add("BackstopVault", "withdraw", withdraw, ("Withdraw", withdraw))
    r.add("BackstopVault", "recordPnl", (key(9), 12_345_678), ("VaultPnLUpdated", (key(9), 12_345_678, 800_012_345_678)))
    prices = [(eth, 3000 * E18 + 5, 3001 * E18, TS), (btc, 97_000 * E18, 97_010 * E18, TS + 1)]
    r.add("Oracle", "updatePrices", (prices,), *(("PriceUpdated", p) for p in prices))
    positions = [
        (key(1), ALICE, eth, True, 2 * E18, 2 * E18, 3001 * E18, 3001 * E18, 10_000 * E6, 0, 0, 3 * E6),
        (key(2), BOB, eth, False, -(E18 // 2), E18, 3002 * E18, 2990 * E18, 5_000 * E6, -6 * E6, -12_345, 1),
    ]
    r.add("PositionHandler", "updatePositions", (positions,), *(("PositionUpdated", p) for p in positions))
    oi = (eth, 12 * E18, 11 * E18)
    r.add("PositionHandler", "updateOpenInterest", ([oi],), ("OpenInterestUpdated", oi))
    funding = (eth, -(125 * E18) // 10**6, -(3 * E18), TS + 3600)
    r.add("PositionHandler", "updateFunding", ([funding],), ("FundingUpdated", funding))
    spot = [
        (CAROL, DAVE, True, 97_000 * E18, E18 // 100, -1_000, 2_000, 0),
        (DAVE, CAROL, False, 96_990 * E18, E18, 5, 6, 0),
    ]
    r.add("BTC-USDC", "emitTrades", (spot,), *(("Trade", (btc, *f)) for f in spot))
    assert len(dep.multicall_tx(r.calls)) == 1

    # One liquidation: all legs in ONE transaction, in the EVENTS.md waterfall order.
    liq = Recorder(dep)
    kl = key(0xDEAD)
    book_leg = [
        (DAVE, BOB, False, 2500 * E18, E18, -100, 200, 1),
        (ERIN, BOB, False, 2499 * E18, E18 // 2, 50, 60, 1),
    ]
    liq.add("ETH-PERP", "emitTrades", (book_leg,), *(("Trade", (eth, *f)) for f in book_leg))
    adls = [(eth, CAROL, kl, False, E18 // 4, 2450 * E18, 137 * E6), (eth, DAVE, kl, False, E18 // 4, 2450 * E18, -1)]
    liq.add("PositionHandler", "executeADL", (adls,), *(("ADLExecuted", a) for a in adls))
    liq.add("BackstopVault", "recordPnl", (kl, -3_000 * E6), ("VaultPnLUpdated", (kl, -3_000 * E6, 797_012_345_678)))
    cover = (eth, kl, 1_500 * E6)
    liq.add("InsuranceFund", "coverShortfall", cover, ("ShortfallCovered", (*cover, 398_500 * E6)))
    liq.add("BackstopVault", "socializeDebt", (750 * E6, TS + 7200), ("DebtSocialized", (750 * E6, TS + 7200)))
    liquidated = (
        kl, BOB, eth, True, 3 * E18 // 2, 3000 * E18, 2520 * E18, 2500 * E18, 10_000 * E6, 125 * E6, -5_250 * E6, LIQUIDATOR,
    )
    liq.add("PositionHandler", "liquidatePositions", ([liquidated],), ("PositionLiquidated", liquidated))
    fee = (eth, kl, 125 * E6)
    liq.add("InsuranceFund", "collectLiquidationFee", fee, ("LiquidationFeeCollected", (*fee, 398_625 * E6)))
    when = int(w3.eth.get_block("latest")["timestamp"]) + 3600
    set_next_block_timestamp(w3, when)
    (receipt,) = dep.multicall_tx(liq.calls)
    assert int(w3.eth.get_block(receipt.block_number)["timestamp"]) == when

    all_logs: Any = rpc(anvil_url, "eth_getLogs", [{"fromBlock": hex(dep.start_block), "toBlock": "latest"}])
    by_topic = {s.topic0: s for s in specs.values()}
    assert {lg["topics"][0] for lg in all_logs} == set(by_topic)  # every EVENTS.md event, nothing else

    # Every log comes from its role's address.
    role = {c: {dep.addresses[c].lower()} for c in MANIFEST_CONTRACTS} | {"OrderBook": {eth.lower(), btc.lower()}}
    for lg in all_logs:
        assert lg["address"].lower() in role[by_topic[lg["topics"][0]].contract]

    # Every value round-trips (negative int256 included), from the right emitter, in order.
    logs = [lg for lg in all_logs if by_topic[lg["topics"][0]].name != "MarketCreated"]
    seen = [(by_topic[lg["topics"][0]].name, lg["address"].lower(), decode(lg, by_topic[lg["topics"][0]])) for lg in logs]
    assert seen == r.expected + liq.expected

    # The liquidation's legs share one transaction, in the waterfall order.
    legs = [lg for lg in logs if lg["transactionHash"] == receipt.tx_hash]
    assert [int(lg["logIndex"], 16) for lg in legs] == list(range(len(legs)))
    order = [by_topic[lg["topics"][0]].name for lg in legs]
    assert [n for i, n in enumerate(order) if i == 0 or order[i - 1] != n] == [
        "Trade", "ADLExecuted", "VaultPnLUpdated", "ShortfallCovered", "DebtSocialized",
        "PositionLiquidated", "LiquidationFeeCollected",
    ]
    assert all(v[-1] == 1 for n, _, v in liq.expected if n == "Trade")

    # The views agree with the events.
    values: dict[str, list[tuple[Any, ...]]] = {}
    for name, _, v in seen:
        values.setdefault(name, []).append(v)
    last_fund_event = [v for n, _, v in seen if specs[n].contract == "InsuranceFund"][-1]
    assert dep.contract("InsuranceFund").functions.fundBalance().call() == last_fund_event[-1] == 398_625 * E6
    vault = dep.contract("BackstopVault").functions
    deposited = sum(v[2] for v in values["Deposit"]) - sum(v[3] for v in values["Withdraw"])
    implied = deposited + sum(v[1] for v in values["VaultPnLUpdated"])
    assert vault.totalVaultValue().call() == implied == values["VaultPnLUpdated"][-1][2]
    assert vault.totalSupply().call() == sum(v[3] for v in values["Deposit"]) - sum(v[4] for v in values["Withdraw"])
    assert vault.totalSocializedDebt().call() == sum(v[0] for v in values["DebtSocialized"]) == 750 * E6


def test_multicall_chunking_batches_and_errors(anvil_url: str) -> None:
    dep = deploy(Web3(Web3.HTTPProvider(anvil_url)), MARKETS[:1])
    eth = dep.markets["ETH-PERP"]
    oracle = dep.addresses["Oracle"]

    # More than 64 calls → several transactions, order kept.
    calls = [dep.encode_call("Oracle", "updatePrices", [(eth, i, i, TS + i)]) for i in range(70)]
    receipts = dep.multicall_tx(calls)
    assert len(receipts) == 2 and receipts[0].block_number < receipts[1].block_number
    ts = [int(lg["data"][-64:], 16) for rc in receipts for lg in rc.logs]
    assert ts == [TS + i for i in range(70)]

    # A batch split to fit Multicall's 4096-byte slots, events in order.
    fills = [(ALICE, BOB, i % 2 == 0, (3000 + i) * E18, E18, -i, i, 0) for i in range(100)]
    split = dep.batch_calls("ETH-PERP", "emitTrades", fills)
    assert len(split) > 1 and all(len(d) <= MAX_CALL_DATA for _, d in split)
    (rc,) = dep.multicall_tx(split)
    assert [decode(lg, event_specs()["Trade"])[4] for lg in rc.logs] == [f[3] for f in fills]

    # A call too big for one slot is refused clearly; sent directly it works.
    big = [(eth, i, i, TS) for i in range(64)]
    with pytest.raises(ValueError, match="at most 4096"):
        dep.multicall_tx([dep.encode_call(oracle, "updatePrices", big)])
    assert len(dep.send("Oracle", "updatePrices", big).logs) == 64

    # A failing leg reverts the whole multicall, with the contract's reason.
    with pytest.raises(ContractTxError, match="exceeds balance"):
        dep.multicall_tx(
            [dep.encode_call("InsuranceFund", "deposit", ALICE, 5), dep.encode_call("InsuranceFund", "withdraw", ALICE, 6)]
        )
    assert dep.contract("InsuranceFund").functions.fundBalance().call() == 0
