"""`python -m core.api` as a real server on a free loopback port (tests/test_api.py and bench/api.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

from tests.anvil import free_port, stop_process
from tests.synthetic import ROOT


@contextmanager
def api_server(database_url: str, *, env: Mapping[str, str] | None = None, output: IO[Any] | int = subprocess.DEVNULL,
               start_timeout_s: float = 60, workers: int | None = 1) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The API on ``database_url`` (no access log; no RPC_URL unless ``env`` gives one; ``workers`` server
    processes, None = the server's default); yields (base URL, process) once it answers /docs, and stops it afterwards."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if k != "RPC_URL"} | dict(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "core.api", "--database-url", database_url, "--port", str(port),
                             "--no-access-log", *(["--workers", str(workers)] if workers is not None else [])], cwd=ROOT, env=full_env, stdout=output,
                            stderr=subprocess.STDOUT if output is not subprocess.DEVNULL else output)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{base}/openapi.json", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"python -m core.api did not start (exit {proc.poll()})") from None
                time.sleep(0.2)
        yield base, proc
    finally:
        stop_process(proc, timeout=30)


def get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """(status, lower-cased headers, body: parsed when JSON, else text; None when empty) of a GET, errors included."""
    req = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, head, body = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        status, head, body = e.code, dict(e.headers), e.read()
    lower = {k.lower(): v for k, v in head.items()}
    if not body:
        return status, lower, None
    return status, lower, json.loads(body) if lower.get("content-type", "").startswith("application/json") else body.decode()
