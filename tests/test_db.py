"""The database layer on every backend: URLs, concurrent schema creation, the cross-process lock, and
the same history giving the same tables and the same report on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from core import dashboard, db, schema
from core.indexer.run import ingest_stream
from core.period import Filters
from core.read import stats as read
from core.simulator import build_database
from tests.postgres import Cluster
from tests.support.tables import frames
from tests.synthetic import MANIFEST, PERP, ROOT, SPOT, batches, history


@pytest.mark.parametrize("url, driver", [
    ("postgresql://u:pw@db.example/marginx", "postgresql+psycopg"),
    ("postgres://u:pw@db.example/marginx", "postgresql+psycopg"),
    ("postgresql+psycopg://u:pw@db.example/marginx", "postgresql+psycopg"),
    ("sqlite:///x.db", "sqlite"),
])
def test_postgres_urls_use_the_installed_driver(url: str, driver: str) -> None:
    assert db._with_driver(sa.engine.make_url(url)).drivername == driver


def test_sqlite_runs_in_wal_mode_so_the_app_reads_while_the_indexer_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    engine = db.make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    # a reader sees the last committed state while a write transaction is open
    t = schema.table_of(schema.Checkpoint)
    with engine.begin() as writer:
        writer.execute(sa.insert(t).values(chain_id=1, deployment="d", last_block=5, last_block_hash="0x", updated_at=0))
        with db.make_engine(url).connect() as reader:
            assert reader.execute(sa.select(sa.func.count()).select_from(t)).scalar() == 0



def _pragmas(conn: sa.Connection) -> tuple[int, int, int]:
    return tuple(conn.execute(sa.text(f"PRAGMA {p}")).scalar_one() for p in ("synchronous", "threads", "cache_size"))


def test_only_a_first_catch_ups_writer_commits_without_waiting_for_the_disk(tmp_path: Path) -> None:
    """synchronous=OFF only where asked (the writer of a load into an empty database); the deferred index
    build's connection goes back to the pool as it came (NORMAL, no sorter threads, the usual cache)."""
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    engine = db.make_engine(url)
    with engine.connect() as conn:
        usual = _pragmas(conn)
    assert usual[0] == 1  # NORMAL
    with db.make_engine(url, create=False, unsynced=True).connect() as conn:
        assert _pragmas(conn)[0] == 0  # OFF
    with db.indexes_deferred(engine, schema.BULK_TABLES) as deferred:
        assert deferred
        ingest_stream(engine, MANIFEST, batches(history(2), [50]), parallel=False)
    held = [engine.connect() for _ in range(engine.pool.size())]  # every pooled connection, the builder's among them
    assert all(_pragmas(conn) == usual for conn in held)
    for conn in held:
        conn.close()
    assert _secondary_indexes(engine) == {str(ix.name) for m in schema.BULK_TABLES for ix in schema.table_of(m).indexes}
    engine.dispose()

def test_schema_created_concurrently(database_url: str) -> None:
    """The app and the indexer may both open an empty database first: neither may fail."""
    start, errors = threading.Barrier(4), []

    def open_it() -> None:
        start.wait()
        try:
            db.make_engine(database_url).dispose()
        except Exception as e:  # noqa: BLE001 - collected and shown by the assertion
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    engine = db.make_engine(database_url, create=False)
    assert set(sa.inspect(engine).get_table_names()) == set(SQLModel.metadata.tables)
    engine.dispose()


def test_exclusive_holds_across_processes(database_url: str, tmp_path: Path) -> None:
    """While another process holds the lock, taking it waits until that process lets go."""
    released = tmp_path / "released"
    holder = ("import sys, time; from pathlib import Path; from core import db\n"
              "with db.exclusive(db.make_engine(sys.argv[1]), 'demo-build'):\n"
              "    print('held', flush=True); time.sleep(1.5); Path(sys.argv[2]).write_text('yes')\n")
    proc = subprocess.Popen([sys.executable, "-c", holder, database_url, str(released)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with db.exclusive(db.make_engine(database_url), "demo-build"):
            assert released.exists(), "the lock was taken while another process held it"
        # another name is another lock
        with db.exclusive(db.make_engine(database_url), "something-else"):
            pass
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_exclusive_holds_across_threads(database_url: str) -> None:
    engine = db.make_engine(database_url)
    inside, overlaps = [0], []
    guard = threading.Lock()

    def work() -> None:
        with db.exclusive(engine, "demo-build"):
            with guard:
                inside[0] += 1
                overlaps.append(inside[0])
            threading.Event().wait(0.05)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert overlaps == [1, 1, 1, 1]


# --------------------------------------------------------------------------- SQLite == PostgreSQL


def reports(url: str) -> list[dict[str, Any]]:
    """core.report over the whole history, one market, and a date range."""
    engine = db.make_engine(url)
    chain = read.chain_ids(engine)[0]
    markets = read.markets(engine, chain)
    first = dashboard.protocol_stats(engine, chain, Filters())["bucket"][1]
    out = [dashboard.report(engine, chain, f) for f in (
        Filters(), Filters(markets=(markets["market"][0],)),
        Filters(start=first, end=first + 86_400))]
    engine.dispose()
    return out


@pytest.fixture(scope="module")
def both(postgres: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], tuple[str, str]]]:
    made: list[str] = []

    def urls(label: str) -> tuple[str, str]:
        made.append(postgres.new_database(label))
        return f"sqlite:///{tmp_path_factory.mktemp(label) / 'x.db'}", made[-1]

    yield urls
    for url in made:
        postgres.drop_database(url)


