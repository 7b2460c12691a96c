"""Pure planning logic: range choice, adaptive chunking, reorg detection, manifests, URL redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.indexer.errors import IndexerError
from core.indexer.manifest import load_manifest
from core.indexer.plan import ChunkSizer, find_fork, plan_range
from core.indexer.rpc import redact_url


@pytest.mark.parametrize(
    "checkpoint, start_block, head, conf, frm, to, want",
    [
        (None, 0, 100, 0, None, None, (0, 100)),
        (None, 50, 100, 0, None, None, (50, 100)),
        (60, 0, 100, 0, None, None, (61, 100)),
        (60, 0, 100, 10, None, None, (61, 90)),
        (100, 0, 100, 0, None, None, None),  # nothing new
        (95, 0, 100, 10, None, None, None),  # within confirmations
        (60, 0, 100, 0, 10, 20, (10, 20)),  # explicit re-index
        (None, 0, 100, 0, None, 500, (0, 100)),  # to-block past the head
        (None, 0, 100, 5, 98, None, None),
    ],
)
def test_plan_range(checkpoint: int | None, start_block: int, head: int, conf: int, frm: int | None,
                    to: int | None, want: tuple[int, int] | None) -> None:
    assert plan_range(checkpoint=checkpoint, start_block=start_block, head=head, confirmations=conf,
                      from_block=frm, to_block=to) == want


def test_plan_range_rejects_from_after_to() -> None:
    with pytest.raises(IndexerError, match="--from-block 20 is after --to-block 10"):
        plan_range(checkpoint=None, start_block=0, head=100, confirmations=0, from_block=20, to_block=10)


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.lists(st.booleans(), max_size=200))
def test_chunks_cover_range_exactly_whatever_the_node_refuses(a: int, width: int, refusals: list[bool]) -> None:
    """Halving on refusals and growing on success still visits every block once, in order."""
    start, end = a, a + width
    sizer = ChunkSizer(initial=64, maximum=4096)
    covered: list[tuple[int, int]] = []
    answers = iter(refusals)
    while start <= end:
        lo, hi = sizer.next_range(start, end)
        assert lo == start and lo <= hi <= end
        if next(answers, False) and hi > lo:
            sizer.too_large(lo, hi)
            assert sizer.span <= max(1, (hi - lo + 1) // 2)
            continue
        covered.append((lo, hi))
        sizer.succeeded(lo, hi, 0)
        start = hi + 1
    assert covered[0][0] == a and covered[-1][1] == a + width
    assert all(x[1] + 1 == y[0] for x, y in zip(covered, covered[1:], strict=False))


@given(st.integers(2, 100_000), st.integers(0, 1_000_000))
def test_one_dense_answer_sizes_the_next_ranges_for_the_target(width: int, n_logs: int) -> None:
    """An answer with more logs than the target shrinks the span to what holds the target at its
    density (at least halving it); a sparse one never shrinks it."""
    sizer = ChunkSizer(initial=width, maximum=200_000, target_logs=5_000)
    sizer.succeeded(1, width, n_logs)
    if n_logs > 5_000:
        assert 1 <= sizer.span <= width // 2
        assert sizer.span == 1 or sizer.span * n_logs <= 5_000 * width  # holds the target at that density
        assert sizer.span == width // 2 or (sizer.span + 1) * n_logs > 5_000 * width  # and no less
    else:
        assert sizer.span >= width


def test_chunk_sizer_gives_up_on_a_single_block() -> None:
    with pytest.raises(IndexerError, match="even for blocks 5..5"):
        ChunkSizer(initial=1).too_large(5, 5)


def test_find_fork() -> None:
    stored = {10: "a", 14: "b", 20: "c"}
    assert find_fork(stored, {10: "a", 14: "b", 20: "c"}) is None
    assert find_fork(stored, {10: "a", 14: "x", 20: "y"}) == (14, 10)  # rewind to 10, the last verified
    assert find_fork(stored, {10: "a", 14: "b"}) == (20, 14)  # chain got shorter
    assert find_fork(stored, {10: "z", 14: "b", 20: "c"}) == (10, None)


def write(tmp_path: Path, obj: object) -> Path:
    p = tmp_path / "m.json"
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


GOOD = {"name": "t", "chain_id": 31337, "start_block": 0,
        "contracts": {k: "0x" + "1" * 40 for k in ("MarketRegistry", "PositionHandler", "Oracle", "InsuranceFund", "BackstopVault")}}


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        ([], "must be a JSON object"),
        ({k: v for k, v in GOOD.items() if k != "contracts"}, "missing 'contracts'"),
        ({**GOOD, "chain_id": "x"}, "'chain_id' must be a positive integer"),
        ({**GOOD, "start_block": -1}, "'start_block' must be a non-negative integer"),
        ({**GOOD, "contracts": {**GOOD["contracts"], "Oracle": "0x123"}}, "contracts.Oracle is not a 0x-prefixed"),  # type: ignore[dict-item]
        ({**GOOD, "contracts": {k: v for k, v in GOOD["contracts"].items() if k != "Oracle"}}, "missing contracts.Oracle"),  # type: ignore[union-attr]
    ],
)
def test_bad_manifests(tmp_path: Path, content: object, message: str) -> None:
    with pytest.raises(IndexerError, match=message):
        load_manifest(write(tmp_path, content))


def test_manifest_missing_and_good(tmp_path: Path) -> None:
    with pytest.raises(IndexerError, match="manifest not found"):
        load_manifest(tmp_path / "nope.json")
    m = load_manifest(write(tmp_path, {**GOOD, "contracts": {**GOOD["contracts"], "Oracle": "0x" + "AB" * 20}}))  # type: ignore[dict-item]
    assert m.contracts["Oracle"] == "0x" + "ab" * 20 and m.chain_id == 31337


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://eth.example.com/v2/SECRETKEY", "https://eth.example.com/…"),
        ("https://user:pass@eth.example.com", "https://eth.example.com/…"),
        ("https://eth.example.com/?apikey=SECRET", "https://eth.example.com/…"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "SECRET" not in redact_url(url) and "pass" not in redact_url(url)
