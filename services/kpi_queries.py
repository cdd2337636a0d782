"""SQL that turns cases, attempts, promises and payments into daily KPI sums.

Every source (attempts, payments, promises made, promises due, cases closed, cases
assigned) becomes rows of one shape: the local day, ten dimension keys and the
additive measures. The KPI page reads these sums either live, filtered on the keys,
or from `kpi_daily`, which the daily job fills from the same statement with one
GROUPING SETS pass. Both paths therefore count the same events the same way.

Dimension keys are text and never null (an empty string stands for "none"), so a
filter and a stored key compare with `=`. The team and collector of an attempt,
payment or promise are the ones recorded on it. The other keys come from the case
as it is now, with the bucket taken on the event's day.
"""

from services.segments import BUCKET_SQL

CLOSED_STATUSES = ("paid", "settled", "written_off", "recalled")
OPEN_STATUSES_SQL = (
    "('new', 'assigned', 'in_progress', 'promised', 'paused', 'disputed')"
)
DIMENSIONS = (
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
COUNTS = (
    "attempts",
    "connected",
    "rpc",
    "promises",
    "promises_due",
    "promises_kept",
    "payments",
    "closed_cases",
    "assigned_cases",
    "sla_met",
    "paying_cases",
)
AMOUNTS = (
    "promised_amount",
    "promises_due_amount",
    "promises_kept_amount",
    "recovered",
)
MEASURES = COUNTS + AMOUNTS + ("cycle_days",)


def bucket_of(dpd: str) -> str:
    return f"coalesce({BUCKET_SQL.format(dpd=dpd)}, 'current')"


def keys(
    *,
    day: str,
    team: str,
    collector: str,
    bucket: str | None = None,
    segment: str = "c.segment",
    grade: str = "c.risk_grade",
) -> str:
    """Select the ten dimension keys of a row joined to `cases c` and `debtors d`."""
    return ",\n".join(
        [
            f"{day} AS day",
            "c.creditor_id::text AS k_creditor",
            "c.batch_id::text AS k_batch",
            "coalesce(c.product, '') AS k_product",
            "coalesce(d.province, '') AS k_province",
            f"{bucket or bucket_of(f'({day}) - c.overdue_since')} AS k_bucket",
            f"coalesce({segment}, '') AS k_segment",
            f"coalesce({grade}, '') AS k_grade",
            f"coalesce(({team})::text, '') AS k_team",
            f"coalesce(({collector})::text, '') AS k_collector",
        ]
    )


def _measures(**values: str) -> str:
    unknown = set(values) - set(MEASURES)
    if unknown:
        raise ValueError(f"unknown measures {sorted(unknown)}")
    parts = []
    for name in MEASURES:
        default = "0::numeric" if name in AMOUNTS else "0"
        parts.append(f"{values.get(name, default)} AS {name}")
    return ",\n".join(parts)


def _local_day(column: str) -> str:
    return f"({column} AT TIME ZONE :tz)::date"


# Local days :d0 to :d1 as an instant range, so the indexes on timestamps are used.
_INSTANT_RANGE = (
    "{column} >= (CAST(:d0 AS date)::timestamp AT TIME ZONE :tz) "
    "AND {column} < ((CAST(:d1 AS date) + 1)::timestamp AT TIME ZONE :tz)"
)
_CASE_JOIN = "JOIN cases c ON c.id = {case_id} JOIN debtors d ON d.id = c.debtor_id"


def _attempts() -> str:
    return f"""
    SELECT {keys(day=_local_day("a.at"), team="a.team_id", collector="a.collector_id")},
        a.case_id,
        {
        _measures(
            attempts="1",
            connected="a.connected::int",
            rpc="a.right_party::int",
        )
    }
    FROM contact_attempts a {_CASE_JOIN.format(case_id="a.case_id")}
    WHERE {_INSTANT_RANGE.format(column="a.at")}"""


def _payments() -> str:
    return f"""
    SELECT {keys(day="p.paid_on", team="pu.team_id", collector="p.collector_id")},
        p.case_id,
        {_measures(recovered="p.amount", payments="(p.amount > 0)::int")}
    FROM payments p {_CASE_JOIN.format(case_id="p.case_id")}
    LEFT JOIN users pu ON pu.id = p.collector_id
    WHERE p.paid_on BETWEEN :d0 AND :d1"""


def _first_payments() -> str:
    # A case counts as paying from its first payment that was not reversed.
    return f"""
    SELECT {keys(day="fp.paid_on", team="pu.team_id", collector="fp.collector_id")},
        fp.case_id,
        {_measures(paying_cases="1")}
    FROM (
        SELECT DISTINCT ON (p.case_id) p.case_id, p.paid_on, p.collector_id
        FROM payments p
        WHERE p.amount > 0 AND p.paid_on <= :d1
            AND NOT EXISTS (SELECT 1 FROM payments r WHERE r.reverses_id = p.id)
        ORDER BY p.case_id, p.paid_on, p.id
    ) fp {_CASE_JOIN.format(case_id="fp.case_id")}
    LEFT JOIN users pu ON pu.id = fp.collector_id
    WHERE fp.paid_on >= :d0"""


def _promises_made() -> str:
    day = _local_day("pr.created_at")
    return f"""
    SELECT {keys(day=day, team="pu.team_id", collector="pr.collector_id")},
        pr.case_id,
        {_measures(promises="1", promised_amount="pr.amount")}
    FROM promises pr {_CASE_JOIN.format(case_id="pr.case_id")}
    LEFT JOIN users pu ON pu.id = pr.collector_id
    WHERE {_INSTANT_RANGE.format(column="pr.created_at")}
        AND pr.status <> 'cancelled'"""


def _promises_due() -> str:
    kept = "(pr.status = 'kept')"
    return f"""
    SELECT {keys(day="pr.due_on", team="pu.team_id", collector="pr.collector_id")},
        pr.case_id,
        {
        _measures(
            promises_due="1",
            promises_due_amount="pr.amount",
            promises_kept=f"{kept}::int",
            promises_kept_amount=f"CASE WHEN {kept} THEN pr.amount ELSE 0 END",
        )
    }
    FROM promises pr {_CASE_JOIN.format(case_id="pr.case_id")}
    LEFT JOIN users pu ON pu.id = pr.collector_id
    WHERE pr.due_on BETWEEN :d0 AND :d1 AND pr.status <> 'cancelled'"""


# The first assignment of a case, or its current one when no event names it.
ASSIGNED_FROM = """coalesce(
    (SELECT min(e.at) FROM case_events e
     WHERE e.case_id = c.id AND e.kind = 'assigned'),
    c.assigned_at)"""


def _closed() -> str:
    # A case closes on the first snapshot day that shows it paid or settled after a
    # day that showed it open. Cases closed before the first snapshot are not seen.
    start = _local_day(ASSIGNED_FROM)
    return f"""
    SELECT {keys(day="h.valid_from", team="c.team_id", collector="c.collector_id")},
        h.case_id,
        {
        _measures(
            closed_cases="1",
            cycle_days=f"h.valid_from - {start}",
        )
    }
    FROM case_snapshots h
    JOIN case_snapshots before ON before.case_id = h.case_id
        AND before.valid_to = h.valid_from
        AND before.status NOT IN ('paid', 'settled')
    {_CASE_JOIN.format(case_id="h.case_id")}
    WHERE h.valid_from BETWEEN :d0 AND :d1
        AND h.status IN ('paid', 'settled')
        AND {ASSIGNED_FROM} IS NOT NULL"""


def _assigned() -> str:
    # First contact is due 24 hours after assignment when no due time was stored.
    met = (
        "(c.first_contact_at IS NOT NULL AND c.first_contact_at <= "
        "coalesce(c.first_contact_due_at, c.assigned_at + interval '24 hours'))"
    )
    day = _local_day("c.assigned_at")
    in_range = _INSTANT_RANGE.format(column="c.assigned_at")
    return f"""
    SELECT {keys(day=day, team="c.team_id", collector="c.collector_id")},
        c.id AS case_id,
        {_measures(assigned_cases="1", sla_met=f"{met}::int")}
    FROM cases c JOIN debtors d ON d.id = c.debtor_id
    WHERE c.assigned_at IS NOT NULL AND {in_range}"""


SOURCES = {
    "attempts": _attempts,
    "payments": _payments,
    "first_payments": _first_payments,
    "promises_made": _promises_made,
    "promises_due": _promises_due,
    "closed": _closed,
    "assigned": _assigned,
}


# Team and collector columns of each source. A query for one collector or team also
# filters on them directly, so the indexes on those columns can serve it.
OWNER_COLUMNS = {
    "attempts": ("a.team_id", "a.collector_id"),
    "payments": ("pu.team_id", "p.collector_id"),
    "first_payments": ("pu.team_id", "fp.collector_id"),
    "promises_made": ("pu.team_id", "pr.collector_id"),
    "promises_due": ("pu.team_id", "pr.collector_id"),
    "closed": ("c.team_id", "c.collector_id"),
    "assigned": ("c.team_id", "c.collector_id"),
    "population": ("c.team_id", "c.collector_id"),
    "roll": ("s.team_id", "s.collector_id"),
}


def owner_sql(source: str, filters: dict[str, str] | None) -> str:
    """Return extra AND conditions on the source's own team and collector columns."""
    team, collector = OWNER_COLUMNS[source]
    conditions = ""
    for dim, column in (("team", team), ("collector", collector)):
        if filters and str(filters.get(dim, "")).isdigit():
            conditions += f" AND {column} = CAST(:owner_{dim} AS integer)"
    return conditions


def events_sql(
    sources: tuple[str, ...] = tuple(SOURCES), filters: dict[str, str] | None = None
) -> str:
    """Return the UNION ALL of the event sources between local days :d0 and :d1."""
    return "\nUNION ALL\n".join(
        SOURCES[name]() + owner_sql(name, filters) for name in sources
    )


def filter_sql(filters: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Return a WHERE condition on the dimension keys and its bind parameters."""
    conditions = ["TRUE"]
    params: dict[str, str] = {}
    for dim, value in filters.items():
        if dim not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dim!r}")
        conditions.append(f"k_{dim} = :f_{dim}")
        params[f"f_{dim}"] = value
        if dim in ("team", "collector"):
            # A parameter of its own: PostgreSQL gives a parameter one type.
            params[f"owner_{dim}"] = value
    return " AND ".join(conditions), params


def _sums() -> str:
    return ",\n".join(f"sum({name}) AS {name}" for name in MEASURES)


def daily_sql(
    filters: dict[str, str],
    by: str | None,
    sources: tuple[str, ...] = tuple(SOURCES),
) -> tuple[str, dict[str, str]]:
    """Return per-day sums for one breakdown dimension (or 'all'), live."""
    where, params = filter_sql(filters)
    key = f"k_{by}" if by else "'all'"
    sql = f"""
    SELECT day, {key} AS key, {_sums()},
        count(DISTINCT k_collector) FILTER (
            WHERE attempts > 0 AND k_collector <> ''
        ) AS collector_days
    FROM ({events_sql(sources, filters)}) events
    WHERE {where}
    GROUP BY 1, 2"""
    return sql, params


# Owners whose own figures are also stored per value of each other dimension, so a
# collector's or team lead's breakdown reads stored sums too.
SCOPES = ("team", "collector")


def grouping_sets() -> list[tuple[str, str, str | None]]:
    """Return the stored groupings as (dimension, key column, scope column)."""
    sets: list[tuple[str, str, str | None]] = [("all", "'all'", None)]
    sets += [(dim, f"k_{dim}", None) for dim in DIMENSIONS]
    # Team and collector group the same rows either way round, so the pair is kept
    # once, as a team's figures per collector.
    sets += [
        (dim, f"k_{dim}", f"k_{scope}")
        for scope in SCOPES
        for dim in DIMENSIONS
        if dim not in SCOPES[: SCOPES.index(scope) + 1]
    ]
    return sets


def _grouping_columns() -> str:
    """Return GROUPING SETS and the dim, scope and key columns that label each row.

    GROUPING() over all key columns gives a bit mask, with bit 1 for each column
    that the row's set does not group by, so each set has its own mask.
    """
    names = [f"k_{dim}" for dim in DIMENSIONS]
    mask = f"GROUPING({', '.join(names)})"
    sets, dims, scopes, keys = [], [], [], []
    for dim, key, scope in grouping_sets():
        grouped = {column for column in (key, scope) if column and column in names}
        value = sum(
            1 << (len(names) - 1 - index)
            for index, name in enumerate(names)
            if name not in grouped
        )
        sets.append("(" + ", ".join(sorted(grouped)) + ")")
        dims.append(f"WHEN {value} THEN '{dim}'")
        keys.append(f"WHEN {value} THEN {key}")
        if scope:
            label = scope.removeprefix("k_")
            scopes.append(f"WHEN {value} THEN '{label}:' || {scope}")
    return (
        f"GROUPING SETS ({', '.join(sets)})",
        f"CASE {mask} {' '.join(dims)} END",
        f"CASE {mask} {' '.join(scopes)} ELSE '' END",
        f"left(CASE {mask} {' '.join(keys)} END, 100)",
    )


def rollup_sql() -> str:
    """Return the statement that writes `kpi_daily` for days :d0 to :d1."""
    sets, dim, scope, key = _grouping_columns()
    columns = ", ".join(MEASURES)
    return f"""
    INSERT INTO kpi_daily (dim, scope, day, key, {columns}, collector_days)
    SELECT {dim}, {scope}, day, {key}, {_sums()},
        count(DISTINCT k_collector) FILTER (
            WHERE attempts > 0 AND k_collector <> ''
        )
    FROM ({events_sql()}) events
    GROUP BY day, {sets}"""


def population_select(filters: dict[str, str] | None = None) -> str:
    """Return per-case rows of the cases placed by day :day, with their keys."""
    key_columns = keys(
        day="CAST(:day AS date)", team="c.team_id", collector="c.collector_id"
    )
    return f"""
    SELECT {key_columns},
        c.id AS case_id, c.total_due, c.balance,
        (c.status IN {OPEN_STATUSES_SQL})::int AS is_open
    FROM cases c JOIN debtors d ON d.id = c.debtor_id
    WHERE c.placement_date <= :day{owner_sql("population", filters)}"""


POPULATION_SUMS = (
    "count(*) AS cases, coalesce(sum(is_open), 0) AS open_cases, "
    "coalesce(sum(total_due), 0) AS total_due, coalesce(sum(balance), 0) AS balance"
)


def population_sql(filters: dict[str, str], by: str | None) -> tuple[str, dict]:
    where, params = filter_sql(filters)
    key = f"k_{by}" if by else "'all'"
    sql = f"""
    SELECT {key} AS key, {POPULATION_SUMS}
    FROM ({population_select(filters)}) cases_placed
    WHERE {where}
    GROUP BY 1"""
    return sql, params


def population_rollup_sql() -> str:
    sets, dim, scope, key = _grouping_columns()
    return f"""
    INSERT INTO kpi_population
        (dim, scope, day, key, cases, open_cases, total_due, balance)
    SELECT {dim}, {scope}, :day, {key}, {POPULATION_SUMS}
    FROM ({population_select()}) cases_placed
    GROUP BY {sets}"""


def _state(alias: str) -> str:
    closed = ", ".join(f"'{status}'" for status in CLOSED_STATUSES)
    return (
        f"CASE WHEN {alias}.status IN ({closed}) THEN {alias}.status "
        f"ELSE coalesce({alias}.bucket, 'current') END"
    )


def roll_select(filters: dict[str, str] | None = None) -> str:
    """Return per-case rows: bucket and balance on :start and state on :end."""
    return f"""
    SELECT {
        keys(
            day="CAST(:start AS date)",
            team="s.team_id",
            collector="s.collector_id",
            bucket="s.bucket",
            segment="s.segment",
            grade="s.risk_grade",
        )
    },
        s.case_id, s.bucket AS from_bucket, {_state("e")} AS to_state, s.balance
    FROM case_snapshots s
    JOIN case_snapshots e ON e.case_id = s.case_id
        AND e.valid_from <= :end AND (e.valid_to IS NULL OR e.valid_to > :end)
    {_CASE_JOIN.format(case_id="s.case_id")}
    WHERE s.valid_from <= :start AND (s.valid_to IS NULL OR s.valid_to > :start)
        AND s.bucket IS NOT NULL AND s.status IN {OPEN_STATUSES_SQL}
        {owner_sql("roll", filters)}"""


def roll_sql(filters: dict[str, str], by: str | None) -> tuple[str, dict]:
    where, params = filter_sql(filters)
    key = f"k_{by}" if by else "'all'"
    sql = f"""
    SELECT {key} AS key, from_bucket, to_state, count(*) AS cases,
        sum(balance) AS balance
    FROM ({roll_select(filters)}) rolled
    WHERE {where}
    GROUP BY 1, 2, 3"""
    return sql, params


def roll_rollup_sql() -> str:
    sets, dim, scope, key = _grouping_columns()
    return f"""
    INSERT INTO kpi_roll
        (dim, scope, month, key, from_bucket, to_state, cases, balance)
    SELECT {dim}, {scope}, :start, {key}, from_bucket, to_state,
        count(*), sum(balance)
    FROM ({roll_select()}) rolled
    GROUP BY from_bucket, to_state, {sets}"""
