"""The bad-input catalogue: one test per case, each against a real anvil node and a real database.

A case the user must act on (a bad flag, manifest, node or database) ends with exactly one
``error: …`` line on stderr naming what is wrong and what to do, a non-zero exit, no RPC
credential or database password shown, and the database already indexed untouched. Bad data from
the chain or from a faulty node (hostile strings, mangled, duplicated, foreign or shuffled logs, a
reorg on restart) is not an error: the run ends with the database a clean run gives (or that
database plus what it could not decode, kept and counted).

Faulty-node answers come from ``tests/rpc_proxy.py`` in front of anvil.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import eth_abi
import pytest
import sqlalchemy as sa
from eth_utils import keccak
from web3 import Web3

from core import db, schema
from core.abi import encode_event, event_specs
from core.indexer.manifest import load_manifest
from core.indexer.rpc import RPC
from core.indexer.run import Indexer
from tests.anvil import free_port, run_anvil
from tests.apptest import open_app
from tests.history import History, rpc, snapshot_ledger
from tests.rpc_proxy import faulty_proxy
from tests.support.tables import dump

ROOT = Path(__file__).resolve().parent.parent
SECRET = "SECRETKEY123"
PASSWORD = "hunter2"
TRADE_TOPIC = event_specs()["Trade"].topic0
CREATED_TOPIC = event_specs()["MarketCreated"].topic0
# On-chain market symbols are untrusted bytes: registered raw, so not even valid UTF-8 is promised.
HOSTILE_SYMBOLS: dict[str, bytes] = {
    "html-script": b"<script>alert(1)</script><img src=x onerror=alert(2)>",
    "control-chars": "BTC\x00\x07\x1b[31mRED\x1b[0m\r\n\t\u202ePERP".encode(),
    "invalid-utf8": b"\xff\xfeBTC\xc3(-PERP\xed\xa0\x80",
}
HOSTILE_MARKETS = {name: "0x" + f"{0xD0 + i:02x}" * 20 for i, name in enumerate(HOSTILE_SYMBOLS)}
LONG_SYMBOL = "<b>" + "W" * 5_000 + "</b>"  # longer than the test contract accepts: put in the log by a tampering node


def stored_symbol(raw: bytes) -> str:
    """What the database keeps of a raw on-chain symbol: the text, invalid UTF-8 and NUL as U+FFFD."""
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


@dataclass
class Node:
    url: str
    history: History
    manifest: Path


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node shared by every case: a seeded history of every event and three hostile market symbols."""
    tmp = tmp_path_factory.mktemp("bad-input")
    with run_anvil() as url:
        history = History(Web3(Web3.HTTPProvider(url)), seed=3)
        history.run(10)
        selector = keccak(text="registerMarket(address,string,uint8,address,address)")[:4]
        registry = history.dep.addresses["MarketRegistry"]
        calls = [(registry, selector + eth_abi.encode(["address", "bytes", "uint8", "address", "address"],
                                                      [market, HOSTILE_SYMBOLS[name], 1, market, market]))
                 for name, market in HOSTILE_MARKETS.items()]  # a string is encoded as bytes are: any bytes go
        history.dep.multicall_tx(calls)
        history.run(6)
        yield Node(url, history, history.dep.write_manifest(tmp / "local.json", "local"))


def index_in_process(rpc_url: str, manifest: Path, db_url: str) -> None:
    engine = db.make_engine(db_url)
    try:
        Indexer(load_manifest(manifest), RPC(rpc_url), engine).run()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def reference(node: Node, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, list[tuple[Any, ...]]]]:
    """The node indexed cleanly (SQLite): the database every case leaves untouched, and its rows."""
    url = f"sqlite:///{tmp_path_factory.mktemp('kept') / 'kept.db'}"
    index_in_process(node.url, node.manifest, url)
    return url, dump(url)


