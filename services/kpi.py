"""KPIs over a period: recovery, contact, promises, roll rates, SLA and productivity.

Formulas (each figure carries its id; the catalogs hold the wording shown):

- recovery_rate = net amount recovered in the period ÷ total_due at placement of
  the cases placed by the period's end;
- case_recovery_rate = cases with a payment (not reversed) since placement, by the
  period's end ÷ cases placed by the period's end. It is counted since placement,
  like a batch's 户数回收率, so it adds up from daily sums;
- avg_cycle_days = mean days from first assignment to `paid` or `settled`, over
  cases whose snapshot first shows them closed in the period;
- contact_rate = connected attempts ÷ attempts; rpc_rate = right-party attempts ÷
  attempts; ptp_rate = promises made ÷ right-party attempts (each installment of a
  plan is a promise);
- ptp_kept_rate = kept promises ÷ promises due in the period (cancelled ones left
  out), by count and, as ptp_kept_amount_rate, by amount;
- roll_rate Mi→Mi+1 = balance in Mi on the first day of a calendar month that is in
  Mi+1 on its last day ÷ balance in Mi on the first day, summed over the months
  that lie wholly inside the period; cure_rate = the part of that starting balance
  that ended current, paid or settled;
- sla_compliance = cases assigned in the period whose first contact came by its due
  time ÷ cases assigned in the period;
- productivity = attempts, right-party contacts, promises and amount recovered per
  collector working day (a day on which the collector recorded an attempt).

Speed: the live statements in services/kpi_queries.py scan a quarter of attempts
and payments, which takes seconds at millions of rows. A query over one dimension
(its filter, its breakdown or both), or over one dimension within one team's or
one collector's figures, reads the daily sums in `kpi_daily`, `kpi_population` and
`kpi_roll` instead. The daily job writes those sums (services/snapshots.py). Days
after the last refresh, and other combinations of dimensions, run live.

Rates are Decimal fractions rounded half up to 4 places, money has 2 places, and
both are rounded only when a figure is built.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import polars as pl
from pydantic import BaseModel, model_validator
from sqlalchemy import text
from sqlalchemy.orm import Session

from recova.errors import InvalidInput, PermissionDenied
from recova.settings import get_settings
from services import kpi_queries
from services.actors import Actor, require_role
from services.kpi_queries import AMOUNTS, MEASURES

KPI_READERS = ("admin", "manager", "team_lead", "collector", "auditor", "finance")
BREAKDOWNS = (
    "creditor",
    "batch",
    "product",
    "province",
    "bucket",
    "segment",
    "grade",
    "team",
    "collector",
)
BUCKETS = ("M1", "M2", "M3", "M4", "M5", "M6", "M7+")
CURED = ("current", "paid", "settled")
RATE = Decimal("0.0001")
CENT = Decimal("0.01")
DRILL_LIMIT = 5000
# Start of "since placement" for figures counted over a case's whole life.
EPOCH = date(2000, 1, 1)

# Figure id, kind (rate, money, days, number), numerator, denominator.
FIGURES: tuple[tuple[str, str, str, str], ...] = (
    ("recovery_rate", "rate", "recovered", "total_due"),
    ("recovered", "money", "recovered", ""),
    ("case_recovery_rate", "rate", "paying_cases", "cases"),
    ("avg_cycle_days", "days", "cycle_days", "closed_cases"),
    ("contact_rate", "rate", "connected", "attempts"),
    ("rpc_rate", "rate", "rpc", "attempts"),
    ("ptp_rate", "rate", "promises", "rpc"),
    ("ptp_kept_rate", "rate", "promises_kept", "promises_due"),
    ("ptp_kept_amount_rate", "rate", "promises_kept_amount", "promises_due_amount"),
    ("roll_rate", "rate", "rolled_m1", "start_m1"),
    ("cure_rate", "rate", "cured", "start_balance"),
    ("sla_compliance", "rate", "sla_met", "assigned_cases"),
    ("attempts_per_day", "number", "attempts", "collector_days"),
    ("rpc_per_day", "number", "rpc", "collector_days"),
    ("promises_per_day", "number", "promises", "collector_days"),
    ("recovered_per_day", "money", "recovered", "collector_days"),
)
FIGURE_IDS = tuple(figure[0] for figure in FIGURES)
# Figures whose drill-down lists the cases of one event source.
DRILL_SOURCES = {
    "recovery_rate": ("payments",),
    "recovered": ("payments",),
    "case_recovery_rate": ("first_payments",),
    "recovered_per_day": ("payments",),
    "avg_cycle_days": ("closed",),
    "contact_rate": ("attempts",),
    "rpc_rate": ("attempts",),
    "attempts_per_day": ("attempts",),
    "rpc_per_day": ("attempts",),
    "ptp_rate": ("promises_made",),
    "promises_per_day": ("promises_made",),
    "ptp_kept_rate": ("promises_due",),
    "ptp_kept_amount_rate": ("promises_due",),
    "sla_compliance": ("assigned",),
}


class KpiFilter(BaseModel):
    date_from: date
    date_to: date
    creditor_id: int | None = None
    batch_id: int | None = None
    product: str | None = None
    province: str | None = None
    bucket: str | None = None
    segment: str | None = None
    grade: str | None = None
    team_id: int | None = None
    collector_id: int | None = None

    @model_validator(mode="after")
    def _period_in_order(self) -> "KpiFilter":
        if self.date_from > self.date_to:
            raise ValueError("date_from must be on or before date_to")
        return self

    def dimensions(self) -> dict[str, str]:
        """Return the dimension filters that are set, as text keys."""
        values = {
            "creditor": self.creditor_id,
            "batch": self.batch_id,
            "product": self.product,
            "province": self.province,
            "bucket": self.bucket,
            "segment": self.segment,
            "grade": self.grade,
            "team": self.team_id,
            "collector": self.collector_id,
        }
        return {dim: str(value) for dim, value in values.items() if value is not None}

    def previous(self) -> "KpiFilter":
        """Return the same filters over the period just before this one.

        Whole calendar months compare with as many months before them; any other
        period compares with the same number of days before it.
        """
        end = self.date_from - timedelta(days=1)
        months = whole_months(self.date_from, self.date_to)
        if months:
            start = end
            for _ in range(months):
                start = start.replace(day=1) - timedelta(days=1)
            start += timedelta(days=1)
        else:
            days = (self.date_to - self.date_from).days + 1
            start = end - timedelta(days=days - 1)
        return self.model_copy(update={"date_from": start, "date_to": end})


def whole_months(start: date, end: date) -> int:
    """Return how many calendar months start..end spans, or 0 when not whole months."""
    if start.day != 1 or (end + timedelta(days=1)).day != 1:
        return 0
    return (end.year - start.year) * 12 + end.month - start.month + 1


@dataclass
class Figure:
    id: str
    kind: str
    value: Decimal | None
    previous: Decimal | None = None
    numerator: Decimal | None = None
    denominator: Decimal | None = None

    @property
    def formula(self) -> str:
        """Message id of the formula's wording."""
        return f"kpi.formula.{self.id}"

    @property
    def change(self) -> Decimal | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous

    def as_json(self) -> dict[str, Any]:
        return {
            "value": _json_value(self.value, self.kind),
            "previous": _json_value(self.previous, self.kind),
            "change": _json_value(self.change, self.kind),
            "formula": self.id,
        }


