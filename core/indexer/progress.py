"""Progress for long ranges: a live bar on a terminal, an occasional plain line otherwise (stderr)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, first: int, last: int, stream: TextIO | None = None, plain_every_s: float = 10.0) -> None:
        self.first, self.last = first, last
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.shown = 0.0
        self.plain_every_s = plain_every_s
        self.events = 0

    def update(self, done_through: int, new_events: int) -> None:
        self.events += new_events
        now = time.monotonic()
        if now - self.shown < (0.2 if self.tty else self.plain_every_s):
            return
        self.shown = now
        self.stream.write(self._line(done_through, now) + ("\r" if self.tty else "\n"))
        self.stream.flush()

    def _line(self, done_through: int, now: float) -> str:
        total = max(1, self.last - self.first + 1)
        done = min(total, max(0, done_through - self.first + 1))
        elapsed = max(1e-9, now - self.started)
        rate = self.events / elapsed
        eta = (total - done) * elapsed / done if done else float("nan")
        frac = done / total
        if self.tty:
            bar = "#" * int(frac * 30)
            return f"[{bar:<30}] {frac:6.1%} block {done_through}/{self.last}  {rate:,.0f} events/s  ETA {eta:,.0f}s"
        return f"indexed through block {done_through} of {self.last} ({frac:.1%}), {self.events} events, {rate:,.0f} events/s"

    def close(self, done_through: int) -> None:
        if self.tty:
            self.stream.write(self._line(done_through, time.monotonic()) + "\n")
            self.stream.flush()
