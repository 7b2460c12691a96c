"""What the database holds and whether it adds up: per deployment its checkpoint and rows per event,
and the reconciliation checks (independent SQL recomputations of what the pages show)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import db, schema


@dataclass(frozen=True)
class DeploymentStatus:
    """One indexed deployment: its chain, checkpoint block and time, and rows stored per event."""

    chain_id: int
    deployment: str
    last_block: int
    last_block_timestamp: int | None
    stored: dict[str, int]


@dataclass(frozen=True)
class Check:
    """One reconciliation: what an independent recomputation expects vs what the pages show."""

    name: str
    expected: float
    actual: float
    ok: bool
    detail: str


def stored_counts(engine: Engine, chain_id: int) -> dict[str, int]:
    """Rows stored per EVENTS.md event name (only names with at least one row)."""
    counts: Counter[str] = Counter()
    with engine.connect() as conn:
        for event, model in schema.EVENT_TABLES.items():
            t = schema.table_of(model)
            q = sa.select(sa.func.count()).select_from(t).where(t.c.chain_id == chain_id)
            if "event" in t.c:
                q = q.where(t.c.event == event)
            n = conn.execute(q).scalar_one()
            if n:
                counts[event] = int(n)
    return dict(counts)


def index_status(engine: Engine) -> list[DeploymentStatus]:
    """Every indexed deployment, with its checkpoint and stored rows."""
    t = schema.table_of(schema.Checkpoint)
    b = schema.table_of(schema.Block)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.chain_id, t.c.deployment, t.c.last_block, b.c.timestamp).select_from(
            t.outerjoin(b, (b.c.chain_id == t.c.chain_id) & (b.c.number == t.c.last_block)))).all()
    return [DeploymentStatus(int(c), str(d), int(n), None if ts is None else int(ts), stored_counts(engine, int(c)))
            for c, d, n, ts in rows]


def reconciliation(engine: Engine, chain_id: int) -> list[Check]:
    """Independent recomputations that must agree with what the pages show (exact where the chain is).

    All read one snapshot: rows and rollups commit together, so a check never compares two states."""
    with db.snapshot(engine) as conn:
        return _reconciliation(conn, chain_id)


def _close(expected: float, actual: float) -> bool:
    return abs(actual - expected) <= 1e-6 * max(1.0, abs(expected))


def _reconciliation(conn: Connection, chain_id: int) -> list[Check]:
    def one(sql: str) -> float:
        return float(conn.execute(sa.text(sql), {"c": chain_id}).scalar() or 0)

    checks: list[Check] = []
    headline = one("SELECT SUM(volume_usd) FROM stats_daily WHERE chain_id = :c")
    raw = one("SELECT SUM(notional_usd) FROM trades WHERE chain_id = :c")
    checks.append(Check("Per-market volume sums to the headline", raw, headline, _close(raw, headline),
                        "Σ daily per-market rollups vs Σ price × size of all trades"))
    debt_rollup = one("SELECT SUM(socialized_debt_usd) FROM protocol_daily WHERE chain_id = :c")
    debt_raw = one("SELECT SUM(amount_raw) FROM socialized_debt WHERE chain_id = :c") / 1e6
    debt_liq = one("SELECT SUM(socialized_usd) FROM liquidations WHERE chain_id = :c")
    checks.append(Check("Σ DebtSocialized = bad debt shown", debt_raw, debt_rollup, _close(debt_raw, debt_rollup),
                        "exact event sum vs rollups"))
    checks.append(Check("Bad debt is attributed to liquidations", debt_raw, debt_liq, _close(debt_raw, debt_liq),
                        "Σ DebtSocialized vs Σ socialized legs joined to PositionLiquidated"))
    flows = one("SELECT SUM(CASE WHEN event IN ('InsuranceFundDeposit', 'LiquidationFeeCollected') THEN amount_raw "
                "ELSE -amount_raw END) FROM insurance_fund_events WHERE chain_id = :c")
    latest = one("SELECT balance_raw FROM insurance_fund_events WHERE chain_id = :c ORDER BY block_number DESC, log_index DESC LIMIT 1")
    checks.append(Check("Insurance fund balance = its events", flows / 1e6, latest / 1e6, flows == latest,
                        "latest emitted balance vs deposits + fees − withdrawals − shortfall cover (micro-USD, exact)"))
    vault_sum = one("SELECT SUM(value_change_raw) FROM backstop_vault_events WHERE chain_id = :c AND block_number <= "
                    "(SELECT MAX(block_number) FROM backstop_vault_events WHERE chain_id = :c AND event = 'VaultPnLUpdated')")
    vault_last = one("SELECT total_vault_value_raw FROM backstop_vault_events WHERE chain_id = :c AND event = 'VaultPnLUpdated' "
                     "ORDER BY block_number DESC, log_index DESC LIMIT 1")
    if vault_last:
        checks.append(Check("Backstop vault value = its events", vault_sum / 1e6, vault_last / 1e6, vault_sum == vault_last,
                            "latest totalVaultValue vs deposits − withdrawals + PnL up to it (micro-USD, exact)"))
    tiers = one("SELECT SUM(adl_covered_usd + backstop_loss_usd + insurance_cover_usd + socialized_usd) FROM liquidations WHERE chain_id = :c")
    deficit = one("SELECT SUM(CASE WHEN remaining_equity_usd < 0 THEN -remaining_equity_usd ELSE 0 END) "
                  "FROM liquidations WHERE chain_id = :c")  # max(0, −equity), in SQL both backends share
    checks.append(Check("Waterfall tiers cover every deficit", deficit, tiers, _close(deficit, tiers),
                        "Σ ADL + backstop + insurance + socialized vs Σ max(0, −remaining equity)"))
    return checks
