"""`python -m core.indexer`: index a marginX deployment from a JSON-RPC node into a database.

Errors the user can act on print one line on stderr and exit 1 (2 for bad flags); nothing
already stored is lost, because every chunk commits its rows with its checkpoint.

The flags are read before the heavy imports (polars, SQLAlchemy, the schema), so that a catch-up's
writer process (:mod:`core.indexer.spare`) imports beside them on the other core.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from core import config
from core.indexer import spare
from core.indexer.errors import IndexerError
from core.indexer.manifest import Manifest, load_manifest
from core.indexer.plan import BATCH_LOGS, FETCH_THREADS
from core.indexer.rpc import RPC

if TYPE_CHECKING:
    from core.indexer.run import RunResult


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (argparse prints its whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see python -m core.indexer --help)\n")


def _block(text: str) -> int:
    """A block number, decimal or 0x-hex."""
    try:
        return int(text, 16) if text.strip().lower().startswith("0x") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a block number (decimal or 0x-hex)") from None


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core.indexer", description=__doc__.splitlines()[0])
    p.add_argument("--rpc-url", default=None, help="JSON-RPC node URL (default: $RPC_URL)")
    p.add_argument("--manifest", default=None, help="deployment manifest JSON (default: $MANIFEST or data/deployments/demo.json)")
    p.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: $DATABASE_URL or sqlite:///data/marginx.db)")
    p.add_argument("--from-block", type=_block, default=None, help="first block (default: after the checkpoint)")
    p.add_argument("--to-block", type=_block, default=None, help="last block (default: head - confirmations)")
    p.add_argument("--confirmations", type=int, default=0, help="stay this many blocks behind the head (default 0)")
    p.add_argument("--follow", action="store_true", help="tail the chain until interrupted (Ctrl-C)")
    p.add_argument("--poll-interval", type=float, default=2.0, help="seconds between head polls with --follow")
    p.add_argument("--chunk-blocks", type=int, default=2_000, help="first eth_getLogs span; adapts to the node")
    p.add_argument("--max-chunk-blocks", type=int, default=100_000,
                   help="never ask eth_getLogs for more blocks than this (a node's documented range cap)")
    p.add_argument("--fetch-threads", type=int, default=FETCH_THREADS,
                   help=f"eth_getLogs ranges asked of the node at once (default {FETCH_THREADS})")
    p.add_argument("--batch-logs", type=int, default=BATCH_LOGS,
                   help=f"logs decoded and committed together while catching up (default {BATCH_LOGS:,})")
    p.add_argument("--reorg-window", type=int, default=256, help="recent stored blocks re-checked for reorgs")
    p.add_argument("--rpc-timeout", type=float, default=30.0, help="seconds to wait for one node answer (default 30)")
    p.add_argument("--rpc-retries", type=int, default=6,
                   help="retries of a failed node call, with exponential backoff (default 6)")
    p.add_argument("--json", action="store_true", help="end stdout with one JSON summary line")
    return p


def _flag_error(args: argparse.Namespace) -> str | None:
    """The first flag value out of range, as the one-line message (None: all fine)."""
    if min(args.chunk_blocks, args.max_chunk_blocks, args.reorg_window, args.fetch_threads) < 1 or args.batch_logs < 0:
        return "--chunk-blocks, --max-chunk-blocks, --reorg-window and --fetch-threads must be >= 1, --batch-logs >= 0"
    if not args.rpc_timeout > 0 or args.rpc_retries < 0:
        return "--rpc-timeout must be > 0 and --rpc-retries >= 0"
    for flag in ("from_block", "to_block", "confirmations"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            return f"--{flag.replace('_', '-')} must be >= 0, got {value}"
    if args.from_block is not None and args.to_block is not None and args.from_block > args.to_block:
        return f"--from-block {args.from_block} is after --to-block {args.to_block}: swap them or drop one"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (problem := _flag_error(args)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_sigint(_sig: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # second Ctrl-C: leave now; the open transaction rolls back
        print("stopping after the current commit (Ctrl-C again to abort)", file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, on_sigint)
    database_url = args.database_url or config.database_url()
    try:  # what needs no heavy import is checked before a writer is started for nothing
        rpc_url = args.rpc_url or config.rpc_url()
        if not rpc_url:
            raise IndexerError("no RPC URL: pass --rpc-url URL or set RPC_URL")
        manifest = load_manifest(args.manifest or config.manifest_path())
        rpc = RPC(rpc_url, timeout=args.rpc_timeout, retries=args.rpc_retries)
    except IndexerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    spare.prestart(database_url)
    try:
        return _run(args, database_url, manifest, rpc, stop)
    finally:
        spare.discard()


def _run(args: argparse.Namespace, database_url: str, manifest: Manifest, rpc: RPC, stop: threading.Event) -> int:
    """Index as the flags say (after the imports they need); the exit code."""
    from core import db
    from core.indexer.run import Indexer
    from core.read.status import stored_counts

    engine = None
    try:
        engine = db.make_engine(database_url)
        indexer = Indexer(manifest, rpc, engine, reorg_window=args.reorg_window, stop=stop,
                          initial_span=min(args.chunk_blocks, args.max_chunk_blocks), max_span=args.max_chunk_blocks,
                          progress_stream=sys.stderr if sys.stderr.isatty() else None,
                          fetch_threads=args.fetch_threads, batch_logs=args.batch_logs)
        if args.follow:
            result = indexer.follow(confirmations=args.confirmations, poll_interval=args.poll_interval,
                                    from_block=args.from_block)
        else:
            result = indexer.run(confirmations=args.confirmations, from_block=args.from_block, to_block=args.to_block)
        stored = stored_counts(engine, manifest.chain_id)
    except (IndexerError, db.DatabaseError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except db.write_errors() as e:  # a database that opened but refuses our rows
        print(f"error: {db.write_failed(database_url, e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    finally:
        if engine is not None:
            engine.dispose()  # closed here, not by the interpreter's exit (see __main__)
    _report(result, stored, as_json=args.json)
    return 0


def _report(result: RunResult, stored: dict[str, int], *, as_json: bool) -> None:
    """What the run did: notes on stderr, the summary (one line, JSON with --json) on stdout."""
    if result.undecodable:
        print(f"warning: {result.undecodable} logs could not be decoded (kept in table undecodable_logs)", file=sys.stderr)
    if result.foreign:
        print(f"note: {result.foreign} logs came from addresses outside this deployment and were ignored", file=sys.stderr)
    for block in result.rewinds:
        print(f"reorg: rewound to block {block} and re-indexed", file=sys.stderr)
    if as_json:
        print(json.dumps({"chain_id": result.chain_id, "last_block": result.last_block,
                          "indexed_this_run": dict(sorted(result.indexed.items())), "stored": dict(sorted(stored.items())),
                          "undecodable": result.undecodable}))
    else:
        print(f"indexed through block {result.last_block}: "
              + (", ".join(f"{k} {v}" for k, v in sorted(result.indexed.items())) or "nothing new"))
