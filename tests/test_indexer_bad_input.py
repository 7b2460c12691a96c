"""Bad input: one clear line on stderr, a non-zero exit, and nothing already stored lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from tests.anvil import free_port, run_anvil
from tests.history import History
from tests.test_indexer_integration import dump, index

SECRET = "SECRETKEY123"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """One node and one indexed database shared by every case (no case may change it)."""
    tmp_path = tmp_path_factory.mktemp("kept")
    with run_anvil() as anvil_url:
        history = History(Web3(Web3.HTTPProvider(anvil_url)), seed=3)
        history.run(12)
        manifest = history.dep.write_manifest(tmp_path / "local.json", "local")
        url = f"sqlite:///{tmp_path / 'kept.db'}"
        index(anvil_url, manifest, url)
        yield anvil_url, manifest, url


def write_manifest(tmp_path: Path, base: Path, **changes: object) -> Path:
    obj = json.loads(base.read_text())
    obj.update(changes)
    p = tmp_path / "changed.json"
    p.write_text(json.dumps(obj))
    return p


CASES = {
    "unreachable rpc": (lambda tmp, node, m: [f"http://127.0.0.1:{free_port()}/v3/{SECRET}?key={SECRET}", m, []],
                        "cannot reach the RPC node at http://127.0.0.1"),
    "rpc url not http": (lambda tmp, node, m: ["ws//nonsense", m, []], "RPC URL must be an http(s) URL"),
    "manifest missing": (lambda tmp, node, m: [node, tmp / "nope.json", []], "manifest not found"),
    "manifest malformed": (lambda tmp, node, m: [node, _text(tmp, "{oops"), []], "is not valid JSON"),
    "manifest bad address": (lambda tmp, node, m: [node, write_manifest(tmp, m, contracts={
        **json.loads(m.read_text())["contracts"], "Oracle": "0xnothex"}), []], "contracts.Oracle is not a 0x-prefixed"),
    "chain id differs": (lambda tmp, node, m: [node, write_manifest(tmp, m, chain_id=1), []],
                         "is chain 31337 but manifest 'local' is for chain 1"),
    "from after to": (lambda tmp, node, m: [node, m, ["--from-block", "9", "--to-block", "3"]],
                      "--from-block 9 is after --to-block 3"),
    "negative confirmations": (lambda tmp, node, m: [node, m, ["--confirmations", "-1"]], "--confirmations must be >= 0"),
}


def _text(tmp: Path, content: str) -> Path:
    p = tmp / "bad.json"
    p.write_text(content)
    return p


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_one_line_nonzero_exit_nothing_lost(case: str, indexed: tuple[str, Path, str], tmp_path: Path) -> None:
    node, manifest, url = indexed
    before = dump(url)
    build, message = CASES[case]
    rpc_url, man, extra = build(tmp_path, node, manifest)
    proc = index(str(rpc_url), Path(man), url, *extra, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert SECRET not in proc.stderr + proc.stdout
    assert dump(url) == before


@pytest.mark.parametrize(
    "db_url, message",
    [
        ("sqlite:////no/such/dir/x.db", "directory /no/such/dir does not exist"),
        ("not a url", "is not a valid SQLAlchemy URL"),
        ("postgresql+psycopg://u:hunter2@127.0.0.1:1/db", "cannot open database postgresql+psycopg://u:***@127.0.0.1:1/db"),
    ],
)
def test_database_that_cannot_be_opened(db_url: str, message: str, indexed: tuple[str, Path, str]) -> None:
    node, manifest, _ = indexed
    proc = index(node, manifest, db_url, check=False)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert "hunter2" not in proc.stderr


def test_not_a_database_file(indexed: tuple[str, Path, str], tmp_path: Path) -> None:
    node, manifest, _ = indexed
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    proc = index(node, manifest, f"sqlite:///{junk}", check=False)
    assert proc.returncode == 1 and "cannot open database" in proc.stderr
    assert junk.read_bytes() == b"this is not sqlite" * 100
