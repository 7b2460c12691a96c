"""The writer process (core/indexer/writer.py): batches committed there equal batches committed here;
a refused write or a dead writer is one clear error with nothing after the last good batch stored;
the writer never outlives the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import db, rollup
from core.indexer import load, spare
from core.indexer.decode import decode_chunk, logs_to_frame
from core.indexer.writer import BatchWriter, shareable
from tests.support.tables import dump
from tests.synthetic import MANIFEST, ROOT, batches, history

HIST = history(5, blocks=120)
CUTS = [10, 30, 50, 70, 90, 110]


def commit_all(writer: BatchWriter, engine: sa.Engine, cuts: list[int] = CUTS, *, stop_after: int | None = None) -> None:
    """Decode the history's batches here and hand them to ``writer``, as the indexer does."""
    markets: dict[str, str] = {}
    for n, (logs, blocks, checkpoint) in enumerate(batches(HIST, cuts)):
        if stop_after is not None and n == stop_after:
            return
        decoded = decode_chunk(logs_to_frame(logs), blocks, MANIFEST, markets)
        writer.commit(chain_id=MANIFEST.chain_id, deployment=MANIFEST.name, decoded=decoded, blocks=blocks,
                      checkpoint=checkpoint, refresh_rollups=True)
        markets.update(decoded.new_markets)


def checkpoint_of(url: str) -> tuple[int, str] | None:
    with db.make_engine(url).connect() as conn:
        return load.read_checkpoint(conn, MANIFEST.chain_id, MANIFEST.name)


def test_batches_committed_by_the_writer_process_equal_batches_committed_here(new_database: Callable[[str], str]) -> None:
    here, there = new_database("here"), new_database("there")
    engine = db.make_engine(here)
    with BatchWriter(engine, parallel=False) as writer:
        commit_all(writer, engine)
    assert writer.handed_over == 0
    engine = db.make_engine(there)
    with BatchWriter(engine) as writer:
        commit_all(writer, engine)
    assert writer.committed_here == 1 and writer.handed_over == len(CUTS)  # the first here, the rest there
    assert dump(there) == dump(here)
    assert checkpoint_of(there) == checkpoint_of(here) is not None
    started = new_database("started")
    engine = db.make_engine(started)
    with BatchWriter(engine, expect_many=True) as writer:  # started at once: every batch goes there, the first too
        commit_all(writer, engine)
    assert writer.committed_here == 0 and writer.handed_over == len(CUTS) + 1
    assert dump(started) == dump(here)


def test_a_one_batch_run_starts_no_process(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    with BatchWriter(engine) as writer:
        commit_all(writer, engine, [])
    assert writer.committed_here == 1 and writer.handed_over == 0
    assert writer._proc is None


def test_databases_another_process_cannot_open_are_written_here() -> None:
    assert not shareable(db.make_engine("sqlite://"))
    engine = db.make_engine("sqlite://")
    with BatchWriter(engine) as writer:
        assert not writer.parallel


def test_a_refused_write_is_one_line_and_nothing_after_the_last_good_batch_is_stored(tmp_path: Path) -> None:
    """Batch 2 and later go to the writer; the trades table is swapped for another app's between
    batch 1 and the rest, so the writer's first batch fails: the error is the in-process path's
    one line, and the database holds batch 1 with its checkpoint, nothing of the rest."""
    url = f"sqlite:///{tmp_path / 'refused.db'}"
    engine = db.make_engine(url)
    writer = BatchWriter(engine)
    first = next(batches(HIST, CUTS))
    decoded = decode_chunk(logs_to_frame(first[0]), first[1], MANIFEST, {})
    writer.commit(chain_id=MANIFEST.chain_id, deployment=MANIFEST.name, decoded=decoded, blocks=first[1],
                  checkpoint=first[2], refresh_rollups=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE trades RENAME TO trades_mine")
        conn.exec_driver_sql("CREATE TABLE trades (id INTEGER PRIMARY KEY, note TEXT)")
    with pytest.raises(db.DatabaseError) as e, writer:
        for logs, blocks, checkpoint in list(batches(HIST, CUTS))[1:]:
            decoded = decode_chunk(logs_to_frame(logs), blocks, MANIFEST, {})
            writer.commit(chain_id=MANIFEST.chain_id, deployment=MANIFEST.name, decoded=decoded, blocks=blocks,
                          checkpoint=checkpoint, refresh_rollups=True)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"writing to database {url} failed: no such column: ")
    assert message.endswith("(nothing of this chunk was stored)")
    assert checkpoint_of(url) == first[2]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM trades").scalar() == 0
        assert conn.exec_driver_sql("SELECT max(number) FROM blocks").scalar() == first[2][0]
        assert conn.exec_driver_sql("SELECT count(*) FROM trades_mine").scalar() > 0


def test_a_writer_that_dies_is_a_clear_error_and_the_database_stays_consistent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'died.db'}"
    engine = db.make_engine(url)
    writer = BatchWriter(engine)
    commit_all(writer, engine, stop_after=3)
    writer.drain()
    committed = checkpoint_of(url)
    assert writer._proc is not None
    writer._proc.kill()
    with pytest.raises(db.DatabaseError, match="the writer process stopped unexpectedly .*run the indexer again to resume"):
        with writer:
            commit_all(writer, engine)
    assert checkpoint_of(url) == committed
    # what is stored is whole: resuming over everything ends equal to one uninterrupted run
    with BatchWriter(engine) as again:
        commit_all(again, engine)
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    ref_engine = db.make_engine(reference)
    with BatchWriter(ref_engine, parallel=False) as once:
        commit_all(once, ref_engine)
    rollup.refresh(engine, MANIFEST.chain_id)
    rollup.refresh(ref_engine, MANIFEST.chain_id)
    assert dump(url) == dump(reference)


