"""The one spelling of "in the selected period and markets" for every reader's query."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.period import Filters


def in_period(q: sa.Select[Any], t: sa.Table, f: Filters, *, time: str = "block_timestamp", markets: bool = True) -> sa.Select[Any]:
    """``q`` limited to rows of ``t`` with f.start ≤ ``time`` < f.end and (``markets``) in f.markets."""
    if f.start is not None:
        q = q.where(t.c[time] >= f.start)
    if f.end is not None:
        q = q.where(t.c[time] < f.end)
    if markets and f.markets is not None:
        q = q.where(t.c.market.in_(f.markets))
    return q
