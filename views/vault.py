"""Vault what-if: replay the indexed liquidations through two vault designs side by side."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import polars as pl
import streamlit as st

from core import charts, config, dashboard
from core.fmt import format_usd
from core.read import history as rh
from core.utc import DAY, day_start
from core.vault import METHODOLOGY, decision, memo, replay, scenarios, stats, sweep
from core.vault import history as vh
from core.vault import params as vp
from core.vault.replay import SWEEP_COLUMNS, Result
from views import _cards as cards
from views import _common as common

DOCS = vp.field_docs()
FIELDS = {f.name: str(f.type) for f in dataclasses.fields(vp.VaultParams)}
NUMERIC = [n for n, t in FIELDS.items() if t not in ("bool", "str")]
SUMMARY = [("final_nav_usd", "Final NAV", "usd"), ("period_return", "Period return", "pct"), ("apr", "APR", "pct"),
           ("max_drawdown", "Max drawdown", "pct"), ("worst_day_loss_pct", "Worst day", "pct"), ("sharpe", "Sharpe", "num"),
           ("bad_debt_avoided_usd", "Bad debt avoided", "usd"), ("liquidations_absorbed", "Liquidations absorbed", "int")]
#: The waterfall orders the editor offers (every preset's among them).
WATERFALLS = list(dict.fromkeys([*(p.waterfall for p in vp.PRESETS.values()), "book>adl>insurance>vault>backstop",
                                 "book>adl>backstop>vault>insurance"]))
ASSUMED = ("unwind_hours", "slippage_coef", "mm_spread_capture", "thin_market_volume_share")
balances_before = common.cached(dashboard.balances_before)


@st.cache_resource(ttl=3600, max_entries=4)  # keyed by the newest indexed block: new rows, new entry
def _history(url: str, chain_id: int, start: int | None, end: int | None, as_of: int) -> vh.History:
    return rh.load(common._engine_for(url), chain_id, start, end)


@st.cache_data(ttl=300, max_entries=32)
def _replay(url: str, chain_id: int, start: int | None, end: int | None, as_of: int,
            fields: tuple[tuple[str, Any], ...]) -> Result:
    return replay(_history(url, chain_id, start, end, as_of), vp.VaultParams(**dict(fields)))


@st.cache_data(ttl=300, max_entries=8)
def _sweep(url: str, chain_id: int, start: int | None, end: int | None, as_of: int, fields: tuple[tuple[str, Any], ...],
           x: tuple[str, tuple[Any, ...]], y: tuple[str, tuple[Any, ...]]) -> pl.DataFrame:
    return sweep(_history(url, chain_id, start, end, as_of), vp.VaultParams(**dict(fields)), x, y)


@st.cache_resource(ttl=300, max_entries=2)
def _positions(url: str, chain_id: int, as_of: int) -> pl.DataFrame:
    return rh.open_positions(common._engine_for(url), chain_id)


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "usd":
        return format_usd(value)
    if kind == "pct":
        return f"{value:.1%}"
    return f"{value:,.0f}" if kind == "int" else f"{value:.2f}"


def _load_preset(side: str) -> None:
    p = vp.preset(st.session_state[f"{side}_preset"])
    for name in FIELDS:
        st.session_state[f"{side}_{name}"] = getattr(p, name)


def design_editor(side: str, default: str) -> vp.VaultParams | None:
    """A preset picker and every parameter editable; None (with an error shown) when a value is invalid."""
    if f"{side}_preset" not in st.session_state:
        st.session_state[f"{side}_preset"] = default
        _load_preset(side)
    st.selectbox(f"Design {side}: preset", list(vp.PRESETS), key=f"{side}_preset", on_change=_load_preset, args=(side,))
    with st.expander(f"Design {side}: parameters"):
        for name, kind in FIELDS.items():
            key = f"{side}_{name}"
            if kind == "bool":
                st.checkbox(name, key=key, help=DOCS.get(name))
            elif kind == "str":
                if st.session_state[key] not in WATERFALLS:
                    WATERFALLS.append(st.session_state[key])
                st.selectbox(name, WATERFALLS, key=key, help=DOCS.get(name))
            else:
                st.number_input(name, key=key, min_value=0.0, format="%.6g", help=DOCS.get(name),
                                placeholder="no limit" if "None" in kind else None)
    values = {name: st.session_state[f"{side}_{name}"] for name in FIELDS}
    for name, kind in FIELDS.items():
        if values[name] is None and "None" not in kind:
            st.error(f"Design {side}: {name} needs a value ({DOCS.get(name, '')}).")
            return None
    try:
        return vp.VaultParams(**values)
    except vp.ParamError as e:
        st.error(f"Design {side}: {e}")
        return None


def _fields(p: vp.VaultParams) -> tuple[tuple[str, Any], ...]:
    return tuple(dataclasses.asdict(p).items())


def _labelled(df: pl.DataFrame, label: str) -> pl.DataFrame:
    return df.with_columns(pl.lit(label).alias("design"), pl.col("ts").alias("bucket"))


view = common.page("Vault what-if")
f = view.filters
url = config.database_url()
st.caption("Replays the liquidations of the selected time range (all markets: the vault backs the whole protocol) "
           "through two designs. Every figure comes from the indexed rows; the methodology says what is modelled.")
with st.expander("Methodology: what is modelled, what is not"):
    st.markdown(METHODOLOGY)

left, right = st.columns(2)
with left:
    design_a = design_editor("A", "proposed")
with right:
    design_b = design_editor("B", "hyperliquid-hlp")
if design_a is None or design_b is None:
    st.stop()

key = (url, view.chain_id, f.start, f.end, view.as_of)
try:
    hist = _history(*key)
except vh.HistoryError as e:
    st.info(str(e))
    st.stop()
res_a = _replay(*key, _fields(design_a))
res_b = _replay(*key, _fields(design_b))
labels = {"A": f"A · {st.session_state['A_preset']}", "B": f"B · {st.session_state['B_preset']}"}

st.caption(f"{hist.liquidations.height:,} liquidations over {hist.days:.1f} days; "
           f"bad debt as recorded (status quo): {format_usd(res_a.summary['bad_debt_status_quo_usd'])}.")
st.caption("Recorded: every liquidation, its book leg and waterfall tiers, the oracle's marks, daily volume and fees. "
           f"Assumed (no venue publishes them): {', '.join(ASSUMED)}, and every preset value its source calls "
           "assumed. " + (res_a.summary["annualised_note"] + "." if res_a.summary["annualised_note"] else
                          "APR is the period return × 365 / days; Sharpe from daily NAV closes."))
with st.expander("Where each preset value comes from"):
    src = pl.DataFrame([{"preset": name, "parameter": k, "value": str(getattr(vp.preset(name), k)), "source": v}
                        for name in vp.PRESETS for k, v in vp.preset_sources(name).items()])
    st.dataframe(src, hide_index=True, width="stretch")
for side, res in (("A", res_a), ("B", res_b)):
    shown = [cards.Shown(f"{side}: {label}", _fmt(None if res.summary[k] is None else float(res.summary[k]), kind),
                         (res.summary["annualised_note"] if k in ("apr", "sharpe") else "") or None) for k, label, kind in SUMMARY]
    cards.card_row([*shown, cards.Shown(f"{side}: Cap hits", f"{sum(res.cap_hits.values()):,}",
                                        "times a limit made the vault take less")], f"vault-{side}")

nav = pl.concat([_labelled(res_a.nav, labels["A"]), _labelled(res_b.nav, labels["B"])])
c1, c2 = st.columns(2)
with c1:
    common.chart(charts.lines(nav, "share_price", "Share price (net of fees)", "design", fmt=",.3f"), nav, "vault_nav")
with c2:
    common.chart(charts.lines(nav, "drawdown", "Drawdown", "design", fmt=".1%"), nav.select("bucket", "design", "drawdown"),
                 "vault_drawdown")

debt = pl.DataFrame({
    "outcome": ["bad debt", "bad debt", "insurance draw", "insurance draw"] * 2,
    "design": [labels["A"], "status quo", labels["A"], "status quo", labels["B"], "status quo", labels["B"], "status quo"],
    "usd": [res_a.summary["bad_debt_proposed_usd"], res_a.summary["bad_debt_status_quo_usd"],
            res_a.summary["insurance_draw_usd"], res_a.summary["insurance_draw_status_quo_usd"],
            res_b.summary["bad_debt_proposed_usd"], res_b.summary["bad_debt_status_quo_usd"],
            res_b.summary["insurance_draw_usd"], res_b.summary["insurance_draw_status_quo_usd"]],
}).unique(maintain_order=True)
hits = pl.DataFrame([{"kind": k, "design": labels[s], "hits": v}
                     for s, r in (("A", res_a), ("B", res_b)) for k, v in r.cap_hits.items()])
c3, c4 = st.columns(2)
with c3:
    common.chart(charts.grouped_bars(debt, "outcome", "usd", "design", "Bad debt and insurance draw", fmt="$,.0f"),
                 debt, "vault_bad_debt")
with c4:
    common.chart(charts.grouped_bars(hits, "kind", "hits", "design", "Cap hits by kind"), hits, "vault_cap_hits")

st.subheader("Per market", anchor=False)
money = {c: st.column_config.NumberColumn(c.removesuffix("_usd"), format="dollar") for c in res_a.per_market.columns
         if c.endswith("_usd")}
tab_a, tab_b = st.tabs([labels["A"], labels["B"]])
for tab, res, name in ((tab_a, res_a, "A"), (tab_b, res_b, "B")):
    with tab:
        st.dataframe(res.per_market.drop("market"), hide_index=True, width="stretch", column_config=money)
        common.csv_download(res.per_market, f"vault_per_market_{name}")
        st.caption("The vault's worst liquidations")
        worst = res.worst.with_columns(pl.from_epoch("ts", time_unit="s").dt.replace_time_zone("UTC").alias("time")).drop("ts")
        st.dataframe(worst, hide_index=True, width="stretch")
        common.csv_download(res.liquidations, f"vault_liquidations_{name}")

# ------------------------------------------------------------------ sweep
st.subheader("Sweep: two parameters of design A", anchor=False)
s1, s2, s3 = st.columns(3)
x_name = s1.selectbox("x parameter", NUMERIC, index=NUMERIC.index("vault_size_usd"), key="sweep_x")
x_text = s1.text_input("x values", "500000, 1000000, 2000000, 4000000", key="sweep_xv")
y_name = s2.selectbox("y parameter", NUMERIC, index=NUMERIC.index("daily_loss_cap_pct"), key="sweep_y")
y_text = s2.text_input("y values", "0.01, 0.03, 0.05, 0.1, none", key="sweep_yv")
metric = s3.selectbox("outcome", SWEEP_COLUMNS, index=0, key="sweep_metric")
if st.button("Run the sweep", key="sweep_run"):
    st.session_state["sweep_asked"] = True
if st.session_state.get("sweep_asked"):
    try:
        xs = tuple(vp.parse_value(x_name, v) for v in x_text.split(",") if v.strip())
        ys = tuple(vp.parse_value(y_name, v) for v in y_text.split(",") if v.strip())
        if not xs or not ys or len(xs) * len(ys) > 100:
            raise vp.ParamError("give 1 to 100 combinations (comma-separated values on each axis)")
        grid = _sweep(*key, _fields(design_a), (x_name, xs), (y_name, ys))
    except vp.ParamError as e:
        st.error(f"Sweep: {e}")
    else:
        common.chart(charts.heatmap(grid, x_name, y_name, metric, f"{metric} over {x_name} × {y_name}"), grid,
                     "vault_sweep")

# ------------------------------------------------------------------ stress
st.subheader("Stress: a shock on the open positions", anchor=False)
all_markets = hist.markets.filter(pl.col("market_type") == "perp")
t1, t2, t3 = st.columns(3)
target = t1.selectbox("Market", all_markets["market"].to_list(),
                      format_func=dict(zip(all_markets["market"], all_markets["symbol"], strict=True)).get, key="stress_m")
shock = t2.slider("Price move (%)", -90, 200, -30, step=5, key="stress_shock",
                  help="−30 = a 30% crash; +60 = a 60% squeeze")
minutes = t3.number_input("Over minutes", 1, 1440, 10, key="stress_min")
if st.button("Run the stress test", key="stress_run"):
    st.session_state["stress_asked"] = True
if target and st.session_state.get("stress_asked"):
    positions = _positions(url, view.chain_id, view.as_of)
    insurance, backstop = balances_before(view.chain_id, None)
    try:
        sq, proposed = scenarios.run_shock(hist, positions, scenarios.Shock(target, shock / 100, int(minutes)),
                                           design_a, backstop_usd=backstop, insurance_usd=insurance)
    except scenarios.ScenarioError as e:
        st.error(str(e))
    else:
        rows = [("liquidations", sq.summary["liquidations"], proposed.summary["liquidations"]),
                ("deficit (USD)", sq.summary["shortfall_usd"], proposed.summary["shortfall_usd"]),
                ("absorbed by the vault (USD)", 0.0, proposed.summary["vault_absorbed_usd"]),
                ("insurance draw (USD)", sq.summary["insurance_draw_usd"], proposed.summary["insurance_draw_usd"]),
                ("bad debt (USD)", sq.summary["bad_debt_proposed_usd"], proposed.summary["bad_debt_proposed_usd"]),
                ("vault PnL (USD)", 0.0, proposed.summary["liquidation_pnl_usd"])]
        table = pl.DataFrame(rows, schema=["figure", "status quo", labels["A"]], orient="row")
        st.dataframe(table, hide_index=True, width="stretch")
        common.csv_download(table, "vault_stress")

# ------------------------------------------------------------------ depositor
st.subheader("Depositor calculator (design A)", anchor=False)
first_day = dt.datetime.fromtimestamp(hist.start, dt.timezone.utc).date()
last_day = dt.datetime.fromtimestamp(hist.end - 1, dt.timezone.utc).date()
d1, d2, d3 = st.columns(3)
amount = d1.number_input("Deposit (USD)", min_value=1.0, value=10_000.0, step=1_000.0, key="dep_amount")
on = d2.date_input("Deposit on", first_day, min_value=first_day, max_value=last_day, key="dep_on")
off = d3.date_input("Withdraw on", last_day, min_value=first_day, max_value=last_day, key="dep_off")
if design_a.enabled:
    try:
        dep = stats.depositor_path(res_a.nav, float(amount), day_start(on), design_a.withdrawal_lock_days,
                                   design_a.withdraw_fee, day_start(off) + DAY - 1)
    except ValueError as e:
        st.error(str(e))
    else:
        cards.card_row([cards.Shown("Received", format_usd(dep["received_usd"]), "after the withdraw fee"),
                        cards.Shown("PnL", format_usd(dep["pnl_usd"])),
                        cards.Shown("Max drawdown", f"{dep['max_drawdown']:.1%}")], "vault-depositor")
        if dep["lock_clamped"]:
            st.caption(f"The lock is {design_a.withdrawal_lock_days:g} days: the withdrawal moves to its end.")
        path = dep["path"].with_columns(pl.col("ts").alias("bucket"), pl.lit("equity").alias("series"))
        common.chart(charts.lines(path, "equity_usd", "Depositor equity", "series"), path, "vault_depositor")
else:
    st.caption("Design A has no vault (size 0): nothing to deposit into.")

# ------------------------------------------------------------------ decision
st.subheader("Decision: how sure, the tails, depositor runs", anchor=False)
st.caption("The replay above is the point estimate. The analysis below adds 5–95% bands (a block bootstrap over days of "
           "the replay's hourly NAV returns), daily VaR/CVaR and the worst days, a tornado over the assumed inputs, "
           "three tails from the NAV at the replay's worst point (each the worst of its sizes up to full size) and depositor runs under locks of 0, 1 and 4 days, "
           "for designs A and B, with the Decision memo to download. It fills in after the replay, with its progress; "
           "switch it off while editing the designs.")
DECISION_CARDS = [("period_return", "Period return", "pct"), ("max_drawdown", "Max drawdown", "pct"),
                  ("bad_debt_avoided_usd", "Bad debt avoided", "usd")]


def _band(band: list[float] | None, kind: str) -> str:
    return "n/a" if band is None else f"{_fmt(band[0], kind)} – {_fmt(band[1], kind)}"


def _usd_columns(*names: str) -> dict[str, Any]:
    """Dataframe columns shown as dollars (the values stay the JSON's)."""
    return {n: st.column_config.NumberColumn(format="dollar") for n in names}


def _analyse(chain_id: int, as_of: int, a: vp.VaultParams, b: vp.VaultParams, n: int,
             threshold: float) -> dict[str, dict[str, Any]] | str:
    """Both designs' decision analyses, with a progress bar while they run; the one-line message if the
    history cannot support them."""
    bar = st.progress(0.0, text="replaying")
    positions = _positions(url, chain_id, as_of)
    insurance, backstop = balances_before(chain_id, None)
    out: dict[str, dict[str, Any]] = {}
    try:
        for i, (side, design, res) in enumerate((("A", a, res_a), ("B", b, res_b))):
            def tell(x: float, what: str, i: int = i, side: str = side) -> None:
                bar.progress((i + x) / 2, text=f"design {side}: {what}")
            out[labels[side]] = decision.analyse(
                hist, design, np.random.default_rng(1), n_bootstrap=n, positions=positions, backstop_usd=backstop,
                insurance_usd=insurance, run=decision.RunSpec(threshold=threshold), result=res, progress=tell)
    except (vp.ParamError, vh.HistoryError, scenarios.ScenarioError) as e:
        return str(e)
    finally:
        bar.empty()
    return out


@st.fragment
def decision_section(chain_id: int, as_of: int, a: vp.VaultParams, b: vp.VaultParams) -> None:
    """Computed inside a fragment after the rest of the page has been drawn (which stays as it is while it
    runs), for the inputs on the page; kept when only newer blocks arrive (a button updates it then), and
    so is a failure's message (it would fail again on the same inputs)."""
    d1, d2 = st.columns(2)
    n = int(d1.number_input("Bootstrap resamples", min_value=1, max_value=2000, value=200, step=50, key="decision_n"))
    threshold = d2.slider("Run threshold (drawdown)", 0.01, 0.5, 0.05, step=0.01, key="decision_threshold")
    inputs = (url, chain_id, view.span, _fields(a), _fields(b), n, threshold)  # not as_of: newer blocks keep it
    if not st.toggle("Decision analysis", value=True, key="decision_on",
                     help="Runs for both designs after the replay has been shown, again when an input changes"):
        return
    got = st.session_state.get("decision_result")
    if got and got[0] == inputs and got[1] != as_of:
        stale = st.empty()
        with stale.container():
            st.caption(f"From the data as of {dt.datetime.fromtimestamp(got[1], dt.timezone.utc):%Y-%m-%d %H:%M} UTC; "
                       "newer blocks have been indexed since.")
            if st.button("Update to the newest block", key="decision_update"):
                got = None
        if got is None:
            stale.empty()
    if not got or got[0] != inputs:
        got = st.session_state["decision_result"] = (inputs, as_of, _analyse(chain_id, as_of, a, b, n, threshold))
    if isinstance(got[2], str):
        st.error(f"Decision: {got[2]}")
        return
    analyses: dict[str, dict[str, Any]] = got[2]
    for i, (name, x) in enumerate(analyses.items()):
        ttr = x["time_to_recover_days"]
        cards.card_row([*(cards.Shown(f"{name}: {label}", _fmt(x["summary"][k], kind), f"5–95% band: {_band(x['ci'][k], kind)}")
                          for k, label, kind in DECISION_CARDS),
                        cards.Shown(f"{name}: Daily VaR 99%", format_usd(x["daily_var_99"]), "historical, of the daily PnL"),
                        cards.Shown(f"{name}: Daily CVaR 99%", format_usd(x["daily_cvar_99"]),
                                    "mean loss of the days at or beyond the VaR"),
                        cards.Shown(f"{name}: Time to recover", "never" if ttr is None else f"{ttr:.1f} d",
                                    "from the max drawdown's trough back to its peak (never: not within the window)")], f"vault-decision-{i}")
    c1, c2 = st.columns(2)
    first = next(iter(analyses))
    tor = pl.DataFrame([{"parameter": t["parameter"], "end": end, "final_nav_usd": t[f"nav_{end}"]}
                        for t in analyses[first]["tornado"] for end in ("low", "high")])
    with c1:
        common.chart(charts.grouped_bars(tor, "parameter", "final_nav_usd", "end", f"Tornado: final NAV ({first})",
                                         fmt="$,.0f"), tor, "vault_tornado")
    tails_df = pl.DataFrame([{"scenario": s["name"], "design": name, "nav_after_usd": s["nav_after_usd"]}
                             for name, x in analyses.items() for s in x["scenarios"]])
    with c2:
        common.chart(charts.grouped_bars(tails_df, "scenario", "nav_after_usd", "design",
                                         "Tails: worst NAV after, up to full size", fmt="$,.0f"), tails_df, "vault_tails")
    st.dataframe(pl.DataFrame([{"scenario": s["name"], "design": name, "worst_nav_after_usd": s["nav_after_usd"],
                                "worst_at_size": s["worst_at_scale"], "bad_debt_usd": s["bad_debt_usd"],
                                "full_size_nav_after_usd": s["full_size"]["nav_after_usd"],
                                "caps_hit": ", ".join(s["caps_hit"])}
                               for name, x in analyses.items() for s in x["scenarios"]]), hide_index=True, width="stretch",
                 column_config={**_usd_columns("worst_nav_after_usd", "bad_debt_usd", "full_size_nav_after_usd"),
                                "worst_at_size": st.column_config.NumberColumn("worst at (× full size)", format="%.1f")})
    for col, (name, x) in zip(st.columns(len(analyses)), analyses.items(), strict=True):
        bins = pl.DataFrame(x["histogram"], schema={"lo_usd": pl.Float64(), "hi_usd": pl.Float64(), "days": pl.Int64()})
        with col:
            common.chart(charts.histogram(bins, "lo_usd", "hi_usd", "days", f"Daily PnL, days per bin ({name})"), bins,
                         f"vault_daily_pnl_{name[0]}")
    runs = pl.DataFrame([{"design": name, "lock_days": lock, **{k: v[k] for k in ("withdrawn_usd", "queued_usd",
                                                                                    "loss_to_remaining_pct")}}
                         for name, x in analyses.items() for lock, v in x["run"].items()])
    st.dataframe(runs, hide_index=True, width="stretch",
                 column_config={**_usd_columns("withdrawn_usd", "queued_usd"),
                                "loss_to_remaining_pct": st.column_config.NumberColumn(format="percent")})
    worst = pl.DataFrame(analyses[first]["worst_days"])
    st.caption(f"The ten worst days of {first} and what drove each")
    st.dataframe(worst, hide_index=True, width="stretch",
                 column_config=_usd_columns("pnl_usd", "shortfall_usd", "unwind_usd", "other_usd"))
    text = memo.memo(analyses, context="From the Vault what-if page (bootstrap seed 1).")
    st.download_button("Decision memo (Markdown)", text, file_name="vault_decision.md", mime="text/markdown",
                       key="decision_memo")


if design_a.enabled and design_b.enabled:
    decision_section(view.chain_id, view.as_of, design_a, design_b)
else:
    st.caption("The decision analysis needs a vault in both designs (size > 0).")