def _json_value(value: Decimal | None, kind: str) -> Any:
    if value is None:
        return None
    if kind == "money":
        return f"{value:.2f}"
    return float(value)


@dataclass
class KpiResult:
    date_from: date
    date_to: date
    figures: dict[str, Figure]
    totals: dict[str, Decimal]
    roll_matrix: list[dict[str, Any]] = field(default_factory=list)
    source: str = "live"

    def value(self, figure_id: str) -> Decimal | None:
        return self.figures[figure_id].value

    def as_json(self) -> dict[str, Any]:
        """Return the figures with rates as fractions and money as 2-decimal text."""
        data: dict[str, Any] = {
            "period": {
                "from": self.date_from.isoformat(),
                "to": self.date_to.isoformat(),
            }
        }
        for figure_id, figure in self.figures.items():
            data[figure_id] = _json_value(figure.value, figure.kind)
        data["figures"] = {key: fig.as_json() for key, fig in self.figures.items()}
        data["roll_matrix"] = [
            {
                **row,
                "balance": f"{row['balance']:.2f}",
                "share": _json_value(row["share"], "rate"),
            }
            for row in self.roll_matrix
        ]
        data["source"] = self.source
        return data


# Scope and plan


def scoped(actor: Actor, filters: KpiFilter) -> KpiFilter:
    """Return the filters narrowed to what the actor may see.

    A collector gets only their own figures and a team lead only their team's,
    whatever the filters request.
    """
    require_role(actor, *KPI_READERS)
    if actor.role == "collector":
        return filters.model_copy(update={"collector_id": actor.id})
    if actor.role == "team_lead":
        if actor.team_id is None:
            raise PermissionDenied("kpi_team_lead_without_team", user=actor.username)
        return filters.model_copy(update={"team_id": actor.team_id})
    return filters


