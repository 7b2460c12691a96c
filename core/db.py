"""Engine, schema creation and bulk writes for SQLite (default), PostgreSQL and any other SQLAlchemy URL.

Bulk loads go through the DBAPI's ``executemany`` with ``ON CONFLICT DO NOTHING`` on the natural key,
inside the caller's transaction, so re-inserting an indexed range stores nothing twice and a
checkpoint written in the same transaction is never ahead of (or behind) the rows.

Everything that differs between database backends lives in this module (URL driver defaults,
connection settings, concurrent schema creation, the cross-process lock); the SQL elsewhere is
written once, in the subset SQLite and PostgreSQL share.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from core import schema


class DatabaseError(Exception):
    """The database cannot be opened or written; the message says which and what to do."""


_SQLITE_CACHE = -65536  # KiB of page cache per connection
_SQLITE_SYNC = "NORMAL"  # in WAL mode: durable at checkpoints, never corrupt
# A deferred index build (the serial end of a first catch-up, the other core idle) sorts in two
# threads: SQLite's sorter only uses its helper threads once the keys overflow its memory, which is
# the page cache, so the cache is made small while it builds. On the 12-day chain of
# bench/catchup.py (12 indexes over 360k rows) that cut the build's wall time from 2.1 to 1.7 s
# (its CPU rose from 1.8 to 2.1 s).
# Its commits do not wait for the disk either: the load's files are synced once after (_sync_files).
_SQLITE_BULK_INDEX_PRAGMAS = ("PRAGMA threads=2", "PRAGMA cache_size=-4096", "PRAGMA synchronous=OFF")


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_connection.cursor()
    # WAL lets the app read while the indexer writes; NORMAL is durable at checkpoint granularity.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={_SQLITE_SYNC}")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute(f"PRAGMA cache_size={_SQLITE_CACHE}")
    cur.close()


def _with_driver(parsed: sa.engine.URL) -> sa.engine.URL:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (the driver in requirements.txt).

    SQLAlchemy's default PostgreSQL driver is psycopg2, which is not installed, and hosting
    providers hand out ``postgres://`` URLs, which SQLAlchemy does not know at all."""
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_unsynced(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.execute("PRAGMA synchronous=OFF")


def make_engine(url: str, *, create: bool = True, unsynced: bool = False) -> Engine:
    """An engine for ``url`` with the schema created; raises DatabaseError with a one-line reason.

    ``unsynced`` (SQLite): commits and checkpoints do not wait for the disk (``synchronous=OFF``), for
    the writer of a first catch-up into an empty database (:func:`indexes_deferred`, which syncs the
    files when the load ends). A killed process loses nothing committed (the OS has the pages); an OS
    crash or power loss during that load can leave the new file corrupt (delete it and index again).
    On the 12-day chain of bench/catchup.py waiting for the disk cost the writer ~1.2 s per run."""
    try:
        parsed = _with_driver(sa.engine.make_url(url))
    except sa.exc.ArgumentError as e:
        raise DatabaseError(f"database URL is not a valid SQLAlchemy URL: {redact_db_url(url)}") from e
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            parent = Path(db).expanduser().resolve().parent
            if not parent.is_dir():
                raise DatabaseError(
                    f"cannot open database {redact_db_url(url)}: directory {parent} does not exist"
                )
    # A server can restart under a long-lived app or `--follow` indexer: test pooled connections
    # before use. (SQLite files have no connection to lose.)
    options: dict[str, Any] = {} if parsed.get_backend_name() == "sqlite" else {"pool_pre_ping": True}
    try:
        engine = sa.create_engine(parsed, **options)
    except Exception as e:  # missing driver, bad options
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise DatabaseError(f"cannot open database {redact_db_url(url)}: {type(e).__name__}: {first_line}") from e
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        if unsynced:
            sa.event.listen(engine, "connect", _sqlite_unsynced)
    try:
        if create:
            _create_schema(engine)
        else:
            with engine.connect():
                pass
    except sa.exc.SQLAlchemyError as e:
        engine.dispose()
        orig = getattr(e, "orig", None)
        reason = (str(orig).strip().splitlines() or [""])[0] if orig is not None else type(e).__name__
        raise DatabaseError(f"cannot open database {redact_db_url(url)}: {reason}") from e
    except OSError as e:  # the schema lock file beside a SQLite database (e.g. a read-only directory)
        engine.dispose()
        raise DatabaseError(f"cannot open database {redact_db_url(url)}: {e.strerror}: {e.filename}") from e
    return engine


def _create_schema(engine: Engine) -> None:
    """create_all under the database's schema lock (:func:`exclusive`).

    The app and the indexer may open an empty database at the same moment. Unlocked, one of them
    loses the race with "table … already exists" (SQLite creates table by table outside any
    transaction, so retrying can lose again on the next table under load); locked, the second waits
    and then finds every table there."""
    with exclusive(engine, "schema"):
        SQLModel.metadata.create_all(engine)
        _drop_outdated_rollups(engine)
        # create_all adds missing tables, not the indexes a newer schema gave an existing table, or
        # those a first catch-up deferred (:func:`indexes_deferred`) when its process was killed.
        _create_missing_indexes(engine, SQLModel.metadata.sorted_tables)


def _create_missing_indexes(engine: Engine, tables: Sequence[sa.Table], *, bulk: bool = False) -> None:
    """The schema's indexes of ``tables`` that the database lacks (``bulk``: after a deferred load,
    sorting in threads on SQLite). (A table of other columns, another app's, is left
    alone: writing to it names the problem.)"""
    existing = sa.inspect(engine)
    missing = []
    for table in tables:
        have = {ix["name"] for ix in existing.get_indexes(table.name)}
        columns = {c["name"] for c in existing.get_columns(table.name)}
        missing += [ix for ix in table.indexes if ix.name not in have and {c.name for c in ix.columns} <= columns]
    if not missing:
        return
    threaded = bulk and engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        for pragma in _SQLITE_BULK_INDEX_PRAGMAS if threaded else ():
            conn.exec_driver_sql(pragma)
        try:
            for index in missing:  # one transaction each: on PostgreSQL, holding several tables' locks
                index.create(conn, checkfirst=True)  # at once deadlocks with a writer (seen in tests)
                conn.commit()
        finally:
            if threaded:  # the pooled connection goes back as it came
                conn.exec_driver_sql("PRAGMA threads=0")
                conn.exec_driver_sql(f"PRAGMA cache_size={_SQLITE_CACHE}")
                conn.exec_driver_sql(f"PRAGMA synchronous={_SQLITE_SYNC}")


@contextmanager
def indexes_deferred(engine: Engine, models: Sequence[type[SQLModel]]) -> Iterator[bool]:
    """Load into ``models``' tables with their secondary indexes dropped, and build them once after.

    Only when all those tables are empty (a first catch-up into a new database); yields whether it
    deferred. Inserting a row then updates the table's key alone, not every index (``trades`` has
    four), and an index sorted once from the loaded rows is built in a fraction of what updating it
    row by row costs. Queries meanwhile are right, only slower (a catch-up's own rollup folds read
    by the key). The indexes are built when the block ends, however it ends; if the process is
    killed first, by the next one to open the database (:func:`make_engine`), which is also what
    happens when the app opens it meanwhile: the rest of the catch-up then updates them.

    Its writer may commit without waiting for the disk (``make_engine(unsynced=True)``): when the block
    ends, a SQLite database's files are flushed to disk (fsync) once, so the finished load is as
    durable as one committed in the default mode."""
    tables = [schema.table_of(m) for m in models]
    with engine.connect() as conn:
        empty = all(conn.execute(sa.select(sa.literal(1)).select_from(t).limit(1)).first() is None for t in tables)
    if not empty:
        yield False
        return
    with exclusive(engine, "schema"), engine.begin() as conn:
        for table in tables:
            for index in table.indexes:
                index.drop(conn, checkfirst=True)
    try:
        yield True
    finally:
        with exclusive(engine, "schema"):
            _create_missing_indexes(engine, tables, bulk=True)
        _sync_files(engine)


def _sync_files(engine: Engine) -> None:
    """fsync a SQLite database's file and its WAL (what unsynced commits left to the OS). A checkpoint
    with nothing left to copy syncs nothing, hence the files themselves."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or not os.path.isfile(path):  # in memory: nothing to sync
        return
    for name in (path, f"{path}-wal"):
        try:
            fd = os.open(name, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _drop_outdated_rollups(engine: Engine) -> None:
    """Rollups are derived data: when a rollup table was made by an older version (its columns a proper
    subset of the schema's, every key column among them), drop every rollup table and the rollup state,
    so the next refresh rebuilds them all from the raw rows (never a mix of old and new rollups)."""
    existing = sa.inspect(engine)
    outdated = []
    for model in schema.ROLLUP_TABLES:
        table = schema.table_of(model)
        have = {c["name"] for c in existing.get_columns(table.name)}
        want = {c.name for c in table.columns}
        if have < want and {c.name for c in table.primary_key.columns} <= have:
            outdated.append(table.name)
    if not outdated:
        return
    tables = [schema.table_of(m) for m in schema.ROLLUP_TABLES]
    with engine.begin() as conn:
        for table in tables:
            table.drop(conn, checkfirst=True)
        conn.execute(sa.delete(schema.table_of(schema.RollupState)))
        for table in tables:
            table.create(conn)


def write_errors() -> tuple[type[BaseException], ...]:
    """Errors of a database that opened but refused a write (:func:`insert_frames` uses the DBAPI cursor directly)."""
    errors: list[type[BaseException]] = [sa.exc.SQLAlchemyError, sqlite3.Error]
    try:
        import psycopg

        errors.append(psycopg.Error)
    except ImportError:
        pass
    return tuple(errors)


def write_failed(url: str, error: BaseException) -> str:
    """The one-line message for one of :func:`write_errors` raised while writing a batch to ``url``."""
    orig = getattr(error, "orig", None) or error
    reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return (f"writing to database {redact_db_url(url)} failed: {reason}: is it a marginX Analytics database of this "
            "version, on a disk with space? (nothing of this chunk was stored)")


def redact_db_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One database transaction (committed on success, rolled back on any exception)."""
    with engine.begin() as conn:
        yield conn


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one state of the database, even while the indexer commits.

    Separate statements otherwise each see the latest commit: PostgreSQL's default isolation is
    READ COMMITTED, and Python's sqlite3 opens no transaction for SELECTs. Here PostgreSQL runs
    REPEATABLE READ and SQLite an explicit read transaction (WAL keeps its snapshot); either way
    nothing is written and the transaction is rolled back at the end."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()


_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """Hold the lock ``name`` on this database, across threads and processes, while the block runs.

    PostgreSQL: a session advisory lock, held by a connection of its own. SQLite file: an flock on a
    file beside the database (``<file>-<name>.lock``). Anything else (an in-memory database, another
    backend): this process's threads only.
    """
    with _process_locks_guard:
        local = _process_locks.setdefault(f"{engine.url}|{name}", threading.Lock())
    with local:
        if engine.dialect.name == "postgresql":
            key = zlib.crc32(name.encode())  # advisory locks take a bigint key
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                conn.commit()  # the lock belongs to the session: no transaction stays open meanwhile
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            return
        path = engine.url.database if engine.dialect.name == "sqlite" else None
        if not path or path == ":memory:" or path.startswith("file:"):
            yield
            return
        import fcntl  # POSIX; imported here so that core.db still imports elsewhere

        with open(f"{path}-{name}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class CheckpointRow:
    """Where a deployment's indexing stands; written with the rows it covers."""

    chain_id: int
    deployment: str
    last_block: int
    last_block_hash: str


# Moves the checkpoint forward only: re-indexing an old range must not pull it back.
_CHECKPOINT_UPSERT = (
    "INSERT INTO checkpoints (chain_id, deployment, last_block, last_block_hash, updated_at) VALUES ({ph}) "
    "ON CONFLICT (chain_id, deployment) DO UPDATE SET last_block = excluded.last_block, "
    "last_block_hash = excluded.last_block_hash, updated_at = excluded.updated_at "
    "WHERE excluded.last_block >= checkpoints.last_block"
)


def _checked(model: type[SQLModel], frame: pl.DataFrame) -> pl.DataFrame:
    expected = schema.frame_schema(model)
    if frame.schema != expected:
        raise TypeError(
            f"frame for {schema.table_of(model).name} does not match its schema:\n"
            f"got      {dict(frame.schema)}\nexpected {dict(expected)}"
        )
    return frame


def _insert_sql(table: sa.Table, source: str) -> str:
    cols = ", ".join(f'"{c.name}"' for c in table.columns)
    keys = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
    return f'INSERT INTO "{table.name}" ({cols}) {source} ON CONFLICT ({keys}) DO NOTHING'


def _row_iter(frame: pl.DataFrame) -> Iterator[tuple[Any, ...]]:
    """The frame's rows as DBAPI parameter tuples, zipped from whole columns.

    ``frame.rows()`` builds every tuple up front (a third of the write time); zipping Python lists
    of the columns costs half as much, and the DBAPI consumes each tuple before asking for the
    next, so ``zip`` reuses one tuple object for all of them."""
    return zip(*(column.to_list() for column in frame.iter_columns()), strict=True)


def write_rows(engine: Engine, frames: Sequence[tuple[type[SQLModel], pl.DataFrame]],
               checkpoint: CheckpointRow | None = None, before: Callable[[Connection], None] | None = None,
               after: Callable[[Connection], None] | None = None) -> None:
    """Insert every frame (skipping rows whose key exists) and move the checkpoint, atomically.

    ``before`` runs first in the same transaction (e.g. to delete the rows being replaced), ``after``
    last (e.g. the rollups the new rows change, so readers see both or neither).
    """
    with engine.begin() as conn:
        if before is not None:
            before(conn)
        insert_frames(conn, frames, checkpoint)
        if after is not None:
            after(conn)


def insert_frames(conn: Connection, frames: Sequence[tuple[type[SQLModel], pl.DataFrame]],
                  checkpoint: CheckpointRow | None = None) -> None:
    """:func:`write_rows`' inserts inside the caller's transaction.

    Each frame must match :func:`core.schema.frame_schema` of its model exactly; a mismatch is a
    programming error and raises before anything is written.

    Rows go through the DBAPI's executemany on SQLAlchemy's own connection. (ADBC binds Arrow
    batches faster, but a second SQLite library in the same process breaks SQLite's POSIX locks
    and corrupted a WAL database in our tests: see sqlite.org/howtocorrupt.html §2.2.1.)
    """
    work = [(schema.table_of(m), _checked(m, f)) for m, f in frames if f.height]
    cp = (checkpoint.chain_id, checkpoint.deployment, checkpoint.last_block, checkpoint.last_block_hash,
          int(time.time())) if checkpoint else None
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    ph = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cur = dbapi.cursor()
    try:
        for table, frame in work:
            cur.executemany(_insert_sql(table, f"VALUES ({', '.join([ph] * frame.width)})"), _row_iter(frame))
        if cp:
            cur.execute(_CHECKPOINT_UPSERT.format(ph=", ".join([ph] * 5)), cp)
    finally:
        cur.close()


def upsert_frame(conn: Connection, model: type[SQLModel], frame: pl.DataFrame, *, add: Sequence[str] = (),
                 keep: Sequence[str] = (), keep_greater: Sequence[str] = ()) -> None:
    """Write ``frame``'s rows into ``model``'s table inside the caller's transaction; a row whose key
    exists replaces the stored values, except columns in ``add`` (the stored value plus the new
    one), in ``keep`` (the stored value) and in ``keep_greater`` (the greater of the two).

    The frame must match :func:`core.schema.frame_schema` of the model exactly."""
    if not frame.height:
        return
    table = schema.table_of(model)
    frame = _checked(model, frame)
    keys = [c.name for c in table.primary_key.columns]

    def value(name: str) -> str:
        stored, new = f'"{table.name}"."{name}"', f'excluded."{name}"'
        if name in add:
            return f"{stored} + {new}"
        if name in keep:
            return stored
        if name in keep_greater:
            return f"CASE WHEN {new} > {stored} THEN {new} ELSE {stored} END"
        return new

    ph = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cols = ", ".join(f'"{c.name}"' for c in table.columns)
    updates = ", ".join(f'"{c.name}" = {value(c.name)}' for c in table.columns if c.name not in keys)
    sql = (f'INSERT INTO "{table.name}" ({cols}) VALUES ({", ".join([ph] * frame.width)}) '
           f'ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {updates}')
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.executemany(sql, _row_iter(frame))
    finally:
        cur.close()


def delete_above(conn: Connection, chain_id: int, block_number: int) -> dict[str, int]:
    """Delete every row of ``chain_id`` above ``block_number`` (a reorg rewind); counts per table."""
    deleted: dict[str, int] = {}
    for model in schema.CHAIN_TABLES:
        table = schema.table_of(model)
        col = table.c.number if "number" in table.c else table.c.block_number
        res = conn.execute(sa.delete(table).where(table.c.chain_id == chain_id, col > block_number))
        deleted[table.name] = res.rowcount or 0
    return deleted


def read_frame(conn: Connection, query: sa.Select[Any] | str, frame_schema: Mapping[str, pl.DataType] | None = None,
               params: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Run a query and return a polars frame, with explicit dtypes when ``frame_schema`` is given.

    With a schema the rows are built directly (empty results keep their dtypes); without one
    polars infers them (tests and ad-hoc reads)."""
    if frame_schema is None:
        return pl.read_database(query, conn)
    statement = sa.text(query) if isinstance(query, str) else query
    rows = conn.execute(statement, dict(params or {})).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=dict(frame_schema), orient="row")
