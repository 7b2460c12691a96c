"""Catch-up: this indexer against a bare eth_getLogs loop, cryo and ethereum-etl on one anvil chain.

    .venv/bin/python -m bench.catchup [--days 4] [--trades-per-day 11000] [--repeat 3] [--peers …] [--json]

1. chain: a fresh anvil (``--timestamp`` before the history), the test contracts and a ``--days``
   simulated history sent to them (``core.simulator.run_on_node``: one Multicall transaction per
   block, many events each). The node's state is dumped to ``/work/bench-data/catchup-<days>d-<trades>.json``
   and loaded from there by the next run with the same flags (``--rebuild`` to send it again).
2. peers, interleaved (round 1: every peer, round 2: every peer, …), best of ``--repeat``, each
   reading the whole range of the deployment's blocks from the same node:
   - ``indexer``: ``python -m core.indexer`` end to end into a new SQLite file (process start-up,
     fetch, decode, load, rollups), as a user runs it;
   - ``getlogs``: a bare sequential loop in this process, ``eth_getLogs`` of 2,000 blocks at a
     time for every log, each answer parsed (json) and counted, nothing else;
   - ``cryo``: PyPI ``cryo`` 0.3.2, ``cryo.freeze("logs", …, chunk_size=2000,
     max_concurrent_chunks=4)`` to parquet, in its own process;
   - ``ethereum-etl``: 2.4.2 (Python 3.9: it fails on 3.11), ``export_blocks_and_transactions``
     then ``export_receipts_and_logs`` of every transaction hash, to CSV.
   cryo and ethereum-etl are benchmark peers, not dependencies of the project: they are installed
   on first use into their own virtualenvs under ``/work/bench-data/peers`` (``--peers-dir``),
   cryo with Python 3.11, ethereum-etl with a Python 3.9 found under ``~/.pyenv/versions`` (or
   ``--python39``).

Reported per peer: wall seconds, logs/s (logs of the chain ÷ wall seconds), the CPU seconds of its
processes and of the anvil node meanwhile. Human-readable lines as it goes; with ``--json`` one
JSON object last.
"""

from __future__ import annotations

import argparse
import csv
import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import requests

from bench.scale import process_cpu_s
from tests.anvil import anvil_binary, free_port, rpc, stop_process

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("/work/bench-data")
PEERS = ("indexer", "getlogs", "cryo", "ethereum-etl")
SPAN = 2_000


def say(line: str) -> None:
    print(line, flush=True)


# ------------------------------------------------------------------ the chain

@contextmanager
def anvil(state: Path, load: bool, timestamp: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """anvil on a free port, dumping its state to ``state`` on exit (and loading it first if ``load``)."""
    port = free_port()
    args = [anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", "31337", "--silent",
            "--gas-limit", "300000000", "--timestamp", str(timestamp), "--dump-state", str(state)]
    if load:
        args += ["--load-state", str(state)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            rpc(url, "eth_chainId")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"anvil did not start (exit code {proc.poll()})") from None
            time.sleep(0.1)
    try:
        yield url, proc
    finally:
        stop_process(proc, timeout=300)  # SIGTERM: anvil writes --dump-state on the way out


def build_chain(url: str, manifest: Path, days: int, trades_per_day: int) -> None:
    from core.simulator import run_on_node

    t0 = time.perf_counter()
    last = [0.0]

    def progress(fraction: float, message: str) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            say(f"  chain: {fraction:4.0%} {message} ({time.perf_counter() - t0:,.0f} s)")

    truth = run_on_node(url, manifest, seed=1, days=days, trades_per_day=trades_per_day, progress=progress)
    say(f"chain: {days} days, {truth.total_trades:,} trades, {truth.blocks:,} blocks sent in {time.perf_counter() - t0:,.0f} s")


# ------------------------------------------------------------------ the peers

def logs_loop(url: str, first: int, last: int) -> int:
    """The bare loop: eth_getLogs of SPAN blocks at a time, every log, parsed and counted."""
    session = requests.Session()
    n = 0
    for a in range(first, last + 1, SPAN):
        b = min(last, a + SPAN - 1)
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [{"fromBlock": hex(a), "toBlock": hex(b)}]}
        n += len(json.loads(session.post(url, json=body, timeout=120).content)["result"])
    return n


