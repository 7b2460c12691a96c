"""Pure Altair chart builders (``DataFrame -> alt.Chart``) and the dashboard's dark theme.

Builders take the frames of core/metrics.py (``bucket`` as UTC seconds). One layout system for
every chart: the same height, the y axis a fixed width (so charts stacked in a column line up),
legends above the plot in as many columns as fit a phone's width (never cut), axis labels and
tooltips in the units of core/fmt (``$20M``, ``12%``), dates in UTC. The charts of one page share an
x domain: pass them the same :class:`TimeAxis` (:func:`time_axis` over the page's frames).

Market symbols are untrusted on-chain text: Vega renders them as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import altair as alt
import polars as pl

from core import fmt
from core.metrics import revenue
from core.utc import DAY, HOUR, WEEK, datetime_expr, to_datetime

ACCENT = "#50e3c2"
PALETTE = ["#50e3c2", "#6c8cff", "#f5a623", "#e35d6a", "#b37feb", "#36cfc9", "#ffd666", "#95de64"]
TIERS = ["book", "adl", "backstop", "insurance", "socialized"]
TIER_COLORS = ["#6c8cff", "#b37feb", "#50e3c2", "#f5a623", "#e35d6a"]
TAKER_SIDES = list(revenue.TAKER_SIDES)  #: their colours below
TAKER_COLORS = ["#50e3c2", "#e35d6a"]

HEIGHT = 240  #: the plot height of every time-series chart (px)
Y_AXIS_WIDTH = 52  #: px kept for the y axis, so charts in a column share their plot's left edge
SVG_UP_TO_ROWS = 5_000  #: draw as SVG (axis text in the DOM, crisp) up to this many rows; canvas beyond
BUCKET_SECONDS = {"hour": HOUR, "day": DAY, "week": WEEK}

Kind = Literal["usd", "count", "pct", "number", "price"]
C = TypeVar("C", alt.Chart, alt.LayerChart)


def theme() -> alt.theme.ThemeConfig:
    return cast(alt.theme.ThemeConfig, {
        "config": {
            "background": "transparent",
            "padding": {"left": 2, "right": 8, "top": 4, "bottom": 2},
            "view": {"stroke": None},
            "axis": {"labelColor": "#9aa4b2", "titleColor": "#9aa4b2", "gridColor": "#1f2633", "domainColor": "#2a3240",
                     "labelFontSize": 11, "titleFontSize": 11, "titleFontWeight": "normal"},
            "axisY": {"minExtent": Y_AXIS_WIDTH, "maxExtent": Y_AXIS_WIDTH, "titlePadding": 4},
            "legend": {"labelColor": "#c9d1dc", "titleColor": "#9aa4b2", "orient": "top", "labelLimit": 0,
                       "labelFontSize": 11, "symbolSize": 70, "columnPadding": 10, "rowPadding": 4},
            "range": {"category": PALETTE},
            "title": {"color": "#e6e9ef", "anchor": "start", "fontSize": 14, "subtitleColor": "#9aa4b2"},
        }
    })


alt.theme.register("marginx", enable=True)(theme)


# ---------------------------------------------------------------------------------------------
# The shared pieces: time axis, value kinds, legends, tooltips


@dataclass(frozen=True)
class TimeAxis:
    """The x domain shared by a page's charts: [start, end) in UTC seconds, and the bucket size."""

    start: int
    end: int
    granularity: str = "day"


def time_axis(frames: Iterable[pl.DataFrame], granularity: str = "day") -> TimeAxis | None:
    """The domain covering every ``bucket`` of ``frames`` (the last bucket whole); None without buckets."""
    firsts, lasts = [], []
    for df in frames:
        if "bucket" in df.columns and df.height:
            firsts.append(int(df["bucket"].min()))  # type: ignore[arg-type]
            lasts.append(int(df["bucket"].max()))  # type: ignore[arg-type]
    if not firsts:
        return None
    step = BUCKET_SECONDS.get(granularity, DAY)
    return TimeAxis(min(firsts), max(lasts) + step, granularity)


