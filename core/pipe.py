"""A pipe sender: a thread that writes what a producer queues to a child process's stdin.

The indexer's writer process and the simulator's model process are both fed through one; the
blocked write releases the GIL, so the producer keeps working while the child reads.
"""

from __future__ import annotations

import queue
import threading
from typing import IO


def start_sender(stream: IO[bytes], pending: queue.Queue[bytes | None], name: str) -> threading.Thread:
    """A thread writing what is put in ``pending`` to ``stream`` (a pipe) until ``None``, then closing it.

    The blocked write releases the GIL, so the producing thread goes on meanwhile; once the reader
    has gone, the thread keeps taking items (and drops them) so that the producer never blocks."""
    def send() -> None:
        broken = False
        while (data := pending.get()) is not None:
            if not broken:
                try:
                    stream.write(data)
                    stream.flush()
                except OSError:
                    broken = True
        try:
            stream.close()
        except OSError:
            pass

    sender = threading.Thread(target=send, name=name, daemon=True)
    sender.start()
    return sender