def run_indexer(url: str, manifest: Path, work: Path) -> int:
    db_file = work / "indexer.db"
    out = subprocess.run([sys.executable, "-m", "core.indexer", "--rpc-url", url, "--manifest", str(manifest),
                          "--database-url", f"sqlite:///{db_file}", "--json"], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    if out.returncode:
        raise RuntimeError(f"indexer failed: {out.stderr.strip().splitlines()[-1:]}")
    return sum(json.loads(out.stdout.strip().splitlines()[-1])["stored"].values())


def peer_python(peers_dir: Path, name: str, python: str, package: str) -> Path:
    """The python of a virtualenv holding ``package`` (made on first use)."""
    env = peers_dir / name
    exe = env / "bin" / "python"
    if not (env / ".installed").exists():
        say(f"peers: installing {package} into {env} (once)")
        subprocess.run([python, "-m", "venv", str(env)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", package], check=True)
        (env / ".installed").write_text(package)
    return exe


def run_cryo(exe: Path, url: str, first: int, last: int, work: Path) -> int:
    out = work / "cryo"
    code = ("import cryo, sys; cryo.freeze('logs', blocks=[sys.argv[2] + ':' + sys.argv[3]], rpc=sys.argv[1], "
            "output_dir=sys.argv[4], chunk_size=2000, max_concurrent_chunks=4)")
    for attempt in range(3):  # cryo 0.3.2 crashed (SIGSEGV) in 1 of ~10 runs here; a crashed run is run again
        shutil.rmtree(out, ignore_errors=True)
        done = subprocess.run([str(exe), "-c", code, url, str(first), str(last + 1), str(out)], capture_output=True,
                              check=False)
        if done.returncode == 0:
            break
        say(f"  cryo: exit code {done.returncode} (attempt {attempt + 1} of 3)")
    else:
        raise RuntimeError("cryo failed 3 times")
    import polars as pl

    return sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in glob.glob(str(out / "*.parquet")))


def run_etl(exe: Path, url: str, first: int, last: int, work: Path) -> int:
    etl = [str(exe), "-m", "ethereumetl"]
    blocks, txs, hashes, logs = (work / n for n in ("blocks.csv", "transactions.csv", "hashes.txt", "logs.csv"))
    subprocess.run([*etl, "export_blocks_and_transactions", "--start-block", str(first), "--end-block", str(last),
                    "--provider-uri", url, "--blocks-output", str(blocks), "--transactions-output", str(txs)],
                   check=True, capture_output=True)
    with open(txs, newline="") as f:
        hashes.write_text("\n".join(row["hash"] for row in csv.DictReader(f)) + "\n")
    subprocess.run([*etl, "export_receipts_and_logs", "--transaction-hashes", str(hashes), "--provider-uri", url,
                    "--receipts-output", str(work / "receipts.csv"), "--logs-output", str(logs)],
                   check=True, capture_output=True)
    with open(logs, newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def children_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn: Callable[[], int], node_pid: int, chain_logs: int) -> dict[str, float]:
    """Wall and CPU seconds of one run; logs/s counts the chain's logs (the peer's own count beside).
    A cryo run that crashed is run again inside the same timing."""
    t0, c0, n0 = time.perf_counter(), children_cpu_s(), process_cpu_s(node_pid)
    logs = fn()
    s = time.perf_counter() - t0
    return {"s": round(s, 3), "logs": logs, "logs_per_s": round(chain_logs / s), "cpu_s": round(children_cpu_s() - c0, 2),
            "node_cpu_s": round(process_cpu_s(node_pid) - n0, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--days", type=int, default=4)
    p.add_argument("--trades-per-day", type=int, default=11_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    p.add_argument("--peers-dir", type=Path, default=DATA / "peers")
    p.add_argument("--python39", default=None, help="a Python 3.9 for ethereum-etl (default: ~/.pyenv/versions/3.9.*)")
    p.add_argument("--rebuild", action="store_true", help="send the history again instead of loading the saved chain")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    peers = [x for x in args.peers.split(",") if x]
    if unknown := set(peers) - set(PEERS):
        p.error(f"unknown peers {sorted(unknown)} (known: {', '.join(PEERS)})")
    from core.indexer.manifest import load_manifest
    from core.simulator import run_config

    DATA.mkdir(parents=True, exist_ok=True)
    state = DATA / f"catchup-{args.days}d-{args.trades_per_day}.json"
    manifest = DATA / f"catchup-{args.days}d-{args.trades_per_day}.manifest.json"
    cfg = run_config(1, args.days, args.trades_per_day)
    load = state.exists() and manifest.exists() and not args.rebuild
    exes: dict[str, Path] = {}
    if "cryo" in peers:
        exes["cryo"] = peer_python(args.peers_dir, "cryo", shutil.which("python3.11") or sys.executable, "cryo==0.3.2")
    if "ethereum-etl" in peers:
        py39 = args.python39 or next(iter(sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9.*/bin/python")))), None)
        if py39 is None:
            raise SystemExit("error: ethereum-etl needs a Python 3.9: pass --python39 PATH")
        exes["ethereum-etl"] = peer_python(args.peers_dir, "etl", py39, "ethereum-etl==2.4.2")
    figures: dict[str, Any] = {"days": args.days, "trades_per_day": args.trades_per_day, "cpus": os.cpu_count(),
                               "runs": {peer: [] for peer in peers}}
    with anvil(state, load, cfg.start_ts - 86_400) as (url, node):
        if load:
            say(f"chain: loaded from {state}")
        else:
            build_chain(url, manifest, args.days, args.trades_per_day)
        first = load_manifest(manifest).start_block
        last = int(str(rpc(url, "eth_blockNumber")), 16)
        figures["logs"] = logs_loop(url, first, last)
        figures["blocks"] = last - first + 1
        say(f"chain: {figures['logs']:,} logs in blocks {first:,}..{last:,}")
        runners: dict[str, Callable[[Path], int]] = {
            "indexer": lambda work: run_indexer(url, manifest, work),
            "getlogs": lambda work: logs_loop(url, first, last),
            "cryo": lambda work: run_cryo(exes["cryo"], url, first, last, work),
            "ethereum-etl": lambda work: run_etl(exes["ethereum-etl"], url, first, last, work),
        }
        for round_ in range(args.repeat):
            for peer in peers:
                with tempfile.TemporaryDirectory(dir=DATA) as work:
                    run = timed(functools.partial(runners[peer], Path(work)), node.pid, figures["logs"])
                figures["runs"][peer].append(run)
                say(f"round {round_ + 1}: {peer:<13} {run['s']:8.2f} s  {run['logs_per_s']:>8,} logs/s  "
                    f"({run['logs']:,} logs; CPU {run['cpu_s']:.1f} s, node {run['node_cpu_s']:.1f} s)")
    best = {peer: max(runs, key=lambda r: r["logs_per_s"]) for peer, runs in figures["runs"].items()}
    figures["best"] = best
    say(f"best of {args.repeat}, {figures['logs']:,} logs in {figures['blocks']:,} blocks:")
    for peer, run in best.items():
        say(f"  {peer:<13} {run['logs_per_s']:>8,} logs/s  {run['s']:8.2f} s")
    if "indexer" in best and "getlogs" in best:
        figures["indexer_vs_getlogs"] = round(best["indexer"]["logs_per_s"] / best["getlogs"]["logs_per_s"], 3)
    if "indexer" in best and "cryo" in best:
        figures["cryo_vs_indexer"] = round(best["cryo"]["logs_per_s"] / best["indexer"]["logs_per_s"], 3)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
