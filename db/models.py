"""Typed models of the Recova schema.

Money is NUMERIC(14,2) and Decimal; times are timestamptz in UTC. Status and role
values are text with CHECK constraints, so adding a value is a small migration.
"""

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
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base

ROLES = ("admin", "manager", "team_lead", "collector", "finance", "auditor")
CASE_STATUSES = (
    "new",
    "assigned",
    "in_progress",
    "promised",
    "paused",
    "disputed",
    "paid",
    "settled",
    "written_off",
    "recalled",
)
OPEN_STATUSES = ("new", "assigned", "in_progress", "promised", "paused", "disputed")
CUSTOMER_TYPES = ("individual", "company")


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint("skill BETWEEN 1 AND 3", name="skill"),
        CheckConstraint("capacity >= 0", name="capacity"),
        CheckConstraint(_in("language", ("zh-CN", "en")), name="language"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(20))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    # Provinces the collector serves; an empty list means every region.
    regions: Mapped[list[str]] = mapped_column(
        ARRAY(String(50)), server_default=text("'{}'")
    )
    skill: Mapped[int] = mapped_column(SmallInteger, server_default=text("1"))
    capacity: Mapped[int] = mapped_column(Integer, server_default=text("500"))
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    # A paused collector keeps a login but gets no new cases.
    is_paused: Mapped[bool] = mapped_column(server_default=text("false"))
    language: Mapped[str] = mapped_column(String(8), server_default="zh-CN")
    timezone: Mapped[str] = mapped_column(String(64), server_default="Asia/Shanghai")
    failed_logins: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    team: Mapped[Team | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}


class AuthSession(Base):
    """A server-side login session; the browser holds only the random token."""

    __tablename__ = "auth_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "user_id"),)


class Creditor(Base):
    __tablename__ = "creditors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    compliance_profile: Mapped[str] = mapped_column(String(32), server_default="cn")
    # The header mapping a user confirmed for this creditor's files:
    # {normalised header: field name or null for extra}.
    header_mapping: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Batch(Base):
    """A placement batch: one file from one creditor."""

    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("creditor_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    creditor_id: Mapped[int] = mapped_column(ForeignKey("creditors.id"))
    name: Mapped[str] = mapped_column(String(200))
    placement_date: Mapped[date] = mapped_column(Date)
    recall_date: Mapped[date | None] = mapped_column(Date)
    commission_rate: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))
    file_name: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(BigInteger)
    mode: Mapped[str] = mapped_column(String(20))
    case_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    total_due: Mapped[Decimal] = mapped_column(server_default=text("0"))
    report: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    creditor: Mapped[Creditor] = relationship(lazy="joined")


class BatchFile(Base):
    """The original placement file, byte for byte, kept apart from the batch row."""

    __tablename__ = "batch_files"

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Debtor(Base):
    __tablename__ = "debtors"
    __table_args__ = (
        CheckConstraint(_in("customer_type", CUSTOMER_TYPES), name="customer_type"),
        # One debtor per ID number and creditor, so several cases share a debtor.
        Index(
            None,
            "creditor_id",
            "id_number",
            unique=True,
            postgresql_where=text("id_number IS NOT NULL"),
        ),
        Index(None, "name"),
        Index(None, "phones", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    creditor_id: Mapped[int] = mapped_column(ForeignKey("creditors.id"))
    name: Mapped[str | None] = mapped_column(String(200))
    id_number: Mapped[str | None] = mapped_column(String(32))
    phones: Mapped[list[str]] = mapped_column(
        ARRAY(String(32)), server_default=text("'{}'")
    )
    email: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text)
    province: Mapped[str | None] = mapped_column(String(50))
    city: Mapped[str | None] = mapped_column(String(50))
    customer_type: Mapped[str] = mapped_column(String(12), server_default="individual")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Contact(Base):
    """A person linked to a debtor, reached only to locate the debtor."""

    __tablename__ = "contacts"
    __table_args__ = (Index(None, "debtor_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtors.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    relation: Mapped[str | None] = mapped_column(String(50))
    phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("creditor_id", "case_no"),
        CheckConstraint(_in("status", CASE_STATUSES), name="status"),
        CheckConstraint("total_due > 0", name="total_due_positive"),
        Index(None, "batch_id"),
        Index(None, "debtor_id"),
        Index(None, "status", "creditor_id"),
        # A collector's queue: their open cases by priority, then next action.
        Index(
            "ix_cases_queue",
            "collector_id",
            "status",
            text("priority DESC"),
            "next_action_at",
            postgresql_where=text("collector_id IS NOT NULL"),
        ),
        Index(
            "ix_cases_unassigned",
            "creditor_id",
            "id",
            postgresql_where=text("status = 'new'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    creditor_id: Mapped[int] = mapped_column(ForeignKey("creditors.id"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtors.id"))
    case_no: Mapped[str] = mapped_column(String(64))
    row_no: Mapped[int | None] = mapped_column(Integer)
    product: Mapped[str | None] = mapped_column(String(100))
    contract_no: Mapped[str | None] = mapped_column(String(100))
    principal: Mapped[Decimal | None]
    interest: Mapped[Decimal | None]
    fees: Mapped[Decimal | None]
    total_due: Mapped[Decimal]
    balance: Mapped[Decimal]
    overdue_since: Mapped[date] = mapped_column(Date)
    dpd_at_placement: Mapped[int] = mapped_column(Integer)
    placement_date: Mapped[date] = mapped_column(Date)
    recall_date: Mapped[date | None] = mapped_column(Date)
    bucket: Mapped[str | None] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16), server_default="new")
    segment: Mapped[str | None] = mapped_column(String(32))
    strategy: Mapped[str | None] = mapped_column(String(32))
    risk_score: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    risk_grade: Mapped[str | None] = mapped_column(String(1))
    priority: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    collector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    next_action_at: Mapped[datetime | None]
    first_contact_due_at: Mapped[datetime | None]
    # Outreach blockers (dispute, complaint, deceased, bankrupt, do_not_contact).
    flags: Mapped[list[str]] = mapped_column(
        ARRAY(String(32)), server_default=text("'{}'")
    )
    note: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    debtor: Mapped[Debtor] = relationship(lazy="joined")
    creditor: Mapped[Creditor] = relationship(lazy="joined")
    batch: Mapped[Batch] = relationship()

    __mapper_args__ = {"version_id_col": version}


class AuditEntry(Base):
    """Append-only record of who changed what; the database rejects edits."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index(None, "entity", "entity_id"),
        Index(None, "actor_id", "at"),
        Index(None, "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Setting(Base):
    """An admin-editable setting; each change is audited."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