def cli(rpc_url: str | None, manifest: Path | None, db_url: str | None, *extra: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m core.indexer`` with only the given settings (none inherited from the environment)."""
    args = [sys.executable, "-m", "core.indexer", "--json"]
    for flag, value in (("--rpc-url", rpc_url), ("--manifest", manifest), ("--database-url", db_url)):
        if value is not None:
            args += [flag, str(value)]
    clean = {k: v for k, v in os.environ.items() if k not in ("RPC_URL", "DATABASE_URL", "MANIFEST")}
    return subprocess.run([*args, *extra], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**clean, **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess[str], message: str | tuple[str, ...], exit_code: int = 1) -> str:
    """Exactly one 'error: …' line holding ``message`` (every part of it, in order), exit ``exit_code``."""
    assert proc.returncode == exit_code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    parts = (message,) if isinstance(message, str) else message
    positions = [lines[0].find(p) for p in parts]
    assert -1 not in positions and positions == sorted(positions), (parts, lines[0])
    assert SECRET not in proc.stdout + proc.stderr and PASSWORD not in proc.stdout + proc.stderr
    return lines[0]


# --------------------------------------------------------------------------------------------------
# Cases the user must act on. Each builds (rpc url, manifest, database url, extra flags, env) from
# the shared node; the database is the reference one, which must come out untouched.

@dataclass
class Ctx:
    node: Node
    tmp: Path
    kept: str
    stack: ExitStack

    def proxy(self, **options: Any) -> str:
        """A faulty proxy in front of the node, its URL carrying an API key that must never be shown."""
        return self.stack.enter_context(faulty_proxy(self.node.url, **options)).url + f"/v3/{SECRET}?key={SECRET}"

    def manifest(self, **changes: Any) -> Path:
        obj = json.loads(self.node.manifest.read_text())
        obj.update(changes)
        return self.text(json.dumps(obj))

    def contracts(self, **changes: Any) -> dict[str, Any]:
        return {**json.loads(self.node.manifest.read_text())["contracts"], **changes}

    def text(self, content: str) -> Path:
        p = self.tmp / "manifest.json"
        p.write_text(content)
        return p


Build = Callable[[Ctx], tuple[str | None, Path | None, str, list[str], dict[str, str]]]


def case(rpc: Callable[[Ctx], str | None] | None = None, manifest: Callable[[Ctx], Path | None] | None = None,
         database: Callable[[Ctx], str] | None = None, extra: tuple[str, ...] = (),
         env: dict[str, str] | None = None) -> Build:
    def build(c: Ctx) -> tuple[str | None, Path | None, str, list[str], dict[str, str]]:
        return ((rpc or (lambda c: c.node.url))(c), (manifest or (lambda c: c.node.manifest))(c),
                (database or (lambda c: c.kept))(c), list(extra), dict(env or {}))
    return build


def malformed_logs(method: str, params: list[Any], result: Any) -> Any:
    """A node whose eth_getLogs answers lose a field of the first log."""
    if method == "eth_getLogs" and isinstance(result, list) and result:
        return [{k: v for k, v in result[0].items() if k != "blockHash"}, *result[1:]]
    return result


def log_from_elsewhere(method: str, params: list[Any], result: Any) -> Any:
    """A node whose eth_getLogs answers carry a log from a block outside the range asked for."""
    if method == "eth_getLogs" and isinstance(result, list) and result:
        return [*result, {**result[-1], "blockNumber": hex(int(params[0]["toBlock"], 16) + 500)}]
    return result


def quantity_not_hex(method: str, params: list[Any], result: Any) -> Any:
    return "pending" if method == "eth_blockNumber" else result


CLI_CASES: dict[str, tuple[Build, str | tuple[str, ...], int]] = {
    # the node
    "rpc-unreachable": (case(rpc=lambda c: f"http://127.0.0.1:{free_port()}/v3/{SECRET}?key={SECRET}", extra=("--rpc-retries", "1")),
                        "cannot reach the RPC node at http://127.0.0.1", 1),
    "rpc-url-not-http": (case(rpc=lambda c: f"ws//node/{SECRET}"), "RPC URL must be an http(s) URL", 1),
    "rpc-url-missing": (case(rpc=lambda c: None), "no RPC URL: pass --rpc-url URL or set RPC_URL", 1),
    "rpc-answers-an-html-page": (case(rpc=lambda c: c.proxy(fixed="html")),
                                 "answered eth_chainId with an HTML page, not JSON-RPC: point --rpc-url at the node's JSON-RPC endpoint", 1),
    "rpc-api-key-rejected": (case(rpc=lambda c: c.proxy(fixed="http_401")), "HTTP 401 (check the API key in RPC_URL)", 1),
    "rpc-wrong-path": (case(rpc=lambda c: c.proxy(fixed="http_404")), "HTTP 404 (is the URL the node's JSON-RPC endpoint?)", 1),
    "rpc-always-503": (case(rpc=lambda c: c.proxy(fault_rate=1.0, faults=("http_503",)), extra=("--rpc-retries", "1")),
                       ("eth_chainId: HTTP 503 (gave up after 2 attempts on http://127.0.0.1:",
                        "/…): try again later, raise --rpc-retries or use another node"), 1),
    "rpc-always-times-out": (case(rpc=lambda c: c.proxy(fault_rate=1.0, faults=("timeout",), timeout_s=0.8),
                                  extra=("--rpc-timeout", "0.4", "--rpc-retries", "1")),
                             ("eth_chainId: timeout after 0.4 s (gave up after 2 attempts on http://127.0.0.1:",
                              "/…): raise --rpc-timeout or use a faster node"), 1),
    "rpc-getlogs-times-out-for-one-block": (case(rpc=lambda c: c.proxy(fault_rate=1.0, faults=("timeout",), timeout_s=0.8,
                                                                       fault_methods={"eth_getLogs"}),
                                                 extra=("--from-block", "0", "--max-chunk-blocks", "1", "--rpc-timeout", "0.4",
                                                        "--rpc-retries", "1")),
                                            ("eth_getLogs for blocks 0..0 timed out 2 times on http://127.0.0.1:",
                                             "/…: raise --rpc-timeout or use a faster node"), 1),
    "rpc-getlogs-refused-for-one-block": (case(rpc=lambda c: c.proxy(getlogs_max_blocks=0), extra=("--from-block", "0", "--rpc-retries", "1")),
                                          "the node refuses eth_getLogs even for blocks 0..0: it cannot serve this deployment's logs", 1),
    "rpc-without-eth-getlogs": (case(rpc=lambda c: c.proxy(reject_methods={"eth_getLogs": (-32601, "the method eth_getLogs does not exist/is not available")}),
                                     extra=("--from-block", "0")),
                                "the node does not offer eth_getLogs: use one that does", 1),
    "rpc-error-echoes-the-api-key": (case(rpc=lambda c: c.proxy(reject_methods={"eth_chainId": (
        -32602, f"invalid project id {SECRET}\n    please check https://node.example/v3/{SECRET}")})),
        "eth_chainId failed on http://127.0.0.1:", 1),
    "rpc-block-number-not-hex": (case(rpc=lambda c: c.proxy(tamper=quantity_not_hex), extra=("--rpc-retries", "1")),
                                 ("eth_blockNumber: the node answered 'pending', not a hex quantity", "use another node"), 1),
    "rpc-log-missing-a-field": (case(rpc=lambda c: c.proxy(tamper=malformed_logs), extra=("--from-block", "0", "--rpc-retries", "1")),
                                ("keeps answering malformed data for blocks 0..", "a log without blockHash", "use another node"), 1),
    "rpc-log-outside-the-range": (case(rpc=lambda c: c.proxy(tamper=log_from_elsewhere), extra=("--from-block", "0", "--rpc-retries", "1")),
                                  ("keeps answering malformed data for blocks 0..", "a log from block", "use another node"), 1),
    "chain-id-differs": (case(manifest=lambda c: c.manifest(chain_id=1)), "is chain 31337 but manifest 'local' is for chain 1", 1),
    # the manifest
    "manifest-missing": (case(manifest=lambda c: c.tmp / "nope.json"), "manifest not found", 1),
    "manifest-not-json": (case(manifest=lambda c: c.text("{oops")), "is not valid JSON: Expecting property name", 1),
    "manifest-not-an-object": (case(manifest=lambda c: c.text("[1, 2]")), "must be a JSON object", 1),
    "manifest-missing-contract": (case(manifest=lambda c: c.manifest(contracts={k: v for k, v in c.contracts().items() if k != "Oracle"})),
                                  "is missing contracts.Oracle", 1),
    "manifest-address-not-hex": (case(manifest=lambda c: c.manifest(contracts=c.contracts(Oracle="0xnothex"))),
                                 "contracts.Oracle is not a 0x-prefixed 20-byte hex address", 1),
    "manifest-address-bad-checksum": (case(manifest=lambda c: c.manifest(contracts=c.contracts(
        Oracle=Web3.to_checksum_address(c.contracts()["Oracle"]).swapcase().replace("0X", "0x")))),
        "fails its EIP-55 checksum, so a character is probably mistyped", 1),
    "manifest-unknown-contract": (case(manifest=lambda c: c.manifest(contracts=c.contracts(OrderBok="0x" + "ab" * 20))),
                                  "contracts.OrderBok is not a marginX contract", 1),
    "manifest-unknown-key": (case(manifest=lambda c: c.manifest(**{"start-block": 5})), "has unknown key 'start-block'", 1),
    "manifest-chain-id-not-integer": (case(manifest=lambda c: c.manifest(chain_id="31337")), "'chain_id' must be a positive integer", 1),
    # flags
    "flag-from-after-to": (case(extra=("--from-block", "9", "--to-block", "3")), "--from-block 9 is after --to-block 3", 2),
    "flag-negative-confirmations": (case(extra=("--confirmations", "-1")), "--confirmations must be >= 0", 2),
    "flag-block-not-a-number": (case(extra=("--from-block", "ten")), "'ten' is not a block number (decimal or 0x-hex)", 2),
    "flag-unknown": (case(extra=("--folow",)), "unrecognized arguments: --folow", 2),
    "flag-zero-timeout": (case(extra=("--rpc-timeout", "0")), "--rpc-timeout must be > 0", 2),
    # the database
    "db-url-invalid": (case(database=lambda c: "not a url"), "is not a valid SQLAlchemy URL", 1),
    "db-directory-missing": (case(database=lambda c: "sqlite:////no/such/dir/x.db"), "directory /no/such/dir does not exist", 1),
    "db-directory-unwritable": (case(database=lambda c: "sqlite:////proc/marginx.db"),
                                "cannot open database sqlite:////proc/marginx.db", 1),
    "db-server-unreachable": (case(database=lambda c: f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:{free_port()}/db"),
                              "cannot open database postgresql+psycopg://u:***@127.0.0.1:", 1),
}


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_bad_input_is_one_line_and_a_nonzero_exit_and_nothing_lost(
        name: str, node: Node, reference: tuple[str, dict[str, list[tuple[Any, ...]]]], tmp_path: Path) -> None:
    kept, before = reference
    build, message, exit_code = CLI_CASES[name]
    with ExitStack() as stack:
        rpc_url, manifest, db_url, extra, env = build(Ctx(node, tmp_path, kept, stack))
        proc = cli(rpc_url, manifest, db_url, *extra, env=env)
    assert_one_line_error(proc, message, exit_code)
    assert dump(kept) == before


def test_a_file_that_is_not_a_database_is_left_as_it_was(node: Node, tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"my notes, not sqlite\n" * 100)
    assert_one_line_error(cli(node.url, node.manifest, f"sqlite:///{junk}"), f"cannot open database sqlite:///{junk}")
    assert junk.read_bytes() == b"my notes, not sqlite\n" * 100


def test_a_database_of_another_schema_is_one_line_and_keeps_its_rows(node: Node, tmp_path: Path) -> None:
    """A SQLite file of another app (or an old version) with a ``trades`` table of other columns."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE trades (id INTEGER PRIMARY KEY, pair TEXT, amount REAL)")
        conn.executemany("INSERT INTO trades (pair, amount) VALUES (?, ?)", [("ETH/USD", 1.5), ("BTC/USD", 0.1)])
    line = assert_one_line_error(cli(node.url, node.manifest, f"sqlite:///{path}"),
                                 f"writing to database sqlite:///{path} failed: table trades has no column named")
    assert "is it a marginX Analytics database of this version" in line
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT pair, amount FROM trades ORDER BY id").fetchall() == [("ETH/USD", 1.5), ("BTC/USD", 0.1)]


