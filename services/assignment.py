"""Automatic assignment of `new` cases to collectors, and the rule it applies.

The automatic rule: a `new` case may go to any active, unpaused collector who is
under capacity, serves its province and has at least the skill of the case's tier.
An empty region list serves every province, and the tier is the `min_skill` of the
case's strategy. Among those collectors the one with the least open balance gets
the case. Ties go to fewer open cases, then to the lower user id. Cases are taken in
a fixed order (highest tier, then highest balance, then id), so the same input
gives the same result.

Every function that changes a case's collector takes `lock_assignment` first, a
transaction-scoped advisory lock. Two managers who press "assign" at once therefore
run one after the other, and the second reads the first one's committed result. No
case is assigned twice, and capacities hold. Manual moves, switches and recalls are in
`services.case_moves`; the board's reads and collector edits are in `services.board`.
"""

import hashlib
import heapq
import json
import logging
import uuid
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    bindparam,
    cast,
    select,
    text,
)
from sqlalchemy.orm import Session

from db.models import OPEN_STATUSES, Case, Creditor, Debtor
from recova.errors import Conflict, NotFound
from services import audit, segments
from services.actors import MANAGERS, Actor, require_role

logger = logging.getLogger(__name__)

BOARD_ROLES = ("admin", "manager", "team_lead")
REASONS = (
    "no_active_collector",
    "no_collector_for_region",
    "no_collector_with_skill",
    "all_at_capacity",
)
ASSIGN_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('recova.assignment'))"


def open_statuses() -> BindParameter:
    """Return the open statuses as a parameter that is rendered as SQL literals.

    PostgreSQL uses a partial index on open cases (such as ix_cases_open_load) only
    when it can prove the query's predicate from constants, which a bound array
    hides from a generic plan. Use it as `status IN :open` in text().
    """
    return bindparam(
        "open", value=list(OPEN_STATUSES), expanding=True, literal_execute=True
    )


def is_open(column: ColumnElement = Case.status) -> ColumnElement[bool]:
    """Return `column IN (open statuses)` with the statuses as literals."""
    return column.in_(open_statuses())


# Planning: pure Python over loaded rows


@dataclass(slots=True)
class CollectorState:
    """A collector and their open load, updated while a plan is made."""

    id: int
    username: str
    display_name: str
    team_id: int | None
    regions: list[str]
    region_keys: frozenset[str]
    skill: int
    capacity: int
    is_active: bool
    is_paused: bool
    open_cases: int
    balance_cents: int
    version: int = 0
    # (open balance, open cases, user id): the order in which collectors get cases.
    rank: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        self.rank = (self.balance_cents, self.open_cases, self.id)

    @property
    def available(self) -> bool:
        return self.is_active and not self.is_paused

    @property
    def has_room(self) -> bool:
        return self.open_cases < self.capacity

    def serves(self, province_key: str | None) -> bool:
        return not self.region_keys or province_key in self.region_keys

    def take(self, balance_cents: int) -> None:
        self.open_cases += 1
        self.balance_cents += balance_cents
        self.rank = (self.balance_cents, self.open_cases, self.id)


@dataclass(slots=True)
class PendingCase:
    id: int
    case_no: str
    creditor: str
    balance_cents: int
    tier: int
    province: str | None
    province_key: str | None
    segment: str | None
    strategy: str | None
    version: int = 0
    status: str = "new"
    collector_id: int | None = None
    team_id: int | None = None


@dataclass
class Plan:
    assigned: list[tuple[PendingCase, CollectorState]] = field(default_factory=list)
    unassigned: list[tuple[PendingCase, str]] = field(default_factory=list)


def unassigned_reason(case: PendingCase, pool: Iterable[CollectorState]) -> str:
    """Return why no collector of `pool` can take `case`, as a reason code."""
    candidates = [c for c in pool if c.available]
    if not candidates:
        return "no_active_collector"
    serving = [c for c in candidates if c.serves(case.province_key)]
    if not serving:
        return "no_collector_for_region"
    if not any(c.skill >= case.tier for c in serving):
        return "no_collector_with_skill"
    return "all_at_capacity"


