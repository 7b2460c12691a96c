"""The /stats API under load: requests/s and latency with 50 concurrent clients, cached and uncached.

    .venv/bin/python -m bench.api [--database-url URL] [--clients 50] [--seconds 10] [--workers N] [--json]

Starts ``python -m core.api`` on URL (default: the 10M-trade SQLite database in /work/bench-data;
``--workers`` server processes, default the server's: one per CPU) in three modes: *cached*
(API_CACHE_TTL=60); *uncached* (API_CACHE_TTL=0: nothing is stored or shared, every request
computes its answer from the database); *uncached, one client* (the cost of one computation). For
each server and each path (``/stats/overview`` and ``/stats/volume?range=all``), ``--clients``
keep-alive HTTP/1.1 connections each send one request after another for ``--seconds`` seconds
(a closed loop); one request per path warms the server first, then a second of the load
(for the cached server this fills every worker's cache). Reports requests/s, latency p50/p99/max, non-200 answers,
the CPU seconds of the server (all its processes) and of the clients, and the machine's 1-minute
load average before and after the run (other work on the machine moves every figure). The clients
are asyncio on raw sockets in this process, on the same machine: their CPU competes with the server's.

Targets (issue #14): cached ≥ 1,000 requests/s on 2 cores; uncached p99 < 100 ms at 10M trades;
no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.api_server import api_server, get

DEFAULT_URL = "sqlite:////work/bench-data/sqlite10m.db"
PATHS = ("/stats/overview", "/stats/volume?range=all")
#: (mode, server environment, clients: None = --clients).
MODES: tuple[tuple[str, dict[str, str], int | None], ...] = (
    ("cached", {"API_CACHE_TTL": "60"}, None),
    ("uncached", {"API_CACHE_TTL": "0"}, None),
    ("uncached, one client", {"API_CACHE_TTL": "0"}, 1),
)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return out


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its descendants (Linux /proc)."""
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def _client(host: str, port: int, path: str, until: float, latencies: list[float], statuses: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    try:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(int(v) for k, _, v in (line.partition(":") for line in lines[1:]) if k.lower() == "content-length")
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            statuses.append(int(lines[0].split()[1]))
    finally:
        writer.close()


async def _load(base: str, path: str, clients: int, seconds: float) -> tuple[list[float], list[int], float]:
    parts = urlsplit(base)
    latencies: list[float] = []
    statuses: list[int] = []
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(*(_client(parts.hostname or "127.0.0.1", parts.port or 80, path, until, latencies, statuses)
                           for _ in range(clients)))
    return latencies, statuses, time.perf_counter() - start


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1] if len(values) > 1 else values[0]


def measure(base: str, pid: int, path: str, clients: int, seconds: float) -> dict[str, Any]:
    status, _, _ = get(base + path)  # warm-up (and, when caching, the stored answer)
    if status != 200:
        raise SystemExit(f"{path}: warm-up answered {status}")
    asyncio.run(_load(base, path, clients, 1.0))  # every worker warm (its statements compiled, its cache filled)
    load0 = os.getloadavg()[0]
    cpu0, own0 = _cpu_seconds(pid), time.process_time()
    latencies, statuses, wall = asyncio.run(_load(base, path, clients, seconds))
    cpu, own = _cpu_seconds(pid) - cpu0, time.process_time() - own0
    n = len(latencies)
    return {"path": path, "clients": clients, "load_average_1m_before": round(load0, 2),
            "load_average_1m": round(os.getloadavg()[0], 2), "requests": n, "seconds": round(wall, 2),
            "requests_per_s": round(n / wall, 1),
            "p50_ms": round(_quantile(latencies, 0.5) * 1e3, 2), "p99_ms": round(_quantile(latencies, 0.99) * 1e3, 2),
            "max_ms": round(max(latencies) * 1e3, 2), "errors": sum(1 for s in statuses if s != 200),
            "server_cpu_s": round(cpu, 2), "client_cpu_s": round(own, 2),
            "server_cpu_ms_per_request": round(cpu / n * 1e3, 3), "client_cpu_ms_per_request": round(own / n * 1e3, 3)}


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default=DEFAULT_URL)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=10.0, help="load per path and server")
    p.add_argument("--workers", type=int, default=None, help="server processes (default: the server's, one per CPU)")
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    args = p.parse_args()
    results: dict[str, Any] = {"database_url": args.database_url, "cpus": os.cpu_count(), "workers": args.workers, "runs": []}
    for mode, env, clients in MODES:
        n = args.clients if clients is None else clients
        with api_server(args.database_url, env=env, workers=args.workers) as (base, proc):
            for path in PATHS:
                run = {"mode": mode, **measure(base, proc.pid, path, n, args.seconds)}
                results["runs"].append(run)
                print(f"{mode:22} {n:3} clients {path:24} {run['requests_per_s']:9,.1f} req/s  p50 {run['p50_ms']:8.2f} ms  "
                      f"p99 {run['p99_ms']:8.2f} ms  max {run['max_ms']:8.2f} ms  errors {run['errors']}  "
                      f"CPU server {run['server_cpu_s']:.1f} s ({run['server_cpu_ms_per_request']:.2f} ms/req) "
                      f"clients {run['client_cpu_s']:.1f} s ({run['client_cpu_ms_per_request']:.3f} ms/req)  "
                      f"load {run['load_average_1m_before']}→{run['load_average_1m']}", file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
