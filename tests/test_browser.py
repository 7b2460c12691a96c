"""One real end-to-end check: `streamlit run app.py` in headless Chromium, every page shows numbers
and charts and no error box. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from core import db
from core.indexer.run import ingest_stream
from tests.app_server import app_server
from tests.synthetic import MANIFEST, ROOT, batches, history

ARTIFACTS = ROOT / "tests" / "artifacts"
PAGES = {"overview": "", "markets": "markets", "liquidations": "liquidations", "traders": "traders", "indexed": "indexed"}


@pytest.fixture(scope="module")
def server(new_database: Callable[[str], str]) -> Iterator[str]:
    url = new_database("browser")
    ingest_stream(db.make_engine(url), MANIFEST, batches(history(9, blocks=200), []))
    with app_server(url) as (base, _proc):
        yield base


def test_every_page_in_a_real_browser(server: str, backend: str) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is installed by scripts/test.sh"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        for name, path in PAGES.items():
            page.goto(f"{server}/{path}?range=All", wait_until="networkidle")
            page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=60_000)
            page.wait_for_function('!document.querySelector(\'[data-testid="stStatusWidget"]\')', timeout=60_000)
            # wait for what the page must end up showing rather than for a fixed time
            ready = '[data-testid="stAlertContentSuccess"]' if name == "indexed" else \
                '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
            page.wait_for_selector(ready, timeout=60_000)
            if name == "overview":
                page.wait_for_function('document.querySelectorAll(\'[data-testid="stMetricValue"]\').length >= 10',
                                       timeout=60_000)
            page.wait_for_timeout(1000)  # let Vega finish drawing before the screenshot
            suffix = "" if backend == "sqlite" else f"-{backend}"
            page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"), full_page=True)
            assert page.locator('[data-testid="stException"]').count() == 0, name
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0, name
            text = page.locator('[data-testid="stMain"]').inner_text()
            assert any(ch.isdigit() for ch in text), f"{name} shows numbers"
            if name == "overview":
                values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
                assert len(values) == 10 and any(v.startswith("$") and v != "$0.00" for v in values), values
            if name != "indexed":
                charts = page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg')
                assert charts.count() >= 2, f"{name} draws charts"
            else:
                assert "pass" in text and "FAIL" not in text, "reconciliation passes"
        browser.close()
