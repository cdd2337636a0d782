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
    """The original placement file, byte for byte, kept apart from the batch row.

    `content` has STORAGE EXTERNAL (set in the migration): stored uncompressed.
    """

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
        # The assignment board's load per collector and segment, read from the index.
        Index(
            "ix_cases_open_load",
            "collector_id",
            "segment",
            postgresql_include=["balance"],
            postgresql_where=text(
                "collector_id IS NOT NULL AND " + _in("status", OPEN_STATUSES)
            ),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # No foreign key: batch_id's key to batches ties the case to its creditor,
    # because the import writes the batch's creditor_id here.
    creditor_id: Mapped[int] = mapped_column(Integer)
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
    assigned_at: Mapped[datetime | None]
    # Why the last automatic assignment left this `new` case without a collector.
    unassigned_reason: Mapped[str | None] = mapped_column(String(32))
    # Outreach blockers (dispute, complaint, deceased, bankrupt, do_not_contact).
    flags: Mapped[list[str]] = mapped_column(
        ARRAY(String(32)), server_default=text("'{}'")
    )
    note: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    # Follow-up state kept on the case so the queue is one index scan (issue 4).
    paused_until: Mapped[date | None] = mapped_column(Date)
    pause_reason: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None]
    last_connected_at: Mapped[datetime | None]
    first_contact_at: Mapped[datetime | None]
    attempt_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    promise_due_on: Mapped[date | None] = mapped_column(Date)
    promise_broken_at: Mapped[datetime | None]
    switch_requested_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    debtor: Mapped[Debtor] = relationship(lazy="joined")
    creditor: Mapped[Creditor] = relationship(
        lazy="joined", primaryjoin="foreign(Case.creditor_id) == Creditor.id"
    )
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


SEGMENT_EVENT_KINDS = ("segment_changed",)
MOVE_EVENT_KINDS = ("assigned", "reassigned", "switched", "recalled")
CASE_EVENT_KINDS = SEGMENT_EVENT_KINDS + MOVE_EVENT_KINDS


