"""Segment rules and strategies on PostgreSQL: defaults, boundaries, versions, moves."""

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from db.models import AuditEntry, Case, CaseEvent, SegmentRuleSet, Strategy
from recova.errors import InvalidInput, PermissionDenied
from services import intake, segments
from services.actors import Actor
from services.users import validated
from tests.case_factories import make_batch, make_case
from tests.conftest import FIXTURES
from tests.factories import make_user

ADMIN = Actor.operator()


def classify_one(session, **fields) -> Case:
    batch = make_batch(session)
    case = make_case(session, batch, "C1", **fields)
    segments.classify(session, case_ids=[case.id])
    session.commit()
    session.refresh(case)
    return case


@pytest.mark.parametrize(
    ("total_due", "dpd", "segment"),
    [
        ("5000.00", 30, "light"),
        ("5000.01", 30, "standard"),
        ("5000.00", 31, "standard"),
        ("0.01", 0, "light"),
        ("50000.00", 10, "standard"),
        ("50000.01", 10, "heavy"),
        ("1000.00", 90, "standard"),
        ("1000.00", 91, "heavy"),
        ("1000.00", 180, "heavy"),
        ("1000.00", 181, "special"),
        ("60000.00", 181, "special"),
    ],
)
def test_default_rule_boundaries(session, total_due, dpd, segment):
    case = classify_one(session, total_due=total_due, dpd=dpd)
    assert case.segment == segment
    assert case.strategy == segment


def test_company_debtor_is_special(session):
    case = classify_one(session, total_due="100.00", dpd=1, customer_type="company")
    assert case.segment == "special"


def test_bucket_follows_today_dpd(session):
    batch = make_batch(session)
    expected = {0: None, 1: "M1", 30: "M1", 31: "M2", 180: "M6", 181: "M7+"}
    cases = {dpd: make_case(session, batch, f"B{dpd}", dpd=dpd) for dpd in expected}
    segments.classify(session, batch_id=batch.id)
    session.commit()
    for dpd, bucket in expected.items():
        session.refresh(cases[dpd])
        assert cases[dpd].bucket == bucket, dpd


def test_unassigned_case_has_no_due_times(session):
    case = classify_one(session, total_due="70000.00")
    assert case.first_contact_due_at is None
    assert case.next_action_at is None


def test_segment_move_recorded_in_history(session):
    case = classify_one(session, total_due="1000.00", dpd=10)
    assert case.segment == "light"

    case.overdue_since = segments.local_today() - timedelta(days=100)
    session.commit()
    result = segments.classify(session, actor=ADMIN, case_ids=[case.id])
    session.commit()

    assert result.moved == 1
    event = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)).one()
    assert event.kind == "segment_changed"
    assert event.rule == "segment_rules"
    assert event.detail["from"] == "light"
    assert event.detail["to"] == "heavy"
    assert event.detail["version"] == 0
    assert event.detail["rule"] == 2


def test_unchanged_case_not_written_again(session):
    case = classify_one(session, total_due="1000.00", dpd=10)
    version = case.version
    result = segments.classify(session, case_ids=[case.id])
    session.commit()
    assert result.changed == 0
    assert session.scalar(select(func.count()).select_from(CaseEvent)) == 0
    session.refresh(case)
    assert case.version == version


def test_first_classification_is_not_a_move(session):
    classify_one(session)
    assert session.scalar(select(func.count()).select_from(CaseEvent)) == 0


def test_assigned_case_gets_due_times_of_new_strategy(session):
    case = classify_one(session, total_due="1000.00", dpd=10)
    assigned_at = session.scalar(select(func.now())) - timedelta(days=3, hours=1)
    case.assigned_at = assigned_at
    case.overdue_since = segments.local_today() - timedelta(days=100)
    session.commit()

    segments.classify(session, case_ids=[case.id])
    session.commit()
    session.refresh(case)

    assert case.segment == "heavy"
    assert case.first_contact_due_at == assigned_at + timedelta(hours=4)
    # Three days after assignment the heavy strategy's next step is the day-3
    # investigation.
    assert case.next_action_at == assigned_at + timedelta(days=3)


@pytest.mark.parametrize(
    ("elapsed", "day"),
    [(0, 0), (1, 1), (2, 2), (3, 4), (5, 6), (13, 14), (14, 14), (15, 16)],
)
def test_next_step_day_of_standard(session, elapsed, day):
    steps = segments._steps_json(segments.current_strategies(session)["standard"])
    found = session.scalar(
        text("SELECT recova_next_step_day(CAST(:steps AS jsonb), :elapsed)"),
        {"steps": steps, "elapsed": elapsed},
    )
    assert found == day


def test_next_step_day_none_after_last(session):
    steps = segments._steps_json(segments.current_strategies(session)["heavy"])
    found = session.scalar(
        text("SELECT recova_next_step_day(CAST(:steps AS jsonb), 8)"),
        {"steps": steps},
    )
    assert found is None


