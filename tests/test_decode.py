"""decode: round trips for every event (hypothesis), units, rejection of malformed logs, waterfall join."""

from __future__ import annotations

from typing import Any

import eth_abi
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import schema
from core.abi import EventSpec, encode_event, event_specs
from core.indexer.decode import COLUMNS, NEGATED, Unit, decode_logs, logs_to_frame

SPECS = event_specs()
CONTRACTS = {
    "MarketRegistry": "0x" + "11" * 20, "PositionHandler": "0x" + "22" * 20, "Oracle": "0x" + "33" * 20,
    "InsuranceFund": "0x" + "44" * 20, "BackstopVault": "0x" + "55" * 20,
}
MARKET = "0x" + "aa" * 20
TS = 1_700_000_000
E18 = 10**18


def make_log(name: str, args: tuple[Any, ...], *, address: str | None = None, log_index: int = 0,
             tx: str = "0x" + "01" * 32, block: int = 7) -> dict[str, Any]:
    """A log as eth_getLogs returns it, encoded with eth_abi (independent of our fast encoder)."""
    spec = SPECS[name]
    topics = [spec.topic0]
    data_types, data_values = [], []
    for p, v in zip(spec.params, args, strict=True):
        if p.indexed:
            topics.append("0x" + eth_abi.encode([p.type], [bytes.fromhex(v[2:]) if p.type == "bytes32" else v]).hex())
        else:
            data_types.append(p.type)
            data_values.append(bytes.fromhex(v[2:]) if p.type == "bytes32" else v)
    if address is None:
        address = MARKET if spec.contract == "OrderBook" else CONTRACTS[spec.contract]
    return {
        "address": address, "topics": topics, "data": "0x" + eth_abi.encode(data_types, data_values).hex(),
        "blockNumber": hex(block), "blockHash": "0x" + "ee" * 32, "transactionHash": tx,
        "logIndex": hex(log_index), "transactionIndex": "0x0", "removed": False,
    }


def decode(logs: list[dict[str, Any]], markets: set[str] | None = None) -> Any:
    ts = pl.DataFrame({"block_number": [7, 8], "block_timestamp": [TS, TS + 12]})
    return decode_logs(logs_to_frame(logs), chain_id=31337, contracts=CONTRACTS,
                       markets={MARKET} if markets is None else markets, timestamps=ts)


def value_strategy(abi_type: str, unit: Unit | None) -> st.SearchStrategy[Any]:
    if abi_type == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if abi_type == "bytes32":
        return st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
    if abi_type == "bool":
        return st.booleans()
    if abi_type == "uint8":
        return st.integers(0, 255)
    if unit in (Unit.USD_RAW, Unit.INT):  # exact micro-USD and timestamps must fit 64 bits
        lo = -(2**63) + 1 if abi_type.startswith("int") else 0
        return st.integers(lo, 2**63 - 1)
    if abi_type.startswith("uint"):
        return st.integers(0, 2**127 - 1)
    return st.integers(-(2**127), 2**127 - 1)


def args_strategy(spec: EventSpec) -> st.SearchStrategy[tuple[Any, ...]]:
    units: dict[int, Unit] = {}
    for pos, unit in COLUMNS[spec.name].values():
        if units.get(pos) not in (Unit.USD_RAW, Unit.INT):
            units[pos] = unit
    return st.tuples(*(value_strategy(p.type, units.get(i)) for i, p in enumerate(spec.params)))


def expected(abi_type: str, unit: Unit, v: Any) -> Any:
    return {
        Unit.ADDRESS: lambda: v.lower(), Unit.HASH: lambda: v, Unit.BOOL: lambda: v, Unit.INT: lambda: v,
        Unit.USD: lambda: v / 1e6, Unit.USD_RAW: lambda: v, Unit.E18: lambda: v / 1e18, Unit.E18_RAW: lambda: str(v),
    }[unit]()


STATIC_EVENTS = [n for n in SPECS if n != "MarketCreated"]


@pytest.mark.parametrize("name", STATIC_EVENTS)
def test_round_trip_every_event(name: str) -> None:
    spec = SPECS[name]

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(args_strategy(spec))
    def check(args: tuple[Any, ...]) -> None:
        if spec.contract == "OrderBook":
            args = (MARKET, *args[1:])
        out = decode([make_log(name, args)])
        assert out.undecodable.height == 0, out.undecodable["reason"].to_list()
        assert out.counts == {name: 1}
        (frame,) = out.frames.values()
        row = frame.row(0, named=True)
        for col, (pos, unit) in COLUMNS[name].items():
            want = expected(spec.params[pos].type, unit, args[pos])
            if col in NEGATED.get(name, ()):
                want = -want
            got = row[col]
            if isinstance(want, float):
                assert got == pytest.approx(want, rel=1e-12, abs=1e-300), col
            else:
                assert got == want, col
        assert row["chain_id"] == 31337 and row["block_timestamp"] == TS and row["block_number"] == 7

    check()


