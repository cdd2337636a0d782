"""Features of cases as of a scoring date, and the repayment label that follows it.

Everything is computed as of the start of day D in the configured time zone:
attempts and promises created before that moment, payments dated before D. A
payment dated D itself is in neither the features nor the label, whose window is
(D, D + 30 days]. Each table is read in one pass with GROUP BY, and the rows come
back into polars through COPY.

Amounts here are floats because they feed the models and the scorecard bins; no
money is booked from them.
"""

import io
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import polars as pl
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import OPEN_STATUSES
from recova.settings import get_settings

LABEL_DAYS = 30
RECENT_DAYS = 30

# Features a model reads; `product` is the one categorical column.
NUMERIC_FEATURES = (
    "dpd",
    "balance",
    "total_due",
    "payments",
    "paid_amount",
    "days_since_payment",
    "attempts",
    "attempts_30d",
    "connected",
    "right_party",
    "days_since_contact",
    "promises_kept",
    "promises_broken",
    "promises_open",
)
CATEGORICAL_FEATURES = ("product",)
CASE_FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES + ("ever_reached",)

SCHEMA: dict[str, Any] = {
    "case_id": pl.Int64,
    "product": pl.String,
    "dpd": pl.Int64,
    "total_due": pl.Float64,
    "balance": pl.Float64,
    "payments": pl.Int64,
    "paid_amount": pl.Float64,
    "days_since_payment": pl.Int64,
    "attempts": pl.Int64,
    "attempts_30d": pl.Int64,
    "connected": pl.Int64,
    "right_party": pl.Int64,
    "days_since_contact": pl.Int64,
    "promises_kept": pl.Int64,
    "promises_broken": pl.Int64,
    "promises_open": pl.Int64,
}

Scope = Literal["open", "history", "any"]

# `{cases}` is the scope's condition on `c`; the literals are bound by psycopg.sql.
FEATURES_SQL = """
WITH attempts AS (
    SELECT case_id,
           count(*) AS attempts,
           count(*) FILTER (WHERE at >= {recent_start}) AS attempts_30d,
           count(*) FILTER (WHERE connected) AS connected,
           count(*) FILTER (WHERE right_party) AS right_party,
           max(at) AS last_attempt_at
    FROM contact_attempts
    WHERE at < {start}
    GROUP BY case_id
),
paid AS (
    SELECT case_id,
           count(*) FILTER (WHERE amount > 0) AS payments,
           sum(amount) AS paid_amount,
           max(paid_on) FILTER (WHERE amount > 0) AS last_paid_on
    FROM payments
    WHERE paid_on < {day}
    GROUP BY case_id
),
promised AS (
    SELECT case_id,
           count(*) FILTER (
               WHERE status = 'kept' AND due_on + {grace} < {day}
           ) AS promises_kept,
           count(*) FILTER (
               WHERE status IN ('broken', 'partly_kept') AND due_on + {grace} < {day}
           ) AS promises_broken,
           count(*) FILTER (
               WHERE status <> 'cancelled' AND due_on + {grace} >= {day}
           ) AS promises_open
    FROM promises
    WHERE created_at < {start}
    GROUP BY case_id
)
SELECT c.id AS case_id,
       c.product,
       {day} - c.overdue_since AS dpd,
       c.total_due,
       c.total_due - coalesce(p.paid_amount, 0) AS balance,
       coalesce(p.payments, 0) AS payments,
       coalesce(p.paid_amount, 0) AS paid_amount,
       {day} - p.last_paid_on AS days_since_payment,
       coalesce(a.attempts, 0) AS attempts,
       coalesce(a.attempts_30d, 0) AS attempts_30d,
       coalesce(a.connected, 0) AS connected,
       coalesce(a.right_party, 0) AS right_party,
       {day} - (a.last_attempt_at AT TIME ZONE {timezone})::date AS days_since_contact,
       coalesce(r.promises_kept, 0) AS promises_kept,
       coalesce(r.promises_broken, 0) AS promises_broken,
       coalesce(r.promises_open, 0) AS promises_open
FROM cases c
LEFT JOIN attempts a ON a.case_id = c.id
LEFT JOIN paid p ON p.case_id = c.id
LEFT JOIN promised r ON r.case_id = c.id
WHERE {cases}
ORDER BY c.id
"""

