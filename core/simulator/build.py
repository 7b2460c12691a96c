"""The two outputs of one simulated history: a database without a node, or a node with contracts.

- :func:`build_database` (raw path): the history's logs, encoded as ``eth_getLogs`` returns them
  from the demo deployment, go in batches through the indexer's own decode → load
  (:func:`core.indexer.run.ingest`), so demo data takes exactly the path chain data takes.
- :func:`run_on_node` (node path): deploy the test contracts on a fresh node, write the manifest,
  and send every simulated transaction as one Multicall transaction at its timestamp; the indexer
  then reads the node. On a fresh node both paths give the same blocks, log indexes and rows.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import os
import pickle
import queue
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import db, rollup, schema
from core.indexer.decode import Decoded, decode_chunk
from core.indexer.manifest import Manifest, load_manifest
from core.pipe import start_sender
from core.simulator.chain import (
    CHAIN_ID,
    DEMO_MANIFEST,
    DEMO_NAME,
    ROOT,
    AddressBook,
    RawBatch,
    RawLogWriter,
    calls_of,
    demo_addresses,
    deployment_txs,
    market_specs,
)
from core.simulator.ledger import Truth
from core.simulator.model import Simulation
from core.simulator.params import DEFAULT_DAYS, DEFAULT_START, DEFAULT_TRADES_PER_DAY, RunConfig, market_by_symbol

Progress = Callable[[float, str], None]
#: Simulated seconds between rollup refreshes while a raw-path history is ingested.
ROLLUP_EVERY_S = 5 * 86_400


class SimulatorError(RuntimeError):
    """The simulation cannot be written where it was asked to go; the message says what to do."""


def run_config(seed: int, days: int = DEFAULT_DAYS, trades_per_day: int = DEFAULT_TRADES_PER_DAY,
               markets: Sequence[str] | None = None, start: dt.datetime | dt.date | None = None) -> RunConfig:
    """A :class:`RunConfig` from the CLI's / app's plain arguments (default markets and start)."""
    if isinstance(start, dt.date) and not isinstance(start, dt.datetime):
        start = dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc)
    return RunConfig(seed=seed, days=days, trades_per_day=trades_per_day, markets=market_by_symbol(markets),
                     start=start or DEFAULT_START)


def fingerprint(cfg: RunConfig) -> str:
    """A digest of everything that determines the events (it seeds the synthetic hashes)."""
    return hashlib.blake2b(repr(cfg).encode(), digest_size=16).hexdigest()


def raw_batches(cfg: RunConfig, book: AddressBook, *, batch_logs: int = 50_000,
                first_batch_logs: int | None = None) -> tuple[Simulation, Iterator[RawBatch]]:
    """The simulation and a generator of its :class:`RawBatch` es (deployment logs first); with
    ``first_batch_logs``, the first batch is cut at that size (a reader's first view sooner)."""
    sim = Simulation(cfg, book, np.random.default_rng(cfg.seed))
    writer = RawLogWriter(book, fingerprint(cfg), first_batch_logs or batch_logs)

    def cut(batch: RawBatch) -> RawBatch:
        writer.batch_logs = batch_logs
        return batch

    def batches() -> Iterator[RawBatch]:
        for number, ts, events in deployment_txs(book, cfg.markets, cfg.start_ts):
            if (batch := writer.add_block(number, ts, events)) is not None:
                yield cut(batch)
        number = book.start_block + book.deploy_blocks
        for tx in sim.transactions():
            if (batch := writer.add_block(number, tx.ts, tx.events)) is not None:
                yield cut(batch)
            number += 1
        if (batch := writer.flush()) is not None:
            yield batch

    return sim, batches()


def _prepare(engine: Engine, replace_existing: bool) -> None:
    """Refuse to mix two histories in one database, or clear the old one when asked to."""
    cp = schema.table_of(schema.Checkpoint)
    with db.transaction(engine) as conn:
        existing = conn.execute(sa.select(cp.c.last_block).where(cp.c.chain_id == CHAIN_ID, cp.c.deployment == DEMO_NAME)).first()
        if existing is None:
            return
        if not replace_existing:
            raise SimulatorError(
                f"the database already holds a '{DEMO_NAME}' history (chain {CHAIN_ID}, up to block {existing[0]}); "
                "use a new database or replace=True (--replace) to rebuild it")
        rollup.invalidate(conn, CHAIN_ID, -1)
        db.delete_above(conn, CHAIN_ID, -1)
        conn.execute(sa.delete(cp).where(cp.c.chain_id == CHAIN_ID, cp.c.deployment == DEMO_NAME))


def build_database(engine_or_url: Engine | str, seed: int, days: int = DEFAULT_DAYS,
                   trades_per_day: int = DEFAULT_TRADES_PER_DAY, markets: Sequence[str] | None = None,
                   progress: Progress | None = None, *, start: dt.datetime | dt.date | None = None,
                   batch_logs: int = 50_000, replace_existing: bool = False, parallel: bool = True,
                   first_batch_logs: int | None = None) -> Truth:
    """Simulate a history and index it into a database with no node (the raw path); returns its ledger.

    ``progress(fraction, message)`` is called after every ingested batch (the first of
    ``first_batch_logs`` logs when given, the others of ``batch_logs``). The deployment is the
    committed demo manifest (``data/deployments/demo.json``). With ``parallel`` the model runs in
    a child process while this one indexes; the events are the same either way.
    """
    from core.indexer import load
    from core.indexer.run import ingest

    cfg = run_config(seed, days, trades_per_day, markets, start)
    engine = db.make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    book = demo_addresses(cfg.markets)
    manifest = load_manifest(DEMO_MANIFEST)
    _prepare(engine, replace_existing)
    known = {addr: symbol for symbol, addr in book.markets.items()}
    span = cfg.days * 86_400
    stream = (_produce_in_process(cfg, batch_logs, first_batch_logs) if parallel
              else _produce_here(cfg, book, batch_logs, first_batch_logs))
    truth: Truth | None = None
    rolled_up_to = cfg.start_ts
    for item in stream:
        if isinstance(item, Truth):
            truth = item
            continue
        if isinstance(item, RawBatch):
            ingest(engine, manifest, item.raw, item.blocks, item.checkpoint, markets=known, refresh_rollups=False)
        else:
            load.commit_batch(engine, chain_id=manifest.chain_id, deployment=manifest.name, decoded=item.decoded,
                              blocks=item.blocks, checkpoint=item.checkpoint)
        last_ts = int(item.blocks["timestamp"][-1])
        if last_ts - rolled_up_to >= ROLLUP_EVERY_S:
            # Rollups as the history comes in, while the model computes the next batches in its
            # process: at the end only the last days are left to roll up, instead of all of them
            # with the model's core idle. (A refresh re-reads the day it stopped in: every five
            # days that is ~1/10 more rollup work.)
            rollup.refresh(engine, CHAIN_ID)
            rolled_up_to = last_ts
        if progress:
            day = dt.datetime.fromtimestamp(last_ts, dt.timezone.utc)
            progress(min(1.0, max(0.0, (last_ts - cfg.start_ts) / span)), f"indexed up to {day:%Y-%m-%d %H:%M} UTC")
    if progress:
        progress(1.0, "building the hourly and daily rollups")
    rollup.refresh(engine, CHAIN_ID)
    assert truth is not None
    return truth


def _produce_here(cfg: RunConfig, book: AddressBook, batch_logs: int,
                  first_batch_logs: int | None = None) -> Iterator[RawBatch | Truth]:
    sim, batches = raw_batches(cfg, book, batch_logs=batch_logs, first_batch_logs=first_batch_logs)
    yield from batches
    yield sim.ledger.truth()


@dataclass
class DecodedBatch:
    """A :class:`RawBatch` after the indexer's :func:`~core.indexer.decode.decode_logs`: what
    :func:`~core.indexer.load.commit_batch` writes."""

    decoded: Decoded
    blocks: pl.DataFrame
    checkpoint: tuple[int, str]


def decode_batch(batch: RawBatch, manifest: Manifest, markets: set[str]) -> DecodedBatch:
    """The decode half of :func:`core.indexer.run.ingest` for one raw batch, with the same arguments."""
    return DecodedBatch(decode_chunk(batch.raw, batch.blocks, manifest, markets), batch.blocks, batch.checkpoint)


WORKER_AHEAD = 4  # pickled batches the worker may hold while the writing process catches up


def produce_to(stream: BinaryIO) -> None:
    """Worker side of :func:`_produce_in_process`: read (config, batch sizes) pickled from stdin,
    write every batch, decoded, and finally the ledger, pickled, to ``stream``."""
    cfg, batch_logs, first_batch_logs = pickle.load(sys.stdin.buffer)
    # The model and the encoder allocate millions of short-lived tuples and lists that form no
    # reference cycles, so the cyclic collector only re-scans the model's state over and over:
    # ~20% of this process's time. Reference counting frees everything here.
    gc.disable()
    book = demo_addresses(cfg.markets)
    manifest = load_manifest(DEMO_MANIFEST)
    markets = set(book.markets.values())
    # A thread writes the pickled batches to the pipe while the model goes on: with the pipe alone
    # the model stalls whenever the writer is busy with the batch before, and the two processes
    # used ~1.3 of 2 cores. Up to WORKER_AHEAD batches wait here (the blocked write releases the GIL).
    pending: queue.Queue[bytes | None] = queue.Queue(maxsize=WORKER_AHEAD)
    sender = start_sender(stream, pending, "send-batches")
    for item in _produce_here(cfg, book, batch_logs, first_batch_logs):
        out = decode_batch(item, manifest, markets) if isinstance(item, RawBatch) else item
        pending.put(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    pending.put(None)
    sender.join()


def _produce_in_process(cfg: RunConfig, batch_logs: int, first_batch_logs: int | None = None) -> Iterator[DecodedBatch | Truth]:
    """Simulate, encode and decode in a second process while this one writes (2 cores).

    The worker runs the model, encodes its logs as ``eth_getLogs`` returns them and puts them
    through the indexer's own decode; this process writes what it decoded with the indexer's own
    load. (Decoding here instead left this process ~10 s behind the worker on the 90-day demo.)
    The worker is ``python -m core.simulator.worker`` (a plain subprocess: no multiprocessing
    re-import of the caller's main module, safe under Streamlit); batches come back pickled over a
    pipe, whose back-pressure keeps memory bounded however long the history.
    """
    env = dict(os.environ, POLARS_MAX_THREADS="1", PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([sys.executable, "-m", "core.simulator.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errors, cwd=ROOT, env=env)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            pickle.dump((cfg, batch_logs, first_batch_logs), proc.stdin)
            proc.stdin.close()
            while True:
                try:
                    item = pickle.load(proc.stdout)
                except EOFError:
                    proc.wait()
                    errors.seek(0)
                    raise SimulatorError(f"the simulator process stopped (exit code {proc.returncode}):\n"
                                         f"{errors.read().decode(errors='replace')[-4000:]}") from None
                yield item
                if isinstance(item, Truth):
                    return
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def run_on_node(rpc_url: str, manifest_out: str | Path, seed: int, days: int = DEFAULT_DAYS,
                trades_per_day: int = DEFAULT_TRADES_PER_DAY, markets: Sequence[str] | None = None,
                progress: Progress | None = None, *, start: dt.datetime | dt.date | None = None,
                name: str = DEMO_NAME) -> Truth:
    """Deploy the contracts on the node at ``rpc_url``, write the manifest, send the history; returns its ledger.

    The node must accept the history's timestamps: its latest block must be older than the start
    (start anvil with ``--timestamp`` before it). On a fresh anvil the addresses, blocks and log
    indexes equal the raw path's. At the end the contracts' views are checked against the ledger.
    """
    from web3 import Web3

    from core.simulator.contracts import deploy, set_next_block_timestamp

    cfg = run_config(seed, days, trades_per_day, markets, start)
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 120}))
    latest = w3.eth.get_block("latest")
    if int(latest["timestamp"]) >= cfg.start_ts:
        raise SimulatorError(
            f"the node's latest block (#{latest['number']}) is at {int(latest['timestamp'])}, not before the history's "
            f"start {cfg.start:%Y-%m-%d} ({cfg.start_ts}); start the node with e.g. `anvil --timestamp {cfg.start_ts - 86_400}` "
            "or pass a later --start")
    # Pin the deployment's blocks to start, start+1, … so both paths agree on every timestamp.
    _anvil(w3, "evm_setNextBlockTimestamp", [cfg.start_ts])
    _anvil(w3, "anvil_setBlockTimestampInterval", [1])
    try:
        dep = deploy(w3, market_specs(cfg.markets))
    finally:
        _anvil(w3, "anvil_removeBlockTimestampInterval", [])
    dep.write_manifest(manifest_out, name)
    book = AddressBook(
        contracts={c: a.lower() for c, a in dep.addresses.items()}, multicall=dep.multicall.lower(),
        markets={s: a.lower() for s, a in dep.markets.items()}, start_block=dep.start_block,
    )
    sim = Simulation(cfg, book, np.random.default_rng(cfg.seed))
    span = cfg.days * 86_400
    expected_block = dep.start_block + book.deploy_blocks
    for n, tx in enumerate(sim.transactions()):
        set_next_block_timestamp(w3, tx.ts)
        receipts = dep.multicall_tx(calls_of(dep, tx.events))
        if len(receipts) != 1 or receipts[0].block_number != expected_block or len(receipts[0].logs) != len(tx.events):
            raise SimulatorError(f"transaction at {tx.ts} did not land as one block #{expected_block} with "
                                 f"{len(tx.events)} logs: {[(r.block_number, len(r.logs)) for r in receipts]}")
        expected_block += 1
        if progress and n % 200 == 0:
            progress(min(1.0, (tx.ts - cfg.start_ts) / span), f"sent block {expected_block - 1}")
    truth = sim.ledger.truth()
    views = {
        "fundBalance": dep.contract("InsuranceFund").functions.fundBalance().call(),
        "totalVaultValue": dep.contract("BackstopVault").functions.totalVaultValue().call(),
        "totalSocializedDebt": dep.contract("BackstopVault").functions.totalSocializedDebt().call(),
    }
    expected = {"fundBalance": truth.insurance_fund_raw, "totalVaultValue": truth.backstop_vault_raw,
                "totalSocializedDebt": truth.socialized_debt_raw}
    if views != expected:
        raise SimulatorError(f"contract views {views} disagree with the simulator's ledger {expected}")
    return truth


def _anvil(w3: Any, method: str, params: list[Any]) -> None:
    answer = w3.provider.make_request(method, params)
    if "error" in answer:
        raise SimulatorError(f"{method} failed on the node (is it anvil?): {answer['error']}")


__all__ = ["SimulatorError", "build_database", "fingerprint", "raw_batches", "run_config", "run_on_node"]
