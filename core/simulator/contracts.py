"""Compile, deploy and drive the marginX test emitter contracts (``data/contracts/*.vy``).

marginX publishes no contracts we can run, so the indexer is tested against small Vyper contracts
that emit every event of ``shared/EVENTS.md`` exactly as specified (same signatures, indexed flags
and order as ``data/abi/``). This module compiles them (cached on disk under ``data/build/``),
deploys them in a fixed order (deterministic addresses on a fresh anvil), writes the deployment
manifest the indexer reads, and sends events fast: batch calldata is encoded word by word (about
10x faster than eth_abi), many calls are packed into few ``Multicall.aggregate`` transactions,
each awaited before the next so the node's pool never fills, and receipts are read raw (web3's
receipt formatting costs more than the transaction). Used by the integration tests and the
market simulator.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

if TYPE_CHECKING:  # annotations only: importing web3 costs ~2 s, which the simulator's worker process need not pay
    from web3 import Web3
    from web3.contract import Contract
    from web3.types import RPCEndpoint

ROOT = Path(__file__).resolve().parent.parent.parent
CONTRACTS_DIR = ROOT / "data" / "contracts"
BUILD_DIR = ROOT / "data" / "build"

#: The contracts of a deployment manifest, in deployment order (EVENTS.md "Deployment manifest").
MANIFEST_CONTRACTS: tuple[str, ...] = ("MarketRegistry", "PositionHandler", "Oracle", "InsuranceFund", "BackstopVault")
#: Singletons deployed first, in this order; then one OrderBook per market.
DEPLOY_ORDER: tuple[str, ...] = (*MANIFEST_CONTRACTS, "Multicall")

#: Limits of ``Multicall.aggregate(DynArray[Call, 64])`` with ``Call.data: Bytes[4096]``.
MAX_MULTICALL_CALLS = 64
MAX_CALL_DATA = 4096
#: Cap on one packed transaction's calldata (bytes): 64 full calls fit (anvil takes them; a
#: geth-style pool would need ≤ 128 KiB, so lower this for such a node).
MAX_TX_DATA = 300_000


class ContractTxError(RuntimeError):
    """A transaction to the test contracts was rejected or reverted."""


# --------------------------------------------------------------------------- compilation


@dataclass(frozen=True)
class Function:
    """One external function: its selector and the ABI inputs used to encode arguments."""

    name: str
    inputs: tuple[dict[str, Any], ...]

    @cached_property
    def types(self) -> list[str]:
        return [_abi_type(i) for i in self.inputs]

    @cached_property
    def selector(self) -> bytes:
        return keccak(text=f"{self.name}({','.join(self.types)})")[:4]

    @cached_property
    def _fast(self) -> bool:
        """True when every input is a static word or an array of structs of static words: the
        event batch functions, whose calldata is then built here, ~10x faster than eth_abi."""
        return all(
            _is_word(i["type"])
            or (i["type"] == "tuple[]" and all(_is_word(c["type"]) for c in i["components"]))
            for i in self.inputs
        )

    def encode(self, *args: Any) -> bytes:
        """Calldata for ``args``; a struct may be a tuple (field order) or a mapping (field names)."""
        if len(args) != len(self.inputs):
            raise TypeError(f"{self.name} takes {len(self.inputs)} arguments, got {len(args)}")
        if self._fast:
            return self.selector + self._encode_words(args)
        values = [_normalize(i, a) for i, a in zip(self.inputs, args, strict=True)]
        return self.selector + abi_encode(self.types, values)

    def _encode_words(self, args: Sequence[Any]) -> bytes:
        head: list[bytes] = []
        tail: list[bytes] = []
        tail_at = 32 * len(self.inputs)
        for param, arg in zip(self.inputs, args, strict=True):
            if param["type"] != "tuple[]":
                head.append(_word(param["type"], arg))
                continue
            comps = param["components"]
            names = [c["name"] for c in comps]
            types = [c["type"] for c in comps]
            part = [len(arg).to_bytes(32, "big")]
            for item in arg:
                values = [item[n] for n in names] if isinstance(item, Mapping) else item
                if len(values) != len(types):
                    raise ValueError(f"{self.name}: struct has {len(types)} fields, got {len(values)}")
                part.extend(_word(t, v) for t, v in zip(types, values, strict=True))
            head.append(tail_at.to_bytes(32, "big"))
            tail_at += 32 * len(part)
            tail.extend(part)
        return b"".join(head + tail)


def _is_word(typ: str) -> bool:
    return typ in ("address", "bool", "bytes32") or (typ.startswith(("uint", "int")) and typ[-1].isdigit())


def _word(typ: str, value: Any) -> bytes:
    """ABI encoding of one static value, range-checked like eth_abi."""
    if typ == "address":
        raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
        if len(raw) != 20:
            raise ValueError(f"not an address: {value!r}")
        return bytes(12) + raw
    if typ == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"bool expected, got {value!r}")
        return (1 if value else 0).to_bytes(32, "big")
    if typ == "bytes32":
        raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
        if len(raw) > 32:
            raise ValueError(f"more than 32 bytes for bytes32: {value!r}")
        return raw.ljust(32, b"\0")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{typ} expects an int, got {value!r}")
    signed = typ.startswith("int")
    bits = int(typ[3 if signed else 4 :])
    low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    if not low <= value < high:
        raise ValueError(f"{value} out of range for {typ}")
    return value.to_bytes(32, "big", signed=True) if signed else value.to_bytes(32, "big")


@dataclass(frozen=True)
class CompiledContract:
    """Compiler output of one contract: ABI and deployable bytecode (0x-hex)."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str

    @cached_property
    def functions(self) -> dict[str, Function]:
        return {str(e["name"]): Function(str(e["name"]), tuple(e["inputs"])) for e in self.abi if e["type"] == "function"}

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for e in self.abi if e["type"] == "event"]

    def encode(self, fn_name: str, *args: Any) -> bytes:
        try:
            fn = self.functions[fn_name]
        except KeyError:
            raise AttributeError(f"{self.name} has no function {fn_name!r}") from None
        return fn.encode(*args)


