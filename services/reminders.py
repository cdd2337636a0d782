"""Reminders (提醒) for collectors and team leads, and the daily digest.

Four kinds, most urgent first: promises that broke (until the case is worked again),
first contacts due within the next 4 hours or overdue, promises due today, and cases
idle for `reminders.idle_days` days (setting, default 7) since the last attempt or the
assignment. A collector sees their own cases, a team lead their team's.
"""

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.orm import Session

from db.models import Case, Debtor, Notification, Setting, User
from db.models_followup import Promise
from recova.errors import InvalidInput, NotFound, PermissionDenied
from recova.settings import get_settings
from services.actors import Actor, require_role
from services.segments import local_today

logger = logging.getLogger(__name__)

KINDS = ("promise_broken", "first_contact_due", "promise_due", "idle")
READER_ROLES = ("collector", "team_lead", "manager", "admin")
WORKING_STATUSES = ("assigned", "in_progress", "promised")
IDLE_DAYS_KEY = "reminders.idle_days"
DEFAULT_IDLE_DAYS = 7
FIRST_CONTACT_LEAD = timedelta(hours=4)
LIMIT_PER_KIND = 200
DIGEST_KIND = "daily_digest"


@dataclass
class Reminder:
    kind: str
    case_id: int
    case_no: str
    debtor_name_masked: str
    due_at: datetime | None
    detail: str

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["due_at"] = self.due_at.isoformat() if self.due_at else None
        return data


def mask_name(name: str | None) -> str:
    """Keep the first character of a name: 张三丰 -> 张**."""
    name = (name or "").strip()
    if not name:
        return ""
    return name[0] + "*" * (len(name) - 1)


def idle_days(session: Session) -> int:
    stored = session.scalar(select(Setting.value).where(Setting.key == IDLE_DAYS_KEY))
    if isinstance(stored, dict):
        stored = stored.get("days", stored.get("value"))
    try:
        days = int(stored) if stored is not None else DEFAULT_IDLE_DAYS
    except (TypeError, ValueError):
        days = DEFAULT_IDLE_DAYS
    return max(days, 1)


def _scope(session: Session, actor: Actor, user_id: int | None) -> ColumnElement[bool]:
    """Return the condition selecting the cases whose reminders the caller requested."""
    require_role(actor, *READER_ROLES)
    if actor.role == "collector":
        if user_id not in (None, actor.id):
            raise PermissionDenied("reminders_not_yours")
        return Case.collector_id == actor.id
    if user_id is None:
        if actor.role == "team_lead":
            return Case.team_id == actor.team_id
        if actor.id is None:
            raise InvalidInput("reminders_user_required")
        user_id = actor.id
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user_not_found", user_id=user_id)
    if actor.role == "team_lead" and user.team_id != actor.team_id:
        raise PermissionDenied("reminders_not_your_team", username=user.username)
    if user.role == "team_lead":
        return Case.team_id == user.team_id
    return Case.collector_id == user.id


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(get_settings().timezone))


def _now_for(day: date) -> datetime:
    """Return the moment reminders are computed at: now, or the start of a past or
    future day given explicitly (the digest of that morning)."""
    now = datetime.now(UTC)
    if day == local_today():
        return now
    return _day_start(day)


def _case_query(*columns):
    return (
        select(Case.id, Case.case_no, Debtor.name, *columns)
        .join(Debtor, Debtor.id == Case.debtor_id)
        .where(Case.status.in_(WORKING_STATUSES))
    )


def _broken(session: Session, scope, now: datetime) -> list[Reminder]:
    rows = session.execute(
        _case_query(Case.promise_broken_at)
        .where(scope, Case.promise_broken_at.is_not(None))
        .order_by(Case.promise_broken_at, Case.id)
        .limit(LIMIT_PER_KIND)
    )
    return [
        Reminder("promise_broken", cid, no, mask_name(name), at, "")
        for cid, no, name, at in rows
    ]


def _first_contacts(session: Session, scope, now: datetime) -> list[Reminder]:
    rows = session.execute(
        _case_query(Case.first_contact_due_at)
        .where(
            scope,
            Case.first_contact_at.is_(None),
            Case.first_contact_due_at <= now + FIRST_CONTACT_LEAD,
        )
        .order_by(Case.first_contact_due_at, Case.id)
        .limit(LIMIT_PER_KIND)
    )
    return [
        Reminder(
            "first_contact_due",
            cid,
            no,
            mask_name(name),
            due,
            "overdue" if due < now else "due",
        )
        for cid, no, name, due in rows
    ]


