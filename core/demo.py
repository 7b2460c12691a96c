"""The embedded default: a seeded demo history, built into an empty database in the background.

A newcomer's first page must not wait for the whole history, so the build runs in a process of its
own (``python -m core.demo``, on the ``DATABASE_URL`` of its environment), started at most once per app process and database by
:func:`start_build`. It commits the history batch by batch (about a simulated day each) with its
rollups, so the pages show what is built while the rest lands, and the server stays responsive
(the build's CPU is not in its GIL). Builds of one database are serialised across processes and
replicas by ``db.exclusive``: a second app process's build waits for the first and then finds the
history there. Progress is read from the database itself (how far its newest block reached), so
every session of every process shows the same figure.

The first batch is small (a few simulated hours), so a newcomer's first page has cards and charts
in seconds; the rest comes a day at a time. This module imports nothing heavy at the top: the app
starts the build (:func:`start_configured`) before its own imports, and the build process decides
whether there is anything to build.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import config

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEMO_DEPLOYMENT = "demo"
DEMO_SEED = 1
#: Logs per committed batch: about one simulated day of the default history, so the first day
#: shows within seconds and the pages fill in day by day.
BATCH_LOGS = 30_000
#: Logs of the first batch: the deployment and about three simulated hours, the first cards' data.
FIRST_BATCH_LOGS = 2_000
#: A demo whose newest block is this close to its last simulated second is complete; one that
#: stopped earlier (its build was killed) is rebuilt by the next build.
COMPLETE_WITHIN_S = 3_600
ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger(__name__)


def is_empty(engine: Engine) -> bool:
    """True when nothing has been indexed into this database yet."""
    import sqlalchemy as sa

    from core import schema

    t = schema.table_of(schema.Checkpoint)
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 0


def is_demo(engine: Engine) -> bool:
    import sqlalchemy as sa

    from core import schema

    t = schema.table_of(schema.Checkpoint)
    with engine.connect() as conn:
        names = {str(n) for (n,) in conn.execute(sa.select(t.c.deployment))}
    return names == {DEMO_DEPLOYMENT}


def span(days: int) -> tuple[int, int]:
    """[start, end) in UTC seconds of the demo history of ``days`` days."""
    # imported here: the simulator package is heavy, and an app on an empty database starts the
    # build before it needs anything of it
    from core.simulator.params import DEFAULT_START

    start = int(DEFAULT_START.timestamp())
    return start, start + days * 86_400


def _newest_block_time(engine: Engine) -> int | None:
    import sqlalchemy as sa

    from core import schema

    b = schema.table_of(schema.Block)
    with engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.max(b.c.timestamp))).scalar()
    return None if value is None else int(value)


def built_fraction(engine: Engine, days: int) -> float:
    """How much of the ``days``-day demo history the database holds, 0..1 (by its newest block)."""
    newest = _newest_block_time(engine)
    start, end = span(days)
    return 0.0 if newest is None else min(1.0, max(0.0, (newest - start) / (end - start)))


def is_complete(engine: Engine, days: int) -> bool:
    """True when the database holds the demo history of at least ``days`` days, to its end."""
    newest = _newest_block_time(engine)
    return is_demo(engine) and newest is not None and newest >= span(days)[1] - COMPLETE_WITHIN_S


def ensure_demo(engine: Engine, days: int) -> bool:
    """Build the demo history if the database is empty (or holds a demo cut short); True if this call built it.

    One build per database: concurrent callers (other sessions, other app processes or replicas)
    wait for the first and then find the data there. Rollups are refreshed after every committed
    batch, so what a page reads is as far as the rows.
    """
    from core import db

    with db.exclusive(engine, "demo-build"):
        if is_empty(engine):
            replace = False
        elif is_demo(engine) and not is_complete(engine, days):
            replace = True  # a build that was killed midway: nobody holds the lock, so nobody is still at it
        else:
            return False
        from core import rollup
        from core.simulator.build import build_database
        from core.simulator.chain import CHAIN_ID

        def after_batch(_fraction: float, _message: str) -> None:
            rollup.refresh(engine, CHAIN_ID)

        build_database(engine, seed=DEMO_SEED, days=days, progress=after_batch, batch_logs=BATCH_LOGS,
                       first_batch_logs=FIRST_BATCH_LOGS, replace_existing=replace)
        return True


@dataclass
class Build:
    """The background build of one database, as this process started it."""

    url: str
    days: int
    started: float
    finished: float | None = None
    built: bool | None = None  # None while running; then whether that process built (False: it was there)
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.finished is None


_builds: dict[str, Build] = {}
_builds_guard = threading.Lock()


def current_build(url: str) -> Build | None:
    """The build this process started for the database at ``url`` (running or finished), if any."""
    with _builds_guard:
        return _builds.get(url)


def start_build(url: str, days: int) -> Build:
    """The background build of the database at ``url``, started unless this process already did.

    The build process is started and waited for by a thread that lives as long as it (its
    parent-death signal follows the thread that started it, so not a short-lived script thread)."""
    with _builds_guard:
        build = _builds.get(url)
        if build is None:
            build = _builds[url] = Build(url, days, time.monotonic())
            threading.Thread(target=_supervise, args=(build,), name="demo-build", daemon=True).start()
    return build


def start_configured() -> Build | None:
    """This process's background build of the configured database (DATABASE_URL, DEMO_DAYS), started
    unless it already was; None with BUILD_DEMO off or an invalid DEMO_DAYS (the app says why).

    The app calls it first thing, before its own imports, without looking at the database: the
    build process finds out whether there is anything to build (on a database that needs none it
    exits after ~1 s of CPU, once per app process), so a newcomer's build starts seconds sooner."""
    if not config.build_demo():
        return None
    try:
        days = config.demo_days()
    except ValueError:
        return None
    return start_build(config.database_url(), days)


