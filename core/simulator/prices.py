"""Minute-by-minute index and mark prices of every market, drawn up front (vectorised numpy).

Each asset's log-return is a common crypto factor plus an idiosyncratic part, scaled by a shared
GARCH(1,1) variance (volatility clusters for hours), plus rare Poisson jumps. Two scripted events
are laid on top: a crash day on which every asset falls in a few violent one-minute candles and
partly recovers, and a short squeeze on the thin market (the market with ``squeeze_rise > 0``).
Perp marks are the index times ``exp(premium)``, the premium a mean-reverting basis that spikes
negative in the crash and positive in the squeeze; it drives funding. Spot markets trade at index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.simulator.params import RunConfig

MINUTES_PER_DAY = 1440
_MINUTES_PER_YEAR = 525_600
#: Crash: (minute offset, share of the drop) of its one-minute candles, from 13:30 UTC; the second
#: is a flash candle that gaps through many positions' bankruptcy prices before the oracle sees it.
_CRASH_WAVES = ((0, 0.06), (6, 0.6), (13, 0.1), (24, 0.1), (41, 0.07), (70, 0.07))
_CRASH_RECOVERY = 0.35  #: share of the drop recovered over the next 8 hours
#: Squeeze: (minute offset, share of the rise) of its candles, from 15:00 UTC.
_SQUEEZE_WAVES = ((0, 0.10), (9, 0.24), (22, 0.20), (47, 0.14), (88, 0.20), (150, 0.12))
_SQUEEZE_FADE = 0.5  #: share of the rise given back over the next 12 hours


@dataclass(frozen=True)
class PricePaths:
    """Per-minute prices, shape (markets, minutes), and the shared activity level, shape (minutes,)."""

    index: np.ndarray  #: index price (USD) of each market's asset
    mark: np.ndarray  #: perp mark price (index × exp(premium)); the index for spot markets
    activity: np.ndarray  #: relative volatility √h of each minute (order flow follows it)
    crash_minute: int  #: first minute of the crash
    squeeze_minute: int  #: first minute of the squeeze (-1 without a thin market)


def _scripted(n: int, start: int, waves: tuple[tuple[int, float], ...], total: float, give_back: float,
              give_back_minutes: int) -> np.ndarray:
    """Log-return path: ``total`` spread over one-minute candles, then ``give_back`` of it undone linearly."""
    out = np.zeros(n)
    last = start
    for offset, share in waves:
        t = start + offset
        if 0 <= t < n:
            out[t] += total * share
            last = t
    end = min(n, last + 1 + give_back_minutes)
    if end > last + 1:
        out[last + 1 : end] -= total * give_back / give_back_minutes
    return out


def simulate_prices(cfg: RunConfig, rng: np.random.Generator) -> PricePaths:
    """Draw every market's minute prices for the whole run."""
    eco = cfg.economy
    n = cfg.days * MINUTES_PER_DAY
    assets: dict[str, int] = {}
    for m in cfg.markets:
        assets.setdefault(m.asset, len(assets))
    first = {a: next(m for m in cfg.markets if m.asset == a) for a in assets}
    n_assets = len(assets)

    # Shared GARCH(1,1) variance multiplier (mean 1), driven by the common factor's shocks.
    factor = rng.standard_normal(n)
    alpha, persistence = eco.vol_shock, eco.vol_persistence
    omega, beta = 1.0 - persistence, persistence - alpha
    crash_day = min(cfg.days - 1, int(cfg.days * eco.crash_fraction))
    crash_minute = crash_day * MINUTES_PER_DAY + 13 * 60 + 30
    thin = [m for m in cfg.markets if m.squeeze_rise > 0]
    squeeze_day = min(cfg.days - 1, int(cfg.days * eco.squeeze_fraction))
    if squeeze_day == crash_day and cfg.days > 1:
        squeeze_day = crash_day + 1 if crash_day + 1 < cfg.days else crash_day - 1
    squeeze_minute = squeeze_day * MINUTES_PER_DAY + 15 * 60 + (0 if squeeze_day != crash_day else 6 * 60) if thin else -1
    shocks = {crash_minute: 25.0, squeeze_minute: 6.0}
    h = np.empty(n)
    hv = 1.0
    for t, z in enumerate(factor.tolist()):
        h[t] = hv = shocks.get(t, hv)
        hv = omega + alpha * hv * z * z + beta * hv
    sqrt_h = np.sqrt(h)

    rho = eco.market_beta
    log_ret = np.empty((n_assets, n))
    for a, i in assets.items():
        p = first[a]
        sigma = p.annual_vol / math.sqrt(_MINUTES_PER_YEAR)
        z = rho * factor + math.sqrt(1 - rho * rho) * rng.standard_normal(n)
        r = sigma * sqrt_h * z
        jumps = rng.random(n) < p.jump_rate_per_day / MINUTES_PER_DAY
        r[jumps] += rng.normal(0.0, p.jump_size, int(jumps.sum()))
        r += _scripted(n, crash_minute, _CRASH_WAVES, -p.crash_drop, _CRASH_RECOVERY, 8 * 60)
        if p.squeeze_rise > 0:
            r += _scripted(n, squeeze_minute, _SQUEEZE_WAVES, p.squeeze_rise, _SQUEEZE_FADE, 12 * 60)
        log_ret[i] = r
    asset_index = np.exp(np.cumsum(log_ret, axis=1))

    index = np.empty((len(cfg.markets), n))
    mark = np.empty((len(cfg.markets), n))
    premia: dict[str, np.ndarray] = {}
    for k, m in enumerate(cfg.markets):
        index[k] = m.start_price * asset_index[assets[m.asset]]
        if not m.perp:
            mark[k] = index[k]
            continue
        if m.asset not in premia:
            noise = m.premium_vol * sqrt_h * rng.standard_normal(n)
            noise += _scripted(n, crash_minute, _CRASH_WAVES, -0.02, 1.0, 180)
            if m.squeeze_rise > 0:
                noise += _scripted(n, squeeze_minute, _SQUEEZE_WAVES, 0.03, 1.0, 240)
                crowd = int(eco.crowding_days * MINUTES_PER_DAY)
                lo = max(0, squeeze_minute - crowd)
                noise[lo:squeeze_minute] -= 0.00004  # crowded shorts push the perp under its index
            premia[m.asset] = _ar1(noise, eco.premium_reversion)
        mark[k] = index[k] * np.exp(premia[m.asset])
    assert np.all(index > 0) and np.all(mark > 0)
    return PricePaths(index=index, mark=mark, activity=np.clip(sqrt_h, 0.5, 4.0), crash_minute=crash_minute,
                      squeeze_minute=squeeze_minute)


def _ar1(shocks: np.ndarray, reversion: float) -> np.ndarray:
    """p_t = (1 − reversion)·p_{t−1} + shock_t."""
    keep = 1.0 - reversion
    out = np.empty(len(shocks))
    p = 0.0
    for t, s in enumerate(shocks.tolist()):
        out[t] = p = keep * p + s
    return out
