"""The "Decision" memo (Markdown) seed 001's plan starts with, written from the figures of
:func:`core.vault.decision.analyse` for each design compared, and from nothing else.

One table holds every figure (each row names its JSON key, so a test can check it against the JSON).
Then come the answers to seed 001 §5's open questions that the data speaks to, each with its figure,
then the assumptions, then what the data cannot say. The memo has no clock and no randomness of its own:
the same analyses (the same seed) give the same text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.vault.decision import CI_FIGURES, RunSpec
from core.vault.tails import TailSpec

LABELS = {"period_return": "Period return", "apr": "APR", "max_drawdown": "Max drawdown", "sharpe": "Sharpe",
          "bad_debt_avoided_usd": "Bad debt avoided"}
KINDS = {"period_return": "pct", "apr": "pct", "max_drawdown": "pct", "sharpe": "num", "bad_debt_avoided_usd": "usd"}


def fmt(value: Any, kind: str) -> str:
    """A figure as the memo prints it ("n/a" for a missing one)."""
    if value is None:
        return "n/a"
    if kind == "usd":
        return f"{float(value):,.0f} USD"
    if kind == "pct":
        return f"{float(value):.2%}"
    if kind == "pct3":  # small shares (a run's cost to those who stay)
        return f"{float(value):.3%}"
    if kind == "days":
        return f"{float(value):.1f} days"
    return f"{float(value):.2f}"


def _band(ci: list[float] | None, kind: str) -> str:
    return "n/a" if ci is None else f"[{fmt(ci[0], kind)}, {fmt(ci[1], kind)}]"


def rows(analyses: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """The table's rows: (label, JSON key path, one cell per design)."""
    a = list(analyses.values())
    out: list[tuple[str, str, list[str]]] = [("Final NAV", "summary.final_nav_usd",
                                              [fmt(x["summary"]["final_nav_usd"], "usd") for x in a])]
    for k in CI_FIGURES:
        out.append((LABELS[k], f"summary.{k}", [fmt(x["summary"][k], KINDS[k]) for x in a]))
        out.append((f"{LABELS[k]}, 5–95% band", f"ci.{k}", [_band(x["ci"][k], KINDS[k]) for x in a]))
    for level in (95, 99):
        out.append((f"Daily VaR {level}%", f"daily_var_{level}", [fmt(x[f"daily_var_{level}"], "usd") for x in a]))
        out.append((f"Daily CVaR {level}%", f"daily_cvar_{level}", [fmt(x[f"daily_cvar_{level}"], "usd") for x in a]))
    out.append(("Time to recover from the max drawdown", "time_to_recover_days",
                [fmt(x["time_to_recover_days"], "days") if x["time_to_recover_days"] is not None else "not recovered"
                 for x in a]))
    names = list(dict.fromkeys(t["parameter"] for x in a for t in x["tornado"]))  # the first design's widest first
    for name in names:
        cells = []
        for x in a:
            t = next((t for t in x["tornado"] if t["parameter"] == name), None)
            cells.append("n/a" if t is None else f"{fmt(t['nav_low'], 'usd')} – {fmt(t['nav_high'], 'usd')}")
        out.append((f"Final NAV, {name} low – high", f"tornado.{name}", cells))
    for i, sc in enumerate(a[0]["scenarios"]):
        out.append((f"{sc['name']}: NAV after, the worst up to full size", f"scenarios.{i}.nav_after_usd",
                    [fmt(x["scenarios"][i]["nav_after_usd"], "usd") for x in a]))
        out.append((f"{sc['name']}: the size of that worst (× full)", f"scenarios.{i}.worst_at_scale",
                    [f"{x['scenarios'][i]['worst_at_scale']:g}" for x in a]))
        out.append((f"{sc['name']}: bad debt", f"scenarios.{i}.bad_debt_usd",
                    [fmt(x["scenarios"][i]["bad_debt_usd"], "usd") for x in a]))
    for lock in a[0]["run"]:
        for k, kind, label in (("withdrawn_usd", "usd", "withdrawn"), ("queued_usd", "usd", "queued at its end"),
                               ("loss_to_remaining_pct", "pct3", "loss to those who stay")):
            out.append((f"Run, lock {lock} d: {label}", f"run.{lock}.{k}", [fmt(x["run"][lock][k], kind) for x in a]))
    return out


