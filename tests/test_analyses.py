"""The peer dashboards' analyses (#15) on a simulated history, each checked against SQL over the raw
rows on SQLite and PostgreSQL: the buffers' performance, position risk, the liquidation map, ADL
exposure, one account's figures, funding, and every card's Δ vs the previous period."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import polars as pl
import pytest
import sqlalchemy as sa

from core import dashboard, db, fmt
from core.metrics import risk
from core.metrics.funds import ZERO_KEY
from core.period import Filters
from core.read import stats as read
from core.read.accounts import AccountError
from core.simulator import build_database
from core.utc import DAY
from tests.api_server import api_server, get
from tests.apptest import open_app


@pytest.fixture(scope="module")
def simulated(new_database: Callable[[str], str]) -> str:
    url = new_database("analyses")
    build_database(url, seed=11, days=4, trades_per_day=1_500)
    return url


@pytest.fixture(scope="module")
def engine(simulated: str) -> sa.Engine:
    return db.make_engine(simulated)


def rows(engine: sa.Engine, sql: str, **params: object) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def one(engine: sa.Engine, sql: str, **params: object) -> float:
    return float(rows(engine, sql, **params)[0][0] or 0)


CHAIN = 31337


def test_vault_share_price_flows_and_pnl_by_source_equal_sql(engine: sa.Engine) -> None:
    as_of = read.latest_timestamp(engine, CHAIN)
    assert as_of is not None
    data = dashboard.buffers(engine, CHAIN, Filters(), as_of)
    value = one(engine, "SELECT SUM(value_change_raw) FROM backstop_vault_events WHERE chain_id = :c", c=CHAIN) / 1e6
    shares = one(engine, "SELECT SUM(CASE WHEN event = 'Deposit' THEN shares ELSE -shares END) FROM backstop_vault_events "
                         "WHERE chain_id = :c AND event IN ('Deposit', 'Withdraw')", c=CHAIN)
    assert shares > 0 and data["share_price"] == pytest.approx(value / shares, rel=1e-9)
    assert dashboard.report(engine, CHAIN, Filters())["backstop_share_price"] == pytest.approx(value / shares, rel=1e-9)
    daily = data["vault_daily"]
    by_day = {int(d): (float(dep), float(wd)) for d, dep, wd in rows(engine, (
        "SELECT block_timestamp / 86400 * 86400, SUM(CASE WHEN event = 'Deposit' THEN value_change_usd ELSE 0 END), "
        "SUM(CASE WHEN event = 'Withdraw' THEN -value_change_usd ELSE 0 END) FROM backstop_vault_events WHERE chain_id = :c "
        "GROUP BY block_timestamp / 86400 * 86400"), c=CHAIN)}
    got = {int(b): (float(d), float(w)) for b, d, w in daily.select("bucket", "deposits_usd", "withdrawals_usd").iter_rows()}
    assert got.keys() == by_day.keys()
    for day, (dep, wd) in by_day.items():
        assert got[day] == pytest.approx((dep, wd), abs=1e-6)
    liquidation_pnl = one(engine, "SELECT SUM(value_change_usd) FROM backstop_vault_events WHERE chain_id = :c AND "
                                  "event = 'VaultPnLUpdated' AND position_key <> :z", c=CHAIN, z=ZERO_KEY)
    other_pnl = one(engine, "SELECT SUM(value_change_usd) FROM backstop_vault_events WHERE chain_id = :c AND "
                            "event = 'VaultPnLUpdated' AND position_key = :z", c=CHAIN, z=ZERO_KEY)
    assert float(daily["liquidation_pnl_usd"].sum()) == pytest.approx(liquidation_pnl, abs=1e-6)
    assert float(daily["other_pnl_usd"].sum()) == pytest.approx(other_pnl, abs=1e-6)
    assert other_pnl > 0  # the simulator pays the vault a daily fee share
    holders = one(engine, "SELECT COUNT(*) FROM (SELECT owner FROM backstop_vault_events WHERE chain_id = :c AND event IN "
                          "('Deposit', 'Withdraw') GROUP BY owner HAVING SUM(CASE WHEN event = 'Deposit' THEN shares "
                          "ELSE -shares END) > 1e-9) AS h", c=CHAIN)
    assert int(daily["depositors"][-1]) == holders > 0


def test_vault_returns_compare_share_prices_over_each_window(engine: sa.Engine) -> None:
    as_of = read.latest_timestamp(engine, CHAIN)
    assert as_of is not None
    data = dashboard.buffers(engine, CHAIN, Filters(), as_of)
    daily = data["vault_daily"].filter(pl.col("share_price").is_not_null())
    week = {r["window_days"]: r for r in data["returns"]}[7]
    # the history (4 days) is shorter than a week: measured since the first share price, and said so
    assert week["days"] == (as_of // DAY * DAY - int(daily["bucket"][0])) // DAY < 7
    assert week["return"] == pytest.approx(float(daily["share_price"][-1]) / float(daily["share_price"][0]) - 1)
    assert week["apr"] == pytest.approx(week["return"] * 365 / week["days"])


def test_insurance_flows_by_kind_and_liquidation_fees_equal_sql(engine: sa.Engine) -> None:
    as_of = read.latest_timestamp(engine, CHAIN)
    assert as_of is not None
    flows = dashboard.buffers(engine, CHAIN, Filters(), as_of)["fund_flows"]
    want = dict(rows(engine, "SELECT event, SUM(amount_usd) FROM insurance_fund_events WHERE chain_id = :c GROUP BY event", c=CHAIN))
    kinds = {"LiquidationFeeCollected": "penalties", "InsuranceFundDeposit": "deposits", "ShortfallCovered": "shortfall cover",
             "InsuranceFundWithdraw": "withdrawals"}
    got = dict(flows.group_by("kind").agg(pl.col("amount_usd").sum()).iter_rows())
    assert {kinds[str(e)]: pytest.approx(float(v)) for e, v in want.items()} == got
    assert set(flows.filter(pl.col("direction") == "outflow")["kind"]) <= {"shortfall cover", "withdrawals"}
    report = dashboard.report(engine, CHAIN, Filters())
    assert report["liquidation_fees_usd"] == pytest.approx(float(want["LiquidationFeeCollected"]))
    market = str(rows(engine, "SELECT market FROM insurance_fund_events WHERE event = 'LiquidationFeeCollected' LIMIT 1")[0][0])
    one_market = one(engine, "SELECT SUM(amount_usd) FROM insurance_fund_events WHERE event = 'LiquidationFeeCollected' "
                             "AND market = :m", m=market)
    assert dashboard.report(engine, CHAIN, Filters(markets=(market,)))["liquidation_fees_usd"] == pytest.approx(one_market)


def open_book(engine: sa.Engine) -> pl.DataFrame:
    """Open positions and their market's latest mark, straight from the raw tables."""
    latest = rows(engine, "SELECT p.position_key, p.market, p.is_long, p.size, p.entry_price, p.collateral_usd FROM position_updates p "
                          "JOIN (SELECT position_key, MAX(block_number * 100000 + log_index) AS k FROM position_updates "
                          "GROUP BY position_key) l ON l.position_key = p.position_key AND "
                          "p.block_number * 100000 + p.log_index = l.k WHERE p.size > 0")
    marks = dict(rows(engine, "SELECT p.market, p.mark_price FROM prices p JOIN (SELECT market, MAX(block_number * 100000 + "
                              "log_index) AS k FROM prices GROUP BY market) l ON l.market = p.market AND "
                              "p.block_number * 100000 + p.log_index = l.k"))
    return pl.DataFrame([(k, m, bool(lg), float(s), float(e), float(c), float(marks[m])) for k, m, lg, s, e, c in latest if m in marks],
                        schema=["position_key", "market", "is_long", "size", "entry_price", "collateral_usd", "mark"], orient="row")


