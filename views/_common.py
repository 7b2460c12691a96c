"""Streamlit glue shared by the pages: the cached engine and queries, the data source, the sidebar.

Widgets live here and in pages; everything computed comes from ``core`` (which never imports
streamlit). Filters are kept in the URL (``st.query_params``) so a link reproduces the view; a link's
values are checked before any widget sees them, so an outdated or edited link gives the nearest
valid view and one warning per parameter it got wrong. Cached figures are keyed by the newest
commit, and a poll of that one row redraws the page when the database moves on ("Live").
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import polars as pl
import streamlit as st

from core import config, dashboard, demo, live
from core.indexer.rpc import index_lag, redact_url
from core.period import GRANULARITIES, Filters, Granularity, days_window, trailing_window
from core.read import DatabaseError, Engine, open_database, status
from core.read import stats as read
from core.utc import format_minute

P = ParamSpec("P")
R = TypeVar("R")

RANGES = {"24h": 1, "7d": 7, "30d": 30, "90d": 90, "All": None, "Custom": None}
DEFAULT_RANGE = "30d"
TYPES = ("all", "perp", "spot")
STALE_AFTER_S = 600
LIVE_EVERY_S = 5  # how often an open page asks whether the database moved on
FIRST_DATA_EVERY_S = 1.0  # the same while a demo build has not landed its first day: the first cards sooner
DRAWN = "_drawn_from"  # session key: the commit (and build state) the page's figures were read at
DRAWN_AT = "_drawn_at"  # session key: when (monotonic seconds) the page was last drawn in full
READY = "_data_ready"  # session key: the database holds rows with their rollups
BUILDING = "_demo_building"  # session key: a demo build of this database is running (it is empty or a demo cut short)


@st.cache_resource
def _engine_for(url: str) -> Engine:
    return open_database(url)  # a database rolled up by an older version gets its rollups brought up to date


def engine() -> Engine:
    """The configured database's engine (one per URL and process)."""
    return _engine_for(config.database_url())


@st.cache_data(ttl=600, max_entries=1024)
def _cached_call(name: str, url: str, version: tuple[Any, ...] | None, *args: Any) -> Any:
    return _READERS[name](_engine_for(url), *args)


_READERS: dict[str, Callable[..., Any]] = {}


def cached(fn: Callable[Concatenate[Engine, P], R]) -> Callable[P, R]:
    """``fn(engine, *args)`` on the configured database, cached per database, newest commit and arguments.

    ``fn`` is a typed core function (read layer or dashboard); the wrapper keeps its signature, so
    type checkers and dead-code tools see every call. A newer commit is a new key: nothing has to
    be cleared, and a page never mixes figures from before and after it."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    _READERS[name] = fn

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        if kwargs:
            raise TypeError(f"{name}: pass arguments positionally (they are the cache key)")
        result: R = _cached_call(name, config.database_url(), st.session_state.get(DRAWN), *args)
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
buffers = cached(dashboard.buffers)
position_risk = cached(dashboard.position_risk)
adl_exposure = cached(dashboard.adl_exposure)
adl_history = cached(dashboard.adl_history)
account = cached(dashboard.account)
funding = cached(dashboard.funding)
revenue_and_pnl = cached(dashboard.revenue_and_pnl)


@dataclass(frozen=True)
class View:
    """What the sidebar selected, shared by every page."""

    chain_id: int
    as_of: int  # newest indexed block time: "now" for the presets
    filters: Filters
    granularity: Granularity
    markets: pl.DataFrame  # the selected markets: market, symbol, market_type
    #: the range as chosen, independent of ``as_of``: the preset's name, or "Custom" with its window
    span: tuple[str, int | None, int | None] = ("All", None, None)


# ---------------------------------------------------------------------------- data source, demo build
def _state(commit: live.Commit | None, build: demo.Build | None) -> tuple[Any, ...] | None:
    """What the figures on screen depend on: the newest commit, and whether a demo build still runs
    (its rollups land just after its rows, so its end is a change too)."""
    running = build is not None and build.running
    return None if commit is None and not running else (
        None if commit is None else (commit.last_block, commit.last_block_hash, commit.committed_at,
                                     commit.rolled_up_through), running)


def _demo_build(eng: Engine) -> demo.Build | None:
    """This process's demo build of the configured database while it builds one (the database is
    empty or holds a demo cut short), or once it has ended; None when there is nothing to build.

    app.py starts the build process before anything else, without looking at the database; on a
    database that needs no build that process only looks and ends, and it is not shown."""
    build = demo.current_build(config.database_url())
    if build is None and config.build_demo():
        build = demo.start_build(config.database_url(), config.demo_days())  # DEMO_DAYS invalid: ValueError
    if build is None or not (build.running or build.error):
        return None
    return build if demo.is_empty(eng) or (demo.is_demo(eng) and not demo.is_complete(eng, build.days)) else None


def _building() -> demo.Build | None:
    """The running demo build this session's last full run showed, if any."""
    build = demo.current_build(config.database_url())
    return build if st.session_state.get(BUILDING) and build is not None and build.running else None


