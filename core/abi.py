"""The chain ↔ app interface: event ABIs from ``data/abi/`` turned into matchable specs.

Logs are matched by (emitting contract role, topic0) where topic0 is the keccak of the canonical
signature built from the ABI's *types*; parameter names never matter, so a deployment that names a
field differently but keeps the types indexes the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from eth_hash.auto import keccak  # eth_utils would cost the CLI ~0.3 s of imports for this one function

ABI_DIR = Path(__file__).resolve().parent.parent / "data" / "abi"

# Which manifest contract emits which events. "OrderBook" logs come from discovered market addresses.
CONTRACT_ROLES: tuple[str, ...] = (
    "MarketRegistry",
    "OrderBook",
    "PositionHandler",
    "Oracle",
    "InsuranceFund",
    "BackstopVault",
)


@dataclass(frozen=True)
class Param:
    """One event parameter: its ABI type and whether it travels in a topic."""

    name: str
    type: str
    indexed: bool


@dataclass(frozen=True)
class EventSpec:
    """An event as the indexer matches it: emitter role, canonical signature and topic0."""

    name: str
    contract: str
    params: tuple[Param, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(p.type for p in self.params)})"

    @cached_property
    def topic0(self) -> str:
        return "0x" + keccak(self.signature.encode()).hex()

    @property
    def indexed(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.indexed)

    @property
    def data(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if not p.indexed)


def load_abi(contract: str, abi_dir: Path = ABI_DIR) -> list[dict[str, object]]:
    """The raw ABI JSON list of one contract."""
    with open(abi_dir / f"{contract}.json", encoding="utf-8") as f:
        abi: list[dict[str, object]] = json.load(f)
    return abi


@cache
def event_specs(abi_dir: Path = ABI_DIR) -> dict[str, EventSpec]:
    """Every event of EVENTS.md keyed by its name, from the ABI files."""
    specs: dict[str, EventSpec] = {}
    for contract in CONTRACT_ROLES:
        for entry in load_abi(contract, abi_dir):
            if entry.get("type") != "event":
                continue
            inputs = entry["inputs"]
            assert isinstance(inputs, list)
            params = tuple(Param(str(i["name"]), str(i["type"]), bool(i["indexed"])) for i in inputs)
            spec = EventSpec(str(entry["name"]), contract, params)
            specs[spec.name] = spec
    return specs


_MASK256 = (1 << 256) - 1


def _word_hex(abi_type: str, value: object) -> str:
    """One static ABI word as 64 hex chars (fast path used for millions of simulated logs)."""
    if abi_type == "address":
        assert isinstance(value, str)
        return value[2:].lower().rjust(64, "0")
    if abi_type == "bytes32":
        if isinstance(value, bytes):
            return value.hex().ljust(64, "0")
        assert isinstance(value, str)
        return value[2:].lower().ljust(64, "0")
    if abi_type == "bool":
        return "0" * 63 + ("1" if value else "0")
    if abi_type.startswith(("uint", "int")):
        assert isinstance(value, int)
        return format(value & _MASK256, "064x")
    raise ValueError(f"unsupported static ABI type {abi_type}")


def encode_event(spec: EventSpec, args: tuple[object, ...]) -> tuple[list[str], str]:
    """(topics, data) of one event exactly as `eth_getLogs` returns them, args in ABI order."""
    topics = [spec.topic0]
    statics: list[str] = []
    data_types: list[str] = []
    data_values: list[object] = []
    for param, value in zip(spec.params, args, strict=True):
        if param.indexed:
            topics.append("0x" + _word_hex(param.type, value))
        else:
            data_types.append(param.type)
            data_values.append(value)
    if any(t in ("string", "bytes") or t.endswith("]") for t in data_types):
        from eth_abi.abi import encode

        return topics, "0x" + encode(data_types, data_values).hex()
    for t, v in zip(data_types, data_values, strict=True):
        statics.append(_word_hex(t, v))
    return topics, "0x" + "".join(statics)
