"""My queue: a collector's workable cases in the order they should be worked.

Order, top first:
1. broken promises that no attempt has followed since (oldest break first);
2. first contacts not yet made whose due time is within 4 hours or past;
3. promises due today;
4. every other case by next action, past first, then no next action last.
Inside each tier, ties go to risk grade A first, then the higher balance, then the
case id. A case sits in the first tier it matches.

Each tier is read by its own partial index (db/models_queue.py) with a LIMIT of the
rows the page needs, and only those few rows are sorted, so the query costs the same
for a collector with 50 cases or 50,000.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import User
from db.models_queue import BROKEN_SQL, QUEUE_STATUS_SQL
from recova.errors import InvalidInput, PermissionDenied
from recova.settings import get_settings
from services.actors import MANAGERS, Actor, require_role

QUEUE_ROLES = ("collector", "team_lead", *MANAGERS)
# A first contact whose due time is this close, or past, goes to the top.
FIRST_CONTACT_WINDOW = timedelta(hours=4)
# Counting the rows behind a filter stops here.
COUNT_LIMIT = 10_000
Due = Literal["all", "due_now", "overdue", "promises_today", "broken"]
REASONS = (
    "broken_promise",
    "first_contact_due",
    "promise_today",
    "overdue",
    "due_now",
    "scheduled",
    "no_next_action",
)


class QueueFilter(BaseModel):
    collector_id: int | None = None
    due: Due = "all"
    bucket: str | None = None
    segment: str | None = None
    status: Literal["assigned", "in_progress", "promised", "disputed"] | None = None
    grade: str | None = Field(default=None, max_length=1)
    search: str | None = Field(default=None, max_length=100)
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=50, ge=1, le=200)


@dataclass
class QueueCounters:
    due_now: int = 0
    overdue: int = 0
    promises_today: int = 0
    broken: int = 0
    first_contact_due: int = 0


@dataclass
class QueuePage:
    rows: list[dict[str, Any]]
    total: int
    total_capped: bool
    counters: QueueCounters
    collector_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Moments:
    now: datetime
    soon: datetime
    day_start: datetime
    today: date


def _moments(now: datetime | None) -> _Moments:
    zone = ZoneInfo(get_settings().timezone)
    moment = (now or datetime.now(zone)).astimezone(zone)
    today = moment.date()
    return _Moments(
        now=moment,
        soon=moment + FIRST_CONTACT_WINDOW,
        day_start=datetime.combine(today, time(0), zone),
        today=today,
    )


def queue_collectors(
    session: Session, actor: Actor, collector_id: int | None
) -> list[int]:
    """Return the collectors whose queue `actor` may read, or just `collector_id`."""
    require_role(actor, *QUEUE_ROLES)
    if actor.role == "collector":
        if collector_id not in (None, actor.id):
            raise PermissionDenied("queue_not_yours")
        return [actor.id]

    if actor.role == "team_lead":
        team = list(
            session.scalars(
                select(User.id).where(User.team_id == actor.team_id).order_by(User.id)
            )
        )
        if collector_id is None:
            return team
        if collector_id not in team:
            raise PermissionDenied("queue_not_your_team", user=collector_id)
        return [collector_id]

    if collector_id is None:
        raise InvalidInput("queue_collector_required")
    return [collector_id]


# The four tier conditions. Each is written so that it is never NULL, because the
# last tier excludes the earlier ones with NOT.
TIER_BROKEN = f"({BROKEN_SQL})"
TIER_FIRST_CONTACT = (
    "(c.first_contact_at IS NULL AND c.first_contact_due_at IS NOT NULL"
    " AND c.first_contact_due_at <= :soon)"
)
TIER_PROMISE = "(c.promise_due_on IS NOT NULL AND c.promise_due_on = :today)"

DUE_CONDITIONS = {
    "all": "TRUE",
    "due_now": "c.next_action_at <= :now",
    "overdue": "c.next_action_at < :day_start",
    "promises_today": TIER_PROMISE,
    "broken": TIER_BROKEN,
}

ROW_COLUMNS = """
    c.id, c.case_no, c.debtor_id, c.bucket, c.overdue_since, c.balance, c.segment,
    c.risk_grade, c.status, c.next_action_at, c.first_contact_due_at,
    c.promise_due_on, c.promise_broken_at, c.last_attempt_at, c.version,
    c.flags