def _abi_type(param: Mapping[str, Any]) -> str:
    """Canonical type of an ABI parameter, tuples collapsed: ``(address,bytes)[]``."""
    typ = str(param["type"])
    if typ.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + typ[len("tuple"):]
    return typ


def _normalize(param: Mapping[str, Any], value: Any) -> Any:
    """Turn convenient Python values into what ``eth_abi`` encodes (structs, hex bytes)."""
    typ = str(param["type"])
    if typ.endswith("]"):
        inner = dict(param, type=typ[: typ.rindex("[")])
        return [_normalize(inner, v) for v in value]
    if typ == "tuple":
        comps = param["components"]
        if isinstance(value, Mapping):
            value = [value[c["name"]] for c in comps]
        if len(value) != len(comps):
            raise ValueError(f"struct {param.get('name')!r} has {len(comps)} fields, got {len(value)}")
        return tuple(_normalize(c, v) for c, v in zip(comps, value, strict=True))
    if typ.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return value


def _source_key(source: str) -> str:
    import vyper

    return hashlib.sha256(f"vyper {vyper.__version__}\n{source}".encode()).hexdigest()[:16]


@cache
def compile_contracts(contracts_dir: Path = CONTRACTS_DIR, build_dir: Path = BUILD_DIR) -> dict[str, CompiledContract]:
    """Every ``*.vy`` of ``contracts_dir`` compiled, keyed by file stem.

    Results are cached in ``build_dir`` as ``<Name>.<hash of source and vyper version>.json`` so
    repeated runs do not recompile; the cache write is atomic (safe with parallel test workers).
    """
    out: dict[str, CompiledContract] = {}
    for path in sorted(contracts_dir.glob("*.vy")):
        source = path.read_text(encoding="utf-8")
        cached = build_dir / f"{path.stem}.{_source_key(source)}.json"
        if cached.exists():
            data = json.loads(cached.read_text(encoding="utf-8"))
        else:
            import vyper

            result = vyper.compile_code(source, contract_path=str(path), output_formats=["abi", "bytecode"])
            data = {"abi": result["abi"], "bytecode": result["bytecode"]}
            build_dir.mkdir(parents=True, exist_ok=True)
            for stale in build_dir.glob(f"{path.stem}.*.json"):
                stale.unlink(missing_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, cached)
        out[path.stem] = CompiledContract(path.stem, data["abi"], data["bytecode"])
    if not out:
        raise FileNotFoundError(f"no .vy sources in {contracts_dir}")
    return out


