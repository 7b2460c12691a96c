"""marginX Analytics core: everything testable without Streamlit (this package never imports it)."""
