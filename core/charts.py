"""Pure Altair chart builders (``DataFrame -> alt.Chart``) and the dashboard's dark theme.

Builders take the frames of core/metrics.py (``bucket`` as UTC seconds is turned into a datetime
here). Market symbols are untrusted on-chain text: Vega renders them as text, never as markup.
"""

from __future__ import annotations

import altair as alt
import polars as pl

ACCENT = "#50e3c2"
PALETTE = ["#50e3c2", "#6c8cff", "#f5a623", "#e35d6a", "#b37feb", "#36cfc9", "#ffd666", "#95de64"]
TIERS = ["book", "adl", "backstop", "insurance", "socialized"]
TIER_COLORS = ["#6c8cff", "#b37feb", "#50e3c2", "#f5a623", "#e35d6a"]


def theme() -> dict[str, object]:
    return {
        "config": {
            "background": "transparent",
            "view": {"stroke": None},
            "axis": {"labelColor": "#9aa4b2", "titleColor": "#9aa4b2", "gridColor": "#1f2633", "domainColor": "#2a3240"},
            "legend": {"labelColor": "#c9d1dc", "titleColor": "#9aa4b2", "orient": "bottom"},
            "range": {"category": PALETTE},
            "title": {"color": "#e6e9ef", "anchor": "start", "fontSize": 14},
        }
    }


alt.theme.register("marginx", enable=True)(theme)


def _time(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.from_epoch("bucket", time_unit="s").dt.replace_time_zone("UTC").alias("time"))


def stacked_bars_with_cumulative(df: pl.DataFrame, value: str, title: str, fmt: str = "$,.0f") -> alt.LayerChart:
    """Bars of ``value`` per bucket stacked by symbol, and the running total as a line (right axis)."""
    data = _time(df)
    totals = data.group_by("time").agg(pl.col(value).sum()).sort("time").with_columns(
        pl.col(value).cum_sum().alias("cumulative"))
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("time:T", title=None), y=alt.Y(f"sum({value}):Q", title=title, axis=alt.Axis(format=fmt.strip("$"))),
        color=alt.Color("symbol:N", title="market"),
        tooltip=[alt.Tooltip("time:T"), "symbol:N", alt.Tooltip(f"{value}:Q", format=fmt)],
    )
    line = alt.Chart(totals).mark_line(color="#e6e9ef", strokeDash=[4, 3]).encode(
        x="time:T", y=alt.Y("cumulative:Q", title="cumulative", axis=alt.Axis(format=fmt.strip("$"))),
        tooltip=[alt.Tooltip("time:T"), alt.Tooltip("cumulative:Q", format=fmt)],
    )
    return alt.layer(bars, line).resolve_scale(y="independent").properties(title=title, height=280)


def bars(df: pl.DataFrame, value: str, title: str, color: str | None = "symbol", fmt: str = ",.0f") -> alt.Chart:
    enc: dict[str, object] = {
        "x": alt.X("time:T", title=None), "y": alt.Y(f"sum({value}):Q", title=title),
        "tooltip": [alt.Tooltip("time:T"), alt.Tooltip(f"{value}:Q", format=fmt)],
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=color)
    return alt.Chart(_time(df)).mark_bar().encode(**enc).properties(title=title, height=240)


def area(df: pl.DataFrame, value: str, title: str, color: str | None = None, fmt: str = "$,.0f") -> alt.Chart:
    enc: dict[str, object] = {
        "x": alt.X("time:T", title=None), "y": alt.Y(f"{value}:Q", title=title, stack=bool(color)),
        "tooltip": [alt.Tooltip("time:T"), alt.Tooltip(f"{value}:Q", format=fmt)],
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=color)
        enc["tooltip"] = [*enc["tooltip"], f"{color}:N"]  # type: ignore[misc]
    chart = alt.Chart(_time(df))
    chart = chart.mark_area(opacity=0.75, line=True) if color else chart.mark_area(opacity=0.75, line=True, color=ACCENT)
    return chart.encode(**enc).properties(title=title, height=240)


def lines(df: pl.DataFrame, value: str, title: str, color: str, fmt: str = "$,.0f", y_title: str = "") -> alt.Chart:
    """One line per ``color`` value; the y axis keeps a short title (a long one squeezes the plot)."""
    return alt.Chart(_time(df)).mark_line().encode(
        x=alt.X("time:T", title=None), y=alt.Y(f"{value}:Q", title=y_title or None, axis=alt.Axis(format=fmt.strip("$"))),
        color=alt.Color(f"{color}:N", title=None),
        tooltip=[alt.Tooltip("time:T"), f"{color}:N", alt.Tooltip(f"{value}:Q", format=fmt)],
    ).properties(title=title, height=240)


