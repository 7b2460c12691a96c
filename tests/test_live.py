"""The dashboard follows its database: with the Overview open in a real browser, events newly sent to
a real anvil node and indexed appear on its cards by themselves, without a reload, keeping the
user's filters and scroll."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from web3 import Web3

from core.live import age_text
from tests.app_server import CARD_JS, app_server, chromium, wait_until_idle
from tests.history import History
from tests.support.indexer import index

#: the Streamlit element that scrolls the page
SCROLLER_JS = "() => document.querySelector('[data-testid=\"stMain\"]')"


def test_overview_shows_newly_indexed_events_without_a_reload(anvil_url: str, database_url: str, tmp_path: Path) -> None:
    history = History(Web3(Web3.HTTPProvider(anvil_url)), seed=11)
    history.run(15)
    manifest = history.dep.write_manifest(tmp_path / "local.json", "local")
    index(anvil_url, manifest, database_url)
    before = history.ledger.counts["Trade"]
    with app_server(database_url) as (base, _proc), chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 700})
        page.goto(f"{base}/?range=All&gran=week", wait_until="networkidle")
        wait_until_idle(page)
        page.wait_for_function(f"({CARD_JS})('Trades') === '{before:,}'", timeout=60_000)
        assert page.locator('[data-testid="stSidebar"] [data-testid="stCheckbox"]', has_text="Live").count() == 1
        page.evaluate("() => { window.__same_page = true; }")  # gone if the page reloads
        page.evaluate(f"() => {{ const s = ({SCROLLER_JS})(); s.scrollTop = 400; }}")
        scrolled = page.evaluate(f"() => ({SCROLLER_JS})().scrollTop")
        assert scrolled > 0

        history.run(20)
        index(anvil_url, manifest, database_url)
        after = history.ledger.counts["Trade"]
        assert after > before
        sent = time.monotonic()
        page.wait_for_function(f"({CARD_JS})('Trades') === '{after:,}'", timeout=30_000)
        took = time.monotonic() - sent
        wait_until_idle(page)

        assert page.evaluate("() => window.__same_page === true"), "the page was not reloaded"
        assert "range=All" in page.url and "gran=week" in page.url, page.url
        selected = page.locator('[data-testid="stSidebar"] button[role="radio"][aria-checked="true"]').all_inner_texts()
        assert "All" in selected and "week" in selected, selected
        assert abs(page.evaluate(f"() => ({SCROLLER_JS})().scrollTop") - scrolled) < 5, "scroll kept"
        freshness = page.locator('[data-testid="stSidebar"]').inner_text()
        assert re.search(r"updated (just now|\d+ s ago)", freshness), freshness
        assert page.locator('[data-testid="stException"]').count() == 0
        print(f"new events on the card {took:.1f} s after the indexer's commit")


@pytest.mark.parametrize("seconds, text", [
    (-3, "just now"), (0, "just now"), (1.9, "just now"), (2, "2 s ago"), (12.7, "12 s ago"), (119, "119 s ago"),
    (120, "2 min ago"), (7_199, "119 min ago"), (7_200, "2 h ago"), (172_799, "47 h ago"), (172_800, "2 days ago"),
    (86_400 * 1_500, "1,500 days ago"),
])
def test_a_commit_s_age_as_people_say_it(seconds: float, text: str) -> None:
    assert age_text(seconds) == text
