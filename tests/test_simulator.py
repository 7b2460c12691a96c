"""The market simulator: exact encoding, determinism, conservation, and node path == raw path."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from web3 import Web3

from core import db, schema
from core.abi import encode_event, event_specs
from core.indexer.decode import logs_to_frame
from core.indexer.manifest import load_manifest
from core.indexer.rpc import RPC
from core.indexer.run import Indexer
from core.period import Filters
from core.simulator import Truth, build_database, run_config, run_on_node
from core.simulator.build import fingerprint
from core.simulator.chain import (
    DEMO_MANIFEST,
    LogEncoder,
    RawBatch,
    RawLogWriter,
    count_calls,
    create_address,
    demo_addresses,
    deployment_txs,
    log_dicts,
    planned_addresses,
)
from core.simulator.contracts import MAX_MULTICALL_CALLS
from core.simulator.model import Simulation
from tests.anvil import run_anvil

#: Small default-economics history with a crash and a squeeze: every waterfall tier occurs.
SEED, DAYS, TRADES_PER_DAY = 1, 10, 1500
E30 = 10**30


# --------------------------------------------------------------------------- encoding


def _abi_value(typ: str) -> st.SearchStrategy[Any]:
    if typ == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if typ == "bytes32":
        return st.binary(min_size=32, max_size=32)
    if typ == "bool":
        return st.booleans()
    if typ == "uint8":
        return st.integers(0, 255)
    if typ.startswith("uint"):
        return st.one_of(st.integers(0, 2**63), st.integers(0, 2**255 - 1))
    return st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**255), 2**255 - 1))


_EVENTS = sorted(n for n in event_specs() if n != "MarketCreated")


@st.composite
def _event_rows(draw: st.DrawFn) -> tuple[str, list[tuple[Any, ...]]]:
    name = draw(st.sampled_from(_EVENTS))
    row = st.tuples(*(_abi_value(p.type) for p in event_specs()[name].params))
    return name, draw(st.lists(row, min_size=1, max_size=5))


@settings(max_examples=150, deadline=None)
@given(_event_rows())
def test_columnar_encoder_equals_encode_event(case: tuple[str, list[tuple[Any, ...]]]) -> None:
    name, rows = case
    topics, data = LogEncoder().encode_columns(name, rows)
    spec = event_specs()[name]
    for i, args in enumerate(rows):
        expected_topics, expected_data = encode_event(spec, args)
        assert [spec.topic0, *(t[i] for t in topics if t is not None)] == expected_topics
        assert data[i] == expected_data


def test_addresses_are_anvils_and_the_committed_demo_manifest() -> None:
    assert create_address("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", 0) == "0x5fbdb2315678afecb367f032d93f642f64180aa3"
    cfg = run_config(SEED, 1, 10)
    book = planned_addresses(cfg.markets)
    assert json.loads(DEMO_MANIFEST.read_text()) == book.manifest() == demo_addresses(cfg.markets).manifest()
    assert load_manifest(DEMO_MANIFEST).start_block == 1
    # MarketCreated of market i is the registration right after its OrderBook: block 8 + 2i.
    assert [b for b, _, _ in deployment_txs(book, cfg.markets, cfg.start_ts)] == [8 + 2 * i for i in range(len(cfg.markets))]


# --------------------------------------------------------------------------- determinism


def _digest(seed: int, days: int = 2, trades_per_day: int = 400) -> tuple[str, int, RawBatch]:
    """Hash of the whole raw log stream of a small history, its log count and its first batch."""
    cfg = run_config(seed, days, trades_per_day)
    book = demo_addresses(cfg.markets)
    writer = RawLogWriter(book, fingerprint(cfg), batch_logs=5_000, digest=True)
    batches = []
    for number, ts, events in deployment_txs(book, cfg.markets, cfg.start_ts):
        writer.add_block(number, ts, events)
    number = book.start_block + book.deploy_blocks
    sim = Simulation(cfg, book, np.random.default_rng(seed))
    last_ts = 0
    for tx in sim.transactions():
        assert tx.ts > last_ts and count_calls(tx.events) <= MAX_MULTICALL_CALLS
        last_ts = tx.ts
        if (batch := writer.add_block(number, tx.ts, tx.events)) is not None:
            batches.append(batch)
        number += 1
    if (batch := writer.flush()) is not None:
        batches.append(batch)
    assert writer.digest is not None
    return writer.digest.hexdigest(), sum(b.raw.height for b in batches), batches[0]


def test_same_seed_same_logs_other_seed_other_logs() -> None:
    first, n, batch = _digest(7)
    again, n_again, _ = _digest(7)
    other, _, _ = _digest(8)
    assert (first, n) == (again, n_again) and n > 1_000
    assert other != first
    # A batch is exactly the frame the indexer builds from the same logs as eth_getLogs objects.
    logs = log_dicts(batch)
    assert logs[0]["blockNumber"] == "0x8" and logs[0]["logIndex"] == "0x0"
    assert logs_to_frame(logs).equals(batch.raw.sort("block_number", "log_index"))


# --------------------------------------------------------------------------- raw path → database


@pytest.fixture(scope="module")
def demo(new_database: Callable[[str], str]) -> tuple[Engine, Truth]:
    url = new_database("sim")
    fractions: list[float] = []
    truth = build_database(url, SEED, DAYS, TRADES_PER_DAY, progress=lambda f, _m: fractions.append(f))
    assert fractions and fractions == sorted(fractions) and fractions[-1] > 0.99
    return db.make_engine(url, create=False), truth


def _frame(engine: Engine, table: str, order: str = "block_number, log_index") -> pl.DataFrame:
    with engine.connect() as conn:
        return db.read_frame(conn, f"SELECT * FROM {table} ORDER BY {order}")


def test_waterfall_conserves_value_per_liquidation(demo: tuple[Engine, Truth]) -> None:
    engine, truth = demo
    liq = _frame(engine, "liquidations")
    assert liq.height == truth.liquidations > 0
    deficit = (-liq["remaining_equity_usd"]).clip(lower_bound=0)
    tiers = liq["adl_covered_usd"] + liq["backstop_loss_usd"] + liq["insurance_cover_usd"] + liq["socialized_usd"]
    assert ((tiers - deficit).abs() <= 1e-6).all()
    # Every tier absorbs something somewhere in a default-economics history.
    for tier in ("adl_covered_usd", "backstop_loss_usd", "insurance_cover_usd", "socialized_usd"):
        assert liq[tier].max() > 0, tier
    # A solvent liquidation closes on the book and pays its penalty; an insolvent one pays none.
    solvent = liq.filter(pl.col("remaining_equity_usd") >= 0)
    assert ((solvent["book_filled_size"] - solvent["size"]).abs() <= 1e-9 * solvent["size"]).all()
    assert (solvent["adl_size"] == 0).all()
    assert (liq.filter(pl.col("remaining_equity_usd") < 0)["fee_collected_usd"] == 0).all()


def test_balances_debt_and_open_interest_reconcile(demo: tuple[Engine, Truth]) -> None:
    engine, truth = demo
    debt = _frame(engine, "socialized_debt")
    assert int(debt["amount_raw"].sum()) == truth.socialized_debt_raw > 0  # == BackstopVault.totalSocializedDebt()
    fund = _frame(engine, "insurance_fund_events")
    assert (fund["balance_raw"] >= 0).all()
    vault = _frame(engine, "backstop_vault_events")
    running = vault["value_change_raw"].cum_sum()
    assert (running >= 0).all()
    pnl = vault.with_columns(running.alias("running")).filter(pl.col("event") == "VaultPnLUpdated")
    assert (pnl["running"] == pnl["total_vault_value_raw"]).all()
    oi = _frame(engine, "open_interest")
    latest = oi.group_by("market").agg(pl.all().sort_by("block_number", "log_index").last())
    assert latest.height == 4
    assert (latest["long_open_interest_raw"] == latest["short_open_interest_raw"]).all()
    assert (oi["long_open_interest_raw"] == oi["short_open_interest_raw"]).all()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM undecodable_logs")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT last_block FROM checkpoints")).scalar_one() == \
            conn.execute(sa.text("SELECT MAX(number) FROM blocks")).scalar_one()


def test_truth_ledger_equals_the_database_by_the_definitions(demo: tuple[Engine, Truth]) -> None:
    engine, truth = demo
    trades = _frame(engine, "trades")
    liq = _frame(engine, "liquidations")
    debt = _frame(engine, "socialized_debt")
    fund = _frame(engine, "insurance_fund_events")
    vault = _frame(engine, "backstop_vault_events")
    prices = _frame(engine, "prices")
    oi = _frame(engine, "open_interest")
    markets = _frame(engine, "markets", "block_number")

    assert truth.total_trades == trades.height
    assert truth.total_volume_usd == pytest.approx(float((trades["price"] * trades["size"]).sum()), rel=1e-9)
    assert truth.liquidations == liq.height
    assert truth.liquidated_notional_usd == pytest.approx(float((liq["size"] * liq["liquidation_price"]).sum()), rel=1e-9)
    assert truth.socialized_debt_usd == pytest.approx(float(debt["amount_usd"].sum()), abs=1e-6)
    assert truth.insurance_fund_usd == fund["balance_usd"][-1]
    assert truth.backstop_vault_usd == pytest.approx(float(vault["value_change_usd"].sum()), abs=1e-6)
    perps = markets.filter(pl.col("market_type") == "perp")["market"]
    long_oi = oi.group_by("market").agg(pl.col("long_open_interest").last())
    mark = prices.group_by("market").agg(pl.col("mark_price").last())
    oi_usd = long_oi.join(mark, on="market").filter(pl.col("market").is_in(perps.implode()))
    assert truth.open_interest_usd == pytest.approx(float((oi_usd["long_open_interest"] * oi_usd["mark_price"]).sum()), rel=1e-9)
    assert truth.active_traders == len(set(trades["maker"]) | set(trades["taker"]))

    day = lambda f: f.with_columns(pl.from_epoch("block_timestamp").dt.strftime("%Y-%m-%d").alias("date"))  # noqa: E731
    daily = {d.date: d for d in truth.daily}
    active_days: set[str] = set()
    with engine.connect() as conn:
        for table in ("trades", "prices", "funding"):
            active_days |= set(day(db.read_frame(conn, f"SELECT block_timestamp FROM {table}"))["date"])
    assert set(daily) == active_days and len(daily) == DAYS
    by_day = day(trades).group_by("date").agg(pl.len().alias("n"), (pl.col("price") * pl.col("size")).sum().alias("v"))
    for date, n, volume in by_day.iter_rows():
        assert (daily[date].trades, daily[date].volume_usd) == (n, pytest.approx(volume, rel=1e-9))
    liq_days = day(liq).group_by("date").agg(pl.len(), (pl.col("size") * pl.col("liquidation_price")).sum().alias("v"))
    for date, n, notional in liq_days.iter_rows():
        assert (daily[date].liquidations, daily[date].liquidated_notional_usd) == (n, pytest.approx(notional, rel=1e-9))
    assert sum(d.socialized_debt_usd for d in truth.daily) == pytest.approx(truth.socialized_debt_usd, abs=1e-6)
    assert json.loads(truth.to_json())["total_trades"] == truth.total_trades


# --------------------------------------------------------------------------- node path == raw path

#: Columns that differ between a node and the raw path by design (real vs synthetic hashes, wall clock).
_NOT_COMPARED = {"tx_hash", "hash", "last_block_hash", "updated_at"}


def _tables(engine: Engine) -> dict[str, pl.DataFrame]:
    out = {}
    with engine.connect() as conn:
        for model in (*schema.CHAIN_TABLES, schema.Checkpoint):
            table = schema.table_of(model)
            cols = [c.name for c in table.columns if c.name not in _NOT_COMPARED]
            key = [c for c in ("block_number", "number", "log_index", "market", "chain_id") if c in cols]
            frame = db.read_frame(conn, f"SELECT {', '.join(cols)} FROM {table.name}")
            out[table.name] = frame.sort(key) if key else frame
    return out


def test_node_path_equals_raw_path(tmp_path: Path, database_url: str, new_database: Callable[[str], str]) -> None:
    cfg = run_config(3, 1, 300)
    manifest_path = tmp_path / "node.json"
    with run_anvil(timestamp=cfg.start_ts - 86_400) as url:
        truth = run_on_node(url, manifest_path, 3, 1, 300)
        manifest = load_manifest(manifest_path)
        assert manifest.contracts == load_manifest(DEMO_MANIFEST).contracts
        node_engine = db.make_engine(database_url)
        result = Indexer(manifest, RPC(url), node_engine).run()
        assert result.undecodable == 0 and result.foreign == 0
        w3 = Web3(Web3.HTTPProvider(url))
        abi = [{"name": n, "type": "function", "stateMutability": "view", "inputs": [],
                "outputs": [{"name": "", "type": "uint256"}]}
               for n in ("fundBalance", "totalVaultValue", "totalSocializedDebt")]
        fund = w3.eth.contract(address=Web3.to_checksum_address(manifest.contracts["InsuranceFund"]), abi=abi)
        vault = w3.eth.contract(address=Web3.to_checksum_address(manifest.contracts["BackstopVault"]), abi=abi)
        assert fund.functions.fundBalance().call() == truth.insurance_fund_raw
        assert vault.functions.totalVaultValue().call() == truth.backstop_vault_raw
        assert vault.functions.totalSocializedDebt().call() == truth.socialized_debt_raw

    raw_engine = db.make_engine(new_database("raw"))
    assert build_database(raw_engine, 3, 1, 300, parallel=False) == truth
    node, raw = _tables(node_engine), _tables(raw_engine)
    assert node["trades"].height == truth.total_trades and node["liquidations"].height == truth.liquidations > 0
    for name in node:
        assert node[name].equals(raw[name]), name


def test_core_report_equals_the_truth_ledger_every_key_and_day(demo: tuple[Engine, Truth]) -> None:
    """What the pages show (core.report over the rollups) is the simulator's own ledger."""
    from core import dashboard

    engine, truth = demo
    report = dashboard.report(engine, 31337, Filters())
    expected = dataclasses.asdict(truth)
    for key in ("total_volume_usd", "total_trades", "liquidations", "liquidated_notional_usd", "socialized_debt_usd",
                "insurance_fund_usd", "backstop_vault_usd", "open_interest_usd", "active_traders"):
        assert report[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-6), key
    assert [d["date"] for d in report["daily"]] == [d["date"] for d in expected["daily"]]
    for got, want in zip(report["daily"], expected["daily"], strict=True):
        for key in ("volume_usd", "trades", "liquidations", "liquidated_notional_usd", "socialized_debt_usd"):
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-6), (got["date"], key)
    assert truth.socialized_debt_usd > 0, "a default run ends with some bad debt"