def test_fast_encoder_matches_eth_abi() -> None:
    args = (MARKET, "0x" + "bb" * 20, "0x" + "cc" * 20, True, 65_000 * E18, E18 // 3, -1_234_567, 7_000_000, 1)
    log = make_log("Trade", args)
    topics, data = encode_event(SPECS["Trade"], args)
    assert topics == log["topics"] and data == log["data"]


def test_units_of_a_trade() -> None:
    maker, taker = "0x" + "bb" * 20, "0x" + "cc" * 20
    args = (MARKET, maker, taker, False, 65_000 * E18, E18 // 4, -2_500_000, 10_000_000, 2)
    row = decode([make_log("Trade", args)]).frames[schema.Trade].row(0, named=True)
    assert row["price"] == 65_000.0 and row["size"] == 0.25 and row["notional_usd"] == 16_250.0
    assert row["maker_fee_usd"] == -2.5 and row["taker_fee_usd"] == 10.0  # negative maker fee = rebate
    assert row["fill_type"] == 2 and row["taker_is_buy"] is False
    assert row["price_raw"] == str(65_000 * E18) and row["size_raw"] == str(E18 // 4)


def test_market_created_with_hostile_symbol_and_bad_utf8() -> None:
    hostile = "<script>alert(1)</script>**bold**"
    log = make_log("MarketCreated", (MARKET, hostile, 1, "0x" + "01" * 20, "0x" + "02" * 20))
    out = decode([log], markets=set())
    assert out.frames[schema.Market]["symbol"].to_list() == [hostile]
    assert out.new_markets == {MARKET: hostile}
    bad = make_log("MarketCreated", (MARKET, "x", 0, "0x" + "01" * 20, "0x" + "02" * 20))
    raw = bytes.fromhex(bad["data"][2:])
    bad["data"] = "0x" + (raw[:-32] + b"\xff" + raw[-31:]).hex()  # invalid UTF-8 in the symbol
    row = decode([bad], markets=set()).frames[schema.Market].row(0, named=True)
    assert "\ufffd" in row["symbol"] and row["market_type"] == "spot"


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda lg: lg.update(data=lg["data"][:-2]), "expected 4 topics"),
        (lambda lg: lg.update(topics=lg["topics"][:3]), "expected 4 topics"),
        (lambda lg: lg.update(data="0x" + "ff" * 32 + lg["data"][66:]), "out of range"),  # takerIsBuy = 2**256-1
        (lambda lg: lg.update(data=lg["data"][:-4] + "zz" + lg["data"][-2:]), "expected 4 topics"),  # non-hex
    ],
)
def test_malformed_logs_are_counted_not_fatal(mutate: Any, reason: str) -> None:
    good = make_log("Trade", (MARKET, "0x" + "bb" * 20, "0x" + "cc" * 20, True, E18, E18, 0, 0, 0), log_index=0)
    bad = make_log("Trade", (MARKET, "0x" + "bb" * 20, "0x" + "cc" * 20, True, E18, E18, 0, 0, 0), log_index=1)
    mutate(bad)
    out = decode([good, bad])
    assert out.counts == {"Trade": 1}
    assert out.undecodable.height == 1
    assert reason in out.undecodable["reason"][0]
    assert out.undecodable["log_index"][0] == 1


def test_usd_amount_beyond_64_bits_is_undecodable() -> None:
    log = make_log("DebtSocialized", (2**70, TS))
    out = decode([log])
    assert out.counts == {} and "64 bits" in out.undecodable["reason"][0]


def test_logs_from_unknown_addresses_and_unknown_markets_are_foreign() -> None:
    other = "0x" + "99" * 20
    logs = [
        make_log("PriceUpdated", (MARKET, E18, E18, TS), address=other, log_index=0),
        make_log("Trade", (other, other, other, True, E18, E18, 0, 0, 0), address=other, log_index=1),
        {**make_log("PriceUpdated", (MARKET, E18, E18, TS), log_index=2), "topics": ["0x" + "ab" * 32]},
    ]
    out = decode(logs)
    assert out.counts == {} and out.foreign == 3 and out.undecodable.height == 0


