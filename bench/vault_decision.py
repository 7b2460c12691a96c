"""The vault decision analysis (#13) timed on the benchmark's year: one design, the whole analysis.

    .venv/bin/python -m bench.vault_decision [--json] [--liquidations 100000] [--days 365] [--bootstrap 200]
                                             [--preset proposed] [--seed 1]

The history is bench.vault's synthetic year (no database). The analysis has no open positions or fund
balances of its own there, so this benchmark adds a seeded open book: 300 positions a market at 2x–25x
around the last mark, lognormal notionals (median 20k USD). The fund balances are bench.vault's
BackstopVault and InsuranceFund. Timed: the point replay, then :func:`core.vault.decision.analyse`
(the bootstrap, the daily distribution, the tornado's 16 replays, the three tails, the runs) and
each part on its own. The issue's target is < 60 s for the whole analysis on the 2-core machine; it
is reported as information, not asserted. With --json the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import polars as pl

from bench.vault import BACKSTOP_USD, CHAIN_ID, INSURANCE_USD, START, build
from core.utc import DAY
from core.vault import decision, tails
from core.vault.history import History, MarkBook, assemble
from core.vault.params import preset
from core.vault.replay import replay

TARGET_S = 60.0


def open_book(h: History, rng: np.random.Generator, per_market: int = 300) -> pl.DataFrame:
    """A seeded open book at the history's end: longs and shorts at 2x–25x around the last mark."""
    book = MarkBook(h.marks)
    frames = []
    for m in h.markets["market"].to_list():
        px = float(book.at(m, np.array([float(h.end)]), np.array([np.nan]))[0])
        lev = rng.uniform(2, 25, per_market)
        notional = np.exp(rng.normal(np.log(20_000), 1.2, per_market))
        entry = px * np.exp(rng.normal(0, 0.03, per_market))
        frames.append(pl.DataFrame({"position_key": [f"{m}-{i}" for i in range(per_market)],
                                    "account": [f"0x{i:040x}" for i in range(per_market)], "market": m,
                                    "is_long": rng.random(per_market) < 0.5, "size": notional / entry,
                                    "entry_price": entry, "collateral_usd": notional / lev}))
    return pl.concat(frames)


def _timed(fn: Any) -> tuple[float, float, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def run(h: History, preset_name: str = "proposed", bootstrap: int = 200, seed: int = 1) -> dict[str, Any]:
    """The point replay and the whole analysis of one design on ``h``, timed, with the figures."""
    p = preset(preset_name)
    pos = open_book(h, np.random.default_rng(seed))
    replay_s, replay_cpu, r = _timed(lambda: replay(h, p))
    whole_s, whole_cpu, out = _timed(lambda: decision.analyse(
        h, p, np.random.default_rng(seed), n_bootstrap=bootstrap, positions=pos, backstop_usd=BACKSTOP_USD,
        insurance_usd=INSURANCE_USD, result=r))
    total_s = replay_s + whole_s
    return {"preset": preset_name, "bootstrap_resamples": bootstrap, "open_positions": pos.height,
            "replay_s": round(replay_s, 3), "replay_cpu_s": round(replay_cpu, 3), "analysis_s": round(whole_s, 3),
            "analysis_cpu_s": round(whole_cpu, 3), "total_s": round(total_s, 3), "target_s": TARGET_S,
            "target_met": total_s < TARGET_S, "analysis": out, "result": r, "positions": pos}


def summary_line(d: dict[str, Any]) -> str:
    return (f"decision analysis of {d['preset']} ({d['bootstrap_resamples']} resamples, the tornado, 3 tails, the runs): "
            f"{d['analysis_s']:.2f} s (CPU {d['analysis_cpu_s']:.2f} s) after a {d['replay_s']:.2f} s replay; target "
            f"replay + analysis < {TARGET_S:.0f} s: {'met' if d['target_met'] else 'NOT met'} ({d['total_s']:.2f} s)")


def json_figures(d: dict[str, Any]) -> dict[str, Any]:
    """The timings and the decision JSON's keys (what bench.vault adds to its --json)."""
    out = d["analysis"]
    return {**{k: v for k, v in d.items() if k not in ("analysis", "result", "positions")},
            **{k: out[k] for k in ("ci", "daily_var_95", "daily_cvar_95", "daily_var_99", "daily_cvar_99",
                                   "time_to_recover_days", "tornado", "scenarios", "run")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--liquidations", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--preset", default="proposed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    h = assemble(CHAIN_ID, *build(args.liquidations, args.days, args.seed), start=START, end=START + args.days * DAY)
    d = run(h, args.preset, args.bootstrap, args.seed)
    out, r, pos = d["analysis"], d["result"], d["positions"]
    boot_s, _, _ = _timed(lambda: decision.bootstrap(r, h, np.random.default_rng(args.seed), args.bootstrap))
    tornado_s, _, _ = _timed(lambda: decision.tornado(h, r.params))
    tails_s, _, _ = _timed(lambda: tails.tails(h, r, pos, backstop_usd=BACKSTOP_USD, insurance_usd=INSURANCE_USD))
    runs_s, _, _ = _timed(lambda: decision.depositor_runs(r, h))
    print(f"history: {h.liquidations.height:,} liquidations over {h.days:.0f} days; open book {pos.height:,} positions")
    print(summary_line(d))
    print(f"parts alone: bootstrap {boot_s:.2f} s, tornado {tornado_s:.2f} s, tails {tails_s:.2f} s, runs {runs_s:.2f} s")
    s = out["summary"]
    print(f"figures: final NAV {s['final_nav_usd']:,.0f} USD, period return {s['period_return']:.1%} "
          f"{out['ci']['period_return']}, max drawdown {s['max_drawdown']:.1%} {out['ci']['max_drawdown']}, "
          f"VaR99 {out['daily_var_99']:,.0f}, CVaR99 {out['daily_cvar_99']:,.0f}, recover "
          f"{out['time_to_recover_days']} days, widest tornado bar {out['tornado'][0]['parameter']}")
    for sc in out["scenarios"]:
        print(f"  tail {sc['name']}: NAV {sc['nav_before_usd']:,.0f} → {sc['nav_after_usd']:,.0f} (the worst up to full "
              f"size, at ×{sc['worst_at_scale']:g}), bad debt "
              f"{sc['bad_debt_usd']:,.0f}, caps hit {sc['caps_hit']}")
    for lock, v in out["run"].items():
        print(f"  run, lock {lock} d: withdrawn {v['withdrawn_usd']:,.0f} USD ({v['withdrawn_share']:.0%}), queued "
              f"{v['queued_usd']:,.0f}, loss to those who stay {v['loss_to_remaining_pct']:.3%}")
    if args.json:
        print(json.dumps({"liquidations": h.liquidations.height, "days": round(h.days, 3), **json_figures(d),
                          "bootstrap_s": round(boot_s, 3), "tornado_s": round(tornado_s, 3), "tails_s": round(tails_s, 3),
                          "runs_s": round(runs_s, 3)}, sort_keys=True))


if __name__ == "__main__":
    main()