def test_open_interest_by_side_equals_the_open_positions_and_the_oi_events(engine: sa.Engine) -> None:
    book = dashboard.position_risk(engine, CHAIN, None)
    raw = open_book(engine)
    oi = book["open_interest"]
    for (market, is_long), g in raw.group_by(["market", "is_long"]):
        side = "long" if is_long else "short"
        got = oi.filter((pl.col("market") == market) & (pl.col("side") == side))
        assert float(got["notional_usd"][0]) == pytest.approx(float((g["size"] * g["mark"]).sum()), rel=1e-9)
        assert int(got["positions"][0]) == g.height
    # conservation: the open longs of each market are its latest long open interest (OpenInterestUpdated)
    events = dict(rows(engine, "SELECT o.market, o.long_open_interest FROM open_interest o JOIN (SELECT market, "
                               "MAX(block_number * 100000 + log_index) AS k FROM open_interest GROUP BY market) l ON "
                               "l.market = o.market AND o.block_number * 100000 + o.log_index = l.k"))
    longs = oi.filter(pl.col("side") == "long")
    assert longs.height and all(float(s) == pytest.approx(float(events[m]), rel=1e-6) for m, s in longs.select("market", "size").iter_rows())
    assert int(book["leverage"]["positions"].sum()) == raw.height


