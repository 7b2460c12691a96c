"""`python -m core.report`: the headline figures of a period as one JSON object (what pages show)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence

from core import config, dashboard, db
from core.period import Filters, days_window
from core.read import stats as read
from core.utc import day_start


class ReportError(Exception):
    """Bad report input; the message says what and how to fix it."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_filters(engine_markets: dict[str, str], since: dt.date | None, until: dt.date | None,
                  symbols: Sequence[str] | None) -> Filters:
    """Filters from CLI values; ``engine_markets`` maps symbol → market address."""
    if since and until and since > until:
        raise ReportError(f"--since {since} is after --until {until}")
    markets = None
    if symbols:
        unknown = [s for s in symbols if s not in engine_markets]
        if unknown:
            raise ReportError(f"unknown market symbol(s) {unknown}; known: {sorted(engine_markets)}")
        markets = tuple(engine_markets[s] for s in symbols)
    return Filters(
        start=day_start(since) if since else None,
        end=days_window(until, until)[1] if until else None,
        markets=markets,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.report", description=__doc__)
    p.add_argument("--database-url", default=None, help="default: $DATABASE_URL or sqlite:///data/marginx.db")
    p.add_argument("--since", type=_date, default=None, help="first UTC day (YYYY-MM-DD), inclusive")
    p.add_argument("--until", type=_date, default=None, help="last UTC day (YYYY-MM-DD), inclusive")
    p.add_argument("--market", action="append", default=None, metavar="SYMBOL", help="restrict to markets (repeatable)")
    p.add_argument("--chain-id", type=int, default=None, help="when the database holds several chains")
    args = p.parse_args(argv)
    try:
        engine = db.make_engine(args.database_url or config.database_url())
        chains = read.chain_ids(engine)
        if not chains:
            raise ReportError("the database holds no indexed deployment: run python -m core.indexer first")
        chain_id = args.chain_id if args.chain_id is not None else chains[0]
        if chain_id not in chains:
            raise ReportError(f"chain {chain_id} is not in the database; it holds {chains}")
        if args.chain_id is None and len(chains) > 1:
            raise ReportError(f"the database holds chains {chains}: pass --chain-id")
        markets = read.markets(engine, chain_id)
        symbols = dict(zip(markets["symbol"].to_list(), markets["market"].to_list(), strict=True))
        filters = build_filters(symbols, args.since, args.until, args.market)
        print(json.dumps(dashboard.report(engine, chain_id, filters)))
    except (ReportError, db.DatabaseError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
