"""Rollups: built incrementally over any split of the history, they equal one build from the raw rows;
and the report reads them with EVENTS.md's definitions (checked against a plain SQL computation)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import dashboard, db, rollup, schema
from core.fmt import format_usd
from core.indexer import load
from core.indexer.decode import logs_to_frame
from core.indexer.run import ingest, ingest_stream
from core.period import Filters
from core.read import stats as read
from tests.support.tables import Rows, dump, rollups
from tests.synthetic import E6, MANIFEST, PERP, ROOT, SPOT, batches, history

HIST = history(11)


@pytest.fixture(scope="module")
def whole(new_database: Callable[[str], str]) -> str:
    url = new_database("whole")
    ingest_stream(db.make_engine(url), MANIFEST, batches(HIST, []))
    return url


def commit_each(engine: sa.Engine, cuts: list[int], hist: list[Any] = HIST) -> None:
    """The history committed batch by batch, each with its rollup refresh, as the indexer commits chunks."""
    markets: dict[str, str] = {}
    for logs, blocks, checkpoint in batches(hist, cuts):
        decoded = ingest(engine, MANIFEST, logs_to_frame(logs), blocks, checkpoint, markets)
        markets.update(decoded.new_markets)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, len(HIST) - 1), max_size=8))
def test_rollups_over_any_split_equal_one_build(whole: str, new_database: Callable[[str], str], cuts: list[int]) -> None:
    """The history stored in batches and rolled up once at the end."""
    url = new_database("split")
    engine = db.make_engine(url)
    ingest_stream(engine, MANIFEST, batches(HIST, cuts))
    assert rollups(engine) == rollups(whole)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, len(HIST) - 1), min_size=1, max_size=40))
def test_rollups_after_any_sequence_of_commits_equal_one_build(whole: str, new_database: Callable[[str], str],
                                                               cuts: list[int]) -> None:
    """Each commit folds its rows into the stored hours and days (up to 41 commits: many land inside
    an hour or a day already rolled up); the rollups equal one build of the raw rows."""
    engine = db.make_engine(new_database("commits"))
    commit_each(engine, cuts)
    assert rollups(engine) == rollups(whole)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, len(HIST) - 1), max_size=12), st.integers(2, len(HIST) - 2))
def test_a_rewind_after_any_commits_leaves_the_rollups_of_the_rows_kept(
        new_database: Callable[[str], str], cuts: list[int], keep: int) -> None:
    """A reorg rewind to any block (the rows above deleted, the rollups rewound in the same transaction)
    gives the rollups of the history up to it; committing the rest again gives those of the whole."""
    engine = db.make_engine(new_database("rewound"))
    commit_each(engine, cuts)
    last_good = HIST[keep - 1][0]
    load.rewind(engine, chain_id=31337, deployment=MANIFEST.name, last_good=last_good, last_good_hash="0x" + f"{last_good:064x}")
    prefix = db.make_engine(new_database("prefix"))
    commit_each(prefix, [], HIST[:keep])
    assert rollups(engine) == rollups(prefix)
    rest = [c - keep for c in cuts if c > keep]
    commit_each(engine, rest, HIST[keep:])
    commit_each(prefix, rest, HIST[keep:])
    assert rollups(engine) == rollups(prefix)


def test_a_commit_rolled_back_after_its_fold_does_not_mislead_the_commits_after_it(
        whole: str, new_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A fold leaves the hour's (market, trader) pairs and the day's trader-day keys in memory for the next
    commit's fold (rollup._Hot). A commit whose transaction fails after its fold leaves them ahead of the
    database; the same batch committed again, and the ones after it, read the keys back: the rollups
    equal one build. Most commits here do take the keys from memory (counted)."""
    engine = db.make_engine(new_database("rolled_back"))
    used = {"memory": 0, "read": 0}
    day_keys = rollup._day_keys

    def counted(conn: sa.Connection, chain_id: int, hot: Any, day: int) -> Any:
        keys = day_keys(conn, chain_id, hot, day)
        used["memory" if hot is not None and keys is hot.day_keys else "read"] += 1
        return keys

    monkeypatch.setattr(rollup, "_day_keys", counted)
    set_state = rollup._set_state

    def fail(*_: Any) -> None:
        raise RuntimeError("the commit fails after its fold")

    markets: dict[str, str] = {}
    for i, (logs, blocks, checkpoint) in enumerate(batches(HIST, list(range(4, len(HIST), 6)))):
        if i in (1, 9, 10, 17):  # early in a day, when a batch still brings keys the day did not have
            monkeypatch.setattr(rollup, "_set_state", fail)
            with pytest.raises(RuntimeError):
                ingest(engine, MANIFEST, logs_to_frame(logs), blocks, checkpoint, dict(markets))
            monkeypatch.setattr(rollup, "_set_state", set_state)
        markets.update(ingest(engine, MANIFEST, logs_to_frame(logs), blocks, checkpoint, markets).new_markets)
    assert rollups(engine) == rollups(whole)
    assert used["memory"] > 2 * used["read"] > 0


