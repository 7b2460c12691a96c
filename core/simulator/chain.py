"""From simulated transactions to the chain: the deployment's addresses, contract calls, raw logs.

One simulated transaction is one block on either path:

- node path: its events become contract calls (consecutive events of one kind share a batch call
  such as ``emitTrades``), all sent in ONE ``Multicall.aggregate`` transaction; the model keeps every
  transaction within Multicall's limits (≤ 64 calls of ≤ 4096 bytes, see :func:`count_calls`), so
  block numbers and log indexes are the same as the raw path's.
- raw path: its events are encoded as ``eth_getLogs`` would return them from the same deployment —
  addresses of the fixed deploy order (CREATE addresses of anvil's first account, nonces 0…),
  block numbers after the deployment's blocks, log indexes from 0 in each block — with
  deterministic synthetic block and transaction hashes.

Addresses are derived here and checked against the committed demo manifest
(``data/deployments/demo.json``), which is the raw path's deployment.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from eth_utils.crypto import keccak

from core.abi import encode_event, event_specs
from core.indexer.decode import RAW_LOG_SCHEMA, hex_strings, owned_series
from core.simulator.contracts import DEPLOY_ORDER, MANIFEST_CONTRACTS, MAX_CALL_DATA, MAX_MULTICALL_CALLS, MarketSpec
from core.simulator.params import MarketParams

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO_MANIFEST = ROOT / "data" / "deployments" / "demo.json"
DEMO_NAME = "demo"
CHAIN_ID = 31337
#: anvil's first unlocked account, the deployer of a fresh node.
DEPLOYER = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"

Event = tuple[str, str, tuple[Any, ...]]
"""(emitter, EVENTS.md event name, args in ABI order as raw chain integers / 0x-hex strings / bytes32 bytes).
The emitter is a manifest role ("PositionHandler", "Oracle", …) or, for ``Trade``, a market symbol."""


@dataclass(frozen=True)
class Tx:
    """One simulated transaction: mined alone in a block with timestamp ``ts``."""

    ts: int
    events: tuple[Event, ...]


# --------------------------------------------------------------------------- deployment


def create_address(sender: str, nonce: int) -> str:
    """The CREATE address of ``sender``'s transaction with ``nonce`` (lower-case 0x-hex)."""
    if nonce == 0:
        enc_nonce = b"\x80"
    elif nonce < 0x80:
        enc_nonce = bytes([nonce])
    else:
        raw = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
        enc_nonce = bytes([0x80 + len(raw)]) + raw
    payload = b"\x94" + bytes.fromhex(sender[2:]) + enc_nonce
    return "0x" + keccak(bytes([0xC0 + len(payload)]) + payload)[12:].hex()


def token_address(symbol: str) -> str:
    """A fixed stand-in ERC-20 address for an asset symbol (the test contracts move no tokens)."""
    return "0x" + keccak(text=f"marginX test token {symbol}")[12:].hex()


def market_specs(markets: Sequence[MarketParams]) -> list[MarketSpec]:
    """What :func:`core.simulator.contracts.deploy` registers for these markets."""
    return [MarketSpec(m.symbol, m.market_type, token_address(m.asset), token_address("USDC")) for m in markets]


@dataclass(frozen=True)
class AddressBook:
    """Where every emitter lives: manifest roles, the Multicall helper and one OrderBook per market."""

    contracts: dict[str, str]  #: manifest role → lower-case address
    multicall: str
    markets: dict[str, str]  #: market symbol → lower-case OrderBook address
    start_block: int  #: block of the first deployment transaction

    @property
    def deploy_blocks(self) -> int:
        """Blocks the deployment takes: the singletons, then per market its OrderBook and registration."""
        return len(DEPLOY_ORDER) + 2 * len(self.markets)

    def emitter(self, emitter: str) -> str:
        return self.markets[emitter] if emitter in self.markets else self.contracts[emitter]

    def manifest(self, name: str = DEMO_NAME, chain_id: int = CHAIN_ID) -> dict[str, Any]:
        """The EVENTS.md deployment manifest (checksummed addresses, as ``Deployment.manifest`` writes)."""
        from eth_utils.address import to_checksum_address

        return {
            "name": name,
            "chain_id": chain_id,
            "start_block": self.start_block,
            "contracts": {c: to_checksum_address(self.contracts[c]) for c in MANIFEST_CONTRACTS},
        }


