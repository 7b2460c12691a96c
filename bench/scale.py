"""Scale: the whole app's figures at N simulated trades, on one backend (SQLite or PostgreSQL).

    .venv/bin/python -m bench.scale --trades 10000000 --database-url URL [--reuse] [--json] [--steps build,rollup,pages,vault,app]

For the database at URL (keep big ones outside the repository):
1. build: N simulated trades (90 days at N/90 a day, seed 1) through ``core.simulator.build_database``
   — the raw-log path through the indexer's real decode → load, with the rollups it refreshes as the
   history comes in and once more at the end. Reports index throughput (events/s and trades/s up to
   the last batch, wall time; the final rollup refresh apart). With --reuse and a database that
   already holds the history, the build is skipped and the figures recorded when it was built
   (``bench/out/scale-<hash of URL>.json``) are reported again, marked as reused.
2. rollup: a full rebuild (every bucket invalidated, then ``core.rollup.refresh``) and an incremental
   refresh of the last day (its buckets invalidated and rebuilt from its raw rows: the work a refresh
   does after a day of new blocks is appended), timed apart.
3. pages: Overview cold and warm (``bench/dashboard.py``'s ``overview``: the calls the Overview page
   makes) and its SQL GROUP BY peer, then the other pages' main ``core.dashboard`` / ``core.read`` calls over the whole
   history (the sidebar's "All"), each on a new engine: each page's calls once cold (the first time this
   process reads them) and then twice more, warm (the best of the two, per page and per call; target
   < 0.5 s a page on SQLite at 10M trades), with the load average when the page was timed. A page
   whose cold run takes over 10 s (the Indexed page, which re-adds the raw rows on purpose) runs once.
4. vault: ``core.read.history.load`` of the whole history and one replay of the ``proposed`` preset.
5. app: ``streamlit run app.py`` on URL (BUILD_DEMO=0) in a subprocess, every page of app.py loaded
   with ``?range=All`` in Debian's chromium (playwright); the server's RSS is sampled while each page
   loads, and its peak (VmHWM) reported. Target: < 1 GB.

Every timing is wall-clock, with the CPU seconds behind it (this process and its children; with a
PostgreSQL server on this machine, also the backends serving this database), because on a shared
machine wall-clock varies with the other load. Human-readable lines as it goes; with --json one JSON
object last.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from bench.dashboard import overview, sql_groupby
from core import dashboard, db, rollup, schema
from core.period import Filters, trailing_window
from core.read import stats as read
from core.read import status
from tests.app_server import app_server  # the same server the browser test starts

ROOT = Path(__file__).resolve().parent.parent

#: The typed core calls behind each page, by the name the figures print.
PAGE_CALLS: dict[str, Any] = {
    "market_table": dashboard.market_table, "market_series": dashboard.market_series,
    "overview_series": dashboard.overview_series, "liquidation_rows": dashboard.liquidation_rows,
    "top_liquidated_accounts": read.top_liquidated_accounts, "trader_activity": dashboard.trader_activity,
    "index_status": status.index_status, "reconciliation": status.reconciliation,
    "revenue_and_pnl": dashboard.revenue_and_pnl, "funding": dashboard.funding, "position_risk": dashboard.position_risk,
    "adl_exposure": dashboard.adl_exposure, "adl_history": dashboard.adl_history, "buffers": dashboard.buffers,
    "account": dashboard.account,
}

OUT = ROOT / "bench" / "out"
DAYS = 90
SEED = 1
STEPS = ("build", "rollup", "pages", "vault", "app")
PAGES = ("overview", "markets", "liquidations", "traders", "vault", "indexed")  # app.py's pages, by URL path
MEMORY_TARGET_MB = 1024
WARM_RUNS = 2  # the pages step: each page's calls again after the cold run, the best kept
PAGE_TARGET_WARM_S = 0.5  # each page's data, warm, on SQLite at 10M trades (#15)
NO_WARM_AFTER_S = 10.0  # a page whose cold run takes longer is not timed warm (its warm figures are the cold ones)
TICK = os.sysconf("SC_CLK_TCK")


def say(line: str) -> None:
    print(line, flush=True)


# ------------------------------------------------------------------ CPU and memory of processes

def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields after the command name (index 0 = state, 1 = ppid, 11-14 = utime … cstime)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def process_cpu_s(pid: int) -> float:
    f = _stat(pid)
    return 0.0 if f is None else (int(f[11]) + int(f[12])) / TICK


def _is_local_postgres(url: str) -> bool:
    parsed = sa.engine.make_url(url)
    return parsed.get_backend_name() == "postgresql" and parsed.host in ("127.0.0.1", "localhost", "::1")


class OwnBackends:
    """CPU of the PostgreSQL backends serving this process's connections (the server is on this
    machine): each connection's backend pid is noted when it opens and its CPU read when it closes
    (or, had the backend already gone, its last reading), so other databases of the same cluster
    (another benchmark) are not counted."""

    def __init__(self) -> None:
        self.closed_s = 0.0
        self.live: dict[int, float] = {}  # backend pid → its CPU at the last reading
        self._lock = threading.Lock()

    def install(self) -> None:
        sa.event.listen(sa.pool.Pool, "connect", self._connect)
        sa.event.listen(sa.pool.Pool, "close", self._close)
        sa.event.listen(sa.pool.Pool, "close_detached", self._close_detached)

    def _connect(self, dbapi_connection: Any, record: Any) -> None:
        pid = getattr(getattr(dbapi_connection, "info", None), "backend_pid", None)  # psycopg 3
        if pid:
            record.info["backend_pid"] = pid
            with self._lock:
                self.live[pid] = process_cpu_s(pid)

    def _read(self, pid: int) -> float:
        f = _stat(pid)
        if f is not None:
            self.live[pid] = (int(f[11]) + int(f[12])) / TICK
        return self.live[pid]

    def _done(self, pid: int | None) -> None:
        with self._lock:
            if pid in self.live:
                self.closed_s += self._read(pid)
                del self.live[pid]

    def _close(self, dbapi_connection: Any, record: Any) -> None:
        self._done(record.info.get("backend_pid"))

    def _close_detached(self, dbapi_connection: Any) -> None:
        self._done(getattr(getattr(dbapi_connection, "info", None), "backend_pid", None))

    def cpu_s(self) -> float:
        with self._lock:
            return self.closed_s + sum(self._read(pid) for pid in list(self.live))


OWN_BACKENDS = OwnBackends()


class DatabaseBackends(threading.Thread):
    """CPU of every backend connected to one database of a local cluster (another process's
    connections: the app's), sampled every ``interval`` s; a backend's last ``interval`` before it
    exits is missed (the app keeps its pooled connections open)."""

    def __init__(self, url: str, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        parsed = sa.engine.make_url(url)
        self.needle = f" {parsed.database} ".encode()
        self.interval = interval
        self.seen: dict[tuple[int, str], float] = {}
        self._done = threading.Event()
        self._lock = threading.Lock()

    def sample(self) -> None:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"postgres: ") and self.needle in cmd and (f := _stat(int(proc.name))) is not None:
                with self._lock:
                    self.seen[(int(proc.name), f[19])] = sum(int(x) for x in f[11:13]) / TICK  # key: pid, start time

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            time.sleep(self.interval)

    def cpu_s(self) -> float:
        self.sample()
        with self._lock:
            return sum(self.seen.values())

    def stop(self) -> None:
        self._done.set()


class Clock:
    """Wall-clock and CPU seconds of a step: this process and its children (or another process,
    ``pid``), and the PostgreSQL backends working for it when the server is on this machine."""

    def __init__(self, url: str, pid: int | None = None, backends: DatabaseBackends | None = None) -> None:
        self.pid = pid
        self.server: Callable[[], float] | None = None
        if backends is not None:
            self.server = backends.cpu_s
        elif _is_local_postgres(url):
            self.server = OWN_BACKENDS.cpu_s

    def read(self) -> tuple[float, float, float | None]:
        if self.pid is None:
            t = os.times()
            cpu = t.user + t.system + t.children_user + t.children_system
        else:
            cpu = process_cpu_s(self.pid)
        return time.perf_counter(), cpu, (self.server() if self.server else None)

    def since(self, start: tuple[float, float, float | None]) -> dict[str, float]:
        now = self.read()
        out = {"s": round(now[0] - start[0], 4), "cpu_s": round(now[1] - start[1], 2)}
        if now[2] is not None and start[2] is not None:
            out["server_cpu_s"] = round(now[2] - start[2], 2)
        return out

    def time(self, fn: Callable[[], Any]) -> tuple[dict[str, float], Any]:
        start = self.read()
        out = fn()
        return self.since(start), out


def fmt(t: dict[str, float]) -> str:
    """'12.3 s (CPU 10.1 s + server 4.2 s)'."""
    server = f" + server {t['server_cpu_s']:,.1f} s" if "server_cpu_s" in t else ""
    return f"{t['s']:,.2f} s (CPU {t['cpu_s']:,.1f} s{server})"


def fmt_ms(t: dict[str, float]) -> str:
    """'0.123 s (CPU 0.08 s)': :func:`fmt` for sub-second figures."""
    server = f" + server {t['server_cpu_s']:.2f} s" if "server_cpu_s" in t else ""
    return f"{t['s']:.3f} s (CPU {t['cpu_s']:.2f} s{server})"


def peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """VmRSS of a process every ``interval`` seconds; ``take()`` is the max since the previous take()."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self._max = 0
        self._done = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._done.is_set():
            kb = proc_status_kb(self.pid, "VmRSS")
            if kb is None:
                return
            with self._lock:
                self._max = max(self._max, kb)
            time.sleep(self.interval)

    def take(self) -> float:
        kb = proc_status_kb(self.pid, "VmRSS") or 0
        with self._lock:
            out, self._max = max(self._max, kb), kb
        return round(out / 1024, 1)

    def stop(self) -> None:
        self._done.set()


# ------------------------------------------------------------------ 1. build

def record_path(url: str) -> Path:
    return OUT / f"scale-{hashlib.sha1(url.encode()).hexdigest()[:12]}.json"


def holds_history(url: str) -> bool:
    from core.simulator.chain import CHAIN_ID, DEMO_NAME

    engine = db.make_engine(url)
    try:
        cp = schema.table_of(schema.Checkpoint)
        with engine.connect() as conn:
            return conn.execute(sa.select(cp.c.last_block).where(
                cp.c.chain_id == CHAIN_ID, cp.c.deployment == DEMO_NAME)).first() is not None
    finally:
        engine.dispose()


def build(url: str, trades: int) -> dict[str, Any]:
    """Index ``trades`` simulated trades into ``url`` through the raw-log path; the timings."""
    from core.simulator import build_database

    per_day = max(1, round(trades / DAYS))
    clock = Clock(url)
    marks: dict[str, Any] = {}

    def progress(fraction: float, message: str) -> None:
        if message.startswith("building the hourly"):
            marks["rollup_start"] = clock.read()
        elif fraction >= marks.get("next", 0.0):
            marks["next"] = fraction + 0.1
            say(f"  build: {fraction:4.0%} {message} ({time.perf_counter() - start[0]:,.0f} s)")

    engine = db.make_engine(url)
    start = clock.read()
    truth = build_database(engine, seed=SEED, days=DAYS, trades_per_day=per_day, progress=progress)
    total = clock.since(start)
    engine.dispose()
    rollup_start = marks.get("rollup_start", clock.read())
    index = {"s": round(rollup_start[0] - start[0], 2), "cpu_s": round(rollup_start[1] - start[1], 1)}
    if start[2] is not None and rollup_start[2] is not None:
        index["server_cpu_s"] = round(rollup_start[2] - start[2], 1)
    final_rollup = {k: round(total[k] - index[k], 2) for k in index}
    events = sum(truth.events.values())
    return {
        "days": DAYS, "trades_per_day": per_day, "trades": truth.total_trades, "events": events,
        "liquidations": truth.liquidations, "blocks": truth.blocks,
        "build": total, "index": index, "final_rollup": final_rollup,
        "index_events_per_s": round(events / index["s"]), "index_trades_per_s": round(truth.total_trades / index["s"]),
        "peak_rss_mb": peak_rss_mb(),  # this process (decode → load, then the rollup); the simulator runs in a child
    }


def step_build(url: str, trades: int, reuse: bool) -> dict[str, Any]:
    path = record_path(url)
    if reuse and holds_history(url):
        if not path.exists():
            say("build: reused the database; no build figures were recorded for it (built elsewhere)")
            return {"reused": True}
        figures = json.loads(path.read_text())
        say(f"build: reused the database; the figures recorded when it was built ({figures.get('built_at', '?')}):")
        figures["reused"] = True
    else:
        say(f"build: {trades:,} trades over {DAYS} days into {db.redact_db_url(url)}")
        load_before = os.getloadavg()[0]
        figures = build(url, trades) | {"built_at": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": load_before,
                                        "load_after": os.getloadavg()[0]}
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=1))
        figures["reused"] = False
    say(f"build: {figures['trades']:,} trades, {figures['events']:,} events, {figures['liquidations']:,} liquidations "
        f"in {fmt(figures['build'])}: up to the last batch {fmt(figures['index'])} = {figures['index_events_per_s']:,} "
        f"events/s, {figures['index_trades_per_s']:,} trades/s; final rollup refresh {fmt(figures['final_rollup'])}")
    return figures