def test_duplicate_logs_from_a_faulty_node_decode_once() -> None:
    log = make_log("PriceUpdated", (MARKET, 2 * E18, 3 * E18, TS))
    out = decode([log, dict(log)])
    assert out.counts == {"PriceUpdated": 1}


def liquidation_tx(key: str, account: str, log0: int, tx: str, *, book: int, adl: int, vault: int, cover: int,
                   debt: int, fee: int) -> list[dict[str, Any]]:
    """One liquidation's legs in EVENTS.md order; sizes in 1e18, USD in micro-USD."""
    legs: list[tuple[str, tuple[Any, ...]]] = [
        ("Trade", (MARKET, "0x" + "bb" * 20, account, False, 90 * E18, book, 0, 0, 1)),
        ("ADLExecuted", (MARKET, "0x" + "dd" * 20, key, False, adl, 89 * E18, 5_000_000)),
        ("VaultPnLUpdated", (key, -vault, 10**12)),
        ("ShortfallCovered", (MARKET, key, cover, 10**11)),
        ("DebtSocialized", (debt, TS)),
        ("PositionLiquidated", (key, account, MARKET, True, book + adl, 100 * E18, 91 * E18, 90 * E18,
                                1_000_000, fee, -(vault + cover + debt), "0x" + "ff" * 20)),
        ("LiquidationFeeCollected", (MARKET, key, fee, 10**11 + fee)),
    ]
    return [make_log(n, a, log_index=log0 + i, tx=tx) for i, (n, a) in enumerate(legs)]


def test_waterfall_legs_join_per_liquidation_even_two_in_one_tx() -> None:
    tx = "0x" + "02" * 32
    k1, k2 = "0x" + "a1" * 32, "0x" + "a2" * 32
    logs = liquidation_tx(k1, "0x" + "c1" * 20, 0, tx, book=E18, adl=E18 // 2, vault=300_000_000,
                          cover=200_000_000, debt=100_000_000, fee=7_000_000)
    logs += liquidation_tx(k2, "0x" + "c2" * 20, 7, tx, book=2 * E18, adl=0, vault=50_000_000,
                           cover=0, debt=0, fee=1_000_000)
    liq = decode(logs).frames[schema.Liquidation].sort("log_index")
    first, second = liq.rows(named=True)
    assert (first["book_filled_size"], first["adl_size"]) == (1.0, 0.5)
    assert first["adl_covered_usd"] == pytest.approx(0.5 * (90 - 89))
    assert (first["backstop_loss_usd"], first["insurance_cover_usd"], first["socialized_usd"]) == (300.0, 200.0, 100.0)
    assert first["fee_collected_usd"] == 7.0 and first["remaining_equity_usd"] == -600.0
    assert first["notional_usd"] == pytest.approx(1.5 * 91)
    assert (second["book_filled_size"], second["adl_size"], second["backstop_loss_usd"]) == (2.0, 0.0, 50.0)
    assert (second["insurance_cover_usd"], second["socialized_usd"], second["fee_collected_usd"]) == (0.0, 0.0, 1.0)


def test_decoded_frames_hold_no_python_owned_memory() -> None:
    """Decoded (and simulated raw) frames live in polars' or Arrow's memory, never in numpy arrays
    or Python buffers polars took over zero-copy: those need the GIL to be freed, and a polars pool
    thread freeing one while the main thread holds the GIL and waits on the pool (pickling a frame
    does) deadlocks. The simulator's worker hung so at 10M trades. Python-owned memory is what
    tracemalloc traces (numpy reports its buffers to it); polars' and Arrow's allocators are not."""
    import gc
    import tracemalloc

    from core.simulator.build import DEMO_MANIFEST, decode_batch, demo_addresses, load_manifest, raw_batches, run_config

    cfg = run_config(3, 2, 3000, None, None)
    book, manifest = demo_addresses(cfg.markets), load_manifest(DEMO_MANIFEST)
    for warm_up in raw_batches(run_config(3, 1, 100, None, None), book)[1]:  # modules imported lazily, caches
        decode_batch(warm_up, manifest, set(book.markets.values()))
    tracemalloc.start()
    sim, stream = raw_batches(cfg, book, batch_logs=20_000)
    try:
        base = tracemalloc.get_traced_memory()[0]
        batches = list(stream)  # the simulator's raw logs, as the worker produces them
        out = [decode_batch(b, manifest, set(book.markets.values())) for b in batches]
        raw_rows = sum(b.raw.height for b in batches)
        del sim, stream, batches
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    rows = sum(f.height for o in out for f in o.decoded.frames.values())
    assert raw_rows > 10_000 and rows > 10_000
    # One int64 column of the decoded rows held in numpy would be 8 bytes a row; allow well under that.
    assert held < rows, f"{held:,} bytes of Python-owned memory behind {rows:,} decoded rows"


