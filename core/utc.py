"""Time on chain is UTC seconds (a block's timestamp); these are the one spelling of its units and
of the conversion to calendar time, so a "day" means the same UTC day in every module."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import polars as pl

HOUR = 3_600
DAY = 86_400
WEEK = 7 * DAY
UTC = dt.timezone.utc
EPOCH_DAY = dt.date(1970, 1, 1)


def to_datetime(ts: int | float) -> dt.datetime:
    """The UTC datetime of an epoch second."""
    return dt.datetime.fromtimestamp(ts, UTC)


def format_day(ts: int | float) -> str:
    """``YYYY-MM-DD`` of the UTC day holding ``ts``."""
    return _day_text(int(ts // DAY))


@lru_cache(maxsize=1 << 14)  # the /stats series format the same days on every request
def _day_text(days: int) -> str:
    return (EPOCH_DAY + dt.timedelta(days=days)).isoformat()


def format_minute(ts: int | float) -> str:
    """``YYYY-MM-DD HH:MM UTC``."""
    return to_datetime(ts).strftime("%Y-%m-%d %H:%M UTC")


def day_start(date: dt.date) -> int:
    """00:00 UTC of ``date`` in epoch seconds."""
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=UTC).timestamp())


def datetime_expr(column: str) -> pl.Expr:
    """A polars column of epoch seconds as UTC datetimes (same name)."""
    return pl.from_epoch(column, time_unit="s").dt.replace_time_zone("UTC")