def _kind(spec: str) -> Kind:
    """A value kind, from a kind name or a d3 format string ("$,.0f" → usd, ".1%" → pct)."""
    if spec in ("usd", "count", "pct", "number", "price"):
        return cast(Kind, spec)
    if spec.startswith("$"):
        return "usd"
    return "pct" if spec.endswith("%") else ("count" if spec in (",.0f", ",d", "d") else "number")


def _python_spec(spec: str) -> str:
    """A d3 number format as a Python one (",.3f" stays; "~" and "$" are d3's)."""
    return spec.replace("~", "").replace("$", "") or ",.4g"


def formatter(spec: str) -> Callable[[Any], str]:
    """The core/fmt function a tooltip of this kind (or d3 format) shows its values with."""
    kind = _kind(spec)
    if kind == "usd":
        return fmt.format_usd
    if kind == "count":
        return fmt.format_count
    if kind == "price":
        return fmt.format_price
    if kind == "pct":
        digits = next((int(c) for c in spec if c.isdigit()), 2)
        return lambda x: fmt.format_pct(x, digits)
    python = _python_spec(spec)
    return lambda x: fmt.MISSING if fmt.is_missing(x) else format(x, python)


def _axis(spec: str, title: str | None = None, orient: str | None = None) -> alt.Axis:
    """A y axis whose labels are in the units of ``spec``: $20M, 1.5M, 12%."""
    kind = _kind(spec)
    extra: dict[str, Any] = {"orient": orient} if orient else {}
    if kind == "usd":
        extra["labelExpr"] = fmt.vega_usd()
    elif kind == "count":
        extra["labelExpr"] = fmt.vega_count()
    elif kind == "pct":
        extra["labelExpr"] = fmt.vega_pct()
    elif kind == "price":
        extra["labelExpr"] = f"abs(datum.value) >= 1e6 ? {fmt.vega_usd()} : format(datum.value, ',.4~r')"
    else:
        extra["format"] = spec if spec not in ("number",) else ",.4~r"
        extra["labelExpr"] = f"abs(datum.value) >= 1e6 ? {fmt.vega_count()} : datum.label"
    return alt.Axis(title=title, tickCount=5, **extra)


def legend(labels: Iterable[str], values: list[str] | None = None) -> alt.Legend:
    """A legend above the plot, its entries wrapped into as many columns as the plot's width holds
    (a Vega expression of ``width``), so it is never cut; ``values``: the entries to list."""
    names = [str(x) for x in labels]
    if not names:
        return alt.Legend(title=None)
    longest = min(max(len(n) for n in names), 48)
    entry_px = round(14 + 6.6 * longest + 10)  # symbol, label at 11 px, column padding
    columns = alt.ExprRef(expr=f"max(1, min({len(names)}, floor(width / {entry_px})))")
    extra: dict[str, Any] = {"values": values} if values is not None else {}
    return alt.Legend(title=None, orient="top", columns=columns, labelLimit=0, **extra)


def _datetime(ts: int) -> alt.DateTime:
    """A UTC instant as a Vega-Lite DateTime (a scale domain of epoch numbers leaves line marks at x = 0)."""
    t = to_datetime(ts)
    return alt.DateTime(year=t.year, month=t.month, date=t.day, hours=t.hour, minutes=t.minute, seconds=t.second, utc=True)


def _x(axis: TimeAxis | None, field: str = "time") -> alt.X:
    """The shared date axis; bars span their bucket (``time`` to ``time_end``), points sit at ``time_mid``."""
    scale = alt.Scale(type="utc", domain=[_datetime(axis.start), _datetime(axis.end)]) if axis else alt.Scale(type="utc")
    return alt.X(f"{field}:T", title=None, scale=scale, axis=alt.Axis(labelOverlap=True, tickCount=6, labelFlush=True))


