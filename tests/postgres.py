"""A throw-away PostgreSQL cluster for the tests: initdb into a temp dir, served on a free loopback port.

The server binaries come from Debian's ``postgresql`` package (``scripts/test.sh`` installs it). The
cluster trusts local connections, never syncs to disk (it is thrown away) and listens only on
127.0.0.1 with its socket in the temp dir. PostgreSQL refuses to run as root, so under root the
cluster belongs to the ``postgres`` user that the package creates.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.anvil import free_port

MISSING = "PostgreSQL server binaries (initdb, pg_ctl) not found: run scripts/test.sh, which installs Debian's postgresql"


def server_bindir() -> Path | None:
    """Where initdb and pg_ctl are: $PG_BINDIR, PATH, or the newest /usr/lib/postgresql/<version>/bin."""
    candidates = [os.environ.get("PG_BINDIR", "")]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)], reverse=True)
    candidates += [str(p) for p in versions]
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def _owner() -> dict[str, Any]:
    """subprocess arguments that run the server as ``postgres`` when we are root (it refuses root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root but there is no 'postgres' user to own the test cluster: "
                           "install Debian's postgresql (scripts/test.sh does)") from None
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _temp_root() -> str:
    """A temp dir parent the ``postgres`` user can traverse (root's TMPDIR may be private)."""
    base = tempfile.gettempdir()
    if os.geteuid() == 0 and any(not os.stat(p).st_mode & 0o001 for p in [base, *map(str, Path(base).parents)]):
        base = "/tmp"
    return base


class Cluster:
    """A running server; ``new_database()`` gives the URL of a fresh, empty database on it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.admin_url = f"postgresql+psycopg://postgres@{host}:{port}/postgres"
        self._admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self._names = itertools.count(1)

    def new_database(self, label: str = "t") -> str:
        name = f"{re.sub(r'[^a-z0-9_]', '_', label.lower())[:40]}_{next(self._names)}"
        with self._admin.connect() as conn:
            # FILE_COPY: copying the small template is faster than WAL-logging it block by block.
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY'))
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{name}"

    def drop_database(self, url: str) -> None:
        """Drop a database made by new_database, closing whatever connections engines still pool to it."""
        name = sa.engine.make_url(url).database
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def dispose(self) -> None:
        self._admin.dispose()


@contextmanager
def run_postgres() -> Iterator[Cluster]:
    """initdb + start a cluster on a free 127.0.0.1 port; stops it and deletes its files on exit."""
    bindir = server_bindir()
    if bindir is None:
        raise RuntimeError(MISSING)
    owner = _owner()
    root = Path(tempfile.mkdtemp(prefix="marginx-pg-", dir=_temp_root()))
    data = root / "data"
    if owner:
        os.chown(root, owner["user"], owner["group"])

    def run(*args: str) -> None:
        proc = subprocess.run([str(bindir / args[0]), *args[1:]], cwd=root, capture_output=True, text=True, check=False,
                              timeout=120, **owner)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise RuntimeError(f"{args[0]} failed: {detail[-1] if detail else proc.returncode}")

    port = free_port()
    run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB")
    try:
        try:
            run("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "-t", "60", "start")
        except RuntimeError as e:
            log = root / "server.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise RuntimeError(f"{e}{' (' + tail[0] + ')' if tail else ''}") from None
        cluster = Cluster("127.0.0.1", port)
        try:
            yield cluster
        finally:
            cluster.dispose()
    finally:
        if (data / "postmaster.pid").exists():
            # immediate: nothing to keep, and open test connections must not hold the shutdown up
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           cwd=root, capture_output=True, timeout=60, check=False, **owner)
            deadline = time.monotonic() + 10
            while (data / "postmaster.pid").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)
