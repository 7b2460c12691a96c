"""The typed read layer: every SQL reader the pages, the ``/stats`` API and the vault use.

Readers take an engine (or a connection) and return polars frames or small typed values; nothing
here computes a series (that is :mod:`core.metrics`, frames in, frames out) and nothing here writes.
"""

from sqlalchemy.engine import Engine

from core import db, rollup
from core.db import DatabaseError

__all__ = ["DatabaseError", "Engine", "open_database"]


def open_database(url: str) -> Engine:
    """The engine the front ends read through, for a database ``url`` (``db.DatabaseError`` if it cannot open).

    A database rolled up by an older version gets the newer rollup tables filled once, here."""
    engine = db.make_engine(url)
    rollup.upgrade(engine)
    return engine