@pytest.mark.parametrize(
    ("province", "key"),
    [
        ("广东省", "广东"),
        ("广东", "广东"),
        ("上海市", "上海"),
        ("广西壮族自治区", "广西"),
        ("新疆维吾尔自治区", "新疆"),
        ("香港特别行政区", "香港"),
        (" Texas ", "texas"),
    ],
)
def test_province_key(session, province, key):
    found = session.scalar(
        text("SELECT recova_province_key(:province)"), {"province": province}
    )
    assert found == key


def rule(segment, strategy, match="all", **conditions):
    return {
        "segment": segment,
        "strategy": strategy,
        "match": match,
        "conditions": [
            {"field": field, "op": op, "value": value}
            for field, (op, value) in conditions.items()
        ],
    }


def save_rules(session, *rules, actor=ADMIN):
    data = validated(segments.RuleSetInput, rules=list(rules), note="test")
    return segments.save_rule_set(session=session, actor=actor, data=data)


@pytest.mark.parametrize(
    ("condition", "fields", "segment"),
    [
        ({"product": ("in", ["车贷"])}, {"product": "车贷"}, "picked"),
        ({"product": ("in", ["车贷"])}, {"product": "信用卡"}, "rest"),
        ({"product": ("not_in", ["车贷"])}, {"product": None}, "picked"),
        ({"province": ("in", ["广东省"])}, {"province": "广东"}, "picked"),
        ({"province": ("in", ["浙江"])}, {"province": "广东"}, "rest"),
        ({"risk_grade": ("in", ["A", "B"])}, {"risk_grade": "B"}, "picked"),
        ({"risk_grade": ("in", ["A"])}, {"risk_grade": None}, "rest"),
        ({"bucket": ("in", ["M2"])}, {"dpd": 45}, "picked"),
        ({"bucket": ("in", ["M2"])}, {"dpd": 30}, "rest"),
        (
            {"customer_type": ("in", ["company"])},
            {"customer_type": "company"},
            "picked",
        ),
        (
            {"balance": ("lt", "100")},
            {"total_due": "500", "balance": "99.99"},
            "picked",
        ),
        ({"total_due": ("ge", "500")}, {"total_due": "500"}, "picked"),
        ({"dpd": ("eq", "7")}, {"dpd": 7}, "picked"),
    ],
)
def test_each_rule_field(session, condition, fields, segment):
    save_rules(
        session,
        rule("picked", "heavy", **condition),
        rule("rest", "standard"),
    )
    case = classify_one(session, **fields)
    assert case.segment == segment


def test_any_match_needs_one_condition(session):
    save_rules(
        session,
        rule("picked", "heavy", "any", product=("in", ["车贷"]), dpd=("gt", "60")),
        rule("rest", "standard"),
    )
    case = classify_one(session, product="信用卡", dpd=61)
    assert case.segment == "picked"


def test_all_match_needs_every_condition(session):
    save_rules(
        session,
        rule("picked", "heavy", "all", product=("in", ["车贷"]), dpd=("gt", "60")),
        rule("rest", "standard"),
    )
    case = classify_one(session, product="信用卡", dpd=61)
    assert case.segment == "rest"


def test_first_matching_rule_wins(session):
    save_rules(
        session,
        rule("first", "light", dpd=("gt", "10")),
        rule("second", "heavy", dpd=("gt", "5")),
        rule("rest", "standard"),
    )
    case = classify_one(session, dpd=20)
    assert case.segment == "first"


def test_rule_sets_are_versioned_and_audited(session):
    first = save_rules(session, rule("all", "standard"))
    second = save_rules(session, rule("everything", "light"))
    assert first.version == 1
    assert second.version == 2
    assert segments.current_rule_set(session).rules[0].segment == "everything"
    assert session.scalar(select(func.count()).select_from(SegmentRuleSet)) == 2
    entries = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "segment_rules_saved")
        .order_by(AuditEntry.id)
    ).all()
    assert [entry.after["version"] for entry in entries] == [1, 2]
    assert entries[0].before["version"] == 0


def test_history_lists_versions(session):
    save_rules(session, rule("all", "standard"))
    save_rules(session, rule("everything", "light"))
    history = segments.rule_set_history(session=session, actor=ADMIN)
    assert [item.version for item in history] == [2, 1]


def test_rule_set_needs_catch_all_last(session):
    with pytest.raises(InvalidInput) as raised:
        save_rules(session, rule("picked", "heavy", dpd=("gt", "1")))
    assert raised.value.code == "field_invalid"
    assert "last rule" in raised.value.params["reason"]


def test_segment_with_two_strategies_rejected(session):
    with pytest.raises(InvalidInput) as raised:
        save_rules(
            session,
            rule("same", "heavy", dpd=("gt", "1")),
            rule("same", "light"),
        )
    assert "two strategies" in raised.value.params["reason"]


def test_unknown_strategy_rejected(session):
    with pytest.raises(InvalidInput) as raised:
        save_rules(session, rule("all", "nonexistent"))
    assert raised.value.code == "strategy_unknown"


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "dpd", "op": "in", "value": ["1"]},
        {"field": "product", "op": "gt", "value": "5"},
        {"field": "product", "op": "in", "value": [" "]},
        {"field": "colour", "op": "in", "value": ["red"]},
    ],
)
def test_malformed_condition_rejected(session, condition):
    with pytest.raises(InvalidInput):
        validated(
            segments.RuleSetInput,
            rules=[
                {"segment": "a", "strategy": "standard", "conditions": [condition]},
                {"segment": "b", "strategy": "standard"},
            ],
        )


