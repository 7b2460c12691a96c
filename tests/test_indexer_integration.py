"""The indexer end to end against a real anvil node running the test contracts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from web3 import Web3

from core import db, schema
from tests.history import E6, E18, History, rpc, snapshot_ledger

ROOT = Path(__file__).resolve().parent.parent


def index(rpc_url: str, manifest: Path, db_url: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "core.indexer", "--rpc-url", rpc_url, "--manifest", str(manifest),
         "--database-url", db_url, "--json", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dump(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in key order, for exact comparison; excluded: the checkpoint's wall-clock
    time, and trader_totals' volumes, float sums kept by adding and taking away days, which round
    differently when the same history is committed in other chunks (test_rollup checks them to 1e-9)."""
    engine = db.make_engine(db_url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in schema.SQLModel.metadata.sorted_tables:
            cols = [c for c in table.columns if c.name != "updated_at"
                    and not (table.name == "trader_totals" and c.name == "volume_usd")]
            out[table.name] = [tuple(r) for r in conn.execute(sa.select(*cols).order_by(*table.primary_key.columns))]
    engine.dispose()
    return out


def q(db_url: str, sql: str) -> Any:
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).scalar()
    engine.dispose()
    return value


@pytest.fixture()
def chain(anvil_url: str, tmp_path: Path) -> tuple[History, Path]:
    w3 = Web3(Web3.HTTPProvider(anvil_url))
    history = History(w3, seed=7)
    history.run(60)
    manifest = history.dep.write_manifest(tmp_path / "local.json", "local")
    return history, manifest


def assert_matches_ledger(db_url: str, history: History) -> None:
    led = history.ledger
    view = lambda c, fn: getattr(history.dep.contract(c).functions, fn)().call()  # noqa: E731
    stored = summary_counts(db_url)
    assert stored == {k: v for k, v in led.counts.items() if v}
    assert q(db_url, "SELECT SUM(notional_usd) FROM trades") == pytest.approx(led.volume_usd, rel=1e-9)
    assert sum(int(s) for (s,) in rows(db_url, "SELECT size_raw FROM trades")) == led.size_raw
    assert q(db_url, "SELECT COUNT(DISTINCT market) FROM trades WHERE market NOT IN (SELECT market FROM markets)") == 0
    socialized = q(db_url, "SELECT COALESCE(SUM(amount_raw), 0) FROM socialized_debt")
    assert socialized == led.socialized_raw == view("BackstopVault", "totalSocializedDebt")
    latest_balance = q(db_url, "SELECT balance_raw FROM insurance_fund_events ORDER BY block_number DESC, log_index DESC LIMIT 1")
    assert latest_balance == led.insurance_balance_raw == view("InsuranceFund", "fundBalance")
    assert q(db_url, "SELECT SUM(value_change_raw) FROM backstop_vault_events") == led.vault_value_raw == view("BackstopVault", "totalVaultValue")
    legs = {
        "adl": "adl_covered_usd", "backstop": "backstop_loss_usd", "insurance": "insurance_cover_usd",
        "socialized": "socialized_usd", "fee": "fee_collected_usd",
    }
    for tier, col in legs.items():
        assert q(db_url, f"SELECT COALESCE(SUM({col}), 0) FROM liquidations") == pytest.approx(led.liq_legs_raw[tier] / E6), tier
    assert q(db_url, "SELECT COALESCE(SUM(book_filled_size), 0) FROM liquidations") == pytest.approx(led.liq_book_size_raw / E18)
    assert q(db_url, "SELECT COALESCE(SUM(adl_size), 0) FROM liquidations") == pytest.approx(led.liq_adl_size_raw / E18)
    assert q(db_url, "SELECT COALESCE(SUM(notional_usd), 0) FROM liquidations") == pytest.approx(led.liq_legs_raw["notional_e36"] / E18 / E18)
    # per liquidation: tiers sum to the deficit, max(0, −remaining equity)
    bad = q(db_url, "SELECT COUNT(*) FROM liquidations WHERE ABS(adl_covered_usd + backstop_loss_usd + insurance_cover_usd"
                    " + socialized_usd - CASE WHEN remaining_equity_usd < 0 THEN -remaining_equity_usd ELSE 0 END) > 1e-6")
    assert bad == 0
    for market, (long_raw, short_raw) in led.oi.items():
        latest = rows(db_url, "SELECT long_open_interest_raw, short_open_interest_raw FROM open_interest WHERE market = "
                              f"'{market}' ORDER BY block_number DESC, log_index DESC LIMIT 1")
        assert latest == [(str(long_raw), str(short_raw))]
    traders = rows(db_url, "SELECT maker FROM trades UNION SELECT taker FROM trades")
    assert {t for (t,) in traders} == led.traders
    symbols = {s for (s,) in rows(db_url, "SELECT symbol FROM markets")}
    assert "<b>SOL</b> *USDC*" in symbols
    assert q(db_url, "SELECT COUNT(*) FROM undecodable_logs") == 0


def rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        out = [tuple(r) for r in conn.execute(sa.text(sql))]
    engine.dispose()
    return out


def summary_counts(db_url: str) -> dict[str, int]:
    from core.read.status import stored_counts

    engine = db.make_engine(db_url)
    counts = stored_counts(engine, 31337)
    engine.dispose()
    return counts


