"""Indexed data: per deployment, the checkpoint and rows per event, and the reconciliation checks."""

from __future__ import annotations

import polars as pl
import streamlit as st

from core.utc import format_minute
from pages import _common as common

st.title("Indexed data")
deployments = common.index_status()
if not deployments:
    st.info("Nothing indexed yet: run `python -m core.indexer --rpc-url URL --manifest PATH` (see README).")
    st.stop()
for d in deployments:
    when = format_minute(d.last_block_timestamp) if d.last_block_timestamp is not None else "?"
    st.subheader(f"Deployment {d.deployment!r} on chain {d.chain_id}", anchor=False)
    st.caption(f"Indexed through block {d.last_block:,} ({when})")
    stored = d.stored
    table = pl.DataFrame({"event": list(stored), "rows": list(stored.values())})
    st.dataframe(table, hide_index=True)
    common.csv_download(table, f"stored-{d.chain_id}-{d.deployment}")
    st.subheader("Reconciliation", anchor=False)
    checks = common.reconciliation(d.chain_id)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        st.error(f"{len(failed)} of {len(checks)} reconciliation checks fail: {', '.join(failed)}")
    else:
        st.success(f"All {len(checks)} reconciliation checks pass")
    rows = pl.DataFrame([{"check": c.name, "result": "✅ pass" if c.ok else "❌ FAIL", "expected": c.expected,
                          "shown": c.actual, "how": c.detail} for c in checks])
    st.dataframe(rows, hide_index=True, width="stretch")
    common.csv_download(rows, f"reconciliation-{d.chain_id}")
