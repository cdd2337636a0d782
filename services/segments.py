"""Segments and collection strategies: versioned rules that classify open cases.

Rules are evaluated in order and the first that matches sets the case's segment and
strategy. Classification of many cases is one UPDATE statement whose CASE expression
is built from the rules in force, so it scales with the database, not with Python.
A case that moves to another segment gets a `segment_changed` entry in its history.

Rules and strategies are saved as new versions and never edited in place. With no
saved version, the defaults below are in force as version 0.
"""

import json
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import polars as pl
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import OPEN_STATUSES, Case, SegmentRuleSet, Strategy, User
from recova.errors import InvalidInput
from recova.settings import get_settings
from services import audit
from services.actors import MANAGERS, Actor, require_role

logger = logging.getLogger(__name__)

CODE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
NUMERIC_FIELDS = ("total_due", "balance", "dpd")
LIST_FIELDS = ("bucket", "customer_type", "product", "province", "risk_grade")
NUMERIC_OPERATORS = ("gt", "ge", "lt", "le", "eq")
LIST_OPERATORS = ("in", "not_in")
CHANNELS = (
    "phone",
    "sms",
    "wechat",
    "email",
    "letter",
    "visit",
    "investigation",
    "legal_review",
)
TARGETS = ("debtor", "contact", "third_party")
ESCALATIONS = ("none", "no_contact", "no_right_party", "no_promise", "promise_broken")

CaseField = Literal[
    "total_due",
    "balance",
    "dpd",
    "bucket",
    "customer_type",
    "product",
    "province",
    "risk_grade",
]
Operator = Literal["gt", "ge", "lt", "le", "eq", "in", "not_in"]


class Condition(BaseModel):
    """One test of a rule: a case field, an operator and a number or a list of
    values."""

    field: CaseField
    op: Operator
    value: Decimal | list[str]

    @model_validator(mode="after")
    def _check_shape(self) -> "Condition":
        if self.field in NUMERIC_FIELDS:
            if self.op not in NUMERIC_OPERATORS or not isinstance(self.value, Decimal):
                raise ValueError(
                    f"{self.field} takes gt, ge, lt, le or eq and a number"
                )
            return self
        if self.op not in LIST_OPERATORS or not isinstance(self.value, list):
            raise ValueError(f"{self.field} takes in or not_in and a list of values")
        self.value = [item.strip() for item in self.value if item.strip()]
        if not self.value:
            raise ValueError(f"{self.field} needs at least one value")
        return self


class SegmentRule(BaseModel):
    """A rule: when its conditions match, the case gets `segment` and `strategy`.

    A rule without conditions matches every case.
    """

    segment: str = Field(pattern=CODE_PATTERN)
    strategy: str = Field(pattern=CODE_PATTERN)
    match: Literal["all", "any"] = "all"
    conditions: list[Condition] = Field(default_factory=list, max_length=20)


class RuleSetInput(BaseModel):
    rules: list[SegmentRule] = Field(min_length=1, max_length=50)
    note: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _check_rules(self) -> "RuleSetInput":
        if self.rules[-1].conditions:
            raise ValueError(
                "the last rule must have no conditions, so every case gets a segment"
            )
        strategies: dict[str, str] = {}
        for rule in self.rules:
            known = strategies.setdefault(rule.segment, rule.strategy)
            if known != rule.strategy:
                raise ValueError(
                    f"segment {rule.segment} has two strategies: {known} and "
                    f"{rule.strategy}"
                )
        return self


class StrategyStep(BaseModel):
    """One step of a strategy, counted in days from assignment."""

    day: int = Field(ge=0, le=3650)
    channel: Literal[
        "phone",
        "sms",
        "wechat",
        "email",
        "letter",
        "visit",
        "investigation",
        "legal_review",
    ]
    target: Literal["debtor", "contact", "third_party"] = "debtor"
    # The step repeats every so many days from `day` on; None runs it once.
    every_days: int | None = Field(default=None, ge=1, le=365)
    # The condition under which the step goes to the team lead.
    # NOTE: stored and shown only. Nothing evaluates it until contact attempts are
    # recorded, and `next_action_at` counts from assignment, not from the last
    # attempt.
    escalation: Literal[
        "none", "no_contact", "no_right_party", "no_promise", "promise_broken"
    ] = "none"