def _promises_due(session: Session, scope, day: date) -> list[Reminder]:
    rows = session.execute(
        _case_query(Promise.amount)
        .join(Promise, Promise.case_id == Case.id)
        .where(scope, Promise.status == "pending", Promise.due_on == day)
        .order_by(Case.id, Promise.id)
        .limit(LIMIT_PER_KIND)
    )
    return [
        Reminder("promise_due", cid, no, mask_name(name), _day_start(day), f"{amt:.2f}")
        for cid, no, name, amt in rows
    ]


def _idle(session: Session, scope, now: datetime, days: int) -> list[Reminder]:
    since = func.coalesce(Case.last_attempt_at, Case.assigned_at)
    rows = session.execute(
        _case_query(since)
        .where(scope, since < now - timedelta(days=days))
        .order_by(since, Case.id)
        .limit(LIMIT_PER_KIND)
    )
    return [
        Reminder(
            "idle",
            cid,
            no,
            mask_name(name),
            last + timedelta(days=days),
            str((now - last) // timedelta(days=1)),
        )
        for cid, no, name, last in rows
    ]


def reminders_for(
    *,
    session: Session,
    actor: Actor,
    today: date | None = None,
    user_id: int | None = None,
) -> list[Reminder]:
    """Return the caller's reminders (or `user_id`'s, for a lead or manager)."""
    scope = _scope(session, actor, user_id)
    day = today or local_today()
    now = _now_for(day)
    return [
        *_broken(session, scope, now),
        *_first_contacts(session, scope, now),
        *_promises_due(session, scope, day),
        *_idle(session, scope, now, idle_days(session)),
    ]


# The daily digest.

COUNT_SQL = """
SELECT c.collector_id, c.team_id,
    count(*) FILTER (WHERE c.promise_broken_at IS NOT NULL) AS promise_broken,
    count(*) FILTER (WHERE c.first_contact_at IS NULL
                     AND c.first_contact_due_at <= :soon) AS first_contact_due,
    count(*) FILTER (WHERE EXISTS (SELECT 1 FROM promises p WHERE p.case_id = c.id
                     AND p.status = 'pending' AND p.due_on = :day)) AS promise_due,
    count(*) FILTER (WHERE coalesce(c.last_attempt_at, c.assigned_at)
                     < :idle_since) AS idle
FROM cases c
WHERE c.collector_id IS NOT NULL AND c.status = ANY(:statuses)
GROUP BY c.collector_id, c.team_id
"""


def _digest_counts(session: Session, day: date) -> dict[int, dict[str, int]]:
    """Reminder counts per user: collectors their own, team leads their team's."""
    now = _now_for(day)
    rows = session.execute(
        text(COUNT_SQL),
        {
            "soon": now + FIRST_CONTACT_LEAD,
            "day": day,
            "idle_since": now - timedelta(days=idle_days(session)),
            "statuses": list(WORKING_STATUSES),
        },
    ).mappings()
    by_collector: dict[int, dict[str, int]] = {}
    by_team: dict[int, dict[str, int]] = {}
    for row in rows:
        counts = {kind: int(row[kind]) for kind in KINDS}
        mine = by_collector.setdefault(row["collector_id"], dict.fromkeys(KINDS, 0))
        for kind in KINDS:
            mine[kind] += counts[kind]
        if row["team_id"] is not None:
            team = by_team.setdefault(row["team_id"], dict.fromkeys(KINDS, 0))
            for kind in KINDS:
                team[kind] += counts[kind]
    users = session.execute(
        select(User.id, User.role, User.team_id).where(
            User.is_active, User.role.in_(("collector", "team_lead"))
        )
    )
    result = {}
    for user_id, role, team_id in users:
        counts = by_collector.get(user_id) if role == "collector" else None
        if role == "team_lead" and team_id is not None:
            counts = by_team.get(team_id)
        if counts and any(counts.values()):
            result[user_id] = counts
    return result


def send_daily_digest(*, session: Session, day: date) -> int:
    """Write the day's digest notification to each collector and team lead who has
    reminders; return how many were written. A second run that day writes none."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"recova.digest:{day.isoformat()}"},
    )
    sent = set(
        session.scalars(
            select(Notification.user_id).where(
                Notification.kind == DIGEST_KIND,
                Notification.params["day"].astext == day.isoformat(),
            )
        )
    )
    written = 0
    for user_id, counts in sorted(_digest_counts(session, day).items()):
        if user_id in sent:
            continue
        session.add(
            Notification(
                user_id=user_id,
                kind=DIGEST_KIND,
                params={"day": day.isoformat(), **counts},
            )
        )
        written += 1
    session.commit()
    logger.info("daily digest of %s: %s notifications", day, written)
    return written