def encode_calldata(contract: str, fn_name: str, *args: Any) -> bytes:
    """Calldata of ``contract.fn_name(*args)`` for a contract name of ``data/contracts``."""
    return compile_contracts()[contract].encode(fn_name, *args)


# --------------------------------------------------------------------------- node helpers


def set_next_block_timestamp(w3: Web3, ts: int) -> None:
    """Give the next mined block timestamp ``ts`` (anvil ``evm_setNextBlockTimestamp``).

    anvil refuses a timestamp before the latest block's.
    """
    try:
        w3.manager.request_blocking(cast("RPCEndpoint", "evm_setNextBlockTimestamp"), [int(ts)])
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise ContractTxError(f"cannot set next block timestamp to {ts}: {e}") from e


@dataclass(frozen=True)
class Receipt:
    """A mined transaction's receipt as the node sent it (web3's formatting of a receipt with
    hundreds of logs costs more than sending the transaction, so it is skipped)."""

    tx_hash: str
    block_number: int
    status: int
    gas_used: int
    contract_address: str | None
    logs: list[dict[str, Any]] = field(repr=False)  # raw JSON-RPC logs (hex strings)


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    answer = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in answer:
        error = answer["error"]
        raise ContractTxError(error.get("message", str(error)) if isinstance(error, Mapping) else str(error))
    return answer["result"]


def send_transaction(
    w3: Web3, tx: Mapping[str, Any], *, what: str = "transaction", gas: int | None = None, timeout: float = 60
) -> Receipt:
    """Send ``tx`` from an unlocked account, wait for it to be mined and check its status.

    With ``gas`` None the node estimates it (and rejects a reverting call up front, with its
    reason); an explicit ``gas`` skips that estimate, and a revert is explained by replaying the
    call. Raises ContractTxError on rejection or revert.
    """
    params = {k: ("0x" + v.hex() if isinstance(v, bytes) else hex(v) if type(v) is int else v) for k, v in tx.items()}
    if gas is not None:
        params["gas"] = hex(gas)
    try:
        tx_hash = _rpc(w3, "eth_sendTransaction", [params])
    except ContractTxError as e:
        raise ContractTxError(f"{what} rejected by the node: {e}") from e
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while (raw := _rpc(w3, "eth_getTransactionReceipt", [tx_hash])) is None:
        if time.monotonic() > deadline:
            raise ContractTxError(f"{what}: tx {tx_hash} not mined after {timeout}s")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    receipt = Receipt(
        tx_hash=tx_hash,
        block_number=int(raw["blockNumber"], 16),
        status=int(raw["status"], 16),
        gas_used=int(raw["gasUsed"], 16),
        contract_address=raw.get("contractAddress"),
        logs=raw["logs"],
    )
    if receipt.status != 1:
        call = {k: v for k, v in params.items() if k in ("from", "to", "data", "value", "gas")}
        try:
            _rpc(w3, "eth_call", [call, hex(receipt.block_number - 1)])
            reason = "no reason given"
        except ContractTxError as e:
            reason = str(e)
        raise ContractTxError(f"{what} reverted in tx {tx_hash} (block {receipt.block_number}): {reason}")
    return receipt


# --------------------------------------------------------------------------- deployment


@dataclass(frozen=True)
class MarketSpec:
    """One market to deploy: an OrderBook plus its ``MarketCreated`` registration."""

    symbol: str
    market_type: int  # 0 spot, 1 perp
    base_token: str
    quote_token: str

    def __post_init__(self) -> None:
        if self.market_type not in (0, 1):
            raise ValueError(f"{self.symbol}: market_type must be 0 (spot) or 1 (perp), got {self.market_type}")
        if not 0 < len(self.symbol.encode()) <= 64:
            raise ValueError(f"market symbol must be 1..64 bytes: {self.symbol!r}")