@dataclass(frozen=True)
class StoredPlan:
    """The stored sums that serve a query: dimension, owner scope and key filter."""

    dim: str
    scope: str
    key: str | None

    def where(self) -> str:
        condition = "dim = :dim AND scope = :scope"
        return condition + (" AND key = :key" if self.key is not None else "")

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim, "scope": self.scope, "key": self.key}


def stored_plan(dims: dict[str, str], by: str | None) -> StoredPlan | None:
    """Return the stored sums that serve this query, or None to run it live.

    Stored sums cover one dimension over the whole portfolio, or one dimension
    within one team's or one collector's own figures.
    """
    # NOTE: any other pair of dimensions, such as a province and a batch, runs live
    # over the period's events, which takes seconds at millions of attempts.
    named = set(dims) | ({by} if by else set())
    # Grades change every night, and the stored sums keep the grade a case had when
    # they were taken, so sums and population would disagree. By grade, figures run
    # live with each case's current grade, which is how grades are checked against
    # what was recovered.
    if "grade" in named:
        return None
    if len(named) <= 1:
        dim = next(iter(named), "all")
        return StoredPlan(dim, "", dims.get(dim))
    if len(named) == 2:
        for scope in kpi_queries.SCOPES:
            others = named - {scope}
            if scope in dims and len(others) == 1 and dims[scope].isdigit():
                dim = others.pop()
                if scope == "collector" and dim == "team":
                    continue
                return StoredPlan(dim, f"{scope}:{dims[scope]}", dims.get(dim))
    return None


def _aggregated_through(session: Session) -> date | None:
    """Return the last day whose stored event sums are complete."""
    row = session.execute(
        text("SELECT max(last_day), max(refreshed_at) FROM kpi_refreshes")
    ).one()
    if row[0] is None:
        return None
    refreshed_on = row[1].astimezone(_zone()).date()
    return min(row[0], refreshed_on - timedelta(days=1))


def _zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(get_settings().timezone)


def _check_by(by: str | None) -> None:
    if by is not None and by not in BREAKDOWNS:
        raise InvalidInput(
            "kpi_unknown_breakdown", by=by, allowed=", ".join(BREAKDOWNS)
        )


# Reading sums


GRAINS = {
    "day": "day",
    "month": "CAST(date_trunc('month', day) AS date)",
    "period": "min(day)",
}


def daily_rows(
    session: Session,
    dims: dict[str, str],
    by: str | None,
    d0: date,
    d1: date,
    grain: str = "day",
) -> list[dict[str, Any]]:
    """Return event sums per key and per day, month or whole period (`grain`).

    Sums are added up in SQL, so a quarter of one key is one row at `period`.
    """
    plan = stored_plan(dims, by)
    through = _aggregated_through(session) if plan else None
    day = GRAINS[grain]
    group = "GROUP BY key" if grain == "period" else "GROUP BY 1, 2"
    sums = ", ".join(f"sum({name}) AS {name}" for name in MEASURES)
    sums += ", sum(collector_days) AS collector_days"
    rows: list[dict[str, Any]] = []
    live_from = d0
    if plan and through is not None and d0 <= through:
        stored_to = min(d1, through)
        key_column = "key" if by else "'all'"
        columns = ", ".join(("day", "collector_days") + MEASURES)
        result = session.execute(
            text(
                f"SELECT {day} AS day, key, {sums} FROM (SELECT {columns}, "
                f"{key_column} AS key FROM kpi_daily WHERE {plan.where()} "
                f"AND day BETWEEN :d0 AND :d1) stored {group}"
            ),
            {**plan.params(), "d0": d0, "d1": stored_to},
        )
        rows.extend(dict(row) for row in result.mappings())
        live_from = stored_to + timedelta(days=1)
    if live_from <= d1:
        sql, params = kpi_queries.daily_sql(dims, by)
        result = session.execute(
            text(f"SELECT {day} AS day, key, {sums} FROM ({sql}) live {group}"),
            {**params, "d0": live_from, "d1": d1, "tz": _tz()},
        )
        rows.extend(dict(row) for row in result.mappings())
    return rows


