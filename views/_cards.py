"""What every page shows the same way: its stat-card row, the period line (times in UTC, said once),
address columns, and the layout stylesheet that keeps the cards, charts and tables inside a
phone's width.

The stylesheet is static layout CSS (grid, font sizes, overflow); no chain data ever goes through
HTML: card values and labels are st.metric text, symbols and addresses dataframe cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import streamlit as st

from core import fmt
from core.dashboard import Card

#: Cards in a grid: five a row on a wide page, as many as fit at least 9.5 rem each below that
#: (two a row at 390 px); the value's font shrinks with its card (container units) so it is never
#: cut. Charts and tables never widen the page (a table scrolls inside itself; tests/test_layout.py checks).
STYLESHEET = """
<style>
div[class*="st-key-cards-"] {
  display: grid !important;
  grid-template-columns: repeat(auto-fill, minmax(max(9.5rem, calc(20% - 0.8rem)), 1fr));
  gap: 0.75rem;
}
div[class*="st-key-cards-"] > div { width: auto !important; min-width: 0; }
div[class*="st-key-cards-"] [data-testid="stMetric"] { container-type: inline-size; min-width: 0; }
div[class*="st-key-cards-"] [data-testid="stMetricValue"] { font-size: clamp(1.1rem, 16cqi, 2rem); }
div[class*="st-key-cards-"] [data-testid="stMetricValue"] > div { overflow: visible; }
div[class*="st-key-cards-"] [data-testid="stMetricLabel"] * { white-space: normal; overflow: visible; text-overflow: clip; }
[data-testid="stVegaLiteChart"], [data-testid="stDataFrame"] { max-width: 100%; }
@media (max-width: 640px) {
  [data-testid="stMainBlockContainer"] { padding-left: 0.75rem; padding-right: 0.75rem; }
  div[class*="st-key-cards-"] [data-testid="stMetric"] { padding: 0.6rem 0.7rem; }
}
</style>
"""


@dataclass(frozen=True)
class Shown:
    """A card as text: label, value, its definition (help) and the change, formatted by core/fmt."""

    label: str
    value: str
    help: str | None = None
    delta: str | None = None


def shown(card: Card) -> Shown:
    """A dashboard card in the house formats ($1.49B, 36,742); the help adds the exact figure."""
    if card.money:
        value, exact = fmt.format_usd(card.value), f"{card.value:,.2f} USD"
        delta = None if card.delta is None else fmt.signed_usd(card.delta)
    else:
        value, exact = fmt.card_count(card.value), fmt.format_count(card.value)
        delta = None if card.delta is None else f"{card.delta:+,.0f}"
    return Shown(card.label, value, f"{card.help}\n\nExact: {exact}", delta)


def layout() -> None:
    """The page-layout stylesheet (static CSS, no data)."""
    st.html(STYLESHEET)


def period(start: int | None, end: int | None) -> None:
    """The page's period, saying once that every time on the page is UTC."""
    st.caption(f"Period: {fmt.format_period(start, end)}, as every time on this page.")


def card_row(cards: Sequence[Card | Shown], key: str) -> None:
    """The cards of a page in the one card grid (see :data:`STYLESHEET`)."""
    layout()
    with st.container(key=f"cards-{key}"):
        for c in cards:
            s = c if isinstance(c, Shown) else shown(c)
            st.metric(s.label, s.value, s.delta, help=s.help, border=True)


def pick(cards: Sequence[Card], *labels: str) -> list[Card]:
    """The cards of ``labels``, in that order (a page shows the Overview's cards it is about)."""
    by_label = {c.label: c for c in cards}
    return [by_label[label] for label in labels]


#: The account page (views/account.py reads ``?address=``), relative to the page linking to it; None: no links.
ACCOUNT_PAGE: str | None = "account"


def with_short_addresses(df: pl.DataFrame, *columns: str, link: bool = False) -> pl.DataFrame:
    """``<column>_short`` (0x8c2c…1f83) beside each address column, which stays whole (copyable).

    With ``link`` (accounts) and an :data:`ACCOUNT_PAGE`, the short column is that page's URL for the
    address, shown as the short form (see :func:`address_columns`)."""
    def short(c: str) -> pl.Expr:
        text = fmt.short_address_expr(c)
        if link and ACCOUNT_PAGE:
            text = pl.concat_str(pl.lit(f"{ACCOUNT_PAGE}?address="), pl.col(c), pl.lit("&label="), text)
        return text.alias(f"{c}_short")

    return df.with_columns(*(short(c) for c in columns))


def address_columns(column: str, label: str, link: bool = False) -> dict[str, st.column_config.Column]:
    """Column config of an address shown short (``<column>_short``) with the whole value beside it."""
    help_short = f"{label}, shortened (first and last 4 hex digits); the whole value is in '{label} (full)'"
    short = (st.column_config.LinkColumn(label, display_text=r"label=(.*)$", help=help_short) if link and ACCOUNT_PAGE
             else st.column_config.TextColumn(label, help=help_short))
    return {
        f"{column}_short": short,
        column: st.column_config.TextColumn(
            f"{label} (full)", width="small", help="The whole address: click a cell and press Ctrl/Cmd+C to copy it"),
    }
