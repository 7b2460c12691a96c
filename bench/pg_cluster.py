"""A throw-away PostgreSQL cluster for the benchmarks, alive until this process is stopped.

    .venv/bin/python -m bench.pg_cluster --dir /work/bench-data/pg --urls-out /work/bench-data/pg-urls.json scale_1m scale_10m

Starts ``tests/postgres.py``'s cluster (Debian's server binaries, 127.0.0.1 on a free port, fsync off,
shared_buffers 64 MB, run as ``postgres`` under root) with its files under ``--dir`` (keep it out of the
repository: a 10M-trade database is tens of GB), creates one empty database per name, writes
{name: URL} to ``--urls-out`` and waits. SIGTERM or Ctrl-C stops the cluster and deletes its files.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", required=True, help="parent of the cluster's files (the postgres user must traverse it)")
    p.add_argument("--urls-out", required=True)
    p.add_argument("names", nargs="+", help="databases to create")
    args = p.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(Path(args.dir).resolve())
    tempfile.tempdir = None  # re-read TMPDIR: run_postgres makes its directory under it

    from tests.postgres import run_postgres

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with run_postgres() as cluster:
        urls = {name: cluster.new_database(name) for name in args.names}
        Path(args.urls_out).write_text(json.dumps(urls, indent=1))
        print(json.dumps(urls), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping the cluster", flush=True)


if __name__ == "__main__":
    main()
