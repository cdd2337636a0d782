"""Models of follow-up work: contact attempts, result codes, compliance profiles,
promises, installment plans and case attachments."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base

CHANNELS = ("phone", "sms", "wechat", "email", "letter", "visit")
TARGETS = ("debtor", "contact", "third_party")
PROMISE_STATUSES = ("pending", "kept", "partly_kept", "broken", "cancelled")
PLAN_STATUSES = ("active", "completed", "broken", "cancelled")
# Flags that stop all outreach, whatever the compliance profile.
BLOCKING_FLAGS = ("dispute", "complaint", "deceased", "bankrupt", "do_not_contact")


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class ResultCode(Base):
    """An outcome of a contact attempt; the built-in ones come from DOMAIN.md."""

    __tablename__ = "result_codes"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    label_en: Mapped[str] = mapped_column(String(100))
    label_zh: Mapped[str] = mapped_column(String(100))
    connected: Mapped[bool]
    right_party: Mapped[bool]
    # The case flag that this result sets, such as `dispute`.
    sets_flag: Mapped[str | None] = mapped_column(String(32))
    builtin: Mapped[bool] = mapped_column(server_default=text("false"))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ComplianceProfile(Base):
    """Contact rules for a creditor's cases; `cn` and `us-regf` are built in."""

    __tablename__ = "compliance_profiles"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    based_on: Mapped[str | None] = mapped_column(String(32))
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB)
    builtin: Mapped[bool] = mapped_column(server_default=text("false"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ContactAttempt(Base):
    """One contact attempt (催记) on a case, as recorded by a collector."""

    __tablename__ = "contact_attempts"
    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("target", TARGETS), name="target"),
        Index(None, "case_id", "at"),
        Index(None, "debtor_id", "at"),
        Index(None, "collector_id", "at"),
        Index(None, "at"),
        Index(
            "ix_contact_attempts_phone_address",
            "target_address",
            "at",
            postgresql_where=text("channel = 'phone' AND target_address IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"))
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    collector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    team_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(12))
    target: Mapped[str] = mapped_column(String(12))
    # The number or address reached (masked on screen by role); a phone number is
    # stored as digits only, so the daily cap per number counts every spelling.
    target_address: Mapped[str | None] = mapped_column(String(200))
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    result_code: Mapped[str] = mapped_column(ForeignKey("result_codes.code"))
    # Copied from the result code at the time, so a later edit of a code does not
    # rewrite history or KPIs.
    connected: Mapped[bool]
    right_party: Mapped[bool]
    note: Mapped[str | None] = mapped_column(Text)
    next_follow_up_at: Mapped[datetime | None]
    recording_ref: Mapped[str | None] = mapped_column(String(200))
    # Compliance warnings raised but not blocking, such as a missing recording.
    warnings: Mapped[list[str] | None] = mapped_column(JSONB)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class InstallmentPlan(Base):
    """An agreed installment plan (分期); its installments are promises."""

    __tablename__ = "installment_plans"
    __table_args__ = (
        CheckConstraint(_in("status", PLAN_STATUSES), name="status"),
        Index(None, "case_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"))
    total: Mapped[Decimal]
    installments: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), server_default="active")
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Promise(Base):
    """A promise to pay (PTP) an amount by a date; one installment of a plan too."""

    __tablename__ = "promises"
    __table_args__ = (
        CheckConstraint(_in("status", PROMISE_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index(None, "case_id"),
        Index(None, "status", "due_on"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"))
    plan_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("installment_plans.id")
    )
    attempt_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("contact_attempts.id")
    )
    collector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    amount: Mapped[Decimal]
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), server_default="pending")
    # Payments counted toward this promise, net of reversals.
    paid_amount: Mapped[Decimal] = mapped_column(server_default=text("0"))
    evaluated_at: Mapped[datetime | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CaseAttachment(Base):
    """A document uploaded to a case file, kept in the database or a folder."""

    __tablename__ = "case_attachments"
    __table_args__ = (Index(None, "case_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"))
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Exactly one of the two holds the file.
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    stored_path: Mapped[str | None] = mapped_column(Text)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
