"""The ``/stats`` HTTP API (FastAPI): the dashboard's figures as JSON for marginX's own front end.

Each endpoint checks its parameters (core/api/params.py), resolves them against the database into
one :class:`~core.api.params.View` and hands it to core/api/figures.py, which calls the same
``core.dashboard`` compositions as the pages. The app only reads: it opens the database without
creating anything (a read-only database user is enough) and retries opening it on the next request
when it could not. Responses go through :class:`~core.api.cache.ResponseCache`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine

from core import config, db
from core.api import figures, params
from core.api.cache import ResponseCache, Unavailable, count_statement, error_body
from core.api.params import ParamError, View
from core.indexer.rpc import index_lag, redact_url
from core.period import Filters
from core.read import stats as read
from core.read.accounts import AccountError, normalize_address

JSON = "application/json"
DEFAULT_TTL = 30


def _one_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


class Source:
    """The database the API reads, opened on first use (and again after a failed open)."""

    def __init__(self, url: str, *, count_sql: bool = False) -> None:
        self.url, self.count_sql = url, count_sql
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self.errors: tuple[type[BaseException], ...] = (db.DatabaseError, *db.write_errors())

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._open()
            return self._engine

    def _open(self) -> Engine:
        shown = db.redact_db_url(self.url)
        try:
            parsed = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError:
            raise Unavailable(f"database URL is not a valid SQLAlchemy URL: {shown}") from None
        path = parsed.database if parsed.get_backend_name() == "sqlite" else None
        if path and path != ":memory:" and not path.startswith("file:") and not Path(path).expanduser().is_file():
            # SQLite would create an empty file: this service never writes
            raise Unavailable(f"cannot open database {shown}: no such file")
        try:
            engine = db.make_engine(self.url, create=False)
        except db.DatabaseError as e:
            raise Unavailable(str(e)) from None
        if self.count_sql:
            sa.event.listen(engine, "before_cursor_execute", count_statement)
        return engine

    def read(self, fn: Callable[[Engine], Any]) -> Any:
        """``fn(engine)``, with any database failure as :class:`Unavailable` (one line)."""
        try:
            return fn(self.engine())
        except Unavailable:
            raise
        except self.errors as e:
            reason = _one_line(e)
            hint = (": is it a marginX Analytics database of this version? (the app or the indexer upgrades an older "
                    "one; this service only reads)") if any(s in reason for s in ("no such", "does not exist")) else ""
            raise Unavailable(f"reading database {db.redact_db_url(self.url)} failed: {reason}{hint}") from None

    def head(self) -> Hashable:
        """The newest indexed block of every chain (the response cache's key)."""
        head: tuple[tuple[int, int], ...] = self.read(lambda e: tuple((c, last) for c, (last, _) in sorted(read.heads(e).items())))
        return head


def _error(status: int, message: str, parameter: str | None = None) -> Response:
    return Response(error_body(status, message, parameter), status_code=status, media_type=JSON)


def _json(body: dict[str, Any]) -> Response:
    """``body`` as JSON; orjson writes NaN and ±inf (an undefined ratio) as null, which JSON has no
    number for (and costs 0.01-0.02 ms on an overview or a 90-day series, json.dumps 0.24)."""
    return Response(orjson.dumps(body), media_type=JSON,
                    headers={"x-content-type-options": "nosniff"})


def resolve(engine: Engine, given: dict[str, str], allowed: Sequence[str], intervals: Sequence[str]) -> View:
    """The request's chain, newest block, period, markets and bucket size (the markets table is read
    only when ``markets`` or ``type`` selects some)."""
    heads = read.heads(engine)
    if not heads:
        raise Unavailable("the database holds no indexed deployment: run python -m core.indexer first")
    chain_id = params.chain(given.get("chain_id"), sorted(heads))
    as_of_block, as_of_time = heads[chain_id]
    if as_of_time is None:
        raise Unavailable(f"chain {chain_id} has no indexed blocks yet")
    granularity = params.interval(given.get("interval"), intervals) if "interval" in allowed else "day"
    start, end = params.period(given, as_of_time) if "range" in allowed else (None, None)
    selects = "markets" in allowed and ("markets" in given or "type" in given)
    markets = params.selected_markets(given, read.markets(engine, chain_id)) if selects else None
    return View(chain_id, as_of_block, as_of_time, Filters(start, end, markets), granularity)


# --------------------------------------------------------------------------- documented parameters
# The endpoints read their query parameters themselves (core/api/params.py checks each one), so
# FastAPI is only told about them for the OpenAPI docs: resolving them as dependencies on every
# request cost about a fifth of an uncached overview's CPU.

_PARAMETER_DOCS = {
    "interval": "bucket size: 1h, 1d (default) or 1w",
    "range": "trailing period up to the newest indexed block: 24h, 7d, 30d, 90d or all (default)",
    "start": "first UTC day, YYYY-MM-DD (inclusive; instead of range)",
    "end": "last UTC day, YYYY-MM-DD (inclusive; instead of range)",
    "markets": "comma-separated market addresses (default: all)",
    "type": "only markets of this type: spot or perp",
    "chain_id": "the chain, when the database holds several",
}


def _documented(names: Sequence[str]) -> dict[str, Any]:
    """``openapi_extra`` naming an endpoint's optional string query parameters."""
    return {"parameters": [{"name": n, "in": "query", "required": False, "description": _PARAMETER_DOCS[n],
                            "schema": {"type": "string"}} for n in names]}


PERIOD_DOCS = _documented(params.PERIOD_PARAMS)
SERIES_DOCS = _documented(params.SERIES_PARAMS)
MARKET_DOCS = _documented(params.MARKET_PARAMS)


class Point(BaseModel):
    """One bucket: time (its start, unix seconds, ascending and unique), date (its UTC day), the
    endpoint's named columns, and value (= the endpoint's main column)."""

    model_config = ConfigDict(extra="allow")
    time: int
    date: str
    value: float | None


class Series(BaseModel):
    """A series for lightweight-charts' setData: one point per bucket with activity."""

    model_config = ConfigDict(extra="allow")
    interval: str
    as_of_block: int
    as_of_time: int
    points: list[Point]


class Overview(BaseModel):
    """Exactly the keys of ``python -m core.report`` (EVENTS.md definitions), plus as_of_block and as_of_time."""

    model_config = ConfigDict(extra="allow")
    total_volume_usd: float
    total_trades: int
    liquidations: int
    liquidated_notional_usd: float
    socialized_debt_usd: float
    insurance_fund_usd: float
    backstop_vault_usd: float
    open_interest_usd: float
    active_traders: int
    daily: list[dict[str, Any]]
    as_of_block: int
    as_of_time: int


class Table(BaseModel):
    """Rows of a table (markets or liquidations), with the newest indexed block."""

    model_config = ConfigDict(extra="allow")
    as_of_block: int
    as_of_time: int


def _serve(request: Request, allowed: Sequence[str], build: Callable[[Engine, View], dict[str, Any]],
           intervals: Sequence[str] = tuple(params.INTERVALS)) -> Response:
    """Check the request's parameters, resolve its View and answer ``build``'s figures (or a 422/503)."""
    source: Source = request.app.state.source
    given = request.query_params.multi_items()
    names = [k for k, _ in given]
    try:
        params.check_names(names, allowed)
        params.check_lengths(dict(given))
        twice = next((k for k in names if names.count(k) > 1), None)
        if twice is not None:
            raise ParamError(twice, "given more than once")
        values = dict(given)
        if "interval" in allowed:
            params.interval(values.get("interval"), intervals)
        body = source.read(lambda engine: build(engine, resolve(engine, values, allowed, intervals)))
    except ParamError as e:
        return _error(422, str(e), e.parameter)
    except Unavailable as e:
        return _error(503, str(e))
    return _json(body)


router = APIRouter()
# The overview and the series of core.metrics.totals are async: they compute in the worker's event
# loop (a few milliseconds of the daily rollups; no thread hand-off per request). The others, which
# may read for longer, run in the threadpool as FastAPI's plain functions.


@router.get("/stats/overview", response_model=Overview, summary="Headline totals of the period", openapi_extra=PERIOD_DOCS)
async def overview(request: Request) -> Response:
    """Volume, trades, liquidations, liquidated notional, socialized debt, insurance fund, backstop
    vault, open interest and active traders of the period, with the report's ``daily`` rows."""
    return _serve(request, params.PERIOD_PARAMS, figures.overview)


@router.get("/stats/volume", response_model=Series, summary="Volume per bucket", openapi_extra=SERIES_DOCS)
async def volume(request: Request) -> Response:
    """volume_usd, trades and cumulative_usd (running Σ over the period) per bucket; value = volume_usd."""
    return _serve(request, params.SERIES_PARAMS, figures.volume)


@router.get("/stats/trades", response_model=Series, summary="Trades per bucket", openapi_extra=SERIES_DOCS)
async def trades(request: Request) -> Response:
    """trades per bucket; value = trades."""
    return _serve(request, params.SERIES_PARAMS, figures.trades)


@router.get("/stats/liquidations", response_model=Series, summary="Liquidations per bucket", openapi_extra=SERIES_DOCS)
async def liquidations(request: Request) -> Response:
    """liquidations and liquidated_notional_usd per bucket; value = liquidations."""
    return _serve(request, params.SERIES_PARAMS, figures.liquidations)


@router.get("/stats/liquidations/{day}", response_model=Table, summary="One day's liquidations", openapi_extra=MARKET_DOCS)
def liquidation_day(request: Request, day: str) -> Response:
    """The liquidations of one UTC day (YYYY-MM-DD), newest first, each with its loss waterfall."""
    try:
        date = params.day(day)
    except ParamError as e:
        return _error(422, str(e), e.parameter)
    return _serve(request, params.MARKET_PARAMS, lambda engine, view: figures.liquidation_day(engine, view, date))


@router.get("/stats/bad-debt", response_model=Series, summary="Socialized debt per bucket", openapi_extra=SERIES_DOCS)
async def bad_debt(request: Request) -> Response:
    """socialized_debt_usd per bucket and cumulative_usd (Σ since the first block: outstanding at
    the bucket's end); value = socialized_debt_usd."""
    return _serve(request, params.SERIES_PARAMS, figures.bad_debt)


@router.get("/stats/open-interest", response_model=Series, summary="Open interest per bucket", openapi_extra=SERIES_DOCS)
def open_interest(request: Request) -> Response:
    """open_interest_usd at each bucket's end (Σ perp markets' long OI × mark); value = open_interest_usd."""
    return _serve(request, params.SERIES_PARAMS, figures.open_interest)


@router.get("/stats/insurance", response_model=Series, summary="Insurance fund and backstop vault balances", openapi_extra=SERIES_DOCS)
def insurance(request: Request) -> Response:
    """insurance_fund_usd and backstop_vault_usd at each bucket's end (protocol-wide: markets and type
    do not apply); value = insurance_fund_usd."""
    return _serve(request, params.SERIES_PARAMS, figures.insurance)


@router.get("/stats/markets", response_model=Table, summary="The per-market table of the period", openapi_extra=PERIOD_DOCS)
def markets(request: Request) -> Response:
    """Per market: volume, share, trades, open interest, funding, liquidations, fees, last price."""
    return _serve(request, params.PERIOD_PARAMS, figures.markets)


@router.get("/stats/traders", response_model=Series, summary="Active, new and returning traders per day", openapi_extra=SERIES_DOCS)
def traders(request: Request) -> Response:
    """active, new and returning traders per UTC day (interval 1d only: distinct counts do not add
    up); active_traders of the whole period; the top 25 traders by volume."""
    return _serve(request, params.SERIES_PARAMS, figures.traders, intervals=("1d",))


@router.get("/stats/fees", response_model=Series, summary="Fees by kind per bucket, the protocol's net", openapi_extra=SERIES_DOCS)
def fees(request: Request) -> Response:
    """taker_fees_usd, maker_fees_usd (rebates negative), liquidation_fees_usd, net_fees_usd and its running
    total per bucket; by_market: the period per market; value = net_fees_usd."""
    return _serve(request, params.SERIES_PARAMS, figures.fees)


@router.get("/stats/fill-types", response_model=Series, summary="Volume by fill type per bucket", openapi_extra=SERIES_DOCS)
def fill_types(request: Request) -> Response:
    """normal, liquidation, adl, backstop volume (USD) and forced (the last three) per bucket; value = forced."""
    return _serve(request, params.SERIES_PARAMS, figures.fill_types)


@router.get("/stats/traders-pnl", response_model=Series, summary="Traders' PnL per day", openapi_extra=SERIES_DOCS)
def traders_pnl(request: Request) -> Response:
    """Traders' realized PnL, funding paid, fees, net PnL (and running total) and profitable/losing
    traders per UTC day (interval 1d only); value = net_pnl_usd."""
    return _serve(request, params.SERIES_PARAMS, figures.traders_pnl, intervals=("1d",))


@router.get("/stats/funding", response_model=Table, summary="Funding per perp market", openapi_extra=PERIOD_DOCS)
def funding(request: Request) -> Response:
    """Per perp market: latest and mean funding rate annualised, the latest per hour, cumulative funding."""
    return _serve(request, params.PERIOD_PARAMS, figures.funding)


@router.get("/stats/vault", response_model=Table, summary="Backstop vault and insurance fund performance", openapi_extra=PERIOD_DOCS)
def vault(request: Request) -> Response:
    """Share price, 7/30/90-day returns and APR, the vault's daily flows and PnL by source, the fund's flows."""
    return _serve(request, params.PERIOD_PARAMS, figures.buffers)


@router.get("/stats/positions", response_model=Table, summary="Open-book risk and the liquidation map", openapi_extra=MARKET_DOCS)
def positions(request: Request) -> Response:
    """Largest and most-levered open positions, leverage buckets, OI by side, the liquidation map."""
    return _serve(request, params.MARKET_PARAMS, figures.positions)


@router.get("/stats/adl", response_model=Table, summary="ADL'd accounts of the period", openapi_extra=PERIOD_DOCS)
def adl(request: Request) -> Response:
    """Per account force-reduced by ADL in the period: reductions, notional, realized PnL, last time."""
    return _serve(request, params.PERIOD_PARAMS, figures.adl)


@router.get("/stats/accounts/{address}", response_model=Table, summary="One account")
def account(request: Request, address: str) -> Response:
    """Totals, daily PnL, positions, newest trades, liquidations and ADL reductions of one address."""
    try:
        normalize_address(address)
    except AccountError as e:
        return _error(422, str(e), "address")
    return _serve(request, (), lambda engine, view: figures.account(engine, view, address))


@router.get("/health", summary="Last indexed block, its age, and the lag behind RPC_URL's node")
def health(request: Request) -> Response:
    """Per chain: the last indexed block, its time and age in seconds; lag_blocks/lag_seconds behind
    RPC_URL's node when it is set (null when the node does not answer). 503 when the database cannot be read."""
    try:
        chains: list[dict[str, Any]] = request.app.state.source.read(_chains_health)
    except Unavailable as e:
        return _error(503, str(e))
    rpc = config.rpc_url()
    for c in chains:
        if rpc and c["last_block_time"] is not None:
            lag = index_lag(rpc, c["last_block"], c["last_block_time"], timeout=2.0)
            c.update(node=redact_url(rpc), lag_blocks=None if lag is None else lag[0],
                     lag_seconds=None if lag is None else lag[1])
    return _json({"status": "ok", "chains": chains})


async def _invalid(_request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    first = errors[0] if errors else {}
    name = str(first.get("loc", ["", "request"])[-1])
    return _error(422, f"{name}: {first.get('msg', 'invalid')}", name)


def _startup(source: Source) -> None:
    """Open the database (a failure is only reported by the requests, which retry it) and move
    everything allocated so far (modules, the app, the engine) out of the garbage collector's view
    (``gc.freeze``). Without it a full collection walks those ~130k long-lived objects every few
    hundred requests and stalls the worker's event loop ~0.1 s, which every request queued behind
    it waits through: the p99 of an uncached /stats load was 2-3x its median."""
    with contextlib.suppress(Unavailable):
        source.engine()
    gc.collect()
    gc.freeze()


def create_app(database_url: str, *, ttl: int = 30, cors_origins: Sequence[str] = (), count_sql: bool = False) -> FastAPI:
    """The API on ``database_url``; responses cached ``ttl`` seconds (0: none), CORS for ``cors_origins``;
    ``count_sql``: an X-SQL-Statements header."""
    source = Source(database_url, count_sql=count_sql)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _startup(source)
        yield

    app = FastAPI(title="marginX Analytics /stats API", version="1", lifespan=lifespan,
                  description="The dashboard's figures (EVENTS.md definitions) as JSON, read-only, cached "
                              f"{ttl} s. Errors are JSON: {{status, error, parameter}}.")
    app.state.source = source
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(ResponseCache, head=source.head, ttl=ttl, count_sql=count_sql)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET"],
                           allow_headers=["If-None-Match"], expose_headers=["ETag"], max_age=600)
    return app


def cache_ttl(value: str | None) -> int:
    """API_CACHE_TTL as whole seconds (default 30)."""
    if value is None or not value.strip():
        return DEFAULT_TTL
    try:
        ttl = int(value)
    except ValueError:
        raise ValueError(f"API_CACHE_TTL must be whole seconds (0-3600), got {value!r}") from None
    if not 0 <= ttl <= 3600:
        raise ValueError(f"API_CACHE_TTL must be 0-3600 seconds, got {ttl}")
    return ttl


def cors_origins(value: str | None) -> list[str]:
    """API_CORS_ORIGINS as a list (comma-separated, blanks dropped)."""
    return [o.strip() for o in (value or "").split(",") if o.strip()]


def from_environment() -> FastAPI:
    """The app of the settings in the environment (``DATABASE_URL``, ``API_CACHE_TTL``,
    ``API_CORS_ORIGINS``, ``API_COUNT_SQL``): the factory each uvicorn worker process calls."""
    return create_app(config.database_url(), ttl=cache_ttl(os.environ.get("API_CACHE_TTL")),
                      cors_origins=cors_origins(os.environ.get("API_CORS_ORIGINS")),
                      count_sql=os.environ.get("API_COUNT_SQL", "") == "1")


def _chains_health(engine: Engine) -> list[dict[str, Any]]:
    return [{"chain_id": chain_id, "last_block": last, "last_block_time": ts,
             "age_seconds": None if ts is None else max(0, int(time.time()) - ts)}
            for chain_id, (last, ts) in sorted(read.heads(engine).items())]
