"""The writer process's start, and one started ahead: a catch-up's writer imports while this one does.

:class:`~core.indexer.writer.BatchWriter` commits in a second process, whose imports (polars,
SQLAlchemy, the schema: ~1 s of CPU) used to start with the first range, on the core the fetch and
decode needed. ``python -m core.indexer`` calls :func:`prestart` once its flags are read, before
its own imports (~1.3 s on one core, the other idle), so the two import side by side; the first
``BatchWriter`` takes the process (:func:`take`) and uses it or, if it needs none, stops it. An
unused one is stopped when the CLI ends (:func:`discard`).

Only the standard library is imported here, so that the start really is ahead of the imports.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import IO

from core.config import ROOT


@dataclass
class Spawned:
    """A writer process waiting for its first message (the database URL), and the file its stderr goes to."""

    proc: subprocess.Popen[bytes]
    errors: IO[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.errors.close()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


_ahead: Spawned | None = None


def spawn() -> Spawned:
    """Start ``python -m core.indexer.writer`` (one polars thread, in a session of its own: see the writer's doc)."""
    env = dict(os.environ, POLARS_MAX_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "core.indexer.writer"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=errors, cwd=ROOT, env=env, start_new_session=True)
    return Spawned(proc, errors)


def shareable_sqlite(database: str | None) -> bool:
    """Whether a second process can open the SQLite database ``database`` (a file path: not in memory)."""
    return bool(database) and database != ":memory:" and not str(database).startswith("file:")


def prestart(database_url: str) -> None:
    """Start a writer process now for a run that may catch up into ``database_url`` (not for a SQLite
    database in memory, which only this process can write)."""
    global _ahead
    scheme, _, rest = database_url.partition("://")
    if _ahead is not None or (scheme.startswith("sqlite") and not shareable_sqlite(rest.split("?")[0][1:])):
        return
    _ahead = spawn()


def take() -> Spawned | None:
    """The process :func:`prestart` started, if it is still waiting (once: the caller owns it)."""
    global _ahead
    ahead, _ahead = _ahead, None
    if ahead is not None and ahead.proc.poll() is not None:
        ahead.stop()
        return None
    return ahead


def discard() -> None:
    """Stop the process :func:`prestart` started if nothing took it."""
    ahead = take()
    if ahead is not None:
        ahead.stop()
