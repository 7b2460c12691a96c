"""Columnar decoding of the events whose data are static 32-byte words (every event of EVENTS.md but
`MarketCreated`): a word is a fixed slice of the hex ``data`` string, so a whole batch of one event's
logs decodes at once instead of one ABI call per log — well-formed logs as one byte matrix (hex
decoded by binascii, words checked and sliced with numpy), anything else with polars expressions
that also say what is wrong with it.

Which column comes from which parameter is a *positional* mapping (``COLUMNS``): parameter names in
the ABI never matter, only their order and types, so a deployment whose ABI names fields
differently indexes the same. Units follow EVENTS.md and are applied here, once.
"""

from __future__ import annotations

import binascii
from enum import Enum

import numpy as np
import polars as pl
import pyarrow as pa
from sqlmodel import SQLModel

from core import schema
from core.abi import EventSpec
from core.arrow_pool import arrow_buffer, hex_strings, owned_series, series

USD_DECIMALS = 6
FIXED_DECIMALS = 18
INT64_MAX = 2**63 - 1


class Unit(Enum):
    """How a 32-byte word becomes a column value."""

    ADDRESS = "address"  # lower-case 0x-hex
    HASH = "hash"  # bytes32 as 0x-hex
    BOOL = "bool"
    INT = "int"  # small integer (uint8, timestamps) as Int64
    USD = "usd"  # 6-decimal fixed point → float dollars
    USD_RAW = "usd_raw"  # 6-decimal fixed point → Int64 micro-USD (exact)
    E18 = "e18"  # 1e18 fixed point → float
    E18_RAW = "e18_raw"  # 1e18 fixed point → exact decimal string


