"""Numbers for people: the one place figures are turned into the text a card or a table shows."""

from __future__ import annotations


def format_usd(x: float) -> str:
    """Card-sized dollars: $1.49B, $12.34M, $15,556, $8.83 (sign first: -$52,063)."""
    sign, a = ("-" if x < 0 else ""), abs(x)
    if a >= 1e9:
        return f"{sign}${a / 1e9:,.2f}B"
    if a >= 1e6:
        return f"{sign}${a / 1e6:,.2f}M"
    return f"{sign}${a:,.0f}" if a >= 100 else f"{sign}${a:,.2f}"
