"""Case file sections, access by role, unmasking with a reason, attachments."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from db.models import AuditEntry, CaseEvent, Contact, Debtor
from db.models_followup import CaseAttachment, ContactAttempt, Promise
from recova.errors import InvalidInput, NotFound, PermissionDenied
from recova.settings import get_settings
from services.attachments import MAX_ATTACHMENT_BYTES, add_attachment, get_attachment
from services.case_file import case_file, next_step, unmask
from services.segments import StrategyStep
from tests.case_factories import make_batch, make_case, make_collector
from tests.factories import make_user
from tests.services.test_queue_support import seed_followup

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def world(session):
    """Two collectors of team North, one of South, and a case of ann's."""
    seed_followup(session)
    ann = make_collector(session, "ann", team="North")
    bob = make_collector(session, "bob", team="North")
    sue = make_collector(session, "sue", team="South")
    batch = make_batch(session)
    case = make_case(session, batch, "CF1")
    debtor = session.get(Debtor, case.debtor_id)
    debtor.id_number = "110105199001011234"
    debtor.phones = ["13812345678", "13900001111"]
    debtor.address = "广东省深圳市南山区科技园路 8 号"
    session.add(
        Contact(
            debtor_id=debtor.id, name="Li Mei", relation="sister", phone="13700002222"
        )
    )
    case.status = "in_progress"
    case.collector_id = ann.id
    case.team_id = ann.team_id
    case.strategy = "standard"
    case.assigned_at = datetime.now(ZONE) - timedelta(days=3)
    session.flush()
    session.add(
        ContactAttempt(
            case_id=case.id,
            debtor_id=debtor.id,
            collector_id=ann.id,
            at=datetime.now(ZONE) - timedelta(days=1),
            channel="phone",
            target="debtor",
            target_address="13812345678",
            result_code="no_answer",
            connected=False,
            right_party=False,
            note="rang 6 times",
        )
    )
    session.add(
        Promise(
            case_id=case.id,
            collector_id=ann.id,
            amount=Decimal("300.00"),
            due_on=datetime.now(ZONE).date() + timedelta(days=3),
        )
    )
    session.add(
        CaseEvent(
            case_id=case.id,
            actor_name="max",
            kind="assigned",
            to_collector_id=ann.id,
            rule="manual",
        )
    )
    session.commit()
    return {"ann": ann, "bob": bob, "sue": sue, "case": case}


def test_collector_reads_own_case_masked(session, world):
    file = case_file(session=session, actor=world["ann"], case_id=world["case"].id)

    assert file.masked
    assert file.case.id_number == "110105********1234"
    assert file.case.phones == ["138****5678", "139****1111"]
    assert file.case.address == "广东省深圳市****"
    assert file.case.contacts[0]["phone"] == "137****2222"
    assert file.attempts[0]["target_address"] == "138****5678"
    assert file.attempts[0]["note"] == "rang 6 times"
    assert file.promises[0]["amount"] == Decimal("300.00")
    assert file.history[0]["kind"] == "assigned"
    assert file.follow_up["status"] == "in_progress"
    assert file.can_write


def test_next_step_of_strategy(session, world):
    file = case_file(session=session, actor=world["ann"], case_id=world["case"].id)

    # Standard: phone every 2 days from day 2, so day 4 follows an attempt on day 2.
    assert file.next_step.channel == "phone"
    assert file.next_step.day == 4


def test_next_step_skips_attempted_day():
    assigned = datetime(2026, 12, 1, 10, tzinfo=ZONE)
    steps = [StrategyStep(day=0, channel="phone"), StrategyStep(day=1, channel="sms")]

    first = next_step(steps, assigned, None, assigned)
    after_call = next_step(steps, assigned, assigned, assigned)

    assert (first[0].channel, first[1]) == ("phone", 0)
    assert (after_call[0].channel, after_call[1]) == ("sms", 1)


def test_collector_refused_other_case(session, world):
    with pytest.raises(PermissionDenied):
        case_file(session=session, actor=world["bob"], case_id=world["case"].id)


def test_team_lead_reads_own_team_only(session, world):
    north = make_user(session, "nina", role="team_lead", team="North")
    south = make_user(session, "sam", role="team_lead", team="South")

    file = case_file(session=session, actor=north, case_id=world["case"].id)

    assert not file.masked
    assert file.case.id_number == "110105199001011234"
    with pytest.raises(PermissionDenied):
        case_file(session=session, actor=south, case_id=world["case"].id)