# --------------------------------------------------------------------------------------------------
# Bad data from the chain or a faulty node: indexed anyway, into the database a clean run gives.

def index_through(node: Node, db_url: str, *extra: str, **proxy_options: Any) -> tuple[subprocess.CompletedProcess[str], Any]:
    with faulty_proxy(node.url, **proxy_options) as proxy:
        proc = cli(f"{proxy.url}/v3/{SECRET}", node.manifest, db_url, *extra)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    return proc, proxy


def summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_duplicate_logs_from_a_faulty_node_are_stored_once(
        node: Node, reference: tuple[str, dict[str, list[tuple[Any, ...]]]], database_url: str) -> None:
    proc, proxy = index_through(node, database_url, "--chunk-blocks", "5", duplicate_logs=True)
    assert proxy.counts["duplicate_logs"] >= 10
    out = summary(proc)
    assert out["indexed_this_run"] == out["stored"], "nothing counted twice"
    assert dump(database_url) == reference[1]


def test_logs_out_of_block_order_give_the_same_database(
        node: Node, reference: tuple[str, dict[str, list[tuple[Any, ...]]]], database_url: str) -> None:
    _, proxy = index_through(node, database_url, "--chunk-blocks", "1000", shuffle_logs=True)
    assert proxy.counts["shuffled_answers"] >= 1
    assert dump(database_url) == reference[1]


