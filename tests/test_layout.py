"""Layout in the real browser (#18): every page at 1440 px and at a 390 px phone shows formatted axes,
whole card values, no sideways scroll and no error box. One server, one browser, all pages; the
screenshots go to tests/artifacts/layout-<page>-<width>.png.

The data is a small simulated demo (two days, a few thousand trades a day): its volumes reach tens of
millions of dollars, so an unformatted money axis would print seven-digit numbers (20,000,000).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from core import db
from tests.app_server import app_server, chromium
from tests.synthetic import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
WIDTHS = (1440, 390)
SEVEN_DIGITS = re.compile(r"\d{7,}")
SEPARATORS = re.compile(r"[,\s\u00a0\u202f'.]")

#: JavaScript: what changes while a page is still being drawn: elements, charts and drawn charts,
#: placeholders of elements whose code is still loading (skeletons), stale elements, a script run, the HTML's size.
PROGRESS = """() => {
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  return [document.querySelectorAll('[data-testid="stElementContainer"]').length, charts.length,
          charts.filter(c => c.querySelector('svg, canvas')).length,
          document.querySelectorAll('[data-testid^="stSkeleton"], [data-testid="stAppSkeleton"]').length,
          document.querySelectorAll('[data-stale="true"]').length,
          !!document.querySelector('[data-testid="stStatusWidget"]'),
          document.querySelector('[data-testid="stMain"]').innerHTML.length];
}"""

#: JavaScript: what the checks read off the page.
MEASURE = """() => {
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  return {
    charts: charts.length,
    canvases: charts.filter(c => c.querySelector('canvas')).length,
    axisLabels: charts.flatMap(c => [...c.querySelectorAll('.role-axis-label text')].map(t => t.textContent)),
    chartTexts: charts.flatMap(c => [...c.querySelectorAll('svg text')].map(t => t.textContent)),
    cards: [...document.querySelectorAll('[data-testid="stMetricValue"]')].map(v => ({
      text: v.innerText.trim(),
      cut: [v, ...v.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1),  // CSS ellipsis is no text
      top: Math.round(v.closest('[data-testid="stMetric"]').getBoundingClientRect().top)})),
    chartWidths: charts.map(c => Math.round(c.getBoundingClientRect().width)),
    sidebarRight: (s => s ? Math.round(s.getBoundingClientRect().right) : 0)(document.querySelector('[data-testid="stSidebar"]')),
    errors: document.querySelectorAll('[data-testid="stException"], [data-testid="stAlertContentError"]').length,
    pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth,
    contentWidth: main ? main.scrollWidth : 0, contentBox: main ? main.clientWidth : 0,
    height: document.querySelector('[data-testid="stMain"]').scrollHeight,
  };
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The app on a fresh two-day demo database; yields (base URL, an account that traded)."""
    from core.simulator import build_database

    url = f"sqlite:///{tmp_path_factory.mktemp('layout') / 'marginx.db'}"
    engine = db.make_engine(url)
    build_database(engine, seed=1, days=2, trades_per_day=3_000)
    with engine.connect() as conn:
        account = str(conn.execute(sa.text("SELECT maker FROM trades GROUP BY maker ORDER BY COUNT(*) DESC LIMIT 1")).scalar_one())
    engine.dispose()
    with app_server(url) as (base, _proc):
        yield base, account


class ScriptRuns:
    """Counts the app's finished script runs from its websocket messages: the one sure sign a page has
    been computed (a busy machine can pause between elements longer than any fixed wait)."""

    def __init__(self, page: Any) -> None:
        self.finished = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload: str | bytes) -> None:
        if isinstance(payload, str):
            return
        msg = ForwardMsg()
        msg.ParseFromString(bytes(payload))
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
            self.finished += 1  # a whole run; fragment runs (the sidebar's Live refresh) are not counted


def _settle(page: Any, timeout_s: float = 90) -> dict[str, Any]:
    """Wait until the page has stopped changing (every chart drawn, no skeleton, nothing stale, the
    same elements and HTML over two polls 250 ms apart), then measure it."""
    deadline, last, same = time.monotonic() + timeout_s, None, 0
    while same < 2:
        assert time.monotonic() < deadline, f"the page kept changing: {last}"
        page.wait_for_timeout(250)
        progress = page.evaluate(PROGRESS)
        done = progress[1] == progress[2] and not any(progress[3:6])
        same = same + 1 if done and progress == last else 0
        last = progress
    measured: dict[str, Any] = page.evaluate(MEASURE)
    return measured


def _open(page: Any, runs: ScriptRuns, url: str, timeout_s: float = 120) -> dict[str, Any]:
    """Load ``url``, wait for its script run to finish and the page to settle, and measure it."""
    before, deadline = runs.finished, time.monotonic() + timeout_s
    page.goto(url, wait_until="domcontentloaded")
    while runs.finished == before:
        assert time.monotonic() < deadline, f"{url}: no script run finished in {timeout_s} s"
        page.wait_for_timeout(100)
    return _settle(page)


def _at_width(page: Any, width: int) -> dict[str, Any]:
    """The loaded page at another window width (Streamlit collapses its sidebar below 768 px)."""
    page.set_viewport_size({"width": width, "height": 900})
    return _settle(page)


def _screenshot(page: Any, path: Path, width: int, height: int) -> None:
    """The whole page: the viewport grown to the content (Streamlit scrolls inside its main block)."""
    page.set_viewport_size({"width": width, "height": min(max(height, 900), 8_000)})
    page.wait_for_timeout(200)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": width, "height": 900})


def _problems(name: str, width: int, m: dict[str, Any]) -> list[str]:
    out = []
    if m["errors"]:
        out.append(f"{m['errors']} error box(es)")
    if m["canvases"]:
        out.append(f"{m['canvases']} chart(s) drawn on canvas: their axis text cannot be read")
    raw = [t for t in m["axisLabels"] if SEVEN_DIGITS.search(SEPARATORS.sub("", t))]
    if raw:
        out.append(f"unformatted axis labels {raw[:5]}")
    cut_text = [t for t in m["chartTexts"] if t.endswith("…")]
    if cut_text:
        out.append(f"chart text cut {cut_text[:5]}")
    cut = [c["text"] for c in m["cards"] if c["cut"] or "…" in c["text"]]
    if cut:
        out.append(f"card values cut {cut}")
    if width < 600:
        if m["pageWidth"] > m["viewport"] or m["contentWidth"] > m["contentBox"] + 1:
            out.append(f"scrolls sideways: page {m['pageWidth']} px, content {m['contentWidth']} px in {m['viewport']} px")
        if m["sidebarRight"] > 0:
            out.append("the sidebar is open")
        narrow = [w for w in m["chartWidths"] if w < 0.9 * m["contentBox"]]
        if narrow:
            out.append(f"charts narrower than the page: {narrow} px of {m['contentBox']} px")
    return [f"{name} at {width} px: {p}" for p in out]


#: Pages by URL path ("" is the Overview), each its own test; any other page of the navigation is
#: checked too (test_every_other_navigation_page), so a new page is covered before it is listed here.
PAGES = ["", "markets", "liquidations", "traders", "revenue", "risk", "buffers", "account", "vault", "indexed"]


@pytest.fixture(scope="module")
def measured(server: tuple[str, str]) -> dict[str, Any]:
    """Every page loaded once at 1440 px and measured, then narrowed to 390 px and measured again;
    the Overview also opened in a phone-sized window. Screenshots of each go to tests/artifacts."""
    base, account = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seen: dict[str, Any] = {}

    def keep(page: Any, key: str, width: int, m: dict[str, Any]) -> None:
        _screenshot(page, ARTIFACTS / f"layout-{key}-{width}.png", width, m["height"])
        seen[f"{key}-{width}"] = m

    with chromium() as browser:
        phone = browser.new_page(viewport={"width": 390, "height": 900})
        keep(phone, "overview-phone", 390, _open(phone, ScriptRuns(phone), f"{base}/?range=All"))
        phone.close()
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        runs = ScriptRuns(page)
        first = _open(page, runs, f"{base}/?range=All")  # a session starts on the default page
        seen["navigation"] = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stSidebarNav"] a')]
          .map(a => new URL(a.href).pathname.replace(/^\\//, ''))""")
        for path in seen["navigation"]:
            name = path or "overview"
            query = f"?range=All&address={account}" if path == "account" else "?range=All"
            keep(page, name, 1440, first if not path else _open(page, runs, f"{base}/{path}{query}"))
            keep(page, name, 390, _at_width(page, 390))
            page.set_viewport_size({"width": 1440, "height": 900})
    return seen


