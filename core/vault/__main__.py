"""``python -m core.vault``: replay the indexed history through a vault design and print the outcome.

    python -m core.vault --database-url URL --preset NAME [--set field=value …] [--start YYYY-MM-DD]
                         [--end YYYY-MM-DD] [--json]

With ``--json`` the last line is one JSON object (the summary). Unknown presets, unknown fields, bad
values and unreadable databases get one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core import config, db
from core.read.history import load
from core.vault.history import HistoryError
from core.vault.params import PRESETS, ParamError, parse_value, preset
from core.vault.replay import replay

KEYS = ("final_nav_usd", "period_return", "apr", "sharpe", "annualised_note", "max_drawdown", "worst_day_loss_pct",
        "shortfall_usd", "vault_absorbed_usd", "adl_usd", "backstop_usd", "insurance_usd", "socialized_usd",
        "kept_margin_usd", "unwind_pnl_usd", "slippage_usd", "liquidation_pnl_usd", "fees_income_usd", "fee_income_usd",
        "mm_income_usd", "performance_fees_usd", "vault_bad_debt_usd", "worst_liquidation_loss_usd",
        "bad_debt_status_quo_usd", "bad_debt_proposed_usd", "bad_debt_avoided_usd", "insurance_draw_status_quo_usd",
        "insurance_draw_usd", "liquidations", "liquidations_absorbed", "forced_closes", "cap_hits", "days")


class UsageError(Exception):
    pass


def _date(text: str) -> int:
    try:
        return int(dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.timezone.utc).timestamp())
    except ValueError:
        raise UsageError(f"dates are YYYY-MM-DD, got {text!r}") from None


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set takes field=value, got {item!r}")
        out[name.strip()] = parse_value(name.strip(), value)
    return out


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite URL's file when it does not exist (the replay never creates databases)."""
    try:
        u = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None  # make_engine reports the bad URL
    db_path = u.database or ""
    if u.get_backend_name() == "sqlite" and db_path not in ("", ":memory:") and not db_path.startswith("file:"):
        return None if Path(db_path).expanduser().exists() else db_path
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.vault", description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: DATABASE_URL or data/marginx.db)")
    ap.add_argument("--preset", default="proposed", help=f"one of: {', '.join(PRESETS)}")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a parameter (repeatable); 'none' lifts a limit; 5%% = 0.05")
    ap.add_argument("--start", default=None, help="first UTC day replayed (YYYY-MM-DD)")
    ap.add_argument("--end", default=None, help="last UTC day replayed, inclusive (YYYY-MM-DD)")
    ap.add_argument("--json", action="store_true", help="end with one JSON object")
    args = ap.parse_args(argv)
    try:
        params = preset(args.preset).with_overrides(**_overrides(args.overrides))
        start = _date(args.start) if args.start else None
        end = _date(args.end) + 86_400 if args.end else None
        if start is not None and end is not None and end <= start:
            raise UsageError(f"--end {args.end} is before --start {args.start}")
        url = args.database_url or config.database_url()
        missing = _missing_sqlite_file(url)
        if missing:
            raise UsageError(f"database file {missing} does not exist: index a deployment into it or build the demo "
                             "(python -m core.simulator --seed 1 --days 90 --database-url URL)")
        engine = db.make_engine(url, create=False)
        history = load(engine, start=start, end=end)
        result = replay(history, params)
    except (ParamError, UsageError, HistoryError, db.DatabaseError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = {k: result.summary[k] for k in KEYS}
    s["preset"] = args.preset
    if not args.json:
        print(f"{args.preset}: {history.liquidations.height:,} liquidations over {history.days:.1f} days")
        for k in KEYS:
            v = s[k]
            print(f"  {k:32} {v:,.4f}" if isinstance(v, float) else f"  {k:32} {'n/a' if v is None else v}")
    else:
        print(json.dumps(s, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