def planned_addresses(markets: Sequence[MarketParams]) -> AddressBook:
    """The addresses :func:`core.simulator.contracts.deploy` yields on a fresh anvil (deployer nonces 0, 1, …)."""
    singles = {name: create_address(DEPLOYER, nonce) for nonce, name in enumerate(DEPLOY_ORDER)}
    books = {m.symbol: create_address(DEPLOYER, len(DEPLOY_ORDER) + 2 * i) for i, m in enumerate(markets)}
    return AddressBook(
        contracts={c: singles[c] for c in MANIFEST_CONTRACTS}, multicall=singles["Multicall"], markets=books,
        start_block=1,
    )


def demo_addresses(markets: Sequence[MarketParams], manifest_path: Path = DEMO_MANIFEST) -> AddressBook:
    """The raw path's deployment: the committed demo manifest, checked against the derived addresses."""
    book = planned_addresses(markets)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest != book.manifest():
        raise ValueError(f"{manifest_path} does not match the deterministic demo deployment; regenerate it with "
                         "core.simulator.chain.write_demo_manifest()")
    return book


def write_demo_manifest(markets: Sequence[MarketParams], path: Path = DEMO_MANIFEST) -> Path:
    """(Re)write the committed demo manifest from the derived addresses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(planned_addresses(markets).manifest(), indent=2) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- contract calls

#: Batch functions: event → (function, struct words per item, DynArray bound, leading args dropped).
#: Trade's `market` is the OrderBook's own address, so its Fill struct omits it.
BATCH_CALLS: dict[str, tuple[str, int, int, int]] = {
    "Trade": ("emitTrades", 8, 256, 1),
    "PositionUpdated": ("updatePositions", 12, 128, 0),
    "PositionLiquidated": ("liquidatePositions", 12, 32, 0),
    "ADLExecuted": ("executeADL", 7, 64, 0),
    "OpenInterestUpdated": ("updateOpenInterest", 3, 64, 0),
    "FundingUpdated": ("updateFunding", 4, 64, 0),
    "PriceUpdated": ("updatePrices", 4, 64, 0),
}
#: One call per event: event → (function, leading args passed; the contract computes the rest).
SINGLE_CALLS: dict[str, tuple[str, int]] = {
    "InsuranceFundDeposit": ("deposit", 2),
    "InsuranceFundWithdraw": ("withdraw", 2),
    "LiquidationFeeCollected": ("collectLiquidationFee", 3),
    "ShortfallCovered": ("coverShortfall", 3),
    "Deposit": ("deposit", 4),
    "Withdraw": ("withdraw", 5),
    "VaultPnLUpdated": ("recordPnl", 2),
    "DebtSocialized": ("socializeDebt", 2),
}
_CALL_HEAD = 4 + 32 + 32  # selector, array offset, array length


def batch_capacity(event: str) -> int:
    """Items of ``event`` that fit one Multicall slot (the same split as ``Deployment.batch_calls``)."""
    _, words, bound, _ = BATCH_CALLS[event]
    return min(bound, (MAX_CALL_DATA - _CALL_HEAD) // (32 * words))


CAPACITY: dict[str, int] = {e: batch_capacity(e) for e in BATCH_CALLS} | {e: 1 for e in SINGLE_CALLS}


def runs(events: Iterable[Event]) -> Iterator[tuple[str, str, list[tuple[Any, ...]]]]:
    """Maximal runs of consecutive events with the same emitter and name: (emitter, name, args list)."""
    current: tuple[str, str] | None = None
    items: list[tuple[Any, ...]] = []
    for emitter, name, args in events:
        if (emitter, name) != current:
            if current is not None:
                yield current[0], current[1], items
            current, items = (emitter, name), []
        items.append(args)
    if current is not None:
        yield current[0], current[1], items


def count_calls(events: Iterable[Event]) -> int:
    """Multicall calls the node path needs for these events, in this order."""
    calls = 0
    current: tuple[str, str] | None = None
    room = 0
    for emitter, name, _ in events:
        if room and (emitter, name) == current:
            room -= 1
            continue
        current = (emitter, name)
        calls += 1
        room = CAPACITY[name] - 1
    return calls


def calls_of(dep: Any, events: Sequence[Event]) -> list[tuple[str, bytes]]:
    """(target, calldata) of every call of one transaction on a :class:`core.simulator.contracts.Deployment`."""
    calls: list[tuple[str, bytes]] = []
    for emitter, name, items in runs(events):
        if name in BATCH_CALLS:
            fn, _, _, drop = BATCH_CALLS[name]
            calls += dep.batch_calls(emitter, fn, [args[drop:] for args in items])
        else:
            fn, n_args = SINGLE_CALLS[name]
            calls += [dep.encode_call(emitter, fn, *args[:n_args]) for args in items]
    return calls


# --------------------------------------------------------------------------- raw logs


class _Address20(dict[str, bytes]):
    """0x-hex address → its 20 bytes, filled on first use."""

    def __missing__(self, key: str) -> bytes:
        value = self[key] = bytes.fromhex(key[2:])
        return value


class LogEncoder:
    """``core.abi.encode_event`` for whole columns of one event at a time: the same strings, built
    with numpy (one ``int.to_bytes`` per integer, everything else vectorised).

    Integers are written as 32-byte two's complement (ABI int256/uint256), addresses left-padded,
    bytes32 right-padded, bools as 0/1 words; ``MarketCreated`` (a dynamic string) goes through
    ``encode_event`` itself.
    """

    def __init__(self) -> None:
        self.specs = event_specs()
        self._address = _Address20()

    def _words(self, typ: str, column: Sequence[Any]) -> np.ndarray:
        """One parameter's 32-byte words for a column of values, shape (n, 32)."""
        n = len(column)
        if typ == "address":
            raw = np.frombuffer(b"".join(map(self._address.__getitem__, column)), dtype=np.uint8).reshape(n, 20)
            words = np.zeros((n, 32), dtype=np.uint8)
            words[:, 12:] = raw
            return words
        if typ == "bytes32":
            if column and isinstance(column[0], str):
                column = [bytes.fromhex(v[2:]).ljust(32, b"\0") for v in column]
            return np.frombuffer(b"".join(column), dtype=np.uint8).reshape(n, 32)
        if typ == "bool":
            words = np.zeros((n, 32), dtype=np.uint8)
            words[:, 31] = np.fromiter(column, dtype=bool, count=n)
            return words
        try:  # most integers (micro-USD amounts, flags, timestamps) fit 64 bits: vectorised
            small = np.fromiter(column, dtype=np.int64, count=n)
        except OverflowError:  # 1e18-scaled prices and sizes: one to_bytes each
            if typ.startswith("uint"):
                joined = b"".join([v.to_bytes(32) for v in column])
            else:
                joined = b"".join([v.to_bytes(32, "big", signed=True) for v in column])
            return np.frombuffer(joined, dtype=np.uint8).reshape(n, 32)
        words = np.empty((n, 32), dtype=np.uint8)
        words[:, :24] = np.where(small < 0, 0xFF, 0).astype(np.uint8)[:, None]
        words[:, 24:] = small.astype(">i8").view(np.uint8).reshape(n, 8)
        return words

    def encode_columns(self, name: str, rows: Sequence[tuple[Any, ...]]) -> tuple[list[pl.Series | None], pl.Series]:
        """Topics 1–3 (None where the event has fewer) and data of ``rows`` of event ``name``."""
        spec = self.specs[name]
        n = len(rows)
        if name == "MarketCreated":
            encoded = [encode_event(spec, args) for args in rows]
            topic1 = pl.Series([t[1] for t, _ in encoded], dtype=pl.String)
            return [topic1, None, None], pl.Series([d for _, d in encoded], dtype=pl.String)
        columns = list(zip(*rows, strict=True))
        topics: list[pl.Series | None] = [None, None, None]
        data_words: list[np.ndarray] = []
        slot = 0
        for i, param in enumerate(spec.params):
            words = self._words(param.type, columns[i])
            if param.indexed:
                topics[slot] = hex_strings(words)
                slot += 1
            else:
                data_words.append(words)
        data = hex_strings(np.concatenate(data_words, axis=1)) if data_words else pl.Series([""] * n).str.replace("^$", "0x")
        return topics, data