def plan_assignment(
    cases: Iterable[PendingCase], collectors: list[CollectorState]
) -> Plan:
    """Assign `cases` to the available `collectors` by the automatic rule.

    Cases with the same province and tier share one heap of eligible collectors,
    keyed by (open balance, open cases, user id). A collector's key only grows, so an
    entry left behind in another heap is at most too small: when it reaches the top,
    it is refreshed and pushed back before anyone is picked from that heap.
    """
    pool = [c for c in collectors if c.available]
    by_id = {c.id: c for c in pool}
    heaps: dict[tuple[str | None, int], list[tuple[int, int, int]]] = {}
    reasons: dict[tuple[str | None, int], str] = {}
    plan = Plan()
    assigned = plan.assigned

    ordered = sorted(cases, key=lambda item: (-item.tier, -item.balance_cents, item.id))
    for case in ordered:
        key = (case.province_key, case.tier)
        heap = heaps.get(key)
        if heap is None:
            heap = [
                c.rank
                for c in pool
                if c.has_room and c.skill >= case.tier and c.serves(case.province_key)
            ]
            heapq.heapify(heap)
            heaps[key] = heap
        chosen = _pop_least_loaded(heap, by_id)
        if chosen is None:
            if key not in reasons:
                reasons[key] = unassigned_reason(case, pool)
            plan.unassigned.append((case, reasons[key]))
            continue
        chosen.take(case.balance_cents)
        if chosen.open_cases < chosen.capacity:
            heapq.heappush(heap, chosen.rank)
        assigned.append((case, chosen))
    return plan


def _pop_least_loaded(
    heap: list[tuple[int, int, int]], by_id: dict[int, CollectorState]
) -> CollectorState | None:
    while heap:
        entry = heap[0]
        collector = by_id[entry[2]]
        if collector.open_cases >= collector.capacity:
            heapq.heappop(heap)
        elif entry != collector.rank:
            heapq.heapreplace(heap, collector.rank)
        else:
            heapq.heappop(heap)
            return collector
    return None


def best_collector(
    case: PendingCase, pool: Iterable[CollectorState], excluded: set[int]
) -> CollectorState | None:
    """Return the collector the automatic rule picks for one case, or None."""
    candidates = [
        c
        for c in pool
        if c.available
        and c.has_room
        and c.id not in excluded
        and c.skill >= case.tier
        and c.serves(case.province_key)
    ]
    return min(candidates, key=lambda collector: collector.rank, default=None)


# Loading rows


def _to_cents(amount: Decimal | None) -> int:
    return int((amount or Decimal(0)) * 100)


def from_cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


COLLECTORS_SQL = text("""
SELECT u.id, u.username, u.display_name, u.team_id, u.regions,
    ARRAY(SELECT recova_province_key(r) FROM unnest(u.regions) AS r) AS region_keys,
    u.skill, u.capacity, u.is_active, u.is_paused, u.version,
    coalesce(load.open_cases, 0) AS open_cases, coalesce(load.balance, 0) AS balance
FROM users u
LEFT JOIN (
    SELECT collector_id, count(*) AS open_cases, sum(balance) AS balance
    FROM cases
    WHERE collector_id IS NOT NULL AND status IN :open
    GROUP BY collector_id
) AS load ON load.collector_id = u.id
WHERE u.role = 'collector'
    AND (CAST(:team AS int) IS NULL OR u.team_id = :team)
    AND (CAST(:users AS int[]) IS NULL OR u.id = ANY(CAST(:users AS int[])))
ORDER BY u.id
""").bindparams(open_statuses())


def load_collectors(
    session: Session, *, team_id: int | None = None, user_ids: list[int] | None = None
) -> list[CollectorState]:
    """Return collectors with their open cases and balance, ordered by user id."""
    rows = session.execute(COLLECTORS_SQL, {"team": team_id, "users": user_ids}).all()
    return [
        CollectorState(
            id=row.id,
            username=row.username,
            display_name=row.display_name,
            team_id=row.team_id,
            regions=list(row.regions or []),
            region_keys=frozenset(key for key in row.region_keys if key),
            skill=row.skill,
            capacity=row.capacity,
            is_active=row.is_active,
            is_paused=row.is_paused,
            open_cases=row.open_cases,
            balance_cents=_to_cents(row.balance),
            version=row.version,
        )
        for row in rows
    ]


