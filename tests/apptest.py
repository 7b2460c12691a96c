"""The app through streamlit's AppTest, as a user opening it now on a given database would see it."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.synthetic import ROOT

FIRST_PAGE = "views/overview.py"


def open_app(url: str, monkeypatch: pytest.MonkeyPatch, page: str = FIRST_PAGE, params: dict[str, str] | None = None,
             timeout: float = 180, **env: str) -> AppTest:
    """app.py on the database at ``url`` (no demo build unless BUILD_DEMO is given, no RPC, no cached
    figures), with ``params`` in the URL, switched to ``page``; fails on any exception or error box."""
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("BUILD_DEMO", env.pop("BUILD_DEMO", "0"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("RPC_URL", raising=False)
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.run()
    if page != FIRST_PAGE:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at
