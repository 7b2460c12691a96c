"""What the indexer has stored: per deployment, the checkpoint and rows per event."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import streamlit as st
from sqlalchemy.engine import Engine

from core import config, db
from core.indexer.load import index_status


@st.cache_resource
def engine() -> Engine:
    return db.make_engine(config.database_url())


@st.cache_data(ttl=30)
def status(_engine: Engine) -> list[dict[str, object]]:
    return index_status(_engine)


st.title("Indexed data")
try:
    deployments = status(engine())
except db.DatabaseError as e:
    st.error(str(e))
    st.stop()
if not deployments:
    st.info("Nothing indexed yet. Run `python -m core.indexer --rpc-url URL --manifest PATH` (see README).")
for d in deployments:
    ts = d["last_block_timestamp"]
    when = datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M UTC") if isinstance(ts, int) else "?"
    st.subheader(f"{d['deployment']} · chain {d['chain_id']}", anchor=False)
    st.caption(f"Indexed through block {d['last_block']} ({when})")
    stored = d["stored"]
    assert isinstance(stored, dict)
    st.dataframe(pl.DataFrame({"event": list(stored), "rows": list(stored.values())}), hide_index=True)
