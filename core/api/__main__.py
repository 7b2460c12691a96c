"""`python -m core.api`: serve the /stats API with uvicorn (docs at /docs).

Settings: ``DATABASE_URL`` (or --database-url); ``API_CORS_ORIGINS`` (comma-separated origins a
browser may call from; none by default); ``API_CACHE_TTL`` (seconds a response is cached, 0-3600,
default 30; 0 turns the cache off: every request computes its answer from the database);
``API_COUNT_SQL=1`` (an ``X-SQL-Statements`` header: the statements each response ran); ``RPC_URL``
(``/health`` reports the lag behind that node).

--workers N runs N server processes on the one port (each with its own database connections and
cache), so N requests compute at once: one Python process computes one at a time (the GIL). The
default is the number of CPUs this process may use. Each worker listens on its own SO_REUSEPORT
socket, so the kernel spreads connections evenly over them (with one shared socket, a burst of
keep-alive connections went mostly to whichever worker accepted first: 42 of 50 in a test).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import uvicorn

from core.api.app import cache_ttl
from core.api.workers import APP, supervise


def default_workers() -> int:
    """The CPUs this process may run on (at least 1)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default=None, help="default: $DATABASE_URL or sqlite:///data/marginx.db")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"server processes (default: the CPUs available, here {default_workers()})")
    p.add_argument("--no-access-log", action="store_true", help="do not log each request")
    args = p.parse_args(argv)
    try:
        cache_ttl(os.environ.get("API_CACHE_TTL"))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    workers = default_workers() if args.workers is None else args.workers
    if not 1 <= workers <= 64:
        print(f"error: --workers must be 1-64, got {workers}", file=sys.stderr)
        return 2
    if args.database_url is not None:
        os.environ["DATABASE_URL"] = args.database_url  # read by each worker's app (core.api.app.from_environment)
    if workers > 1:
        return supervise(workers, args.host, args.port, not args.no_access_log)
    uvicorn.run(APP, factory=True, host=args.host, port=args.port, access_log=not args.no_access_log, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
