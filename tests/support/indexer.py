"""The indexer run as a user runs it (``python -m core.indexer``), and the checks of a database
against the ledger of the history that was sent to the node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core import db
from tests.history import E6, E18, History

ROOT = Path(__file__).resolve().parent.parent.parent


def index(rpc_url: str, manifest: Path, db_url: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "core.indexer", "--rpc-url", rpc_url, "--manifest", str(manifest),
         "--database-url", db_url, "--json", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def q(db_url: str, sql: str) -> Any:
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).scalar()
    engine.dispose()
    return value


def assert_matches_ledger(db_url: str, history: History) -> None:
    led = history.ledger
    view = lambda c, fn: getattr(history.dep.contract(c).functions, fn)().call()  # noqa: E731
    stored = summary_counts(db_url)
    assert stored == {k: v for k, v in led.counts.items() if v}
    assert q(db_url, "SELECT SUM(notional_usd) FROM trades") == pytest.approx(led.volume_usd, rel=1e-9)
    assert sum(int(s) for (s,) in rows(db_url, "SELECT size_raw FROM trades")) == led.size_raw
    assert q(db_url, "SELECT COUNT(DISTINCT market) FROM trades WHERE market NOT IN (SELECT market FROM markets)") == 0
    socialized = q(db_url, "SELECT COALESCE(SUM(amount_raw), 0) FROM socialized_debt")
    assert socialized == led.socialized_raw == view("BackstopVault", "totalSocializedDebt")
    latest_balance = q(db_url, "SELECT balance_raw FROM insurance_fund_events ORDER BY block_number DESC, log_index DESC LIMIT 1")
    assert latest_balance == led.insurance_balance_raw == view("InsuranceFund", "fundBalance")
    assert q(db_url, "SELECT SUM(value_change_raw) FROM backstop_vault_events") == led.vault_value_raw == view("BackstopVault", "totalVaultValue")
    legs = {
        "adl": "adl_covered_usd", "backstop": "backstop_loss_usd", "insurance": "insurance_cover_usd",
        "socialized": "socialized_usd", "fee": "fee_collected_usd",
    }
    for tier, col in legs.items():
        assert q(db_url, f"SELECT COALESCE(SUM({col}), 0) FROM liquidations") == pytest.approx(led.liq_legs_raw[tier] / E6), tier
    assert q(db_url, "SELECT COALESCE(SUM(book_filled_size), 0) FROM liquidations") == pytest.approx(led.liq_book_size_raw / E18)
    assert q(db_url, "SELECT COALESCE(SUM(adl_size), 0) FROM liquidations") == pytest.approx(led.liq_adl_size_raw / E18)
    assert q(db_url, "SELECT COALESCE(SUM(notional_usd), 0) FROM liquidations") == pytest.approx(led.liq_legs_raw["notional_e36"] / E18 / E18)
    # per liquidation: tiers sum to the deficit, max(0, −remaining equity)
    bad = q(db_url, "SELECT COUNT(*) FROM liquidations WHERE ABS(adl_covered_usd + backstop_loss_usd + insurance_cover_usd"
                    " + socialized_usd - CASE WHEN remaining_equity_usd < 0 THEN -remaining_equity_usd ELSE 0 END) > 1e-6")
    assert bad == 0
    for market, (long_raw, short_raw) in led.oi.items():
        latest = rows(db_url, "SELECT long_open_interest_raw, short_open_interest_raw FROM open_interest WHERE market = "
                              f"'{market}' ORDER BY block_number DESC, log_index DESC LIMIT 1")
        assert latest == [(str(long_raw), str(short_raw))]
    traders = rows(db_url, "SELECT maker FROM trades UNION SELECT taker FROM trades")
    assert {t for (t,) in traders} == led.traders
    symbols = {s for (s,) in rows(db_url, "SELECT symbol FROM markets")}
    assert "<b>SOL</b> *USDC*" in symbols
    assert q(db_url, "SELECT COUNT(*) FROM undecodable_logs") == 0


def rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        out = [tuple(r) for r in conn.execute(sa.text(sql))]
    engine.dispose()
    return out


def summary_counts(db_url: str) -> dict[str, int]:
    from core.read.status import stored_counts

    engine = db.make_engine(db_url)
    counts = stored_counts(engine, 31337)
    engine.dispose()
    return counts