def _with_time(df: pl.DataFrame, axis: TimeAxis | None, column: str = "bucket", granularity: str | None = None) -> pl.DataFrame:
    """``time``/``time_mid``/``time_end`` (UTC datetimes of the bucket's start, middle and end) and ``date`` (its label)."""
    gran = granularity or (axis.granularity if axis else "day")  # a chart's own buckets may be finer than the axis's
    step = BUCKET_SECONDS.get(gran, DAY)
    return df.with_columns(
        datetime_expr(column).alias("time"), (datetime_expr(column) + pl.duration(seconds=step)).alias("time_end"),
        (datetime_expr(column) + pl.duration(seconds=step // 2)).alias("time_mid"),
        fmt.text_expr(column, lambda ts: fmt.format_bucket(ts, gran), "date"))


def _shown(df: pl.DataFrame, value: str, spec: str, alias: str = "shown") -> pl.DataFrame:
    return df.with_columns(fmt.text_expr(value, formatter(spec), alias))


def _finish(chart: C, title: str | None, rows: int, height: int = HEIGHT) -> C:
    """Title, the one height, and SVG rendering for charts small enough (axis text stays readable)."""
    # the height is the plot's (fit-x: the width follows the column, legends and titles add above)
    props: dict[str, Any] = {"height": height, "autosize": alt.AutoSizeParams(type="fit-x", contains="padding")}
    if title:
        props["title"] = alt.Title(title)
    if rows <= SVG_UP_TO_ROWS:
        props["usermeta"] = {"embedOptions": {"renderer": "svg"}}
    return chart.properties(**props)


def _tip(field: str, title: str) -> alt.Tooltip:
    return alt.Tooltip(f"{field}:N", title=title)


def _stacked(df: pl.DataFrame, value: str, color: str | None, names: list[str]) -> pl.DataFrame:
    """``y0``/``y1``: each row's segment of its bucket's bar, stacked in ``names`` order.

    Stacked here, not by Vega-Lite: a bar spanning its bucket (x to x2) is a ranged mark, which
    Vega-Lite would draw as a thin horizontal band instead of stacking it."""
    if color is None:
        return df.with_columns(pl.lit(0.0).alias("y0"), pl.col(value).cast(pl.Float64).alias("y1"))
    rank = {n: i for i, n in enumerate(names)}
    return df.with_columns(pl.col(color).replace_strict(rank, return_dtype=pl.Int64).alias("_rank")).sort("bucket", "_rank").with_columns(
        pl.col(value).cast(pl.Float64).cum_sum().over("bucket").alias("y1")).with_columns(
        (pl.col("y1") - pl.col(value)).alias("y0")).drop("_rank")


def _bar_encoding(axis: TimeAxis | None, spec: str) -> dict[str, Any]:
    return {"x": _x(axis), "x2": "time_end:T", "y": alt.Y("y1:Q", title=None, axis=_axis(spec)), "y2": "y0:Q"}


# ---------------------------------------------------------------------------------------------
# Time series


def stacked_bars(df: pl.DataFrame, value: str, title: str, *, color: str | None = "symbol", color_title: str = "Market",
                 spec: str = "usd", cumulative: bool = False, axis: TimeAxis | None = None,
                 sort: list[str] | None = None) -> alt.Chart | alt.LayerChart:
    """Bars of ``value`` per bucket, stacked by ``color`` (None: one bar of the total), with the running
    total as a dashed line on a right axis when ``cumulative``."""
    data = df.select("bucket", *([color] if color else []), value).drop_nulls(value)
    if color is None:
        data = data.group_by("bucket").agg(pl.col(value).sum()).sort("bucket")
    names = (sort or sorted(data[color].unique().to_list())) if color else []
    data = _shown(_with_time(_stacked(data, value, color, names), axis), value, spec)
    tooltip = [_tip("date", "Date"), *([_tip(color, color_title)] if color else []), _tip("shown", title)]
    enc: dict[str, Any] = {**_bar_encoding(axis, spec), "tooltip": tooltip}
    if color:
        enc["color"] = alt.Color(f"{color}:N", sort=names, legend=legend(names),
                                 scale=alt.Scale(domain=names, range=TAKER_COLORS) if names == TAKER_SIDES else alt.Undefined)
    bars: alt.Chart = alt.Chart(data).mark_bar(color=ACCENT, binSpacing=0, stroke="#0b0e14", strokeWidth=0.3).encode(**enc)
    if not cumulative:
        return _finish(bars, title, data.height)
    totals = data.group_by("bucket").agg(pl.col(value).sum()).sort("bucket").with_columns(
        pl.col(value).cum_sum().alias("cumulative"))
    totals = _shown(_with_time(totals, axis), "cumulative", spec)
    line = alt.Chart(totals).mark_line(color="#e6e9ef", strokeDash=[4, 3], point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("time_mid:T"), y=alt.Y("cumulative:Q", title=None, axis=_axis(spec, orient="right")),
        tooltip=[_tip("date", "Date"), _tip("shown", f"{title}, cumulative")],
    )
    layered: alt.LayerChart = alt.LayerChart(layer=[bars, line]).resolve_scale(y="independent")
    return _finish(layered, title, data.height + totals.height)


def stacked_bars_with_cumulative(df: pl.DataFrame, value: str, title: str, fmt: str = "$,.0f",
                                 axis: TimeAxis | None = None) -> alt.LayerChart:
    """Bars of ``value`` per bucket stacked by symbol, and the running total as a line (right axis)."""
    chart = stacked_bars(df, value, title, spec=fmt, cumulative=True, axis=axis)
    assert isinstance(chart, alt.LayerChart)
    return chart


def bars(df: pl.DataFrame, value: str, title: str, color: str | None = "symbol", fmt: str = "count",
         axis: TimeAxis | None = None, color_title: str = "Market") -> alt.Chart:
    """Bars of ``value`` per bucket (stacked by ``color`` when given)."""
    chart = stacked_bars(df, value, title, color=color, color_title=color_title, spec=fmt, axis=axis)
    assert isinstance(chart, alt.Chart)
    return chart


def area(df: pl.DataFrame, value: str, title: str, color: str | None = None, fmt: str = "usd",
         axis: TimeAxis | None = None, color_title: str = "Market") -> alt.Chart:
    """An area of ``value`` over time (stacked by ``color`` when given)."""
    data = _shown(_with_time(df.drop_nulls(value), axis), value, fmt)
    enc: dict[str, Any] = {"x": _x(axis), "y": alt.Y(f"{value}:Q", title=None, axis=_axis(fmt), stack=bool(color)),
                           "tooltip": [_tip("date", "Date"), *([_tip(color, color_title)] if color else []),
                                       _tip("shown", title)]}
    if color:
        names = sorted(data[color].unique().to_list())
        enc["color"] = alt.Color(f"{color}:N", sort=names, legend=legend(names))
    chart: alt.Chart = alt.Chart(data).mark_area(opacity=0.75, line=True, interpolate="step-after",
                                                 color=alt.Undefined if color else ACCENT).encode(**enc)
    return _finish(chart, title, data.height)


def lines(df: pl.DataFrame, value: str, title: str, color: str, fmt: str = "usd", y_title: str = "",
          axis: TimeAxis | None = None, color_title: str = "Series",
          extra: tuple[tuple[str, str], ...] = (), granularity: str | None = None) -> alt.LayerChart:
    """One line per ``color`` value; the y axis keeps a short title (a long one squeezes the plot).
    The point nearest the pointer is marked and its tooltip shown (a line is too thin to hover).

    ``extra``: (column, title) of further, already formatted, text shown in the tooltip (e.g. funding per hour);
    ``granularity``: the bucket size of ``df`` when it is not the axis's."""
    data = _shown(_with_time(df.drop_nulls(value), axis, granularity=granularity), value, fmt)
    names = data[color].unique(maintain_order=True).to_list()
    tooltip = [_tip("date", "Date"), _tip(color, color_title), _tip("shown", title), *(_tip(c, t) for c, t in extra)]
    base = alt.Chart(data).encode(
        x=_x(axis, "time_mid"), y=alt.Y(f"{value}:Q", title=y_title or None, axis=_axis(fmt, y_title or None)),
        color=alt.Color(f"{color}:N", sort=names, legend=legend(names) if len(names) > 1 else None),
    )
    hover = alt.selection_point(name="nearest", nearest=True, on="pointerover", clear="pointerout", empty=False)
    points = base.mark_point(size=45, filled=True).encode(
        opacity=alt.condition(hover, alt.value(1.0), alt.value(0.0)), tooltip=tooltip).add_params(hover)
    return _finish(alt.LayerChart(layer=[base.mark_line(), points]), title, data.height)


def funding(df: pl.DataFrame, title: str = "Funding rate, annualised", axis: TimeAxis | None = None) -> alt.LayerChart:
    """A market's funding rate per bucket as a yearly % (× 24 × 365), per hour in the tooltip."""
    data = df.filter(pl.col("funding_rate").is_not_null()).with_columns(
        (pl.col("funding_rate") * fmt.HOURS_PER_YEAR).alias("funding_apr"))
    data = data.with_columns(fmt.text_expr("funding_rate", fmt.format_funding_hourly, "per_hour"))
    return lines(data, "funding_apr", title, "symbol", fmt=".2%", axis=axis, color_title="Market",
                 extra=(("per_hour", "Per hour"),))


def liquidations(df: pl.DataFrame, selectable: bool = False, axis: TimeAxis | None = None) -> alt.Chart:
    """Liquidated notional per bucket, stacked by market and side; a click selects a bucket."""
    names = sorted(df["series"].unique().to_list())
    data = _shown(_with_time(_stacked(df, "notional_usd", "series", names), axis), "notional_usd", "usd")
    data = data.with_columns(fmt.text_expr("count", fmt.format_count, "count_shown"))
    chart: alt.Chart = alt.Chart(data).mark_bar(binSpacing=0, stroke="#0b0e14", strokeWidth=0.3).encode(
        **_bar_encoding(axis, "usd"),
        color=alt.Color("series:N", sort=names, legend=legend(names)),
        tooltip=[_tip("date", "Date"), _tip("series", "Market · side"), _tip("shown", "Liquidated notional"),
                 _tip("count_shown", "Liquidations")],
    )
    if selectable:
        pick = alt.selection_point(name="day", fields=["bucket"], on="click")
        chart = chart.add_params(pick).encode(opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)))
    return _finish(chart, "Liquidated notional (USD)", data.height)