@pytest.mark.parametrize("build", ["synthetic", "simulator"])
def test_same_history_same_tables_and_report_on_sqlite_and_postgresql(
        build: str, both: Callable[[str], tuple[str, str]]) -> None:
    lite, pg = both(build)
    for url in (lite, pg):
        if build == "synthetic":  # hostile symbol, 1e18 raw values beyond 64 bits, every rolled-up event
            ingest_stream(db.make_engine(url), MANIFEST, batches(history(4), [30, 31, 100]))
        else:  # the demo path: crash, squeeze and every waterfall tier
            build_database(url, seed=2, days=2, trades_per_day=400, parallel=False)
    lite_tables, pg_tables = frames(lite), frames(pg)
    assert lite_tables["trades"].height > 100 and lite_tables["stats_daily"].height > 0
    if build == "synthetic":
        assert max(int(v) for v in lite_tables["trades"]["price_raw"]) > 2**63
        assert set(lite_tables["markets"]["market"]) == {PERP, SPOT}
    for name in lite_tables:
        assert lite_tables[name].schema == pg_tables[name].schema, name
        added = {"trader_totals": ["volume_usd"],  # float sums kept by adding (and taking away) commits: the backends round apart
                 "trader_pnl_daily": ["realized_pnl_usd", "funding_paid_usd", "fees_usd"]}.get(name, [])
        for column in added:
            lite_v, pg_v = lite_tables[name][column].to_list(), pg_tables[name][column].to_list()
            assert lite_v == pytest.approx(pg_v, rel=1e-9, abs=1e-9), (name, column)
        if added:
            lite_tables[name], pg_tables[name] = lite_tables[name].drop(added), pg_tables[name].drop(added)
        assert lite_tables[name].equals(pg_tables[name]), name
    assert reports(lite) == reports(pg)


def test_a_snapshot_sees_one_state_while_another_connection_commits(database_url: str) -> None:
    """db.snapshot (the reconciliation panel reads through it): a commit made meanwhile is not seen
    by its later statements, on either backend; a new snapshot sees it."""
    engine = db.make_engine(database_url)
    t = schema.table_of(schema.Block)
    row = {"chain_id": 1, "hash": "0x" + "00" * 32, "timestamp": 1}
    count = sa.select(sa.func.count()).select_from(t)
    with engine.begin() as conn:
        conn.execute(sa.insert(t).values(number=1, **row))
    with db.snapshot(engine) as snap:
        assert snap.execute(count).scalar_one() == 1
        with engine.begin() as other:
            other.execute(sa.insert(t).values(number=2, **row))
        assert snap.execute(count).scalar_one() == 1
    with db.snapshot(engine) as snap:
        assert snap.execute(count).scalar_one() == 2
    engine.dispose()


def test_an_index_added_to_the_schema_is_created_in_an_existing_database(database_url: str) -> None:
    """create_all makes missing tables only; make_engine also adds the indexes a newer schema gave a table."""
    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_blocks_time"))
    assert "ix_blocks_time" not in {ix["name"] for ix in sa.inspect(engine).get_indexes("blocks")}
    engine.dispose()
    engine = db.make_engine(database_url)
    assert "ix_blocks_time" in {ix["name"] for ix in sa.inspect(engine).get_indexes("blocks")}
    engine.dispose()


def _secondary_indexes(engine: sa.Engine) -> set[str]:
    return {ix["name"] for m in schema.BULK_TABLES for ix in sa.inspect(engine).get_indexes(schema.table_of(m).name)}


def test_a_first_catch_up_defers_the_event_tables_indexes_and_builds_them_after(database_url: str) -> None:
    """Into empty tables the indexes are dropped while rows load and exist again when the block ends,
    also when it ends by an error; a query on an indexed column then finds every row loaded meanwhile."""
    engine = db.make_engine(database_url)
    expected = {str(ix.name) for m in schema.BULK_TABLES for ix in schema.table_of(m).indexes}
    assert len(expected) >= 10 and _secondary_indexes(engine) == expected
    with pytest.raises(RuntimeError, match="node went away"), db.indexes_deferred(engine, schema.BULK_TABLES) as deferred:
        assert deferred and _secondary_indexes(engine) == set()
        ingest_stream(engine, MANIFEST, batches(history(4), [30, 100]), parallel=False)
        raise RuntimeError("node went away")
    assert _secondary_indexes(engine) == expected
    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT COUNT(*) FROM trades")).scalar_one()
        by_market = conn.execute(sa.text("SELECT COUNT(*) FROM trades WHERE market IN (:p, :s)"), {"p": PERP, "s": SPOT})
        assert total > 100 and by_market.scalar_one() == total
    with db.indexes_deferred(engine, schema.BULK_TABLES) as deferred:  # not empty any more: nothing dropped
        assert not deferred and _secondary_indexes(engine) == expected
    engine.dispose()


def test_indexes_a_killed_catch_up_left_deferred_are_built_by_the_next_process_to_open_the_database(
        database_url: str) -> None:
    engine = db.make_engine(database_url)
    expected = _secondary_indexes(engine)
    deferring = db.indexes_deferred(engine, schema.BULK_TABLES)
    assert deferring.__enter__()  # and never left: the process is killed here
    assert _secondary_indexes(engine) == set()
    engine.dispose()
    other = db.make_engine(database_url)
    assert _secondary_indexes(other) == expected
    other.dispose()