KILLED_PARENT = """
import signal, sys, time
signal.signal(signal.SIGINT, lambda *_: None)  # this stand-in for the indexer carries on after Ctrl-C
sys.path.insert(0, {root!r})
from core import db
from core.indexer.writer import BatchWriter
from tests.test_writer import commit_all
engine = db.make_engine({url!r})
writer = BatchWriter(engine)
commit_all(writer, engine, stop_after=3)
print(writer._proc.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"  # a zombie has died
    except FileNotFoundError:
        return False


def test_the_writer_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """SIGKILL the indexer: the writer must not go on committing on its own (a restarted run would
    race it), nor linger. Ctrl-C, sent to the whole process group by a terminal, leaves it alone:
    the indexer decides when to stop."""
    url = f"sqlite:///{tmp_path / 'orphan.db'}"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PARENT.format(root=str(ROOT), url=url)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        assert _alive(pid)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.5)
        assert _alive(pid), "Ctrl-C to the process group stopped the writer"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while _alive(pid):
            assert time.monotonic() < deadline, "the writer outlived the indexer"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_writer_started_ahead_commits_the_batches_and_an_unused_one_is_stopped(new_database: Callable[[str], str]) -> None:
    """core.indexer.spare: the CLI starts a writer before its imports; the first BatchWriter uses that
    very process (no second one), and a writer nobody took is stopped, never left behind."""
    url = new_database("ahead")
    engine = db.make_engine(url)
    spare.prestart(url)
    ahead = spare._ahead
    assert ahead is not None and ahead.proc.poll() is None
    with BatchWriter(engine, expect_many=True) as writer:
        assert writer._proc is ahead.proc  # taken, not a second process
        commit_all(writer, engine)
    assert writer.handed_over == len(CUTS) + 1 and ahead.proc.returncode == 0
    here = new_database("here")
    with BatchWriter(db.make_engine(here), parallel=False) as writer:
        commit_all(writer, db.make_engine(here))
    assert dump(url) == dump(here)
    spare.prestart(url)
    unused = spare._ahead
    assert unused is not None
    with BatchWriter(engine) as writer:  # takes it; a one-batch run needs no process and stops it
        commit_all(writer, engine, cuts=[])
    assert writer.handed_over == 0 and unused.proc.poll() is not None and spare._ahead is None
    spare.prestart(url)
    left = spare._ahead
    assert left is not None
    spare.discard()
    assert left.proc.poll() is not None and spare._ahead is None


def test_no_writer_is_started_ahead_for_a_database_only_this_process_can_open() -> None:
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite+pysqlite:///file:x?mode=memory&uri=true"):
        spare.prestart(url)
        assert spare.take() is None, url
