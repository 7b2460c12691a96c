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

from core import db, metrics, rollup, schema
from core.indexer.run import ingest_stream
from tests.synthetic import E6, MANIFEST, PERP, ROOT, SPOT, batches, history


def rollup_rows(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for model in (*schema.ROLLUP_TABLES,):
            t = schema.table_of(model)
            out[t.name] = [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
    return out


HIST = history(11)


@pytest.fixture(scope="module")
def whole(new_database: Callable[[str], str]) -> str:
    url = new_database("whole")
    ingest_stream(db.make_engine(url), MANIFEST, batches(HIST, []))
    return url


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, len(HIST) - 1), max_size=8))
def test_rollups_over_any_split_equal_one_build(whole: str, new_database: Callable[[str], str], cuts: list[int]) -> None:
    url = new_database("split")
    engine = db.make_engine(url)
    ingest_stream(engine, MANIFEST, batches(HIST, cuts))
    assert rollup_rows(engine) == rollup_rows(db.make_engine(whole))


def test_rollups_equal_a_recomputation_from_raw_rows(whole: str) -> None:
    engine = db.make_engine(whole)
    with engine.connect() as conn:
        raw = rollup._raw_frames(conn, 31337, 0)
    rebuilt = {schema.table_of(m).name: [tuple(r) for r in f.sort(f.columns[:3]).rows()] for m, f in rollup.build(raw, 31337)}
    stored = rollup_rows(engine)
    for name, rows in rebuilt.items():
        key = {"trader_daily": 4, "protocol_daily": 2, "protocol_hourly": 2}.get(name, 3)
        assert sorted(rows, key=lambda r: r[:key]) == sorted(stored[name], key=lambda r: r[:key]), name


def sql(url: str, query: str) -> Any:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar()
    finally:
        engine.dispose()


def test_report_matches_plain_sql_over_raw_rows(whole: str) -> None:
    rep = metrics.report(db.make_engine(whole), 31337, metrics.Filters())
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
    as_of = metrics.latest_timestamp(engine, 31337)
    assert as_of is not None
    window = f"block_timestamp > {as_of - 86_400} AND block_timestamp <= {as_of}"
    expected = sql(whole, f"SELECT COUNT(*) FROM (SELECT maker FROM trades WHERE {window} UNION SELECT taker FROM trades WHERE {window}) AS t")
    assert metrics.active_traders_between(engine, 31337, as_of - 86_400 + 1, as_of + 1, None) == expected > 0
    spot_only = sql(whole, f"SELECT COUNT(*) FROM (SELECT maker FROM trades WHERE {window} AND market = '{SPOT}' "
                           f"UNION SELECT taker FROM trades WHERE {window} AND market = '{SPOT}') AS t")
    assert metrics.active_traders_between(engine, 31337, as_of - 86_400 + 1, as_of + 1, (SPOT,)) == spot_only


@pytest.mark.parametrize("x, shown", [(1_490_123_456.0, "$1.49B"), (12_340_000.0, "$12.34M"), (15_556.0, "$15,556"),
                                       (8.834, "$8.83"), (-52_063.4, "-$52,063"), (0.0, "$0.00")])
def test_format_usd(x: float, shown: str) -> None:
    assert metrics.format_usd(x) == shown


def test_trader_activity_new_returning_and_top(whole: str) -> None:
    days, top = metrics.trader_activity(db.make_engine(whole), 31337, metrics.Filters())
    per_day = "SELECT COUNT(*) FROM (SELECT DISTINCT block_timestamp / 86400 AS d, maker AS t FROM trades UNION " \
              "SELECT DISTINCT block_timestamp / 86400, taker FROM trades) AS trader_days"
    assert int(days["active"].sum()) == sql(whole, per_day)
    everyone = sql(whole, "SELECT COUNT(*) FROM (SELECT maker FROM trades UNION SELECT taker FROM trades) AS traders")
    assert int(days["new"].sum()) == everyone and int(days["returning"].min()) >= 0
    best = sql(whole, "SELECT SUM(v) FROM (SELECT maker AS t, price * size AS v FROM trades UNION ALL "
                      "SELECT taker, price * size FROM trades) AS sides GROUP BY t ORDER BY SUM(v) DESC LIMIT 1")
    assert top["volume_usd"][0] == pytest.approx(best)