"""


def _tier_sql(tier: int, extra: str) -> str:
    """Return the LIMITed scan of one tier's index for the collector `k.id`.

    It reads only the sort keys, which the index contains, so without filters
    the scan does not visit the table.
    """
    if tier == 0:
        where = TIER_BROKEN
        sort_key = "c.promise_broken_at"
    elif tier == 1:
        where = f"{TIER_FIRST_CONTACT} AND NOT {TIER_BROKEN}"
        sort_key = "c.first_contact_due_at"
    elif tier == 2:
        where = f"{TIER_PROMISE} AND NOT {TIER_BROKEN} AND NOT {TIER_FIRST_CONTACT}"
        # Every row of this tier is due on the same day.
        sort_key = "CAST(NULL AS timestamptz)"
    else:
        where = f"NOT {TIER_BROKEN} AND NOT {TIER_FIRST_CONTACT} AND NOT {TIER_PROMISE}"
        sort_key = "c.next_action_at"
    # BROKEN_SQL names bare columns, which resolve to `c` inside this subquery.
    return f"""
        (SELECT {tier} AS tier, {sort_key} AS sort_at, c.risk_grade, c.balance, c.id
         FROM cases c
         WHERE c.collector_id = k.id AND c.{QUEUE_STATUS_SQL}
           AND {where} {extra}
         ORDER BY {sort_key} ASC NULLS LAST, c.risk_grade ASC NULLS LAST,
                  c.balance DESC, c.id
         LIMIT :fetch)"""


def _filters_sql(filters: QueueFilter, params: dict[str, Any]) -> str:
    parts = [f"AND {DUE_CONDITIONS[filters.due]}"]
    for name in ("bucket", "segment", "status"):
        value = getattr(filters, name)
        if value:
            parts.append(f"AND c.{name} = :{name}")
            params[name] = value
    if filters.grade:
        parts.append("AND c.risk_grade = :grade")
        params["grade"] = filters.grade.upper()
    term = (filters.search or "").strip()
    if term:
        parts.append(
            "AND (c.case_no = :term OR starts_with(c.case_no, :term)"
            " OR EXISTS (SELECT 1 FROM debtors d WHERE d.id = c.debtor_id"
            " AND starts_with(d.name, :term)))"
        )
        params["term"] = term
    return " ".join(parts)


def _tiers_for(due: str) -> tuple[int, ...]:
    if due == "broken":
        return (0,)
    if due == "promises_today":
        return (0, 1, 2)
    return (0, 1, 2, 3)


def _queue_sql(filters: QueueFilter, params: dict[str, Any]) -> str:
    """Return the page query: the top rows' keys from the tier indexes first, then
    the case, debtor and collector rows of just those."""
    extra = _filters_sql(filters, params)
    branches = " UNION ALL ".join(_tier_sql(t, extra) for t in _tiers_for(filters.due))
    return f"""
        WITH top AS (
            SELECT q.tier, q.sort_at, q.risk_grade, q.balance, q.id
            FROM unnest(CAST(:collectors AS int[])) AS k(id)
            CROSS JOIN LATERAL ({branches}) AS q
            ORDER BY q.tier, q.sort_at ASC NULLS LAST, q.risk_grade ASC NULLS LAST,
                     q.balance DESC, q.id
            OFFSET :offset LIMIT :limit
        )
        SELECT top.tier, {ROW_COLUMNS}, d.name AS debtor_name,
            u.username AS collector
        FROM top
        JOIN cases c ON c.id = top.id
        JOIN debtors d ON d.id = c.debtor_id
        LEFT JOIN users u ON u.id = c.collector_id
        ORDER BY top.tier, top.sort_at ASC NULLS LAST, top.risk_grade ASC NULLS LAST,
                 top.balance DESC, top.id"""


# Five index range counts in one statement, each on its own partial index.
COUNTERS_SQL = f"""
SELECT
    (SELECT count(*) FROM cases c WHERE c.collector_id = k.id
        AND c.{QUEUE_STATUS_SQL} AND c.next_action_at <= :now) AS due_now,
    (SELECT count(*) FROM cases c WHERE c.collector_id = k.id
        AND c.{QUEUE_STATUS_SQL} AND c.next_action_at < :day_start) AS overdue,
    (SELECT count(*) FROM cases c WHERE c.collector_id = k.id
        AND c.{QUEUE_STATUS_SQL} AND c.promise_due_on IS NOT NULL
        AND c.promise_due_on = :today) AS promises_today,
    (SELECT count(*) FROM cases c WHERE c.collector_id = k.id
        AND c.{QUEUE_STATUS_SQL} AND {BROKEN_SQL}) AS broken,
    (SELECT count(*) FROM cases c WHERE c.collector_id = k.id
        AND c.{QUEUE_STATUS_SQL} AND c.first_contact_at IS NULL
        AND c.first_contact_due_at <= :soon) AS first_contact_due