# table column ← (parameter position in the event's ABI, unit). Columns not listed are null.
COLUMNS: dict[str, dict[str, tuple[int, Unit]]] = {
    "Trade": {
        "market": (0, Unit.ADDRESS), "maker": (1, Unit.ADDRESS), "taker": (2, Unit.ADDRESS),
        "taker_is_buy": (3, Unit.BOOL), "price": (4, Unit.E18), "size": (5, Unit.E18),
        "maker_fee_usd": (6, Unit.USD), "taker_fee_usd": (7, Unit.USD), "fill_type": (8, Unit.INT),
        "price_raw": (4, Unit.E18_RAW), "size_raw": (5, Unit.E18_RAW),
    },
    "PositionUpdated": {
        "position_key": (0, Unit.HASH), "account": (1, Unit.ADDRESS), "market": (2, Unit.ADDRESS),
        "is_long": (3, Unit.BOOL), "size_delta": (4, Unit.E18), "size": (5, Unit.E18),
        "price": (6, Unit.E18), "entry_price": (7, Unit.E18), "collateral_usd": (8, Unit.USD),
        "realized_pnl_usd": (9, Unit.USD), "funding_paid_usd": (10, Unit.USD), "fee_usd": (11, Unit.USD),
        "size_raw": (5, Unit.E18_RAW),
    },
    "PositionLiquidated": {
        "position_key": (0, Unit.HASH), "account": (1, Unit.ADDRESS), "market": (2, Unit.ADDRESS),
        "is_long": (3, Unit.BOOL), "size": (4, Unit.E18), "entry_price": (5, Unit.E18),
        "liquidation_price": (6, Unit.E18), "mark_price": (7, Unit.E18), "collateral_usd": (8, Unit.USD),
        "liquidation_fee_usd": (9, Unit.USD), "remaining_equity_usd": (10, Unit.USD),
        "liquidator": (11, Unit.ADDRESS),
    },
    "ADLExecuted": {
        "market": (0, Unit.ADDRESS), "account": (1, Unit.ADDRESS), "liquidated_position_key": (2, Unit.HASH),
        "is_long": (3, Unit.BOOL), "size_reduced": (4, Unit.E18), "price": (5, Unit.E18),
        "realized_pnl_usd": (6, Unit.USD),
    },
    "OpenInterestUpdated": {
        "market": (0, Unit.ADDRESS), "long_open_interest": (1, Unit.E18), "short_open_interest": (2, Unit.E18),
        "long_open_interest_raw": (1, Unit.E18_RAW), "short_open_interest_raw": (2, Unit.E18_RAW),
    },
    "FundingUpdated": {
        "market": (0, Unit.ADDRESS), "funding_rate": (1, Unit.E18), "cumulative_funding_index": (2, Unit.E18),
        "ts": (3, Unit.INT),
    },
    "PriceUpdated": {
        "market": (0, Unit.ADDRESS), "index_price": (1, Unit.E18), "mark_price": (2, Unit.E18), "ts": (3, Unit.INT),
    },
    "InsuranceFundDeposit": {
        "account": (0, Unit.ADDRESS), "amount_usd": (1, Unit.USD), "balance_usd": (2, Unit.USD),
        "amount_raw": (1, Unit.USD_RAW), "balance_raw": (2, Unit.USD_RAW),
    },
    "InsuranceFundWithdraw": {
        "account": (0, Unit.ADDRESS), "amount_usd": (1, Unit.USD), "balance_usd": (2, Unit.USD),
        "amount_raw": (1, Unit.USD_RAW), "balance_raw": (2, Unit.USD_RAW),
    },
    "LiquidationFeeCollected": {
        "market": (0, Unit.ADDRESS), "position_key": (1, Unit.HASH), "amount_usd": (2, Unit.USD),
        "balance_usd": (3, Unit.USD), "amount_raw": (2, Unit.USD_RAW), "balance_raw": (3, Unit.USD_RAW),
    },
    "ShortfallCovered": {
        "market": (0, Unit.ADDRESS), "position_key": (1, Unit.HASH), "amount_usd": (2, Unit.USD),
        "balance_usd": (3, Unit.USD), "amount_raw": (2, Unit.USD_RAW), "balance_raw": (3, Unit.USD_RAW),
    },
    "Deposit": {
        "sender": (0, Unit.ADDRESS), "owner": (1, Unit.ADDRESS), "value_change_usd": (2, Unit.USD),
        "shares": (3, Unit.USD), "value_change_raw": (2, Unit.USD_RAW),
    },
    "Withdraw": {
        "sender": (0, Unit.ADDRESS), "receiver": (1, Unit.ADDRESS), "owner": (2, Unit.ADDRESS),
        "value_change_usd": (3, Unit.USD), "shares": (4, Unit.USD), "value_change_raw": (3, Unit.USD_RAW),
    },
    "VaultPnLUpdated": {
        "position_key": (0, Unit.HASH), "value_change_usd": (1, Unit.USD),
        "total_vault_value_usd": (2, Unit.USD), "value_change_raw": (1, Unit.USD_RAW),
        "total_vault_value_raw": (2, Unit.USD_RAW),
    },
    "DebtSocialized": {"amount_usd": (0, Unit.USD), "amount_raw": (0, Unit.USD_RAW), "ts": (1, Unit.INT)},
}


# Columns negated after decoding (a Withdraw lowers the vault's value).
NEGATED: dict[str, tuple[str, ...]] = {"Withdraw": ("value_change_usd", "value_change_raw")}


UNDECODABLE_SCHEMA = schema.frame_schema(schema.UndecodableLog)


def _word(spec: EventSpec, position: int) -> pl.Expr:
    """The 32-byte word of parameter ``position`` (from a topic or from data), as Binary."""
    param = spec.params[position]
    if param.indexed:
        return pl.col(f"_t{1 + spec.indexed.index(param)}")
    return pl.col("_d").bin.slice(32 * spec.data.index(param), 32)


_Z12, _Z16, _Z31, _F16 = b"\0" * 12, b"\0" * 16, b"\0" * 31, b"\xff" * 16