def _body(result: Any) -> bytes:
    import json
    return json.dumps({"jsonrpc": "2.0", "id": 3, "result": result}).encode()


def _mixed_logs() -> list[dict[str, Any]]:
    """Logs of two blocks, out of order, one twice, one removed, upper-case hex, topics of 1-4 words."""
    trade = make_log("Trade", (MARKET, "0x" + "bb" * 20, "0x" + "cc" * 20, True, 2 * E18, 3 * E18, -1_000, 2_000, 1),
                     log_index=1, block=8)
    price = make_log("PriceUpdated", (MARKET, 7 * E18, 6 * E18, TS), log_index=0, block=7)
    created = make_log("MarketCreated", (MARKET, "BTC", 1, "0x" + "dd" * 20, "0x" + "ee" * 20), log_index=2, block=8)
    removed = dict(price, logIndex="0x5", removed=True)
    shouty = dict(trade, logIndex="0x3", address=trade["address"].upper().replace("0X", "0x"),
                  transactionHash="0x" + "AB" * 32)
    logs = [trade, price, created, trade, removed, shouty]
    for lg in logs:
        lg["blockTimestamp"] = hex(TS + 12 * (int(lg["blockNumber"], 16) - 7))
        lg["blockHash"] = "0x" + ("EE" if lg["blockNumber"] == "0x8" else "ff") * 32
    return logs


def test_an_answer_parsed_from_its_bytes_is_the_frame_of_its_log_objects() -> None:
    """frame_from_body (polars reads the answer's bytes) gives exactly what logs_to_frame gives for
    the same logs (removed ones dropped, duplicates once, hex case folded where compared), and the
    block hash → blockTimestamp pairs the slow path reads off the logs."""
    from core.indexer.raw import frame_from_body

    logs = _mixed_logs()
    parsed = frame_from_body(_body(logs))
    assert parsed is not None
    frame, stamps = parsed
    kept = [lg for lg in logs if not lg["removed"]]
    assert frame.equals(logs_to_frame(kept)) and frame.schema == logs_to_frame(kept).schema
    assert frame.height == 4  # the duplicate once, the removed log gone
    assert stamps == {lg["blockHash"].lower(): lg["blockTimestamp"] for lg in kept}
    empty = frame_from_body(_body([]))
    assert empty is not None and empty[0].height == 0 and empty[0].schema == logs_to_frame(logs[:1]).schema


@pytest.mark.parametrize("answer", [
    {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "query returned more than 10000 results"}},
    {"jsonrpc": "2.0", "id": 1, "result": "0x1"},
    {"jsonrpc": "2.0", "id": 1, "result": [{"address": "0x" + "11" * 20}]},
    [{"jsonrpc": "2.0", "id": 1, "result": []}],
    {"jsonrpc": "2.0", "id": 1, "result": _mixed_logs()[:1], "error": {"code": -32000, "message": "header not found"}},
    {"jsonrpc": "2.0", "id": 1, "result": _mixed_logs()[:1], "error": "boom"},
], ids=["error", "not-a-list", "missing-fields", "batch", "error-beside-logs", "error-as-text"])
def test_an_answer_that_is_not_a_well_formed_log_list_is_left_to_the_slow_path(answer: Any) -> None:
    import json

    from core.indexer.raw import frame_from_body

    assert frame_from_body(json.dumps(answer).encode()) is None


@pytest.mark.parametrize("mutate", [
    lambda lg: lg.update(blockNumber="0xzz"),
    lambda lg: lg.update(logIndex=None),
    lambda lg: lg.update(topics=[lg["topics"][0], None]),
    lambda lg: lg.pop("blockTimestamp"),
    lambda lg: lg.update(data=12),
    lambda lg: lg.update(blockTimestamp="0x1"),
    lambda lg: lg.update(topics=lg["topics"][0]),
    lambda lg: lg.update(blockNumber=8),
    lambda lg: lg.update(removed="no"),
], ids=["non-hex", "null-index", "null-topic", "timestamp-on-some", "data-not-text", "two-timestamps-one-block",
        "topics-not-a-list", "number-not-text", "removed-not-a-boolean"])
def test_one_malformed_log_sends_the_whole_answer_to_the_slow_path(mutate: Any) -> None:
    """The slow path (json + logs_to_frame) names what is wrong; the fast one never guesses."""
    from core.indexer.raw import frame_from_body

    logs = _mixed_logs()
    mutate(logs[-1])
    assert frame_from_body(_body(logs)) is None
