"""Automatic and manual assignment, switches, recalls and the board, on PostgreSQL."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import AuditEntry, Case, CaseEvent
from recova.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services import assignment, board, case_moves
from services.actors import Actor
from services.segments import local_today
from services.users import validated
from tests.case_factories import make_batch, make_case, make_collector
from tests.factories import make_user

OPERATOR = Actor.operator()


def run(session, **options):
    return assignment.auto_assign(session=session, actor=OPERATOR, **options)


def holders(session) -> dict[str, str | None]:
    """Return case number -> collector user name for every case."""
    from db.models import User

    rows = session.execute(
        select(Case.case_no, User.username).outerjoin(
            User, User.id == Case.collector_id
        )
    ).all()
    return dict(rows)


def test_region_respected(session):
    make_collector(session, "gd", regions=["广东"])
    make_collector(session, "zj", regions=["浙江"])
    batch = make_batch(session)
    make_case(session, batch, "GD1", province="广东省")
    make_case(session, batch, "ZJ1", province="浙江")
    session.commit()
    run(session)
    assert holders(session) == {"GD1": "gd", "ZJ1": "zj"}


def test_serve_all_collector_takes_any_province(session):
    make_collector(session, "all", regions=[])
    batch = make_batch(session)
    make_case(session, batch, "XJ1", province="新疆")
    make_case(session, batch, "NONE", province=None)
    session.commit()
    result = run(session)
    assert {case.case_no for case in result.assigned} == {"XJ1", "NONE"}


def test_province_no_one_serves(session):
    make_collector(session, "gd", regions=["广东"])
    batch = make_batch(session)
    case = make_case(session, batch, "XZ1", province="西藏")
    session.commit()
    result = run(session)
    assert result.assigned == []
    assert [(c.case_no, c.reason) for c in result.unassigned] == [
        ("XZ1", "no_collector_for_region")
    ]
    session.refresh(case)
    assert case.status == "new"
    assert case.collector_id is None
    assert case.unassigned_reason == "no_collector_for_region"


def test_skill_tiers_respected(session):
    make_collector(session, "junior", skill=1)
    make_collector(session, "senior", skill=2)
    make_collector(session, "expert", skill=3)
    batch = make_batch(session)
    make_case(session, batch, "SPECIAL", dpd=200)
    make_case(session, batch, "HEAVY", total_due="90000.00")
    make_case(session, batch, "LIGHT", total_due="100.00")
    session.commit()
    run(session)
    found = holders(session)
    assert found["SPECIAL"] == "expert"
    assert found["HEAVY"] in ("senior", "expert")
    assert found["LIGHT"] == "junior"


def test_no_collector_with_skill(session):
    make_collector(session, "junior", skill=1)
    batch = make_batch(session)
    make_case(session, batch, "SPECIAL", dpd=200)
    session.commit()
    result = run(session)
    assert result.unassigned[0].reason == "no_collector_with_skill"


def test_capacity_respected(session):
    make_collector(session, "small", capacity=1)
    make_collector(session, "big", capacity=2)
    batch = make_batch(session)
    for number in range(4):
        make_case(session, batch, f"C{number}", total_due=1000 + number)
    session.commit()
    result = run(session)
    counts = {c.username: c.open_cases for c in result.collectors}
    assert counts == {"small": 1, "big": 2}
    assert [c.reason for c in result.unassigned] == ["all_at_capacity"]
    assert result.unassigned[0].case_no == "C0"


def test_all_at_capacity(session):
    make_collector(session, "full", capacity=0)
    batch = make_batch(session)
    make_case(session, batch, "C1")
    session.commit()
    assert run(session).unassigned[0].reason == "all_at_capacity"


def test_no_active_collector(session):
    make_user(session, "mia", role="manager")
    batch = make_batch(session)
    make_case(session, batch, "C1")
    session.commit()
    result = run(session)
    assert result.unassigned[0].reason == "no_active_collector"


def test_paused_and_inactive_collectors_skipped(session):
    make_collector(session, "paused")
    make_collector(session, "gone")
    pause(session, "paused")
    change(session, "gone", is_active=False)
    batch = make_batch(session)
    make_case(session, batch, "C1")
    session.commit()
    result = run(session)
    assert result.unassigned[0].reason == "no_active_collector"


def test_least_open_balance_wins(session):
    make_collector(session, "ann")
    make_collector(session, "bob")
    batch = make_batch(session)
    for case_no, amount in [("A", 3000), ("B", 2000), ("C", 1500), ("D", 1000)]:
        make_case(session, batch, case_no, total_due=amount, dpd=40)
    session.commit()
    run(session)
    assert holders(session) == {"A": "ann", "B": "bob", "C": "bob", "D": "ann"}


def test_existing_load_counts(session):
    ann = make_collector(session, "ann")
    make_collector(session, "bob")
    batch = make_batch(session)
    held = make_case(session, batch, "HELD", total_due=5000, dpd=40)
    held.collector_id = ann.id
    held.status = "in_progress"
    make_case(session, batch, "NEW", total_due=100, dpd=40)
    session.commit()
    run(session)
    assert holders(session)["NEW"] == "bob"


def test_tie_goes_to_fewer_cases_then_lower_id(session):
    ann = make_collector(session, "ann")
    bob = make_collector(session, "bob")
    cid = make_collector(session, "cid")
    batch = make_batch(session)
    # ann and bob each have 1000 open, ann in two cases and bob in one. cid has none.
    for case_no, holder, amount in [
        ("A1", ann, 500),
        ("A2", ann, 500),
        ("B1", bob, 1000),
    ]:
        case = make_case(session, batch, case_no, total_due=amount, dpd=40)
        case.collector_id = holder.id
        case.status = "assigned"
    make_case(session, batch, "N1", total_due=1000, dpd=40)
    make_case(session, batch, "N2", total_due=10, dpd=40)
    session.commit()
    run(session)
    found = holders(session)
    assert found["N1"] == "cid"
    assert found["N2"] == "bob"
    assert cid.id > bob.id > ann.id


def test_same_input_same_result(session):
    for name in ("ann", "bob", "cid"):
        make_collector(session, name, regions=["广东", "浙江"], skill=3)
    batch = make_batch(session)
    for number in range(30):
        make_case(
            session,
            batch,
            f"C{number:02}",
            total_due=100 + number * 37 % 11,
            province="广东" if number % 2 else "浙江",
            dpd=number * 7,
        )
    session.commit()
    first = run(session, dry_run=True)
    second = run(session, dry_run=True)
    applied = run(session)
    assert first.fingerprint == second.fingerprint
    plan = {c.case_no: c.collector for c in first.assigned}
    assert plan == {c.case_no: c.collector for c in applied.assigned}
    assert plan == {key: value for key, value in holders(session).items()}


def test_dry_run_writes_nothing(session):
    make_collector(session, "ann")
    batch = make_batch(session)
    case = make_case(session, batch, "C1")
    session.commit()
    result = run(session, dry_run=True)
    assert result.dry_run
    assert [c.case_no for c in result.assigned] == ["C1"]
    session.refresh(case)
    assert case.status == "new"
    assert case.segment is None
    assert session.scalar(select(func.count()).select_from(CaseEvent)) == 0
    audited = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "cases_auto_assigned")
    )
    assert audited == 0


def test_apply_rejected_when_plan_changed(session):
    make_collector(session, "ann")
    make_collector(session, "bob")
    batch = make_batch(session)
    make_case(session, batch, "C1")
    make_case(session, batch, "C2")
    session.commit()
    preview = run(session, dry_run=True)
    pause(session, "bob")
    with pytest.raises(Conflict) as raised:
        run(session, expected_fingerprint=preview.fingerprint)
    assert raised.value.code == "assignment_plan_changed"
    assert set(holders(session).values()) == {None}


def test_apply_with_same_plan(session):
    make_collector(session, "ann")
    batch = make_batch(session)
    make_case(session, batch, "C1")
    session.commit()
    preview = run(session, dry_run=True)
    result = run(session, expected_fingerprint=preview.fingerprint)
    assert [c.case_no for c in result.assigned] == ["C1"]


def test_assignment_sets_case_fields(session):
    ann = make_collector(session, "ann", skill=3, team="North")
    batch = make_batch(session)
    heavy = make_case(session, batch, "HEAVY", total_due="80000.00")
    light = make_case(session, batch, "LIGHT", total_due="80.00")
    session.commit()
    run(session)
    for case in (heavy, light):
        session.refresh(case)
        assert case.status == "assigned"
        assert case.collector_id == ann.id
        assert case.team_id == ann.team_id
        assert case.version == 2
        assert case.next_action_at == case.assigned_at
    assert heavy.first_contact_due_at == heavy.assigned_at + timedelta(hours=4)
    assert light.first_contact_due_at == light.assigned_at + timedelta(hours=24)


def test_auto_assignment_recorded(session):
    ann = make_collector(session, "ann")
    batch = make_batch(session)
    case = make_case(session, batch, "C1")
    session.commit()
    result = run(session)
    event = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)).one()
    assert event.kind == "assigned"
    assert event.rule == "auto"
    assert event.to_collector_id == ann.id
    assert event.actor_name == "cli"
    assert event.detail["run"] == result.run_id
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "cases_auto_assigned")
    ).one()
    assert entry.entity_id == result.run_id
    assert entry.after == {"assigned": {"ann": 1}}


def test_creditor_filter(session):
    make_collector(session, "ann")
    make_case(session, make_batch(session, "Bank A"), "A1")
    make_case(session, make_batch(session, "Bank B"), "B1")
    session.commit()
    result = run(session, creditor="Bank A")
    assert [c.case_no for c in result.assigned] == ["A1"]
    assert holders(session)["B1"] is None


def test_unknown_creditor(session):
    with pytest.raises(NotFound):
        run(session, creditor="Nobody")


def test_collector_cannot_auto_assign(session):
    collector = make_collector(session, "ann")
    with pytest.raises(PermissionDenied):
        assignment.auto_assign(session=session, actor=collector)


def test_json_keys_qualified_when_case_numbers_repeat(session):
    make_collector(session, "ann")
    make_case(session, make_batch(session, "Bank A"), "SAME")
    make_case(session, make_batch(session, "Bank B"), "SAME")
    make_case(session, make_batch(session, "Bank B", "b2"), "ONLY")
    session.commit()
    data = run(session).as_json()
    assert set(data["assigned"]) == {"SAME@Bank A", "SAME@Bank B", "ONLY"}


def test_two_concurrent_runs(engine, session):
    for name in ("ann", "bob", "cid"):
        make_collector(session, name, capacity=30)
    batch = make_batch(session)
    for number in range(100):
        make_case(session, batch, f"C{number:03}", total_due=100 + number)
    session.commit()

    barrier = threading.Barrier(2)
    results, errors = [], []

    def worker() -> None:
        try:
            with Session(engine) as own:
                barrier.wait(timeout=30)
                results.append(assignment.auto_assign(session=own, actor=OPERATOR))
        except Exception as error:  # noqa: BLE001 (reported by the assert below)
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    first, second = (set(c.case_id for c in r.assigned) for r in results)
    assert first.isdisjoint(second)
    assert len(first | second) == 90
    per_case = session.execute(
        select(CaseEvent.case_id, func.count())
        .where(CaseEvent.kind == "assigned")
        .group_by(CaseEvent.case_id)
    ).all()
    assert len(per_case) == 90
    assert {count for _, count in per_case} == {1}
    loads = dict(
        session.execute(
            select(Case.collector_id, func.count()).group_by(Case.collector_id)
        ).all()
    )
    assert loads.pop(None) == 10
    assert sorted(loads.values()) == [30, 30, 30]


# Manual moves


def pause(session, username, paused=True):
    change(session, username, is_paused=paused)


def change(session, username, **fields):
    from services.users import find_user

    user = find_user(session, username)
    data = validated(
        board.CollectorChange, user_id=user.id, version=user.version, **fields
    )
    return board.change_collector(session=session, actor=OPERATOR, data=data)


def ref(case) -> dict:
    return {"case_id": case.id, "version": case.version}


def assign(session, cases, collector, reason="workload", actor=OPERATOR):
    data = validated(
        case_moves.ManualAssignment,
        cases=[ref(case) for case in cases],
        collector_id=collector.id,
        reason=reason,
    )
    return case_moves.assign_cases(session=session, actor=actor, data=data)


def test_manual_assignment_recorded(session):
    ann = make_collector(session, "ann")
    bob = make_collector(session, "bob")
    batch = make_batch(session)
    case = make_case(session, batch, "C1")
    session.commit()

    assign(session, [case], ann, reason="knows the debtor")
    session.refresh(case)
    assign(session, [case], bob, reason="ann on leave")
    session.refresh(case)

    assert case.collector_id == bob.id
    assert case.status == "assigned"
    events = session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
    ).all()
    assert [(e.kind, e.from_collector_id, e.to_collector_id) for e in events] == [
        ("assigned", None, ann.id),
        ("reassigned", ann.id, bob.id),
    ]
    assert [e.reason for e in events] == ["knows the debtor", "ann on leave"]
    assert {e.rule for e in events} == {"manual"}
    audited = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "cases_assigned")
    )
    assert audited == 2


def test_reassignment_keeps_progress_status(session):
    ann = make_collector(session, "ann")
    bob = make_collector(session, "bob")
    case = make_case(session, make_batch(session), "C1")
    case.collector_id = ann.id
    case.status = "promised"
    session.commit()
    assign(session, [case], bob)
    session.refresh(case)
    assert case.status == "promised"


def test_manual_assignment_needs_reason(session):
    with pytest.raises(InvalidInput) as raised:
        validated(
            case_moves.ManualAssignment,
            cases=[{"case_id": 1, "version": 1}],
            collector_id=1,
            reason="   ",
        )
    assert raised.value.params["field"] == "reason"


def test_stale_board_conflict_names_who(session):
    ann = make_collector(session, "ann")
    bob = make_collector(session, "bob")
    manager = make_user(session, "mia", role="manager")
    batch = make_batch(session)
    first = make_case(session, batch, "C1")
    second = make_case(session, batch, "C2")
    session.commit()
    seen = [ref(first), ref(second)]

    assign(session, [first], bob, actor=manager)

    data = validated(
        case_moves.ManualAssignment, cases=seen, collector_id=ann.id, reason="rebalance"
    )
    with pytest.raises(Conflict) as raised:
        case_moves.assign_cases(session=session, actor=OPERATOR, data=data)
    assert raised.value.code == "case_changed"
    assert raised.value.params["case_no"] == "C1"
    assert raised.value.params["by"] == "mia"
    assert "mia" in raised.value.message("en")
    session.refresh(second)
    assert second.collector_id is None
    assert holders(session)["C1"] == "bob"


def test_team_lead_rejected_other_team_case(session):
    make_collector(session, "north1", team="North")
    south = make_collector(session, "south1", team="South")
    north2 = make_collector(session, "north2", team="North")
    lead = make_user(session, "lead", role="team_lead", team="North")
    case = make_case(session, make_batch(session), "C1")
    session.commit()
    assign(session, [case], south)
    session.refresh(case)
    with pytest.raises(PermissionDenied) as raised:
        assign(session, [case], north2, actor=lead)
    assert raised.value.code == "case_not_your_team"


def test_team_lead_rejected_other_team_collector(session):
    north1 = make_collector(session, "north1", team="North")
    south = make_collector(session, "south1", team="South")
    lead = make_user(session, "lead", role="team_lead", team="North")
    case = make_case(session, make_batch(session), "C1")
    session.commit()
    assign(session, [case], north1)
    session.refresh(case)
    with pytest.raises(PermissionDenied) as raised:
        assign(session, [case], south, actor=lead)
    assert raised.value.code == "collector_not_your_team"


def test_team_lead_moves_inside_team(session):
    north1 = make_collector(session, "north1", team="North")
    north2 = make_collector(session, "north2", team="North")
    lead = make_user(session, "lead", role="team_lead", team="North")
    case = make_case(session, make_batch(session), "C1")
    session.commit()
    assign(session, [case], north1)
    session.refresh(case)
    assign(session, [case], north2, actor=lead)
    assert holders(session)["C1"] == "north2"


def test_team_lead_cannot_take_unassigned_case(session):
    north1 = make_collector(session, "north1", team="North")
    lead = make_user(session, "lead", role="team_lead", team="North")
    case = make_case(session, make_batch(session), "C1")
    session.commit()
    with pytest.raises(PermissionDenied):
        assign(session, [case], north1, actor=lead)


def test_assign_to_paused_collector_rejected(session):
    ann = make_collector(session, "ann")
    case = make_case(session, make_batch(session), "C1")
    session.commit()
    pause(session, "ann")
    with pytest.raises(InvalidInput) as raised:
        assign(session, [case], ann)
    assert raised.value.code == "collector_paused"


def test_assign_over_capacity_rejected(session):
    ann = make_collector(session, "ann", capacity=1)
    batch = make_batch(session)
    cases = [make_case(session, batch, "C1"), make_case(session, batch, "C2")]
    session.commit()
    with pytest.raises(InvalidInput) as raised:
        assign(session, cases, ann)
    assert raised.value.code == "collector_full"


def test_assign_closed_case_rejected(session):
    ann = make_collector(session, "ann")
    case = make_case(session, make_batch(session), "C1")
    case.status = "paid"
    session.commit()
    with pytest.raises(InvalidInput) as raised:
        assign(session, [case], ann)
    assert raised.value.code == "case_closed"


def switch(session, case, reason="debtor asked", collector=None, actor=OPERATOR):
    data = validated(
        case_moves.SwitchRequest,
        case=ref(case),
        reason=reason,
        collector_id=collector.id if collector else None,
    )
    return case_moves.switch_collector(session=session, actor=actor, data=data)


def test_switch_never_picks_previous_collector(session):
    ann = make_collector(session, "ann")
    bob = make_collector(session, "bob")
    cid = make_collector(session, "cid")
    batch = make_batch(session)
    case = make_case(session, batch, "C1", total_due=100)
    # cid carries the most open balance, so the plain rule would pick ann or bob.
    heavy = make_case(session, batch, "LOAD", total_due=9000)
    heavy.collector_id = cid.id
    heavy.status = "assigned"
    session.commit()
    assign(session, [case], ann)
    session.refresh(case)
    assign(session, [case], bob)
    session.refresh(case)

    result = switch(session, case)

    assert result.moved == [("C1", "cid")]
    session.refresh(case)
    assert case.collector_id == cid.id
    event = session.scalars(
        select(CaseEvent).where(
            CaseEvent.case_id == case.id, CaseEvent.kind == "switched"
        )
    ).one()
    assert event.from_collector_id == bob.id
    assert event.reason == "debtor asked"
    assert sorted(event.detail["excluded"]) == sorted([ann.id, bob.id])


def test_switch_to_previous_collector_rejected(session):
    ann = make_collector(session, "ann")
    bob = make_collector(session, "bob")
    case = make_case(session, make_batch(session), "C1")
    session.commit()
    assign(session, [case], ann)
    session.refresh(case)
    assign(session, [case], bob)
    session.refresh(case)
    with pytest.raises(InvalidInput) as raised:
        switch(session, case, collector=ann)
    assert raised.value.code == "switch_to_previous"


def test_switch_without_candidate(session):
    ann = make_collector(session, "ann")
    case = make_case(session, make_batch(session), "C1")
    session.commit()
    assign(session, [case], ann)
    session.refresh(case)
    with pytest.raises(InvalidInput) as raised:
        switch(session, case)
    assert raised.value.code == "switch_no_candidate"


def test_switch_of_unassigned_case_rejected(session):
    make_collector(session, "ann")
    case = make_case(session, make_batch(session), "C1")
    session.commit()
    with pytest.raises(InvalidInput) as raised:
        switch(session, case)
    assert raised.value.code == "case_not_assigned"


def test_move_open_cases_of_paused_collector(session):
    ann = make_collector(session, "ann")
    make_collector(session, "bob")
    make_collector(session, "cid")
    batch = make_batch(session)
    for number in range(4):
        make_case(session, batch, f"C{number}")
    session.commit()
    assign(session, session.scalars(select(Case).order_by(Case.id)).all(), ann)
    pause(session, "ann")

    data = validated(case_moves.MoveOpenCases, collector_id=ann.id, reason="leave")
    result = case_moves.move_open_cases(session=session, actor=OPERATOR, data=data)

    assert len(result.moved) == 4
    assert result.left == []
    assert set(holders(session).values()) == {"bob", "cid"}
    rules = session.scalars(
        select(CaseEvent.rule).where(CaseEvent.kind == "reassigned")
    ).all()
    assert rules == ["collector_paused"] * 4


def test_move_rejected_while_collector_active(session):
    ann = make_collector(session, "ann")
    session.commit()
    data = validated(case_moves.MoveOpenCases, collector_id=ann.id, reason="leave")
    with pytest.raises(InvalidInput) as raised:
        case_moves.move_open_cases(session=session, actor=OPERATOR, data=data)
    assert raised.value.code == "collector_not_paused"


def test_move_to_named_collector(session):
    ann = make_collector(session, "ann")
    bob = make_collector(session, "bob")
    make_collector(session, "cid")
    batch = make_batch(session)
    cases = [make_case(session, batch, f"C{n}") for n in range(3)]
    session.commit()
    assign(session, cases, ann)
    pause(session, "ann")
    data = validated(
        case_moves.MoveOpenCases,
        collector_id=ann.id,
        reason="leave",
        to_collector_id=bob.id,
    )
    case_moves.move_open_cases(session=session, actor=OPERATOR, data=data)
    assert set(holders(session).values()) == {"bob"}


def test_move_leaves_cases_no_one_fits(session):
    ann = make_collector(session, "ann", skill=3)
    make_collector(session, "junior", skill=1)
    batch = make_batch(session)
    special = make_case(session, batch, "SPECIAL", dpd=200)
    light = make_case(session, batch, "LIGHT", total_due=100)
    session.commit()
    run(session)
    session.refresh(special)
    assert special.collector_id == ann.id
    pause(session, "ann")
    data = validated(case_moves.MoveOpenCases, collector_id=ann.id, reason="leave")
    result = case_moves.move_open_cases(session=session, actor=OPERATOR, data=data)
    assert result.left == [("SPECIAL", "no_collector_with_skill")]
    assert holders(session)["SPECIAL"] == "ann"
    session.refresh(light)
    assert light.collector_id is not None


# Recall


def test_recall_on_recall_date(session):
    ann = make_collector(session, "ann")
    batch = make_batch(session, recall_date=local_today())
    cases = [make_case(session, batch, f"C{n}") for n in range(3)]
    cases[2].status = "paid"
    session.commit()
    assign(session, cases[:1], ann)

    result = case_moves.recall_batch(
        session=session, actor=OPERATOR, batch_id=batch.id, reason="contract ended"
    )

    assert result.recalled == ["C0", "C1"]
    statuses = dict(session.execute(select(Case.case_no, Case.status)).all())
    assert statuses == {"C0": "recalled", "C1": "recalled", "C2": "paid"}
    event = session.scalars(
        select(CaseEvent).where(
            CaseEvent.kind == "recalled", CaseEvent.case_id == cases[0].id
        )
    ).one()
    assert event.from_collector_id == ann.id
    assert event.reason == "contract ended"
    again = case_moves.recall_batch(session=session, actor=OPERATOR, batch_id=batch.id)
    assert again.recalled == []


def test_recall_before_date_rejected(session):
    batch = make_batch(session, recall_date=local_today() + timedelta(days=1))
    make_case(session, batch, "C1")
    session.commit()
    with pytest.raises(InvalidInput) as raised:
        case_moves.recall_batch(session=session, actor=OPERATOR, batch_id=batch.id)
    assert raised.value.code == "recall_not_due"


def test_recall_without_date_rejected(session):
    batch = make_batch(session)
    session.commit()
    with pytest.raises(InvalidInput) as raised:
        case_moves.recall_batch(session=session, actor=OPERATOR, batch_id=batch.id)
    assert raised.value.code == "recall_date_missing"


def test_recall_keeps_case_with_later_own_date(session):
    batch = make_batch(session, recall_date=local_today())
    make_case(session, batch, "LATER", recall_date=local_today() + timedelta(days=30))
    make_case(session, batch, "NOW")
    session.commit()
    result = case_moves.recall_batch(session=session, actor=OPERATOR, batch_id=batch.id)
    assert result.recalled == ["NOW"]


def test_recall_needs_manager(session):
    lead = make_user(session, "lead", role="team_lead", team="North")
    batch = make_batch(session, recall_date=local_today())
    session.commit()
    with pytest.raises(PermissionDenied):
        case_moves.recall_batch(session=session, actor=lead, batch_id=batch.id)


# Collectors and the board


def test_change_collector_audited(session):
    make_collector(session, "ann")
    user = change(
        session,
        "ann",
        team="East",
        regions=["上海", " "],
        skill=2,
        capacity=50,
        is_paused=True,
    )
    assert user.regions == ["上海"]
    assert user.is_paused
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "collector_changed")
    ).one()
    assert entry.before["is_paused"] is False
    assert entry.after["is_paused"] is True
    assert entry.after["capacity"] == 50


def test_change_collector_stale_version(session):
    make_collector(session, "ann")
    from services.users import find_user

    user = find_user(session, "ann")
    stale = user.version
    change(session, "ann", capacity=10)
    data = validated(board.CollectorChange, user_id=user.id, version=stale, capacity=5)
    with pytest.raises(Conflict):
        board.change_collector(session=session, actor=OPERATOR, data=data)


def test_change_of_non_collector_rejected(session):
    manager = make_user(session, "mia", role="manager")
    data = validated(board.CollectorChange, user_id=manager.id, version=1, skill=2)
    with pytest.raises(InvalidInput) as raised:
        board.change_collector(session=session, actor=OPERATOR, data=data)
    assert raised.value.code == "not_a_collector"


def test_board_loads_and_unassigned(session):
    make_collector(session, "ann", skill=3, regions=["广东"])
    make_collector(session, "far", regions=["西藏"])
    batch = make_batch(session, recall_date=local_today())
    make_case(session, batch, "LIGHT", total_due="100.00")
    make_case(session, batch, "HEAVY", total_due="60000.00")
    make_case(session, batch, "GONE", province="新疆", dpd=200)
    session.commit()
    pause(session, "ann")
    run(session)
    pause(session, "ann", paused=False)
    run(session)

    view = board.load_board(session=session, actor=OPERATOR)

    loads = {c.username: c for c in view.collectors}
    assert loads["ann"].open_cases == 2
    assert loads["ann"].balance == Decimal("60100.00")
    assert loads["ann"].by_segment == {"light": 1, "heavy": 1}
    assert loads["far"].open_cases == 0
    assert view.unassigned_total == 1
    assert [row["case_no"] for row in view.unassigned] == ["GONE"]
    assert view.unassigned[0]["reason"] == "no_collector_for_region"
    assert view.unassigned_by_reason == {"no_collector_for_region": 1}
    assert [row["open_cases"] for row in view.recall_due] == [3]


def test_board_for_team_lead_shows_team(session):
    make_collector(session, "north1", team="North")
    make_collector(session, "south1", team="South")
    lead = make_user(session, "lead", role="team_lead", team="North")
    make_case(session, make_batch(session), "C1")
    session.commit()
    view = board.load_board(session=session, actor=lead)
    assert [c.username for c in view.collectors] == ["north1"]
    assert view.unassigned == []


def test_board_denied_to_collector(session):
    collector = make_collector(session, "ann")
    with pytest.raises(PermissionDenied):
        board.load_board(session=session, actor=collector)


def test_collector_cases_and_history(session):
    ann = make_collector(session, "ann")
    case = make_case(session, make_batch(session), "C1")
    session.commit()
    run(session)
    rows = board.list_collector_cases(
        session=session, actor=OPERATOR, collector_id=ann.id
    )
    assert [row["case_no"] for row in rows] == ["C1"]
    history = board.case_history(session=session, actor=OPERATOR, case_id=case.id)
    assert [(h["kind"], h["to_collector"]) for h in history] == [("assigned", "ann")]
