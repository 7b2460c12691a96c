"""``python -m core.api --workers N``: N uvicorn processes, each on its own SO_REUSEPORT socket of the
one port, so the kernel spreads connections evenly over them (with one shared listening socket a
burst of keep-alive connections went mostly to the worker that accepted first)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from types import FrameType

import uvicorn

APP = "core.api.app:from_environment"


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port) that other workers may bind too (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def worker(sock: socket.socket, access_log: bool) -> None:
    """One worker process: uvicorn on its own SO_REUSEPORT socket (SIGTERM stops it gracefully)."""
    config = uvicorn.Config(APP, factory=True, access_log=access_log, log_level="info")
    uvicorn.Server(config).run(sockets=[sock])


def supervise(workers: int, host: str, port: int, access_log: bool) -> int:
    """Run ``workers`` worker processes until SIGTERM/SIGINT (passed on to them) or until one exits."""
    try:  # every worker's socket listens before any starts: the kernel spreads connections over all of them
        sockets = [_listen(host, port) for _ in range(workers)]
    except OSError as e:
        print(f"error: cannot listen on {host}:{port}: {e.strerror}", file=sys.stderr)
        return 1
    spawn = multiprocessing.get_context("spawn")
    procs = [spawn.Process(target=worker, args=(sock, access_log), daemon=False) for sock in sockets]
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.start()
    for sock in sockets:  # the workers hold their copies
        sock.close()
    print(f"core.api: {workers} workers on http://{host}:{port}", file=sys.stderr, flush=True)
    code = 0
    while any(p.is_alive() for p in procs):
        multiprocessing.connection.wait([p.sentinel for p in procs if p.is_alive()])
        dead = [p for p in procs if not p.is_alive() and p.exitcode]
        if dead and not stopping:  # a worker failed: stop the others
            code = dead[0].exitcode or 1
            stop(signal.SIGTERM, None)
    for p in procs:
        p.join()
    return code
