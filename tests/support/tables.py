"""One dump of a database's tables for exact comparison, with the one tolerance rollups need.

Rollups keep float sums by adding each commit's rows to the stored bucket, so the same history
committed in other chunks (or rewound and re-indexed) rounds them apart in the last bits: their
floats compare to 1e-9 relative (1e-6 absolute: a micro-dollar). Every other value, and every value
of the event tables, compares exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlmodel import SQLModel

from core import db, schema

ROLLUP_TABLE_NAMES = frozenset(schema.table_of(m).name for m in schema.ROLLUP_TABLES)


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


class Rows(list[tuple[Any, ...]]):
    """A table's rows in key order; equal to another table's when the rows are, floats of a rollup
    table to rounding (see the module doc)."""

    def __init__(self, rows: Iterable[tuple[Any, ...]], *, rollup: bool) -> None:
        super().__init__(rows)
        self.rollup = rollup

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, list) or len(self) != len(other):
            return False
        if not self.rollup:
            return list.__eq__(self, other)
        return all(len(r) == len(s) and all(_same_value(a, b) for a, b in zip(r, s, strict=True))
                   for r, s in zip(self, other, strict=True))

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]


def models() -> dict[str, type[SQLModel]]:
    """Every table model, by table name."""
    found, todo = {}, list(SQLModel.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if isinstance(getattr(cls, "__table__", None), sa.Table):
            found[schema.table_of(cls).name] = cls
    assert set(found) == set(SQLModel.metadata.tables)
    return found


def frames(url_or_engine: str | sa.Engine, only: Iterable[type[SQLModel]] | None = None) -> dict[str, pl.DataFrame]:
    """Every table (or ``only`` these) as a frame typed by its schema, in key order; the checkpoint's
    wall-clock time left out."""
    engine = db.make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    chosen = models() if only is None else {schema.table_of(m).name: m for m in only}
    out = {}
    try:
        with engine.connect() as conn:
            for name, model in sorted(chosen.items()):
                t = schema.table_of(model)
                cols = [c for c in t.columns if c.name != "updated_at"]
                types = schema.frame_schema(model)
                out[name] = db.read_frame(conn, sa.select(*cols).order_by(*t.primary_key.columns),
                                          {c.name: types[c.name] for c in cols})
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()
    return out


def dump(url_or_engine: str | sa.Engine, only: Iterable[type[SQLModel]] | None = None) -> dict[str, Rows]:
    """:func:`frames` as rows, which compare as the module doc says."""
    return {name: Rows(f.rows(), rollup=name in ROLLUP_TABLE_NAMES) for name, f in frames(url_or_engine, only).items()}


def rollups(url_or_engine: str | sa.Engine) -> dict[str, Rows]:
    """The rollup tables' rows (:func:`dump` of them)."""
    return dump(url_or_engine, schema.ROLLUP_TABLES)