@dataclass
class Deployment:
    """Addresses of one deployment of the test contracts, with helpers to emit events on it."""

    chain_id: int
    start_block: int
    addresses: dict[str, str]  # the five MANIFEST_CONTRACTS → address
    multicall: str
    markets: dict[str, str]  # symbol → OrderBook address (= the market)
    deployer: str
    w3: Web3 = field(repr=False, compare=False)
    #: Gas limit given to event transactions (skips the node's estimate); None lets the node estimate.
    gas: int | None = field(default=None, repr=False)

    # ----- manifest

    def manifest(self, name: str) -> dict[str, Any]:
        """The EVENTS.md deployment manifest of this deployment."""
        return {
            "name": name,
            "chain_id": self.chain_id,
            "start_block": self.start_block,
            "contracts": {c: self.addresses[c] for c in MANIFEST_CONTRACTS},
        }

    def write_manifest(self, path: str | Path, name: str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.manifest(name), indent=2) + "\n", encoding="utf-8")
        return path

    # ----- contracts

    def resolve(self, contract: str) -> tuple[str, CompiledContract]:
        """(address, compiled contract) of a contract name, a market symbol or a deployed address."""
        compiled = compile_contracts()
        if contract in self.addresses:
            return self.addresses[contract], compiled[contract]
        if contract == "Multicall":
            return self.multicall, compiled["Multicall"]
        if contract in self.markets:
            return self.markets[contract], compiled["OrderBook"]
        low = contract.lower()
        for name, addr in self.addresses.items():
            if addr.lower() == low:
                return addr, compiled[name]
        if self.multicall.lower() == low:
            return self.multicall, compiled["Multicall"]
        for addr in self.markets.values():
            if addr.lower() == low:
                return addr, compiled["OrderBook"]
        raise KeyError(f"unknown contract, market symbol or address: {contract!r}")

    def contract(self, contract: str) -> Contract:
        """web3 contract object for a contract name, market symbol or deployed address."""
        address, compiled = self.resolve(contract)
        return self.w3.eth.contract(address=to_checksum_address(address), abi=compiled.abi)

    def order_book(self, symbol: str) -> Contract:
        """web3 contract object of a market's OrderBook, by symbol."""
        if symbol not in self.markets:
            raise KeyError(f"no market {symbol!r}; deployed: {sorted(self.markets)}")
        return self.contract(self.markets[symbol])

    # ----- sending

    def encode_call(self, contract: str, fn_name: str, *args: Any) -> tuple[str, bytes]:
        """(target address, calldata) of ``contract.fn_name(*args)``, for ``multicall_tx``."""
        address, compiled = self.resolve(contract)
        return address, compiled.encode(fn_name, *args)

    def batch_calls(self, contract: str, fn_name: str, items: Sequence[Any]) -> list[tuple[str, bytes]]:
        """Calls of a one-array batch function (``emitTrades``, ``updatePrices``, …) carrying
        ``items`` in order, split so every call's data fits one Multicall slot (4096 bytes)."""
        address, compiled = self.resolve(contract)
        fn = compiled.functions[fn_name]
        calls: list[tuple[str, bytes]] = []
        start = 0
        while start < len(items):
            base = len(fn.encode(items[start : start + 1]))
            if base > MAX_CALL_DATA:
                raise ValueError(f"one {fn_name} item alone encodes to {base} bytes > {MAX_CALL_DATA}")
            per_item = len(fn.encode(items[start : start + 2])) - base if start + 1 < len(items) else 1
            n = 1 + (MAX_CALL_DATA - base) // max(per_item, 1)
            data = fn.encode(items[start : start + n])
            while len(data) > MAX_CALL_DATA:  # only for items of varying size
                n -= 1
                data = fn.encode(items[start : start + n])
            calls.append((address, data))
            start += n
        return calls

    def send(self, contract: str, fn_name: str, *args: Any) -> Receipt:
        """One transaction calling ``contract.fn_name(*args)`` directly; returns its receipt."""
        address, data = self.encode_call(contract, fn_name, *args)
        return send_transaction(
            self.w3, {"from": self.deployer, "to": address, "data": data}, what=f"{contract}.{fn_name}", gas=self.gas
        )

    def multicall_tx(self, calls: Sequence[tuple[str, bytes]]) -> list[Receipt]:
        """Execute ``calls`` in order through ``Multicall.aggregate``; returns one receipt per tx.

        Calls are packed greedily into as few transactions as possible (≤ 64 calls and about
        ``MAX_TX_DATA`` bytes each), and each transaction is awaited before the next. Calls that
        fit one transaction therefore land in exactly one (check ``len(result) == 1`` when the
        events must be atomic, e.g. one liquidation's legs). A call whose data exceeds 4096
        bytes raises ValueError: split it (``batch_calls``) or send it directly (``send``).
        """
        for i, (target, data) in enumerate(calls):
            if len(data) > MAX_CALL_DATA:
                raise ValueError(
                    f"call {i} to {target} (selector 0x{data[:4].hex()}) has {len(data)} bytes of data; "
                    f"Multicall takes at most {MAX_CALL_DATA} per call: split it with batch_calls() or use send()"
                )
        receipts: list[Receipt] = []
        for chunk in _chunks(calls):
            data = compile_contracts()["Multicall"].encode("aggregate", [(t, d) for t, d in chunk])
            receipts.append(
                send_transaction(
                    self.w3,
                    {"from": self.deployer, "to": self.multicall, "data": data},
                    what=f"Multicall.aggregate of {len(chunk)} calls",
                    gas=self.gas,
                )
            )
        return receipts