def test_the_open_book_is_read_off_its_partial_covering_index(engine: sa.Engine) -> None:
    """The risk page's open book reads ix_positions_latest_open (open positions only, every column read),
    not the table; the index exists with its predicate on both backends (PostgreSQL's planner picks it by
    the table's size, so only SQLite's plan is asserted), and what it reads is every open position."""
    from core.read.history import OPEN_POSITION_COLUMNS, open_positions, open_positions_query

    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            for markets in (None, ("0x" + "0" * 40,)):
                q = open_positions_query(CHAIN, markets).compile(engine, compile_kwargs={"literal_binds": True})
                plan = " ".join(str(r[-1]) for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {q}")))
                assert "USING COVERING INDEX ix_positions_latest_open" in plan, plan
            [sql] = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'ix_positions_latest_open'")).one()
        else:
            [sql] = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_positions_latest_open'")).one()
    assert "size > 0" in str(sql).replace("(", "").replace(")", "").replace("::numeric", "")
    raw = rows(engine, f"SELECT {', '.join(OPEN_POSITION_COLUMNS)} FROM positions_latest WHERE chain_id = :c AND size > 0 "
                       "ORDER BY position_key", c=CHAIN)
    book = open_positions(engine, CHAIN)
    assert book.height == len(raw) > 0
    assert [r[0] for r in raw] == book["position_key"].to_list()


def brute_liquidation_price(is_long: bool, size: float, entry: float, collateral: float, mm: float) -> float:
    """Where collateral + side × size × (p − entry) = mm × size × p, solved by bisection (no formula)."""
    side = 1.0 if is_long else -1.0
    lo, hi = 0.0, entry * 100

    def gap(p: float) -> float:
        return collateral + side * size * (p - entry) - mm * size * p

    if gap(lo) * gap(hi) > 0:
        return 0.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(lo) * gap(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


def test_liquidation_map_equals_a_brute_force_over_the_raw_positions(engine: sa.Engine) -> None:
    lmap = dashboard.position_risk(engine, CHAIN, None)["liquidation_map"]
    raw = open_book(engine)
    for market in raw["market"].unique().to_list():
        pos = raw.filter(pl.col("market") == market)
        liq = [(lg, s, brute_liquidation_price(lg, s, e, c, risk.MAINTENANCE_MARGIN), mk)
               for lg, s, e, c, mk in pos.select("is_long", "size", "entry_price", "collateral_usd", "mark").iter_rows()]
        curve = lmap.filter(pl.col("market") == market).sort("move")
        for move, got in curve.select("move", "liquidated_notional_usd").iter_rows():
            want = sum(s * p for lg, s, p, mk in liq if (lg and move <= 0 and p >= mk * (1 + move)) or
                       (not lg and move >= 0 and 0 < p <= mk * (1 + move)))
            assert got == pytest.approx(want, rel=1e-6, abs=1e-6), (market, move)
        falls = curve.filter(pl.col("move") <= 0).sort("move", descending=True)["liquidated_notional_usd"]
        rises = curve.filter(pl.col("move") >= 0)["liquidated_notional_usd"]
        assert falls.is_sorted() and rises.is_sorted()  # cumulative outwards from 0


@pytest.mark.parametrize(("shock", "depth"), [(-0.3, 0.0), (-0.3, 50_000.0), (0.4, 0.0)])
def test_adl_under_a_shock_reduces_in_rank_order_what_the_book_did_not_take(engine: sa.Engine, shock: float, depth: float) -> None:
    book = dashboard.position_risk(engine, CHAIN, None)
    perps = book["open_interest"]["market"].unique().sort().to_list()
    market = perps[0]
    marked = dashboard.marked_positions(engine, CHAIN, (market,))
    exposure = dashboard.adl_exposure(engine, CHAIN, market, shock, depth)
    assert exposure["adl_score"].is_sorted(descending=True)
    assert exposure["rank"].to_list() == list(range(1, exposure.height + 1))
    assert (exposure["reduced_size"] <= exposure["size"] + 1e-12).all() and (exposure["reduced_size"] >= 0).all()
    hit = marked.filter((pl.col("is_long") == (shock < 0)) & (
        (pl.col("move_to_liquidation") >= shock) if shock < 0 else (pl.col("move_to_liquidation") <= shock)))
    mark = float(marked["mark"][0]) * (1 + shock)
    unfilled = max(0.0, float(hit["size"].sum()) - depth / mark)
    assert float(exposure["reduced_size"].sum()) == pytest.approx(min(unfilled, float(exposure["size"].sum())), abs=1e-9)
    reduced = exposure["reduced_size"].to_list()
    sizes = exposure["size"].to_list()
    for i in range(1, len(reduced)):  # a lower rank is reduced only once every higher rank is used up
        assert reduced[i] == 0 or reduced[i - 1] == pytest.approx(sizes[i - 1])


def test_adl_history_equals_sql(engine: sa.Engine) -> None:
    history = dashboard.adl_history(engine, CHAIN, Filters())
    want = rows(engine, "SELECT account, COUNT(*), SUM(size_reduced * price), SUM(realized_pnl_usd) FROM adl_events "
                        "WHERE chain_id = :c GROUP BY account", c=CHAIN)
    assert want, "the simulated history has ADL"
    got = {a: (n, v, p) for a, n, v, p in history.select("account", "reductions", "reduced_notional_usd", "realized_pnl_usd").iter_rows()}
    assert got.keys() == {str(a) for a, *_ in want}
    for a, n, v, p in want:
        assert got[str(a)] == (int(n), pytest.approx(float(v)), pytest.approx(float(p)))


def test_an_account_page_equals_sql_over_its_rows(engine: sa.Engine) -> None:
    account = str(rows(engine, "SELECT account FROM adl_events ORDER BY block_number LIMIT 1")[0][0])
    view = dashboard.account(engine, CHAIN, account.upper().replace("0X", "0x"))  # checksum-style input is accepted
    s = view.summary
    pnl, funding, fees = rows(engine, "SELECT SUM(realized_pnl_usd), SUM(funding_paid_usd), SUM(fee_usd) FROM position_updates "
                                      "WHERE account = :a", a=account)[0]
    assert (s["realized_pnl_usd"], s["funding_paid_usd"], s["fees_usd"]) == pytest.approx((float(pnl), float(funding), float(fees)))
    assert s["net_pnl_usd"] == pytest.approx(float(pnl) - float(funding) - float(fees))
    n, volume = rows(engine, "SELECT COUNT(*), SUM(notional_usd) FROM trades WHERE maker = :a OR taker = :a", a=account)[0]
    assert s["trades"] == int(n) and s["volume_usd"] == pytest.approx(float(volume or 0))
    newest = rows(engine, "SELECT tx_hash FROM trades WHERE maker = :a OR taker = :a ORDER BY block_number DESC, log_index DESC "
                          "LIMIT 500", a=account)
    assert view.trades["tx_hash"].to_list() == [str(t) for (t,) in newest]
    assert s["adl_reductions"] == int(one(engine, "SELECT COUNT(*) FROM adl_events WHERE account = :a", a=account)) > 0
    assert s["liquidations"] == view.liquidations.height == int(one(engine, "SELECT COUNT(*) FROM liquidations WHERE account = :a",
                                                                       a=account))
    assert view.pnl_daily["cumulative_net_pnl_usd"][-1] == pytest.approx(s["net_pnl_usd"])
    assert view.known


@pytest.mark.parametrize("text", ["0x123", "hello", "0x" + "g" * 40, "", "0x" + "1" * 41, "<script>x</script>"])
def test_a_malformed_address_is_one_line_naming_it(engine: sa.Engine, text: str) -> None:
    with pytest.raises(AccountError, match="not an address") as e:
        dashboard.account(engine, CHAIN, text)
    assert "\n" not in str(e.value)


def test_an_unknown_address_is_not_known(engine: sa.Engine) -> None:
    assert not dashboard.account(engine, CHAIN, "0x" + "ab" * 20).known


def test_funding_and_premium_equal_sql(engine: sa.Engine) -> None:
    data = dashboard.funding(engine, CHAIN, Filters())
    for market, first, last in rows(engine, "SELECT market, MIN(block_number * 100000 + log_index), MAX(block_number * 100000 + "
                                            "log_index) FROM funding GROUP BY market"):
        idx = dict(rows(engine, "SELECT block_number * 100000 + log_index, cumulative_funding_index FROM funding WHERE market = :m", m=market))
        got = data["summary"].filter(pl.col("market") == market)
        assert float(got["cumulative_funding"][0]) == pytest.approx(float(idx[last]) - float(idx[first]), abs=1e-12)
        rate = one(engine, "SELECT funding_rate FROM funding WHERE market = :m AND block_number * 100000 + log_index = :k", m=market, k=last)
        assert float(got["funding_rate_annual"][0]) == pytest.approx(rate * 24 * 365)
    perps = [str(m) for (m,) in rows(engine, "SELECT market FROM markets WHERE market_type = 'perp'")]
    first = int(one(engine, "SELECT MIN(block_timestamp) FROM prices")) // 3600 * 3600
    # the whole history, and a period of whole hours (the rollup's hours starting in it)
    for f in (Filters(), Filters(first + 5 * 3600, first + 29 * 3600)):
        premium = dashboard.funding(engine, CHAIN, f)["premium"] if f.start is not None else data["premium"]
        period = "" if f.start is None else f"AND block_timestamp >= {f.start} AND block_timestamp < {f.end}"
        want = rows(engine, "SELECT market, block_timestamp / 3600 * 3600, AVG(mark_price - index_price), AVG(index_price), COUNT(*) "
                            f"FROM prices WHERE chain_id = :c {period} GROUP BY market, block_timestamp / 3600 * 3600 "
                            "ORDER BY market, block_timestamp / 3600 * 3600", c=CHAIN)
        want = [r for r in want if r[0] in perps]  # spot markets' pushes are left out: funding is a perp's
        got = premium.sort("market", "bucket").select("market", "bucket", "premium_usd", "index_price", "pushes").rows()
        assert len(got) == len(want) > 20
        for (m, b, p, i, n), (wm, wb, wp, wi, wn) in zip(got, want, strict=True):
            assert (m, b, n) == (wm, int(wb), int(wn))
            assert (p, i) == pytest.approx((float(wp), float(wi)), rel=1e-9, abs=1e-12)


def test_every_card_delta_is_the_change_vs_the_previous_period(engine: sa.Engine) -> None:
    as_of = read.latest_timestamp(engine, CHAIN)
    assert as_of is not None
    f = Filters(as_of - 2 * DAY + 1, as_of + 1)
    cards = {c.label: c for c in dashboard.overview_cards(engine, CHAIN, f, as_of)}
    assert all(c.delta is not None for c in cards.values())

    def volume(start: int, end: int) -> float:
        return one(engine, "SELECT SUM(notional_usd) FROM trades WHERE block_timestamp >= :s AND block_timestamp < :e", s=start, e=end)

    # daily rollups count the days that start in the period: the first whole day on, through the day of as_of
    def day_on(ts: int) -> int:
        return -(-ts // DAY) * DAY

    start_day, end_day = day_on(f.start), day_on(f.end)
    assert cards["Total volume"].value == pytest.approx(volume(start_day, end_day))
    prev = dashboard.previous_period(f, as_of)
    assert prev.end == f.start and prev.start == f.start - 2 * DAY
    assert cards["Total volume"].delta == pytest.approx(volume(start_day, end_day) - volume(day_on(prev.start), start_day))
    n = one(engine, "SELECT COUNT(*) FROM liquidations WHERE block_timestamp >= :s AND block_timestamp < :e", s=start_day, e=end_day)
    n_prev = one(engine, "SELECT COUNT(*) FROM liquidations WHERE block_timestamp >= :s AND block_timestamp < :e",
                 s=day_on(prev.start), e=start_day)
    assert (cards["Liquidations"].value, cards["Liquidations"].delta) == (n, n - n_prev)

    def traders(start: int) -> float:
        return one(engine, "SELECT COUNT(*) FROM (SELECT maker AS t FROM trades WHERE block_timestamp >= :s AND block_timestamp < :e "
                           "UNION SELECT taker FROM trades WHERE block_timestamp >= :s AND block_timestamp < :e) AS u",
                   s=start, e=start + DAY)

    today = as_of // DAY * DAY
    assert cards["Active traders (24h)"].delta == traders(today) - traders(today - DAY)


@pytest.mark.parametrize("page", ["views/buffers.py", "views/risk.py", "views/account.py", "views/revenue.py"])
def test_the_analysis_pages_render_their_figures(simulated: str, engine: sa.Engine, page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    account = str(rows(engine, "SELECT account FROM adl_events ORDER BY block_number LIMIT 1")[0][0])
    at = open_app(simulated, monkeypatch, page, {"address": account, "range": "All"})
    labels = {m.label: m.value for m in at.metric}
    if page == "views/buffers.py":
        price = dashboard.buffers(engine, CHAIN, Filters(), int(read.latest_timestamp(engine, CHAIN) or 0))["share_price"]
        assert labels["Share price"] == f"{price:,.4f}"
    elif page == "views/risk.py":
        book = dashboard.position_risk(engine, CHAIN, None)
        assert labels["Open positions"] == f"{int(book['leverage']['positions'].sum()):,}"
        assert at.get("vega_lite_chart")
    elif page == "views/revenue.py":
        report = dashboard.report(engine, CHAIN, Filters())
        assert labels["Taker fees"] == fmt.format_usd(report["fees_taker_usd"])
        assert labels["Liquidation fees"] == fmt.format_usd(report["liquidation_fees_usd"])
        assert len(at.get("vega_lite_chart")) >= 6
    else:
        n = int(one(engine, "SELECT COUNT(*) FROM trades WHERE maker = :a OR taker = :a", a=account))
        assert labels["Trades"] == f"{n:,}"
        assert not at.warning


def test_report_fees_and_volume_by_fill_type_equal_sql(engine: sa.Engine) -> None:
    report = dashboard.report(engine, CHAIN, Filters())
    taker, maker = rows(engine, "SELECT SUM(taker_fee_usd), SUM(maker_fee_usd) FROM trades WHERE chain_id = :c", c=CHAIN)[0]
    assert (report["fees_taker_usd"], report["fees_maker_usd"]) == pytest.approx((float(taker), float(maker)))
    assert float(maker) < 0 < float(taker)  # market makers' rebates outweigh resting orders' fees in the simulator
    by_type = dict(rows(engine, "SELECT fill_type, SUM(price * size) FROM trades WHERE chain_id = :c GROUP BY fill_type", c=CHAIN))
    names = {0: "normal", 1: "liquidation", 2: "adl", 3: "backstop"}
    want = {name: float(by_type.get(k, 0.0)) for k, name in names.items()}
    assert report["volume_by_fill_type_usd"] == pytest.approx(want, rel=1e-9)
    assert want["liquidation"] > 0
    assert sum(report["volume_by_fill_type_usd"].values()) == pytest.approx(report["total_volume_usd"], rel=1e-9)


def test_fees_by_kind_and_traders_pnl_per_day_equal_sql(engine: sa.Engine) -> None:
    data = dashboard.revenue_and_pnl(engine, CHAIN, Filters(), "day")
    fees = data["fees"]
    want = {int(d): (float(t), float(m)) for d, t, m in rows(engine, "SELECT block_timestamp / 86400 * 86400, SUM(taker_fee_usd), "
                                                                   "SUM(maker_fee_usd) FROM trades GROUP BY block_timestamp / 86400 * 86400")}
    liq = dict(rows(engine, "SELECT block_timestamp / 86400 * 86400, SUM(amount_usd) FROM insurance_fund_events WHERE "
                            "event = 'LiquidationFeeCollected' GROUP BY block_timestamp / 86400 * 86400"))
    for bucket, t, m, lf, net in fees.select("bucket", "taker_fees_usd", "maker_fees_usd", "liquidation_fees_usd", "net_fees_usd").iter_rows():
        assert (t, m) == pytest.approx(want.get(bucket, (0.0, 0.0)))
        assert lf == pytest.approx(float(liq.get(bucket, 0.0)))
        assert net == pytest.approx(t + m + lf)
    assert float(fees["cumulative_net_fees_usd"][-1]) == pytest.approx(float(fees["net_fees_usd"].sum()))
    pnl = data["traders_pnl"]
    per_day = {int(d): (float(r), float(f), float(x)) for d, r, f, x in rows(engine, (
        "SELECT block_timestamp / 86400 * 86400, SUM(realized_pnl_usd), SUM(funding_paid_usd), SUM(fee_usd) FROM position_updates "
        "GROUP BY block_timestamp / 86400 * 86400"))}
    counts = {int(d): (int(p), int(n)) for d, p, n in rows(engine, (
        "SELECT d, SUM(CASE WHEN net > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN net < 0 THEN 1 ELSE 0 END) FROM (SELECT "
        "block_timestamp / 86400 * 86400 AS d, account, SUM(realized_pnl_usd - funding_paid_usd - fee_usd) AS net FROM "
        "position_updates GROUP BY block_timestamp / 86400 * 86400, account) AS s GROUP BY d"))}
    assert set(pnl["bucket"].to_list()) == set(per_day)
    for bucket, r, f, x, won, lost in pnl.select("bucket", "realized_pnl_usd", "funding_paid_usd", "position_fees_usd",
                                                  "profitable_traders", "losing_traders").iter_rows():
        assert (r, f, x) == pytest.approx(per_day[bucket], abs=1e-6)
        assert (won, lost) == counts[bucket]
    total = sum(r - f - x for r, f, x in per_day.values())
    assert float(pnl["cumulative_net_pnl_usd"][-1]) == pytest.approx(total, abs=1e-6)


def test_fill_type_and_taker_side_volumes_add_up_to_the_volume_per_bucket(engine: sa.Engine) -> None:
    data = dashboard.revenue_and_pnl(engine, CHAIN, Filters(), "hour")
    volume = dashboard.market_stats(engine, CHAIN, Filters(), "hour").group_by("bucket").agg(pl.col("volume_usd").sum())
    for frame in (data["fill_volume"], data["taker_sides"]):
        per = frame.group_by("bucket").agg(pl.col("volume_usd").sum()).join(volume, on="bucket", suffix="_total")
        assert per.height == volume.height
        assert (per["volume_usd"] - per["volume_usd_total"]).abs().max() < 1e-6 * float(volume["volume_usd"].max())


def test_a_database_with_outdated_rollups_is_rebuilt_on_open(database_url: str) -> None:
    build_database(database_url, seed=3, days=1, trades_per_day=400)
    want = dashboard.report(db.make_engine(database_url), CHAIN, Filters())
    with db.make_engine(database_url).begin() as conn:  # what a database rolled up before the fee columns looks like
        conn.execute(sa.text("ALTER TABLE stats_daily DROP COLUMN taker_fees_usd"))
        conn.execute(sa.text("DROP TABLE trader_pnl_daily"))
    from core.read import open_database

    got = dashboard.report(open_database(database_url), CHAIN, Filters())
    assert got.keys() == want.keys()
    for key in want:
        if key == "daily":
            assert [d["date"] for d in got[key]] == [d["date"] for d in want[key]]
        elif isinstance(want[key], dict):
            assert got[key] == pytest.approx(want[key], rel=1e-9)
        else:
            assert got[key] == pytest.approx(want[key], rel=1e-9)
    assert got["fees_taker_usd"] > 0


@pytest.fixture(scope="module")
def api(simulated: str) -> Iterator[str]:
    """The /stats API on the simulated history (a real server on a loopback port)."""
    with api_server(simulated) as (base, _proc):
        yield base


def test_the_api_serves_the_analyses_as_the_pages_compute_them(api: str, engine: sa.Engine) -> None:
    report = dashboard.report(engine, CHAIN, Filters())
    status, _, fees = get(f"{api}/stats/fees?range=all")
    assert status == 200
    assert sum(p["taker_fees_usd"] for p in fees["points"]) == pytest.approx(report["fees_taker_usd"])
    assert sum(p["liquidation_fees_usd"] for p in fees["points"]) == pytest.approx(report["liquidation_fees_usd"])
    assert [p["time"] for p in fees["points"]] == sorted({p["time"] for p in fees["points"]})
    status, _, fills = get(f"{api}/stats/fill-types?range=all&interval=1h")
    assert status == 200 and fills["interval"] == "1h"
    by_type = report["volume_by_fill_type_usd"]
    for kind in ("normal", "liquidation", "adl", "backstop"):
        assert sum(p[kind] for p in fills["points"]) == pytest.approx(by_type[kind], rel=1e-9, abs=1e-6)
    status, _, pnl = get(f"{api}/stats/traders-pnl?range=all")
    want = one(engine, "SELECT SUM(realized_pnl_usd - funding_paid_usd - fee_usd) FROM position_updates")
    assert status == 200 and pnl["points"][-1]["cumulative_net_pnl_usd"] == pytest.approx(want, abs=1e-6)
    assert get(f"{api}/stats/traders-pnl?interval=1h")[0] == 422  # per-trader days do not split into hours
    status, _, vault = get(f"{api}/stats/vault?range=all")
    assert status == 200 and vault["share_price"] == pytest.approx(report["backstop_share_price"], rel=1e-9)
    assert {r["window_days"] for r in vault["returns"]} == {7, 30, 90}
    status, _, book = get(f"{api}/stats/positions")
    assert status == 200
    assert sum(r["positions"] for r in book["leverage"]) == open_book(engine).height
    status, _, funding = get(f"{api}/stats/funding?range=all")
    assert status == 200 and {r["market"] for r in funding["markets"]} == {
        str(m) for (m,) in rows(engine, "SELECT DISTINCT market FROM funding")}
    status, _, adl = get(f"{api}/stats/adl?range=all")
    assert status == 200 and len(adl["accounts"]) == int(one(engine, "SELECT COUNT(DISTINCT account) FROM adl_events"))


def test_the_api_account_answers_one_account_and_refuses_a_malformed_one(api: str, engine: sa.Engine) -> None:
    account = str(rows(engine, "SELECT account FROM adl_events ORDER BY block_number LIMIT 1")[0][0])
    status, _, body = get(f"{api}/stats/accounts/{account}")
    assert status == 200 and body["known"] and body["address"] == account
    assert body["summary"]["trades"] == int(one(engine, "SELECT COUNT(*) FROM trades WHERE maker = :a OR taker = :a", a=account))
    status, _, unknown = get(f"{api}/stats/accounts/0x{'ab' * 20}")
    assert status == 200 and not unknown["known"]
    status, _, bad = get(f"{api}/stats/accounts/0x12%27%3B%20DROP%20TABLE%20trades")
    assert status == 422 and bad["parameter"] == "address" and "not an address" in bad["error"]
    assert one(engine, "SELECT COUNT(*) FROM trades") > 0
