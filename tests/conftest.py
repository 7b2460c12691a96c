"""Shared fixtures: a real anvil node per test module that wants one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.anvil import run_anvil


@pytest.fixture()
def anvil_url() -> Iterator[str]:
    """A fresh, empty anvil node for one test."""
    with run_anvil() as url:
        yield url


@pytest.fixture()
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty database URL for one test: a SQLite file under the test's temp directory.

    Tests that store rows take their database from here, so the suite can run the same tests on
    another backend by changing this one fixture."""
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'marginx.db'}"
