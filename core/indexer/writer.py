"""Commit decoded batches in a second process while this one fetches and decodes the next ones.

A batch's CPU splits about evenly between decoding (building the raw frame from the node's log
objects, slicing words, units) and loading (binding every value, SQLite's B-tree inserts); both hold
the GIL, so on two cores they only overlap in two processes (a decode thread was measured slower).
:class:`BatchWriter` does that for the indexer and :func:`~core.indexer.run.ingest_stream`:

- the writer process (``python -m core.indexer.writer``, a plain subprocess: no re-import of the
  caller's main module) commits batches in order, each in one transaction with its checkpoint and
  rollups, exactly as :func:`~core.indexer.load.commit_frames` does here. It is started at once
  when the caller expects many batches (its ~1 s of imports then overlap the first batch's fetch
  and decode) and then commits every batch, the first too, so that this process goes on to the
  next one; else the first batch is committed here and the process started at the second: a
  one-chunk run never starts a process. ``python -m core.indexer`` starts one before its own
  imports (:mod:`core.indexer.spare`); the first ``BatchWriter`` takes it, and stops it if unused.
- Frames travel as uncompressed Arrow IPC over a pipe; at most ``AHEAD`` batches are in flight,
  which bounds memory however long the range.
- A write the database refuses stops the writer at that batch: nothing after it is committed, and
  the error surfaces here as a :class:`~core.db.DatabaseError` with the same one-line message
  the in-process path gives (:func:`core.db.write_failed`).
- The writer runs in a session of its own, so a terminal's Ctrl-C (sent to the foreground
  process group) reaches only the indexer, which decides when to stop and drains what it handed
  over. If this process dies, the kernel kills the writer (``PR_SET_PDEATHSIG``), so its open
  transaction rolls back and a restarted run resumes from the last checkpoint, as after any kill.

Databases another process cannot open (SQLite in memory) are always written in this process.
"""

from __future__ import annotations

import ctypes
import gc
import io
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

import polars as pl
from sqlalchemy.engine import Engine

from core import db
from core.indexer import load, spare
from core.pipe import start_sender

if TYPE_CHECKING:  # decode's imports (eth_abi, numpy) are not needed to write rows: the writer process skips them
    from core.indexer.decode import Decoded

AHEAD = 2  # batches handed over but not yet committed


def shareable(engine: Engine) -> bool:
    """Whether a second process can open the same database from ``engine.url``."""
    if engine.dialect.name != "sqlite":
        return True
    return spare.shareable_sqlite(engine.url.database)