def prepare_data(page: str = "") -> None:
    """Open the database, start the demo build when it is empty (in the background: the pages show
    what is built), note which commit this run draws, and show the build's progress and the demo banner."""
    try:
        eng = engine()
        build = _demo_build(eng)
        commit = live.newest_commit(eng)
    except DatabaseError as e:
        st.error(f"{e}. Set DATABASE_URL (or .streamlit/secrets.toml) to a database you can open.")
        st.stop()
    except ValueError as e:  # DEMO_DAYS
        st.error(str(e))
        st.stop()
    st.session_state[DRAWN] = _state(commit, build)
    st.session_state[BUILDING] = build is not None and build.running
    st.session_state[DRAWN_AT] = time.monotonic()
    # the demo build commits a batch's rows just before its rollups: its first rows are not a view yet
    st.session_state[READY] = commit is not None and (build is None or not build.running or commit.rolled_up_through >= 0)
    if build is not None and build.error:
        st.error(f"The demo build failed: {build.error}", icon=":material/error:")
    elif build is not None and build.running:
        built = demo.built_fraction(eng, build.days) if commit is not None else 0.0
        st.info(f"Building the demo database: {int(built * build.days)} of {build.days} simulated days so far "
                f"({built:.0%}). The pages fill in by themselves as days land.", icon=":material/hourglass_top:")
    if commit is not None and demo.is_demo(eng):
        _demo_banner(page)


def _dismiss_demo_banner() -> None:
    st.session_state["demo_banner_dismissed"] = True


def _demo_banner(page: str) -> None:
    """The demo explained once per session (on the first page opened, until dismissed); a badge after."""
    first = st.session_state.setdefault("demo_banner_page", page)
    if first == page and not st.session_state.get("demo_banner_dismissed"):
        text, close = st.columns([9, 1], vertical_alignment="center")
        text.info(
            "**Demo data**: a seeded simulation of marginX, not a real chain. To analyse a real deployment, "
            "index it (`python -m core.indexer --rpc-url … --manifest …`) into a database and point the app at it "
            "with `DATABASE_URL` (environment or `.streamlit/secrets.toml`; optional `RPC_URL` for the lag). "
            "See the README.",
            icon=":material/info:",
        )
        close.button("Dismiss", icon=":material/close:", key="demo_banner_dismiss", help="A badge in the sidebar stays",
                     on_click=_dismiss_demo_banner, type="tertiary")
    st.sidebar.badge("Demo data", icon=":material/science:", color="orange",
                     help="A seeded simulation of marginX, not a real chain (see the README to index one).")


# ---------------------------------------------------------------------------- link parameters
def _raw(name: str) -> str | None:
    value = st.query_params.get(name)
    return value if isinstance(value, str) and value != "" else None


def _quoted(value: str) -> str:
    """A link's value as a message may quote it: short, and only characters markdown leaves alone."""
    shown = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.:") else "?" for ch in value[:24])
    return f"`{shown}{'…' if len(value) > 24 else ''}`"


def _choice(name: str, value: str | None, options: tuple[str, ...], default: str, warnings: list[str]) -> str:
    """``value`` if it is one of ``options`` (any letter case), else ``default`` with a warning."""
    if value is None:
        return default
    for option in options:
        if option.lower() == value.strip().lower():
            return option
    warnings.append(f"Link parameter `{name}`: {_quoted(value)} is not one of {', '.join(options)}; showing {default}.")
    return default


def link_param(name: str, pattern: re.Pattern[str], what: str) -> str | None:
    """A page's own link parameter: its value when it is ``what`` (matches ``pattern`` whole), else
    None and a one-line warning naming it (the value quoted only as safe text)."""
    value = _raw(name)
    if value is None:
        return None
    if pattern.fullmatch(value.strip()):
        return value.strip()
    st.warning(f"Link parameter `{name}`: {_quoted(value)} is not {what}; left out.", icon=":material/link_off:")
    del st.query_params[name]  # the link says only what the view uses
    return None