def _low128(w: pl.Expr) -> pl.Expr:
    return w.bin.slice(16, 16).bin.reinterpret(dtype=pl.Int128, endianness="big")


def _valid(abi_type: str, w: pl.Expr) -> pl.Expr:
    """Whether the word is a canonical encoding of ``abi_type`` that fits a signed 128-bit integer."""
    if abi_type == "address":
        ok = w.bin.slice(0, 12) == _Z12
    elif abi_type in ("bool", "uint8"):
        ok = w.bin.slice(0, 31) == _Z31
        if abi_type == "bool":
            ok = ok & (w.bin.slice(31, 1).bin.reinterpret(dtype=pl.UInt8) <= 1)
    elif abi_type == "bytes32":
        ok = w.is_not_null()
    elif abi_type.startswith("uint"):
        ok = (w.bin.slice(0, 16) == _Z16) & (_low128(w) >= 0)
    elif abi_type.startswith("int"):
        high, low = w.bin.slice(0, 16), _low128(w)
        ok = ((high == _Z16) & (low >= 0)) | ((high == _F16) & (low < 0))
    else:
        raise ValueError(f"unsupported ABI type {abi_type}")
    return ok.fill_null(False)


def _value(abi_type: str, unit: Unit, w: pl.Expr) -> pl.Expr:
    if unit is Unit.ADDRESS:
        return pl.lit("0x") + w.bin.slice(12, 20).bin.encode("hex")
    if unit is Unit.HASH:
        return pl.lit("0x") + w.bin.encode("hex")
    if unit is Unit.BOOL:
        return w.bin.slice(31, 1).bin.reinterpret(dtype=pl.UInt8) == 1
    raw = _low128(w)
    if unit is Unit.INT:
        return raw.cast(pl.Int64, strict=False)
    if unit in (Unit.USD, Unit.E18):
        return raw.cast(pl.Float64)  # still unscaled: see _scale
    if unit is Unit.USD_RAW:
        return raw.cast(pl.Int64, strict=False)
    if unit is Unit.E18_RAW:
        return raw.cast(pl.String)
    raise ValueError(unit)


SCALES = {Unit.USD: 10.0**USD_DECIMALS, Unit.E18: 10.0**FIXED_DECIMALS}


def _scale(rows: pl.DataFrame, event: str) -> pl.DataFrame:
    """Divide fixed-point columns by their scale with numpy's correctly rounded division.

    polars turns division by a literal into multiplication by its reciprocal for arrays longer
    than one, which is off by an ulp for some values: the same log would then decode to different
    floats depending on how many logs came with it, and re-indexing would not be reproducible.
    """
    scaled = [
        owned_series(rows[col].to_numpy() / SCALES[unit], col)
        for col, (_pos, unit) in COLUMNS[event].items() if unit in SCALES
    ]
    return rows.with_columns(scaled) if scaled else rows