def _table(analyses: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names = list(analyses)
    lines = ["| figure | key | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    lines += [f"| {label} | `{key}` | " + " | ".join(cells) + " |" for label, key, cells in rows(analyses)]
    return lines


def _answers(name: str, x: Mapping[str, Any]) -> list[str]:
    s = x["summary"]
    c = x["concentration"]
    fee_share = next((t for t in x["tornado"] if t["parameter"] == "mm_fee_share"), None)
    order = next((t for t in x["tornado"] if t["parameter"] == "waterfall"), None)
    runs = x["run"]
    gain = s["final_nav_usd"] - s["vault_size_usd"]
    out = [f"**{name}**", ""]
    out.append("1. *One global vault vs per-market vaults.* "
               + (f"{fmt(c['loss_share'], 'pct')} of the vault's takeover losses ({fmt(c['loss_usd'], 'usd')}) came from "
                  f"{c['market']}; a vault of that market alone would have borne them with its own capital, the global "
                  f"one pooled them (market-budget cap hits: {s['cap_hits'].get('market_budget', 0)})."
                  if c["market"] else "The vault took no losses on takeovers: the data does not separate the two."))
    mm_line = (f"Market making earned {fmt(s['mm_income_usd'], 'usd')} of the vault's {fmt(gain, 'usd')} change in NAV, "
               f"liquidations {fmt(s['liquidation_pnl_usd'], 'usd')} and fees on healthy liquidations "
               f"{fmt(s['fee_income_usd'], 'usd')}")
    if fee_share is not None:
        mm_line += (f"; with no share of the fees the final NAV would be {fmt(fee_share['nav_low'], 'usd')} "
                    f"(with half, {fmt(fee_share['nav_high'], 'usd')})")
    out.append("2. *Always quote, or backstop only.* " + mm_line + ".")
    out.append("3. *Funding.* The data cannot say: the replay charges no funding on the positions the vault holds.")
    lock_line = "; ".join(f"lock {k} d: {fmt(v['withdrawn_usd'], 'usd')} withdrawn, {fmt(v['queued_usd'], 'usd')} queued, "
                          f"{fmt(v['loss_to_remaining_pct'], 'pct3')} to those who stay" for k, v in runs.items())
    started = next((v["run_started"] for v in runs.values() if v["run_started"]), None)
    out.append("4. *Withdrawal lock.* " + (f"While the deepest drawdown was beyond the threshold (from {started}): {lock_line}."
                                           if started else f"The drawdown never reached the run threshold "
                                           f"({fmt(x['run_spec']['threshold'], 'pct')}): no run to compare."))
    fund = (f"The insurance fund paid {fmt(s['insurance_draw_usd'], 'usd')} with the vault (status quo "
            f"{fmt(s['insurance_draw_status_quo_usd'], 'usd')})")
    if order is not None:
        fund += (f"; with the fund senior to the vault ({order['low']}) the final NAV is {fmt(order['nav_low'], 'usd')} "
                 f"and the bad debt avoided {fmt(order['bad_debt_avoided_low'], 'usd')}")
    out.append("5. *Insurance fund as a senior tranche.* " + fund + ".")
    return out + [""]


def _assumptions(x: Mapping[str, Any]) -> list[str]:
    b = x["bootstrap"]
    r = x["run_spec"]
    t = TailSpec(**x["tail_spec"])
    out = [f"- Bootstrap: {b['resamples']} resamples, blocks of {b['block_days']} days; {b['method']}. It does not "
           "replay each resample (one replay of the benchmark year costs ~0.75 s CPU, 200 would be ~150 s, over the "
           "60 s budget): the caps' dependence on the NAV of the day is not resampled. A resample that misses the "
           "worst days has almost no variance, which is why Sharpe's band reaches far up."]
    out += [f"- Tornado, {row['parameter']}: {row['low']} – {row['high']} ({row['source']})." for row in x["tornado"]]
    out.append(f"- Depositor run: {fmt(r['run_share'], 'pct')} of the shares ask to leave once the drawdown reaches "
               f"{fmt(r['threshold'], 'pct')}; deposits spread over the {r['deposit_age_days']:g} days before; the queue pays "
               f"{fmt(r['queue_daily_share'], 'pct')} of the shares a day; a withdrawal closes the vault's positions pro rata "
               f"(square-root slippage borne by those who stay) and pays the withdraw fee (all assumed; see RunSpec).")
    out.append(f"- Tails start from the NAV at the replay's deepest drawdown, without income: squeeze "
               f"+{t.squeeze_shock * t.scale:.0%} in one-minute pushes of {t.squeeze_shock / t.squeeze_minutes:.1%} with an "
               f"attacker's short of {t.attacker_share * t.scale:.1%} of NAV (Hyperliquid JELLY, March 2025); a margin-less "
               f"whale of {t.whale_share * t.scale:.0%} of NAV while its market moves {t.whale_move * t.scale:.0%} "
               f"(Hyperliquid ETH, March 2025); every perp {t.crash_shock * t.scale:.0%} in pushes of "
               f"{abs(t.crash_shock) / t.crash_minutes:.1%} (assumed). The vault's impact is fed back into the marks only in "
               "the squeeze. Under a waterfall with ADL before the vault, ADL takes the size first: the vault inherits "
               "positions only beyond ADL's capacity.")
    out.append("- What a tail's NAV counts: every takeover's loss, and none of the income the shock would also bring "
               "(the fee on healthy liquidations, the gain of a takeover that ended solvent: `income_usd` beside it). "
               "The model assumes: a larger shock is the same path continued at the same speed per push; "
               "liquidations go in one order (push, then the move at which each crosses maintenance); the book's depth "
               "per push is counted in size at the last mark before the shock; ADL's capacity is the opposite size in "
               "profit at the mark before each push; the BackstopVault and InsuranceFund are drawn in that order. "
               "Under those, one size of a larger shock never leaves a vault without loss limits better off "
               "(property-tested for the three tails). A loss limit sizes a takeover by what came before and is closed "
               "at the next push past it, by however far that push gapped, so one size's loss with limits is a "
               "sawtooth: each tail is therefore run at every tenth of its default size up to its own and reports the worst, the loss "
               "of a shock of up to that size (then a larger shock never leaves the vault better off, for every "
               "design, tested); the bad debt is that worst run's.")
    return out


CANNOT_SAY = [
    "- How traders, market makers and ADL'd counterparties would have behaved with a vault in the waterfall.",
    "- Funding on the vault's positions (seed 001 §5.3 couples it to the premium-funding upgrade).",
    "- The vault's own price impact on later marks in the replay (only the squeeze tail feeds it back).",
    "- Whether depositors would actually run: the run's share, threshold and deposit ages are assumed.",
    "- How sure the figures of a vault whose NAV came near zero are: its hourly returns on a tiny NAV compound "
    "without bound when resampled out of order, so its bands are not meaningful.",
    "- Anything beyond the window: the bands are of this history's days, resampled; a figure from under 30 "
    "days is not annualised (APR and Sharpe show n/a).",
]


def memo(analyses: Mapping[str, Mapping[str, Any]], *, title: str = "Decision", context: str = "") -> str:
    """The memo for the designs in ``analyses`` (name → :func:`~core.vault.decision.analyse` output)."""
    if not analyses:
        raise ValueError("the memo needs at least one analysed design")
    first = next(iter(analyses.values()))
    lines = [f"# {title}", ""]
    if context:
        lines += [context, ""]
    lines += [f"Designs compared: {', '.join(analyses)}. Window: {first['summary']['days']:g} days, "
              f"{first['summary']['liquidations']:,} liquidations. "
              + (first["summary"]["annualised_note"] + "." if first["summary"]["annualised_note"] else ""), ""]
    lines += ["## Figures", ""] + _table(analyses) + [""]
    lines += ["## Seed 001 §5: what the data says", ""]
    for name, x in analyses.items():
        lines += _answers(name, x)
    lines += ["## Assumptions", ""] + _assumptions(first) + [""]
    lines += ["## What the data cannot say", ""] + CANNOT_SAY + [""]
    return "\n".join(lines)


__all__ = ["CANNOT_SAY", "RunSpec", "fmt", "memo", "rows"]