def test_the_listed_pages_are_in_the_navigation(measured: dict[str, Any]) -> None:
    assert measured["navigation"][0] == "" and set(PAGES) <= set(measured["navigation"]), measured["navigation"]


def test_every_other_navigation_page(measured: dict[str, Any]) -> None:
    """The pages of the navigation not in PAGES pass the same checks as test_page_at_1440_and_390_px."""
    others = [p for p in measured["navigation"] if p not in PAGES]
    problems = [p for path in others for width in WIDTHS for p in _problems(path, width, measured[f"{path}-{width}"])]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", PAGES, ids=[p or "overview" for p in PAGES])
def test_page_at_1440_and_390_px(measured: dict[str, Any], path: str) -> None:
    """Formatted axes, whole card values and chart texts, no error box; at 390 px also no sideways
    scroll, the sidebar collapsed and charts the page's width."""
    name = path or "overview"
    problems = [p for width in WIDTHS for p in _problems(name, width, measured[f"{name}-{width}"])]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("key", ["overview-1440", "overview-390", "overview-phone-390"])
def test_overview_checks_read_cards_and_money_axes(measured: dict[str, Any], key: str) -> None:
    """The checks above read something: the Overview's ten cards and compact money axis labels ($20M)."""
    overview = measured[key]
    assert _problems(key, int(key.rsplit("-", 1)[1]), overview) == []
    assert len(overview["cards"]) == 10 and overview["charts"] >= 6, overview
    money = [t for t in overview["axisLabels"] if t.startswith("$") and t[-1] in "KMB"]
    assert money, f"no compact money axis labels in {overview['axisLabels'][:20]}"