def load_cases(
    session: Session, *conditions: ColumnElement[bool], lock: bool = False
) -> list[PendingCase]:
    """Return the cases that match `conditions`, ordered by id, locked FOR UPDATE
    when `lock` is set."""
    tiers = {
        code: strategy.min_skill
        for code, strategy in segments.current_strategies(session).items()
    }
    query = (
        select(
            Case.id,
            Case.case_no,
            Creditor.name,
            cast(Case.balance * 100, BigInteger),
            Debtor.province,
            Case.segment,
            Case.strategy,
            Case.version,
            Case.status,
            Case.collector_id,
            Case.team_id,
        )
        .join(Debtor, Debtor.id == Case.debtor_id)
        .join(Creditor, Creditor.id == Case.creditor_id)
        .where(*conditions)
        .order_by(Case.id)
    )
    if lock:
        query = query.with_for_update(of=Case)
    rows = session.execute(query).all()
    keys = province_keys(session, {row[4] for row in rows})
    # Plain tuples and positional arguments: this runs for every new case of an
    # automatic run, so per-row overhead counts.
    return [
        PendingCase(
            case_id, case_no, creditor, cents, tiers.get(strategy or "", 1),
            province, keys.get(province), segment, strategy, version, status,
            collector_id, team_id,
        )
        for (
            case_id, case_no, creditor, cents, province, segment,
            strategy, version, status, collector_id, team_id,
        ) in rows
    ]  # fmt: skip


def province_keys(session: Session, provinces: set[str | None]) -> dict[str, str]:
    """Return the matching key of each province name, computed by the database
    function recova_province_key once per distinct name."""
    names = sorted(name for name in provinces if name)
    if not names:
        return {}
    rows = session.execute(
        text(
            "SELECT name, recova_province_key(name) "
            "FROM unnest(CAST(:names AS text[])) AS name"
        ),
        {"names": names},
    ).all()
    return dict(rows)


def _creditor_id(session: Session, name: str | None) -> int | None:
    if name is None or not name.strip():
        return None
    found = session.scalar(select(Creditor.id).where(Creditor.name == name.strip()))
    if found is None:
        raise NotFound("creditor_not_found", creditor=name.strip())
    return found


def lock_assignment(session: Session) -> None:
    session.execute(text(ASSIGN_LOCK_SQL))


# Automatic assignment


@dataclass(slots=True)
class AssignedCase:
    case_id: int
    case_no: str
    creditor: str
    collector_id: int
    collector: str
    balance: Decimal
    segment: str | None


@dataclass(slots=True)
class UnassignedCase:
    case_id: int
    case_no: str
    creditor: str
    reason: str
    province: str | None
    segment: str | None
    balance: Decimal


@dataclass(frozen=True)
class CollectorSummary:
    user_id: int
    username: str
    open_cases: int
    balance: Decimal
    capacity: int
    new_cases: int
    new_balance: Decimal
    available: bool


@dataclass
class AutoAssignResult:
    dry_run: bool
    run_id: str
    # Hash of the planned moves; applying with it fails if the plan has changed.
    fingerprint: str
    assigned: list[AssignedCase]
    unassigned: list[UnassignedCase]
    collectors: list[CollectorSummary]

    def reasons(self) -> dict[str, int]:
        return dict(Counter(case.reason for case in self.unassigned))

    def as_json(self) -> dict[str, Any]:
        """Return the result keyed by case number; a case number that two creditors
        share in this run is written as `case_no@creditor`."""
        keys = _case_keys(self.assigned, self.unassigned)
        return {
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "assigned": {keys[c.case_id]: c.collector for c in self.assigned},
            "unassigned": {keys[c.case_id]: c.reason for c in self.unassigned},
            "collectors": {
                c.username: {
                    "open_cases": c.open_cases,
                    "balance": f"{c.balance:.2f}",
                    "capacity": c.capacity,
                    "new_cases": c.new_cases,
                    "new_balance": f"{c.new_balance:.2f}",
                }
                for c in self.collectors
            },
        }