class StrategyInput(BaseModel):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    min_skill: int = Field(ge=1, le=3)
    first_contact_hours: int = Field(ge=1, le=720)
    steps: list[StrategyStep] = Field(min_length=1, max_length=50)
    note: str | None = Field(default=None, max_length=500)

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the name is empty")
        return value


def _condition(field: str, op: str, value: Any) -> Condition:
    return Condition(field=field, op=op, value=value)


DEFAULT_RULES: list[SegmentRule] = [
    SegmentRule(
        segment="special",
        strategy="special",
        match="any",
        conditions=[
            _condition("customer_type", "in", ["company"]),
            _condition("dpd", "gt", Decimal(180)),
        ],
    ),
    SegmentRule(
        segment="heavy",
        strategy="heavy",
        match="any",
        conditions=[
            _condition("total_due", "gt", Decimal(50_000)),
            _condition("dpd", "gt", Decimal(90)),
        ],
    ),
    SegmentRule(
        segment="light",
        strategy="light",
        match="all",
        conditions=[
            _condition("total_due", "le", Decimal(5_000)),
            _condition("dpd", "le", Decimal(30)),
        ],
    ),
    SegmentRule(segment="standard", strategy="standard"),
]


def _step(day: int, channel: str, **options: Any) -> StrategyStep:
    return StrategyStep(day=day, channel=channel, **options)


# Repeat intervals and escalation conditions are defaults that admins can change:
# the domain rules fix only the days and channels.
DEFAULT_STRATEGIES: dict[str, StrategyInput] = {
    "special": StrategyInput(
        code="special",
        name="Special: legal review",
        min_skill=3,
        first_contact_hours=4,
        steps=[
            _step(0, "phone"),
            _step(14, "legal_review", escalation="no_promise"),
        ],
    ),
    "heavy": StrategyInput(
        code="heavy",
        name="Heavy: senior collector",
        min_skill=2,
        first_contact_hours=4,
        steps=[
            _step(0, "phone"),
            _step(3, "investigation", escalation="no_right_party"),
            _step(7, "letter", escalation="no_promise"),
        ],
    ),
    "light": StrategyInput(
        code="light",
        name="Light: SMS first",
        min_skill=1,
        first_contact_hours=24,
        steps=[
            _step(0, "sms"),
            _step(3, "sms"),
            _step(7, "sms"),
            _step(7, "phone", every_days=1, escalation="no_promise"),
        ],
    ),
    "standard": StrategyInput(
        code="standard",
        name="Standard: calls and SMS",
        min_skill=1,
        first_contact_hours=24,
        steps=[
            _step(0, "phone"),
            _step(1, "sms"),
            _step(2, "phone", every_days=2),
            _step(
                14,
                "phone",
                target="contact",
                every_days=2,
                escalation="no_right_party",
            ),
        ],
    ),
}


@dataclass(frozen=True)
class RuleSet:
    version: int
    rules: list[SegmentRule]
    note: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class StrategyVersion:
    code: str
    version: int
    name: str
    min_skill: int
    first_contact_hours: int
    steps: list[StrategyStep]
    note: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class ClassifyResult:
    """Counts of one classification: cases whose segment, strategy or bucket changed,
    and of those, cases that moved from one segment to another."""

    changed: int
    moved: int
    rules_version: int


def local_today() -> date:
    """Return today's date in the configured time zone, the day DPD is counted on."""
    return datetime.now(ZoneInfo(get_settings().timezone)).date()


# Rules and strategies in force