def waterfall(df: pl.DataFrame, axis: TimeAxis | None = None) -> alt.Chart:
    """Cumulative loss absorbed by each tier of the waterfall over time (stacked area)."""
    data = _shown(_with_time(df, axis), "cumulative_usd", "usd")
    present = [t for t in TIERS if t in set(data["tier"].to_list())]
    chart: alt.Chart = alt.Chart(data).mark_area(opacity=0.85, interpolate="step-after").encode(
        x=_x(axis), y=alt.Y("cumulative_usd:Q", title=None, axis=_axis("usd"), stack=True),
        color=alt.Color("tier:N", sort=TIERS, scale=alt.Scale(domain=TIERS, range=TIER_COLORS), legend=legend(present, values=present)),
        order=alt.Order("tier_order:Q"),
        tooltip=[_tip("date", "Date"), _tip("tier", "Tier"), _tip("shown", "Cumulative loss absorbed")],
    )
    return _finish(chart, "Loss waterfall, cumulative (USD)", data.height)


def candles(df: pl.DataFrame, title: str, axis: TimeAxis | None = None) -> alt.LayerChart:
    """OHLC candles of one market (columns bucket, open/high/low/close_price)."""
    data = _with_time(df.filter(pl.col("close_price").is_not_null()), axis).with_columns(
        *(fmt.text_expr(f"{c}_price", fmt.format_price, c) for c in ("open", "high", "low", "close")))
    up = alt.condition("datum.close_price >= datum.open_price", alt.value(ACCENT), alt.value("#e35d6a"))
    base = alt.Chart(data).encode(x=_x(axis, "time_mid"), color=up, tooltip=[
        _tip("date", "Date"), *(_tip(c, c.capitalize()) for c in ("open", "high", "low", "close"))])
    wick = base.mark_rule().encode(y=alt.Y("low_price:Q", title=None, scale=alt.Scale(zero=False), axis=_axis("price")),
                                   y2="high_price:Q")
    body = base.mark_bar(size=6).encode(y="open_price:Q", y2="close_price:Q")
    return _finish(alt.LayerChart(layer=[wick, body]), title, data.height)


