"""Follow: what one indexer commit costs in rollups, next to a full rebuild of the day it lands in.

    .venv/bin/python -m bench.follow --trades 10000000 [--database-url URL] [--day busiest|last] [--repeat 3] [--json]

On an N-trade database (URL; default ``/work/bench-data/sqlite<N>.db``, built with the simulator as
``bench.scale`` builds it — 90 days of N/90 trades — when it does not hold a history yet):

1. its busiest UTC day (most trades; ``--day last``: its last day, where the chain ends), and the
   last blocks of that day holding ≥ 1,000 events;
2. inside one transaction that is rolled back at the end (the database is left as it was): the
   rollups taken back to the end of that day (``--day last``: nothing to take back, the chain ends
   there), the state a following indexer is in, then to the start of those blocks. The raw rows
   after a busiest day that is not the last stay: the fold reads raw rows by block range only, so
   it does not see them, and deleting them (half of a 10M database, in one transaction) took over
   20 minutes. What they change: the rewind drops, instead of restoring, the newest position and
   last-trade rows of accounts active after that day (the fold writes them again for those it
   touches), and the trader counts are taken as of the chain's last block;
3. ``commit_1k_rollup_s``: the rollup work a commit of those blocks does (``rollup.fold`` of
   them: hours, days, trader keys, totals, last trades, trader counts, positions — what
   ``rollup.refresh_in`` runs after the rows are inserted);
4. ``day_rebuild_s``: rebuilding that whole day from its raw rows (``rollup.rewind`` to its start,
   then ``rollup.fold`` of its blocks): what every commit cost before rollups were incremental,
   and what a refresh after a reorg into that day costs. Mid-chain (a busiest day that is not the
   last) only the fold is counted, a lower bound: the rewind also reads every later raw trade there.

Both best of ``--repeat`` (each run back in the same state), wall-clock with the CPU seconds beside.
Targets: ≤ 0.1 s per 1,000 events, ≥ 20× below the day rebuild.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core import db, rollup, schema
from core.utc import DAY, format_day

COMMIT_EVENTS = 1_000
TARGET_S = 0.1
TARGET_RATIO = 20.0


def say(line: str) -> None:
    print(line, flush=True)


def timed(fn: Callable[[], Any]) -> dict[str, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return {"s": round(time.perf_counter() - t0, 4), "cpu_s": round(time.process_time() - c0, 4)}


def busiest_day(conn: Connection, chain_id: int) -> tuple[int, int]:
    """(start of the UTC day with the most trades, its trades), off the daily rollup."""
    t = schema.table_of(schema.MarketStatsDaily)
    trades = sa.func.sum(t.c.trades)
    day, n = conn.execute(sa.select(t.c.bucket, trades).where(t.c.chain_id == chain_id).group_by(t.c.bucket)
                          .order_by(trades.desc()).limit(1)).one()
    return int(day), int(n)


def event_counts(conn: Connection, chain_id: int, first: int, last: int) -> dict[int, int]:
    """Events (rows of every event table) per block in first..last."""
    per_block: dict[int, int] = {}
    for model in {*schema.EVENT_TABLES.values()}:
        t = schema.table_of(model)
        q = sa.select(t.c.block_number, sa.func.count()).where(
            t.c.chain_id == chain_id, t.c.block_number >= first, t.c.block_number <= last).group_by(t.c.block_number)
        for block, n in conn.execute(q):
            per_block[int(block)] = per_block.get(int(block), 0) + int(n)
    return per_block


def day_blocks(conn: Connection, chain_id: int, day: int) -> tuple[int, int]:
    b = schema.table_of(schema.Block)
    lo, hi = conn.execute(sa.select(sa.func.min(b.c.number), sa.func.max(b.c.number)).where(
        b.c.chain_id == chain_id, b.c.timestamp >= day, b.c.timestamp < day + DAY)).one()
    return int(lo), int(hi)


def last_blocks(per_block: dict[int, int], events: int) -> tuple[int, int]:
    """The first of the last blocks holding ≥ ``events`` events, and how many they hold."""
    total = 0
    for block in sorted(per_block, reverse=True):
        total += per_block[block]
        if total >= events:
            return block, total
    return min(per_block), total


def last_day(conn: Connection, chain_id: int) -> tuple[int, int]:
    """(start of the last indexed UTC day, its trades), off the daily rollup."""
    t = schema.table_of(schema.MarketStatsDaily)
    day = conn.execute(sa.select(sa.func.max(t.c.bucket)).where(t.c.chain_id == chain_id)).scalar_one()
    n = conn.execute(sa.select(sa.func.sum(t.c.trades)).where(t.c.chain_id == chain_id, t.c.bucket == day)).scalar_one()
    return int(day), int(n)


def measure(url: str, repeat: int, which: str = "busiest") -> dict[str, Any]:
    from core.simulator.chain import CHAIN_ID

    engine = db.make_engine(url)
    t0 = time.perf_counter()
    rollup.upgrade(engine)  # a database rolled up by an older version: its newer rollup tables, once
    if (upgrade_s := time.perf_counter() - t0) > 0.5:
        say(f"database: rollup tables added since it was built filled in {upgrade_s:.1f} s (once)")
    with engine.connect() as conn:
        trades = int(conn.execute(sa.text("SELECT COUNT(*) FROM trades WHERE chain_id = :c"), {"c": CHAIN_ID}).scalar_one())
        day, day_trades = busiest_day(conn, CHAIN_ID) if which == "busiest" else last_day(conn, CHAIN_ID)
        first, last = day_blocks(conn, CHAIN_ID, day)
        commit_first, commit_events = last_blocks(event_counts(conn, CHAIN_ID, first, last), COMMIT_EVENTS)
        busiest, busiest_trades = busiest_day(conn, CHAIN_ID)
        chain_end = int(conn.execute(sa.select(sa.func.max(schema.table_of(schema.Block).c.number)).where(
            schema.table_of(schema.Block).c.chain_id == CHAIN_ID)).scalar_one())
    say(f"database: {trades:,} trades; {which} day {format_day(day)}: {day_trades:,} trades in blocks {first:,}..{last:,}"
        f"{' (the chain ends there)' if last == chain_end else f' (the chain goes on to block {chain_end:,})'}; "
        f"{'' if which == 'busiest' else f'busiest day {format_day(busiest)}: {busiest_trades:,} trades; '}"
        f"the commit: blocks {commit_first:,}..{last:,}, {commit_events:,} events")
    commits: list[dict[str, float]] = []
    rebuilds: list[dict[str, float]] = []
    rewinds: list[dict[str, float]] = []
    ends = last == chain_end
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            def cut() -> None:
                rollup.rewind(conn, CHAIN_ID, day + DAY)

            def commit_rows() -> None:
                rollup.fold(conn, CHAIN_ID, commit_first, last + 1)

            def rewind_day() -> None:
                rollup.rewind(conn, CHAIN_ID, day)

            def fold_day() -> None:
                rollup.fold(conn, CHAIN_ID, first, last + 1)

            if not ends:
                t = timed(cut)
                say(f"setup: the rollups taken back to the end of that day in {t['s']:.1f} s (not measured)")
            for n in range(repeat):
                rollup.rewind(conn, CHAIN_ID, day)
                rollup.fold(conn, CHAIN_ID, first, commit_first)  # the day up to the commit, rolled up
                commits.append(timed(commit_rows))
                back, again = timed(rewind_day), timed(fold_day)
                # mid-chain, the rewind also reads the raw trades after the day (see 2.): only the fold is counted
                rebuilds.append({k: round(back[k] + again[k], 4) for k in back} if ends else again)
                rewinds.append(back)
                say(f"run {n + 1}: commit of {commit_events:,} events {commits[-1]['s']:.4f} s (CPU {commits[-1]['cpu_s']:.3f} s); "
                    f"day rebuild {rebuilds[-1]['s']:.3f} s (CPU {rebuilds[-1]['cpu_s']:.2f} s; its rewind {back['s']:.3f} s"
                    f"{'' if ends else ', not counted'})")
        finally:
            trans.rollback()
    engine.dispose()
    commit = min(commits, key=lambda r: r["s"])
    rebuild = min(rebuilds, key=lambda r: r["s"])
    per_1k = commit["s"] * COMMIT_EVENTS / commit_events
    ratio = rebuild["s"] / commit["s"]
    per_1k_cpu = commit["cpu_s"] * COMMIT_EVENTS / commit_events
    ratio_cpu = rebuild["cpu_s"] / commit["cpu_s"] if commit["cpu_s"] > 0 else float("inf")
    say(f"commit: {commit['s']:.4f} s for {commit_events:,} events ({per_1k:.4f} s per 1,000; target ≤ {TARGET_S} s: "
        f"{'met' if per_1k <= TARGET_S else 'NOT met'}); day rebuild {rebuild['s']:.3f} s: {ratio:,.0f}× the commit "
        f"(target ≥ {TARGET_RATIO:.0f}×: {'met' if ratio >= TARGET_RATIO else 'NOT met'}); best of {repeat}; "
        f"in CPU seconds {per_1k_cpu:.4f} s per 1,000 and {ratio_cpu:,.0f}×; load average {os.getloadavg()[0]:.1f}")
    return {"database": db.redact_db_url(url), "trades": trades, "day": format_day(day), "which_day": which,
            "day_trades": day_trades, "day_blocks": [first, last], "chain_ends_with_day": last == chain_end,
            "busiest_day": format_day(busiest), "busiest_day_trades": busiest_trades,
            "commit_events": commit_events, "commit_1k_rollup_s": round(per_1k, 4), "commit_rollup": commit,
            "commit_1k_rollup_cpu_s": round(per_1k_cpu, 4), "day_rebuild_s": rebuild["s"], "day_rebuild": rebuild,
            "day_rebuild_includes_rewind": ends, "day_rewind": min(rewinds, key=lambda r: r["s"]),
            "ratio": round(ratio, 1), "ratio_cpu": round(ratio_cpu, 1), "repeat": repeat,
            "load_average": round(os.getloadavg()[0], 1), "cpus": os.cpu_count()}


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--trades", type=int, default=1_000_000, help="trades of the database (built when missing)")
    p.add_argument("--database-url", default=None, help="default: sqlite:////work/bench-data/sqlite<N>.db")
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best is reported")
    p.add_argument("--day", choices=("busiest", "last"), default="busiest",
                   help="the day the commit lands at the end of (default: the busiest; last: the chain's own end)")
    p.add_argument("--json", action="store_true", help="end with one JSON object of every figure")
    args = p.parse_args()
    label = f"{args.trades // 1_000_000}m" if args.trades % 1_000_000 == 0 else str(args.trades)
    url = args.database_url or f"sqlite:////work/bench-data/sqlite{label}.db"
    from bench.scale import holds_history, step_build

    if not holds_history(url):
        step_build(url, args.trades, reuse=False)
    figures = measure(url, max(1, args.repeat), args.day)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
