"""What a vault committee needs besides one replay: how sure each figure is, the daily loss
distribution, what the assumed inputs move, and whether depositors would run (issue #13).

- :func:`bootstrap`: a circular block bootstrap over days of the replay's own hourly NAV returns and
  daily bad debt avoided. **Why not a replay per resample**: one replay of ``proposed`` on the
  benchmark's year of 100k liquidations costs 0.72–0.80 s CPU (measured 2 Dec 2026, of which building
  the :class:`~core.vault.replay.Prepared` history 0.03 s: a resampled history cannot share the
  original's, but that is not where the time goes), so 200 resamples would cost ~150 s CPU, more
  than the 120 CPU seconds two idle cores have in the 60 s target, before the tornado's 16 replays
  (~12 s CPU). So each resample replays nothing. It joins whole days
  (blocks of ``block_days`` ≥ 3 consecutive days, so a crash and its rebound stay together) of the
  design's hourly share-price returns and of its daily bad debt avoided. **What that loses**: path
  dependence. The caps scale with the NAV of the day, and a vault that is already down absorbs less. Resampled
  days keep the NAV they had in the replay. The band is of the statistic over the resamples (5th and
  95th percentile). **lo ≤ point ≤ hi is guaranteed by widening**: the band is widened to include the
  replay's own figure when that figure falls outside it.
- :func:`pnl_distribution`: the daily PnL (NAV at each UTC midnight, as the replay's Sharpe uses it),
  its histogram, historical VaR / CVaR (positive USD losses; 0 when that quantile is a gain), the ten
  worst days with what drove them, and the time from the deepest drawdown's trough back to its peak.
- :func:`tornado`: each assumed input at a documented low and high value (:data:`TORNADO`), one replay
  each on the shared :class:`~core.vault.replay.Prepared` history.
- :func:`depositor_runs`: seed 001 §5.4, depositors withdrawing once the drawdown passes a threshold,
  under a lock and a withdrawal queue (the model and its assumptions are in :class:`RunSpec`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from core.utc import DAY, HOUR
from core.vault import stats
from core.vault.history import History, HistoryError
from core.vault.params import ParamError, VaultParams
from core.vault.replay import MIN_DAYS_ANNUALISED, Prepared, Result, replay
from core.vault.tails import TailSpec, tails

#: The figures the bootstrap bands, as the replay's summary names them.
CI_FIGURES = ("period_return", "apr", "max_drawdown", "sharpe", "bad_debt_avoided_usd")
MIN_BLOCK_DAYS = 3
Progress = Callable[[float, str], None]


def check_analysis(history: History, p: VaultParams, n_bootstrap: int = 200, threshold: float = 0.05) -> None:
    """One-line errors for what the analysis cannot use (ParamError / HistoryError)."""
    if history.liquidations.height == 0:
        raise HistoryError("the window has no liquidations: widen it (--start/--end) or index more history")
    if not p.enabled:
        raise ParamError("the decision analysis needs a vault: vault_size_usd is 0 (choose a size > 0 or another preset)")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 1:
        raise ParamError(f"the bootstrap needs N ≥ 1 resamples, got {n_bootstrap!r}")
    if not (isinstance(threshold, (int, float)) and 0 < threshold < 1):
        raise ParamError(f"the run threshold is a drawdown between 0 and 1 (exclusive), got {threshold!r}")


# ------------------------------------------------------------------ daily figures


def daily_closes(result: Result) -> tuple[np.ndarray, np.ndarray]:
    """(day start, NAV at the day's start) for each UTC midnight, then the NAV at the replay's last
    hour with its timestamp (the closes the replay's Sharpe uses)."""
    nav = result.nav
    mid = nav.filter(pl.col("ts") % DAY == 0)
    ts = np.append(mid["ts"].to_numpy(), int(nav["ts"][-1]))
    return ts, np.append(mid["nav_usd"].to_numpy(), float(nav["nav_usd"][-1]))


def _day_of(start: int) -> pl.Expr:
    """The replay's day of a walked liquidation: when the vault took it over, else when it happened."""
    t = pl.when(pl.col("takeover_ts") >= 0).then(pl.col("takeover_ts")).otherwise(pl.col("ts"))
    return ((t - start) // DAY).cast(pl.Int64)


def daily_pnl(result: Result, history: History) -> pl.DataFrame:
    """One row per day: its start, NAV at its start and end, PnL, bad debt avoided and what drove it.

    Takeovers count on the day they were taken (their unwind PnL too: a takeover unwinds within
    ``unwind_hours``, usually that day). ``shortfall_usd`` is the margin kept less the loss absorbed,
    ``unwind_usd`` the market PnL of the unwind less its slippage, ``other_usd`` the rest of the day's
    PnL (income, fees, positions held across midnight, the performance fee)."""
    ts, closes = daily_closes(result)
    n = closes.size - 1
    start = history.start
    days = pl.DataFrame({"day": np.arange(n, dtype=np.int64), "day_ts": ts[:-1].astype(np.int64),
                         "nav_open_usd": closes[:-1], "nav_close_usd": closes[1:], "pnl_usd": np.diff(closes)})
    rows = result.liquidations
    if rows.height:
        per = rows.with_columns(day=_day_of(start)).group_by("day").agg(
            (pl.col("vault_size_taken") + pl.col("vault_loss") > 0).sum().cast(pl.Int64).alias("takeovers"),
            (pl.col("vault_buffer") - pl.col("vault_loss")).sum().alias("shortfall_usd"),
            (pl.col("vault_unwind_pnl") - pl.col("vault_slippage")).sum().alias("unwind_usd"),
            (pl.col("socialized_status_quo") - pl.col("socialized")).sum().alias("bad_debt_avoided_usd"))
        worst_market = rows.with_columns(day=_day_of(start)).group_by("day", "symbol").agg(
            pl.col("vault_pnl").sum()).sort("vault_pnl").group_by("day", maintain_order=True).first().select(
            "day", pl.col("symbol").alias("market"), pl.col("vault_pnl").alias("market_pnl_usd"))
        days = days.join(per, on="day", how="left").join(worst_market, on="day", how="left")
    else:
        days = days.with_columns(takeovers=pl.lit(0, pl.Int64), shortfall_usd=pl.lit(0.0), unwind_usd=pl.lit(0.0),
                                 bad_debt_avoided_usd=pl.lit(0.0), market=pl.lit(None, pl.String),
                                 market_pnl_usd=pl.lit(0.0))
    days = days.with_columns(pl.col("takeovers", "shortfall_usd", "unwind_usd", "bad_debt_avoided_usd").fill_null(0))
    bad = float(result.summary["vault_bad_debt_usd"])
    if bad > 0:  # the vault's own bad debt: on the first day its NAV reached zero
        wiped = int(np.argmax(closes[1:] <= 1e-6 * max(result.params.vault_size_usd, 1.0)))
        days = days.with_columns(bad_debt_avoided_usd=pl.col("bad_debt_avoided_usd")
                                 - pl.when(pl.col("day") == wiped).then(bad).otherwise(0.0))
    return days.with_columns(other_usd=pl.col("pnl_usd") - pl.col("shortfall_usd") - pl.col("unwind_usd"))


def _driver(row: dict[str, Any]) -> str:
    """The part of a day's PnL that lost the most ("no loss" on a day that gained)."""
    parts = {"shortfall absorbed": row["shortfall_usd"], "unwind": row["unwind_usd"], "income and marks": row["other_usd"]}
    worst = min(parts, key=lambda k: parts[k])
    return worst if row["pnl_usd"] < 0 and parts[worst] < 0 else "no loss"


def var_cvar(pnl: np.ndarray, level: float) -> tuple[float, float]:
    """Historical VaR and CVaR at ``level`` of daily PnL, as positive USD losses (0 when the quantile
    is a gain). CVaR is the mean loss on the days at or beyond the VaR quantile, so CVaR ≥ VaR."""
    if pnl.size == 0:
        return 0.0, 0.0
    q = float(np.quantile(pnl, 1.0 - level))
    tail = pnl[pnl <= q]
    return max(0.0, -q), max(0.0, -float(tail.mean()))


def time_to_recover_days(result: Result) -> float | None:
    """Days from the deepest drawdown's trough back to the peak before it (hourly NAV); 0 without a
    drawdown, None if the replay ends before it recovered."""
    price = result.nav["share_price"].to_numpy()
    ts = result.nav["ts"].to_numpy()
    dd = stats.drawdown(price)
    if dd.size == 0 or float(dd.max()) <= 0:
        return 0.0
    trough = int(np.argmax(dd))
    peak = float(price[: trough + 1].max())
    back = np.flatnonzero(price[trough:] >= peak * (1 - 1e-12))
    return None if back.size == 0 else float(ts[trough + int(back[0])] - ts[trough]) / DAY


def pnl_distribution(result: Result, history: History, bins: int = 20) -> dict[str, Any]:
    """The daily PnL histogram, VaR/CVaR at 95% and 99%, the ten worst days and the recovery time."""
    days = daily_pnl(result, history)
    pnl = days["pnl_usd"].to_numpy()
    counts, edges = np.histogram(pnl, bins=max(1, bins)) if pnl.size else (np.zeros(0, dtype=np.int64), np.zeros(1))
    out: dict[str, Any] = {
        "histogram": [{"lo_usd": float(edges[i]), "hi_usd": float(edges[i + 1]), "days": int(counts[i])}
                      for i in range(counts.size)]}
    for level in (95, 99):
        out[f"daily_var_{level}"], out[f"daily_cvar_{level}"] = var_cvar(pnl, level / 100)
    worst = days.sort("pnl_usd").head(10)
    out["worst_days"] = [{"day": _iso(int(r["day_ts"])), "pnl_usd": float(r["pnl_usd"]), "market": r["market"],
                          "takeovers": int(r["takeovers"]), "shortfall_usd": float(r["shortfall_usd"]),
                          "unwind_usd": float(r["unwind_usd"]), "other_usd": float(r["other_usd"]), "driver": _driver(r)}
                         for r in worst.iter_rows(named=True)]
    out["time_to_recover_days"] = time_to_recover_days(result)
    out["days_in_distribution"] = int(pnl.size)
    return out


def _iso(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).date().isoformat()


# ------------------------------------------------------------------ bootstrap


def _hourly_days(result: Result, history: History) -> list[np.ndarray]:
    """The replay's hourly share-price ratios grouped by UTC day (a wiped-out vault's 0/0 hours are 1)."""
    price = result.nav["share_price"].to_numpy()
    ts = result.nav["ts"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(price[:-1] > 0, price[1:] / price[:-1], 1.0)
    day = (ts[:-1] - history.start) // DAY
    cuts = np.flatnonzero(np.diff(day)) + 1
    return np.split(ratio, cuts)


def _widen(values: np.ndarray, point: float | None) -> list[float] | None:
    if point is None:
        return None
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [point, point]
    lo, hi = (float(x) for x in np.quantile(finite, [0.05, 0.95]))
    return [min(lo, point), max(hi, point)]


def bootstrap(result: Result, history: History, rng: np.random.Generator, n: int = 200,
              block_days: int = 5) -> dict[str, list[float] | None]:
    """5–95% bands for :data:`CI_FIGURES` from ``n`` circular block resamples of whole days (see the
    module docstring); ``None`` for a figure the replay does not give (APR and Sharpe under 30 days)."""
    if n < 1:
        raise ParamError(f"the bootstrap needs N ≥ 1 resamples, got {n}")
    if block_days < MIN_BLOCK_DAYS:
        raise ParamError(f"bootstrap blocks are ≥ {MIN_BLOCK_DAYS} days so crashes stay whole, got {block_days}")
    hours = _hourly_days(result, history)
    d = len(hours)
    avoided_by_day = np.zeros(d)
    per = daily_pnl(result, history)
    k = per["day"].to_numpy()
    avoided_by_day[k[k < d]] = per["bad_debt_avoided_usd"].to_numpy()[k < d]
    s = result.summary
    blocks = math.ceil(d / block_days)
    out = {name: np.full(n, np.nan) for name in CI_FIGURES}
    annualise = history.days >= MIN_DAYS_ANNUALISED
    for j in range(n):
        starts = rng.integers(0, d, size=blocks)
        order = ((starts[:, None] + np.arange(block_days)[None, :]) % d).ravel()[:d]
        day_ends = np.cumprod([float(np.prod(hours[i])) for i in order])
        path = np.cumprod(np.concatenate([hours[i] for i in order]))
        period = float(path[-1]) - 1.0 if path.size else 0.0
        out["period_return"][j] = period
        out["apr"][j] = period * 365.0 / history.days if annualise else np.nan
        out["max_drawdown"][j] = stats.max_drawdown(np.concatenate(([1.0], path)))
        out["sharpe"][j] = stats.sharpe(np.concatenate(([1.0], day_ends)))
        out["bad_debt_avoided_usd"][j] = float(avoided_by_day[order].sum())
    return {name: _widen(out[name], None if s[name] is None else float(s[name])) for name in CI_FIGURES}


# ------------------------------------------------------------------ tornado


@dataclass(frozen=True)
class Swing:
    """One assumed input moved to a low and a high value; ``source`` says where each comes from."""

    parameter: str
    low: Any
    high: Any
    source: str


def tornado_inputs(p: VaultParams) -> list[Swing]:
    """The low and high value of each assumed input for design ``p`` (relative ones scale its own value)."""
    spread = p.mm_spread_capture or 0.00002
    return [
        Swing("unwind_hours", 1.0, 24.0, "assumed: no venue publishes an unwind horizon; an hour to a day"),
        Swing("slippage_coef", p.slippage_coef / 2, p.slippage_coef * 2,
              "assumed: the square-root law's Y from 0.5 to 2 around the design's value"),
        Swing("mm_spread_capture", 0.0, 2 * spread, "assumed: no market-making income to twice the design's (0.2 bp if 0)"),
        Swing("mm_fee_share", 0.0, 0.5, "assumed: seed 001 §3.3 gives no share; none to half of the fees"),
        Swing("healthy_liquidation_fee", 0.0, 0.01,
              "Hyperliquid docs (no fee, a margin buffer) to Extended / Lighter docs (1%)"),
        Swing("trigger_mm_fraction", 2 / 3, 1.0, "Hyperliquid docs (2/3 of maintenance) to seed 001 §3.2 (k = 1)"),
        Swing("waterfall", "book>adl>insurance>vault>backstop", "vault>book>adl>backstop>insurance",
              "seed 001 §5.5 (the fund senior, the vault after it) to Hyperliquid docs (the vault before the book)"),
        Swing("vault_size_usd", p.vault_size_usd / 2, p.vault_size_usd * 2, "assumed: half to twice the design's size"),
    ]


def tornado(history: History, p: VaultParams, prepared: Prepared | None = None,
            progress: Progress | None = None) -> list[dict[str, Any]]:
    """Final NAV and bad debt avoided at each input's low and high value, widest NAV range first."""
    prep = prepared if prepared is not None and prepared.history is history else Prepared(history)
    rows: list[dict[str, Any]] = []
    swings = tornado_inputs(p)
    for i, sw in enumerate(swings):
        lo = replay(history, p.with_overrides(**{sw.parameter: sw.low}), prepared=prep).summary
        hi = replay(history, p.with_overrides(**{sw.parameter: sw.high}), prepared=prep).summary
        rows.append({"parameter": sw.parameter, "low": sw.low, "high": sw.high, "source": sw.source,
                     "nav_low": float(lo["final_nav_usd"]), "nav_high": float(hi["final_nav_usd"]),
                     "bad_debt_avoided_low": float(lo["bad_debt_avoided_usd"]),
                     "bad_debt_avoided_high": float(hi["bad_debt_avoided_usd"])})
        if progress is not None:
            progress((i + 1) / len(swings), f"tornado: {sw.parameter}")
    return sorted(rows, key=lambda r: (-abs(r["nav_high"] - r["nav_low"]),
                                       -abs(r["bad_debt_avoided_high"] - r["bad_debt_avoided_low"]), r["parameter"]))


# ------------------------------------------------------------------ depositor runs


@dataclass(frozen=True)
class RunSpec:
    """A depositor run (seed 001 §5.4). Every value is assumed: no venue publishes run behaviour.

    In the replay's deepest drawdown, while it is at or beyond ``threshold`` (from the first hour it
    reaches it until it is back under it, or the replay ends), ``run_share`` of the shares ask to leave. A share can leave ``lock_days`` after its last
    deposit; deposits are spread evenly over the ``deposit_age_days`` before the run, so a fraction
    min(1, (age + τ − lock) / age) of the requests is unlocked τ days into the run. The withdrawal
    queue pays at most ``queue_daily_share`` of the shares a day, first come first served. A
    withdrawal of a fraction f of the shares closes f of each open takeover at once (the rule the
    issue attributes to Extended's docs), at the square-root law's slippage against the market's daily volume,
    borne by those who stay; the withdraw fee stays in the vault. Positions a limit closed early
    count as open until their scheduled end (an upper bound on the exposure)."""

    threshold: float = 0.05  #: drawdown that starts the run (assumed)
    run_share: float = 0.5  #: share of the vault's shares that ask to leave (assumed)
    deposit_age_days: float = 30.0  #: deposits spread over this many days before the run (assumed)
    queue_daily_share: float = 0.10  #: shares the queue pays per day, of those outstanding at the run (assumed)
    locks: tuple[float, ...] = (0.0, 1.0, 4.0)  #: lock lengths compared (none; Extended docs 1 day; Hyperliquid docs 4)

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ParamError(f"the run threshold is a drawdown between 0 and 1 (exclusive), got {self.threshold}")
        for name in ("run_share", "queue_daily_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParamError(f"{name} is a fraction between 0 and 1, got {getattr(self, name)}")
        if self.deposit_age_days <= 0 or any(x < 0 for x in self.locks):
            raise ParamError("deposit_age_days must be > 0 and every lock ≥ 0 days")


def open_exposure(result: Result, history: History, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Per market, the vault's open taken-over notional at each grid time (even unwind schedule)."""
    p = result.params
    rows = result.liquidations.filter(pl.col("vault_size_taken") > 0)
    out: dict[str, np.ndarray] = {}
    horizon = max(p.unwind_hours, 1e-9) * HOUR
    for market, t0, taken, size, notional in rows.select("market", "takeover_ts", "vault_size_taken", "size",
                                                         "notional").iter_rows():
        left = np.clip(1.0 - (grid - t0) / horizon, 0.0, 1.0) * ((grid >= t0) & (grid < t0 + horizon))
        out.setdefault(market, np.zeros(grid.size))
        out[market] += left * taken * (notional / size if size > 0 else 0.0)
    return out


def _run_window(price: np.ndarray, threshold: float) -> tuple[int, int] | None:
    """(first hour the drawdown reaches ``threshold``, last hour it is still at or beyond it) in the
    replay's deepest drawdown; None if the drawdown never reaches it."""
    dd = stats.drawdown(price)
    if dd.size == 0 or float(dd.max()) < threshold:
        return None
    trough = int(np.argmax(dd))
    peaks = np.flatnonzero(dd[: trough + 1] <= 0)
    peak = int(peaks[-1]) if peaks.size else 0
    below = np.flatnonzero(dd[trough:] < threshold)
    return peak + int(np.argmax(dd[peak: trough + 1] >= threshold)), trough + int(below[0]) - 1 if below.size else dd.size - 1


def depositor_runs(result: Result, history: History, spec: RunSpec | None = None) -> dict[str, dict[str, Any]]:
    """For each lock of ``spec`` (key: its days): USD (after the withdraw fee) and share of the vault
    withdrawn while the drawdown is beyond the threshold, USD still queued (asked, not paid) at its
    end, and the loss to those who stay as a fraction of their NAV then (slippage of the pro-rata closes less the
    withdraw fees kept; negative = the fees more than paid for the closes). A longer lock never lets
    a larger share leave (the queue's cumulative payout is monotone in what is unlocked); the USD paid
    is at each hour's price, so it need not be."""
    spec = spec or RunSpec()
    p = result.params
    price = result.nav["share_price"].to_numpy()
    ts = result.nav["ts"].to_numpy().astype(float)
    window = _run_window(price, spec.threshold)
    out: dict[str, dict[str, Any]] = {}
    vol = {m: float(v) / max(1.0, history.days) for m, v in history.markets.select("market", "volume_usd").iter_rows()}
    if window is None:
        return {f"{lock:g}": {"withdrawn_usd": 0.0, "withdrawn_share": 0.0, "queued_usd": 0.0,
                              "loss_to_remaining_pct": 0.0, "run_started": None, "run_hours": 0} for lock in spec.locks}
    a, b = window
    grid = ts[a:b + 1]
    exposure = open_exposure(result, history, grid)
    for lock in spec.locks:
        key = f"{lock:g}"
        tau = (grid - grid[0]) / DAY
        unlocked = np.ones(grid.size) if lock <= 0 else np.clip((spec.deposit_age_days + tau - lock)
                                                                / spec.deposit_age_days, 0.0, 1.0)
        asked = spec.run_share * unlocked  # cumulative share of the vault allowed to leave by then
        per_hour = spec.queue_daily_share / 24.0
        paid = np.zeros(grid.size)
        for h in range(grid.size):  # cumulative FIFO queue: paid(h) = min(asked(h), paid(h−1) + capacity)
            paid[h] = min(asked[h], (paid[h - 1] if h else 0.0) + per_hour)
        step = np.diff(np.concatenate(([0.0], paid)))  # share of the vault paid out at each hour
        shares = p.vault_size_usd  # one share per USD at inception
        gross = step * shares * price[a:b + 1]
        outstanding = 1.0 - (paid - step)
        frac = np.where(outstanding > 0, step / np.maximum(outstanding, 1e-12), 0.0)  # of what is left, leaving
        cost = np.zeros(grid.size)
        for m, n_open in exposure.items():
            v = vol.get(m, 0.0)
            if v > 0:
                q = frac * n_open
                cost += p.slippage_coef * np.sqrt(q / v) * q
        fees = gross * p.withdraw_fee
        stay = float(price[b]) * shares * (1.0 - float(paid[-1]))  # those who stay, before the run's costs
        out[key] = {
            "withdrawn_usd": float((gross - fees).sum()),
            "withdrawn_share": float(paid[-1]),
            "queued_usd": (spec.run_share - float(paid[-1])) * shares * float(price[b]),
            "loss_to_remaining_pct": (float(cost.sum()) - float(fees.sum())) / stay if stay > 0 else 0.0,
            "run_started": _iso(int(grid[0])),
            "run_hours": int(grid.size - 1),
        }
    return out


# ------------------------------------------------------------------ the whole analysis


def concentration(result: Result) -> dict[str, Any]:
    """The market with the largest share of the vault's takeover losses (seed 001 §5.1's figure)."""
    rows = result.liquidations
    if rows.height == 0:
        return {"market": None, "loss_share": 0.0, "loss_usd": 0.0}
    losses = rows.filter(pl.col("vault_pnl") < 0).group_by("symbol").agg((-pl.col("vault_pnl")).sum().alias("loss"))
    total = float(losses["loss"].sum()) if losses.height else 0.0
    if total <= 0:
        return {"market": None, "loss_share": 0.0, "loss_usd": 0.0}
    top = losses.sort("loss", descending=True).row(0, named=True)
    return {"market": top["symbol"], "loss_share": float(top["loss"]) / total, "loss_usd": total}


SUMMARY_KEYS = ("vault_size_usd", "final_nav_usd", "period_return", "apr", "max_drawdown", "sharpe", "annualised_note",
                "bad_debt_status_quo_usd", "bad_debt_proposed_usd", "bad_debt_avoided_usd", "liquidation_pnl_usd",
                "fee_income_usd", "mm_income_usd", "performance_fees_usd", "insurance_draw_usd",
                "insurance_draw_status_quo_usd", "liquidations", "liquidations_absorbed", "cap_hits", "days")


def analyse(history: History, p: VaultParams, rng: np.random.Generator, *, n_bootstrap: int = 200, block_days: int = 5,
            positions: pl.DataFrame | None = None, backstop_usd: float = 0.0, insurance_usd: float = 0.0,
            run: RunSpec | None = None, tail: TailSpec | None = None, result: Result | None = None,
            progress: Progress | None = None) -> dict[str, Any]:
    """Every figure of the decision for design ``p`` (JSON-ready): the replay's summary, ``ci``, the
    daily VaR/CVaR, histogram and worst days, ``time_to_recover_days``, ``tornado``, ``scenarios``
    (the tails from the worst point) and ``run``. ``progress(fraction, what)`` is told as it goes."""
    run = run or RunSpec()
    check_analysis(history, p, n_bootstrap, run.threshold)

    def tell(x: float, what: str) -> None:
        if progress is not None:
            progress(min(1.0, x), what)

    prep = Prepared(history)
    res = result if result is not None and result.params == p else replay(history, p, prepared=prep)
    tell(0.05, "replay")
    out: dict[str, Any] = {"summary": {k: res.summary[k] for k in SUMMARY_KEYS}}
    out["ci"] = bootstrap(res, history, rng, n_bootstrap, block_days)
    out["bootstrap"] = {"resamples": n_bootstrap, "block_days": block_days,
                        "method": "circular block bootstrap of the replay's hourly NAV returns and daily bad debt "
                                  "avoided, whole days; bands widened to include the replay's figure"}
    tell(0.15, "bootstrap")
    out.update(pnl_distribution(res, history))
    out["concentration"] = concentration(res)
    tell(0.2, "daily PnL")
    out["tornado"] = tornado(history, p, prep, lambda x, what: tell(0.2 + 0.65 * x, what))
    pos = positions if positions is not None else pl.DataFrame(schema={
        "position_key": pl.String(), "account": pl.String(), "market": pl.String(), "is_long": pl.Boolean(),
        "size": pl.Float64(), "entry_price": pl.Float64(), "collateral_usd": pl.Float64()})
    tail = tail or TailSpec()
    out["scenarios"] = tails(history, res, pos, backstop_usd=backstop_usd, insurance_usd=insurance_usd, spec=tail)
    out["tail_spec"] = dataclasses.asdict(tail)
    tell(0.95, "tails")
    out["run"] = depositor_runs(res, history, run)
    out["run_spec"] = {"threshold": run.threshold, "run_share": run.run_share, "deposit_age_days": run.deposit_age_days,
                       "queue_daily_share": run.queue_daily_share}
    tell(1.0, "depositor runs")
    return out