def test_index_matches_the_emitted_ledger_and_is_idempotent(chain: tuple[History, Path], anvil_url: str, database_url: str,
                                                            new_database: Callable[[str], str]) -> None:
    history, manifest = chain
    url = database_url
    first = summary(index(anvil_url, manifest, url, "--chunk-blocks", "7"))
    head = history.w3.eth.block_number
    assert first["chain_id"] == 31337 and first["last_block"] == head
    assert first["stored"] == {k: v for k, v in history.ledger.counts.items() if v}
    assert first["indexed_this_run"] == first["stored"]
    assert_matches_ledger(url, history)
    before = dump(url)
    second = summary(index(anvil_url, manifest, url))
    assert second["indexed_this_run"] == {} and second["stored"] == first["stored"]
    # re-indexing an already indexed range stores nothing twice
    third = summary(index(anvil_url, manifest, url, "--from-block", "0", "--chunk-blocks", "5"))
    assert third["indexed_this_run"] == first["stored"]
    assert dump(url) == before
    # the same chain indexed in one big chunk gives the same database
    other = new_database("other")
    index(anvil_url, manifest, other, "--chunk-blocks", "100000")
    assert dump(other) == before


def test_confirmations_and_block_bounds(chain: tuple[History, Path], anvil_url: str, database_url: str) -> None:
    history, manifest = chain
    url = database_url
    head = history.w3.eth.block_number
    out = summary(index(anvil_url, manifest, url, "--confirmations", "10"))
    assert out["last_block"] == head - 10
    assert q(url, "SELECT MAX(block_number) FROM trades") <= head - 10
    out = summary(index(anvil_url, manifest, url, "--to-block", str(head - 5)))
    assert out["last_block"] == head - 5
    out = summary(index(anvil_url, manifest, url))
    assert out["last_block"] == head
    assert_matches_ledger(url, history)


def test_killed_at_random_moments_then_restarted_ends_identical(chain: tuple[History, Path], anvil_url: str, database_url: str,
                                                                new_database: Callable[[str], str]) -> None:
    history, manifest = chain
    reference = new_database("reference")
    index(anvil_url, manifest, reference, "--chunk-blocks", "1")
    expected = dump(reference)
    url = database_url
    args = [sys.executable, "-m", "core.indexer", "--rpc-url", anvil_url, "--manifest", str(manifest),
            "--database-url", url, "--chunk-blocks", "1"]
    kills = 0
    for delay in (0.9, 1.1, 1.3, 1.6, 2.0):
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1, "the indexer finished before any kill: make the chain longer"
    index(anvil_url, manifest, url, "--chunk-blocks", "1")
    assert dump(url) == expected


def test_reorg_orphaned_rows_go_and_the_new_branch_is_indexed(chain: tuple[History, Path], anvil_url: str, database_url: str,
                                                               new_database: Callable[[str], str]) -> None:
    history, manifest = chain
    url = database_url
    snap = rpc(history.w3, "evm_snapshot")
    ledger_at_snap = snapshot_ledger(history.ledger)
    t_at_snap = history.t
    history.run(15)
    orphan_head = history.w3.eth.block_number
    index(anvil_url, manifest, url, "--confirmations", "0")
    orphan_hashes = {h for (h,) in rows(url, "SELECT hash FROM blocks")}
    # the node drops the last 15 blocks and grows a different, longer branch
    assert rpc(history.w3, "evm_revert", [snap]) is True
    history.ledger, history.t = ledger_at_snap, t_at_snap + 7
    history.rng.seed(99)
    history.run(20)
    assert history.w3.eth.block_number > orphan_head
    out = index(anvil_url, manifest, url, "--confirmations", "0")
    assert "reorg: rewound to block" in out.stderr
    assert_matches_ledger(url, history)
    canonical = {history.w3.eth.get_block(n)["hash"].to_0x_hex() for n in range(history.w3.eth.block_number + 1)}
    stored = {h for (h,) in rows(url, "SELECT hash FROM blocks")}
    assert stored <= canonical and orphan_hashes - canonical, "orphaned blocks were replaced"
    # a fresh index of the new branch equals the rewound one
    fresh = new_database("fresh")
    index(anvil_url, manifest, fresh, "--confirmations", "0")
    assert dump(fresh) == dump(url)


def test_follow_tails_the_chain_survives_a_reorg_and_stops_cleanly_on_ctrl_c(chain: tuple[History, Path], anvil_url: str,
                                                                             database_url: str) -> None:
    history, manifest = chain
    url = database_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.indexer", "--rpc-url", anvil_url, "--manifest", str(manifest), "--database-url", url,
         "--follow", "--poll-interval", "0.2", "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )

    def wait_for(block: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # (reading creates the schema if the indexer has not yet: a concurrent create must be harmless)
            if (q(url, "SELECT MAX(last_block) FROM checkpoints") or -1) >= block:
                return
            time.sleep(0.1)
        raise AssertionError(f"follow did not reach block {block}")

    try:
        wait_for(history.w3.eth.block_number)
        snap = rpc(history.w3, "evm_snapshot")
        ledger_at_snap, t_at_snap = snapshot_ledger(history.ledger), history.t
        history.run(5)
        wait_for(history.w3.eth.block_number)
        rpc(history.w3, "evm_revert", [snap])
        history.ledger, history.t = ledger_at_snap, t_at_snap + 3
        history.rng.seed(1234)
        history.run(8)
        wait_for(history.w3.eth.block_number)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "reorg: rewound to block" in err
    assert json.loads(out.strip().splitlines()[-1])["last_block"] == history.w3.eth.block_number
    assert_matches_ledger(url, history)
