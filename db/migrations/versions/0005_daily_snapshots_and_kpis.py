"""Add the daily case history, the KPI aggregates and the indexes KPIs read by day

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:40:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=14, scale=2)
TOTAL = sa.Numeric(precision=18, scale=2)
TIMESTAMP = postgresql.TIMESTAMP(timezone=True)


def _key_columns() -> list[sa.Column]:
    return [
        sa.Column("dim", sa.String(length=12), nullable=False),
        _scope_column(),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
    ]


def _scope_column() -> sa.Column:
    # '' for the whole portfolio, or 'collector:ID' / 'team:ID' for one owner's sums.
    return sa.Column(
        "scope", sa.String(length=24), server_default=sa.text("''"), nullable=False
    )


def upgrade() -> None:
    _create_history()
    _create_aggregates()
    _create_read_indexes()


def _create_history() -> None:
    op.create_table(
        "case_snapshots",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.String(length=4), nullable=True),
        sa.Column("balance", MONEY, nullable=False),
        sa.Column("collector_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("segment", sa.String(length=32), nullable=True),
        sa.Column("risk_grade", sa.String(length=1), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_snapshots")),
    )
    op.create_index(
        "ix_case_snapshots_case_id_valid_from",
        "case_snapshots",
        ["case_id", "valid_from"],
        unique=True,
    )
    op.create_index(
        "ux_case_snapshots_current",
        "case_snapshots",
        ["case_id"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.create_index("ix_case_snapshots_valid_from", "case_snapshots", ["valid_from"])
    op.create_table(
        "snapshot_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column(
            "taken_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_snapshot_days")),
    )


def _create_aggregates() -> None:
    op.create_table(
        "kpi_refreshes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column(
            "refreshed_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_refreshes")),
    )
    counts = [
        "attempts",
        "connected",
        "rpc",
        "promises",
        "promises_due",
        "promises_kept",
        "payments",
        "closed_cases",
        "assigned_cases",
        "sla_met",
        "collector_days",
        "paying_cases",
    ]
    amounts = [
        "promised_amount",
        "promises_due_amount",
        "promises_kept_amount",
        "recovered",
    ]
    op.create_table(
        "kpi_daily",
        *_key_columns(),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in counts],
        *[sa.Column(name, TOTAL, nullable=False) for name in amounts],
        sa.Column("cycle_days", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "dim", "scope", "day", "key", name=op.f("pk_kpi_daily")
        ),
    )
    op.create_table(
        "kpi_population",
        *_key_columns(),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("open_cases", sa.Integer(), nullable=False),
        sa.Column("total_due", TOTAL, nullable=False),
        sa.Column("balance", TOTAL, nullable=False),
        sa.PrimaryKeyConstraint(
            "dim", "scope", "day", "key", name=op.f("pk_kpi_population")
        ),
    )
    op.create_table(
        "kpi_roll",
        sa.Column("dim", sa.String(length=12), nullable=False),
        _scope_column(),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("from_bucket", sa.String(length=4), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("balance", TOTAL, nullable=False),
        sa.PrimaryKeyConstraint(
            "dim",
            "scope",
            "month",
            "key",
            "from_bucket",
            "to_state",
            name=op.f("pk_kpi_roll"),
        ),
    )


def _create_read_indexes() -> None:
    # Payments, promises and assignments of a period are read by day.
    op.create_index(
        "ix_payments_paid_on",
        "payments",
        ["paid_on"],
        postgresql_include=["case_id", "amount"],
    )
    op.create_index("ix_promises_due_on", "promises", ["due_on"])
    op.create_index("ix_promises_created_at", "promises", ["created_at"])
    op.create_index(
        "ix_cases_assigned_at",
        "cases",
        ["assigned_at"],
        postgresql_where=sa.text("assigned_at IS NOT NULL"),
    )


def downgrade() -> None:
    for name, table in (
        ("ix_cases_assigned_at", "cases"),
        ("ix_promises_created_at", "promises"),
        ("ix_promises_due_on", "promises"),
        ("ix_payments_paid_on", "payments"),
    ):
        op.drop_index(name, table_name=table)
    for table in (
        "kpi_roll",
        "kpi_population",
        "kpi_daily",
        "kpi_refreshes",
        "snapshot_days",
        "case_snapshots",
    ):
        op.drop_table(table)