def _hash(fingerprint: str, kind: str, number: int) -> str:
    """A synthetic 32-byte block or transaction hash: a digest of the run and kind, then the block
    number (one transaction per block). Unique per run and block: two runs never share a hash, and a
    transaction's legs are joined by it (EVENTS.md). The tables are keyed by (chain_id, block_number,
    log_index) (``schema.EventRow``), so rows go in in chain order whatever the hashes are."""
    return f"{_hash_prefix(fingerprint, kind)}{number:032x}"


@functools.cache
def _hash_prefix(fingerprint: str, kind: str) -> str:
    return "0x" + hashlib.blake2b(f"{fingerprint}:{kind}".encode(), digest_size=16).hexdigest()


def deployment_txs(book: AddressBook, markets: Sequence[MarketParams], start_ts: int) -> list[tuple[int, int, list[Event]]]:
    """(block number, timestamp, events) of the deployment: only the registrations emit (MarketCreated).

    Block ``start_block + i`` is mined at ``start_ts + i`` (the node path pins these timestamps).
    """
    out: list[tuple[int, int, list[Event]]] = []
    for i, (m, spec) in enumerate(zip(markets, market_specs(markets), strict=True)):
        block = book.start_block + len(DEPLOY_ORDER) + 2 * i + 1
        args = (book.markets[m.symbol], m.symbol, m.market_type, spec.base_token, spec.quote_token)
        out.append((block, start_ts + block - book.start_block, [("MarketRegistry", "MarketCreated", args)]))
    return out


