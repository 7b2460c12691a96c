"""Streamlit glue shared by the pages: the cached engine and queries, the data source, the sidebar.

Widgets live here and in pages; everything computed comes from ``core`` (which never imports
streamlit). Filters are kept in the URL (``st.query_params``) so a link reproduces the view.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import polars as pl
import streamlit as st

from core import config, dashboard, demo
from core.indexer.rpc import index_lag, redact_url
from core.period import GRANULARITIES, Filters, Granularity, days_window, trailing_window
from core.read import DatabaseError, Engine, open_database, status
from core.read import stats as read
from core.utc import format_minute

P = ParamSpec("P")
R = TypeVar("R")

RANGES = {"24h": 1, "7d": 7, "30d": 30, "90d": 90, "All": None, "Custom": None}
TYPES = ("all", "perp", "spot")
STALE_AFTER_S = 600


@st.cache_resource
def _engine_for(url: str) -> Engine:
    return open_database(url)


def engine() -> Engine:
    """The configured database's engine (one per URL and process)."""
    return _engine_for(config.database_url())


@st.cache_data(ttl=30)
def _cached_call(name: str, url: str, *args: Any) -> Any:
    return _READERS[name](_engine_for(url), *args)


_READERS: dict[str, Callable[..., Any]] = {}


def cached(fn: Callable[Concatenate[Engine, P], R]) -> Callable[P, R]:
    """``fn(engine, *args)`` on the configured database, cached for 30 s per database and arguments.

    ``fn`` is a typed core function (read layer or dashboard); the wrapper keeps its signature, so
    type checkers and dead-code tools see every call."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    _READERS[name] = fn

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        if kwargs:
            raise TypeError(f"{name}: pass arguments positionally (they are the cache key)")
        result: R = _cached_call(name, config.database_url(), *args)
        return result

    return call


chain_ids = cached(read.chain_ids)
latest_timestamp = cached(read.latest_timestamp)
markets = cached(read.markets)
last_block = cached(read.last_block)
index_status = cached(status.index_status)
reconciliation = cached(status.reconciliation)
overview_cards = cached(dashboard.overview_cards)
overview_series = cached(dashboard.overview_series)
coverage = cached(dashboard.coverage)
market_table = cached(dashboard.market_table)
market_series = cached(dashboard.market_series)
liquidation_rows = cached(dashboard.liquidation_rows)
top_liquidated_accounts = cached(read.top_liquidated_accounts)
trader_activity = cached(dashboard.trader_activity)


@dataclass(frozen=True)
class View:
    """What the sidebar selected, shared by every page."""

    chain_id: int
    as_of: int  # newest indexed block time: "now" for the presets
    filters: Filters
    granularity: Granularity
    markets: pl.DataFrame  # the selected markets: market, symbol, market_type


def prepare_data() -> None:
    """Open the database (building the demo when it is empty) or stop with a clear error."""
    try:
        eng = engine()
    except DatabaseError as e:
        st.error(f"{e}. Set DATABASE_URL (or .streamlit/secrets.toml) to a database you can open.")
        st.stop()
    if demo.is_empty(eng) and config.build_demo():
        try:
            days = config.demo_days()
        except ValueError as e:
            st.error(str(e))
            st.stop()
        bar = st.progress(0.0, text=f"Building the demo database ({days} simulated days; about a minute for 90)…")
        demo.ensure_demo(eng, days, lambda frac, msg: bar.progress(min(max(frac, 0.0), 1.0), text=f"Building the demo: {msg}"))
        bar.empty()
        st.cache_data.clear()
    if demo.is_demo(eng):
        st.info(
            "**Demo data**: a seeded simulation of marginX, not a real chain. To analyse a real deployment, "
            "index it (`python -m core.indexer --rpc-url … --manifest …`) into a database and point the app at it "
            "with `DATABASE_URL` (environment or `.streamlit/secrets.toml`; optional `RPC_URL` for the lag). "
            "See the README.",
            icon="ℹ️",
        )


def _param(name: str, default: str) -> str:
    value = st.query_params.get(name)
    return value if isinstance(value, str) and value else default


def sidebar() -> None:
    """The shared controls; the resulting View is stored in session state for the page."""
    chains = chain_ids()
    if not chains:
        st.session_state["view"] = None
        return
    chain_id = chains[0]
    as_of = latest_timestamp(chain_id) or 0
    all_markets = markets(chain_id)
    with st.sidebar:
        st.caption("Time range")
        rng = st.segmented_control("Range", list(RANGES), default=_param("range", "30d"), key="range",
                                   label_visibility="collapsed") or "30d"
        last_day = dt.datetime.fromtimestamp(as_of, dt.timezone.utc).date()
        if rng == "Custom":
            start_default = dt.date.fromisoformat(_param("from", (last_day - dt.timedelta(days=29)).isoformat()))
            end_default = dt.date.fromisoformat(_param("to", last_day.isoformat()))
            picked = st.date_input("Dates (UTC)", (start_default, end_default), key="dates")
            start_day, end_day = (picked if isinstance(picked, tuple) and len(picked) == 2 else (start_default, end_default))
            f_start, f_end = days_window(start_day, end_day)
            st.query_params.update({"from": start_day.isoformat(), "to": end_day.isoformat()})
        else:
            f_start, f_end = trailing_window(as_of, RANGES[rng])
        gran_default = _param("gran", "hour" if rng == "24h" else "day")
        granularity = st.segmented_control("Granularity", GRANULARITIES, default=gran_default, key="gran") or "day"
        kind = st.segmented_control("Market type", TYPES, default=_param("type", "all"), key="type") or "all"
        candidates = all_markets if kind == "all" else all_markets.filter(pl.col("market_type") == kind)
        wanted = [m for m in _param("markets", "").split(",") if m]
        chosen = st.multiselect(
            "Markets", candidates["market"].to_list(), default=[m for m in wanted if m in candidates["market"].to_list()],
            format_func=dict(zip(all_markets["market"], all_markets["symbol"], strict=True)).get,
            placeholder="All markets", key="markets",
        )
        st.query_params.update({"range": rng, "gran": granularity, "type": kind, "markets": ",".join(chosen)})
        selected = candidates.filter(pl.col("market").is_in(chosen)) if chosen else candidates
        selected_markets = tuple(selected["market"].to_list()) if (chosen or kind != "all") else None
        freshness(chain_id, as_of)
    st.session_state["view"] = View(chain_id, as_of, Filters(f_start, f_end, selected_markets), granularity, selected)


def freshness(chain_id: int, as_of: int) -> None:
    """Last indexed block and its time; lag behind the node when RPC_URL is set (never its secrets)."""
    block = last_block(chain_id)
    st.caption(f"Indexed through block {block:,} · {format_minute(as_of)}")
    url = config.rpc_url()
    if not url:
        return
    lag = node_lag(url, block, as_of)
    if lag is None:
        st.caption(f"Node {redact_url(url)} unreachable: lag unknown")
    elif lag[1] > STALE_AFTER_S:
        st.warning(f"Stale: {lag[0]:,} blocks ({lag[1] // 60:,} min) behind {redact_url(url)}")
    else:
        st.caption(f"{lag[0]:,} blocks behind the node")


node_lag = st.cache_data(ttl=30)(index_lag)


def view() -> View | None:
    v = st.session_state.get("view")
    if v is None:
        st.info("Nothing indexed yet: run `python -m core.indexer` (see README).")
    return v


def csv_download(df: pl.DataFrame, name: str) -> None:
    st.download_button("⬇ CSV", df.write_csv(), file_name=f"{name}.csv", mime="text/csv", key=f"csv-{name}")


def chart(chart_obj: Any, data: pl.DataFrame, name: str) -> None:
    """An Altair chart with its data as a CSV download underneath."""
    st.altair_chart(chart_obj, width="stretch")
    csv_download(data, name)
