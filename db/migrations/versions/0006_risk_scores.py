"""Add risk scores, scorecards and trained models

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:40:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TIMESTAMP = postgresql.TIMESTAMP(timezone=True)
JSONB = postgresql.JSONB(astext_type=sa.Text())


def upgrade() -> None:
    op.create_table(
        "scorecard_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("points", JSONB, nullable=False),
        sa.Column("bands", JSONB, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", TIMESTAMP, server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_scorecard_versions_created_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scorecard_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_scorecard_versions_version")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("training_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("status", sa.String(12), server_default="challenger", nullable=False),
        sa.Column("features", JSONB, nullable=False),
        sa.Column("usable_on_cases", sa.Boolean(), nullable=False),
        sa.Column("offered", sa.Boolean(), nullable=False),
        sa.Column(
            "proposed", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("metrics", JSONB, nullable=False),
        sa.Column("training", JSONB, nullable=False),
        sa.Column("bands", JSONB, nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("library_versions", JSONB, nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", TIMESTAMP, server_default=sa.func.now(), nullable=False
        ),
        sa.Column("promoted_by", sa.Integer(), nullable=True),
        sa.Column("promoted_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "kind IN ('logistic', 'boosting')", name=op.f("ck_model_versions_kind")
        ),
        sa.CheckConstraint(
            "source IN ('history', 'file')", name=op.f("ck_model_versions_source")
        ),
        sa.CheckConstraint(
            "status IN ('challenger', 'champion', 'retired')",
            name=op.f("ck_model_versions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_model_versions_created_by_users"),
        ),
        sa.ForeignKeyConstraint(
            ["promoted_by"],
            ["users.id"],
            name=op.f("fk_model_versions_promoted_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
    )
    op.create_index(
        "ix_model_versions_one_champion",
        "model_versions",
        ["status"],
        unique=True,
        postgresql_where=sa.text("status = 'champion'"),
    )
    op.create_index(
        op.f("ix_model_versions_training_id"), "model_versions", ["training_id"]
    )
    op.create_table(
        "score_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("scorer", sa.String(32), nullable=False),
        sa.Column("counts", JSONB, nullable=False),
        sa.Column("actor_name", sa.String(64), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column(
            "finished_at", TIMESTAMP, server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_runs")),
        sa.UniqueConstraint("day", name=op.f("uq_score_runs_day")),
    )
    op.create_table(
        "case_scores",
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("scored_on", sa.Date(), nullable=False),
        sa.Column("scorer", sa.String(32), nullable=False),
        sa.Column("score", sa.Numeric(7, 2), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("factors", JSONB, nullable=False),
        sa.CheckConstraint(
            "grade IN ('A', 'B', 'C', 'D', 'E')", name=op.f("ck_case_scores_grade")
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_scores")),
    )


def downgrade() -> None:
    op.drop_table("case_scores")
    op.drop_table("score_runs")
    op.drop_index(op.f("ix_model_versions_training_id"), table_name="model_versions")
    op.drop_index("ix_model_versions_one_champion", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("scorecard_versions")