@dataclass
class RawBatch:
    """One ingest batch: raw logs (``RAW_LOG_SCHEMA``), their blocks, the checkpoint after them."""

    raw: pl.DataFrame
    blocks: pl.DataFrame
    checkpoint: tuple[int, str]


class RawLogWriter:
    """Collects blocks of events and turns them into ingest batches of ``eth_getLogs``-shaped logs.

    Events are bucketed by name as they come (one append each) and encoded a column at a time when
    a batch is cut, at a block boundary once ``batch_logs`` logs are pending.
    """

    def __init__(self, book: AddressBook, fingerprint: str, batch_logs: int = 50_000, *, digest: bool = False) -> None:
        self.book = book
        self.fingerprint = fingerprint
        self.batch_logs = batch_logs
        self.encoder = LogEncoder()
        #: hash of every log in order, when asked for (determinism checks; it costs ~1 µs a log)
        self.digest = hashlib.blake2b(digest_size=32) if digest else None
        self._addresses = {e: book.emitter(e) for e in (*book.contracts, *book.markets)}
        self._topic0 = {name: spec.topic0 for name, spec in self.encoder.specs.items()}
        self._reset()

    def _reset(self) -> None:
        #: event name → (args rows, emitters, position of each log in the batch)
        self.buckets: dict[str, tuple[list[tuple[Any, ...]], list[str], list[int]]] = {}
        self.pending = 0
        self.block_rows: tuple[list[int], list[str], list[int], list[int]] = ([], [], [], [])  # number, hash, ts, first log

    def add_block(self, number: int, ts: int, events: Sequence[Event]) -> RawBatch | None:
        """Append one block (one transaction); returns a full batch when ``batch_logs`` is reached."""
        numbers, hashes, stamps, firsts = self.block_rows
        numbers.append(number)
        hashes.append(_hash(self.fingerprint, "block", number))
        stamps.append(ts)
        firsts.append(self.pending)
        buckets = self.buckets
        position = self.pending
        for emitter, name, args in events:
            bucket = buckets.get(name)
            if bucket is None:
                bucket = buckets[name] = ([], [], [])
            bucket[0].append(args)
            bucket[1].append(emitter)
            bucket[2].append(position)
            position += 1
        self.pending = position
        return self.flush() if position >= self.batch_logs else None

    def flush(self) -> RawBatch | None:
        """The pending logs as a batch (None when there are none)."""
        numbers, hashes, stamps, firsts = self.block_rows
        if not numbers:
            return None
        parts = []
        for name, (rows, emitters, positions) in self.buckets.items():
            topics, data = self.encoder.encode_columns(name, rows)
            n = len(rows)
            parts.append(pl.DataFrame({
                "position": pl.Series(positions, dtype=pl.Int64),
                "address": pl.Series(emitters, dtype=pl.String).replace_strict(self._addresses),
                "topic0": pl.repeat(self._topic0[name], n, dtype=pl.String, eager=True),
                **{f"topic{i + 1}": (t if t is not None else pl.repeat(None, n, dtype=pl.String, eager=True))
                   for i, t in enumerate(topics)},
                "n_topics": pl.repeat(1 + sum(t is not None for t in topics), n, dtype=pl.Int64, eager=True),
                "data": data,
            }))
        logs = pl.concat(parts) if parts else None  # grouped by event; ingest does not need log order
        first = np.asarray(firsts, dtype=np.int64)
        block_of = np.searchsorted(first, logs["position"].to_numpy(), side="right") - 1 if logs is not None else first[:0]
        tx_hashes = [_hash(self.fingerprint, "tx", b) for b in numbers]
        number_arr = np.asarray(numbers, dtype=np.int64)
        raw = (logs.with_columns(
            owned_series(number_arr[block_of], "block_number"),
            pl.Series("block_hash", hashes, dtype=pl.String).gather(block_of),
            pl.Series("tx_hash", tx_hashes, dtype=pl.String).gather(block_of),
            owned_series(logs["position"].to_numpy() - first[block_of], "log_index"),
        ).select(RAW_LOG_SCHEMA.names()) if logs is not None else pl.DataFrame(schema=RAW_LOG_SCHEMA))
        raw = raw.cast(dict(RAW_LOG_SCHEMA))  # type: ignore[arg-type]
        if self.digest is not None:
            ordered = raw.sort("block_number", "log_index")
            for name in RAW_LOG_SCHEMA.names():
                self.digest.update(ordered[name].cast(pl.String).fill_null("").str.join("\x00").item().encode())
        blocks = pl.DataFrame({"number": numbers, "hash": hashes, "timestamp": stamps},
                              schema={"number": pl.Int64, "hash": pl.String, "timestamp": pl.Int64})
        batch = RawBatch(raw=raw, blocks=blocks, checkpoint=(numbers[-1], hashes[-1]))
        self._reset()
        return batch


def log_dicts(batch: RawBatch) -> list[dict[str, Any]]:
    """A batch's logs as the JSON objects ``eth_getLogs`` returns (for tests and inspection)."""
    out = []
    for row in batch.raw.sort("block_number", "log_index").iter_rows(named=True):
        topics = [t for t in (row["topic0"], row["topic1"], row["topic2"], row["topic3"]) if t is not None]
        out.append({
            "address": row["address"], "topics": topics, "data": row["data"],
            "blockNumber": hex(row["block_number"]), "blockHash": row["block_hash"],
            "transactionHash": row["tx_hash"], "logIndex": hex(row["log_index"]),
            "transactionIndex": "0x0", "removed": False,
        })
    return out


def check_fits(events: Sequence[Event]) -> None:
    """Assert a transaction fits one Multicall transaction (the packing invariant of the model)."""
    n = count_calls(events)
    assert n <= MAX_MULTICALL_CALLS, f"transaction needs {n} calls > {MAX_MULTICALL_CALLS}"
