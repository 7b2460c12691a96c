"""Shared fixtures: a real anvil node per test that wants one, and databases on every backend.

Every test that stores rows takes its database from ``database_url`` (or, for module-wide fixtures,
from ``new_database``), so it runs once on SQLite and once on a real PostgreSQL server: a
throw-away cluster started for the session (tests/postgres.py). Without the PostgreSQL binaries the
PostgreSQL runs fail with one line saying how to get them; they are never skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from tests.anvil import run_anvil
from tests.postgres import Cluster, run_postgres

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture()
def anvil_url() -> Iterator[str]:
    """A fresh, empty anvil node for one test."""
    with run_anvil() as url:
        yield url


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """The session's PostgreSQL cluster, started the first time a test needs it."""
    with ExitStack() as stack:
        try:
            cluster: Cluster | None = stack.enter_context(run_postgres())
        except RuntimeError as e:
            cluster, reason = None, str(e)
        if cluster is None:
            pytest.fail(reason, pytrace=False)  # outside the except: one line, no chained traceback
        yield cluster


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this run of the test (module-scoped, so a module's fixtures share it)."""
    return str(request.param)


@pytest.fixture(scope="module")
def new_database(backend: str, request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """``new_database(label)`` → the URL of a fresh, empty database on this run's backend.

    PostgreSQL databases are dropped when the module ends (each is a few MB of the cluster's temp dir)."""
    made: list[tuple[Cluster, str]] = []

    def make(label: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp(label) / 'marginx.db'}"
        cluster: Cluster = request.getfixturevalue("postgres")
        made.append((cluster, cluster.new_database(label)))
        return made[-1][1]

    yield make
    for cluster, url in made:
        cluster.drop_database(url)


@pytest.fixture()
def database_url(new_database: Callable[[str], str]) -> str:
    """A fresh, empty database URL for one test, on each backend in turn."""
    return new_database("db")


#: Test files by their measured share of the suite (seconds summed over their tests, 2026-12-03, two
#: processes), longest first. With ``--dist loadfile`` each file runs whole on one process, handed out
#: in collection order: starting the long files first keeps the run from ending on one long file
#: while the other process idles. A file not listed keeps its place after these.
LONGEST_FIRST = ("test_browser.py", "test_faults.py", "test_indexer_integration.py", "test_rollup.py",
                 "test_vault.py", "test_layout.py", "test_indexer_bad_input.py", "test_api.py", "test_links.py",
                 "test_app.py", "test_vault_decision.py", "test_simulator.py", "test_live.py", "test_analyses.py",
                 "test_writer.py", "test_db.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order
