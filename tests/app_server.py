"""`streamlit run app.py` as a real server on a free loopback port (the browser test and bench/scale.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tests.anvil import free_port, stop_process
from tests.synthetic import ROOT

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless chromium driven by playwright (no browser download); yields the Browser."""
    from playwright.sync_api import sync_playwright

    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is installed by scripts/test.sh"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_until_idle(page: Any, timeout_ms: float = 60_000) -> None:
    """Until the app has connected and no script run is in progress (the status widget is gone)."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout_ms)
    page.wait_for_function('!document.querySelector(\'[data-testid="stStatusWidget"]\')', timeout=timeout_ms)


#: JavaScript: the value shown on the card labelled ``arguments[0]`` (null when there is none).
CARD_JS = """label => {
  for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
    const l = m.querySelector('[data-testid="stMetricLabel"]'), v = m.querySelector('[data-testid="stMetricValue"]');
    if (l && v && l.innerText.trim() === label) return v.innerText.trim();
  }
  return null;
}"""


@contextmanager
def app_server(database_url: str, *, output: IO[Any] | int = subprocess.DEVNULL, start_timeout_s: float = 60,
               env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The app on ``database_url`` (no demo build unless ``env`` sets BUILD_DEMO, no RPC), headless;
    yields (base URL, server process) once its health check answers, and stops it afterwards. Its
    output goes to ``output``; ``env`` adds to the environment."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "BUILD_DEMO": "0", **(env or {})}
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


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def processes(module: str, ancestor: int | None = None) -> set[int]:
    """PIDs of the running ``python -m <module>`` processes descending from ``ancestor`` (default:
    this process), from Linux's /proc; other work on the machine is not counted."""
    root = os.getpid() if ancestor is None else ancestor
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            if b"-m" not in args or module.encode() not in args:
                continue
            pid = int(entry.name)
            while pid > 1 and pid != root:
                pid = _parent(pid)
        except (OSError, ValueError, IndexError):
            continue
        if pid == root:
            found.add(int(entry.name))
    return found
