"""marginX Analytics: the entry point (page config, data source, shared sidebar, navigation)."""

from __future__ import annotations

import streamlit as st

from core import demo

# First, before this run's imports (~2 s of CPU on a first run): an empty database's demo build
# starts now, in its own process, instead of after them (the build finds out whether it is needed).
demo.start_configured()

from views import _common as common  # noqa: E402

# Material icons ship with Streamlit's frontend, so they render where no emoji font is installed.
st.set_page_config(page_title="marginX Analytics", page_icon=":material/monitoring:", layout="wide")

pages = [
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("views/markets.py", title="Markets", icon=":material/candlestick_chart:"),
    st.Page("views/liquidations.py", title="Liquidations & risk", icon=":material/waterfall_chart:"),
    st.Page("views/traders.py", title="Traders", icon=":material/group:"),
    st.Page("views/revenue.py", title="Fees, PnL & funding", icon=":material/payments:"),
    st.Page("views/risk.py", title="Position risk", icon=":material/warning:"),
    st.Page("views/buffers.py", title="Vault & insurance fund", icon=":material/savings:"),
    st.Page("views/account.py", title="Account", icon=":material/person_search:"),
    st.Page("views/vault.py", title="Vault what-if", icon=":material/account_balance:"),
    st.Page("views/indexed.py", title="Indexed data", icon=":material/database:"),
]
navigation = st.navigation(pages)
common.prepare_data(navigation.title)
common.sidebar()
navigation.run()