# ---------------------------------------------------------------------------------------------
# Not over time (the vault page)


def heatmap(df: pl.DataFrame, x: str, y: str, value: str, title: str, fmt: str = ",.2f") -> alt.LayerChart:
    """A grid of ``value`` over two parameters (a sweep), each cell labelled with its value."""
    data = df.with_columns(pl.col(x).cast(pl.String).fill_null("none"), pl.col(y).cast(pl.String).fill_null("none"))
    data = _shown(data, value, fmt)
    order_x = data[x].unique(maintain_order=True).to_list()
    order_y = data[y].unique(maintain_order=True).to_list()
    base = alt.Chart(data).encode(x=alt.X(f"{x}:N", sort=order_x, title=x, axis=alt.Axis(labelAngle=0, labelOverlap=True)),
                                  y=alt.Y(f"{y}:N", sort=order_y[::-1], title=y))
    cells = base.mark_rect().encode(color=alt.Color(f"{value}:Q", title=None, scale=alt.Scale(scheme="viridis"),
                                                    legend=alt.Legend(orient="right")),
                                    tooltip=[_tip(x, x), _tip(y, y), _tip("shown", value)])
    labels = base.mark_text(fontSize=10, color="#0b0e14").encode(text="shown:N")
    return _finish(alt.LayerChart(layer=[cells, labels]), title, data.height, HEIGHT + 80)