def test_logs_from_unknown_addresses_are_counted_and_ignored(
        node: Node, reference: tuple[str, dict[str, list[tuple[Any, ...]]]], database_url: str) -> None:
    """A node answering logs of addresses it was not asked for: other emitters of the same events."""
    def add_foreign(method: str, params: list[Any], result: Any) -> Any:
        if method == "eth_getLogs" and isinstance(result, list):
            return result + [{**lg, "address": "0x" + "ee" * 20, "logIndex": hex(1000 + i)} for i, lg in enumerate(result)]
        return result
    proc, _ = index_through(node, database_url, tamper=add_foreign)
    assert "logs came from addresses outside this deployment and were ignored" in proc.stderr
    assert dump(database_url) == reference[1]


def test_a_log_with_truncated_data_is_kept_as_undecodable_and_recovered_by_reindexing(
        node: Node, reference: tuple[str, dict[str, list[tuple[Any, ...]]]], database_url: str) -> None:
    mangled: list[tuple[int, int]] = []

    def truncate_one_trade(method: str, params: list[Any], result: Any) -> Any:
        if method != "eth_getLogs" or not isinstance(result, list) or mangled:
            return result
        out = []
        for lg in result:
            if not mangled and lg["topics"][0] == TRADE_TOPIC and lg["data"].endswith("0" * 64):  # a plain fill
                mangled.append((int(lg["blockNumber"], 16), int(lg["logIndex"], 16)))
                lg = {**lg, "data": lg["data"][: len(lg["data"]) // 2 + 7]}  # cut mid-word, odd length
            out.append(lg)
        return out

    proc, _ = index_through(node, database_url, tamper=truncate_one_trade)
    assert len(mangled) == 1
    assert "warning: 1 logs could not be decoded (kept in table undecodable_logs)" in proc.stderr
    assert summary(proc)["undecodable"] == 1
    block, log_index = mangled[0]
    got, expected = dump(database_url), reference[1]
    (kept,) = got["undecodable_logs"]
    assert (kept[1], kept[2]) == (block, log_index) and "Trade" in str(kept) and "data bytes" in str(kept)
    missing = [r for r in expected["trades"] if r not in got["trades"]]
    assert [(r[1], r[2]) for r in missing] == [(block, log_index)], "only the mangled log is missing"
    derived = {schema.table_of(m).name for m in (*schema.ROLLUP_TABLES, schema.RollupState)}
    for table in expected:
        if table not in derived | {"trades", "undecodable_logs"}:
            assert got[table] == expected[table], table
    # re-indexing the block from a healthy node recovers the trade and the figures built on it
    index_proc = cli(node.url, node.manifest, database_url, "--from-block", str(block), "--to-block", str(block))
    assert index_proc.returncode == 0, index_proc.stderr
    got = dump(database_url)
    for table in expected:
        if table != "undecodable_logs":
            assert got[table] == expected[table], table


@pytest.mark.parametrize("name", [*HOSTILE_SYMBOLS, "very-long"])
def test_a_hostile_market_symbol_is_stored_verbatim_and_shown_as_text(
        name: str, node: Node, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    market = HOSTILE_MARKETS.get(name, HOSTILE_MARKETS["html-script"])
    expected = stored_symbol(HOSTILE_SYMBOLS[name]) if name in HOSTILE_SYMBOLS else LONG_SYMBOL

    def lengthen(method: str, params: list[Any], result: Any) -> Any:
        """A registry that emits a symbol longer than the test contract takes (any length is valid ABI)."""
        if method != "eth_getLogs" or not isinstance(result, list):
            return result
        out = []
        for lg in result:
            if lg["topics"][0] == CREATED_TOPIC and lg["topics"][1].endswith(market[2:]):
                _, data = encode_event(event_specs()["MarketCreated"], (market, LONG_SYMBOL, 1, market, market))
                lg = {**lg, "data": data}
            out.append(lg)
        return out

    if name == "very-long":
        index_through(node, database_url, tamper=lengthen)
    else:
        index_in_process(node.url, node.manifest, database_url)
    engine = db.make_engine(database_url)
    with engine.connect() as conn:
        symbol = conn.execute(sa.text("SELECT symbol FROM markets WHERE market = :m"), {"m": market}).scalar()
    engine.dispose()
    assert symbol == expected
    # rendered: the sidebar lists it as an option (text), and nothing passes it through markdown/HTML
    at = open_app(database_url, monkeypatch, params={"range": "All"}, timeout=120)
    assert expected in at.sidebar.multiselect(key="markets").options
    rendered = [str(e.value) for e in [*at.markdown, *at.caption, *at.title, *at.header, *at.subheader, *at.info]]
    assert not any("<script" in r or "<b>W" in r or "\x1b" in r for r in rendered), "symbols never go through markdown"


def test_a_reorg_deeper_than_the_window_found_on_restart_is_rewound(anvil_url: str, tmp_path: Path, database_url: str) -> None:
    """The node replaced blocks older than --reorg-window while the indexer was stopped."""
    history = History(Web3(Web3.HTTPProvider(anvil_url)), seed=21)
    history.run(8)
    manifest = history.dep.write_manifest(tmp_path / "local.json", "local")
    fork_block = history.w3.eth.block_number
    snap = rpc(history.w3, "evm_snapshot")
    ledger, t = snapshot_ledger(history.ledger), history.t
    history.run(12)
    index_in_process(anvil_url, manifest, database_url)
    rpc(history.w3, "evm_revert", [snap])
    history.ledger, history.t = ledger, t + 11
    history.rng.seed(5)
    history.run(14)
    proc = cli(anvil_url, manifest, database_url, "--reorg-window", "2")
    assert proc.returncode == 0, proc.stderr
    assert f"reorg: rewound to block {fork_block} and re-indexed" in proc.stderr
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    index_in_process(anvil_url, manifest, fresh)
    assert dump(database_url) == dump(fresh)