FROM unnest(CAST(:collectors AS int[])) AS k(id)
"""


def _counters(
    session: Session, collectors: list[int], moments: _Moments
) -> QueueCounters:
    rows = session.execute(
        text(COUNTERS_SQL),
        {
            "collectors": collectors,
            "now": moments.now,
            "day_start": moments.day_start,
            "today": moments.today,
            "soon": moments.soon,
        },
    ).all()
    counters = QueueCounters()
    for row in rows:
        for name, value in row._mapping.items():
            setattr(counters, name, getattr(counters, name) + value)
    return counters


def _total(
    session: Session, filters: QueueFilter, collectors: list[int], params: dict
) -> int:
    extra = _filters_sql(filters, dict(params))
    return session.scalar(
        text(
            f"""
            SELECT count(*) FROM (
                SELECT 1 FROM cases c
                WHERE c.collector_id = ANY(CAST(:collectors AS int[]))
                  AND c.{QUEUE_STATUS_SQL} {extra}
                LIMIT {COUNT_LIMIT + 1}) AS counted"""
        ),
        params,
    )


def _reason(row: dict[str, Any], moments: _Moments) -> str:
    if row["tier"] < 3:
        return REASONS[row["tier"]]
    next_action = row["next_action_at"]
    if next_action is None:
        return "no_next_action"
    if next_action < moments.day_start:
        return "overdue"
    if next_action <= moments.now:
        return "due_now"
    return "scheduled"


def my_queue(
    *,
    session: Session,
    actor: Actor,
    filters: QueueFilter,
    now: datetime | None = None,
) -> QueuePage:
    """Return one page of the queue with its counters, scoped to the actor's role.

    A collector reads their own queue; a team lead reads the team's, or one
    collector of the team; a manager or admin names the collector.
    """
    collectors = queue_collectors(session, actor, filters.collector_id)
    moments = _moments(now)
    offset = (filters.page - 1) * filters.page_size
    params: dict[str, Any] = {
        "collectors": collectors,
        "now": moments.now,
        "soon": moments.soon,
        "day_start": moments.day_start,
        "today": moments.today,
        "offset": offset,
        "limit": filters.page_size,
        "fetch": offset + filters.page_size,
    }
    sql = _queue_sql(filters, params)
    rows = [dict(row) for row in session.execute(text(sql), params).mappings()]
    for row in rows:
        row["dpd"] = max((moments.today - row.pop("overdue_since")).days, 0)
        row["reason"] = _reason(row, moments)

    total = _total(session, filters, collectors, params)
    return QueuePage(
        rows=rows,
        total=min(total, COUNT_LIMIT),
        total_capped=total > COUNT_LIMIT,
        counters=_counters(session, collectors, moments),
        collector_ids=collectors,
    )


def next_case_id(
    *, session: Session, actor: Actor, collector_id: int | None = None
) -> int | None:
    """Return the id of the case at the top of the queue, or None when it is empty."""
    page = my_queue(
        session=session,
        actor=actor,
        filters=QueueFilter(collector_id=collector_id, page_size=1),
    )
    return page.rows[0]["id"] if page.rows else None


def list_queue_collectors(*, session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Return the collectors whose queue the actor may open: id and user name."""
    require_role(actor, *QUEUE_ROLES)
    query = select(User.id, User.username, User.display_name).where(
        User.role.in_(("collector", "team_lead")), User.is_active
    )
    if actor.role == "collector":
        query = query.where(User.id == actor.id)
    elif actor.role == "team_lead":
        query = query.where(User.team_id == actor.team_id)
    return [
        dict(row) for row in session.execute(query.order_by(User.username)).mappings()
    ]