def _tz() -> str:
    return get_settings().timezone


def population(
    session: Session, dims: dict[str, str], by: str | None, day: date
) -> dict[str, dict[str, Decimal]]:
    """Return cases placed by `day` and their amounts, per key.

    Read from the last stored population on or before `day` when the query fits
    it, so balances are those of that snapshot.
    """
    plan = stored_plan(dims, by)
    stored_day = None
    if plan:
        # The latest day with any stored population: a scope with no cases that
        # day has no rows, and then its population is zero.
        stored_day = session.scalar(
            text(
                "SELECT max(day) FROM kpi_population "
                "WHERE dim = 'all' AND scope = '' AND day <= :d"
            ),
            {"d": day},
        )
    if plan and stored_day is not None:
        key_column = "key" if by else "'all' AS key"
        result = session.execute(
            text(
                f"SELECT {key_column}, cases, open_cases, total_due, balance "
                f"FROM kpi_population WHERE {plan.where()} AND day = :day"
            ),
            {**plan.params(), "day": stored_day},
        )
    else:
        sql, params = kpi_queries.population_sql(dims, by)
        result = session.execute(text(sql), {**params, "day": day, "tz": _tz()})
    return {row["key"]: dict(row) for row in result.mappings()}


def paying_cases(
    session: Session, dims: dict[str, str], by: str | None, day: date
) -> dict[str, int]:
    """Return cases with a payment that was not reversed by `day`, per key."""
    plan = stored_plan(dims, by)
    through = _aggregated_through(session) if plan else None
    counts: dict[str, int] = defaultdict(int)
    live_from = EPOCH
    if plan and through is not None:
        stored_to = min(day, through)
        key_column = "key" if by else "'all'"
        result = session.execute(
            text(
                f"SELECT {key_column} AS key, sum(paying_cases) AS paying FROM "
                f"kpi_daily WHERE {plan.where()} AND day <= :d1 GROUP BY 1 "
                "HAVING sum(paying_cases) > 0"
            ),
            {**plan.params(), "d1": stored_to},
        )
        for row in result:
            counts[row.key] += int(row.paying or 0)
        live_from = stored_to + timedelta(days=1)
    if live_from <= day:
        sql, params = kpi_queries.daily_sql(dims, by, ("first_payments",))
        result = session.execute(
            text(sql), {**params, "d0": live_from, "d1": day, "tz": _tz()}
        )
        for row in result.mappings():
            counts[row["key"]] += int(row["paying_cases"] or 0)
    return counts


def months_inside(d0: date, d1: date) -> list[tuple[date, date]]:
    """Return the calendar months that lie wholly inside days d0 to d1."""
    months = []
    start = (
        d0 if d0.day == 1 else (d0.replace(day=28) + timedelta(days=4)).replace(day=1)
    )
    while True:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(
            days=1
        )
        if end > d1:
            return months
        months.append((start, end))
        start = end + timedelta(days=1)


def roll_rows(
    session: Session, dims: dict[str, str], by: str | None, d0: date, d1: date
) -> list[dict[str, Any]]:
    """Return (key, from_bucket, to_state, cases, balance) summed over the months."""
    plan = stored_plan(dims, by)
    key_column = "key" if by else "'all' AS key"
    rows: list[dict[str, Any]] = []
    for start, end in months_inside(d0, d1):
        stored = None
        rolled = plan is not None and session.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM kpi_roll WHERE dim = 'all' "
                "AND scope = '' AND month = :month)"
            ),
            {"month": start},
        )
        if rolled:
            stored = (
                session.execute(
                    text(
                        f"SELECT {key_column}, from_bucket, to_state, cases, balance "
                        f"FROM kpi_roll WHERE {plan.where()} AND month = :month"
                    ),
                    {**plan.params(), "month": start},
                )
                .mappings()
                .all()
            )
        else:
            sql, params = kpi_queries.roll_sql(dims, by)
            stored = (
                session.execute(
                    text(sql), {**params, "start": start, "end": end, "tz": _tz()}
                )
                .mappings()
                .all()
            )
        rows.extend(dict(row) for row in stored)
    return rows