@pytest.mark.parametrize("key", ["overview-390", "overview-phone-390", "liquidations-390"])
def test_cards_two_a_row_on_a_phone(measured: dict[str, Any], key: str) -> None:
    tops = [c["top"] for c in measured[key]["cards"]]
    assert len(tops) >= 4 and tops[0] == tops[1] < tops[2] == tops[3], tops


#: Shared links opened as a session's first request, hostile values included (URL-encoded as a browser sends them).
DEEP_LINKS = ["risk?range=%27%3BDROP%20TABLE%20trades%3B--&gran=decade", "account?address=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
              "markets?range=All"]


@pytest.mark.parametrize("link", DEEP_LINKS, ids=[link.split("?")[0] for link in DEEP_LINKS])
def test_a_deep_link_as_a_session_s_first_request(server: tuple[str, str], measured: dict[str, Any], link: str) -> None:
    """A shared link opened in a new session runs the app (its data source and navigation), not the
    page file on its own: the sidebar lists the navigation's pages and the page shows its cards."""
    base, _account = server
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        m = _open(page, ScriptRuns(page), f"{base}/{link}")
        listed = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stSidebarNav"] a')]
          .map(a => new URL(a.href).pathname.replace(/^\\//, ''))""")
        body = page.inner_text("body")
        scripts = page.evaluate("""() => document.querySelectorAll('[data-testid="stMain"] script').length""")
    assert listed == measured["navigation"], listed
    assert "Nothing indexed yet" not in body and scripts == 0, body[:500]
    assert m["cards"] or link.startswith("account"), body[:500]
