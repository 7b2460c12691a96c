"""``python -m core.vault``: replay the indexed history through a vault design and print the outcome.

    python -m core.vault --database-url URL --preset NAME [--set field=value …] [--start YYYY-MM-DD]
                         [--end YYYY-MM-DD] [--json] [--bootstrap N] [--memo FILE.md] [--seed S]
                         [--run-threshold F]

With ``--json`` the last line is one JSON object (the summary). With ``--bootstrap N`` or ``--memo`` the
decision analysis of core.vault.decision runs too (N resamples, 200 by default with ``--memo``; seeded by
``--seed``): the JSON gains ``ci``, ``daily_var_95``, ``daily_cvar_95``, ``daily_var_99``, ``daily_cvar_99``,
``time_to_recover_days``, ``tornado``, ``scenarios``, ``run`` (and the histogram, worst days, concentration),
and ``--memo`` writes the Decision memo (Markdown) to FILE.md. Unknown presets, unknown fields, bad
values and unreadable databases get one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from core import config, dashboard, db
from core.read.history import load, open_positions
from core.vault import decision, memo
from core.vault.history import History, HistoryError
from core.vault.params import PRESETS, ParamError, VaultParams, parse_value, preset
from core.vault.replay import Result, replay
from core.vault.scenarios import ScenarioError

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
    ap.add_argument("--bootstrap", type=int, default=None, metavar="N",
                    help="run the decision analysis with N block-bootstrap resamples (≥ 200 for the issue's bands)")
    ap.add_argument("--memo", default=None, metavar="FILE.md", help="write the Decision memo (runs the analysis)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the bootstrap's numpy Generator (default 1)")
    ap.add_argument("--run-threshold", type=float, default=decision.RunSpec().threshold,
                    help="drawdown (0–1) at which depositors start to withdraw (default %(default)s)")
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
        analysis = _decision(args, engine, history, params, result)
    except (ParamError, UsageError, HistoryError, ScenarioError, db.DatabaseError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s: dict[str, Any] = {k: result.summary[k] for k in KEYS}
    s["preset"] = args.preset
    if analysis is not None:
        s.update({k: v for k, v in analysis.items() if k != "summary"})
    if not args.json:
        print(f"{args.preset}: {history.liquidations.height:,} liquidations over {history.days:.1f} days")
        for k in KEYS:
            v = s[k]
            print(f"  {k:32} {v:,.4f}" if isinstance(v, float) else f"  {k:32} {'n/a' if v is None else v}")
        if analysis is not None:
            for k in ("ci", "daily_var_95", "daily_cvar_95", "daily_var_99", "daily_cvar_99", "time_to_recover_days"):
                print(f"  {k:32} {analysis[k]}")
            print(f"  {'tornado (widest)':32} {analysis['tornado'][0]['parameter']}")
            for sc in analysis["scenarios"]:
                print(f"  {sc['name']:32} NAV {sc['nav_before_usd']:,.0f} → {sc['nav_after_usd']:,.0f} (the worst up "
                      f"to full size, at ×{sc['worst_at_scale']:g}), bad debt {sc['bad_debt_usd']:,.0f}")
            for lock, v in analysis["run"].items():
                print(f"  {'run, lock ' + lock + ' d':32} withdrawn {v['withdrawn_usd']:,.0f}, queued {v['queued_usd']:,.0f}")
    else:
        print(json.dumps(s, sort_keys=True))
    return 0


def _decision(args: argparse.Namespace, engine: sa.Engine, history: History, params: VaultParams,
              result: Result) -> dict[str, Any] | None:
    """The decision analysis when --bootstrap or --memo asks for it (its memo written to --memo)."""
    if args.bootstrap is None and args.memo is None:
        return None
    n = 200 if args.bootstrap is None else args.bootstrap
    decision.check_analysis(history, params, n, args.run_threshold)
    insurance, backstop = dashboard.balances_before(engine, history.chain_id, None)
    analysis = decision.analyse(history, params, np.random.default_rng(args.seed), n_bootstrap=n,
                                positions=open_positions(engine, history.chain_id), backstop_usd=backstop,
                                insurance_usd=insurance, run=decision.RunSpec(threshold=args.run_threshold),
                                result=result)
    if args.memo:
        text = memo.memo({args.preset: analysis}, context=f"Preset `{args.preset}`, bootstrap seed {args.seed}.")
        Path(args.memo).write_text(text)
    return analysis


if __name__ == "__main__":
    sys.exit(main())