# ------------------------------------------------------------------ 2. rollup

def _last_day(engine: sa.Engine, chain_id: int) -> tuple[int, int]:
    """(start of the last indexed UTC day, the last block before it)."""
    b = schema.table_of(schema.Block)
    with engine.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(b.c.timestamp)).where(b.c.chain_id == chain_id)).scalar_one()
        day0 = int(newest) // rollup.DAY * rollup.DAY
        last_good = conn.execute(sa.select(sa.func.max(b.c.number)).where(
            b.c.chain_id == chain_id, b.c.timestamp < day0)).scalar_one()
    return day0, int(last_good)


def _rewind_rollups(engine: sa.Engine, chain_id: int, through_block: int) -> None:
    """Mark the rollups of the blocks after ``through_block`` dirty (as a reorg rewind to it does), so
    the next ``rollup.refresh`` rebuilds every bucket from the day of the first block after it
    (-1: every bucket)."""
    with db.transaction(engine) as conn:
        rollup.invalidate(conn, chain_id, through_block)


def step_rollup(url: str, chain_id: int, full_rebuild: bool = True) -> dict[str, Any]:
    """A full rebuild of every rollup bucket (unless told not to: the build's own final rollup is
    one), then an incremental refresh of the last day."""
    clock = Clock(url)
    engine = db.make_engine(url)
    full: dict[str, Any] = {}
    if full_rebuild:
        _rewind_rollups(engine, chain_id, -1)
        full, _ = clock.time(lambda: rollup.refresh(engine, chain_id))
    day0, last_good = _last_day(engine, chain_id)
    _rewind_rollups(engine, chain_id, last_good)
    incremental, rebuilt = clock.time(lambda: rollup.refresh(engine, chain_id))
    assert rebuilt == day0, (rebuilt, day0)
    with engine.connect() as conn:
        day_trades = conn.execute(sa.text("SELECT COUNT(*) FROM trades WHERE chain_id = :c AND block_number > :b"),
                                  {"c": chain_id, "b": last_good}).scalar_one()
    engine.dispose()
    say(f"rollup: full rebuild {fmt(full) if full else 'not run (--no-full-rollup)'}; incremental refresh of the last day ({day_trades:,} trades) {fmt(incremental)}")
    return {"full": full, "incremental_last_day": incremental, "last_day_trades": int(day_trades),
            "bench_peak_rss_mb": peak_rss_mb()}


