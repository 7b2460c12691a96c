"""marginX Analytics: the entry point (page config, shared sidebar, navigation)."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="marginX Analytics", page_icon="📈", layout="wide")

pages = [
    st.Page("pages/indexed.py", title="Indexed data", icon="🗄️", default=True),
]
st.navigation(pages).run()
