"""Indexes behind a collector's queue (my queue), one per tier of its order.

The queue lists a collector's workable cases in four tiers: broken promises not yet
followed up, first contacts due within 4 hours or late, promises due today, then
everything else by next action. Each tier is read by its own partial index with a
LIMIT, so the top 50 rows of one collector never sort more than a few hundred
entries, however many cases the table holds. The same Index objects are created by
migration 0007.
"""

from sqlalchemy import Index, func, text

from db.models import Case

# Open statuses that put a case in its collector's queue. A paused case leaves the
# queue until it is resumed; a new case has no collector yet.
QUEUE_STATUSES = ("assigned", "in_progress", "promised", "disputed")
QUEUE_STATUS_SQL = "status IN ('assigned', 'in_progress', 'promised', 'disputed')"
# A broken promise that no attempt has followed since.
BROKEN_SQL = (
    "promise_broken_at IS NOT NULL"
    " AND (last_attempt_at IS NULL OR last_attempt_at < promise_broken_at)"
)

# Columns every tier sorts by, and the columns that decide a case's tier. With them
# in the indexes, the tier scans are index-only and visit the table only for the
# rows shown.
SORT_COLUMNS = ("risk_grade", "balance", "id")
TIER_COLUMNS = (
    "promise_broken_at",
    "last_attempt_at",
    "first_contact_at",
    "first_contact_due_at",
    "promise_due_on",
)

# The last tier (next action, then risk grade A first, then higher balance), and the
# due-now and overdue counters as index-only range counts.
QUEUE_NEXT_INDEX = Index(
    "ix_cases_queue_next",
    Case.collector_id,
    Case.next_action_at,
    Case.risk_grade,
    Case.balance.desc(),
    Case.id,
    postgresql_include=[*TIER_COLUMNS],
    postgresql_where=text(f"collector_id IS NOT NULL AND {QUEUE_STATUS_SQL}"),
)
QUEUE_BROKEN_INDEX = Index(
    "ix_cases_queue_broken",
    Case.collector_id,
    Case.promise_broken_at,
    postgresql_include=list(SORT_COLUMNS),
    postgresql_where=text(
        f"collector_id IS NOT NULL AND {QUEUE_STATUS_SQL} AND {BROKEN_SQL}"
    ),
)
QUEUE_FIRST_CONTACT_INDEX = Index(
    "ix_cases_queue_first_contact",
    Case.collector_id,
    Case.first_contact_due_at,
    postgresql_include=[*SORT_COLUMNS, "promise_broken_at", "last_attempt_at"],
    postgresql_where=text(
        f"collector_id IS NOT NULL AND {QUEUE_STATUS_SQL} AND first_contact_at IS NULL"
    ),
)
QUEUE_PROMISE_INDEX = Index(
    "ix_cases_queue_promise",
    Case.collector_id,
    Case.promise_due_on,
    postgresql_include=[*SORT_COLUMNS, *TIER_COLUMNS[:4]],
    postgresql_where=text(
        f"collector_id IS NOT NULL AND {QUEUE_STATUS_SQL}"
        " AND promise_due_on IS NOT NULL"
    ),
)

# The reminders panel (services/reminders.py) reads the idle cases and the broken
# promises of one collector. These indexes keep both reads to an index range.
REMINDER_WORKING_SQL = "status IN ('assigned', 'in_progress', 'promised')"
REMINDER_IDLE_INDEX = Index(
    "ix_cases_reminder_idle",
    Case.collector_id,
    func.coalesce(Case.last_attempt_at, Case.assigned_at),
    postgresql_where=text(REMINDER_WORKING_SQL),
)
REMINDER_BROKEN_INDEX = Index(
    "ix_cases_reminder_broken",
    Case.collector_id,
    Case.promise_broken_at,
    postgresql_where=text("promise_broken_at IS NOT NULL"),
)