LABEL_SQL = """
SELECT case_id
FROM payments
WHERE paid_on > {day} AND paid_on <= {label_end}
GROUP BY case_id
HAVING sum(amount) > 0
"""

# Memory for the GROUP BY of one query. With the default 4 MB the hash aggregate
# over a million cases spills to disk; SET LOCAL keeps it to this transaction.
FEATURES_WORK_MEM = "128MB"

# A promise is judged when its due date plus these grace days have passed.
# NOTE: a promise cancelled after D is already left out of D's open promises,
# because promises keep no history of their status.
PROMISE_GRACE_DAYS = 2


def day_start(day: date) -> datetime:
    """Return the first moment of `day` in the configured time zone."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(get_settings().timezone))


def _case_condition(
    scope: Scope, day: sql.Literal, case_ids: list[int] | None
) -> sql.Composable:
    if scope == "any":
        condition = sql.SQL("TRUE")
    elif scope == "open":
        condition = sql.SQL("c.status IN ({})").format(
            sql.SQL(", ").join(sql.Literal(status) for status in OPEN_STATUSES)
        )
    else:
        # A case counts at D when it was placed before D, was not recalled by D
        # and still owed money at D.
        # NOTE: cases keep no status history, so a case settled or written off
        # before D still counts at D while its balance from payments is above 0.
        condition = sql.SQL(
            "c.placement_date < {day} "
            "AND (c.recall_date IS NULL OR c.recall_date > {day})"
        ).format(day=day)
    if case_ids is not None:
        condition = sql.SQL("{} AND c.id = ANY({})").format(
            condition, sql.Literal(list(case_ids))
        )
    return condition


def build_features(
    session: Session,
    day: date,
    *,
    scope: Scope = "open",
    case_ids: list[int] | None = None,
) -> pl.DataFrame:
    """Return one row of features per case as of the start of `day`.

    `scope="open"` takes the cases open now. `scope="history"` takes the cases that
    were placed, not recalled and not paid off at `day`, for training snapshots.
    `scope="any"` takes every case in `case_ids`.
    """
    params = {
        "day": sql.Literal(day),
        "start": sql.Literal(day_start(day)),
        "recent_start": sql.Literal(day_start(day - timedelta(days=RECENT_DAYS))),
        "grace": sql.Literal(PROMISE_GRACE_DAYS),
        "timezone": sql.Literal(get_settings().timezone),
    }
    condition = _case_condition(scope, params["day"], case_ids)
    query = sql.SQL(FEATURES_SQL).format(cases=condition, **params)
    session.execute(text(f"SET LOCAL work_mem = '{FEATURES_WORK_MEM}'"))
    frame = _copy_out(session, query, SCHEMA)
    if scope == "history":
        frame = frame.filter(pl.col("balance") > 0)
    return frame.with_columns(ever_reached=(pl.col("right_party") > 0).cast(pl.Int64))


def build_labels(session: Session, day: date, case_ids: pl.Series) -> pl.Series:
    """Return 1 for each case with a net positive payment in (day, day + 30], else 0.

    The result follows the order of `case_ids`.
    """
    query = sql.SQL(LABEL_SQL).format(
        day=sql.Literal(day),
        label_end=sql.Literal(day + timedelta(days=LABEL_DAYS)),
    )
    paying = _copy_out(session, query, {"case_id": pl.Int64})["case_id"]
    return case_ids.is_in(paying.implode()).cast(pl.Int8).alias("label")


def _copy_out(
    session: Session, query: sql.Composable, schema: dict[str, Any]
) -> pl.DataFrame:
    """Run `query` through COPY TO and read its CSV rows as a frame of `schema`."""
    connection = session.connection().connection.driver_connection
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)
    buffer = io.BytesIO()
    with connection.cursor().copy(statement) as copy:
        for block in copy:
            buffer.write(block)
    if buffer.tell() == 0:
        return pl.DataFrame(schema=schema)
    buffer.seek(0)
    return pl.read_csv(
        buffer, has_header=False, new_columns=list(schema), schema_overrides=schema
    )