def _supervise(build: Build) -> None:
    # the URL goes in the environment, not the command line, where any local user could read its password
    env = dict(os.environ, DATABASE_URL=build.url, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.run([sys.executable, "-m", "core.demo", "--parent", str(os.getpid()), str(build.days)],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errors, check=False)
            errors.seek(0)
            lines = errors.read().decode("utf-8", errors="replace").strip().splitlines()
            out = proc.stdout.decode("utf-8", errors="replace").split()
            if proc.returncode != 0:
                build.error = lines[-1] if lines else f"the build process stopped with exit code {proc.returncode}"
            build.built = out[:1] == ["built"]
        except OSError as e:
            build.error = f"cannot start the build process: {e}"
        finally:
            build.finished = time.monotonic()
    log.info("demo build of %s days: %s in %.1f s", build.days,
             build.error or ("built" if build.built else "already there"), build.finished - build.started)


def _die_with(parent: int) -> None:
    """Stop, with the simulator process the build starts, when the app process dies (Linux): the
    build leads a process group of its own, which the worker joins, and the parent-death signal
    kills that group (the worker does not stop by itself when its reader goes)."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    if os.getpgrp() == os.getpid():  # never the group of whoever started it
        signal.signal(signal.SIGTERM, lambda _signo, _frame: os.killpg(0, signal.SIGKILL))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str]) -> int:
    """``python -m core.demo [--parent PID] [DAYS]``: build the demo into the configured database
    (DATABASE_URL; DAYS defaults to DEMO_DAYS) if it is empty; prints ``built``, ``present`` or ``off``
    (BUILD_DEMO=0). With ``--parent`` the build dies with that process."""
    if argv[:1] == ["--parent"]:
        _die_with(int(argv[1]))
        argv = argv[2:]
    from core import db

    try:
        days = int(argv[0]) if argv else config.demo_days()
        if not config.build_demo():
            print("off", flush=True)
            return 0
        built = ensure_demo(db.make_engine(config.database_url()), days)
    except (db.DatabaseError, ValueError) as e:
        print(f"cannot build the demo: {e}", file=sys.stderr)
        return 1
    print("built" if built else "present", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
