"""Every page through streamlit's AppTest on small fixture databases (no browser, no node)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from core import db, demo
from core.indexer.run import ingest_stream
from tests.app_server import processes
from tests.apptest import FIRST_PAGE, open_app
from tests.synthetic import MANIFEST, PERP, ROOT, SPOT, batches, history

PAGES = [FIRST_PAGE, "views/markets.py", "views/liquidations.py", "views/traders.py", "views/indexed.py"]
HOSTILE = "<i>ETH</i>-USDC"


def build(url: str, *, only: str | None = None) -> str:
    hist = history(5, blocks=150)
    if only:  # keep one market: drop the other's creation and trades
        hist = [(b, ts, [e for e in evs if not (e[0] in ("MarketCreated", "Trade") and e[2][0] != only)])
                for b, ts, evs in hist]
    ingest_stream(db.make_engine(url), MANIFEST, batches(hist, [40, 90]))
    return url


@pytest.fixture(scope="module")
def fixture_db(new_database: Callable[[str], str]) -> str:
    return build(new_database("app"))


def run(url: str, page: str, monkeypatch: pytest.MonkeyPatch, params: dict[str, str] | None = None, **env: str) -> AppTest:
    return open_app(url, monkeypatch, page, params, **env)


def dollars(text: str) -> float:
    """Parse a card value such as $1.49M, -$52,063 or $8.83."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("-").lstrip("$").replace(",", "")
    scale = {"B": 1e9, "M": 1e6}.get(body[-1], 1.0)
    return sign * float(body.rstrip("BM")) * scale


def sql(url: str, query: str) -> float:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return float(conn.execute(sa.text(query)).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_numbers_and_charts(fixture_db: str, page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = run(fixture_db, page, monkeypatch)
    if page != "views/indexed.py":
        assert at.get("vega_lite_chart"), "charts"
    if page in ("views/markets.py", "views/liquidations.py", "views/traders.py", "views/indexed.py"):
        assert at.dataframe, "tables"


def test_overview_cards_show_the_indexed_totals(fixture_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = run(fixture_db, PAGES[0], monkeypatch, params={"range": "All"})
    cards = {m.label: m.value for m in at.metric}
    assert dollars(cards["Total volume"]) == pytest.approx(sql(fixture_db, "SELECT SUM(price * size) FROM trades"), rel=5e-3)
    assert cards["Trades"] == f"{sql(fixture_db, 'SELECT COUNT(*) FROM trades'):,.0f}"
    assert cards["Liquidations"] == f"{sql(fixture_db, 'SELECT COUNT(*) FROM liquidations'):,.0f}"
    debt = sql(fixture_db, "SELECT SUM(amount_raw) FROM socialized_debt") / 1e6
    assert dollars(cards["Bad debt outstanding"]) == pytest.approx(debt, rel=5e-3, abs=0.005)
    fund = sql(fixture_db, "SELECT balance_usd FROM insurance_fund_events ORDER BY block_number DESC, log_index DESC LIMIT 1")
    assert dollars(cards["Insurance fund"]) == pytest.approx(fund, rel=5e-3, abs=0.5)
    assert all(m.help for m in at.metric), "every card explains its definition"


def test_a_link_reproduces_the_view(fixture_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidebar reads its state from the URL and writes it back (so links can be shared)."""
    link = {"range": "7d", "gran": "hour", "type": "perp", "markets": PERP}
    at = run(fixture_db, PAGES[0], monkeypatch, params=link)
    assert at.sidebar.segmented_control(key="range").value == "7d"
    assert at.sidebar.segmented_control(key="gran").value == "hour"
    assert at.sidebar.multiselect(key="markets").value == [PERP]
    assert {k: at.query_params[k] for k in link} == link
    only_perp = {m.label: m.value for m in at.metric}
    everything = {m.label: m.value for m in run(fixture_db, PAGES[0], monkeypatch, params={"range": "7d"}).metric}
    assert only_perp["Total volume"] != everything["Total volume"]


def test_hostile_symbol_is_plain_text(fixture_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = run(fixture_db, "views/markets.py", monkeypatch)
    select = at.selectbox(key="markets_market")
    assert HOSTILE in select.options  # shown verbatim, as text
    rendered = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    assert not any("<i>" in str(v) for v in rendered), "symbols never go through markdown"


def test_empty_database_renders_a_hint(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for page in PAGES:
        at = run(database_url, page, monkeypatch)
        assert any("Nothing indexed yet" in i.value for i in at.info)


def test_one_market_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = build(database_url, only=PERP)
    assert sql(url, f"SELECT COUNT(*) FROM trades WHERE market = '{SPOT}'") == 0
    for page in PAGES:
        run(url, page, monkeypatch)


@pytest.mark.parametrize("url, message", [
    ("sqlite:////no/such/dir/x.db", "directory /no/such/dir does not exist"),
    # a PostgreSQL server that is not there (nothing listens on port 1): the password never shows
    ("postgresql://marginx:s3cret@127.0.0.1:1/marginx",
     "cannot open database postgresql://marginx:***@127.0.0.1:1/marginx: connection failed"),
], ids=["sqlite-missing-dir", "postgresql-refused"])
def test_unopenable_database_is_one_clear_error(url: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert at.error and message in at.error[0].value
    assert "s3cret" not in at.error[0].value and "\n" not in at.error[0].value


def test_empty_database_shows_cards_while_the_demo_builds_once(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """New sessions on an empty database: the first gets a progress banner at once (the build runs
    in the background), later ones get cards and charts while the build still runs; one build."""
    first = run(database_url, PAGES[0], monkeypatch, BUILD_DEMO="1", DEMO_DAYS="4")
    assert any("Building the demo database" in i.value for i in first.info)
    build = demo.current_build(database_url)
    assert build is not None and build.running
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while True:
        workers |= processes("core.simulator.worker")
        at = run(database_url, PAGES[0], monkeypatch, BUILD_DEMO="1", DEMO_DAYS="4")  # a new session each time
        if at.metric:
            break
        assert time.monotonic() < deadline, "no cards two minutes into the build"
        time.sleep(0.5)
    assert build.running, "cards shown before the build ended"
    assert any("Building the demo database" in i.value for i in at.info)
    assert {m.label: m.value for m in at.metric}["Trades"] != "0" and at.get("vega_lite_chart")
    while build.running:
        workers |= processes("core.simulator.worker")
        time.sleep(0.2)
    assert build.error is None and build.built is True
    assert len(workers) == 1, f"one build for every session: simulator workers seen {workers}"
    done = run(database_url, PAGES[0], monkeypatch, BUILD_DEMO="1", DEMO_DAYS="4")
    assert not any("Building" in i.value for i in done.info)
    assert any("Demo data" in i.value for i in done.info)
    assert dollars({m.label: m.value for m in done.metric}["Total volume"]) > dollars({m.label: m.value for m in at.metric}["Total volume"])
    assert sql(database_url, "SELECT COUNT(*) FROM checkpoints WHERE deployment = 'demo'") == 1
    assert demo.is_complete(db.make_engine(database_url), 4)


EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F]")


def test_icons_are_material_not_emoji() -> None:
    """Emoji draw as empty boxes where the system lacks an emoji font; Streamlit bundles Material icons."""
    for path in [ROOT / "app.py", *sorted((ROOT / "views").glob("*.py"))]:
        text = path.read_text()
        assert not EMOJI.search(text), f"{path.name}: {EMOJI.findall(text)}"
        for icon in re.findall(r'\b(?:page_)?icon="([^"]*)"', text):
            assert re.fullmatch(r":material/[a-z0-9_]+:", icon), f"{path.name}: icon={icon!r}"