def _case_keys(
    assigned: list[AssignedCase], unassigned: list[UnassignedCase]
) -> dict[int, str]:
    rows = [(c.case_id, c.case_no, c.creditor) for c in assigned]
    rows += [(c.case_id, c.case_no, c.creditor) for c in unassigned]
    counts = Counter(case_no for _, case_no, _ in rows)
    return {
        case_id: case_no if counts[case_no] == 1 else f"{case_no}@{creditor}"
        for case_id, case_no, creditor in rows
    }


def auto_assign(
    *,
    session: Session,
    actor: Actor,
    creditor: str | None = None,
    dry_run: bool = False,
    expected_fingerprint: str | None = None,
) -> AutoAssignResult:
    """Assign every `new` case (of one creditor, if named) by the automatic rule.

    The `new` cases are classified again first, because their days past due grow.
    A dry run computes the same result and rolls everything back. With
    `expected_fingerprint`, the run raises Conflict when the plan differs from the
    preview that the manager saw, for example because a collector was paused since.
    """
    require_role(actor, *MANAGERS)
    creditor_id = _creditor_id(session, creditor)
    lock_assignment(session)
    segments.classify(session, actor=actor, creditor_id=creditor_id, statuses=("new",))

    conditions = [Case.status == "new"]
    if creditor_id is not None:
        conditions.append(Case.creditor_id == creditor_id)
    pending = load_cases(session, *conditions)
    collectors = load_collectors(session)
    before = {c.id: (c.open_cases, c.balance_cents) for c in collectors}
    plan = plan_assignment(pending, collectors)
    result = _result(plan, collectors, before, dry_run=dry_run)

    if dry_run:
        session.rollback()
        return result
    if expected_fingerprint is not None and expected_fingerprint != result.fingerprint:
        session.rollback()
        raise Conflict("assignment_plan_changed")
    applied = _write_auto(session, actor, plan, result.run_id)
    _write_reasons(session, plan.unassigned)
    if len(applied) != len(plan.assigned):
        result.assigned = [c for c in result.assigned if c.case_id in applied]
    _audit_auto(session, actor, result, creditor)
    session.commit()
    logger.info(
        "auto assignment %s by %s: %s assigned, %s left unassigned",
        result.run_id,
        actor.username,
        len(result.assigned),
        len(result.unassigned),
    )
    return result


def _result(
    plan: Plan,
    collectors: list[CollectorState],
    before: dict[int, tuple[int, int]],
    *,
    dry_run: bool,
) -> AutoAssignResult:
    assigned = [
        AssignedCase(
            case_id=case.id,
            case_no=case.case_no,
            creditor=case.creditor,
            collector_id=collector.id,
            collector=collector.username,
            balance=from_cents(case.balance_cents),
            segment=case.segment,
        )
        for case, collector in plan.assigned
    ]
    unassigned = [
        UnassignedCase(
            case_id=case.id,
            case_no=case.case_no,
            creditor=case.creditor,
            reason=reason,
            province=case.province,
            segment=case.segment,
            balance=from_cents(case.balance_cents),
        )
        for case, reason in plan.unassigned
    ]
    summaries = [
        CollectorSummary(
            user_id=c.id,
            username=c.username,
            open_cases=c.open_cases,
            balance=from_cents(c.balance_cents),
            capacity=c.capacity,
            new_cases=c.open_cases - before[c.id][0],
            new_balance=from_cents(c.balance_cents - before[c.id][1]),
            available=c.available,
        )
        for c in collectors
    ]
    digest = hashlib.sha256()
    digest.update(array("q", [case.case_id for case in assigned]).tobytes())
    digest.update(array("q", [case.collector_id for case in assigned]).tobytes())
    digest.update(array("q", [case.case_id for case in unassigned]).tobytes())
    digest.update(",".join(case.reason for case in unassigned).encode())
    return AutoAssignResult(
        dry_run=dry_run,
        run_id=uuid.uuid4().hex,
        fingerprint=digest.hexdigest(),
        assigned=assigned,
        unassigned=unassigned,
        collectors=summaries,
    )