def histogram(df: pl.DataFrame, lo: str, hi: str, count: str, title: str, fmt: str = "$,.0f") -> alt.Chart:
    """Bins from ``lo`` to ``hi`` with ``count`` in each, as bars from zero: e.g. the days of a daily PnL."""
    data = _shown(_shown(df, lo, fmt, "from"), hi, fmt, "to")
    chart: alt.Chart = alt.Chart(data).mark_rect(color=PALETTE[0]).encode(
        x=alt.X(f"{lo}:Q", title=None, axis=_axis(fmt)), x2=f"{hi}:Q",
        y=alt.Y(f"{count}:Q", title=None, axis=_axis("count")), y2=alt.datum(0),
        tooltip=[_tip("from", "From"), _tip("to", "To"), _tip(count, count.capitalize())],
    )
    return _finish(chart, title, data.height)


def grouped_bars(df: pl.DataFrame, category: str, value: str, group: str, title: str, fmt: str = ",.0f",
                 order: list[Any] | None = None) -> alt.Chart:
    """One bar per (category, group): e.g. bad debt or cap hits per design; ``order``: the categories' order
    (default: sorted)."""
    data = _shown(df, value, fmt)
    names = data[group].unique(maintain_order=True).to_list()
    chart: alt.Chart = alt.Chart(data).mark_bar().encode(
        x=alt.X(f"{category}:N", title=None, axis=alt.Axis(labelAngle=0, labelLimit=0),
                sort=order if order is not None else "ascending"), xOffset=f"{group}:N",
        y=alt.Y(f"{value}:Q", title=None, axis=_axis(fmt)),
        color=alt.Color(f"{group}:N", sort=names, legend=legend(names)),
        tooltip=[_tip(category, category.capitalize()), _tip(group, group.capitalize()), _tip("shown", title)],
    )
    return _finish(chart, title, data.height)