def _chunks(calls: Sequence[tuple[str, bytes]]) -> Iterable[list[tuple[str, bytes]]]:
    chunk: list[tuple[str, bytes]] = []
    size = 0
    for call in calls:
        cost = 128 + -(-len(call[1]) // 32) * 32  # abi-encoded size of one (address, bytes) element
        if chunk and (len(chunk) == MAX_MULTICALL_CALLS or size + cost > MAX_TX_DATA):
            yield chunk
            chunk, size = [], 0
        chunk.append(call)
        size += cost
    if chunk:
        yield chunk


def deploy(w3: Web3, markets: Sequence[MarketSpec], deployer: str | None = None) -> Deployment:
    """Deploy the test contracts in a fixed order and register ``markets``.

    Order: MarketRegistry, PositionHandler, Oracle, InsuranceFund, BackstopVault, Multicall, then
    per market its OrderBook followed by ``registerMarket``. From the node's first unlocked
    account by default, so a fresh anvil always yields the same addresses.
    """
    symbols = [m.symbol for m in markets]
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"duplicate market symbols: {symbols}")
    compiled = compile_contracts()
    sender = to_checksum_address(deployer or w3.eth.accounts[0])

    def create(name: str) -> Receipt:
        return send_transaction(w3, {"from": sender, "data": compiled[name].bytecode}, what=f"deploy {name}")

    receipts = {name: create(name) for name in DEPLOY_ORDER}
    addresses = {name: to_checksum_address(str(receipts[name].contract_address)) for name in DEPLOY_ORDER}
    dep = Deployment(
        chain_id=int(w3.eth.chain_id),
        start_block=receipts[DEPLOY_ORDER[0]].block_number,
        addresses={name: addresses[name] for name in MANIFEST_CONTRACTS},
        multicall=addresses["Multicall"],
        markets={},
        deployer=sender,
        w3=w3,
        gas=int(w3.eth.get_block("latest")["gasLimit"]),
    )
    for m in markets:
        book = to_checksum_address(str(create("OrderBook").contract_address))
        dep.markets[m.symbol] = book
        dep.send(
            "MarketRegistry", "registerMarket", book, m.symbol, m.market_type,
            to_checksum_address(m.base_token), to_checksum_address(m.quote_token),
        )
    return dep

