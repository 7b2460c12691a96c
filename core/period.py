"""What a view selects — a period of UTC seconds, markets, a bucket size — shared by the read layer,
the metrics, the pages, the report and the API, so each spells a period the same way."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from core.utc import DAY, day_start

Granularity = Literal["hour", "day", "week"]
GRANULARITIES: tuple[Granularity, ...] = ("hour", "day", "week")


@dataclass(frozen=True)
class Filters:
    """What a view selects: [start, end) in UTC seconds (None = unbounded) and market addresses."""

    start: int | None = None
    end: int | None = None
    markets: tuple[str, ...] | None = None  # None = all markets


def days_window(first: dt.date, last: dt.date) -> tuple[int, int]:
    """[start, end) seconds covering the UTC days first..last inclusive."""
    return day_start(first), day_start(last) + DAY


def trailing_window(as_of: int, days: int | None) -> tuple[int | None, int]:
    """[start, end) seconds of the ``days`` up to and including ``as_of`` (None: since the first block)."""
    return (None if days is None else as_of - days * DAY + 1), as_of + 1
