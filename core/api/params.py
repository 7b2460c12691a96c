"""The ``/stats`` endpoints' query parameters, checked before anything reaches the database.

Every value is parsed against a closed set (intervals, ranges, market types), a calendar date or a
hex address that must name a discovered market; nothing a client sends is ever SQL text. A bad
value raises :class:`ParamError`, which the app turns into a 422 naming the parameter and what it
accepts, with the offending value cut short (a 10 kB value is not echoed back).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from core.period import Filters, Granularity, days_window, trailing_window
from core.utc import day_start

#: Query intervals → bucket sizes of the read layer.
INTERVALS: dict[str, Granularity] = {"1h": "hour", "1d": "day", "1w": "week"}
#: Trailing ranges (days up to the newest indexed block; None = since the first block), as the pages' presets.
RANGES: dict[str, int | None] = {"24h": 1, "7d": 7, "30d": 30, "90d": 90, "all": None}
MARKET_TYPES = ("spot", "perp")
#: The longest value any parameter takes: 100 comma-separated addresses.
MAX_LENGTH = 100 * 43
MAX_MARKETS = 100
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

#: Parameters of a period; series add ``interval``.
PERIOD_PARAMS = ("range", "start", "end", "markets", "type", "chain_id")
SERIES_PARAMS = ("interval", *PERIOD_PARAMS)
MARKET_PARAMS = ("markets", "type", "chain_id")


class ParamError(ValueError):
    """A bad query parameter: which one, and what it accepts."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


def shown(value: str, limit: int = 50) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def check_names(given: Sequence[str], allowed: Sequence[str]) -> None:
    """Refuse parameters the endpoint does not take (a typo would otherwise be silently ignored)."""
    for name in given:
        if name not in allowed:
            raise ParamError(name if len(name) <= 40 else name[:40] + "…",
                             f"unknown parameter; this endpoint takes {', '.join(allowed)}")


def check_lengths(params: Mapping[str, str]) -> None:
    for name, value in params.items():
        if len(value) > MAX_LENGTH:
            raise ParamError(name, f"value of {len(value):,} characters is too long (at most {MAX_LENGTH:,})")


def interval(value: str | None, allowed: Sequence[str] = tuple(INTERVALS)) -> Granularity:
    text = "1d" if value is None else value
    if text not in allowed:
        raise ParamError("interval", f"{shown(text)} is not one of {', '.join(allowed)}")
    return INTERVALS[text]


def _date(name: str, value: str) -> dt.date:
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ParamError(name, f"{shown(value)} is not a UTC date YYYY-MM-DD") from None


def day(value: str) -> dt.date:
    """A path's ``{day}``."""
    return _date("day", value)


def chain(value: str | None, chains: Sequence[int]) -> int:
    """The chain to read: ``chain_id``, or the database's only one."""
    if value is None:
        if len(chains) > 1:
            raise ParamError("chain_id", f"the database holds chains {list(chains)}: pass one")
        return chains[0]
    if not value.isdigit() or int(value) not in chains:
        raise ParamError("chain_id", f"{shown(value)} is not an indexed chain; the database holds {list(chains)}")
    return int(value)


def period(params: Mapping[str, str], as_of: int) -> tuple[int | None, int | None]:
    """[start, end) seconds from ``range`` (trailing, up to the newest block at ``as_of``) or
    ``start``/``end`` (whole UTC days, inclusive); the whole history when none is given."""
    rng, start, end = params.get("range"), params.get("start"), params.get("end")
    if rng is not None:
        if rng not in RANGES:
            raise ParamError("range", f"{shown(rng)} is not one of {', '.join(RANGES)}")
        if start is not None or end is not None:
            raise ParamError("range", "give either range or start/end, not both")
        return trailing_window(as_of, RANGES[rng])
    first = _date("start", start) if start is not None else None
    last = _date("end", end) if end is not None else None
    if first is not None and last is not None and first > last:
        raise ParamError("start", f"{first} is after end {last}")
    return (day_start(first) if first else None), (days_window(last, last)[1] if last else None)


def selected_markets(params: Mapping[str, str], known: pl.DataFrame) -> tuple[str, ...] | None:
    """The market addresses of ``markets`` and ``type`` (None = every market), as the pages select them.

    ``known`` is the read layer's markets frame. Addresses match case-insensitively and are
    returned as stored."""
    by_lower = {m.lower(): (m, t) for m, t in zip(known["market"].to_list(), known["market_type"].to_list(), strict=True)}
    kind = params.get("type")
    if kind is not None and kind not in MARKET_TYPES:
        raise ParamError("type", f"{shown(kind)} is not one of {', '.join(MARKET_TYPES)}")
    text = params.get("markets")
    if text is None:
        chosen = [m for m, _ in by_lower.values()]
    else:
        parts = text.split(",")
        if len(parts) > MAX_MARKETS:
            raise ParamError("markets", f"{len(parts)} markets given; at most {MAX_MARKETS}")
        chosen = []
        for part in parts:
            address = part.strip()
            if not _ADDRESS.fullmatch(address):
                raise ParamError("markets", f"{shown(address)} is not a market address (0x and 40 hex digits), "
                                            "comma-separated")
            if address.lower() not in by_lower:
                raise ParamError("markets", f"{shown(address)} is not a market of this deployment; see /stats/markets")
            chosen.append(by_lower[address.lower()][0])
    if kind is not None:
        chosen = [m for m in chosen if by_lower[m.lower()][1] == kind]
    return tuple(dict.fromkeys(chosen)) if (text is not None or kind is not None) else None


@dataclass(frozen=True)
class View:
    """What one request selects, resolved against the database: the chain, its newest block and time,
    the period and markets (:class:`Filters`) and the bucket size."""

    chain_id: int
    as_of_block: int
    as_of_time: int
    filters: Filters
    granularity: Granularity
