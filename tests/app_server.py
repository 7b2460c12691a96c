"""`streamlit run app.py` as a real server on a free loopback port (the browser test and bench/scale.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from tests.anvil import free_port, stop_process
from tests.synthetic import ROOT


@contextmanager
def app_server(database_url: str, *, output: IO[Any] | int = subprocess.DEVNULL,
               start_timeout_s: float = 60) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The app on ``database_url`` (no demo build, no RPC), headless; yields (base URL, server process)
    once its health check answers, and stops it afterwards. Its output goes to ``output``."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "BUILD_DEMO": "0"}
    env.pop("RPC_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT if output is not subprocess.DEVNULL else output)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("streamlit did not start" + (f" (see {output.name})" if hasattr(output, "name") else "")) from None
                time.sleep(0.3)
        yield base, proc
    finally:
        stop_process(proc, timeout=30)