def current_rule_set(session: Session) -> RuleSet:
    """Return the rule set in force: the highest saved version, else the defaults."""
    row = session.execute(
        select(SegmentRuleSet, User.username)
        .outerjoin(User, User.id == SegmentRuleSet.created_by)
        .order_by(SegmentRuleSet.version.desc())
        .limit(1)
    ).first()
    if row is None:
        return RuleSet(version=0, rules=list(DEFAULT_RULES))
    saved, username = row
    return RuleSet(
        version=saved.version,
        rules=[SegmentRule.model_validate(rule) for rule in saved.rules],
        note=saved.note,
        created_at=saved.created_at,
        created_by=username,
    )


def _strategy_version(row: Strategy, username: str | None) -> StrategyVersion:
    return StrategyVersion(
        code=row.code,
        version=row.version,
        name=row.name,
        min_skill=row.min_skill,
        first_contact_hours=row.first_contact_hours,
        steps=[StrategyStep.model_validate(step) for step in row.steps],
        note=row.note,
        created_at=row.created_at,
        created_by=username,
    )


def _default_strategy(data: StrategyInput) -> StrategyVersion:
    return StrategyVersion(
        code=data.code,
        version=0,
        name=data.name,
        min_skill=data.min_skill,
        first_contact_hours=data.first_contact_hours,
        steps=list(data.steps),
    )


def current_strategies(session: Session) -> dict[str, StrategyVersion]:
    """Return every strategy in force by code: saved versions over the defaults."""
    strategies = {
        code: _default_strategy(data) for code, data in DEFAULT_STRATEGIES.items()
    }
    rows = session.execute(
        select(Strategy, User.username)
        .outerjoin(User, User.id == Strategy.created_by)
        .distinct(Strategy.code)
        .order_by(Strategy.code, Strategy.version.desc())
    ).all()
    for row, username in rows:
        strategies[row.code] = _strategy_version(row, username)
    return dict(sorted(strategies.items()))


def rule_set_history(*, session: Session, actor: Actor) -> list[RuleSet]:
    """Return every saved rule set, newest first, for admins and managers."""
    require_role(actor, *MANAGERS)
    rows = session.execute(
        select(SegmentRuleSet, User.username)
        .outerjoin(User, User.id == SegmentRuleSet.created_by)
        .order_by(SegmentRuleSet.version.desc())
    ).all()
    return [
        RuleSet(
            version=saved.version,
            rules=[SegmentRule.model_validate(rule) for rule in saved.rules],
            note=saved.note,
            created_at=saved.created_at,
            created_by=username,
        )
        for saved, username in rows
    ]


def strategy_history(
    *, session: Session, actor: Actor, code: str
) -> list[StrategyVersion]:
    """Return the saved versions of one strategy, newest first."""
    require_role(actor, *MANAGERS)
    rows = session.execute(
        select(Strategy, User.username)
        .outerjoin(User, User.id == Strategy.created_by)
        .where(Strategy.code == code)
        .order_by(Strategy.version.desc())
    ).all()
    return [_strategy_version(row, username) for row, username in rows]


# Saving new versions


def save_rule_set(*, session: Session, actor: Actor, data: RuleSetInput) -> RuleSet:
    """Save the rules as a new version, in force from now on, and audit the change.

    Cases keep their segment until they are classified again: on import, before
    automatic assignment, or by `classify_open_cases`.
    """
    require_role(actor, "admin")
    strategies = current_strategies(session)
    unknown = sorted({r.strategy for r in data.rules if r.strategy not in strategies})
    if unknown:
        raise InvalidInput(
            "strategy_unknown",
            strategy=", ".join(unknown),
            allowed=", ".join(strategies),
        )

    _lock_settings(session)
    before = current_rule_set(session)
    version = before.version + 1
    rules = [rule.model_dump(mode="json") for rule in data.rules]
    session.add(
        SegmentRuleSet(
            version=version, rules=rules, note=data.note, created_by=actor.id
        )
    )
    audit.record(
        session,
        actor,
        "segment_rules_saved",
        "segment_rules",
        version,
        before={"version": before.version, "rules": _dump_rules(before.rules)},
        after={"version": version, "rules": rules},
        detail={"note": data.note},
    )
    session.commit()
    logger.info("segment rules version %s saved by %s", version, actor.username)
    return current_rule_set(session)


