"""marginX Analytics: the entry point (page config, data source, shared sidebar, navigation)."""

from __future__ import annotations

import streamlit as st

from pages import _common as common

# Material icons ship with Streamlit's frontend, so they render where no emoji font is installed.
st.set_page_config(page_title="marginX Analytics", page_icon=":material/monitoring:", layout="wide")

pages = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/markets.py", title="Markets", icon=":material/candlestick_chart:"),
    st.Page("pages/liquidations.py", title="Liquidations & risk", icon=":material/waterfall_chart:"),
    st.Page("pages/traders.py", title="Traders", icon=":material/group:"),
    st.Page("pages/revenue.py", title="Fees, PnL & funding", icon=":material/payments:"),
    st.Page("pages/risk.py", title="Position risk", icon=":material/warning:"),
    st.Page("pages/buffers.py", title="Vault & insurance fund", icon=":material/savings:"),
    st.Page("pages/account.py", title="Account", icon=":material/person_search:"),
    st.Page("pages/vault.py", title="Vault what-if", icon=":material/account_balance:"),
    st.Page("pages/indexed.py", title="Indexed data", icon=":material/database:"),
]
navigation = st.navigation(pages)
common.prepare_data(navigation.title)
common.sidebar()
navigation.run()
