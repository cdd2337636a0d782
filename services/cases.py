"""Case list and case view, scoped and masked by the caller's role."""

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from db.models import OPEN_STATUSES, Batch, Case, Contact, Creditor, Debtor, User
from recova.errors import NotFound, PermissionDenied
from services.actors import CASE_READERS, Actor, require_role
from services.masking import mask_id_number, mask_phone

# Counting stops here; past it the page shows "more than 10,000".
COUNT_LIMIT = 10_000


class CaseFilter(BaseModel):
    creditor_id: int | None = None
    batch_id: int | None = None
    status: str | None = None
    bucket: str | None = None
    province: str | None = None
    search: str | None = None
    open_only: bool = False
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=50, ge=1, le=500)


@dataclass
class CasePage:
    rows: list[dict[str, Any]]
    total: int
    total_capped: bool


def _scoped(query: Select, actor: Actor) -> Select:
    """Limit a case query to what the actor may see."""
    require_role(actor, *CASE_READERS)
    if actor.role == "collector":
        return query.where(Case.collector_id == actor.id)
    if actor.role == "team_lead":
        return query.where(Case.team_id == actor.team_id)
    return query


def _search_condition(term: str):
    term = term.strip()
    digits = re.sub(r"\D", "", term)
    conditions = [Case.case_no == term, Debtor.name == term]
    if len(term) >= 2:
        conditions.append(Case.case_no.startswith(term, autoescape=True))
        conditions.append(Debtor.name.startswith(term, autoescape=True))
    if len(digits) >= 7 and len(digits) == len(re.sub(r"[\s()+-]", "", term)):
        conditions.append(Debtor.phones.contains([digits]))
        if digits.startswith("86") and len(digits) == 13:
            conditions.append(Debtor.phones.contains([digits[2:]]))
    return or_(*conditions)


def list_cases(*, session: Session, actor: Actor, filters: CaseFilter) -> CasePage:
    query = (
        select(
            Case.id,
            Case.case_no,
            Creditor.name.label("creditor"),
            Batch.name.label("batch"),
            Debtor.name,
            Debtor.phones,
            Debtor.province,
            Case.product,
            Case.total_due,
            Case.balance,
            Case.overdue_since,
            Case.bucket,
            Case.status,
            User.username.label("collector"),
        )
        .join(Debtor, Debtor.id == Case.debtor_id)
        .join(Creditor, Creditor.id == Case.creditor_id)
        .join(Batch, Batch.id == Case.batch_id)
        .outerjoin(User, User.id == Case.collector_id)
    )
    query = _scoped(query, actor)
    if filters.creditor_id:
        query = query.where(Case.creditor_id == filters.creditor_id)
    if filters.batch_id:
        query = query.where(Case.batch_id == filters.batch_id)
    if filters.status:
        query = query.where(Case.status == filters.status)
    if filters.open_only:
        query = query.where(Case.status.in_(OPEN_STATUSES))
    if filters.bucket:
        query = query.where(Case.bucket == filters.bucket)
    if filters.province:
        query = query.where(Debtor.province == filters.province)
    if filters.search and filters.search.strip():
        query = query.where(_search_condition(filters.search))

    counted = (
        session.scalar(
            select(func.count()).select_from(
                query.with_only_columns(Case.id).limit(COUNT_LIMIT + 1).subquery()
            )
        )
        or 0
    )
    offset = (filters.page - 1) * filters.page_size
    rows = session.execute(
        query.order_by(Case.id.desc()).offset(offset).limit(filters.page_size)
    ).mappings()
    result = []
    for row in rows:
        item = dict(row)
        phones = item.pop("phones") or []
        phone = phones[0] if phones else None
        item["phone"] = mask_phone(phone) if actor.sees_masked_pii else phone
        result.append(item)
    return CasePage(
        rows=result, total=min(counted, COUNT_LIMIT), total_capped=counted > COUNT_LIMIT
    )


