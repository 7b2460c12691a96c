"""A shared link can carry any value. Every URL parameter the app reads, given junk, gives the nearest
valid view with a one-line warning naming the parameter, never an exception (AppTest).

Reading a link is the same on every backend (the values are checked against the markets and dates
the database holds, never sent to it as SQL), so the table-driven checks run on SQLite and the
generated junk runs on every backend."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from core import db
from core.indexer.run import ingest_stream
from tests.apptest import FIRST_PAGE, open_app
from tests.synthetic import MANIFEST, PERP, SPOT, batches, history

PARAMS = ("range", "gran", "type", "markets", "from", "to")
DELETED_MARKET = "0x" + "dd" * 20
HOSTILE = {
    "unknown": "fortnight",
    "impossible-date": "2026-02-30",
    "10kB": "7" * 10_000,
    "html": "<script>alert(1)</script><img src=x onerror=alert(2)>",
    "markdown": "![x](http://127.0.0.1:1/x.png) **[go](javascript:alert(1))**",
    "sql": "'; DROP TABLE trades; --",
    "unicode": "日本語\u202e\u200b🙂",
    "deleted-market": DELETED_MARKET,
}


def _indexed(url: str) -> str:
    ingest_stream(db.make_engine(url), MANIFEST, batches(history(5, blocks=150), [60]))
    return url


@pytest.fixture(scope="module")
def link_db(new_database: Callable[[str], str]) -> str:
    """The five-day history on this run's backend (SQLite, then PostgreSQL)."""
    return _indexed(new_database("links"))


@pytest.fixture(scope="module")
def sqlite_link_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same history in one SQLite file, for the table-driven checks."""
    return _indexed(f"sqlite:///{tmp_path_factory.mktemp('links') / 'marginx.db'}")


def opened(url: str, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]) -> AppTest:
    return open_app(url, monkeypatch, FIRST_PAGE, params)  # fails on any exception or error box


def warnings_of(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def assert_safe(warnings: list[str]) -> None:
    for w in warnings:
        assert "\n" not in w, w
        assert "<" not in w and "](" not in w and len(w) < 300, w  # the value is never echoed as markup, nor whole


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
@pytest.mark.parametrize("param", PARAMS)
def test_hostile_value_gives_a_warning_naming_the_parameter(sqlite_link_db: str, param: str, value: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    at = opened(sqlite_link_db, monkeypatch, {param: value})
    warnings = warnings_of(at)
    assert any(f"`{param}`" in w for w in warnings), warnings
    assert_safe(warnings)
    assert at.metric, "the page still shows its cards"


@pytest.mark.parametrize("link, widget, shown, warned", [
    ({"range": "fortnight"}, "range", "30d", "range"),
    ({"range": "14d"}, "range", "7d", "range"),
    ({"range": "48h"}, "range", "24h", "range"),
    ({"range": "ALL"}, "range", "All", None),
    ({"gran": "WEEK"}, "gran", "week", None),
    ({"gran": "minute"}, "gran", "day", "gran"),
    ({"type": "Perp"}, "type", "perp", None),
    ({"type": "options"}, "type", "all", "type"),
    ({"markets": f"{PERP},{DELETED_MARKET}"}, "markets", [PERP], "markets"),
    ({"markets": PERP.upper().replace("0X", "0x")}, "markets", [PERP], None),
    ({"type": "spot", "markets": PERP}, "markets", [], "markets"),
    ({"markets": DELETED_MARKET}, "markets", [], "markets"),
    ({"range": "Custom", "from": "2026-01-04", "to": "2026-01-02"}, "dates",
     (dt.date(2026, 1, 2), dt.date(2026, 1, 4)), "from"),
    ({"from": "2026-01-02", "to": "2026-01-04"}, "dates", (dt.date(2026, 1, 2), dt.date(2026, 1, 4)), None),
    ({"from": "2025-02-30", "to": "2026-01-04"}, "dates", (dt.date(2025, 2, 28), dt.date(2026, 1, 4)), "from"),
    ({"from": "2026-01-02", "to": "2026-13-45"}, "dates", (dt.date(2026, 1, 2), dt.date(2026, 12, 31)), "to"),
], ids=lambda v: str(v)[:40] if not isinstance(v, dict) else "&".join(f"{k}={x[:12]}" for k, x in v.items()))
def test_a_link_gives_the_nearest_valid_view(sqlite_link_db: str, link: dict[str, str], widget: str, shown: object,
                                             warned: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    at = opened(sqlite_link_db, monkeypatch, link)
    if widget == "dates":
        value = at.sidebar.date_input(key="dates").value
    elif widget == "markets":
        value = at.sidebar.multiselect(key="markets").value
    else:
        value = at.sidebar.segmented_control(key=widget).value
    assert value == shown
    warnings = warnings_of(at)
    if warned is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and f"`{warned}`" in warnings[0], warnings
    if widget != "dates":  # the link is written back as shown, so sharing it again gives no warning
        written = at.query_params[widget]
        assert written == (",".join(shown) if isinstance(shown, list) else shown)


def test_a_market_symbol_in_a_link_selects_it(sqlite_link_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = opened(sqlite_link_db, monkeypatch, {"markets": "<i>eth</i>-usdc"})
    assert at.sidebar.multiselect(key="markets").value == [SPOT]
    assert warnings_of(at) == []


@pytest.mark.parametrize("value", [v for k, v in HOSTILE.items() if k != "deleted-market"] + ["0x" + "ab" * 19],
                         ids=[k for k in HOSTILE if k != "deleted-market"] + ["39-bytes"])
def test_a_page_s_own_parameter_too(sqlite_link_db: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Account page reads ``address`` from the link: junk is left out with the same one-line warning."""
    at = open_app(sqlite_link_db, monkeypatch, "views/account.py", {"address": value})
    warnings = warnings_of(at)
    assert len(warnings) == 1 and "`address`" in warnings[0], warnings
    assert_safe(warnings)
    assert at.text_input(key="account_address").value == ""
    assert "address" not in at.query_params


def test_a_linked_address_opens_its_account(sqlite_link_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    trader = "0x" + "b3" * 20  # one of tests/synthetic's traders
    at = open_app(sqlite_link_db, monkeypatch, "views/account.py", {"address": trader.upper().replace("0X", "0x")})
    assert warnings_of(at) == [] and at.text_input(key="account_address").value.lower() == trader


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(link=st.dictionaries(st.sampled_from(PARAMS), st.text(max_size=200), min_size=1, max_size=len(PARAMS)))
def test_generated_links_never_break_the_page(link_db: str, link: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    at = opened(link_db, monkeypatch, link)  # no exception, no error box
    warnings = warnings_of(at)
    assert_safe(warnings)
    assert all(any(f"`{p}`" in w for p in link) for w in warnings), (link, warnings)
    assert at.metric
    # the link the app wrote back is valid: opened again it warns about nothing
    again = opened(link_db, monkeypatch, dict(at.query_params))
    assert warnings_of(again) == [], (link, dict(at.query_params))
