"""The /stats API as a client sees it: `python -m core.api` on a free loopback port, called over HTTP,
on SQLite and on PostgreSQL. Every endpoint's figures equal `python -m core.report`'s JSON and plain
SQL over the raw event rows of the same database; bad input is a one-line 422 naming the parameter;
an unopenable database a one-line 503; the cache answers a repeat without a single SQL statement and
shows a newly committed block once its TTL has passed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core import db
from core.indexer.run import ingest_stream
from core.utc import DAY
from tests.anvil import free_port, rpc
from tests.api_server import api_server, get
from tests.synthetic import MANIFEST, PERP, ROOT, SPOT, batches, history

E6 = 10**6
HIST = history(4)
ORIGIN = "https://app.marginx.example"


def sql(url: str, query: str, **params: Any) -> Any:
    engine = db.make_engine(url, create=False)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query), params).scalar()
    finally:
        engine.dispose()


def sql_rows(url: str, query: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = db.make_engine(url, create=False)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query), params)]
    finally:
        engine.dispose()


def report(url: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "core.report", "--database-url", url, *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.fixture(scope="module")
def whole(new_database: Callable[[str], str]) -> str:
    """The synthetic history (hostile spot symbol, every rolled-up event type) on this run's backend."""
    url = new_database("api")
    ingest_stream(db.make_engine(url), MANIFEST, batches(HIST, [30, 31, 100]))
    return url


@pytest.fixture(scope="module")
def api(whole: str) -> Iterator[str]:
    """The API on ``whole``: cached 30 s, counting SQL statements, CORS for one origin."""
    with api_server(whole, env={"API_CACHE_TTL": "30", "API_COUNT_SQL": "1", "API_CORS_ORIGINS": ORIGIN}) as (base, _):
        yield base