def test_auditor_reads_without_writing(session, world):
    auditor = make_user(session, "aud", role="auditor")

    file = case_file(session=session, actor=auditor, case_id=world["case"].id)

    assert not file.can_write


def test_missing_case_not_found(session, world):
    with pytest.raises(NotFound):
        case_file(session=session, actor=world["ann"], case_id=999_999)


def test_unmask_needs_reason(session, world):
    with pytest.raises(InvalidInput):
        unmask(
            session=session,
            actor=world["ann"],
            case_id=world["case"].id,
            field="id_number",
            reason="  ok ",
        )
    assert (
        session.scalars(
            select(AuditEntry).where(AuditEntry.action == "pii_unmasked")
        ).all()
        == []
    )


def test_unmask_returns_value_and_audits(session, world):
    case_id = world["case"].id

    number = unmask(
        session=session,
        actor=world["ann"],
        case_id=case_id,
        field="id_number",
        reason="debtor asked to verify identity",
    )
    phones = unmask(
        session=session,
        actor=world["ann"],
        case_id=case_id,
        field="phones",
        reason="number on file is wrong",
    )
    contacts = unmask(
        session=session,
        actor=world["ann"],
        case_id=case_id,
        field="contacts",
        reason="debtor unreachable for 10 days",
    )

    assert number == "110105199001011234"
    assert phones == ["13812345678", "13900001111"]
    assert contacts == [
        {"name": "Li Mei", "relation": "sister", "phone": "13700002222"}
    ]
    entries = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "pii_unmasked")
        .order_by(AuditEntry.id)
    ).all()
    assert [e.detail["field"] for e in entries] == ["id_number", "phones", "contacts"]
    assert entries[0].detail["reason"] == "debtor asked to verify identity"
    assert entries[0].actor_name == "ann"


def test_unmask_other_collectors_case_refused(session, world):
    with pytest.raises(PermissionDenied):
        unmask(
            session=session,
            actor=world["bob"],
            case_id=world["case"].id,
            field="phones",
            reason="just curious here",
        )


def test_attachment_round_trip_in_database(session, world):
    content = "合同扫描件".encode() * 100

    row = add_attachment(
        session=session,
        actor=world["ann"],
        case_id=world["case"].id,
        file_name="../../contract.pdf",
        content=content,
        content_type="application/pdf",
    )
    name, data = get_attachment(
        session=session, actor=world["ann"], attachment_id=row.id
    )

    assert name == "contract.pdf"
    assert data == content
    stored = session.get(CaseAttachment, row.id)
    assert stored.stored_path is None
    file = case_file(session=session, actor=world["ann"], case_id=world["case"].id)
    assert [a.file_name for a in file.attachments] == ["contract.pdf"]
    actions = session.scalars(
        select(AuditEntry.action).where(AuditEntry.entity == "case_attachment")
    ).all()
    assert sorted(actions) == ["attachment_added", "attachment_downloaded"]


def test_attachment_round_trip_in_folder(session, world, tmp_path, monkeypatch):
    monkeypatch.setenv("RECOVA_ATTACHMENT_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        row = add_attachment(
            session=session,
            actor=world["ann"],
            case_id=world["case"].id,
            file_name="id card.jpg",
            content=b"\xff\xd8 image bytes",
        )
        _, data = get_attachment(
            session=session, actor=world["ann"], attachment_id=row.id
        )
    finally:
        get_settings.cache_clear()

    stored = session.get(CaseAttachment, row.id)
    assert stored.content is None
    assert stored.stored_path.startswith(str(tmp_path))
    assert data == b"\xff\xd8 image bytes"


def test_attachment_over_limit_rejected(session, world):
    with pytest.raises(InvalidInput) as raised:
        add_attachment(
            session=session,
            actor=world["ann"],
            case_id=world["case"].id,
            file_name="big.bin",
            content=b"0" * (MAX_ATTACHMENT_BYTES + 1),
        )
    assert raised.value.code == "attachment_too_large"


def test_attachment_download_refused_to_other_collector(session, world):
    row = add_attachment(
        session=session,
        actor=world["ann"],
        case_id=world["case"].id,
        file_name="note.txt",
        content=b"hello",
    )
    with pytest.raises(PermissionDenied):
        get_attachment(session=session, actor=world["bob"], attachment_id=row.id)


def test_auditor_cannot_upload(session, world):
    auditor = make_user(session, "aud", role="auditor")
    with pytest.raises(PermissionDenied):
        add_attachment(
            session=session,
            actor=auditor,
            case_id=world["case"].id,
            file_name="x.txt",
            content=b"x",
        )