def test_a_rebuild_one_day_of_raw_rows_at_a_time_equals_one_build(
        whole: str, new_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.make_engine(new_database("windows"))
    ingest_stream(engine, MANIFEST, batches(HIST, []))
    with engine.connect() as conn:
        days = conn.execute(sa.text("SELECT COUNT(DISTINCT bucket) FROM stats_daily")).scalar_one()
    assert days >= 3  # so one-day windows split the rebuild
    monkeypatch.setattr(rollup, "WINDOW_DAYS", 1)
    with engine.begin() as conn:
        rollup.invalidate(conn, 31337, -1)
    assert rollup.refresh(engine, 31337) is not None
    assert rollups(engine) == rollups(whole)


def test_rollups_equal_a_recomputation_from_raw_rows(whole: str) -> None:
    engine = db.make_engine(whole)
    with engine.connect() as conn:
        raw = rollup._raw_frames(conn, 31337, 0)
    rebuilt = {schema.table_of(m).name: Rows(f.sort([c.name for c in schema.table_of(m).primary_key.columns]).rows(),
                                             rollup=True) for m, f in rollup.build(raw, 31337)}
    stored = rollups(engine)
    assert rebuilt.keys() <= stored.keys()
    for name, rows in rebuilt.items():
        assert stored[name] == rows, name


def test_trader_totals_equal_the_trader_days_summed(whole: str, new_database: Callable[[str], str]) -> None:
    """trader_totals is kept by adding and taking away days; summed afresh from trader_daily it is the same,
    after a history indexed in pieces, after a reorg-style invalidation, and when backfilled from scratch."""
    summed = ("SELECT chain_id, market, trader, MIN(bucket), SUM(volume_usd), SUM(trades), COUNT(*) FROM trader_daily "
              "GROUP BY chain_id, market, trader ORDER BY chain_id, market, trader")
    stored = "SELECT chain_id, market, trader, first_day, volume_usd, trades, active_days FROM trader_totals " \
             "ORDER BY chain_id, market, trader"
    per_day = "SELECT chain_id, bucket, COUNT(DISTINCT trader) FROM trader_daily GROUP BY chain_id, bucket ORDER BY 1, 2"

    def check(engine: sa.Engine) -> None:
        with engine.connect() as conn:
            want, got = conn.execute(sa.text(summed)).all(), conn.execute(sa.text(stored)).all()
            days = conn.execute(sa.text("SELECT chain_id, bucket, traders FROM traders_daily ORDER BY 1, 2")).all()
            assert [tuple(r) for r in days] == [tuple(r) for r in conn.execute(sa.text(per_day)).all()]
        assert len(got) == len(want) > 10
        assert Rows(map(tuple, got), rollup=True) == Rows(map(tuple, want), rollup=True)

    engine = db.make_engine(new_database("pieces"))
    ingest_stream(engine, MANIFEST, batches(HIST, [2, 5, 7, 9]))
    check(engine)
    with engine.begin() as conn:  # a reorg marks the last blocks' days dirty; the next refresh rebuilds them
        last = conn.execute(sa.text("SELECT MAX(number) FROM blocks")).scalar_one()
        rollup.invalidate(conn, 31337, last - 3)
    rollup.refresh(engine, 31337)
    check(engine)
    with engine.begin() as conn:  # a database rolled up before the trader tables existed
        conn.execute(sa.text("DELETE FROM trader_totals"))
        conn.execute(sa.text("DELETE FROM traders_daily"))
    with engine.begin() as conn:
        rollup.invalidate(conn, 31337, last - 3)
    rollup.refresh(engine, 31337)
    check(engine)
    assert rollups(engine) == rollups(whole)
    with engine.begin() as conn:  # the same database opened by the app: it fills them before reading
        for table in ("trader_totals", "traders_daily", "positions_latest"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    rollup.upgrade(engine)
    check(engine)
    assert rollups(engine) == rollups(whole)


def test_a_database_without_premium_hourly_fills_that_table_alone_on_open_and_on_refresh(
        whole: str, new_database: Callable[[str], str]) -> None:
    """A database rolled up before premium_hourly existed: opening it (or its next refresh) fills that
    table from the raw prices, and leaves every other rollup as it was (no rebuild: a marked row stays)."""
    from core.read import open_database

    url = new_database("premium")
    ingest_stream(db.make_engine(url), MANIFEST, batches(HIST, [3, 7]))
    want = rollups(whole)["premium_hourly"]
    assert len(want) > 5

    def drop_and_mark(engine: sa.Engine) -> tuple[dict[str, Rows], list[tuple[Any, ...]]]:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE premium_hourly"))
            # a value no rebuild would give: it survives only if the stored rollups are left alone
            conn.execute(sa.text("UPDATE stats_hourly SET volume_usd = -12345.0 WHERE bucket = (SELECT MIN(bucket) FROM stats_hourly)"))
            state = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM rollup_state ORDER BY chain_id"))]
        return dump(engine, [m for m in schema.ROLLUP_TABLES if m is not schema.PremiumHourly]), state

    def check(engine: sa.Engine, others: dict[str, Rows], state: list[tuple[Any, ...]]) -> None:
        got = rollups(engine)
        assert got["premium_hourly"] == want
        assert {name: rows for name, rows in got.items() if name != "premium_hourly"} == others
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(sa.text("SELECT * FROM rollup_state ORDER BY chain_id"))] == state
            assert conn.execute(sa.text("SELECT COUNT(*) FROM stats_hourly WHERE volume_usd = -12345.0")).scalar_one() > 0

    engine = db.make_engine(url, create=False)
    others, state = drop_and_mark(engine)
    engine.dispose()
    opened = open_database(url)  # the app's open: schema created (the table, empty), then rollup.upgrade
    check(opened, others, state)
    others, state = drop_and_mark(opened)
    opened.dispose()
    engine = db.make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM premium_hourly")).scalar_one() == 0
    assert rollup.refresh(engine, 31337) is None  # nothing new to fold: the refresh only fills the table
    check(engine, others, state)


def test_day_totals_are_each_days_market_rows_summed_kept_by_commits_and_reorgs_and_filled_on_open(
        whole: str, new_database: Callable[[str], str]) -> None:
    """totals_daily (the all-markets figures read it, one row per day) equals stats_daily summed per day
    after commits in pieces and a reorg's rebuild; a database rolled up before it existed gets it on
    open (rollup.upgrade) and on its next refresh; and the report of every market read off it equals
    the report of the same markets selected by name (read off stats_daily)."""
    columns = ", ".join(schema.DAY_TOTAL_COLUMNS)
    summed = (f"SELECT chain_id, bucket, {', '.join(f'SUM({c})' for c in schema.DAY_TOTAL_COLUMNS)} FROM stats_daily "
              "GROUP BY chain_id, bucket ORDER BY 1, 2")
    stored = f"SELECT chain_id, bucket, {columns} FROM totals_daily ORDER BY 1, 2"

    def check(engine: sa.Engine) -> None:
        with engine.connect() as conn:
            want, got = conn.execute(sa.text(summed)).all(), conn.execute(sa.text(stored)).all()
        assert len(got) == len(want) >= 3
        assert Rows(map(tuple, got), rollup=True) == Rows(map(tuple, want), rollup=True)

    url = new_database("day_totals")
    engine = db.make_engine(url)
    commit_each(engine, [1, 4, 9, 15, 22, 30])
    check(engine)
    with engine.begin() as conn:
        last = conn.execute(sa.text("SELECT MAX(number) FROM blocks")).scalar_one()
        rollup.invalidate(conn, 31337, last - 3)
    rollup.refresh(engine, 31337)
    check(engine)
    assert rollups(engine) == rollups(whole)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM totals_daily"))
    rollup.upgrade(engine)  # what opening the database does
    check(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM totals_daily"))
    assert rollup.refresh(engine, 31337) is None  # nothing new to fold: the refresh only fills the table
    check(engine)

    every = tuple(read.markets(engine, 31337)["market"].to_list())
    for f in (Filters(), Filters(start=HIST[10][1] // 86_400 * 86_400, end=HIST[-5][1])):
        by_name = dashboard.report(engine, 31337, Filters(f.start, f.end, every))
        of_all = dashboard.report(engine, 31337, f)
        for key in ("total_volume_usd", "total_trades", "liquidations", "liquidated_notional_usd", "fees_taker_usd",
                    "fees_maker_usd", "liquidation_fees_usd"):
            assert of_all[key] == pytest.approx(by_name[key], rel=1e-12), key
        assert [d["date"] for d in of_all["daily"]] == [d["date"] for d in by_name["daily"]]
        assert [d["trades"] for d in of_all["daily"]] == [d["trades"] for d in by_name["daily"]]
        assert of_all["daily"][0]["volume_usd"] == pytest.approx(by_name["daily"][0]["volume_usd"], rel=1e-12)


def sql(url: str, query: str) -> Any:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar()
    finally:
        engine.dispose()


def test_report_matches_plain_sql_over_raw_rows(whole: str) -> None:
    rep = dashboard.report(db.make_engine(whole), 31337, Filters())
    assert rep["total_volume_usd"] == pytest.approx(sql(whole, "SELECT SUM(price * size) FROM trades"))
    assert rep["total_trades"] == sql(whole, "SELECT COUNT(*) FROM trades")
    assert rep["liquidations"] == sql(whole, "SELECT COUNT(*) FROM liquidations")
    assert rep["liquidated_notional_usd"] == pytest.approx(sql(whole, "SELECT SUM(size * liquidation_price) FROM liquidations"))
    assert rep["socialized_debt_usd"] == pytest.approx(sql(whole, "SELECT SUM(amount_raw) FROM socialized_debt") / E6)
    assert rep["insurance_fund_usd"] == sql(
        whole, "SELECT balance_usd FROM insurance_fund_events ORDER BY block_number DESC, log_index DESC LIMIT 1")
    assert rep["backstop_vault_usd"] == pytest.approx(sql(whole, "SELECT SUM(value_change_raw) FROM backstop_vault_events") / E6)
    oi = sql(whole, f"SELECT long_open_interest FROM open_interest WHERE market = '{PERP}' ORDER BY block_number DESC LIMIT 1")
    mark = sql(whole, f"SELECT mark_price FROM prices WHERE market = '{PERP}' ORDER BY block_number DESC LIMIT 1")
    assert rep["open_interest_usd"] == pytest.approx(oi * mark)
    assert rep["active_traders"] == sql(whole, "SELECT COUNT(*) FROM (SELECT maker FROM trades UNION SELECT taker FROM trades) AS traders")
    days = sql(whole, "SELECT COUNT(DISTINCT timestamp / 86400) FROM blocks")
    assert len(rep["daily"]) == days
    assert sum(d["trades"] for d in rep["daily"]) == rep["total_trades"]
    assert sum(d["volume_usd"] for d in rep["daily"]) == pytest.approx(rep["total_volume_usd"])


def test_report_cli_filters_by_market_and_dates(whole: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "core.report", "--database-url", whole, *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    full = json.loads(run().stdout)
    spot = json.loads(run("--market", "<i>ETH</i>-USDC").stdout)
    assert spot["total_trades"] == sql(whole, f"SELECT COUNT(*) FROM trades WHERE market = '{SPOT}'")
    assert spot["open_interest_usd"] == 0.0 and spot["liquidations"] == 0
    second_day = full["daily"][1]["date"]
    one_day = json.loads(run("--since", second_day, "--until", second_day).stdout)
    assert [d["date"] for d in one_day["daily"]] == [second_day]
    assert one_day["total_trades"] == full["daily"][1]["trades"]
    bad = run("--market", "NOPE")
    assert bad.returncode == 1 and "unknown market symbol" in bad.stderr and len(bad.stderr.splitlines()) == 1
    bad = run("--since", "2026-02-02", "--until", "2026-02-01")
    assert bad.returncode == 1 and "is after --until" in bad.stderr


def test_active_traders_in_the_last_24h_is_an_exact_window(whole: str) -> None:
    engine = db.make_engine(whole)
    as_of = read.latest_timestamp(engine, 31337)
    assert as_of is not None
    window = f"block_timestamp > {as_of - 86_400} AND block_timestamp <= {as_of}"
    expected = sql(whole, f"SELECT COUNT(*) FROM (SELECT maker FROM trades WHERE {window} UNION SELECT taker FROM trades WHERE {window}) AS t")
    assert read.traders_between(engine, 31337, as_of - 86_400 + 1, as_of + 1, None) == expected > 0
    spot_only = sql(whole, f"SELECT COUNT(*) FROM (SELECT maker FROM trades WHERE {window} AND market = '{SPOT}' "
                           f"UNION SELECT taker FROM trades WHERE {window} AND market = '{SPOT}') AS t")
    assert read.traders_between(engine, 31337, as_of - 86_400 + 1, as_of + 1, (SPOT,)) == spot_only
    # The unfiltered cards read what the last refresh stored for the newest block: the same counts.
    everyone = sql(whole, "SELECT COUNT(*) FROM (SELECT maker FROM trades UNION SELECT taker FROM trades) AS t")
    assert read.trader_counts(engine, 31337) == (as_of, expected, everyone)
    cards = {c.label: c.value for c in dashboard.overview_cards(engine, 31337, Filters(end=as_of + 1), as_of)}
    assert cards["Active traders (24h)"] == expected
    assert read.active_traders(engine, 31337, Filters(end=as_of + 1)) == everyone
    spot = {c.label: c.value for c in dashboard.overview_cards(engine, 31337, Filters(markets=(SPOT,)), as_of)}
    assert spot["Active traders (24h)"] == spot_only


def test_trader_counts_are_not_used_for_a_newer_block_than_they_were_counted_at(whole: str, new_database: Callable[[str], str]) -> None:
    """Rows written without a rollup refresh (the simulator's bulk path between refreshes): the cards
    count from the raw rows, never the stale stored counts."""
    engine = db.make_engine(new_database("stale"))
    cut = len(HIST) // 2
    ingest_stream(engine, MANIFEST, batches(HIST[:cut], []))
    counted_at = read.trader_counts(engine, 31337)
    assert counted_at is not None
    for raw, blocks, checkpoint in batches(HIST, [cut]):  # the second half stored without a refresh
        ingest(engine, MANIFEST, logs_to_frame(raw), blocks, checkpoint, refresh_rollups=False)
    as_of = read.latest_timestamp(engine, 31337)
    assert as_of is not None and as_of > counted_at[0]
    cards = {c.label: c.value for c in dashboard.overview_cards(engine, 31337, Filters(end=as_of + 1), as_of)}
    assert cards["Active traders (24h)"] == read.traders_between(engine, 31337, as_of - 86_400 + 1, as_of + 1, None)


@pytest.mark.parametrize("x, shown", [(1_490_123_456.0, "$1.49B"), (12_340_000.0, "$12.34M"), (15_556.0, "$15,556"),
                                       (8.834, "$8.83"), (-52_063.4, "-$52,063"), (0.0, "$0.00")])
def test_format_usd(x: float, shown: str) -> None:
    assert format_usd(x) == shown


def test_trader_activity_new_returning_and_top(whole: str) -> None:
    days, top = dashboard.trader_activity(db.make_engine(whole), 31337, Filters())
    per_day = "SELECT COUNT(*) FROM (SELECT DISTINCT block_timestamp / 86400 AS d, maker AS t FROM trades UNION " \
              "SELECT DISTINCT block_timestamp / 86400, taker FROM trades) AS trader_days"
    assert int(days["active"].sum()) == sql(whole, per_day)
    everyone = sql(whole, "SELECT COUNT(*) FROM (SELECT maker FROM trades UNION SELECT taker FROM trades) AS traders")
    assert int(days["new"].sum()) == everyone and int(days["returning"].min()) >= 0
    best = sql(whole, "SELECT SUM(v) FROM (SELECT maker AS t, price * size AS v FROM trades UNION ALL "
                      "SELECT taker, price * size FROM trades) AS sides GROUP BY t ORDER BY SUM(v) DESC LIMIT 1")
    assert top["volume_usd"][0] == pytest.approx(best)
    assert top["trader"].n_unique() == top.height == min(25, everyone)
    days_of_best = sql(whole, f"SELECT COUNT(DISTINCT block_timestamp / 86400) FROM trades WHERE maker = '{top['trader'][0]}' "
                              f"OR taker = '{top['trader'][0]}'")
    assert top["active_days"][0] == days_of_best > 0
    as_of = read.latest_timestamp(db.make_engine(whole), 31337)  # the sidebar's "All" ends after the last block
    assert dashboard.trader_activity(db.make_engine(whole), 31337, Filters(end=as_of + 1))[1].equals(top)


@pytest.mark.parametrize("markets, bounded", [((SPOT,), ""), ((SPOT, PERP), "start,end"), (None, "start,end"), (None, "end")])
def test_trader_activity_of_a_market_selection_or_a_period_equals_sql_over_raw_trades(
        whole: str, markets: tuple[str, ...] | None, bounded: str) -> None:
    engine = db.make_engine(whole)

    def rows(query: str) -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query))]

    first_day = sql(whole, "SELECT MIN(block_timestamp) FROM trades") // 86_400 * 86_400
    f = Filters(start=first_day + 86_400 if "start" in bounded else None,
                        end=first_day + 3 * 86_400 if "end" in bounded else None, markets=markets)
    days, top = dashboard.trader_activity(engine, 31337, f, n=3)
    assert days.height >= 2 and top.height == 3 and days["active"].min() > 0
    scope = "1 = 1" if markets is None else "market IN (" + ", ".join(f"'{m}'" for m in markets) + ")"
    period = scope + (f" AND block_timestamp >= {f.start}" if f.start is not None else "") + (
        f" AND block_timestamp < {f.end}" if f.end is not None else "")
    sides = "SELECT block_timestamp / 86400 * 86400 AS d, maker AS t, price * size AS v FROM trades WHERE {w} UNION ALL " \
            "SELECT block_timestamp / 86400 * 86400, taker, price * size FROM trades WHERE {w}"
    active = rows(f"SELECT d, COUNT(DISTINCT t) FROM ({sides.format(w=period)}) AS s GROUP BY d ORDER BY d")
    assert days.select("bucket", "active").rows() == active
    firsts = dict(rows(f"SELECT d, COUNT(*) FROM (SELECT t, MIN(d) AS d FROM ({sides.format(w=scope)}) AS s GROUP BY t) AS f GROUP BY d"))
    assert days["new"].to_list() == [firsts.get(b, 0) for b in days["bucket"]]
    best = rows(f"SELECT t, SUM(v), COUNT(*), COUNT(DISTINCT d) FROM ({sides.format(w=period)}) AS s GROUP BY t "
                "ORDER BY SUM(v) DESC, t LIMIT 3")
    assert top["trader"].to_list() == [r[0] for r in best]
    assert top["volume_usd"].to_list() == pytest.approx([r[1] for r in best], rel=1e-9)
    assert top["trades"].to_list() == [r[2] for r in best] and top["active_days"].to_list() == [r[3] for r in best]
    assert [(read.active_traders(engine, 31337, f),)] == rows(f"SELECT COUNT(DISTINCT t) FROM ({sides.format(w=period)}) AS s")