# Figures


def _ratio(numerator: Any, denominator: Any, places: Decimal) -> Decimal | None:
    if numerator is None or denominator is None or Decimal(denominator) == 0:
        return None
    value = Decimal(numerator) / Decimal(denominator)
    return value.quantize(places, rounding=ROUND_HALF_UP)


def figure_values(totals: dict[str, Decimal]) -> dict[str, Decimal | None]:
    """Compute every figure from summed totals; shared by the SQL and polars paths."""
    values: dict[str, Decimal | None] = {}
    for figure_id, kind, numerator, denominator in FIGURES:
        top = totals.get(numerator)
        if kind == "money" and not denominator:
            values[figure_id] = Decimal(top or 0).quantize(CENT)
            continue
        places = RATE if kind == "rate" else CENT
        values[figure_id] = _ratio(top, totals.get(denominator), places)
    return values


def _sum_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Decimal]]:
    per_key: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(lambda: Decimal(0))
    )
    for row in rows:
        sums = per_key[row["key"]]
        for name in MEASURES + ("collector_days",):
            sums[name] += Decimal(row[name] or 0)
    return per_key


def roll_totals(rows: list[dict[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """Sum roll rows per key into start balances, the M1→M2 roll and the cure."""
    per_key: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(lambda: Decimal(0))
    )
    for row in rows:
        sums = per_key[row["key"]]
        balance = Decimal(row["balance"])
        sums["start_balance"] += balance
        if row["from_bucket"] == "M1":
            sums["start_m1"] += balance
            if row["to_state"] == "M2":
                sums["rolled_m1"] += balance
        if row["to_state"] in CURED:
            sums["cured"] += balance
    return per_key


def roll_matrix(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the share of each starting bucket's balance in each end state."""
    cells: dict[tuple[str, str], Decimal] = defaultdict(lambda: Decimal(0))
    starts: dict[str, Decimal] = defaultdict(lambda: Decimal(0))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        cells[(row["from_bucket"], row["to_state"])] += Decimal(row["balance"])
        counts[(row["from_bucket"], row["to_state"])] += int(row["cases"])
        starts[row["from_bucket"]] += Decimal(row["balance"])
    return [
        {
            "from_bucket": start,
            "to_state": end,
            "cases": counts[(start, end)],
            "balance": balance,
            "share": _ratio(balance, starts[start], RATE),
        }
        for (start, end), balance in sorted(cells.items())
    ]


def _totals_by_key(
    session: Session, filters: KpiFilter, by: str | None
) -> tuple[dict[str, dict[str, Decimal]], list[dict[str, Any]]]:
    dims = filters.dimensions()
    d0, d1 = filters.date_from, filters.date_to
    totals = _sum_rows(daily_rows(session, dims, by, d0, d1, grain="period"))
    for key, row in population(session, dims, by, d1).items():
        for name in ("cases", "open_cases", "total_due", "balance"):
            totals[key][name] += Decimal(row[name] or 0)
    cumulative = paying_cases(session, dims, by, d1)
    for key in set(totals) | set(cumulative):
        totals[key]["paying_cases"] = Decimal(cumulative.get(key, 0))
    rolls = roll_rows(session, dims, by, d0, d1)
    for key, sums in roll_totals(rolls).items():
        for name, value in sums.items():
            totals[key][name] += value
    return totals, rolls


def kpis(*, session: Session, actor: Actor, filters: KpiFilter) -> KpiResult:
    """Compute every figure for the period and the period of equal length before it."""
    filters = scoped(actor, filters)
    current, rolls = _totals_by_key(session, filters, None)
    previous, _ = _totals_by_key(session, filters.previous(), None)
    now = current.get("all", {})
    values = figure_values(now)
    before = figure_values(previous.get("all", {}))
    figures = {}
    for figure_id, kind, numerator, denominator in FIGURES:
        figures[figure_id] = Figure(
            id=figure_id,
            kind=kind,
            value=values[figure_id],
            previous=before[figure_id],
            numerator=now.get(numerator),
            denominator=now.get(denominator) if denominator else None,
        )
    plan = stored_plan(filters.dimensions(), None)
    return KpiResult(
        date_from=filters.date_from,
        date_to=filters.date_to,
        figures=figures,
        totals=dict(now),
        roll_matrix=roll_matrix(rolls),
        source="aggregates" if plan and _aggregated_through(session) else "live",
    )


def breakdown(
    *, session: Session, actor: Actor, filters: KpiFilter, by: str
) -> pl.DataFrame:
    """Return one row per value of `by` with every figure for the period."""
    _check_by(by)
    filters = scoped(actor, filters)
    totals, _ = _totals_by_key(session, filters, by)
    labels = key_labels(session, by, list(totals))
    rows = []
    for key, sums in totals.items():
        values = figure_values(sums)
        rows.append(
            {
                "key": key,
                "label": labels.get(key, key),
                "cases": int(sums.get("cases", 0)),
                "attempts": int(sums.get("attempts", 0)),
                "rpc": int(sums.get("rpc", 0)),
                "promises": int(sums.get("promises", 0)),
                "working_days": int(sums.get("collector_days", 0)),
                **values,
            }
        )
    schema = _breakdown_schema()
    if not rows:
        return pl.DataFrame(schema=schema)
    frame = pl.DataFrame(rows, schema=schema)
    return frame.sort("recovered", descending=True)


def _breakdown_schema() -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {
        "key": pl.Utf8,
        "label": pl.Utf8,
        "cases": pl.Int64,
        "attempts": pl.Int64,
        "rpc": pl.Int64,
        "promises": pl.Int64,
        "working_days": pl.Int64,
    }
    for figure_id, kind, _, _ in FIGURES:
        schema[figure_id] = pl.Decimal(18, 4 if kind == "rate" else 2)
    return schema


def key_labels(session: Session, by: str | None, keys: list[str]) -> dict[str, str]:
    """Return the names shown for dimension keys (ids of creditors, batches, users)."""
    queries = {
        "creditor": "SELECT id::text, name FROM creditors",
        "batch": "SELECT id::text, name FROM batches",
        "team": "SELECT id::text, name FROM teams",
        "collector": (
            "SELECT id::text, coalesce(nullif(display_name, ''), username) FROM users"
        ),
    }
    ids = [key for key in keys if key]
    if by not in queries or not ids:
        return {}
    rows = session.execute(
        text(f"SELECT * FROM ({queries[by]}) named (id, name) WHERE id = ANY(:ids)"),
        {"ids": ids},
    )
    return dict(rows.tuples().all())


def time_series(*, session: Session, actor: Actor, filters: KpiFilter) -> pl.DataFrame:
    """Return the event sums of each day of the period, for the trend charts."""
    filters = scoped(actor, filters)
    rows = daily_rows(
        session, filters.dimensions(), None, filters.date_from, filters.date_to
    )
    per_day: dict[date, dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(lambda: Decimal(0))
    )
    for row in rows:
        for name in MEASURES:
            per_day[row["day"]][name] += Decimal(row[name] or 0)
    days = [
        filters.date_from + timedelta(days=n)
        for n in range((filters.date_to - filters.date_from).days + 1)
    ]
    data = {"day": days}
    for name in MEASURES:
        dtype = pl.Decimal(18, 2) if name in AMOUNTS else pl.Int64
        values = [per_day[day][name] if day in per_day else 0 for day in days]
        if dtype == pl.Int64:
            values = [int(value) for value in values]
        else:
            values = [Decimal(value) for value in values]
        data[name] = pl.Series(name, values, dtype=dtype)
    return pl.DataFrame(data)


def vintage(*, session: Session, actor: Actor, filters: KpiFilter) -> pl.DataFrame:
    """Return cumulative recovery ÷ total_due per batch by months since placement."""
    filters = scoped(actor, filters)
    dims = filters.dimensions()
    batches = _batches_placed(session, filters.date_to, dims.get("creditor"))
    if not batches:
        return pl.DataFrame(
            schema={"batch": pl.Utf8, "month": pl.Int64, "recovery_rate": pl.Float64}
        )

    first = min(batch["placement_date"] for batch in batches.values())
    rows = daily_rows(session, dims, "batch", first, filters.date_to, grain="month")
    recovered: dict[tuple[str, int], Decimal] = defaultdict(lambda: Decimal(0))
    for row in rows:
        batch = batches.get(row["key"])
        if batch is None or not row["recovered"]:
            continue
        month = _months_between(batch["placement_date"], row["day"])
        recovered[(row["key"], max(month, 0))] += Decimal(row["recovered"])

    records = []
    for key, batch in batches.items():
        total = Decimal(0)
        for month in range(
            _months_between(batch["placement_date"], filters.date_to) + 1
        ):
            total += recovered.get((key, month), Decimal(0))
            rate = _ratio(total, batch["total_due"], RATE)
            records.append(
                {
                    "batch": batch["name"],
                    "month": month,
                    "recovery_rate": float(rate) if rate is not None else None,
                }
            )
    return pl.DataFrame(records)


def _batches_placed(
    session: Session, day: date, creditor: str | None
) -> dict[str, dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT id::text AS key, name, placement_date, total_due FROM batches "
            "WHERE placement_date <= :day AND (CAST(:creditor AS text) IS NULL "
            "OR creditor_id = CAST(:creditor AS integer)) ORDER BY placement_date"
        ),
        {"day": day, "creditor": creditor},
    ).mappings()
    return {row["key"]: dict(row) for row in rows}


def _months_between(start: date, end: date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


def drill_down(
    *, session: Session, actor: Actor, filters: KpiFilter, figure: str, key: str = ""
) -> pl.DataFrame:
    """Return the cases behind a figure (at most DRILL_LIMIT rows, largest first).

    `key` narrows to one value of the breakdown that was clicked, given as the
    dimension and key joined by a colon, such as `province:广东`.
    """
    filters = scoped(actor, filters)
    dims = filters.dimensions()
    if key:
        dim, _, value = key.partition(":")
        _check_by(dim)
        dims[dim] = value
    params = {"d0": filters.date_from, "d1": filters.date_to, "tz": _tz()}
    if figure in ("roll_rate", "cure_rate"):
        months = months_inside(filters.date_from, filters.date_to)
        if not months:
            return _case_frame(session, [])
        params.update(start=months[0][0], end=months[-1][1])
        source = kpi_queries.roll_select(dims)
        measures = "max(from_bucket) AS from_bucket, max(to_state) AS to_state"
        order = "max(balance) DESC"
    elif figure in DRILL_SOURCES:
        if figure == "case_recovery_rate":
            params["d0"] = EPOCH
        source = kpi_queries.events_sql(DRILL_SOURCES[figure], dims)
        measures = ", ".join(f"sum({name}) AS {name}" for name in MEASURES)
        order = "sum(recovered) DESC, sum(attempts) DESC"
    else:
        raise InvalidInput(
            "kpi_unknown_figure", figure=figure, allowed=", ".join(FIGURE_IDS)
        )
    where, filter_params = kpi_queries.filter_sql(dims)
    result = session.execute(
        text(
            f"SELECT case_id, {measures} FROM ({source}) rows WHERE {where} "
            f"GROUP BY case_id ORDER BY {order} LIMIT {DRILL_LIMIT}"
        ),
        {**params, **filter_params},
    )
    return _case_frame(session, [dict(row) for row in result.mappings()])


def _case_frame(session: Session, rows: list[dict[str, Any]]) -> pl.DataFrame:
    columns = {
        "case_no": pl.Utf8,
        "creditor": pl.Utf8,
        "batch": pl.Utf8,
        "collector": pl.Utf8,
        "province": pl.Utf8,
        "status": pl.Utf8,
        "total_due": pl.Decimal(14, 2),
        "balance": pl.Decimal(14, 2),
    }
    if not rows:
        return pl.DataFrame(schema=columns)
    cases = session.execute(
        text(
            "SELECT c.id, c.case_no, cr.name AS creditor, b.name AS batch, "
            "u.username AS collector, d.province, c.status, c.total_due, c.balance "
            "FROM cases c JOIN creditors cr ON cr.id = c.creditor_id "
            "JOIN batches b ON b.id = c.batch_id JOIN debtors d ON d.id = c.debtor_id "
            "LEFT JOIN users u ON u.id = c.collector_id WHERE c.id = ANY(:ids)"
        ),
        {"ids": [row["case_id"] for row in rows]},
    ).mappings()
    by_id = {case["id"]: case for case in cases}
    records = []
    for row in rows:
        case = by_id[row["case_id"]]
        record = {name: case[name] for name in columns}
        for name, value in row.items():
            if name == "case_id" or (value == 0 and name in MEASURES):
                continue
            record[name] = value
        records.append(record)
    frame = pl.DataFrame(records, infer_schema_length=None)
    return frame.with_columns(
        pl.col(name).cast(dtype) for name, dtype in columns.items()
    )


# The same headline figures from the raw rows in polars, as an independent check.


def _frame(session: Session, sql: str, params: dict[str, Any]) -> pl.DataFrame:
    result = session.execute(text(sql), params)
    names = list(result.keys())
    rows = result.all()
    if not rows:
        return pl.DataFrame(schema={name: pl.Object for name in names})
    return pl.DataFrame(
        [dict(zip(names, row, strict=True)) for row in rows], infer_schema_length=None
    )


def _where(frame: pl.DataFrame, dims: dict[str, str]) -> pl.DataFrame:
    if frame.is_empty():
        return frame
    for dim, value in dims.items():
        frame = frame.filter(pl.col(f"k_{dim}") == value)
    return frame


def _column_sum(frame: pl.DataFrame, name: str) -> Decimal:
    if frame.is_empty():
        return Decimal(0)
    return Decimal(str(frame.get_column(name).sum() or 0))


def kpis_polars(
    *, session: Session, actor: Actor, filters: KpiFilter
) -> dict[str, Decimal | None]:
    """Compute the headline figures from the raw event rows with polars."""
    filters = scoped(actor, filters)
    dims = filters.dimensions()
    params = {"d0": filters.date_from, "d1": filters.date_to, "tz": _tz()}
    params.update(kpi_queries.filter_sql(dims)[1])
    events = _where(_frame(session, kpi_queries.events_sql(filters=dims), params), dims)
    placed = _where(
        _frame(
            session,
            kpi_queries.population_select(dims),
            {**params, "day": filters.date_to},
        ),
        dims,
    )
    totals = {name: _column_sum(events, name) for name in MEASURES}
    totals["cases"] = Decimal(placed.height)
    totals["total_due"] = _column_sum(placed, "total_due")

    if not events.is_empty():
        attempts = events.filter(pl.col("attempts") > 0)
        collector_days = attempts.filter(pl.col("k_collector") != "").select(
            "day", "k_collector"
        )
        totals["collector_days"] = Decimal(collector_days.unique().height)

    first_payments = _where(
        _frame(
            session,
            kpi_queries.events_sql(("first_payments",), dims),
            {**params, "d0": EPOCH},
        ),
        dims,
    )
    totals["paying_cases"] = Decimal(first_payments.height)

    for start, end in months_inside(filters.date_from, filters.date_to):
        rolls = _where(
            _frame(
                session,
                kpi_queries.roll_select(dims),
                {**params, "start": start, "end": end},
            ),
            dims,
        )
        if rolls.is_empty():
            continue
        m1 = rolls.filter(pl.col("from_bucket") == "M1")
        sums = {
            "start_balance": _column_sum(rolls, "balance"),
            "start_m1": _column_sum(m1, "balance"),
            "rolled_m1": _column_sum(m1.filter(pl.col("to_state") == "M2"), "balance"),
            "cured": _column_sum(
                rolls.filter(pl.col("to_state").is_in(CURED)), "balance"
            ),
        }
        for name, value in sums.items():
            totals[name] = totals.get(name, Decimal(0)) + value
    return figure_values(totals)


def filter_options(
    *, session: Session, actor: Actor
) -> dict[str, list[tuple[str, str]]]:
    """Return, per dimension, the values a filter offers as (key, name) pairs.

    Read from the last stored population, or from the cases when none is stored.
    """
    require_role(actor, *KPI_READERS)
    day = session.scalar(text("SELECT max(day) FROM kpi_population"))
    keys: dict[str, list[str]] = defaultdict(list)
    if day is not None:
        rows = session.execute(
            text(
                "SELECT dim, key FROM kpi_population WHERE day = :day "
                "AND dim <> 'all' ORDER BY dim, key"
            ),
            {"day": day},
        )
        for dim, key in rows:
            keys[dim].append(key)
    else:
        from services.segments import local_today

        for dim in BREAKDOWNS:
            sql, params = kpi_queries.population_sql({}, dim)
            rows = session.execute(
                text(sql), {**params, "day": local_today(), "tz": _tz()}
            )
            keys[dim] = sorted(row.key for row in rows)
    options = {}
    for dim in BREAKDOWNS:
        labels = key_labels(session, dim, keys[dim])
        options[dim] = [(key, labels.get(key, key)) for key in keys[dim] if key]
    return options
