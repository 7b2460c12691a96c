"""Deployment manifests (`data/deployments/<name>.json`, format in EVENTS.md), validated on load."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from core.indexer.errors import IndexerError

MANIFEST_CONTRACTS = ("MarketRegistry", "PositionHandler", "Oracle", "InsuranceFund", "BackstopVault")
MANIFEST_KEYS = ("name", "chain_id", "start_block", "contracts")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class Manifest:
    name: str
    chain_id: int
    start_block: int
    contracts: dict[str, str]  # role → lower-case address


def _is_checksum_address(address: str) -> bool:
    from eth_utils.address import is_checksum_address  # imported when needed: ~0.3 s of the CLI's start-up

    return bool(is_checksum_address(address))


def _address(contracts: dict[str, object], role: str, where: str) -> str:
    """contracts[role], checked (present, 20-byte hex, EIP-55 when mixed-case), lower-cased."""
    if role not in contracts:
        raise IndexerError(f"manifest {where} is missing contracts.{role}")
    address = contracts[role]
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise IndexerError(f"manifest {where}: contracts.{role} is not a 0x-prefixed 20-byte hex address: {str(address)[:60]!r}")
    mixed_case = address[2:] != address[2:].lower() and address[2:] != address[2:].upper()
    if mixed_case and not _is_checksum_address(address):  # EIP-55: a mixed-case address carries a checksum
        raise IndexerError(f"manifest {where}: contracts.{role} {address} fails its EIP-55 checksum, so a character "
                           "is probably mistyped: copy the address again from the deployment")
    return address.lower()


def parse_manifest(raw: object, where: str) -> Manifest:
    """Validate a decoded manifest object; IndexerError names the first problem found.

    Unknown keys are errors, not ignored: a typo such as "start-block" would otherwise index from
    genesis, and "Orderbook" under contracts would silently index nothing of it.
    """
    if not isinstance(raw, dict):
        raise IndexerError(f"manifest {where} must be a JSON object")
    unknown = sorted(set(raw) - set(MANIFEST_KEYS))
    if unknown:
        raise IndexerError(f"manifest {where} has unknown key {unknown[0]!r}: the keys are {', '.join(MANIFEST_KEYS)}")
    for key in ("name", "chain_id", "contracts"):
        if key not in raw:
            raise IndexerError(f"manifest {where} is missing '{key}'")
    name, chain_id, start_block = raw["name"], raw["chain_id"], raw.get("start_block", 0)
    if not isinstance(name, str) or not name:
        raise IndexerError(f"manifest {where}: 'name' must be a non-empty string")
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id <= 0:
        raise IndexerError(f"manifest {where}: 'chain_id' must be a positive integer, got {chain_id!r}")
    if not isinstance(start_block, int) or isinstance(start_block, bool) or start_block < 0:
        raise IndexerError(f"manifest {where}: 'start_block' must be a non-negative integer, got {start_block!r}")
    contracts = raw["contracts"]
    if not isinstance(contracts, dict):
        raise IndexerError(f"manifest {where}: 'contracts' must be an object of name → address")
    extra = sorted(set(contracts) - set(MANIFEST_CONTRACTS))
    if extra:
        raise IndexerError(f"manifest {where}: contracts.{str(extra[0])[:40]} is not a marginX contract: the contracts are "
                           f"{', '.join(MANIFEST_CONTRACTS)} (markets are found from MarketCreated)")
    out = {role: _address(contracts, role, where) for role in MANIFEST_CONTRACTS}
    return Manifest(name=name, chain_id=chain_id, start_block=start_block, contracts=out)


def load_manifest(path: str | Path) -> Manifest:
    p = Path(path)
    if not p.is_file():
        raise IndexerError(f"manifest not found: {p} (pass --manifest PATH to a deployment JSON, see data/deployments/)")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise IndexerError(f"manifest {p} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError:
        raise IndexerError(f"manifest {p} is not UTF-8 text") from None
    return parse_manifest(raw, str(p))