def test_only_admin_saves_rules(session):
    manager = make_user(session, "mia", role="manager")
    with pytest.raises(PermissionDenied):
        save_rules(session, rule("all", "standard"), actor=manager)


def strategy_input(**overrides):
    values = {
        "code": "heavy",
        "name": "Heavy, faster",
        "min_skill": 2,
        "first_contact_hours": 2,
        "steps": [{"day": 0, "channel": "phone"}, {"day": 2, "channel": "visit"}],
    }
    return validated(segments.StrategyInput, **{**values, **overrides})


def test_strategy_versions_override_defaults(session):
    assert segments.current_strategies(session)["heavy"].version == 0
    saved = segments.save_strategy(session=session, actor=ADMIN, data=strategy_input())
    again = segments.save_strategy(
        session=session, actor=ADMIN, data=strategy_input(first_contact_hours=3)
    )
    assert saved.version == 1
    assert again.version == 2
    current = segments.current_strategies(session)
    assert current["heavy"].first_contact_hours == 3
    assert current["light"].version == 0
    assert session.scalar(select(func.count()).select_from(Strategy)) == 2
    audited = session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "strategy_saved")
    )
    assert audited == 2


def test_new_strategy_code_usable_in_rules(session):
    segments.save_strategy(
        session=session,
        actor=ADMIN,
        data=strategy_input(code="legal", name="Legal", min_skill=3),
    )
    save_rules(
        session, rule("legal", "legal", dpd=("gt", "365")), rule("rest", "standard")
    )
    case = classify_one(session, dpd=400)
    assert case.strategy == "legal"


@pytest.mark.parametrize(
    "overrides",
    [
        {"steps": []},
        {"min_skill": 4},
        {"first_contact_hours": 0},
        {"steps": [{"day": -1, "channel": "phone"}]},
        {"steps": [{"day": 0, "channel": "fax"}]},
        {"code": "Has Space"},
        {"name": "  "},
    ],
)
def test_invalid_strategy_rejected(session, overrides):
    with pytest.raises(InvalidInput):
        strategy_input(**overrides)


def test_classify_open_cases_audited(session):
    manager = make_user(session, "mia", role="manager")
    batch = make_batch(session)
    make_case(session, batch, "A", dpd=10)
    make_case(session, batch, "B", dpd=200)
    session.commit()
    result = segments.classify_open_cases(session=session, actor=manager)
    assert result.changed == 2
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "cases_classified")
    ).one()
    assert entry.detail["changed"] == 2


def test_classify_open_cases_needs_manager(session):
    collector = make_user(session, "cara", role="collector")
    with pytest.raises(PermissionDenied):
        segments.classify_open_cases(session=session, actor=collector)


def test_closed_cases_keep_segment(session):
    case = classify_one(session, dpd=10)
    case.status = "paid"
    case.overdue_since = segments.local_today() - timedelta(days=300)
    session.commit()
    segments.classify(session)
    session.commit()
    session.refresh(case)
    assert case.segment == "light"


def test_import_classifies_batch(session):
    report = intake.import_cases(
        session=session,
        actor=ADMIN,
        request=intake.ImportRequest(creditor="Test Bank"),
        content=(FIXTURES / "cases_zh_gbk.csv").read_bytes(),
        filename="cases_zh_gbk.csv",
    )
    found = dict(
        session.execute(
            select(Case.case_no, Case.segment).where(Case.batch_id == report.batch_id)
        ).all()
    )
    assert None not in found.values()
    assert found["GBK2411000001"] == "heavy"
    assert found["GBK2411000002"] == "special"
    assert found["GBK2411000003"] == "special"
    assert found["GBK2411000006"] == "standard"
    assert found["GBK2411000013"] == "light"
    assert sum(1 for _ in found) == report.imported
    assert Decimal(0) < report.total_due_imported


def test_rules_table_round_trip():
    table = segments.rules_to_table(segments.DEFAULT_RULES)
    assert len(table) == 7
    assert table[0]["value"] == "company"
    rebuilt = validated(segments.RuleSetInput, rules=segments.rules_from_table(table))
    assert rebuilt.rules == segments.DEFAULT_RULES


def test_rules_table_splits_full_width_commas():
    rows = [
        {
            "rule": 1,
            "segment": "cars",
            "strategy": "heavy",
            "match": "all",
            "field": "product",
            "op": "in",
            "value": "车贷，经营贷",
        },
        {
            "rule": 2,
            "segment": "rest",
            "strategy": "standard",
            "match": "all",
            "field": None,
            "op": None,
            "value": None,
        },
    ]
    rules = segments.rules_from_table(rows)
    assert rules[0]["conditions"][0]["value"] == ["车贷", "经营贷"]
    assert rules[1]["conditions"] == []