def _link_range(value: str | None, has_dates: bool, warnings: list[str]) -> str:
    """The link's time range; a span such as ``14d`` or ``48h`` becomes the nearest preset."""
    if value is None:
        return "Custom" if has_dates else DEFAULT_RANGE
    span = re.fullmatch(r"\s*(\d{1,7})\s*([hdw])\s*", value.lower())
    if span is None or value.strip().lower() in (r.lower() for r in RANGES):
        return _choice("range", value, tuple(RANGES), DEFAULT_RANGE, warnings)
    days = int(span[1]) * {"h": 1 / 24, "d": 1, "w": 7}[span[2]]
    nearest = min((r for r, d in RANGES.items() if d is not None), key=lambda r: abs((RANGES[r] or 0) - days))
    warnings.append(f"Link parameter `range`: {_quoted(value)} is not a preset; showing the nearest, {nearest}.")
    return nearest


def _link_date(name: str, value: str | None, fallback: dt.date, warnings: list[str]) -> dt.date:
    """A YYYY-MM-DD date; an impossible one (2026-02-30) becomes the nearest real day, junk the fallback."""
    if value is None:
        return fallback
    parts = re.fullmatch(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*", value)
    if parts is None:
        warnings.append(f"Link parameter `{name}`: {_quoted(value)} is not a date (YYYY-MM-DD); showing {fallback}.")
        return fallback
    year = min(max(int(parts[1]), 1970), 2999)
    month = min(max(int(parts[2]), 1), 12)
    day = min(max(int(parts[3]), 1), calendar.monthrange(year, month)[1])
    date = dt.date(year, month, day)
    if (year, month, day) != tuple(int(p) for p in parts.groups()):
        warnings.append(f"Link parameter `{name}`: {_quoted(value)} is not a day of the calendar; showing {date}, the nearest.")
    return date


def _link_dates(last_day: dt.date, warnings: list[str]) -> tuple[dt.date, dt.date]:
    start = _link_date("from", _raw("from"), last_day - dt.timedelta(days=29), warnings)
    end = _link_date("to", _raw("to"), last_day, warnings)
    if start > end:
        warnings.append(f"Link parameters `from` and `to`: {start} is after {end}; showing {end} to {start}.")
        start, end = end, start
    return start, end


def _link_markets(value: str | None, all_markets: pl.DataFrame, candidates: pl.DataFrame, kind: str,
                  warnings: list[str]) -> list[str]:
    """The link's markets (addresses or symbols, any case) that exist and are of the selected type."""
    if value is None:
        return []
    wanted = [w.strip().lower() for w in value.split(",") if w.strip()]
    known = {m.lower(): m for m in all_markets["market"]} | {s.lower(): m for s, m in zip(all_markets["symbol"],
                                                                                          all_markets["market"], strict=True)}
    shown = set(candidates["market"].to_list())
    found = [known[w] for w in wanted if w in known]
    chosen = list(dict.fromkeys(m for m in found if m in shown))
    missing, other_type = len(wanted) - len(found), len([m for m in found if m not in shown])
    if missing or other_type:
        why = ([f"{missing} of its {len(wanted)} markets are not indexed here"] if missing else []) + \
              ([f"{other_type} are not {kind} markets"] if other_type else [])
        warnings.append(f"Link parameter `markets`: {' and '.join(why)}; showing "
                        f"{'the others' if chosen else 'all markets'}.")
    return chosen


# ---------------------------------------------------------------------------- the sidebar
def sidebar() -> None:
    """The shared controls; the resulting View is stored in session state for the page."""
    chains = chain_ids() if st.session_state.get(READY, True) else []
    if not chains:
        st.session_state["view"] = None
        with st.sidebar:
            _live()
        return
    chain_id = chains[0]
    as_of = latest_timestamp(chain_id) or 0
    all_markets = markets(chain_id)
    warnings: list[str] = []
    with st.sidebar:
        st.caption("Time range")
        rng = _link_range(_raw("range"), _raw("from") is not None or _raw("to") is not None, warnings)
        rng = st.segmented_control("Range", list(RANGES), default=rng, key="range", label_visibility="collapsed") or DEFAULT_RANGE
        last_day = dt.datetime.fromtimestamp(as_of, dt.timezone.utc).date()
        if rng == "Custom":
            start_default, end_default = _link_dates(last_day, warnings)
            picked = st.date_input("Dates (UTC)", (start_default, end_default), key="dates")
            start_day, end_day = (picked if isinstance(picked, tuple) and len(picked) == 2 else (start_default, end_default))
            f_start, f_end = days_window(start_day, end_day)
            st.query_params.update({"from": start_day.isoformat(), "to": end_day.isoformat()})
        else:
            f_start, f_end = trailing_window(as_of, RANGES[rng])
            for name in ("from", "to"):
                st.query_params.pop(name, None)  # the link says only what the view uses
        gran_default = _choice("gran", _raw("gran"), GRANULARITIES, "hour" if rng == "24h" else "day", warnings)
        granularity = st.segmented_control("Granularity", GRANULARITIES, default=gran_default, key="gran") or "day"
        kind = st.segmented_control("Market type", TYPES, default=_choice("type", _raw("type"), TYPES, "all", warnings),
                                    key="type") or "all"
        candidates = all_markets if kind == "all" else all_markets.filter(pl.col("market_type") == kind)
        chosen = st.multiselect(
            "Markets", candidates["market"].to_list(),
            default=_link_markets(_raw("markets"), all_markets, candidates, kind, warnings),
            format_func=dict(zip(all_markets["market"], all_markets["symbol"], strict=True)).get,
            placeholder="All markets", key="markets",
        )
        st.query_params.update({"range": rng, "gran": granularity, "type": kind, "markets": ",".join(chosen)})
        selected = candidates.filter(pl.col("market").is_in(chosen)) if chosen else candidates
        selected_markets = tuple(selected["market"].to_list()) if (chosen or kind != "all") else None
        _live(chain_id, as_of)
    for warning in warnings:
        st.warning(warning, icon=":material/link_off:")
    span = (rng, f_start, f_end) if rng == "Custom" else (rng, None, None)
    st.session_state["view"] = View(chain_id, as_of, Filters(f_start, f_end, selected_markets), granularity, selected,
                                    span)


# ---------------------------------------------------------------------------- live freshness
def _live(chain_id: int | None = None, as_of: int | None = None) -> None:
    """The "Live" toggle and the freshness line; while live, a poll every LIVE_EVERY_S seconds of the
    newest commit redraws the page (filters and scroll stay) when the database moved on."""
    on = st.toggle("Live", value=True, key="live",
                   help=f"Redraw this page by itself when the database gains a newer block (checked every {LIVE_EVERY_S} s).")
    every = FIRST_DATA_EVERY_S if _building() is not None and not st.session_state.get(READY) else LIVE_EVERY_S
    st.fragment(run_every=every if on else None)(_freshness)(chain_id, as_of, every)


def _freshness(chain_id: int | None, as_of: int | None, every: float) -> None:
    commit = live.newest_commit(engine())
    # Only on the poll's own runs (the page's full run has just drawn): redraw the whole page with
    # the newer figures; widgets keep their state and the browser its scroll.
    polled = time.monotonic() - st.session_state.get(DRAWN_AT, 0.0) >= every * 0.8
    if polled and st.session_state.get("live", True) and \
            _state(commit, demo.current_build(config.database_url()) if st.session_state.get(BUILDING) else None) \
            != st.session_state.get(DRAWN):
        st.rerun()
    if commit is None or chain_id is None or as_of is None:
        st.caption("Nothing indexed yet")
        return
    st.caption(f"Indexed through block {commit.last_block:,} · {format_minute(as_of)} · "
               f"updated {live.age_text(time.time() - commit.committed_at)}")
    url = config.rpc_url()
    if not url:
        return
    lag = node_lag(url, commit.last_block, as_of)
    if lag is None:
        st.caption(f"Node {redact_url(url)} unreachable: lag unknown")
    elif lag[1] > STALE_AFTER_S:
        st.warning(f"Stale: {lag[0]:,} blocks ({lag[1] // 60:,} min) behind {redact_url(url)}")
    else:
        st.caption(f"{lag[0]:,} blocks behind the node")


node_lag = st.cache_data(ttl=30)(index_lag)


def page(title: str) -> View:
    """Open a page: its title and its view (the sidebar's filters); when nothing is indexed yet, the page
    stops under a line saying why (see :func:`view`)."""
    st.title(title)
    v = view()
    if v is None:
        st.stop()
    return v


def view() -> View | None:
    v = st.session_state.get("view")
    if v is None:
        if _building() is not None:
            st.info("The demo's first simulated day is being built: this page fills in by itself in a few seconds.",
                    icon=":material/hourglass_top:")
        else:
            st.info("Nothing indexed yet: run `python -m core.indexer` (see README).")
    return v


def csv_download(df: pl.DataFrame, name: str) -> None:
    st.download_button("CSV", df.write_csv(), file_name=f"{name}.csv", mime="text/csv", key=f"csv-{name}",
                       icon=":material/download:")


def chart(chart_obj: Any, data: pl.DataFrame, name: str) -> None:
    """An Altair chart with its data as a CSV download underneath."""
    st.altair_chart(chart_obj, width="stretch")
    csv_download(data, name)
