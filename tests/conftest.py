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