# ------------------------------------------------------------------ 3. pages' data

def on_new_engine(url: str, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """fn(a new engine, *args): a cold engine, as on the app's first visit of a page."""
    def run() -> Any:
        engine = db.make_engine(url)
        try:
            return fn(engine, *args)
        finally:
            engine.dispose()
    return run


def step_pages(url: str, chain_id: int) -> dict[str, Any]:
    """Overview cold / warm and its SQL peer (bench/dashboard.py), then the other pages' main calls, range All."""
    clock = Clock(url)
    cold_t, cold = clock.time(lambda: overview(url))
    warm_runs = [clock.time(lambda: overview(url)) for _ in range(3)]
    warm = min(seconds for _, seconds in warm_runs)
    warm_t = {k: min(t[k] for t, _ in warm_runs) for k in warm_runs[0][0]}  # best of 3, each figure
    peer_t, peer = clock.time(lambda: sql_groupby(url))
    say(f"Overview (range All): cold {cold:.3f} s (CPU {cold_t['cpu_s']:.2f} s"
        + (f" + server {cold_t['server_cpu_s']:.2f} s" if "server_cpu_s" in cold_t else "")
        + f"), warm {warm:.3f} s (best of 3; CPU {warm_t['cpu_s']:.2f} s"
        + (f" + server {warm_t['server_cpu_s']:.2f} s" if "server_cpu_s" in warm_t else "")
        + f"); SQL GROUP BY over the raw trades {fmt(peer_t)}")
    figures: dict[str, Any] = {"overview_cold_s": round(cold, 4), "overview_warm_s": round(warm, 4),
                               "sql_groupby_s": round(peer, 4), "overview_cold": cold_t, "overview_warm": warm_t,
                               "sql_groupby": peer_t}
    as_of = on_new_engine(url, read.latest_timestamp, chain_id)()
    f = Filters(*trailing_window(as_of, None))  # the sidebar's "All"
    all_markets = on_new_engine(url, read.markets, chain_id)()
    first_market = all_markets["market"][0]
    first_perp = str(all_markets.filter(pl.col("market_type") == "perp")["market"][0])
    busiest_trader = str(on_new_engine(url, dashboard.trader_activity, chain_id, f, 1)()[1]["trader"][0])
    calls = {
        "markets": [("market_table", (chain_id, f)), ("market_series", (chain_id, first_market, f, "day"))],
        "liquidations": [("overview_series", (chain_id, f, "day")), ("liquidation_rows", (chain_id, f, 500)),
                         ("top_liquidated_accounts", (chain_id, f))],
        "traders": [("trader_activity", (chain_id, f))],
        "indexed": [("index_status", ()), ("reconciliation", (chain_id,))],
        "revenue": [("revenue_and_pnl", (chain_id, f, "day")), ("funding", (chain_id, f))],
        "risk": [("position_risk", (chain_id, None)), ("adl_exposure", (chain_id, first_perp, -0.2)),
                 ("adl_history", (chain_id, f))],
        "buffers": [("buffers", (chain_id, f, as_of))],
        "account": [("account", (chain_id, busiest_trader))],
    }
    for page, page_calls in calls.items():
        runs = []  # the first (cold: this process has not read these rows yet), then WARM_RUNS more
        for _ in range(1 + WARM_RUNS):
            start = clock.read()
            parts = {name: clock.time(on_new_engine(url, PAGE_CALLS[name], *args))[0] for name, args in page_calls}
            runs.append((clock.since(start), parts))
            if runs[0][0]["s"] > NO_WARM_AFTER_S:  # far from any target (the Indexed page's reconciliation): once
                break
        (cold, cold_parts), warm_runs = runs[0], runs[1:] or runs[:1]
        best, best_parts = min(warm_runs, key=lambda r: r[0]["s"])
        figures[page] = cold | {"calls_s": {n: t["s"] for n, t in cold_parts.items()}, "warm_runs": len(runs) - 1,
                                "warm": best | {"calls_s": {n: min(r[1][n]["s"] for r in warm_runs) for n in best_parts},
                                                "calls_cpu_s": {n: min(r[1][n]["cpu_s"] for r in warm_runs) for n in best_parts}},
                                "load_average": round(os.getloadavg()[0], 1)}
        warm_calls = figures[page]["warm"]["calls_s"]
        say(f"{page} page data: cold {fmt_ms(cold)}, warm {fmt_ms(best)} (best of {len(runs) - 1 or 'none: the cold run'}; each call's best: "
            + ", ".join(f"{n} {s:.3f} s" for n, s in warm_calls.items()) + f"); load {figures[page]['load_average']}"
            + ("" if best["s"] < PAGE_TARGET_WARM_S else f"; warm is OVER the {PAGE_TARGET_WARM_S} s target"))
    return figures


# ------------------------------------------------------------------ 4. vault what-if

def step_vault(url: str, chain_id: int) -> dict[str, Any]:
    """core.read.history.load of the whole history, then one replay of the `proposed` preset."""
    from core import vault
    from core.read import history as read_history

    clock = Clock(url)
    load_t, history = clock.time(on_new_engine(url, read_history.load, chain_id))
    replay_t, result = clock.time(lambda: vault.replay(history, vault.preset("proposed")))
    s = result.summary
    say(f"vault: load {fmt(load_t)} ({history.liquidations.height:,} liquidations, {history.marks.height:,} marks, "
        f"{history.days:.0f} days); replay of `proposed` {fmt(replay_t)}: {int(s['liquidations_absorbed']):,} absorbed, "
        f"bad debt {s['bad_debt_status_quo_usd']:,.0f} → {s['bad_debt_proposed_usd']:,.0f} USD")
    return {"load": load_t, "replay": replay_t, "liquidations": history.liquidations.height,
            "marks": history.marks.height, "absorbed": int(s["liquidations_absorbed"]),
            "bad_debt_status_quo_usd": round(float(s["bad_debt_status_quo_usd"]), 2),
            "bad_debt_proposed_usd": round(float(s["bad_debt_proposed_usd"]), 2), "bench_peak_rss_mb": peak_rss_mb()}


# ------------------------------------------------------------------ 5. the app's memory

def step_app(url: str, timeout_s: float) -> dict[str, Any]:
    """The real app on ``url``: every page with ?range=All in chromium; the server's RSS per page and its peak."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("error: Debian's chromium is not installed (scripts/test.sh installs it)")
    OUT.mkdir(parents=True, exist_ok=True)
    log = open(OUT / "scale-app.log", "w")  # noqa: SIM115
    figures: dict[str, Any] = {"pages": {}}
    with app_server(url, output=log, start_timeout_s=120) as (base, proc):
        sampler = RssSampler(proc.pid)
        backends = DatabaseBackends(url) if _is_local_postgres(url) else None
        clock = Clock(url, pid=proc.pid, backends=backends)
        try:
            sampler.start()
            if backends is not None:
                backends.start()
            figures["started_rss_mb"] = sampler.take()
            say(f"app: streamlit pid {proc.pid} on {base}, RSS {figures['started_rss_mb']:,.0f} MB before any page")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic"])
                page = browser.new_page(viewport={"width": 1400, "height": 1800})
                ms = int(timeout_s * 1000)
                idle = '!document.querySelector(\'[data-testid="stStatusWidget"]\')'
                for name in PAGES:
                    start = clock.read()
                    page.goto(f"{base}/{'' if name == 'overview' else name}?range=All", wait_until="networkidle", timeout=ms)
                    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=ms)
                    page.wait_for_function(idle, timeout=ms)
                    # what the page ends up showing (or an error box), then idle again
                    ready = ('[data-testid="stAlertContentSuccess"], [data-testid="stAlertContentError"]' if name == "indexed" else
                             '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg, [data-testid="stException"]')
                    page.wait_for_selector(ready, timeout=ms)
                    page.wait_for_function(idle, timeout=ms)
                    took = clock.since(start)
                    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts()
                    rss = sampler.take()
                    hwm = round((proc_status_kb(proc.pid, "VmHWM") or 0) / 1024, 1)
                    figures["pages"][name] = took | {"rss_max_mb": rss, "peak_so_far_mb": hwm,
                                                     "errors": [e.splitlines()[0][:300] for e in errors if e.strip()]}
                    say(f"app: {name:<12} {fmt(took)}; server RSS max {rss:,.0f} MB while it loaded, peak so far {hwm:,.0f} MB"
                        + (f"; ERRORS: {figures['pages'][name]['errors']}" if errors else ""))
                browser.close()
            figures["peak_rss_mb"] = round((proc_status_kb(proc.pid, "VmHWM") or 0) / 1024, 1)
        finally:
            sampler.stop()
            if backends is not None:
                backends.stop()
    log.close()
    figures["target_mb"] = MEMORY_TARGET_MB
    figures["target_met"] = figures["peak_rss_mb"] < MEMORY_TARGET_MB
    worst = max(figures["pages"], key=lambda n: figures["pages"][n]["rss_max_mb"])
    say(f"app: peak RSS (VmHWM) {figures['peak_rss_mb']:,.0f} MB (highest while loading {worst}) — target "
        f"< {MEMORY_TARGET_MB:,} MB {'met' if figures['target_met'] else 'NOT met'}")
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trades", type=int, default=1_000_000, help="simulated trades to build (90 days of trades/90 a day)")
    p.add_argument("--database-url", required=True)
    p.add_argument("--reuse", action="store_true", help="keep a database that already holds the history")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    p.add_argument("--no-full-rollup", action="store_true",
                   help="rollup step: only the incremental refresh (the build's final rollup was a full one)")
    p.add_argument("--page-timeout", type=float, default=900, help="seconds a page may take in the browser")
    p.add_argument("--json", action="store_true", help="end with one JSON object of every figure")
    args = p.parse_args()
    steps = [s for s in args.steps.split(",") if s]
    if unknown := set(steps) - set(STEPS):
        p.error(f"unknown steps: {', '.join(sorted(unknown))} (known: {', '.join(STEPS)})")
    url = args.database_url
    OWN_BACKENDS.install()
    figures: dict[str, Any] = {"database": db.redact_db_url(url), "backend": sa.engine.make_url(url).get_backend_name(),
                               "cpus": os.cpu_count(), "load_average_start": round(os.getloadavg()[0], 1)}
    if "build" in steps:
        figures["build"] = step_build(url, args.trades, args.reuse)
    rest = [s for s in steps if s != "build"]
    if rest:
        from core.simulator.chain import CHAIN_ID

        engine = db.make_engine(url)
        with engine.connect() as conn:
            figures["trades"] = int(conn.execute(sa.text("SELECT COUNT(*) FROM trades")).scalar_one())
        t0 = time.perf_counter()
        rollup.upgrade(engine)  # a database built by an older version: fill the newer rollup tables first, once
        if (upgrade_s := time.perf_counter() - t0) > 0.5:
            say(f"database: rollup tables added since it was built filled in {upgrade_s:.1f} s (once)")
        engine.dispose()
        say(f"database: {figures['trades']:,} trades; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        if "rollup" in rest:
            figures["rollup"] = step_rollup(url, CHAIN_ID, not args.no_full_rollup)
        if "pages" in rest:
            figures["pages"] = step_pages(url, CHAIN_ID)
        if "vault" in rest:
            figures["vault"] = step_vault(url, CHAIN_ID)
        if "app" in rest:
            figures["app"] = step_app(url, args.page_timeout)
    figures["load_average_end"] = round(os.getloadavg()[0], 1)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
