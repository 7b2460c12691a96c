"""marginX Analytics: the entry point (page config, data source, shared sidebar, navigation)."""

from __future__ import annotations

import streamlit as st

from pages import _common as common

st.set_page_config(page_title="marginX Analytics", page_icon="📈", layout="wide")

pages = [
    st.Page("pages/overview.py", title="Overview", icon="📊", default=True),
    st.Page("pages/markets.py", title="Markets", icon="💹"),
    st.Page("pages/liquidations.py", title="Liquidations & risk", icon="🌊"),
    st.Page("pages/traders.py", title="Traders", icon="👥"),
    st.Page("pages/vault.py", title="Vault what-if", icon="🏦"),
    st.Page("pages/indexed.py", title="Indexed data", icon="🗄️"),
]
navigation = st.navigation(pages)
common.prepare_data()
common.sidebar()
navigation.run()