# The plan sends only case and collector ids; each case's team comes from its
# collector and its due times from its strategy, joined here. The UPDATE checks the
# status again, so a case that was moved by hand after it was read keeps that move.
# Such a case is missing from RETURNING and so from the result.
AUTO_WRITE_SQL = """
WITH moved AS (
    UPDATE cases c SET
        status = 'assigned',
        collector_id = plan.collector_id,
        team_id = collector.team_id,
        assigned_at = now(),
        first_contact_due_at = now() + make_interval(hours => timing.hours),
        next_action_at = now() + make_interval(days => timing.first_day),
        unassigned_reason = NULL,
        version = c.version + 1,
        updated_by = :actor_id,
        updated_at = now()
    FROM unnest(CAST(:ids AS bigint[]), CAST(:collectors AS int[]))
            AS plan(id, collector_id),
        users collector,
        unnest(CAST(:codes AS text[]), CAST(:hours AS int[]),
               CAST(:first_days AS int[])) AS timing(code, hours, first_day)
    WHERE c.id = plan.id
        AND collector.id = plan.collector_id
        AND timing.code = coalesce(c.strategy, '')
        AND c.status = 'new'
    RETURNING c.id, plan.collector_id
),
logged AS (
    INSERT INTO case_events (case_id, actor_id, actor_name, kind, to_collector_id,
                             rule, detail)
    SELECT id, :actor_id, :actor_name, 'assigned', collector_id, 'auto',
        CAST(:detail AS jsonb)
    FROM moved
    RETURNING case_id
)
SELECT case_id FROM logged
"""
# Due times for a case without a strategy, which classification normally prevents.
DEFAULT_TIMING = (24, 0)


def _write_auto(session: Session, actor: Actor, plan: Plan, run_id: str) -> set[int]:
    if not plan.assigned:
        return set()
    timing = {
        code: strategy_timing(strategy)
        for code, strategy in segments.current_strategies(session).items()
    }
    timing.setdefault("", DEFAULT_TIMING)
    rows = session.execute(
        text(AUTO_WRITE_SQL),
        {
            "ids": [case.id for case, _ in plan.assigned],
            "collectors": [collector.id for _, collector in plan.assigned],
            "codes": list(timing),
            "hours": [hours for hours, _ in timing.values()],
            "first_days": [day for _, day in timing.values()],
            "actor_id": actor.id,
            "actor_name": actor.username,
            "detail": json.dumps({"run": run_id, "order": "least_open_balance"}),
        },
    ).scalars()
    return set(rows)


def strategy_timing(strategy: segments.StrategyVersion) -> tuple[int, int]:
    """Return the hours to first contact and the day of the first step."""
    return strategy.first_contact_hours, min(step.day for step in strategy.steps)


def _write_reasons(session: Session, unassigned: list[tuple[PendingCase, str]]) -> None:
    if not unassigned:
        return
    session.execute(
        text(
            "UPDATE cases c SET unassigned_reason = u.reason "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[])) "
            "AS u(id, reason) "
            "WHERE c.id = u.id AND c.status = 'new' "
            "AND c.unassigned_reason IS DISTINCT FROM u.reason"
        ),
        {
            "ids": [case.id for case, _ in unassigned],
            "reasons": [reason for _, reason in unassigned],
        },
    )


def _audit_auto(
    session: Session, actor: Actor, result: AutoAssignResult, creditor: str | None
) -> None:
    per_collector = Counter(case.collector for case in result.assigned)
    audit.record(
        session,
        actor,
        "cases_auto_assigned",
        "assignment_run",
        result.run_id,
        after={"assigned": dict(sorted(per_collector.items()))},
        detail={
            "creditor": creditor,
            "assigned": len(result.assigned),
            "unassigned": len(result.unassigned),
            "reasons": result.reasons(),
            "rule": "least_open_balance",
        },
    )