def decode_event(spec: EventSpec, logs: pl.DataFrame, model: type[SQLModel]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode the logs of one event; returns (rows in the table's frame schema, undecodable logs).

    Well-formed logs (the right number of 0x-prefixed 32-byte topics and data words, every value in
    range) take :func:`_decode_words`; the rest, and a batch with any non-hex digit, take
    :func:`_decode_checked`, which also names what is wrong. Both give the same rows."""
    n_words = len(spec.data)
    shape = (pl.col("n_topics") == 1 + len(spec.indexed)) & pl.col("data").str.starts_with("0x") & (
        pl.col("data").str.len_bytes() == 2 + 64 * n_words)
    for i in range(1, 1 + len(spec.indexed)):
        shape = shape & pl.col(f"topic{i}").str.starts_with("0x") & (pl.col(f"topic{i}").str.len_bytes() == 66)
    logs = logs.with_columns(shape.fill_null(False).alias("_shape"))
    fast = logs.filter(pl.col("_shape")).drop("_shape")
    rest = logs.filter(~pl.col("_shape")).drop("_shape")
    rows, rejected = _decode_words(spec, fast, model)
    if rejected.height:
        rest = pl.concat([rest, rejected])
    if rest.height == 0:
        return rows, undecodable(rest.with_columns(pl.lit(None, dtype=pl.String).alias("_reason")), spec.name)
    checked_rows, bad = _decode_checked(spec, rest, model)
    return (pl.concat([rows, checked_rows]) if rows.height else checked_rows), bad


def _hex_matrix(column: pl.Series, width: int) -> np.ndarray:
    """Strings of exactly ``width`` characters "0x…" (checked by the caller) → bytes, n × (width − 2) / 2.

    Raises binascii.Error on any non-hex digit."""
    n = len(column)
    if n == 0 or width == 2:
        return np.zeros((n, (width - 2) // 2), dtype=np.uint8)
    arr = column.to_arrow()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    first = int(np.frombuffer(arr.buffers()[1], dtype=np.int64, count=1, offset=8 * arr.offset)[0])
    chars = np.frombuffer(arr.buffers()[2], dtype=np.uint8, count=n * width, offset=first).reshape(n, width)
    return np.frombuffer(binascii.a2b_hex(np.ascontiguousarray(chars[:, 2:]).data), dtype=np.uint8).reshape(n, -1)


def _int128(words: np.ndarray) -> pl.Series:
    """The low 16 bytes of each 32-byte word as Int128 (the same conversion as :func:`_low128`)."""
    buf, low = arrow_buffer(16 * len(words))
    low.reshape(len(words), 16)[:] = words[:, 16:]
    binary = series(pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(words), [None, buf]))
    return binary.bin.reinterpret(dtype=pl.Int128, endianness="big")


def _fits(abi_type: str, w: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`_valid`: the word is a canonical ``abi_type`` that fits a signed 128-bit integer."""
    if abi_type == "address":
        return np.asarray(~w[:, :12].any(axis=1))
    if abi_type in ("bool", "uint8"):
        ok = np.asarray(~w[:, :31].any(axis=1))
        return ok & (w[:, 31] <= 1) if abi_type == "bool" else ok
    if abi_type == "bytes32":
        return np.ones(len(w), dtype=bool)
    if abi_type.startswith("uint"):
        return ~w[:, :16].any(axis=1) & (w[:, 16] < 0x80)
    if abi_type.startswith("int"):
        negative = w[:, 16] >= 0x80
        return np.where(negative, (w[:, :16] == 0xFF).all(axis=1), ~w[:, :16].any(axis=1))
    raise ValueError(f"unsupported ABI type {abi_type}")


def _fits64(w: np.ndarray) -> np.ndarray:
    """The (128-bit valid) value fits a signed 64-bit integer: bytes 16–23 only sign-extend byte 24."""
    negative = w[:, 24] >= 0x80
    return np.where(negative, (w[:, 16:24] == 0xFF).all(axis=1), ~w[:, 16:24].any(axis=1))


class _Words:
    """One event's logs as byte matrices: ``word(position)`` is the 32-byte word of a parameter."""

    def __init__(self, spec: EventSpec, logs: pl.DataFrame) -> None:
        """Raises binascii.Error (or ValueError) on any non-hex digit."""
        self.spec = spec
        self.data = _hex_matrix(logs["data"], 2 + 64 * len(spec.data))
        self.topics = [_hex_matrix(logs[f"topic{i}"], 66) for i in range(1, 1 + len(spec.indexed))]

    def word(self, position: int) -> np.ndarray:
        param = self.spec.params[position]
        if param.indexed:
            return self.topics[self.spec.indexed.index(param)]
        k = self.spec.data.index(param)
        return self.data[:, 32 * k: 32 * k + 32]

    def valid(self, mapping: dict[str, tuple[int, Unit]]) -> np.ndarray:
        """Rows whose every mapped word is canonical, in range, and (for 64-bit columns) fits."""
        ok = np.ones(len(self.data), dtype=bool)
        for pos in {pos for pos, _ in mapping.values()}:
            ok &= _fits(self.spec.params[pos].type, self.word(pos))
        for pos, unit in mapping.values():
            if unit in (Unit.USD_RAW, Unit.INT):
                ok &= _fits64(self.word(pos))
        return ok

    def keep(self, rows: np.ndarray) -> None:
        self.data = self.data[rows]
        self.topics = [t[rows] for t in self.topics]


def _word_series(unit: Unit, w: np.ndarray, wide: pl.Series | None) -> pl.Series:
    """A column of ``unit`` from words (n × 32 bytes); ``wide``: their Int128 values, for the scaled units."""
    if unit is Unit.ADDRESS:
        return hex_strings(np.ascontiguousarray(w[:, 12:]))
    if unit is Unit.HASH:
        return hex_strings(np.ascontiguousarray(w))
    if unit is Unit.BOOL:
        return pl.Series(w[:, 31] == 1)
    if unit in (Unit.INT, Unit.USD_RAW):
        return owned_series(np.ascontiguousarray(w[:, 24:]).view(">i8").ravel().astype(np.int64))
    assert wide is not None
    return wide.cast(pl.String if unit is Unit.E18_RAW else pl.Float64)


def _decode_words(spec: EventSpec, logs: pl.DataFrame, model: type[SQLModel]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The fast path for logs whose topics and data have the right shape: hex → one byte matrix
    (binascii), range checks and fixed-width fields in numpy, 128-bit integers through polars' own
    Int128 casts. Returns (rows, logs it rejects for :func:`_decode_checked` to explain)."""
    mapping = COLUMNS[spec.name]
    target = schema.frame_schema(model)
    if logs.height == 0:
        return pl.DataFrame(schema=target), logs
    try:
        words = _Words(spec, logs)
    except (binascii.Error, ValueError):  # a non-hex digit somewhere: let the checked path say where
        return pl.DataFrame(schema=target), logs
    ok = words.valid(mapping)
    rejected = logs.filter(pl.Series(~ok)) if not ok.all() else logs.clear()
    if not ok.any():
        return pl.DataFrame(schema=target), rejected
    if not ok.all():
        logs = logs.filter(pl.Series(ok))
        words.keep(ok)
    wide: dict[int, pl.Series] = {}  # position → Int128, shared by a float and its *_raw column
    columns: list[pl.Series] = []
    for name, dtype in target.items():
        if name in ("chain_id", "tx_hash", "log_index", "block_number", "block_timestamp"):
            columns.append(logs[name].cast(dtype))
            continue
        if name not in mapping:
            columns.append(pl.repeat(spec.name if name == "event" else None, logs.height, dtype=dtype, eager=True).alias(name))
            continue
        pos, unit = mapping[name]
        if unit in SCALES or unit is Unit.E18_RAW:
            wide.setdefault(pos, _int128(words.word(pos)))
        value = _word_series(unit, words.word(pos), wide.get(pos))
        columns.append((-value if name in NEGATED.get(spec.name, ()) else value).cast(dtype).alias(name))
    return _with_notional(_scale(pl.DataFrame(columns), spec.name), spec.name), rejected


def _with_notional(rows: pl.DataFrame, event: str) -> pl.DataFrame:
    """A Trade's notional: price × size (after scaling)."""
    return rows.with_columns((pl.col("price") * pl.col("size")).alias("notional_usd")) if event == "Trade" else rows


def _checks(spec: EventSpec) -> list[tuple[pl.Expr, str]]:
    """(condition that must hold, reason when it does not) over the ``_d``/``_t*`` byte columns, in the
    order they are reported."""
    n_data = len(spec.data)
    shape_ok = (pl.col("n_topics") == 1 + len(spec.indexed)) & (pl.col("_d").bin.size() == 32 * n_data)
    for i in range(1, 1 + len(spec.indexed)):
        shape_ok = shape_ok & (pl.col(f"_t{i}").bin.size() == 32)
    mapping = COLUMNS[spec.name]
    checks = [(shape_ok.fill_null(False),
               f"expected {1 + len(spec.indexed)} topics and {32 * n_data} data bytes for {spec.signature}")]
    for pos in sorted({pos for pos, _ in mapping.values()}):
        p = spec.params[pos]
        checks.append((_valid(p.type, _word(spec, pos)), f"parameter {pos} ({p.type}) out of range for {spec.signature}"))
    for pos, unit in mapping.values():
        if unit in (Unit.USD_RAW, Unit.INT):
            p = spec.params[pos]
            checks.append((_value(p.type, unit, _word(spec, pos)).is_not_null().fill_null(False),
                           f"parameter {pos} ({p.type}) exceeds 64 bits for {spec.signature}"))
    return checks


def _column_exprs(spec: EventSpec, model: type[SQLModel]) -> list[pl.Expr]:
    """The table's columns from the byte columns of rows that passed :func:`_checks` (unscaled)."""
    mapping = COLUMNS[spec.name]
    exprs: list[pl.Expr] = []
    for name, dtype in schema.frame_schema(model).items():
        if name in ("chain_id", "tx_hash", "log_index", "block_number", "block_timestamp"):
            exprs.append(pl.col(name).cast(dtype))
        elif name == "event":
            exprs.append(pl.lit(spec.name, dtype=pl.String).alias(name))
        elif name in mapping:
            pos, unit = mapping[name]
            value = _value(spec.params[pos].type, unit, _word(spec, pos))
            exprs.append((-value if name in NEGATED.get(spec.name, ()) else value).cast(dtype).alias(name))
        else:  # not in the event (notional_usd: filled from price × size after scaling)
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return exprs


def _hex_bytes(column: str) -> pl.Expr:
    return pl.col(column).str.strip_prefix("0x").str.decode("hex", strict=False)


def _decode_checked(spec: EventSpec, logs: pl.DataFrame, model: type[SQLModel]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode any logs of one event with polars expressions, naming why each rejected log is rejected."""
    logs = logs.with_columns(_hex_bytes("data").alias("_d"),
                             *(_hex_bytes(f"topic{i}").alias(f"_t{i}") for i in range(1, 1 + len(spec.indexed))))
    checks = _checks(spec)
    # One AND over all rows; the (slower) reason chain only runs on the rare bad rows.
    checked = logs.with_columns(pl.all_horizontal([c for c, _ in checks]).alias("_ok"))
    good = checked.filter(pl.col("_ok"))
    bad = checked.filter(~pl.col("_ok"))
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    if bad.height:
        chain = pl.when(~checks[0][0]).then(pl.lit(checks[0][1]))
        for cond, text in checks[1:]:
            chain = chain.when(~cond).then(pl.lit(text))  # type: ignore[assignment]
        reason = chain.otherwise(pl.lit("invalid"))
    bad = bad.with_columns(reason.alias("_reason"))
    rows = _with_notional(_scale(good.select(_column_exprs(spec, model)), spec.name), spec.name)
    return rows, undecodable(bad, spec.name)


def undecodable(bad: pl.DataFrame, event: str) -> pl.DataFrame:
    return bad.select(
        pl.col("chain_id").cast(pl.Int64), "block_number", "log_index", "tx_hash", "address",
        pl.lit(event).alias("event"), pl.col("_reason").alias("reason"),
        pl.concat_str([pl.col(f"topic{i}") for i in range(4)], separator=",", ignore_nulls=True).alias("topics"),
        "data",
    ).cast(dict(UNDECODABLE_SCHEMA))  # type: ignore[arg-type]
