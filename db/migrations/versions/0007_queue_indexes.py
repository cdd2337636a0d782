"""Add the partial indexes that read a collector's queue tier by tier

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

QUEUE_STATUS_SQL = "status IN ('assigned', 'in_progress', 'promised', 'disputed')"
QUEUED = f"collector_id IS NOT NULL AND {QUEUE_STATUS_SQL}"
BROKEN_SQL = (
    "promise_broken_at IS NOT NULL"
    " AND (last_attempt_at IS NULL OR last_attempt_at < promise_broken_at)"
)
# Columns every tier sorts by, and the columns that decide a case's tier. With them
# in the indexes, the tier scans are index-only and visit the table only for the
# rows shown.
SORT_COLUMNS = ["risk_grade", "balance", "id"]
TIER_COLUMNS = [
    "promise_broken_at",
    "last_attempt_at",
    "first_contact_at",
    "first_contact_due_at",
    "promise_due_on",
]


def upgrade() -> None:
    op.create_index(
        "ix_cases_queue_next",
        "cases",
        [
            "collector_id",
            "next_action_at",
            "risk_grade",
            sa.text("balance DESC"),
            "id",
        ],
        postgresql_include=TIER_COLUMNS,
        postgresql_where=sa.text(QUEUED),
    )
    op.create_index(
        "ix_cases_queue_broken",
        "cases",
        ["collector_id", "promise_broken_at"],
        postgresql_include=SORT_COLUMNS,
        postgresql_where=sa.text(f"{QUEUED} AND {BROKEN_SQL}"),
    )
    op.create_index(
        "ix_cases_queue_first_contact",
        "cases",
        ["collector_id", "first_contact_due_at"],
        postgresql_include=[*SORT_COLUMNS, "promise_broken_at", "last_attempt_at"],
        postgresql_where=sa.text(f"{QUEUED} AND first_contact_at IS NULL"),
    )
    op.create_index(
        "ix_cases_queue_promise",
        "cases",
        ["collector_id", "promise_due_on"],
        postgresql_include=[*SORT_COLUMNS, *TIER_COLUMNS[:4]],
        postgresql_where=sa.text(f"{QUEUED} AND promise_due_on IS NOT NULL"),
    )
    # The reminders panel: idle cases and broken promises of one collector.
    op.create_index(
        "ix_cases_reminder_idle",
        "cases",
        ["collector_id", sa.text("coalesce(last_attempt_at, assigned_at)")],
        postgresql_where=sa.text("status IN ('assigned', 'in_progress', 'promised')"),
    )
    op.create_index(
        "ix_cases_reminder_broken",
        "cases",
        ["collector_id", "promise_broken_at"],
        postgresql_where=sa.text("promise_broken_at IS NOT NULL"),
    )


def downgrade() -> None:
    for name in (
        "ix_cases_reminder_broken",
        "ix_cases_reminder_idle",
        "ix_cases_queue_promise",
        "ix_cases_queue_first_contact",
        "ix_cases_queue_broken",
        "ix_cases_queue_next",
    ):
        op.drop_index(name, table_name="cases")