def save_strategy(
    *, session: Session, actor: Actor, data: StrategyInput
) -> StrategyVersion:
    """Save a strategy as a new version of its code and audit the change."""
    require_role(actor, "admin")
    _lock_settings(session)
    before = current_strategies(session).get(data.code)
    version = (before.version if before else 0) + 1
    steps = [step.model_dump(mode="json") for step in data.steps]
    session.add(
        Strategy(
            code=data.code,
            version=version,
            name=data.name,
            min_skill=data.min_skill,
            first_contact_hours=data.first_contact_hours,
            steps=steps,
            note=data.note,
            created_by=actor.id,
        )
    )
    audit.record(
        session,
        actor,
        "strategy_saved",
        "strategy",
        f"{data.code}:{version}",
        before=_dump_strategy(before) if before else None,
        after={**data.model_dump(mode="json"), "version": version},
    )
    session.commit()
    logger.info(
        "strategy %s version %s saved by %s", data.code, version, actor.username
    )
    return current_strategies(session)[data.code]


def _lock_settings(session: Session) -> None:
    # Two admins saving at once get consecutive versions instead of a unique-key error.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('recova.segments'))"))


def _dump_rules(rules: list[SegmentRule]) -> list[dict[str, Any]]:
    return [rule.model_dump(mode="json") for rule in rules]


def _dump_strategy(strategy: StrategyVersion) -> dict[str, Any]:
    return {
        "code": strategy.code,
        "version": strategy.version,
        "name": strategy.name,
        "min_skill": strategy.min_skill,
        "first_contact_hours": strategy.first_contact_hours,
        "steps": [step.model_dump(mode="json") for step in strategy.steps],
    }


# Classification


BUCKET_SQL = """
    CASE
        WHEN {dpd} <= 0 THEN NULL
        WHEN {dpd} <= 30 THEN 'M1'
        WHEN {dpd} <= 60 THEN 'M2'
        WHEN {dpd} <= 90 THEN 'M3'
        WHEN {dpd} <= 120 THEN 'M4'
        WHEN {dpd} <= 150 THEN 'M5'
        WHEN {dpd} <= 180 THEN 'M6'
        ELSE 'M7+'
    END
"""
DPD_SQL = "(CAST(:today AS date) - c.overdue_since)"
FIELD_SQL = {
    "total_due": "c.total_due",
    "balance": "c.balance",
    "dpd": DPD_SQL,
    "bucket": BUCKET_SQL.format(dpd=DPD_SQL),
    "customer_type": "d.customer_type",
    "product": "c.product",
    "province": "recova_province_key(d.province)",
    "risk_grade": "c.risk_grade",
}
COMPARISONS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "="}


