"""``python -m core.simulator``: simulate a marginX history into a database (no node) or onto a node.

    python -m core.simulator --seed 1 --days 90 --database-url sqlite:///data/demo.db --truth truth.json
    python -m core.simulator --seed 1 --days 2 --rpc-url http://127.0.0.1:8545 --manifest-out m.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from core.simulator.params import DEFAULT_DAYS, DEFAULT_START, DEFAULT_TRADES_PER_DAY


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m core.simulator", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, required=True, help="seed of the history (same seed and flags ⇒ same events)")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"UTC days of history (default {DEFAULT_DAYS})")
    p.add_argument("--trades-per-day", type=int, default=DEFAULT_TRADES_PER_DAY,
                   help=f"target Trade events a day (default {DEFAULT_TRADES_PER_DAY})")
    p.add_argument("--markets", nargs="+", metavar="SYM", help="markets to list (default: all demo markets)")
    p.add_argument("--start", type=_date, default=DEFAULT_START.date(),
                   help=f"first UTC day (default {DEFAULT_START:%Y-%m-%d})")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--database-url", help="index the history into this database with no node (raw path)")
    out.add_argument("--rpc-url", help="deploy on this (fresh anvil) node and send the history there")
    p.add_argument("--manifest-out", help="with --rpc-url: where to write the deployment manifest")
    p.add_argument("--replace", action="store_true", help="with --database-url: replace an existing demo history")
    p.add_argument("--truth", help="write the simulator's own ledger (headline figures) as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    if args.rpc_url and not args.manifest_out:
        p.error("--rpc-url needs --manifest-out")
    if args.manifest_out and not args.rpc_url:
        p.error("--manifest-out only goes with --rpc-url")
    if args.days < 1 or args.trades_per_day < 1:
        p.error("--days and --trades-per-day must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from core.db import DatabaseError
    from core.simulator.build import SimulatorError, build_database, run_on_node

    started = time.monotonic()

    def progress(fraction: float, message: str) -> None:
        if not args.quiet:
            print(f"\r[{fraction:6.1%}] {message}   ", end="", file=sys.stderr, flush=True)

    try:
        if args.database_url:
            truth = build_database(args.database_url, args.seed, args.days, args.trades_per_day, args.markets,
                                   progress, start=args.start, replace_existing=args.replace)
        else:
            truth = run_on_node(args.rpc_url, args.manifest_out, args.seed, args.days, args.trades_per_day,
                                args.markets, progress, start=args.start)
    except (SimulatorError, DatabaseError, ValueError) as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(file=sys.stderr)
    if args.truth:
        truth.write(args.truth)
    events = sum(truth.events.values())
    print(f"{truth.total_trades:,} trades, {events:,} events in {truth.blocks:,} blocks, "
          f"{truth.liquidations:,} liquidations, ${truth.socialized_debt_usd:,.2f} socialized, "
          f"{time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
