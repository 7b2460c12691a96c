"""The indexer end to end against a real anvil node running the test contracts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from web3 import Web3

from tests.history import History, rpc, snapshot_ledger
from tests.support.indexer import ROOT, assert_matches_ledger, index, q, rows, summary
from tests.support.tables import dump


@pytest.fixture()
def chain(anvil_url: str, tmp_path: Path) -> tuple[History, Path]:
    w3 = Web3(Web3.HTTPProvider(anvil_url))
    history = History(w3, seed=7)
    history.run(60)
    manifest = history.dep.write_manifest(tmp_path / "local.json", "local")
    return history, manifest


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
            "--database-url", url, "--chunk-blocks", "1", "--batch-logs", "0"]
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
