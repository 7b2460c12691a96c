"""The indexing loop: reorg check → plan → fetch chunk → decode → commit, until done or stopped."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

import polars as pl
import sqlalchemy as sa
from cachetools import LRUCache
from sqlalchemy.engine import Engine

from core import db, rollup, schema
from core.abi import event_specs
from core.indexer import load
from core.indexer.decode import RAW_LOG_SCHEMA, Decoded, decode_chunk, import_in_background, logs_to_frame
from core.indexer.errors import (
    IndexerError,
    MalformedAnswerError,
    RangeTooLargeError,
    ReorgDuringFetchError,
    TransientRPCError,
)
from core.indexer.manifest import Manifest
from core.indexer.plan import BATCH_LOGS, FETCH_THREADS, ChunkSizer, find_fork, plan_range
from core.indexer.progress import Progress
from core.indexer.raw import frame_from_body
from core.indexer.rpc import RPC, hex_quantity
from core.indexer.writer import BatchWriter

T = TypeVar("T")
BLOCK_FRAME_SCHEMA = pl.Schema({"number": pl.Int64, "hash": pl.String, "timestamp": pl.Int64})


@dataclass(frozen=True)
class Chunk:
    """One fetched range: its raw logs, their blocks, the end block's hash, the markets it created."""

    start: int
    stop: int
    raw: pl.DataFrame
    blocks: pl.DataFrame
    end_hash: str
    new_markets: frozenset[str]


@dataclass
class _Failures:
    """Refusals at the smallest span and chain changes met in a row."""

    refusals: int = 0
    reorgs: int = 0


@dataclass
class RunResult:
    chain_id: int
    last_block: int | None = None
    indexed: Counter[str] = field(default_factory=Counter)
    undecodable: int = 0
    foreign: int = 0
    rewinds: list[int] = field(default_factory=list)  # blocks the run rewound to after reorgs


def ingest(engine: Engine, manifest: Manifest, raw: pl.DataFrame, blocks: pl.DataFrame,
           checkpoint: tuple[int, str] | None, markets: dict[str, str] | None = None, *,
           refresh_rollups: bool = True) -> Decoded:
    """decode → load in this process for one batch of raw logs (``logs_to_frame`` output) and their blocks.

    The simulator's raw-log path calls this, so demo data takes exactly the path chain data takes.
    """
    if markets is None:
        with engine.connect() as conn:
            markets = load.known_markets(conn, manifest.chain_id)
    decoded = decode_chunk(raw, blocks, manifest, markets)
    load.commit_batch(engine, chain_id=manifest.chain_id, deployment=manifest.name, decoded=decoded,
                      blocks=blocks, checkpoint=checkpoint, refresh_rollups=refresh_rollups and bool(decoded.frames))
    return decoded


def ingest_stream(engine: Engine, manifest: Manifest,
                  batches: Iterable[tuple[list[dict[str, Any]], pl.DataFrame, tuple[int, str] | None]], *,
                  parallel: bool = True, refresh_rollups: bool = True) -> Counter[str]:
    """decode → load for a stream of (raw logs, blocks, checkpoint) batches, a few batches in memory.

    Batches are committed by a :class:`~core.indexer.writer.BatchWriter` process while this one
    decodes the next (unless ``parallel`` is false). Rollups are refreshed once at
    the end (per batch they would re-read the current day each time), unless ``refresh_rollups``
    is false. Markets created in one batch are known when the next is decoded.
    """
    with engine.connect() as conn:
        markets = load.known_markets(conn, manifest.chain_id)
    counts: Counter[str] = Counter()
    with BatchWriter(engine, parallel=parallel, expect_many=True) as writer:
        for logs, blocks, checkpoint in batches:
            raw = logs_to_frame(logs) if logs else pl.DataFrame(schema=RAW_LOG_SCHEMA)
            decoded = decode_chunk(raw, blocks, manifest, markets)
            writer.commit(chain_id=manifest.chain_id, deployment=manifest.name, decoded=decoded, blocks=blocks,
                          checkpoint=checkpoint)
            markets.update(decoded.new_markets)
            counts.update(decoded.counts)
    if refresh_rollups:
        rollup.refresh(engine, manifest.chain_id)
    return counts