def liquidations(df: pl.DataFrame, selectable: bool = False) -> alt.Chart:
    """Liquidated notional per bucket, stacked by market and side; a click selects a bucket."""
    data = _time(df)
    chart = alt.Chart(data).mark_bar().encode(
        x=alt.X("time:T", title=None), y=alt.Y("sum(notional_usd):Q", title="liquidated notional (USD)"),
        color=alt.Color("series:N", title="market · side"),
        tooltip=[alt.Tooltip("time:T"), "series:N", alt.Tooltip("notional_usd:Q", format="$,.0f"),
                 alt.Tooltip("count:Q", title="liquidations")],
    ).properties(title="Liquidations", height=260)
    if selectable:
        pick = alt.selection_point(name="day", fields=["bucket"], on="click")
        chart = chart.add_params(pick).encode(opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)))
    return chart


def waterfall(df: pl.DataFrame) -> alt.Chart:
    """Cumulative loss absorbed by each tier of the waterfall over time (stacked area)."""
    return alt.Chart(_time(df)).mark_area(opacity=0.85).encode(
        x=alt.X("time:T", title=None), y=alt.Y("cumulative_usd:Q", title="cumulative USD", stack=True),
        color=alt.Color("tier:N", sort=TIERS, scale=alt.Scale(domain=TIERS, range=TIER_COLORS), title="tier"),
        order=alt.Order("tier_order:Q"),
        tooltip=[alt.Tooltip("time:T"), "tier:N", alt.Tooltip("cumulative_usd:Q", format="$,.0f")],
    ).properties(title="Loss waterfall, cumulative", height=260)


def candles(df: pl.DataFrame, title: str) -> alt.LayerChart:
    """OHLC candles of one market (columns bucket, open/high/low/close_price)."""
    data = _time(df).filter(pl.col("close_price").is_not_null())
    up = alt.condition("datum.close_price >= datum.open_price", alt.value(ACCENT), alt.value("#e35d6a"))
    base = alt.Chart(data).encode(x=alt.X("time:T", title=None), color=up)
    wick = base.mark_rule().encode(y=alt.Y("low_price:Q", title="price", scale=alt.Scale(zero=False)), y2="high_price:Q")
    body = base.mark_bar().encode(y="open_price:Q", y2="close_price:Q", tooltip=[
        alt.Tooltip("time:T"), alt.Tooltip("open_price:Q", format=",.4~f"), alt.Tooltip("high_price:Q", format=",.4~f"),
        alt.Tooltip("low_price:Q", format=",.4~f"), alt.Tooltip("close_price:Q", format=",.4~f")])
    return alt.layer(wick, body).properties(title=title, height=260)


def heatmap(df: pl.DataFrame, x: str, y: str, value: str, title: str, fmt: str = ",.2f") -> alt.LayerChart:
    """A grid of ``value`` over two parameters (a sweep), each cell labelled with its value."""
    data = df.with_columns(pl.col(x).cast(pl.String).fill_null("none"), pl.col(y).cast(pl.String).fill_null("none"))
    order_x = data[x].unique(maintain_order=True).to_list()
    order_y = data[y].unique(maintain_order=True).to_list()
    base = alt.Chart(data).encode(x=alt.X(f"{x}:N", sort=order_x, title=x), y=alt.Y(f"{y}:N", sort=order_y[::-1], title=y))
    cells = base.mark_rect().encode(color=alt.Color(f"{value}:Q", title=None, scale=alt.Scale(scheme="viridis")),
                                    tooltip=[f"{x}:N", f"{y}:N", alt.Tooltip(f"{value}:Q", format=fmt)])
    labels = base.mark_text(fontSize=10, color="#0b0e14").encode(text=alt.Text(f"{value}:Q", format=fmt.strip("$")))
    return alt.layer(cells, labels).properties(title=title, height=320)


def grouped_bars(df: pl.DataFrame, category: str, value: str, group: str, title: str, fmt: str = ",.0f") -> alt.Chart:
    """One bar per (category, group): e.g. bad debt or cap hits per design."""
    return alt.Chart(df).mark_bar().encode(
        x=alt.X(f"{category}:N", title=None), xOffset=f"{group}:N", y=alt.Y(f"{value}:Q", title=None),
        color=alt.Color(f"{group}:N", title=None),
        tooltip=[f"{category}:N", f"{group}:N", alt.Tooltip(f"{value}:Q", format=fmt)],
    ).properties(title=title, height=240)
