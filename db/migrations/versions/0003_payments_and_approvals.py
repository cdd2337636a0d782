"""Add payments, recovery confirmations and approval of settlements and write-offs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 16:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
# NOTE: 0002 is written in parallel; this revision is re-chained after it on merge.
down_revision = "0002"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=14, scale=2)
TIMESTAMP = postgresql.TIMESTAMP(timezone=True)


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(name, TIMESTAMP, server_default=sa.text("now()"), nullable=False)


def _counter(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    _create_files_and_imports()
    _create_confirmations()
    _create_payments()
    _create_unmatched_and_overpayments()
    _create_approvals()
    _create_notifications()
    # Audit entries about a case carry its id in `detail`, so a search by case is an
    # index lookup even for entries whose entity is a request or a payment.
    op.create_index(
        "ix_audit_log_detail_case_id",
        "audit_log",
        [sa.text("(detail ->> 'case_id')")],
        postgresql_where=sa.text("detail ? 'case_id'"),
    )


def _create_files_and_imports() -> None:
    op.create_table(
        "evidence_files",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["uploaded_by"], ["users.id"], name="fk_evidence_files_uploaded_by_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_evidence_files"),
    )
    op.create_table(
        "payment_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("creditor_id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        _counter("data_rows"),
        _counter("posted"),
        _counter("unmatched"),
        _counter("duplicates"),
        _counter("rejected"),
        sa.Column("recovered", MONEY, server_default=sa.text("0"), nullable=False),
        sa.Column(
            "report",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["creditor_id"],
            ["creditors.id"],
            name="fk_payment_imports_creditor_id_creditors",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_payment_imports_created_by_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_payment_imports"),
    )
    op.create_index(
        "ix_payment_imports_creditor_id_created_at",
        "payment_imports",
        ["creditor_id", "created_at"],
    )
    op.create_table(
        "payment_import_files",
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["payment_imports.id"],
            name="fk_payment_import_files_import_id_payment_imports",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", name="pk_payment_import_files"),
    )


def _create_confirmations() -> None:
    op.create_table(
        "recovery_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("creditor_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("up_to", sa.Date(), nullable=False),
        sa.Column("statement_ref", sa.String(length=100), nullable=True),
        sa.Column("payment_count", sa.Integer(), nullable=False),
        sa.Column("recovered", MONEY, nullable=False),
        sa.Column("commission_rate", sa.Numeric(precision=6, scale=4), nullable=True),
        sa.Column("commission", MONEY, nullable=True),
        sa.Column("confirmed_by", sa.Integer(), nullable=True),
        _created_at("confirmed_at"),
        sa.ForeignKeyConstraint(
            ["creditor_id"],
            ["creditors.id"],
            name="fk_recovery_confirmations_creditor_id_creditors",
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name="fk_recovery_confirmations_batch_id_batches",
        ),
        sa.ForeignKeyConstraint(
            ["confirmed_by"],
            ["users.id"],
            name="fk_recovery_confirmations_confirmed_by_users",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_confirmations"),
    )
    op.create_index(
        "ix_recovery_confirmations_batch_id", "recovery_confirmations", ["batch_id"]
    )
    op.create_table(
        "commission_bases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("confirmation_id", sa.Integer(), nullable=False),
        sa.Column("collector_id", sa.Integer(), nullable=True),
        sa.Column("payment_count", sa.Integer(), nullable=False),
        sa.Column("recovered", MONEY, nullable=False),
        sa.Column("commission", MONEY, nullable=True),
        sa.ForeignKeyConstraint(
            ["confirmation_id"],
            ["recovery_confirmations.id"],
            name="fk_commission_bases_confirmation_id_recovery_confirmations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collector_id"],
            ["users.id"],
            name="fk_commission_bases_collector_id_users",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_commission_bases"),
    )
    op.create_index(
        "ix_commission_bases_confirmation_id", "commission_bases", ["confirmation_id"]
    )
    op.create_index(
        "ix_commission_bases_collector_id", "commission_bases", ["collector_id"]
    )


def _create_payments() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("creditor_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=50), nullable=True),
        sa.Column("reverses_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("row_no", sa.Integer(), nullable=True),
        sa.Column("collector_id", sa.Integer(), nullable=True),
        sa.Column(
            "after_write_off",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
        sa.Column("status_before", sa.String(length=16), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("evidence_file_id", sa.BigInteger(), nullable=True),
        sa.Column("confirmation_id", sa.Integer(), nullable=True),
        sa.Column("posted_by", sa.Integer(), nullable=True),
        _created_at("posted_at"),
        sa.CheckConstraint(
            "source IN ('import', 'manual', 'matched')", name="ck_payments_source"
        ),
        sa.CheckConstraint(
            "(amount < 0) = (reverses_id IS NOT NULL) AND amount <> 0",
            name="ck_payments_reversal_sign",
        ),
        sa.ForeignKeyConstraint(
            ["creditor_id"], ["creditors.id"], name="fk_payments_creditor_id_creditors"
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_payments_case_id_cases"
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"], ["payments.id"], name="fk_payments_reverses_id_payments"
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["payment_imports.id"],
            name="fk_payments_import_id_payment_imports",
        ),
        sa.ForeignKeyConstraint(
            ["collector_id"], ["users.id"], name="fk_payments_collector_id_users"
        ),
        sa.ForeignKeyConstraint(
            ["evidence_file_id"],
            ["evidence_files.id"],
            name="fk_payments_evidence_file_id_evidence_files",
        ),
        sa.ForeignKeyConstraint(
            ["confirmation_id"],
            ["recovery_confirmations.id"],
            name="fk_payments_confirmation_id_recovery_confirmations",
        ),
        sa.ForeignKeyConstraint(
            ["posted_by"], ["users.id"], name="fk_payments_posted_by_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_payments"),
        sa.UniqueConstraint(
            "creditor_id",
            "transaction_id",
            name="uq_payments_creditor_id_transaction_id",
        ),
    )
    op.create_index("ix_payments_case_id", "payments", ["case_id"])
    op.create_index("ix_payments_import_id", "payments", ["import_id"])
    op.create_index(
        "ix_payments_reverses_id",
        "payments",
        ["reverses_id"],
        unique=True,
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
    )


def _create_unmatched_and_overpayments() -> None:
    op.create_table(
        "unmatched_payments",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("creditor_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("row_no", sa.Integer(), nullable=True),
        sa.Column("case_no", sa.String(length=64), nullable=True),
        sa.Column("id_number", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=50), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column(
            "status", sa.String(length=10), server_default="open", nullable=False
        ),
        sa.Column("payment_id", sa.BigInteger(), nullable=True),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "reason IN ('case_not_found', 'id_number_not_found', "
            "'id_number_ambiguous', 'no_reference')",
            name="ck_unmatched_payments_reason",
        ),
        sa.CheckConstraint(
            "status IN ('open', 'matched')", name="ck_unmatched_payments_status"
        ),
        sa.CheckConstraint("amount > 0", name="ck_unmatched_payments_amount_positive"),
        sa.ForeignKeyConstraint(
            ["creditor_id"],
            ["creditors.id"],
            name="fk_unmatched_payments_creditor_id_creditors",
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["payment_imports.id"],
            name="fk_unmatched_payments_import_id_payment_imports",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name="fk_unmatched_payments_payment_id_payments",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"],
            ["users.id"],
            name="fk_unmatched_payments_resolved_by_users",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_unmatched_payments"),
        sa.UniqueConstraint(
            "creditor_id",
            "transaction_id",
            name="uq_unmatched_payments_creditor_id_transaction_id",
        ),
    )
    op.create_index(
        "ix_unmatched_payments_creditor_id_status",
        "unmatched_payments",
        ["creditor_id", "status"],
    )
    op.create_table(
        "overpayments",
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        _created_at("updated_at"),
        sa.CheckConstraint("amount >= 0", name="ck_overpayments_amount_not_negative"),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_overpayments_case_id_cases"
        ),
        sa.PrimaryKeyConstraint("case_id", name="pk_overpayments"),
    )


def _create_approvals() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("balance_at_request", MONEY, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("evidence_file_id", sa.BigInteger(), nullable=True),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column(
            "status", sa.String(length=10), server_default="pending", nullable=False
        ),
        sa.Column("final_level", sa.String(length=12), nullable=False),
        sa.Column("next_level", sa.String(length=12), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "kind IN ('settlement', 'write_off')", name="ck_approval_requests_kind"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'cancelled')",
            name="ck_approval_requests_status",
        ),
        sa.CheckConstraint(
            "final_level IN ('team_lead', 'manager', 'admin')",
            name="ck_approval_requests_final_level",
        ),
        sa.CheckConstraint("amount > 0", name="ck_approval_requests_amount_positive"),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_approval_requests_case_id_cases"
        ),
        sa.ForeignKeyConstraint(
            ["evidence_file_id"],
            ["evidence_files.id"],
            name="fk_approval_requests_evidence_file_id_evidence_files",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["users.id"],
            name="fk_approval_requests_requested_by_users",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_approval_requests"),
    )
    op.create_index(
        "ix_approval_requests_case_id",
        "approval_requests",
        ["case_id"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_approval_requests_status_next_level",
        "approval_requests",
        ["status", "next_level"],
    )
    op.create_index(
        "ix_approval_requests_requested_by", "approval_requests", ["requested_by"]
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.SmallInteger(), nullable=False),
        sa.Column("level", sa.String(length=12), nullable=False),
        sa.Column("approver_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("limit_at_decision", MONEY, nullable=True),
        _created_at("decided_at"),
        sa.CheckConstraint(
            "level IN ('team_lead', 'manager', 'admin')", name="ck_approvals_level"
        ),
        sa.CheckConstraint(
            "decision IN ('approved', 'rejected')", name="ck_approvals_decision"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["approval_requests.id"],
            name="fk_approvals_request_id_approval_requests",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["approver_id"], ["users.id"], name="fk_approvals_approver_id_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        sa.UniqueConstraint("request_id", "step", name="uq_approvals_request_id_step"),
        sa.UniqueConstraint(
            "request_id", "approver_id", name="uq_approvals_request_id_approver_id"
        ),
    )


def _create_notifications() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        _created_at(),
        sa.Column("read_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_notifications_user_id_users",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["approval_requests.id"],
            name="fk_notifications_request_id_approval_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
    )
    op.create_index(
        "ix_notifications_user_id_read_at", "notifications", ["user_id", "read_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_detail_case_id", table_name="audit_log")
    for table in (
        "notifications",
        "approvals",
        "approval_requests",
        "overpayments",
        "unmatched_payments",
        "payments",
        "commission_bases",
        "recovery_confirmations",
        "payment_import_files",
        "payment_imports",
        "evidence_files",
    ):
        op.drop_table(table)