class Indexer:
    """Indexes one deployment from one node into one database."""

    def __init__(self, manifest: Manifest, rpc: RPC, engine: Engine, *, reorg_window: int = 256,
                 initial_span: int = 2_000, max_span: int = 100_000, progress_stream: TextIO | None = None,
                 stop: threading.Event | None = None, fetch_threads: int = FETCH_THREADS,
                 batch_logs: int = BATCH_LOGS) -> None:
        self.manifest = manifest
        self.rpc = rpc
        self.engine = engine
        self.reorg_window = reorg_window
        self.sizer = ChunkSizer(initial=initial_span, maximum=max_span)
        self.progress_stream = progress_stream
        self.stop = stop or threading.Event()
        self.block_cache: LRUCache[str, tuple[int, int]] = LRUCache(maxsize=200_000)  # hash → (number, ts)
        self._cache_lock = threading.Lock()  # chunks are fetched by several threads
        specs = event_specs()
        self.topics = [s.topic0 for s in specs.values()]
        self.market_created_topic = specs["MarketCreated"].topic0
        self.trade_topic = specs["Trade"].topic0
        with engine.connect() as conn:
            self.markets = load.known_markets(conn, manifest.chain_id)
        self.fetch_markets = frozenset(self.markets)  # market addresses the next ranges are asked for
        self.fetch_threads = max(1, fetch_threads)
        self.batch_logs = batch_logs
        self.result = RunResult(chain_id=manifest.chain_id)

    # -- checks --------------------------------------------------------------------------------
    def check_chain(self) -> None:
        node_chain = self.rpc.chain_id()
        if node_chain != self.manifest.chain_id:
            raise IndexerError(
                f"the node at {self.rpc.safe_url} is chain {node_chain} but manifest '{self.manifest.name}' is for "
                f"chain {self.manifest.chain_id}: point --rpc-url at the right network or use its manifest")

    def checkpoint(self) -> tuple[int, str] | None:
        with self.engine.connect() as conn:
            return load.read_checkpoint(conn, self.manifest.chain_id, self.manifest.name)

    def _retrying(self, what: str, step: Callable[[], T]) -> T:
        """Run ``step`` again when the node answers malformed data (a faulty node is often one bad
        backend behind a load balancer); give up with a one-line error naming ``what``."""
        for n in range(self.rpc.retries + 1):
            try:
                return step()
            except MalformedAnswerError as e:
                if n == self.rpc.retries:
                    raise IndexerError(f"the node at {self.rpc.safe_url} keeps answering malformed data for {what} "
                                       f"({e}): use another node") from None
                self.rpc.sleep(min(8.0, self.rpc.backoff * 2**n))
        raise AssertionError("unreachable")

    def _block(self, block: Any, what: str) -> tuple[int, str, int] | None:
        """(number, hash, timestamp) of a block object from the node; None when the node has no such block."""
        if block is None:
            return None
        try:
            h = block["hash"]
            if not (isinstance(h, str) and len(h) == 66):
                raise TypeError
            return (hex_quantity(block["number"], what), h.lower(), hex_quantity(block["timestamp"], what))
        except (KeyError, TypeError, TransientRPCError):
            raise MalformedAnswerError(f"{what}: a malformed block object") from None

    def check_reorg(self) -> int | None:
        """Compare stored recent block hashes with the node's; on a fork rewind. Returns the new tip."""
        return self._retrying("the reorg check", self._check_reorg)

    def _check_reorg(self) -> int | None:
        """Checked: the blocks that had logs within ``reorg_window`` of the checkpoint, and the
        checkpoint block itself; the window doubles while the fork is older than it.
        """
        cp = self.checkpoint()
        if cp is None:
            return None
        window = self.reorg_window
        t = schema.table_of(schema.Block)
        chain_id = self.manifest.chain_id
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(t.c.number, t.c.hash).where(
                    t.c.chain_id == chain_id, t.c.number > cp[0] - window)).all()
                deeper = conn.execute(sa.select(sa.func.max(t.c.number)).where(
                    t.c.chain_id == chain_id, t.c.number <= cp[0] - window)).scalar()
            stored = {int(n): str(h) for n, h in rows}
            if cp[1]:
                stored[cp[0]] = cp[1]
            numbers = sorted(stored)
            found = [self._block(b, "eth_getBlockByNumber") for b in self.rpc.blocks_by_number(numbers)]
            canonical = {n: (b[1] if b else None) for n, b in zip(numbers, found, strict=True)}
            fork = find_fork(stored, canonical)
            if fork is None:
                return None
            _, last_good = fork
            if last_good is None and deeper is not None:
                window *= 2  # the fork is older than the window: look further back
                continue
            target = last_good if last_good is not None else self.manifest.start_block - 1
            good_hash = ""
            if target >= 0:
                block = self._block(self.rpc.blocks_by_number([target])[0], "eth_getBlockByNumber")
                good_hash = block[1] if block else ""
            load.rewind(self.engine, chain_id=chain_id, deployment=self.manifest.name,
                        last_good=target, last_good_hash=good_hash)
            with self.engine.connect() as conn:
                self.markets = load.known_markets(conn, chain_id)
            self.result.rewinds.append(target)
            return target

    # -- fetch ---------------------------------------------------------------------------------
    def _block_info(self, raw: pl.DataFrame, end: int, stamps: dict[str, str]) -> tuple[pl.DataFrame, str]:
        """Blocks (number, hash, timestamp) holding the logs, and the hash of the chunk's end block.

        A block's timestamp is the ``blockTimestamp`` its logs carry, else asked of the node by hash
        (which also checks the block is still there). Only blocks with logs are stored (the
        checkpoint keeps the end block's hash), so the stored rows do not depend on how the range
        happened to be chunked. The end block's hash is the one its logs carry when it has logs (the
        same answer's view of the chain; on a dense chain that spares a call per range), else asked."""
        pairs = raw.select("block_number", "block_hash").unique()
        if pairs["block_hash"].n_unique() != pairs.height:
            raise ReorgDuringFetchError("one block hash reported for two heights")
        if pairs["block_number"].n_unique() != pairs.height:
            raise ReorgDuringFetchError("two hashes for one block in one answer")
        hashes = dict(zip(pairs["block_hash"].to_list(), pairs["block_number"].to_list(), strict=True))
        end_hash = next((h for h, number in hashes.items() if number == end), None)
        if end_hash is None:
            end_block = self._block(self.rpc.blocks_by_number([end])[0], "eth_getBlockByNumber")
            if not end_block:
                raise ReorgDuringFetchError(f"block {end} vanished while fetching")
            end_hash = end_block[1]
        known: dict[str, tuple[int, int]] = {}
        for h, number in hashes.items():
            if h in stamps:
                known[h] = (number, hex_quantity(stamps[h], "eth_getLogs blockTimestamp"))
            elif (cached := self.block_cache.get(h)) is not None:
                known[h] = cached
        missing = [h for h in hashes if h not in known]
        for h, found in zip(missing, self.rpc.blocks_by_hash(missing), strict=True):
            block = self._block(found, "eth_getBlockByHash")
            if not block or block[0] != hashes[h] or block[1] != h:
                raise ReorgDuringFetchError(f"block {h} is no longer known to the node")
            known[h] = (hashes[h], block[2])
            with self._cache_lock:
                self.block_cache[h] = known[h]
        rows = sorted((number, h, ts) for h, (number, ts) in known.items())
        frame = pl.DataFrame(rows, schema=BLOCK_FRAME_SCHEMA, orient="row")
        return frame, end_hash

    @staticmethod
    def _logs_frame(answer: tuple[pl.DataFrame, dict[str, str]] | list[dict[str, Any]], start: int,
                    stop: int) -> tuple[pl.DataFrame, dict[str, str]]:
        """The node's logs as a raw frame, and block hash → the ``blockTimestamp`` the logs carry (nodes
        that give it: anvil, recent geth/reth); a log the node could not have meant is a MalformedAnswerError.

        ``answer`` is what :meth:`RPC.get_logs` gave with :func:`frame_from_body`: the frame already
        parsed from a well-formed answer's bytes, or the log objects of any other. Duplicates (one log
        twice in an answer) are dropped; order does not matter."""
        where = f"eth_getLogs for blocks {start}..{stop}"
        if isinstance(answer, tuple):
            raw, stamps = answer
        else:
            logs = [lg for lg in answer if not (isinstance(lg, dict) and lg.get("removed"))]
            if not logs:
                return pl.DataFrame(schema=RAW_LOG_SCHEMA), {}
            try:
                raw = logs_to_frame(logs)
            except KeyError as e:
                raise MalformedAnswerError(f"{where}: a log without {e.args[0]}") from None
            except Exception as e:  # a number that is not hex, a log that is not an object, a field of the wrong type
                raise MalformedAnswerError(f"{where}: a malformed log ({type(e).__name__})") from None
            stamps = {lg["blockHash"].lower(): lg["blockTimestamp"] for lg in logs
                      if isinstance(lg.get("blockTimestamp"), str)} if isinstance(logs[0].get("blockTimestamp"), str) else {}
        if not raw.height:
            return raw, {}
        required = ["address", "data", "block_number", "block_hash", "tx_hash", "log_index"]
        if raw.select(pl.any_horizontal(pl.col(required).is_null()).any()).item():
            raise MalformedAnswerError(f"{where}: a log without {'/'.join(required)}")
        lo, hi = int(raw["block_number"].min()), int(raw["block_number"].max())  # type: ignore[arg-type]
        if lo < start or hi > stop:
            raise MalformedAnswerError(f"{where}: a log from block {lo if lo < start else hi}")
        if not raw.select(pl.col("block_hash").str.len_chars().eq(66).all()).item():
            raise MalformedAnswerError(f"{where}: a log with a malformed block hash")
        return raw.sort("block_number", "log_index"), stamps  # nodes may answer out of order; rows must not depend on it

    def fetch_chunk(self, start: int, stop: int, markets: frozenset[str]) -> Chunk:
        """The logs of start..stop from the deployment's contracts and ``markets`` (and of markets created
        inside the range), their blocks and the end block's hash."""
        addresses = sorted(set(self.manifest.contracts.values()) | markets)
        raw, stamps = self._logs_frame(self.rpc.get_logs(start, stop, addresses, self.topics, frame_from_body),
                                        start, stop)
        registry = self.manifest.contracts["MarketRegistry"]
        created = raw.filter((pl.col("topic0") == self.market_created_topic) & (pl.col("address") == registry)
                             & pl.col("topic1").is_not_null())
        new_markets = frozenset("0x" + t[-40:].lower() for t in created["topic1"].to_list()) - markets
        if new_markets:  # trades of markets created inside this chunk
            more, more_stamps = self._logs_frame(self.rpc.get_logs(start, stop, sorted(new_markets), [self.trade_topic],
                                                                    frame_from_body), start, stop)
            raw = pl.concat([raw, more]).unique(subset=["block_number", "log_index"], keep="first", maintain_order=True)
            stamps.update(more_stamps)
        blocks, end_hash = self._block_info(raw, stop, stamps)
        return Chunk(start, stop, raw, blocks, end_hash, new_markets)

    # -- run -----------------------------------------------------------------------------------
    def index_range(self, start: int, end: int) -> None:
        progress = Progress(start, end, self.progress_stream) if end - start > 1_000 or self.progress_stream else None
        many = end - start + 1 > self.sizer.span  # more than one chunk
        if many:
            import_in_background()
        # A first catch-up into an empty database (indexes deferred) is written without waiting for the
        # disk, and synced once at its end (core.db.indexes_deferred).
        with db.indexes_deferred(self.engine, schema.BULK_TABLES) if many else contextlib.nullcontext(False) as bulk, \
                BatchWriter(self.engine, expect_many=many, unsynced=bulk) as writer:
            done = self._index_chunks(start, end, writer, progress)
        if progress:
            progress.close(done)

    def _index_chunks(self, start: int, end: int, writer: BatchWriter, progress: Progress | None) -> int:
        """Fetch chunks of start..end (several at once, :meth:`_fetched`), decode them here in batches of
        about ``batch_logs`` logs, and hand each batch to ``writer``, which commits them in order.
        Returns the last block handed to ``writer``."""
        batch: list[Chunk] = []
        done = start - 1
        for chunk in self._fetched(start, end):
            batch.append(chunk)
            if sum(c.raw.height for c in batch) >= self.batch_logs or chunk.stop >= end or self.stop.is_set():
                done = self._commit(batch, writer, progress)
                batch = []
        if batch:
            done = self._commit(batch, writer, progress)
        return done

    def _commit(self, batch: list[Chunk], writer: BatchWriter, progress: Progress | None) -> int:
        """Decode consecutive fetched chunks as one batch and hand it to ``writer`` with the last one's checkpoint."""
        raws = [c.raw for c in batch if c.raw.height]
        raw = pl.concat(raws) if len(raws) > 1 else raws[0] if raws else batch[0].raw
        blocks = pl.concat([c.blocks for c in batch])
        last = batch[-1]
        decoded = decode_chunk(raw, blocks, self.manifest, self.markets)
        writer.commit(chain_id=self.manifest.chain_id, deployment=self.manifest.name, decoded=decoded,
                      blocks=blocks, checkpoint=(last.stop, last.end_hash), refresh_rollups=bool(decoded.frames))
        self.markets.update(decoded.new_markets)
        self.result.indexed.update(decoded.counts)
        self.result.undecodable += decoded.undecodable.height
        self.result.foreign += decoded.foreign
        self.result.last_block = last.stop
        if progress:
            progress.update(last.stop, sum(decoded.counts.values()))
        return last.stop

    def _fetched(self, start: int, end: int) -> Iterator[Chunk]:
        """The chunks of start..end in order, ``fetch_threads`` ranges asked of the node at once (one,
        once the node has rate-limited us), as many again planned and queued so that the threads go on
        fetching while the caller decodes and commits.

        Ranges are planned ahead with the sizer's current span. When the node refuses one as too
        large, the chain changes under one, or a chunk creates markets (the ranges after it were
        asked without their addresses), the ranges in flight after it are dropped and asked again."""
        pool = ThreadPoolExecutor(max_workers=self.fetch_threads, thread_name_prefix="fetch")
        inflight: deque[tuple[int, int, Future[Chunk]]] = deque()
        failures = _Failures()
        ahead = first = start
        try:
            def depth() -> int:
                """Ranges in flight: one once rate-limited, or before the first answer while no market is
                known (a deployment's first range creates them: ranges asked beside it would lack their
                addresses and be asked again); else before the first answer one per thread (those are
                planned at the initial span, which the first answer may find far too dense)."""
                if self.rpc.rate_limited or (start == first and not self.fetch_markets):
                    return 1
                return 2 * self.fetch_threads if start > first else self.fetch_threads

            def top_up() -> None:
                nonlocal ahead
                while len(inflight) < depth() and ahead <= end:
                    a, b = self.sizer.next_range(ahead, end)
                    inflight.append((a, b, pool.submit(self._fetch_retrying, a, b, frozenset(self.fetch_markets))))
                    ahead = b + 1

            while start <= end and not self.stop.is_set():
                top_up()
                a, b, future = inflight.popleft()
                try:
                    chunk = future.result()
                except (RangeTooLargeError, ReorgDuringFetchError) as e:
                    self._refused(a, b, e, failures)
                    ahead = self._drop(inflight, start)
                    continue
                failures.refusals = 0
                self.sizer.succeeded(a, b, chunk.raw.height)
                if chunk.new_markets - self.fetch_markets:
                    self.fetch_markets |= chunk.new_markets
                    ahead = self._drop(inflight, b + 1)
                start = b + 1
                top_up()  # the node answers the next ranges while the caller decodes and commits this one
                yield chunk
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _drop(inflight: deque[tuple[int, int, Future[Chunk]]], restart: int) -> int:
        """Forget the ranges in flight (their answers are not used); where planning starts again."""
        for _, _, future in inflight:
            future.cancel()
        inflight.clear()
        return restart

    def _refused(self, a: int, b: int, error: Exception, failures: _Failures) -> None:
        """Handle a refused (too large) or changing range a..b: narrow, wait, or give up with one line."""
        if isinstance(error, ReorgDuringFetchError):
            failures.reorgs += 1
            if failures.reorgs > 10:
                raise IndexerError(f"the chain keeps changing under blocks {a}..{b}; try --confirmations N") from None
            return
        assert isinstance(error, RangeTooLargeError)
        if b - a + 1 > self.sizer.minimum:
            self.sizer.too_large(a, b, error.suggested_width)
            return
        # Refused even at the smallest span: a slow node or an ambiguous "limit exceeded"
        # (rate limits say so too) is more likely than one block too big, so wait and retry.
        failures.refusals += 1
        if failures.refusals > self.rpc.retries:
            if error.transient:
                raise IndexerError(f"eth_getLogs for blocks {a}..{b} timed out {failures.refusals} times on "
                                   f"{self.rpc.safe_url}: raise --rpc-timeout or use a faster node") from None
            self.sizer.too_large(a, b)  # raises: the node cannot serve even one block's logs
        self.rpc.sleep(min(8.0, self.rpc.backoff * 2**failures.refusals))

    def _fetch_retrying(self, a: int, b: int, markets: frozenset[str]) -> Chunk:
        return self._retrying(f"blocks {a}..{b}", lambda: self.fetch_chunk(a, b, markets))

    def _index_planned(self, planned: tuple[int, int] | None, cp: tuple[int, str] | None) -> None:
        """Index ``planned``. A range at or below the checkpoint (--from-block) may store rows that were
        missing (a log a faulty node had mangled), which rollups built earlier do not count: once
        something of it is committed, its rollups are marked for rebuilding."""
        if planned is None:
            return
        committed_before = self.result.last_block
        try:
            self.index_range(*planned)
        finally:
            if cp is not None and planned[0] <= cp[0] and self.result.last_block != committed_before:
                with db.transaction(self.engine) as conn:
                    rollup.invalidate(conn, self.manifest.chain_id, planned[0] - 1)

    def run(self, *, confirmations: int = 0, from_block: int | None = None, to_block: int | None = None) -> RunResult:
        """Index once, up to the safe head (or ``to_block``)."""
        self.check_chain()
        self.check_reorg()
        cp = self.checkpoint()
        head = self.rpc.block_number()
        planned = plan_range(checkpoint=cp[0] if cp else None, start_block=self.manifest.start_block, head=head,
                             confirmations=confirmations, from_block=from_block, to_block=to_block)
        self._index_planned(planned, cp)
        rollup.refresh(self.engine, self.manifest.chain_id)  # also after a rewind with nothing new
        if self.result.last_block is None:
            cp = self.checkpoint()
            self.result.last_block = cp[0] if cp else None
        return self.result

    def follow(self, *, confirmations: int = 0, poll_interval: float = 2.0, from_block: int | None = None) -> RunResult:
        """Tail the chain until ``stop`` is set, re-checking for reorgs before every step."""
        self.check_chain()
        first = True
        while not self.stop.is_set():
            self.check_reorg()
            cp = self.checkpoint()
            planned = plan_range(checkpoint=cp[0] if cp else None, start_block=self.manifest.start_block,
                                 head=self.rpc.block_number(), confirmations=confirmations,
                                 from_block=from_block if first else None)
            first = False
            if planned:
                self._index_planned(planned, cp)
            else:
                rollup.refresh(self.engine, self.manifest.chain_id)
                self.stop.wait(poll_interval)
        cp = self.checkpoint()
        self.result.last_block = cp[0] if cp else self.result.last_block
        return self.result