class _SqlBuilder:
    """Turn rules into SQL conditions, collecting their values as bound parameters.

    Only column expressions from FIELD_SQL and parameter names are written into the
    SQL text; every value an admin typed is a bound parameter.
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"rule_param_{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def condition(self, condition: Condition) -> str:
        column = FIELD_SQL[condition.field]
        if condition.op in COMPARISONS:
            return f"{column} {COMPARISONS[condition.op]} {self.bind(condition.value)}"
        values = f"CAST({self.bind(condition.value)} AS text[])"
        if condition.field == "province":
            values = f"ARRAY(SELECT recova_province_key(v) FROM unnest({values}) v)"  # noqa: S608
        if condition.op == "in":
            return f"{column} = ANY({values})"
        return f"({column} IS NULL OR NOT {column} = ANY({values}))"

    def rule(self, rule: SegmentRule) -> str:
        if not rule.conditions:
            return "true"
        joiner = " AND " if rule.match == "all" else " OR "
        return "(" + joiner.join(self.condition(c) for c in rule.conditions) + ")"

    def position(self, rules: list[SegmentRule]) -> str:
        branches = "\n".join(
            f"WHEN {self.rule(rule)} THEN {index}" for index, rule in enumerate(rules)
        )
        return f"CASE {branches} END"


def classify(
    session: Session,
    *,
    actor: Actor | None = None,
    batch_id: int | None = None,
    case_ids: list[int] | None = None,
    creditor_id: int | None = None,
    statuses: tuple[str, ...] = OPEN_STATUSES,
    today: date | None = None,
) -> ClassifyResult:
    """Classify the cases in scope with the rules in force, without committing.

    Only cases whose segment, strategy or bucket changes are written. Cases that are
    already assigned get `first_contact_due_at` and `next_action_at` from their new
    strategy, counted from `assigned_at`; unassigned cases get them on assignment.
    """
    rule_set = current_rule_set(session)
    strategies = current_strategies(session)
    builder = _SqlBuilder()
    position = builder.position(rule_set.rules)
    scope, scope_params = _scope(batch_id, case_ids, creditor_id)
    statement = CLASSIFY_SQL.format(
        position=position, bucket=FIELD_SQL["bucket"], scope=scope
    )
    params = {
        **builder.params,
        **scope_params,
        "statuses": list(statuses),
        "today": today or local_today(),
        "positions": list(range(len(rule_set.rules))),
        "segments": [rule.segment for rule in rule_set.rules],
        "strategies": [rule.strategy for rule in rule_set.rules],
        "codes": list(strategies),
        "steps": [_steps_json(strategy) for strategy in strategies.values()],
        "hours": [strategy.first_contact_hours for strategy in strategies.values()],
        "rules_version": rule_set.version,
        "actor_id": actor.id if actor else None,
        "actor_name": actor.username if actor else None,
    }
    changed, moved = session.execute(text(statement), params).one()
    return ClassifyResult(changed=changed, moved=moved, rules_version=rule_set.version)


def _steps_json(strategy: StrategyVersion) -> str:
    return json.dumps([step.model_dump(mode="json") for step in strategy.steps])


def _scope(
    batch_id: int | None, case_ids: list[int] | None, creditor_id: int | None
) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    if batch_id is not None:
        clauses.append("c.batch_id = :scope_batch")
        params["scope_batch"] = batch_id
    if case_ids is not None:
        clauses.append("c.id = ANY(CAST(:scope_cases AS bigint[]))")
        params["scope_cases"] = list(case_ids)
    if creditor_id is not None:
        clauses.append("c.creditor_id = :scope_creditor")
        params["scope_creditor"] = creditor_id
    return " AND ".join(clauses) or "true", params


# The `target` CTE picks each case's first matching rule, and `decided` adds that
# rule's segment and strategy. `changed` writes the cases whose values differ, and
# `moved` records the cases that left one segment for another. PostgreSQL 15 has no
# RETURNING old.*, so the old segment travels through the CTEs.
CLASSIFY_SQL = """
WITH target AS (
    SELECT c.id, c.segment AS old_segment, c.strategy AS old_strategy,
        {position} AS position,
        {bucket} AS bucket
    FROM cases c JOIN debtors d ON d.id = c.debtor_id
    WHERE c.status = ANY(CAST(:statuses AS text[])) AND {scope}
),
decided AS (
    SELECT t.id, t.old_segment, t.old_strategy, t.bucket, t.position,
        r.segment, r.strategy, s.steps, s.hours
    FROM target t
    JOIN unnest(CAST(:positions AS int[]), CAST(:segments AS text[]),
                CAST(:strategies AS text[])) AS r(position, segment, strategy)
        ON r.position = t.position
    JOIN unnest(CAST(:codes AS text[]), CAST(:steps AS jsonb[]),
                CAST(:hours AS int[])) AS s(code, steps, hours)
        ON s.code = r.strategy
),
changed AS (
    UPDATE cases c SET
        segment = x.segment,
        strategy = x.strategy,
        bucket = x.bucket,
        first_contact_due_at = CASE
            WHEN c.assigned_at IS NULL THEN NULL
            WHEN x.strategy IS DISTINCT FROM x.old_strategy
                THEN c.assigned_at + make_interval(hours => x.hours)
            ELSE c.first_contact_due_at
        END,
        next_action_at = CASE
            WHEN c.assigned_at IS NULL THEN NULL
            WHEN x.strategy IS DISTINCT FROM x.old_strategy
                THEN c.assigned_at + make_interval(days => recova_next_step_day(
                    x.steps,
                    floor(extract(epoch FROM now() - c.assigned_at) / 86400)::int))
            ELSE c.next_action_at
        END
    FROM decided x
    WHERE c.id = x.id
        AND (c.segment IS DISTINCT FROM x.segment
             OR c.strategy IS DISTINCT FROM x.strategy
             OR c.bucket IS DISTINCT FROM x.bucket)
    RETURNING c.id, x.old_segment, x.segment, x.position
),
moved AS (
    INSERT INTO case_events (case_id, actor_id, actor_name, kind, rule, detail)
    SELECT id, :actor_id, :actor_name, 'segment_changed', 'segment_rules',
        jsonb_build_object('from', old_segment, 'to', segment,
                           'version', CAST(:rules_version AS int),
                           'rule', position + 1)
    FROM changed
    WHERE old_segment IS NOT NULL AND old_segment <> segment
    RETURNING case_id
)
SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM moved)
"""


# Polars twins of FIELD_SQL, for rows that are not in the database yet. The rows need
# total_due, balance, overdue_since, customer_type, product, province and risk_grade.
PROVINCE_SUFFIX = "(壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区|省|市)$"
POLARS_COMPARISONS = {
    "gt": pl.Expr.gt,
    "ge": pl.Expr.ge,
    "lt": pl.Expr.lt,
    "le": pl.Expr.le,
    "eq": pl.Expr.eq,
}


def province_key(expression: pl.Expr) -> pl.Expr:
    """Return the polars form of the SQL function recova_province_key."""
    return (
        expression.str.strip_chars().str.to_lowercase().str.replace(PROVINCE_SUFFIX, "")
    )


def _polars_field(field: str, today: date) -> pl.Expr:
    dpd = (pl.lit(today) - pl.col("overdue_since")).dt.total_days()
    if field == "dpd":
        return dpd
    if field == "bucket":
        bucket = pl.when(dpd <= 0).then(pl.lit(None, dtype=pl.Utf8))
        for limit, name in (
            (30, "M1"),
            (60, "M2"),
            (90, "M3"),
            (120, "M4"),
            (150, "M5"),
            (180, "M6"),
        ):
            bucket = bucket.when(dpd <= limit).then(pl.lit(name))
        return bucket.otherwise(pl.lit("M7+"))
    if field == "province":
        return province_key(pl.col("province"))
    return pl.col(field)


def _polars_condition(condition: Condition, today: date) -> pl.Expr:
    column = _polars_field(condition.field, today)
    if condition.op in POLARS_COMPARISONS:
        return POLARS_COMPARISONS[condition.op](column, pl.lit(condition.value))
    values = list(condition.value)
    if condition.field == "province":
        values = [
            re.sub(PROVINCE_SUFFIX, "", value.strip().lower()) for value in values
        ]
    if condition.op == "in":
        return column.is_in(values)
    return column.is_null() | ~column.is_in(values)


def classify_frame(session: Session, today: date | None = None) -> list[pl.Expr]:
    """Return the segment and the strategy expressions for rows not yet written.

    They give the same result as `classify` for a new, unassigned case, which an
    import test checks, so intake writes each case once instead of updating it.
    """
    rule_set = current_rule_set(session)
    day = today or local_today()
    segment = strategy = None
    for rule in rule_set.rules:
        matched = pl.lit(True)
        if rule.conditions:
            parts = [_polars_condition(c, day) for c in rule.conditions]
            matched = (
                pl.all_horizontal(parts)
                if rule.match == "all"
                else (pl.any_horizontal(parts))
            )
        matched = matched.fill_null(False)
        if segment is None:
            segment = pl.when(matched).then(pl.lit(rule.segment))
            strategy = pl.when(matched).then(pl.lit(rule.strategy))
        else:
            segment = segment.when(matched).then(pl.lit(rule.segment))
            strategy = strategy.when(matched).then(pl.lit(rule.strategy))
    if segment is None or strategy is None:
        return [pl.lit(None, dtype=pl.Utf8), pl.lit(None, dtype=pl.Utf8)]
    return [
        segment.otherwise(pl.lit(None, dtype=pl.Utf8)),
        strategy.otherwise(pl.lit(None, dtype=pl.Utf8)),
    ]


def classify_batch(session: Session, batch_id: int) -> ClassifyResult:
    """Classify the cases of a batch being imported; the import commits."""
    result = classify(session, batch_id=batch_id)
    logger.info(
        "batch %s classified with rules version %s: %s cases",
        batch_id,
        result.rules_version,
        result.changed,
    )
    return result


def classify_open_cases(
    *, session: Session, actor: Actor, creditor_id: int | None = None
) -> ClassifyResult:
    """Classify every open case again, on demand, so aged cases move segment."""
    require_role(actor, *MANAGERS)
    result = classify(session, actor=actor, creditor_id=creditor_id)
    audit.record(
        session,
        actor,
        "cases_classified",
        "segment_rules",
        result.rules_version,
        detail={
            "creditor_id": creditor_id,
            "changed": result.changed,
            "moved": result.moved,
        },
    )
    session.commit()
    logger.info(
        "open cases classified by %s: %s changed, %s moved segment",
        actor.username,
        result.changed,
        result.moved,
    )
    return result


def count_by_segment(*, session: Session, actor: Actor) -> dict[str, int]:
    """Return the number of open cases per segment (None for unclassified)."""
    require_role(actor, *MANAGERS)
    rows = session.execute(
        select(Case.segment, func.count())
        .where(Case.status.in_(OPEN_STATUSES))
        .group_by(Case.segment)
    ).all()
    return {segment: count for segment, count in rows}


# The rules as a table: one row per condition, for the settings page's grid editor


def rules_to_table(rules: list[SegmentRule]) -> list[dict[str, Any]]:
    """Return one row per condition; a rule without conditions is one row with an
    empty field. Lists of values are joined with commas."""
    rows = []
    for number, rule in enumerate(rules, start=1):
        base = {
            "rule": number,
            "segment": rule.segment,
            "strategy": rule.strategy,
            "match": rule.match,
        }
        if not rule.conditions:
            rows.append({**base, "field": None, "op": None, "value": None})
        for condition in rule.conditions:
            value = condition.value
            text_value = ", ".join(value) if isinstance(value, list) else str(value)
            rows.append(
                {
                    **base,
                    "field": condition.field,
                    "op": condition.op,
                    "value": text_value,
                }
            )
    return rows


def rules_from_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group table rows by rule number into rule dicts for `RuleSetInput`.

    The first row of a rule gives its segment, strategy and match. Rows without a
    field add no condition. List values are split on ASCII and full-width commas.
    """
    grouped: dict[int, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda item: int(item.get("rule") or 0)):
        number = int(row.get("rule") or 0)
        rule = grouped.setdefault(
            number,
            {
                "segment": (row.get("segment") or "").strip(),
                "strategy": (row.get("strategy") or "").strip(),
                "match": row.get("match") or "all",
                "conditions": [],
            },
        )
        field = row.get("field")
        if not field:
            continue
        value: Any = str(row.get("value") or "").strip()
        if field in LIST_FIELDS:
            value = [item for item in value.replace("，", ",").split(",")]
        rule["conditions"].append({"field": field, "op": row.get("op"), "value": value})
    return list(grouped.values())
