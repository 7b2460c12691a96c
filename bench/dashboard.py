"""Overview cost: rollups (what the app does) vs a plain SQL GROUP BY over the raw trades (the peer).

    .venv/bin/python -m bench.dashboard --trades 1000000 [--database-url URL] [--json]

Builds (once, under bench/out/) a simulated 90-day database with about N trades, unless a
database URL is given. Then times every Overview figure and series:
- cold: a new engine, first computation in this process;
- warm: the same again (connections and SQLite's page cache warm; the app's 30 s cache not used);
- sql_groupby: the same daily per-market volume / trades / liquidation figures computed by SQL
  GROUP BY over the raw trades and liquidations tables.
With --json the last line is {"trades", "overview_cold_s", "overview_warm_s", "sql_groupby_s"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from core import dashboard, db
from core.period import Filters
from core.read import stats as read

ROOT = Path(__file__).resolve().parent.parent

OUT = ROOT / "bench" / "out"
DAYS = 90


def build(trades: int) -> str:
    from core.simulator import build_database

    path = OUT / f"dashboard-{trades}.db"
    url = f"sqlite:///{path}"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        build_database(url, seed=1, days=DAYS, trades_per_day=max(1, trades // DAYS))
        print(f"built {path.name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return url


def overview(url: str) -> float:
    engine = db.make_engine(url)
    t0 = time.perf_counter()
    chain_id = read.chain_ids(engine)[0]
    as_of = read.latest_timestamp(engine, chain_id)
    assert as_of is not None
    f = Filters()
    dashboard.overview_cards(engine, chain_id, f, as_of)
    dashboard.overview_series(engine, chain_id, f, "day")
    seconds = time.perf_counter() - t0
    engine.dispose()
    return seconds


def sql_groupby(url: str) -> float:
    engine = db.make_engine(url)
    t0 = time.perf_counter()
    with engine.connect() as conn:
        for q in (
            "SELECT block_timestamp / 86400 AS day, market, SUM(price * size), COUNT(*) FROM trades GROUP BY day, market",
            "SELECT block_timestamp / 86400 AS day, market, is_long, COUNT(*), SUM(size * liquidation_price) "
            "FROM liquidations GROUP BY day, market, is_long",
            "SELECT COUNT(*) FROM (SELECT maker FROM trades UNION SELECT taker FROM trades) AS traders",  # alias: PostgreSQL
        ):
            conn.execute(sa.text(q)).all()
    seconds = time.perf_counter() - t0
    engine.dispose()
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trades", type=int, default=1_000_000)
    p.add_argument("--database-url", default=None, help="use this database instead of building one")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    url = args.database_url or build(args.trades)
    with db.make_engine(url).connect() as conn:
        trades = int(conn.execute(sa.text("SELECT COUNT(*) FROM trades")).scalar_one())
    cold = overview(url)
    warm = min(overview(url) for _ in range(3))
    peer = sql_groupby(url)
    print(f"{trades:,} trades: Overview cold {cold:.3f} s, warm {warm:.3f} s; SQL GROUP BY over raw trades {peer:.3f} s "
          f"({peer / warm:.0f}x the warm Overview)")
    if args.json:
        print(json.dumps({"trades": trades, "overview_cold_s": round(cold, 4), "overview_warm_s": round(warm, 4),
                          "sql_groupby_s": round(peer, 4)}))


if __name__ == "__main__":
    main()
