"""Add contact attempts, result codes, compliance profiles, promises, plans and
attachments, and the follow-up columns of a case

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:40:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=14, scale=2)
TIMESTAMP = postgresql.TIMESTAMP(timezone=True)

# code, English, Chinese, connected, right party, flag it sets
RESULT_CODES = [
    ("promise", "Promise to pay", "承诺还款", True, True, None),
    ("plan_agreed", "Agreed to a plan", "同意分期", True, True, None),
    ("claims_paid", "Says already paid", "称已还款", True, True, None),
    ("refused", "Refused to pay", "拒绝还款", True, True, None),
    ("hardship", "Hardship, cannot pay", "困难无力还款", True, True, None),
    ("dispute", "Disputes the debt", "有异议", True, True, "dispute"),
    ("complaint", "Complaint", "投诉", True, True, "complaint"),
    ("callback", "Asked for a call back", "要求回电", True, True, None),
    ("third_party", "Third party answered", "第三方接听", True, False, None),
    ("wrong_party", "Wrong party or number", "非本人/打错", True, False, None),
    ("deceased", "Debtor deceased", "本人已故", True, False, "deceased"),
    ("no_answer", "No answer", "无人接听", False, False, None),
    ("busy", "Busy or rejected", "占线/拒接", False, False, None),
    ("voicemail", "Voicemail left", "留言", False, False, None),
    ("invalid_number", "Invalid number", "空号/停机", False, False, None),
    ("sent", "Sent (SMS, letter, email)", "已发送", False, False, None),
]

PROFILES = {
    "cn": {
        "name": "China (NIFA / CBA)",
        "rules": {
            "timezone": "Asia/Shanghai",
            "window_start": "08:00",
            "window_end": "22:00",
            "max_connected_calls_per_day": 3,
            "max_unanswered_per_number_per_day": 6,
            "max_calls_per_7_days": None,
            "quiet_days_after_conversation": None,
            "recording_required": True,
            "opt_out_required": False,
            "record_retention_years": None,
        },
    },
    "us-regf": {
        "name": "United States (Regulation F)",
        "rules": {
            "timezone": "America/New_York",
            "window_start": "08:00",
            "window_end": "21:00",
            "max_connected_calls_per_day": None,
            "max_unanswered_per_number_per_day": None,
            "max_calls_per_7_days": 7,
            "quiet_days_after_conversation": 7,
            "recording_required": False,
            "opt_out_required": True,
            "record_retention_years": 3,
        },
    },
}


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(name, TIMESTAMP, server_default=sa.text("now()"), nullable=False)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


def upgrade() -> None:
    _add_case_columns()
    _create_codes_and_profiles()
    _create_attempts()
    _create_promises()
    _create_attachments()


def _add_case_columns() -> None:
    for column in (
        sa.Column("paused_until", sa.Date(), nullable=True),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("last_connected_at", TIMESTAMP, nullable=True),
        sa.Column("first_contact_at", TIMESTAMP, nullable=True),
        sa.Column(
            "attempt_count", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("promise_due_on", sa.Date(), nullable=True),
        sa.Column("promise_broken_at", TIMESTAMP, nullable=True),
        sa.Column("switch_requested_at", TIMESTAMP, nullable=True),
    ):
        op.add_column("cases", column)


def _create_codes_and_profiles() -> None:
    codes = op.create_table(
        "result_codes",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("label_en", sa.String(length=100), nullable=False),
        sa.Column("label_zh", sa.String(length=100), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("right_party", sa.Boolean(), nullable=False),
        sa.Column("sets_flag", sa.String(length=32), nullable=True),
        sa.Column(
            "builtin", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "active", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        _created_at(),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_result_codes")),
    )
    op.bulk_insert(
        codes,
        [
            {
                "code": code,
                "label_en": en,
                "label_zh": zh,
                "connected": connected,
                "right_party": right_party,
                "sets_flag": flag,
                "builtin": True,
            }
            for code, en, zh, connected, right_party, flag in RESULT_CODES
        ],
    )
    profiles = op.create_table(
        "compliance_profiles",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("based_on", sa.String(length=32), nullable=True),
        sa.Column("rules", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "builtin", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        _created_at("updated_at"),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f("fk_compliance_profiles_updated_by_users"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_compliance_profiles")),
    )
    op.bulk_insert(
        profiles,
        [
            {
                "code": code,
                "name": body["name"],
                "rules": body["rules"],
                "builtin": True,
            }
            for code, body in PROFILES.items()
        ],
    )


def _create_attempts() -> None:
    op.create_table(
        "contact_attempts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("debtor_id", sa.BigInteger(), nullable=False),
        sa.Column("collector_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("target", sa.String(length=12), nullable=False),
        sa.Column("target_address", sa.String(length=200), nullable=True),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("result_code", sa.String(length=32), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("right_party", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("next_follow_up_at", TIMESTAMP, nullable=True),
        sa.Column("recording_ref", sa.String(length=200), nullable=True),
        sa.Column("warnings", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            _in("channel", ("phone", "sms", "wechat", "email", "letter", "visit")),
            name=op.f("ck_contact_attempts_channel"),
        ),
        sa.CheckConstraint(
            _in("target", ("debtor", "contact", "third_party")),
            name=op.f("ck_contact_attempts_target"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_contact_attempts_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["collector_id"],
            ["users.id"],
            name=op.f("fk_contact_attempts_collector_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["result_code"],
            ["result_codes.code"],
            name=op.f("fk_contact_attempts_result_code_result_codes"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_contact_attempts_created_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_attempts")),
    )
    for columns in (
        ("case_id", "at"),
        ("debtor_id", "at"),
        ("collector_id", "at"),
        ("at",),
    ):
        op.create_index(
            op.f("ix_contact_attempts_" + "_".join(columns)),
            "contact_attempts",
            list(columns),
        )
    # Unanswered attempts are capped per phone number a day, across all cases.
    op.create_index(
        "ix_contact_attempts_phone_address",
        "contact_attempts",
        ["target_address", "at"],
        postgresql_where=sa.text("channel = 'phone' AND target_address IS NOT NULL"),
    )


def _create_promises() -> None:
    op.create_table(
        "installment_plans",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("installments", sa.Integer(), nullable=False),
        sa.Column(
            "status", sa.String(length=12), server_default="active", nullable=False
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            _in("status", ("active", "completed", "broken", "cancelled")),
            name=op.f("ck_installment_plans_status"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_installment_plans_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_installment_plans_created_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installment_plans")),
    )
    op.create_index(
        op.f("ix_installment_plans_case_id"), "installment_plans", ["case_id"]
    )
    op.create_table(
        "promises",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=True),
        sa.Column("attempt_id", sa.BigInteger(), nullable=True),
        sa.Column("collector_id", sa.Integer(), nullable=True),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column(
            "status", sa.String(length=12), server_default="pending", nullable=False
        ),
        sa.Column("paid_amount", MONEY, server_default=sa.text("0"), nullable=False),
        sa.Column("evaluated_at", TIMESTAMP, nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            _in("status", ("pending", "kept", "partly_kept", "broken", "cancelled")),
            name=op.f("ck_promises_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_promises_amount_positive")),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_promises_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["installment_plans.id"],
            name=op.f("fk_promises_plan_id_installment_plans"),
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["contact_attempts.id"],
            name=op.f("fk_promises_attempt_id_contact_attempts"),
        ),
        sa.ForeignKeyConstraint(
            ["collector_id"], ["users.id"], name=op.f("fk_promises_collector_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_promises_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promises")),
    )
    op.create_index(op.f("ix_promises_case_id"), "promises", ["case_id"])
    op.create_index(op.f("ix_promises_status_due_on"), "promises", ["status", "due_on"])


def _create_attachments() -> None:
    op.create_table(
        "case_attachments",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("stored_path", sa.Text(), nullable=True),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_attachments_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by"],
            ["users.id"],
            name=op.f("fk_case_attachments_uploaded_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_attachments")),
    )
    op.create_index(
        op.f("ix_case_attachments_case_id"), "case_attachments", ["case_id"]
    )


def downgrade() -> None:
    for table in (
        "case_attachments",
        "promises",
        "installment_plans",
        "contact_attempts",
        "compliance_profiles",
        "result_codes",
    ):
        op.drop_table(table)
    for column in (
        "switch_requested_at",
        "promise_broken_at",
        "promise_due_on",
        "attempt_count",
        "first_contact_at",
        "last_connected_at",
        "last_attempt_at",
        "pause_reason",
        "paused_until",
    ):
        op.drop_column("cases", column)
