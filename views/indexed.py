"""Indexed data: per deployment, the checkpoint and rows per event, and the reconciliation checks."""

from __future__ import annotations

import polars as pl
import streamlit as st

from core import fmt
from core.utc import format_minute
from views import _cards as cards
from views import _common as common

st.title("Indexed data")
deployments = common.index_status()
if not deployments:
    st.info("Nothing indexed yet: run `python -m core.indexer --rpc-url URL --manifest PATH` (see README).")
    st.stop()
st.caption("All times are UTC.")
for i, d in enumerate(deployments):
    when = format_minute(d.last_block_timestamp).removesuffix(" UTC") if d.last_block_timestamp is not None else fmt.MISSING
    st.subheader(f"Deployment {d.deployment!r} on chain {d.chain_id}", anchor=False)
    checks = common.reconciliation(d.chain_id)
    failed = [c.name for c in checks if not c.ok]
    stored = d.stored
    cards.card_row([
        cards.Shown("Indexed through block", fmt.format_count(d.last_block), f"The checkpoint: the last fully stored block ({when})."),
        cards.Shown("Event types stored", fmt.format_count(len(stored)), "EVENTS.md events with at least one row."),
        cards.Shown("Reconciliation", f"{len(checks) - len(failed)} of {len(checks)}", "Checks that pass (below)."),
    ], f"indexed-{i}")
    table = pl.DataFrame({"event": list(stored), "rows": list(stored.values())})
    st.dataframe(table, hide_index=True, placeholder=fmt.MISSING, column_config={
        "event": st.column_config.TextColumn("Event"),
        "rows": st.column_config.NumberColumn("Rows stored", format="localized"),
    })
    common.csv_download(table, f"stored-{d.chain_id}-{d.deployment}")
    st.subheader("Reconciliation", anchor=False)
    if failed:
        st.error(f"{len(failed)} of {len(checks)} reconciliation checks fail: {', '.join(failed)}")
    else:
        st.success(f"All {len(checks)} reconciliation checks pass")
    rows = pl.DataFrame([{"check": c.name, "result": "pass" if c.ok else "FAIL", "expected": c.expected,
                          "shown": c.actual, "how": c.detail} for c in checks])
    st.dataframe(rows, hide_index=True, width="stretch", placeholder=fmt.MISSING, column_config={
        "check": st.column_config.TextColumn("Check"),
        "result": st.column_config.TextColumn("Result"),
        "expected": st.column_config.NumberColumn("Expected (recomputed)", format="localized"),
        "shown": st.column_config.NumberColumn("Shown on the pages", format="localized"),
        "how": st.column_config.TextColumn("How it is checked"),
    })
    common.csv_download(rows, f"reconciliation-{d.chain_id}")