def ok(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    status, _, body = get(url, headers)
    assert status == 200, (url, body)
    assert isinstance(body, dict)
    return body


# --------------------------------------------------------------------------- figures


def test_overview_is_the_report_plus_the_newest_block(api: str, whole: str) -> None:
    body = ok(f"{api}/stats/overview")
    expected = report(whole)
    assert set(body) == set(expected) | {"as_of_block", "as_of_time"}
    assert {k: body[k] for k in expected} == expected
    assert body["as_of_block"] == sql(whole, "SELECT MAX(last_block) FROM checkpoints") == HIST[-1][0]
    assert body["as_of_time"] == sql(whole, "SELECT MAX(timestamp) FROM blocks") == HIST[-1][1]


def test_overview_figures_equal_sql_over_the_raw_rows(api: str, whole: str) -> None:
    body = ok(f"{api}/stats/overview?range=all")
    assert body["total_volume_usd"] == pytest.approx(sql(whole, "SELECT SUM(price * size) FROM trades"))
    assert body["total_trades"] == sql(whole, "SELECT COUNT(*) FROM trades")
    assert body["liquidations"] == sql(whole, "SELECT COUNT(*) FROM liquidations") > 0
    assert body["liquidated_notional_usd"] == pytest.approx(sql(whole, "SELECT SUM(size * liquidation_price) FROM liquidations"))
    assert body["socialized_debt_usd"] == pytest.approx(sql(whole, "SELECT SUM(amount_raw) FROM socialized_debt") / E6)
    assert body["socialized_debt_usd"] > 0
    assert body["insurance_fund_usd"] == sql(
        whole, "SELECT balance_usd FROM insurance_fund_events ORDER BY block_number DESC, log_index DESC LIMIT 1")
    assert body["backstop_vault_usd"] == pytest.approx(sql(whole, "SELECT SUM(value_change_raw) FROM backstop_vault_events") / E6)
    oi = sql(whole, "SELECT long_open_interest FROM open_interest WHERE market = :m ORDER BY block_number DESC LIMIT 1", m=PERP)
    mark = sql(whole, "SELECT mark_price FROM prices WHERE market = :m ORDER BY block_number DESC LIMIT 1", m=PERP)
    assert body["open_interest_usd"] == pytest.approx(oi * mark) and oi * mark > 0
    assert body["active_traders"] == sql(whole, "SELECT COUNT(*) FROM (SELECT maker FROM trades UNION SELECT taker FROM trades) AS t")


def test_overview_of_a_market_and_of_dates_equals_the_report_of_the_same(api: str, whole: str) -> None:
    full = report(whole)
    second, third = full["daily"][1]["date"], full["daily"][2]["date"]
    one = ok(f"{api}/stats/overview?start={second}&end={third}")
    assert {k: one[k] for k in full} == report(whole, "--since", second, "--until", third)
    spot = ok(f"{api}/stats/overview?markets={SPOT}")
    assert {k: spot[k] for k in full} == report(whole, "--market", "<i>ETH</i>-USDC")
    assert spot["total_trades"] == sql(whole, "SELECT COUNT(*) FROM trades WHERE market = :m", m=SPOT)
    # type=spot selects the same markets as naming the spot market
    assert ok(f"{api}/stats/overview?type=spot") == spot
    # a trailing range: the days up to the newest block
    last = ok(f"{api}/stats/overview?range=24h")
    as_of = HIST[-1][1]
    assert last["total_trades"] == sql(whole, "SELECT COUNT(*) FROM trades WHERE block_timestamp >= :s",
                                       s=as_of // DAY * DAY) > 0


def _is_series(body: dict[str, Any], interval: str) -> list[dict[str, Any]]:
    assert body["interval"] == interval
    points: list[dict[str, Any]] = body["points"]
    times = [p["time"] for p in points]
    assert times == sorted(set(times)) and times, "time ascending and unique"
    for p in points:
        assert p["date"] == time.strftime("%Y-%m-%d", time.gmtime(p["time"]))
    return points


@pytest.mark.parametrize("interval, size", [("1h", 3_600), ("1d", DAY)])
def test_volume_and_trades_per_bucket_equal_sql_group_by(api: str, whole: str, interval: str, size: int) -> None:
    points = _is_series(ok(f"{api}/stats/volume?interval={interval}"), interval)
    expected = sql_rows(whole, f"SELECT block_timestamp / {size} * {size} AS b, SUM(price * size), COUNT(*) FROM trades "
                               "GROUP BY b ORDER BY b")
    assert [(p["time"], p["trades"]) for p in points] == [(b, n) for b, _, n in expected]
    assert [p["volume_usd"] for p in points] == pytest.approx([v for _, v, _ in expected])
    assert [p["value"] for p in points] == [p["volume_usd"] for p in points]
    assert points[-1]["cumulative_usd"] == pytest.approx(sql(whole, "SELECT SUM(price * size) FROM trades"))
    trades = _is_series(ok(f"{api}/stats/trades?interval={interval}"), interval)
    assert [(p["time"], p["trades"], p["value"]) for p in trades] == [(b, n, n) for b, _, n in expected]


def test_daily_series_are_the_reports_daily_rows(api: str, whole: str) -> None:
    daily = report(whole)["daily"]
    for path, columns in [("volume", ["volume_usd", "trades"]), ("trades", ["trades"]),
                          ("liquidations", ["liquidations", "liquidated_notional_usd"]),
                          ("bad-debt", ["socialized_debt_usd"])]:
        points = _is_series(ok(f"{api}/stats/{path}?interval=1d&range=all"), "1d")
        assert [{"date": p["date"], **{c: p[c] for c in columns}} for p in points] == [
            {"date": d["date"], **{c: d[c] for c in columns}} for d in daily], path


def test_weekly_volume_and_trades_sum_each_monday_week(api: str, whole: str) -> None:
    points = _is_series(ok(f"{api}/stats/volume?interval=1w"), "1w")
    monday = "(block_timestamp + 3 * 86400) / 604800 * 604800 - 3 * 86400"
    expected = sql_rows(whole, f"SELECT {monday} AS w, COUNT(*), SUM(price * size) FROM trades GROUP BY w ORDER BY w")
    assert [(p["time"], p["trades"]) for p in points] == [(w, n) for w, n, _ in expected]
    assert [p["volume_usd"] for p in points] == pytest.approx([v for _, _, v in expected])
    assert all(time.gmtime(p["time"]).tm_wday == 0 for p in points)


def test_liquidations_and_bad_debt_per_day_equal_sql(api: str, whole: str) -> None:
    points = _is_series(ok(f"{api}/stats/liquidations"), "1d")
    expected = sql_rows(whole, "SELECT block_timestamp / 86400 * 86400 AS d, COUNT(*), SUM(size * liquidation_price) "
                               "FROM liquidations GROUP BY d ORDER BY d")
    got = [(p["time"], p["liquidations"], p["liquidated_notional_usd"]) for p in points if p["liquidations"]]
    assert [(t, n) for t, n, _ in got] == [(d, n) for d, n, _ in expected]
    assert [v for _, _, v in got] == pytest.approx([v for _, _, v in expected])
    debt = _is_series(ok(f"{api}/stats/bad-debt"), "1d")
    per_day = dict(sql_rows(whole, "SELECT block_timestamp / 86400 * 86400 AS d, SUM(amount_raw) FROM socialized_debt "
                                   "GROUP BY d"))
    assert {p["time"]: p["socialized_debt_usd"] for p in debt if p["socialized_debt_usd"]} == pytest.approx(
        {d: v / E6 for d, v in per_day.items()})
    assert debt[-1]["cumulative_usd"] == pytest.approx(sql(whole, "SELECT SUM(amount_raw) FROM socialized_debt") / E6)
    # a later period still counts the debt socialized before it in the outstanding figure
    later = _is_series(ok(f"{api}/stats/bad-debt?start={debt[2]['date']}"), "1d")
    assert later[0]["cumulative_usd"] == pytest.approx(debt[2]["cumulative_usd"])


def test_open_interest_and_balances_end_where_the_overview_is(api: str, whole: str) -> None:
    overview = ok(f"{api}/stats/overview")
    oi = _is_series(ok(f"{api}/stats/open-interest"), "1d")
    assert oi[-1]["open_interest_usd"] == pytest.approx(overview["open_interest_usd"])
    # each day's value: the perp's latest long OI × latest mark up to that day's end, from the raw rows
    for p in oi:
        end = p["time"] + DAY
        long_oi = sql(whole, "SELECT long_open_interest FROM open_interest WHERE market = :m AND block_timestamp < :e "
                             "ORDER BY block_number DESC, log_index DESC LIMIT 1", m=PERP, e=end)
        mark = sql(whole, "SELECT mark_price FROM prices WHERE market = :m AND block_timestamp < :e "
                          "ORDER BY block_number DESC, log_index DESC LIMIT 1", m=PERP, e=end)
        assert p["open_interest_usd"] == pytest.approx((long_oi or 0) * (mark or 0)), p["date"]
    for interval in ("1h", "1w"):  # every bucket size ends at the same state
        assert _is_series(ok(f"{api}/stats/open-interest?interval={interval}"), interval)[-1]["open_interest_usd"] == \
            pytest.approx(overview["open_interest_usd"])
    balances = _is_series(ok(f"{api}/stats/insurance"), "1d")
    assert balances[-1]["insurance_fund_usd"] == overview["insurance_fund_usd"] > 0
    assert balances[-1]["backstop_vault_usd"] == pytest.approx(overview["backstop_vault_usd"])
    assert [p["value"] for p in balances] == [p["insurance_fund_usd"] for p in balances]
    for p in balances:  # each day's end: the latest emitted fund balance, the vault's changes summed
        end = p["time"] + DAY
        fund = sql(whole, "SELECT balance_usd FROM insurance_fund_events WHERE block_timestamp < :e "
                          "ORDER BY block_number DESC, log_index DESC LIMIT 1", e=end)
        vault = sql(whole, "SELECT SUM(value_change_raw) FROM backstop_vault_events WHERE block_timestamp < :e", e=end)
        assert p["insurance_fund_usd"] == (fund or 0.0), p["date"]
        assert p["backstop_vault_usd"] == pytest.approx((vault or 0) / E6), p["date"]


def test_markets_table_equals_sql_and_keeps_symbols_as_data(api: str, whole: str) -> None:
    status, headers, body = get(f"{api}/stats/markets")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    rows = {r["market"]: r for r in body["markets"]}
    assert rows[SPOT]["symbol"] == "<i>ETH</i>-USDC" and rows[PERP]["symbol"] == "BTC-PERP"
    for market, volume, trades in sql_rows(whole, "SELECT market, SUM(price * size), COUNT(*) FROM trades GROUP BY market"):
        assert rows[market]["trades"] == trades
        assert rows[market]["volume_usd"] == pytest.approx(volume)
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1.0)
    assert rows[PERP]["open_interest_usd"] == pytest.approx(ok(f"{api}/stats/overview")["open_interest_usd"])


def test_traders_per_day_equal_distinct_makers_and_takers(api: str, whole: str) -> None:
    body = ok(f"{api}/stats/traders")
    points = _is_series(body, "1d")
    expected = sql_rows(whole, "SELECT d, COUNT(DISTINCT t) FROM (SELECT block_timestamp / 86400 * 86400 AS d, maker AS t "
                               "FROM trades UNION SELECT block_timestamp / 86400 * 86400, taker FROM trades) AS x "
                               "GROUP BY d ORDER BY d")
    assert [(p["time"], p["active"]) for p in points] == expected
    assert sum(p["new"] for p in points) == body["active_traders"] == report(whole)["active_traders"]
    assert all(p["new"] + p["returning"] == p["active"] for p in points)
    top_volume = sql(whole, "SELECT MAX(v) FROM (SELECT t, SUM(n) AS v FROM (SELECT maker AS t, price * size AS n FROM trades "
                            "UNION ALL SELECT taker, price * size FROM trades) AS x GROUP BY t) AS y")
    assert body["top"][0]["volume_usd"] == pytest.approx(top_volume)


def test_a_days_liquidations_are_its_rows(api: str, whole: str) -> None:
    day, n = sql_rows(whole, "SELECT block_timestamp / 86400 * 86400 AS d, COUNT(*) FROM liquidations GROUP BY d ORDER BY 2 DESC")[0]
    date = time.strftime("%Y-%m-%d", time.gmtime(day))
    body = ok(f"{api}/stats/liquidations/{date}")
    rows = body["liquidations"]
    expected = sql_rows(whole, "SELECT tx_hash, notional_usd, socialized_usd FROM liquidations WHERE block_timestamp >= :s "
                               "AND block_timestamp < :e ORDER BY block_number DESC, log_index DESC", s=day, e=day + DAY)
    assert body["date"] == date and len(rows) == n == len(expected)
    assert [(r["tx_hash"], r["notional_usd"], r["socialized_usd"]) for r in rows] == expected
    assert all(day <= r["time"] < day + DAY and r["symbol"] == "BTC-PERP" for r in rows)
    assert ok(f"{api}/stats/liquidations/{date}?markets={SPOT}")["liquidations"] == []


def test_health_names_the_last_indexed_block(api: str, whole: str) -> None:
    body = ok(f"{api}/health")
    (chain,) = body["chains"]
    assert chain["chain_id"] == MANIFEST.chain_id and chain["last_block"] == HIST[-1][0]
    assert chain["last_block_time"] == HIST[-1][1]
    assert chain["age_seconds"] == pytest.approx(time.time() - HIST[-1][1], abs=60)


def test_docs_list_every_endpoint_and_cors_answers_only_the_configured_origin(api: str) -> None:
    status, _, spec = get(f"{api}/openapi.json")
    assert status == 200
    assert {"/stats/overview", "/stats/volume", "/stats/trades", "/stats/liquidations", "/stats/liquidations/{day}",
            "/stats/bad-debt", "/stats/open-interest", "/stats/insurance", "/stats/markets", "/stats/traders",
            "/health"} <= set(spec["paths"])
    assert {p["name"] for p in spec["paths"]["/stats/volume"]["get"]["parameters"]} == {
        "interval", "range", "start", "end", "markets", "type", "chain_id"}
    assert get(f"{api}/docs")[0] == 200
    _, headers, _ = get(f"{api}/stats/trades", {"Origin": ORIGIN})
    assert headers["access-control-allow-origin"] == ORIGIN
    _, headers, _ = get(f"{api}/stats/trades", {"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers


# --------------------------------------------------------------------------- bad input

TEN_KB = "0x" + "ab" * 5_120
BAD = [
    ("/stats/volume?interval=2d", "interval", "1h, 1d, 1w"),
    ("/stats/volume?interval=1d%3BDROP%20TABLE%20trades", "interval", "1h, 1d, 1w"),
    ("/stats/traders?interval=1h", "interval", "1d"),
    ("/stats/volume?range=1y", "range", "24h, 7d, 30d, 90d, all"),
    ("/stats/overview?range=all'%20OR%20'1'='1", "range", "24h, 7d, 30d, 90d, all"),
    ("/stats/overview?range=7d&start=2026-01-02", "range", "either range or start/end"),
    ("/stats/volume?start=2026-02-30", "start", "YYYY-MM-DD"),
    ("/stats/volume?end=yesterday", "end", "YYYY-MM-DD"),
    ("/stats/volume?start=2026-01-05&end=2026-01-02", "start", "after end"),
    (f"/stats/volume?markets={'0x' + 'cd' * 20}", "markets", "not a market of this deployment"),
    ("/stats/overview?markets=0x'%20OR%201=1--", "markets", "0x and 40 hex digits"),
    (f"/stats/overview?markets={TEN_KB}", "markets", "too long"),
    (f"/stats/overview?range={'7' * 10_240}", "range", "too long"),
    ("/stats/overview?type=futures", "type", "spot, perp"),
    ("/stats/overview?chain_id=1", "chain_id", "31337"),
    ("/stats/overview?interval=1d", "interval", "unknown parameter"),
    ("/stats/overview?range=7d&range=30d", "range", "more than once"),
    ("/stats/liquidations/2026-99-01", "day", "YYYY-MM-DD"),
    ("/stats/liquidations/1%3B%20DELETE%20FROM%20liquidations", "day", "YYYY-MM-DD"),
]


@pytest.mark.parametrize("path, parameter, allowed", BAD)
def test_bad_input_is_a_422_naming_the_parameter_and_what_it_takes(api: str, path: str, parameter: str, allowed: str) -> None:
    status, headers, body = get(api + path)
    assert status == 422 and headers["content-type"] == "application/json"
    assert body["parameter"] == parameter and body["error"].startswith(f"{parameter}: ")
    assert allowed in body["error"]
    assert "\n" not in body["error"] and len(body["error"]) < 300 and "Traceback" not in body["error"]


def test_sql_in_parameters_changes_nothing_in_the_database(api: str, whole: str) -> None:
    counts = [sql(whole, f"SELECT COUNT(*) FROM {t}") for t in ("trades", "liquidations", "markets")]
    for path, _, _ in BAD:
        assert get(api + path)[0] == 422
    assert [sql(whole, f"SELECT COUNT(*) FROM {t}") for t in ("trades", "liquidations", "markets")] == counts


def test_an_unopenable_database_is_a_one_line_503(backend: str, tmp_path: Path, postgres_url_of: Callable[[str], str]) -> None:
    if backend == "sqlite":
        url, missing = f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "none.db"
    else:
        url, missing = postgres_url_of("no_such_database"), None
    with api_server(url) as (base, _):
        for path in ("/stats/overview", "/stats/volume?range=all", "/health"):
            status, headers, body = get(base + path)
            assert status == 503 and headers["cache-control"] == "no-store", path
            assert "cannot open database" in body["error"] and "\n" not in body["error"]
            assert "no such file" in body["error"] if backend == "sqlite" else "no_such_database" in body["error"]
    assert missing is None or not missing.exists(), "the read-only API created a database file"


@pytest.fixture()
def postgres_url_of(backend: str, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """A URL on the session's PostgreSQL cluster naming database ``name`` (which need not exist)."""
    def url(name: str) -> str:
        cluster = request.getfixturevalue("postgres")
        return f"postgresql+psycopg://postgres@{cluster.host}:{cluster.port}/{name}"
    return url


# --------------------------------------------------------------------------- cache


def test_a_repeat_is_served_without_sql_and_a_new_block_shows_after_the_ttl(new_database: Callable[[str], str]) -> None:
    url = new_database("api_cache")
    engine = db.make_engine(url)
    ingest_stream(engine, MANIFEST, batches(HIST[:200], []))
    ttl = 4
    with api_server(url, env={"API_CACHE_TTL": str(ttl), "API_COUNT_SQL": "1"}) as (base, _):
        stored_at = time.monotonic()
        status, first_headers, first = get(f"{base}/stats/overview")
        assert status == 200 and int(first_headers["x-sql-statements"]) > 5
        assert first_headers["cache-control"] == f"public, max-age={ttl}"
        status, again_headers, again = get(f"{base}/stats/overview")
        assert status == 200 and again == first and int(again_headers["x-sql-statements"]) == 0
        etag = first_headers["etag"]
        assert again_headers["etag"] == etag
        status, not_modified, body = get(f"{base}/stats/overview", {"If-None-Match": etag})
        assert status == 304 and body is None and not_modified["etag"] == etag
        ingest_stream(engine, MANIFEST, batches(HIST[200:], []), parallel=False)  # new blocks, new trades
        assert sql(url, "SELECT MAX(last_block) FROM checkpoints") == HIST[-1][0]
        _, within_headers, within = get(f"{base}/stats/overview")
        assert time.monotonic() - stored_at < ttl - 0.5, "too slow to check the answer within the TTL"
        assert within == first and int(within_headers["x-sql-statements"]) == 0  # the stored answer
        time.sleep(max(0.0, stored_at + ttl + 0.5 - time.monotonic()))
        status, new_headers, new = get(f"{base}/stats/overview", {"If-None-Match": etag})
        assert status == 200 and new_headers["etag"] != etag and int(new_headers["x-sql-statements"]) > 0
        assert new["as_of_block"] == HIST[-1][0] > first["as_of_block"]
        assert new["total_trades"] == sql(url, "SELECT COUNT(*) FROM trades") > first["total_trades"]
    engine.dispose()


def test_without_a_cache_every_answer_reads_the_database(whole: str) -> None:
    with api_server(whole, env={"API_CACHE_TTL": "0", "API_COUNT_SQL": "1"}) as (base, _):
        for _ in range(2):
            status, headers, body = get(f"{base}/stats/trades")
            assert status == 200 and int(headers["x-sql-statements"]) > 0 and headers["cache-control"] == "no-cache"
        assert body["points"][-1]["trades"] > 0


def test_a_read_only_database_user_is_enough(backend: str, whole: str, request: pytest.FixtureRequest) -> None:
    """PostgreSQL: a role that may only SELECT; SQLite: the file opened read-only (mode=ro)."""
    if backend == "postgresql":
        cluster = request.getfixturevalue("postgres")
        name = sa.engine.make_url(whole).database
        admin = sa.create_engine(whole, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text("DO $$ BEGIN CREATE ROLE api_reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"))
            conn.execute(sa.text("GRANT SELECT ON ALL TABLES IN SCHEMA public TO api_reader"))
        admin.dispose()
        url = f"postgresql+psycopg://api_reader@{cluster.host}:{cluster.port}/{name}"
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            sql(url, "DELETE FROM trades")
    else:
        url = f"sqlite:///file:{sa.engine.make_url(whole).database}?mode=ro&uri=true"
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            sql(url, "DELETE FROM trades")
    with api_server(url) as (base, _):
        body = ok(f"{base}/stats/overview")
        assert {k: body[k] for k in report(whole)} == report(whole)
        assert ok(f"{base}/stats/markets")["markets"]


def test_without_a_cache_concurrent_identical_requests_each_compute_on_several_workers(whole: str) -> None:
    """API_CACHE_TTL=0 with --workers 2: of 20 simultaneous identical requests each runs every
    statement itself (nothing is shared), every answer is the same, and the server runs two
    worker processes."""
    from concurrent.futures import ThreadPoolExecutor

    with api_server(whole, env={"API_CACHE_TTL": "0", "API_COUNT_SQL": "1"}, workers=2) as (base, proc):
        one = int(get(f"{base}/stats/overview")[1]["x-sql-statements"])
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda _: get(f"{base}/stats/overview"), range(20)))
        children = {int(c) for task in Path(f"/proc/{proc.pid}/task").glob("*/children") for c in task.read_text().split()}
        workers = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert one > 5 and all(status == 200 for status, _, _ in answers)
    assert len({json.dumps(body, sort_keys=True) for _, _, body in answers}) == 1
    assert [int(headers["x-sql-statements"]) for _, headers, _ in answers] == [one] * 20
    assert len(workers) == 2, children


def test_health_reports_the_lag_behind_rpc_url_or_null_when_the_node_is_down(whole: str, anvil_url: str) -> None:
    rpc(anvil_url, "anvil_mine", [hex(HIST[-1][0] + 61)])  # the node's head: 61 blocks past the index
    with api_server(whole, env={"RPC_URL": anvil_url}) as (base, _):
        (chain,) = ok(f"{base}/health")["chains"]
    assert chain["lag_blocks"] == 61 and chain["lag_seconds"] >= 0
    down = f"http://127.0.0.1:{free_port()}/key-in-path-SECRET"
    with api_server(whole, env={"RPC_URL": down}) as (base, _):
        status, _, body = get(f"{base}/health")
    assert status == 200
    (chain,) = body["chains"]
    assert chain["lag_blocks"] is None and chain["last_block"] == HIST[-1][0]
    assert "SECRET" not in json.dumps(body)


def test_a_database_of_an_older_schema_is_a_503_saying_so(new_database: Callable[[str], str]) -> None:
    url = new_database("api_old")
    engine = db.make_engine(url)
    ingest_stream(engine, MANIFEST, batches(HIST[:50], []), parallel=False)
    with engine.begin() as conn:
        # as if rolled up by a version before the fees by kind (b6c8705)
        conn.execute(sa.text("ALTER TABLE stats_daily DROP COLUMN taker_fees_usd"))
    engine.dispose()
    with api_server(url) as (base, _):
        status, _, body = get(f"{base}/stats/overview?type=perp")  # a market filter reads stats_daily itself
        assert status == 503 and "\n" not in body["error"]
        assert "taker_fees_usd" in body["error"] and "database of this version" in body["error"]
        with engine.begin() as conn:  # rolled up before the all-markets day totals existed
            conn.execute(sa.text("DROP TABLE totals_daily"))
        engine.dispose()
        status, _, body = get(f"{base}/stats/overview")
    assert status == 503 and "\n" not in body["error"]
    assert "totals_daily" in body["error"] and "database of this version" in body["error"]
