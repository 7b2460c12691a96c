"""Pure planning logic: which block range to index, how to split it, where a reorg rewinds to."""

from __future__ import annotations

from collections.abc import Mapping

from core.indexer.errors import IndexerError

FETCH_THREADS = 4  # eth_getLogs ranges asked at once
# Logs decoded and committed together. A commit's rollup work grows with its rows, but each also
# costs a transaction, the trader and position look-ups and a round trip to the writer process
# (measured by bench/follow.py) and the pipeline fills and drains one batch unoverlapped. On the
# catch-up chain of bench/catchup.py each commit's rollup fold cost ~0.2 s of CPU beyond its rows
# (5 commits of ~24k logs 1.5 s, one of 122k 0.8 s): ~50k logs (~50 MB of raw frames) halves that.
BATCH_LOGS = 50_000


def plan_range(*, checkpoint: int | None, start_block: int, head: int, confirmations: int,
               from_block: int | None = None, to_block: int | None = None) -> tuple[int, int] | None:
    """The inclusive block range to index now, or None when there is nothing new.

    Starts after the checkpoint (or at the manifest's start block); an explicit ``from_block``
    overrides that (re-indexing is idempotent). Never goes past ``head - confirmations``.
    """
    if confirmations < 0:
        raise IndexerError(f"--confirmations must be >= 0, got {confirmations}")
    if from_block is not None and to_block is not None and from_block > to_block:
        raise IndexerError(f"--from-block {from_block} is after --to-block {to_block}: swap them or drop one")
    safe_head = head - confirmations
    start = from_block if from_block is not None else (checkpoint + 1 if checkpoint is not None else start_block)
    end = safe_head if to_block is None else min(to_block, safe_head)
    if start > end:
        return None
    return start, end


class ChunkSizer:
    """Adaptive eth_getLogs span: halves on 'too large', grows while answers stay small, and shrinks
    at once to the span that holds ``target_logs`` at the density of an answer with more.

    Growth is a binary search below the narrowest span the node refused lately, so a node with a
    hard block-range cap is probed a few times, not refused every other chunk; after
    ``relearn_after`` answers in a row the refusal is forgotten (it may have been about how dense
    those blocks were, not about the range).
    """

    def __init__(self, initial: int = 2_000, minimum: int = 1, maximum: int = 100_000, target_logs: int = 5_000,
                 relearn_after: int = 64) -> None:
        self.span = initial
        self.minimum = minimum
        self.maximum = maximum
        self.target_logs = target_logs
        self.relearn_after = relearn_after
        self.refused: int | None = None  # narrowest span refused since the last relearn
        self.answered_in_a_row = 0

    def next_range(self, start: int, end: int) -> tuple[int, int]:
        return start, min(end, start + self.span - 1)

    def too_large(self, start: int, stop: int, suggested_width: int | None = None) -> None:
        """The node refused start..stop; ``suggested_width`` is the span it said would work, if it said."""
        width = stop - start + 1
        if width <= self.minimum:
            raise IndexerError(f"the node refuses eth_getLogs even for blocks {start}..{stop}: it cannot serve this deployment's logs")
        self.refused = width if self.refused is None else min(self.refused, width)
        self.answered_in_a_row = 0
        if suggested_width is not None and self.minimum <= suggested_width < width:
            self.span = suggested_width
        else:
            self.span = max(self.minimum, width // 2)

    def succeeded(self, start: int, stop: int, n_logs: int) -> None:
        width = stop - start + 1
        self.answered_in_a_row += 1
        if self.refused is not None and (width >= self.refused or self.answered_in_a_row >= self.relearn_after):
            self.refused = None
        if n_logs < self.target_logs // 4 and width >= self.span:
            grown = min(self.maximum, self.span * 2)
            if self.refused is not None:
                grown = min(grown, (width + self.refused) // 2)
            self.span = max(self.span, grown)
        elif n_logs > self.target_logs:  # at this answer's density, the span that holds target_logs
            self.span = max(self.minimum, min(width // 2, width * self.target_logs // n_logs))


def find_fork(stored: Mapping[int, str], canonical: Mapping[int, str | None]) -> tuple[int, int | None] | None:
    """Where the node's chain left ours: None when every stored hash still matches, else
    (lowest stored block whose hash the node no longer has, highest matching stored block below it
    or None). Rows must be rewound to the last *verified* block, not just below the mismatch:
    blocks in between were not stored (no logs) and may have changed too."""
    last_good: int | None = None
    for number in sorted(stored):
        if canonical.get(number) != stored[number]:
            return number, last_good
        last_good = number
    return None
