"""`python -m core.api`: serve the /stats API with uvicorn (docs at /docs).

Settings: ``DATABASE_URL`` (or --database-url); ``API_CORS_ORIGINS`` (comma-separated origins a
browser may call from; none by default); ``API_CACHE_TTL`` (seconds a response is cached, 0-3600,
default 30; 0 turns the cache off); ``API_COALESCE=0`` (with the cache off, identical concurrent
requests each compute instead of sharing the next computation); ``API_COUNT_SQL=1`` (an
``X-SQL-Statements`` header: the statements each response ran); ``RPC_URL`` (``/health`` reports
the lag behind that node).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import uvicorn

from core import config
from core.api.app import create_app

DEFAULT_TTL = 30


def cache_ttl(value: str | None) -> int:
    """API_CACHE_TTL as whole seconds (default 30)."""
    if value is None or not value.strip():
        return DEFAULT_TTL
    try:
        ttl = int(value)
    except ValueError:
        raise ValueError(f"API_CACHE_TTL must be whole seconds (0-3600), got {value!r}") from None
    if not 0 <= ttl <= 3600:
        raise ValueError(f"API_CACHE_TTL must be 0-3600 seconds, got {ttl}")
    return ttl


def cors_origins(value: str | None) -> list[str]:
    """API_CORS_ORIGINS as a list (comma-separated, blanks dropped)."""
    return [o.strip() for o in (value or "").split(",") if o.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default=None, help="default: $DATABASE_URL or sqlite:///data/marginx.db")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--no-access-log", action="store_true", help="do not log each request")
    args = p.parse_args(argv)
    try:
        ttl = cache_ttl(os.environ.get("API_CACHE_TTL"))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app = create_app(args.database_url or config.database_url(), ttl=ttl,
                     cors_origins=cors_origins(os.environ.get("API_CORS_ORIGINS")),
                     count_sql=os.environ.get("API_COUNT_SQL", "") == "1",
                     coalesce=os.environ.get("API_COALESCE", "1") != "0")
    uvicorn.run(app, host=args.host, port=args.port, access_log=not args.no_access_log, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