class SegmentRuleSet(Base):
    """One saved version of the segment rules; the highest version is in force."""

    __tablename__ = "segment_rule_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    # Ordered list of rules: segment, strategy, match ("all" or "any"), conditions.
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Strategy(Base):
    """One saved version of a collection strategy; each code's highest version is in
    force."""

    __tablename__ = "strategies"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint("min_skill BETWEEN 1 AND 3", name="min_skill"),
        CheckConstraint("first_contact_hours > 0", name="first_contact_hours"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    # Lowest collector skill level that may hold a case on this strategy.
    min_skill: Mapped[int] = mapped_column(SmallInteger)
    first_contact_hours: Mapped[int] = mapped_column(Integer)
    # Ordered steps: day offset, channel, target, repeat interval, escalation condition.
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CaseEvent(Base):
    """A case's history: segment moves and every change of collector or status."""

    __tablename__ = "case_events"
    __table_args__ = (
        CheckConstraint(_in("kind", CASE_EVENT_KINDS), name="kind"),
        Index(None, "case_id", "at"),
    )

    # No column has a foreign key, like the audit log. Services write each row in
    # the statement that changes the case, from that UPDATE's RETURNING, and cases
    # and users are never deleted. The per-row key checks took longer than the
    # insert itself when 100,000 cases were assigned at once (bench/assign.py).
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    from_collector_id: Mapped[int | None] = mapped_column(Integer)
    to_collector_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    # Which rule made the change: auto, manual, switch, collector_paused, recall or
    # segment_rules; `detail` contains its parameters (run id, rule version, number).
    rule: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


# Payments, recovery confirmation and approval of settlements and write-offs.

PAYMENT_SOURCES = ("import", "manual", "matched")
UNMATCHED_REASONS = (
    "case_not_found",
    "id_number_not_found",
    "id_number_ambiguous",
    "no_reference",
)
UNMATCHED_STATUSES = ("open", "matched")
REQUEST_KINDS = ("settlement", "write_off")
REQUEST_STATUSES = ("pending", "approved", "rejected", "cancelled")
APPROVAL_LEVELS = ("team_lead", "manager", "admin")
APPROVAL_DECISIONS = ("approved", "rejected")


class EvidenceFile(Base):
    """A file attached as evidence to a manual payment or an approval request."""

    __tablename__ = "evidence_files"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PaymentImport(Base):
    """One payment file from one creditor, with the counts of its import report."""

    __tablename__ = "payment_imports"
    __table_args__ = (Index(None, "creditor_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    creditor_id: Mapped[int] = mapped_column(ForeignKey("creditors.id"))
    file_name: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(BigInteger)
    data_rows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    posted: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    unmatched: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    duplicates: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rejected: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Sum of the posted amounts, reversals included, so it is net of reversals.
    recovered: Mapped[Decimal] = mapped_column(server_default=text("0"))
    report: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PaymentImportFile(Base):
    """The original payment file, byte for byte."""

    __tablename__ = "payment_import_files"

    import_id: Mapped[int] = mapped_column(
        ForeignKey("payment_imports.id", ondelete="CASCADE"), primary_key=True
    )
    content: Mapped[bytes] = mapped_column(LargeBinary)


class RecoveryConfirmation(Base):
    """Finance's confirmation of a placement batch's recoveries up to a date."""

    __tablename__ = "recovery_confirmations"
    __table_args__ = (Index(None, "batch_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    creditor_id: Mapped[int] = mapped_column(ForeignKey("creditors.id"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    up_to: Mapped[date] = mapped_column(Date)
    # The creditor's statement (对账单) reference the amounts were checked against.
    statement_ref: Mapped[str | None] = mapped_column(String(100))
    payment_count: Mapped[int] = mapped_column(Integer)
    recovered: Mapped[Decimal]
    commission_rate: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))
    commission: Mapped[Decimal | None]
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CommissionBasis(Base):
    """A collector's share of one recovery confirmation: the base of commission.

    `commission` is the creditor's commission on these recoveries at the batch's
    rate, rounded per collector, so the lines can differ from the confirmation's
    total by a few cents.
    """

    __tablename__ = "commission_bases"
    __table_args__ = (Index(None, "confirmation_id"), Index(None, "collector_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    confirmation_id: Mapped[int] = mapped_column(
        ForeignKey("recovery_confirmations.id", ondelete="CASCADE")
    )
    # The case's collector when the payment was posted, or null for an unassigned case.
    collector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    payment_count: Mapped[int] = mapped_column(Integer)
    recovered: Mapped[Decimal]
    commission: Mapped[Decimal | None]


class Payment(Base):
    """A posted payment; a negative amount reverses the payment in `reverses_id`."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("creditor_id", "transaction_id"),
        CheckConstraint(_in("source", PAYMENT_SOURCES), name="source"),
        CheckConstraint(
            "(amount < 0) = (reverses_id IS NOT NULL) AND amount <> 0",
            name="reversal_sign",
        ),
        Index(None, "case_id"),
        Index(None, "import_id"),
        # A unique index, so a payment is reversed at most once.
        Index(
            None,
            "reverses_id",
            unique=True,
            postgresql_where=text("reverses_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    creditor_id: Mapped[int] = mapped_column(ForeignKey("creditors.id"))
    transaction_id: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"))
    amount: Mapped[Decimal]
    paid_on: Mapped[date] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(50))
    reverses_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("payments.id")
    )
    source: Mapped[str] = mapped_column(String(10))
    import_id: Mapped[int | None] = mapped_column(ForeignKey("payment_imports.id"))
    row_no: Mapped[int | None] = mapped_column(Integer)
    collector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Money that arrived after the case was written off is a recovery only.
    after_write_off: Mapped[bool] = mapped_column(server_default=text("false"))
    # The case's status before this payment closed it, restored by its reversal.
    status_before: Mapped[str | None] = mapped_column(String(16))
    evidence: Mapped[str | None] = mapped_column(Text)
    evidence_file_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("evidence_files.id")
    )
    confirmation_id: Mapped[int | None] = mapped_column(
        ForeignKey("recovery_confirmations.id")
    )
    posted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    posted_at: Mapped[datetime] = mapped_column(server_default=func.now())


class UnmatchedPayment(Base):
    """A payment that matched no case, kept for finance to match by hand."""

    __tablename__ = "unmatched_payments"
    __table_args__ = (
        UniqueConstraint("creditor_id", "transaction_id"),
        CheckConstraint(_in("reason", UNMATCHED_REASONS), name="reason"),
        CheckConstraint(_in("status", UNMATCHED_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index(None, "creditor_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    creditor_id: Mapped[int] = mapped_column(ForeignKey("creditors.id"))
    transaction_id: Mapped[str] = mapped_column(String(64))
    import_id: Mapped[int | None] = mapped_column(ForeignKey("payment_imports.id"))
    row_no: Mapped[int | None] = mapped_column(Integer)
    case_no: Mapped[str | None] = mapped_column(String(64))
    id_number: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    amount: Mapped[Decimal]
    paid_on: Mapped[date] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(50))
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(10), server_default="open")
    payment_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("payments.id")
    )
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Overpayment(Base):
    """Money received above a case's balance, to be refunded to the debtor."""

    __tablename__ = "overpayments"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_not_negative"),)

    case_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("cases.id"), primary_key=True
    )
    amount: Mapped[Decimal]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApprovalRequest(Base):
    """A settlement (discount off the balance) or write-off awaiting approval.

    `amount` is the discount or the balance written off. `final_level` is the level
    whose approval completes the request. It is raised, never lowered, when the
    authority limits change while the request waits.
    """

    __tablename__ = "approval_requests"
    __table_args__ = (
        CheckConstraint(_in("kind", REQUEST_KINDS), name="kind"),
        CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),
        CheckConstraint(_in("final_level", APPROVAL_LEVELS), name="final_level"),
        CheckConstraint("amount > 0", name="amount_positive"),
        # One open request per case, so a double submit cannot file two.
        Index(
            None,
            "case_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        Index(None, "status", "next_level"),
        Index(None, "requested_by"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(12))
    amount: Mapped[Decimal]
    balance_at_request: Mapped[Decimal]
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str | None] = mapped_column(Text)
    evidence_file_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("evidence_files.id")
    )
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(10), server_default="pending")
    final_level: Mapped[str] = mapped_column(String(12))
    # The level whose decision is awaited; null once the request is decided.
    next_level: Mapped[str | None] = mapped_column(String(12))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Approval(Base):
    """One approver's decision on one step of an approval request."""

    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint("request_id", "step"),
        UniqueConstraint("request_id", "approver_id"),
        CheckConstraint(_in("level", APPROVAL_LEVELS), name="level"),
        CheckConstraint(_in("decision", APPROVAL_DECISIONS), name="decision"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("approval_requests.id", ondelete="CASCADE")
    )
    step: Mapped[int] = mapped_column(SmallInteger)
    level: Mapped[str] = mapped_column(String(12))
    approver_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    # The approver's authority limit when they decided, for the audit trail.
    limit_at_decision: Mapped[Decimal | None]
    decided_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Notification(Base):
    """An in-app message to one user, such as a request awaiting their approval."""

    __tablename__ = "notifications"
    __table_args__ = (Index(None, "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    request_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("approval_requests.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    read_at: Mapped[datetime | None]


# Audit entries about a case carry its id in `detail`, whatever their entity, and
# the audit search by case reads this index.
Index(
    "ix_audit_log_detail_case_id",
    AuditEntry.detail["case_id"].astext,
    postgresql_where=AuditEntry.detail.has_key("case_id"),
)


# Models of later issues live in their own modules; importing them here puts their
# tables in the same metadata.
from db import models_followup, models_kpi, models_queue, models_score  # noqa: E402,F401
