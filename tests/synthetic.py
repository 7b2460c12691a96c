"""A synthetic multi-day history of every rolled-up event type, as eth_getLogs batches (no node)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import polars as pl

from core.abi import encode_event, event_specs
from core.indexer.manifest import Manifest

ROOT = Path(__file__).resolve().parent.parent
SPECS = event_specs()
CONTRACTS = {r: "0x" + f"{i:02x}" * 20 for i, r in enumerate(
    ("MarketRegistry", "PositionHandler", "Oracle", "InsuranceFund", "BackstopVault"), start=1)}
MANIFEST = Manifest(name="t", chain_id=31337, start_block=0, contracts=CONTRACTS)
PERP, SPOT = "0x" + "a1" * 20, "0x" + "a2" * 20
E6, E18 = 10**6, 10**18
T0 = 1_767_225_600  # 2026-01-01


def history(seed: int, blocks: int = 240) -> list[tuple[int, int, list[tuple[str, str, tuple[Any, ...]]]]]:
    """(block, timestamp, [(event, emitter, args)]) over ~5 days, every rolled-up event type."""
    rng = random.Random(seed)
    traders = ["0x" + f"{0xB0 + i:02x}" * 20 for i in range(9)]
    out = [(1, T0, [("MarketCreated", CONTRACTS["MarketRegistry"], (PERP, "BTC-PERP", 1, PERP, PERP)),
                    ("MarketCreated", CONTRACTS["MarketRegistry"], (SPOT, "<i>ETH</i>-USDC", 0, SPOT, SPOT))])]
    ts, balance = T0, 0
    for block in range(2, blocks):
        ts += rng.randint(60, 3_600)
        events: list[tuple[str, str, tuple[Any, ...]]] = []
        for _ in range(rng.randint(1, 5)):
            market = rng.choice([PERP, SPOT])
            maker, taker = rng.sample(traders, 2)
            events.append(("Trade", market, (market, maker, taker, rng.random() < 0.5, rng.randint(1, 9) * E18 * 1000,
                                             rng.randint(1, E18), -rng.randint(0, E6), rng.randint(0, E6), rng.choice([0, 0, 1]))))
        r = rng.random()
        if r < 0.3:
            oi = rng.randint(0, 100 * E18)
            events.append(("OpenInterestUpdated", CONTRACTS["PositionHandler"], (PERP, oi, oi)))
            events.append(("PriceUpdated", CONTRACTS["Oracle"], (PERP, rng.randint(1, 9) * E18, rng.randint(1, 9) * E18, ts)))
            events.append(("FundingUpdated", CONTRACTS["PositionHandler"], (PERP, rng.randint(-E18, E18) // 1000, 0, ts)))
        elif r < 0.45:
            amount = rng.randint(1, 1_000) * E6
            balance += amount
            events.append(("InsuranceFundDeposit", CONTRACTS["InsuranceFund"], (traders[0], amount, balance)))
            events.append(("Deposit", CONTRACTS["BackstopVault"], (traders[1], traders[1], amount, amount)))
        elif r < 0.6:
            key = "0x" + f"{rng.getrandbits(256):064x}"
            debt = rng.randint(0, 50) * E6
            if debt:
                events.append(("DebtSocialized", CONTRACTS["BackstopVault"], (debt, ts)))
            events.append(("PositionLiquidated", CONTRACTS["PositionHandler"], (
                key, traders[2], PERP, rng.random() < 0.5, rng.randint(1, 5) * E18, 100 * E18, 90 * E18, 90 * E18,
                10 * E6, 0, -debt, traders[3])))
        out.append((block, ts, events))
    return out


def batches(hist: list[tuple[int, int, list[tuple[str, str, tuple[Any, ...]]]]], cuts: list[int]) -> Any:
    """The history as eth_getLogs batches split before the blocks in ``cuts``."""
    edges = [0, *sorted(set(cuts)), len(hist)]
    for a, b in zip(edges, edges[1:], strict=False):
        if a == b:
            continue
        logs, numbers = [], []
        for block, ts, events in hist[a:b]:
            numbers.append((block, ts))
            for i, (name, emitter, args) in enumerate(events):
                topics, data = encode_event(SPECS[name], args)
                logs.append({"address": emitter, "topics": topics, "data": data, "blockNumber": hex(block),
                             "blockHash": "0x" + f"{block:064x}", "transactionHash": "0x" + f"{block:064x}",
                             "logIndex": hex(i), "removed": False})
        blocks = pl.DataFrame({"number": [n for n, _ in numbers], "hash": ["0x" + f"{n:064x}" for n, _ in numbers],
                               "timestamp": [t for _, t in numbers]}, schema={"number": pl.Int64, "hash": pl.String, "timestamp": pl.Int64})
        yield logs, blocks, (numbers[-1][0], blocks["hash"][-1])