@dataclass
class CaseView:
    id: int
    case_no: str
    creditor: str
    batch: str
    batch_id: int
    name: str | None
    id_number: str | None
    phones: list[str]
    email: str | None
    address: str | None
    province: str | None
    city: str | None
    customer_type: str
    product: str | None
    contract_no: str | None
    principal: Decimal | None
    interest: Decimal | None
    fees: Decimal | None
    total_due: Decimal
    balance: Decimal
    overdue_since: date
    dpd_at_placement: int
    placement_date: date
    recall_date: date | None
    bucket: str | None
    status: str
    segment: str | None
    collector: str | None
    flags: list[str]
    note: str | None
    extra: dict[str, Any]
    contacts: list[dict[str, Any]]
    version: int
    masked: bool

    def as_json(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        for key in ("principal", "interest", "fees", "total_due", "balance"):
            value = data[key]
            data[key] = None if value is None else f"{value:.2f}"
        for key in ("overdue_since", "placement_date", "recall_date"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        data["phone"] = self.phones[0] if self.phones else None
        return data


def load_view(session: Session, case: Case, actor: Actor, masked: bool) -> CaseView:
    debtor = case.debtor
    contacts = session.scalars(
        select(Contact).where(Contact.debtor_id == debtor.id).order_by(Contact.id)
    ).all()
    collector = session.get(User, case.collector_id) if case.collector_id else None
    phones = list(debtor.phones or [])
    return CaseView(
        id=case.id,
        case_no=case.case_no,
        creditor=case.creditor.name,
        batch=case.batch.name,
        batch_id=case.batch_id,
        name=debtor.name,
        id_number=mask_id_number(debtor.id_number) if masked else debtor.id_number,
        phones=[mask_phone(p) or "" for p in phones] if masked else phones,
        email=debtor.email,
        address=debtor.address,
        province=debtor.province,
        city=debtor.city,
        customer_type=debtor.customer_type,
        product=case.product,
        contract_no=case.contract_no,
        principal=case.principal,
        interest=case.interest,
        fees=case.fees,
        total_due=case.total_due,
        balance=case.balance,
        overdue_since=case.overdue_since,
        dpd_at_placement=case.dpd_at_placement,
        placement_date=case.placement_date,
        recall_date=case.recall_date,
        bucket=case.bucket,
        status=case.status,
        segment=case.segment,
        collector=collector.username if collector else None,
        flags=list(case.flags or []),
        note=case.note,
        extra=dict(case.extra or {}),
        contacts=[
            {
                "name": contact.name,
                "relation": contact.relation,
                "phone": mask_phone(contact.phone) if masked else contact.phone,
            }
            for contact in contacts
        ],
        version=case.version,
        masked=masked,
    )


def check_access(case: Case, actor: Actor) -> None:
    """Raise PermissionDenied unless `actor` may read `case`: a collector only their
    own cases, a team lead only their team's."""
    require_role(actor, *CASE_READERS)
    if actor.role == "collector" and case.collector_id != actor.id:
        raise PermissionDenied("case_not_yours", case_no=case.case_no)
    if actor.role == "team_lead" and case.team_id != actor.team_id:
        raise PermissionDenied("case_not_your_team", case_no=case.case_no)


def get_case(*, session: Session, actor: Actor, case_id: int) -> CaseView:
    """Return one case with its debtor and contacts; PII is masked for collectors."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    check_access(case, actor)
    return load_view(session, case, actor, masked=actor.sees_masked_pii)


def find_case(
    *, session: Session, actor: Actor, creditor: str, case_no: str
) -> CaseView:
    """Return a case by creditor name and case number."""
    case = session.scalar(
        select(Case)
        .join(Creditor, Creditor.id == Case.creditor_id)
        .where(Creditor.name == creditor.strip(), Case.case_no == case_no.strip())
    )
    if case is None:
        raise NotFound("case_no_not_found", case_no=case_no, creditor=creditor)
    check_access(case, actor)
    return load_view(session, case, actor, masked=actor.sees_masked_pii)


def list_creditors(*, session: Session, actor: Actor) -> list[Creditor]:
    require_role(actor, *CASE_READERS)
    return list(session.scalars(select(Creditor).order_by(Creditor.name)))


def list_provinces(*, session: Session, actor: Actor) -> list[str]:
    require_role(actor, *CASE_READERS)
    return list(
        session.scalars(
            select(Debtor.province)
            .where(Debtor.province.is_not(None))
            .distinct()
            .order_by(Debtor.province)
        )
    )
