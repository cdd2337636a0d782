"""Add segment rules, strategies, case history and assignment columns

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 17:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OPEN_STATUSES = "'new', 'assigned', 'in_progress', 'promised', 'paused', 'disputed'"
EVENT_KINDS = "'segment_changed', 'assigned', 'reassigned', 'switched', 'recalled'"

# Province names are compared without their administrative suffix, so a collector
# who serves "广东" gets the cases of "广东省" and "Texas" matches "texas".
PROVINCE_KEY_FUNCTION = r"""
CREATE FUNCTION recova_province_key(province text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT AS $$
    SELECT regexp_replace(
        lower(btrim(province)),
        '(壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区|省|市)$',
        ''
    )
$$
"""

# Day offset of a strategy's next step on or after `elapsed` days since assignment.
# A step with `every_days` repeats from its `day` on; NULL when no step is left.
NEXT_STEP_DAY_FUNCTION = """
CREATE FUNCTION recova_next_step_day(steps jsonb, elapsed integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT min(
        CASE
            WHEN elapsed <= (step->>'day')::int THEN (step->>'day')::int
            WHEN coalesce((step->>'every_days')::int, 0) > 0 THEN
                (step->>'day')::int
                + ((elapsed - (step->>'day')::int + (step->>'every_days')::int - 1)
                   / (step->>'every_days')::int) * (step->>'every_days')::int
        END
    )
    FROM jsonb_array_elements(steps) AS step
$$
"""


def upgrade() -> None:
    op.add_column(
        "cases",
        sa.Column("assigned_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
    )
    op.add_column(
        "cases", sa.Column("unassigned_reason", sa.String(length=32), nullable=True)
    )
    op.create_index(
        "ix_cases_open_load",
        "cases",
        ["collector_id", "segment"],
        unique=False,
        postgresql_include=["balance"],
        postgresql_where=sa.text(
            f"collector_id IS NOT NULL AND status IN ({OPEN_STATUSES})"
        ),
    )

    op.create_table(
        "segment_rule_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rules", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_segment_rule_sets_created_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_rule_sets")),
        sa.UniqueConstraint("version", name=op.f("uq_segment_rule_sets_version")),
    )

    op.create_table(
        "strategies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("min_skill", sa.SmallInteger(), nullable=False),
        sa.Column("first_contact_hours", sa.Integer(), nullable=False),
        sa.Column("steps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "min_skill BETWEEN 1 AND 3", name=op.f("ck_strategies_min_skill")
        ),
        sa.CheckConstraint(
            "first_contact_hours > 0", name=op.f("ck_strategies_first_contact_hours")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_strategies_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategies")),
        sa.UniqueConstraint("code", "version", name=op.f("uq_strategies_code_version")),
    )

    op.create_table(
        "case_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("from_collector_id", sa.Integer(), nullable=True),
        sa.Column("to_collector_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            f"kind IN ({EVENT_KINDS})", name=op.f("ck_case_events_kind")
        ),
        # No foreign keys: the CaseEvent model says why.
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    op.create_index(
        op.f("ix_case_events_case_id_at"),
        "case_events",
        ["case_id", "at"],
        unique=False,
    )

    op.execute(PROVINCE_KEY_FUNCTION)
    op.execute(NEXT_STEP_DAY_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION recova_next_step_day(jsonb, integer)")
    op.execute("DROP FUNCTION recova_province_key(text)")
    op.drop_index(op.f("ix_case_events_case_id_at"), table_name="case_events")
    op.drop_table("case_events")
    op.drop_table("strategies")
    op.drop_table("segment_rule_sets")
    op.drop_index("ix_cases_open_load", table_name="cases")
    op.drop_column("cases", "unassigned_reason")
    op.drop_column("cases", "assigned_at")