class BatchWriter:
    """Commits batches in order, in a writer process (the first here unless it was started up front; see the module doc).

    Use as a context manager: leaving the block waits until every batch is committed (or, on
    KeyboardInterrupt, kills the writer so that its open transaction rolls back)."""

    def __init__(self, engine: Engine, *, parallel: bool = True, expect_many: bool = False,
                 unsynced: bool = False) -> None:
        self.engine = engine
        self.unsynced = unsynced  # the writer process's commits do not wait for the disk (core.db.make_engine)
        self.parallel = parallel and shareable(engine)
        self.committed_here = 0
        self.handed_over = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._errors: Any = None
        self._ahead = spare.take()  # a process started ahead (used by _start, else stopped by close)
        self._pending: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
        self._sender: threading.Thread | None = None
        self._in_flight = 0
        if self.parallel and expect_many:
            self._start()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.close(abort=True)
            return
        try:
            self.drain()
        except BaseException:
            self.close(abort=True)
            raise
        self.close()

    def commit(self, *, chain_id: int, deployment: str, decoded: Decoded, blocks: pl.DataFrame,
               checkpoint: tuple[int, str] | None, refresh_rollups: bool = False) -> None:
        """:func:`~core.indexer.load.commit_batch`, here or in the writer process."""
        frames = load.batch_frames(chain_id, decoded, blocks)
        row = db.CheckpointRow(chain_id, deployment, *checkpoint) if checkpoint else None
        if not self.parallel or (self.committed_here == 0 and self._proc is None):
            load.commit_frames(self.engine, chain_id, frames, row, refresh_rollups)
            self.committed_here += 1
            return
        if self._proc is None:
            self._start()
        self.handed_over += 1
        payload = [(model, _to_ipc(frame)) for model, frame in frames if frame.height]
        self._pending.put(pickle.dumps((payload, row, chain_id, refresh_rollups), protocol=pickle.HIGHEST_PROTOCOL))
        self._in_flight += 1
        while self._in_flight > AHEAD:
            self._acknowledged()

    def drain(self) -> None:
        """Wait until every batch handed over is committed; raise the writer's error if one failed."""
        while self._in_flight:
            self._acknowledged()

    def close(self, *, abort: bool = False) -> None:
        """Stop the writer process (killing it mid-transaction if ``abort``; else after :meth:`drain`)."""
        proc, self._proc = self._proc, None
        if self._ahead is not None:
            self._ahead.stop()
            self._ahead = None
        if proc is None:
            return
        if (abort or not self.handed_over) and proc.poll() is None:
            proc.kill()  # aborting: its open transaction rolls back; never used: nothing to wait for
        self._pending.put(None)
        assert self._sender is not None
        self._sender.join()
        proc.wait()
        self._errors.close()
        self._in_flight = 0

    # -- this side ------------------------------------------------------------------------------
    def _start(self) -> None:
        started, self._ahead = self._ahead or spare.spawn(), None
        self._proc, self._errors = started.proc, started.errors
        url = self.engine.url.render_as_string(hide_password=False)
        self._pending = queue.Queue(maxsize=1)
        self._pending.put(pickle.dumps((url, os.getpid(), self.unsynced)))
        assert self._proc.stdin is not None
        self._sender = start_sender(self._proc.stdin, self._pending, "batch-writer-send")

    def _acknowledged(self) -> None:
        """Wait for the writer's answer on the oldest batch in flight."""
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline().decode("utf-8", errors="replace").rstrip("\n")
        if line == "ok":
            self._in_flight -= 1
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._errors.seek(0)
        tail = self._errors.read().decode("utf-8", errors="replace").strip().splitlines()
        reason = tail[-1] if tail else f"exit code {self._proc.returncode}"
        self.close(abort=True)
        if line.startswith("error "):
            raise db.DatabaseError(line.removeprefix("error "))
        raise db.DatabaseError(f"the writer process stopped unexpectedly ({reason}): nothing after the last "
                               "checkpoint was stored; run the indexer again to resume")


def _to_ipc(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_ipc_stream(out, compression="uncompressed")
    return out.getvalue()


# -- the writer process -------------------------------------------------------------------------
def _die_with(parent: int) -> None:
    """Be killed when ``parent`` dies (Linux); elsewhere the closed pipe ends the loop instead."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def serve(inp: BinaryIO, out: BinaryIO) -> int:
    """Writer side: commit every batch read from ``inp`` and answer ``ok`` (or ``error …`` and stop)."""
    try:
        url, parent, unsynced = pickle.load(inp)
    except EOFError:  # started ahead and not used (core.indexer.spare)
        return 0
    _die_with(parent)

    def answer(line: str) -> None:
        out.write(line.encode() + b"\n")
        out.flush()

    try:
        # the indexer made the schema (and may have deferred indexes)
        engine = db.make_engine(url, create=False, unsynced=unsynced)
    except db.DatabaseError as e:
        answer(f"error {e}")
        return 1
    # The modules' objects are frozen, so that collecting (once per batch, not every 700 new
    # containers: binding rows allocates plenty, and none of them form cycles) scans only this batch's.
    gc.freeze()
    gc.disable()
    while True:
        try:
            payload, checkpoint, chain_id, refresh_rollups = pickle.load(inp)
        except EOFError:
            return 0
        frames = [(model, pl.read_ipc_stream(io.BytesIO(data))) for model, data in payload]
        try:
            load.commit_frames(engine, chain_id, frames, checkpoint, refresh_rollups)
        except db.write_errors() as e:
            answer(f"error {db.write_failed(url, e)}")
            return 1
        answer("ok")
        del frames, payload
        gc.collect()


if __name__ == "__main__":
    sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer))
