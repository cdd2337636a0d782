"""Time automatic assignment and the assignment board on generated data.

Run: python bench/assign.py [cases] [collectors] [open_cases]
Defaults: 100,000 new cases, 200 collectors, 1,000,000 open cases for the board.

It creates its own database (recova_bench_<pid>) on the configured server, or on
the embedded one when DATABASE_URL is unset, and drops it at the end. Steps:

1. 200 collectors (a quarter serve every province, the rest 3 to 8 provinces;
   skill 1 to 3) and 100,000 `new` cases over 31 provinces, classified once.
2. `auto_assign` over all of them, three times, each from the same starting state.
3. A bare `UPDATE cases ... FROM unnest(ids, collector_ids)` of the same rows with
   the collector ids from the first run, three times, from the same state.
4. 900,000 more cases already assigned, so 1,000,000 are open; then the board's
   service call `load_board` and the whole board page through AppTest.

It prints medians; numbers go to docs/benchmarks.md by hand.
"""

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Python puts bench/ first on the path, where bench/queue.py would shadow the
# standard library's queue module, so the project root takes its place.
sys.path[0] = str(ROOT)
os.environ.setdefault("RECOVA_HOME", str(ROOT / ".recova" / "bench"))

import psycopg  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from db import engine as db_engine  # noqa: E402
from db import migrate  # noqa: E402
from recova.settings import get_settings  # noqa: E402

PROVINCES = [
    "北京", "天津", "河北", "山西", "内蒙古", "辽宁", "吉林", "黑龙江", "上海", "江苏",
    "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西",
    "海南", "重庆", "四川", "贵州", "云南", "西藏", "陕西", "甘肃", "青海", "宁夏",
    "新疆",
]  # fmt: skip
RUNS = 3


def bench_url() -> str:
    base = make_url(db_engine.server_url())
    name = f"recova_bench_{os.getpid()}"
    return base.set(database=name).render_as_string(hide_password=False)


def drop(url: str) -> None:
    target = make_url(url)
    maintenance = target.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(db_engine.psycopg_conninfo(maintenance), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')


def median_seconds(samples: list[float]) -> str:
    return (
        f"{statistics.median(samples):.2f} s (runs: "
        + ", ".join(f"{sample:.2f}" for sample in samples)
        + ")"
    )


def create_collectors(session: Session, count: int) -> None:
    session.execute(
        text(
            "INSERT INTO teams (name) SELECT 'Team ' || n FROM generate_series(1, 10) n"
        )
    )
    session.execute(
        text(
            "INSERT INTO users (username, display_name, password_hash, role, team_id, "
            " regions, skill, capacity) "
            "SELECT 'collector' || n, 'Collector ' || n, 'not-a-hash', 'collector', "
            " 1 + n % 10, "
            " CASE WHEN n % 4 = 0 THEN '{}'::varchar[] ELSE ARRAY("
            "  SELECT (CAST(:provinces AS text[]))[1 + (n * 7 + k * 5) % 31] "
            "  FROM generate_series(1, 3 + n % 6) k) END, "
            " 1 + n % 3, 1000 "
            "FROM generate_series(1, CAST(:count AS int)) n"
        ),
        {"provinces": PROVINCES, "count": count},
    )


def create_cases(
    session: Session,
    count: int,
    *,
    status: str,
    offset: int,
    batch_name: str,
    collectors: int,
) -> int:
    """Insert `count` debtors and cases; return the batch id."""
    batch_id = session.execute(
        text(
            "INSERT INTO batches (creditor_id, name, placement_date, file_name, "
            " file_sha256, file_size, mode) "
            "VALUES (1, :name, current_date, 'bench.csv', repeat('0', 64), 0, "
            " 'valid-rows') RETURNING id"
        ),
        {"name": batch_name},
    ).scalar_one()
    session.execute(
        text(
            "INSERT INTO debtors (id, creditor_id, name, province, customer_type) "
            "SELECT n, 1, 'Debtor ' || n, (CAST(:provinces AS text[]))[1 + n % 31], "
            " CASE WHEN n % 50 = 0 THEN 'company' ELSE 'individual' END "
            "FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) n"
        ),
        {"provinces": PROVINCES, "first": offset + 1, "last": offset + count},
    )
    session.execute(
        text(
            "INSERT INTO cases (creditor_id, batch_id, debtor_id, case_no, total_due, "
            " balance, overdue_since, dpd_at_placement, placement_date, status, "
            " collector_id, segment, strategy) "
            "SELECT 1, :batch, n, 'B' || n, amount, amount, current_date - dpd, dpd, "
            " current_date, CAST(:status AS varchar), "
            " CASE WHEN NOT CAST(:assigned AS boolean) THEN NULL "
            "  ELSE (SELECT min(id) FROM users WHERE role = 'collector') "
            "   + n % CAST(:collectors AS int) END, "
            " CASE WHEN NOT CAST(:assigned AS boolean) THEN NULL ELSE 'standard' END, "
            " CASE WHEN NOT CAST(:assigned AS boolean) THEN NULL ELSE 'standard' END "
            "FROM (SELECT n, round((100 + (n * 7919) % 90000)::numeric, 2) AS amount, "
            " CAST(1 + (n * 31) % 400 AS int) AS dpd "
            " FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) n"
            ") AS g"
        ),
        {
            "batch": batch_id,
            "status": status,
            "assigned": status != "new",
            "collectors": collectors,
            "first": offset + 1,
            "last": offset + count,
        },
    )
    session.execute(
        text("SELECT setval(pg_get_serial_sequence('debtors', 'id'), :last)"),
        {"last": offset + count},
    )
    return batch_id


def reset_new(engine, batch_id: int) -> None:
    """Put the batch's cases back to `new` and vacuum, so every run starts alike."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM case_events"))
        conn.execute(
            text(
                "UPDATE cases SET status = 'new', collector_id = NULL, team_id = NULL, "
                "assigned_at = NULL, first_contact_due_at = NULL, "
                "next_action_at = NULL, unassigned_reason = NULL, version = 1 "
                "WHERE batch_id = :batch"
            ),
            {"batch": batch_id},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE cases"))
        conn.execute(text("VACUUM ANALYZE case_events"))


def time_auto_assign(engine, batch_id: int) -> tuple[list[float], dict[int, int]]:
    from services.actors import Actor
    from services.assignment import auto_assign

    samples, mapping = [], {}
    for _ in range(RUNS):
        reset_new(engine, batch_id)
        with Session(engine) as session:
            started = time.perf_counter()
            result = auto_assign(session=session, actor=Actor.operator("bench"))
            samples.append(time.perf_counter() - started)
        if not mapping:
            mapping = {case.case_id: case.collector_id for case in result.assigned}
            print(
                f"  assigned {len(result.assigned):,}, "
                f"left {len(result.unassigned):,}: {result.reasons()}"
            )
    return samples, mapping


def time_bare_update(engine, batch_id: int, mapping: dict[int, int]) -> list[float]:
    ids, collectors = list(mapping), list(mapping.values())
    samples = []
    for _ in range(RUNS):
        reset_new(engine, batch_id)
        with Session(engine) as session:
            started = time.perf_counter()
            session.execute(
                text(
                    "UPDATE cases c SET collector_id = u.collector_id, "
                    "status = 'assigned' "
                    "FROM unnest(CAST(:ids AS bigint[]), CAST(:collectors AS int[])) "
                    "AS u(id, collector_id) WHERE c.id = u.id"
                ),
                {"ids": ids, "collectors": collectors},
            )
            session.commit()
            samples.append(time.perf_counter() - started)
    return samples


def time_board(engine, url: str) -> None:
    from services.actors import Actor
    from services.board import load_board

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        open_cases = conn.execute(
            text("SELECT count(*) FROM cases WHERE status <> 'recalled'")
        ).scalar_one()
        plan = conn.execute(
            text(
                "EXPLAIN SELECT collector_id, coalesce(segment, ''), count(*), "
                "sum(balance) FROM cases WHERE collector_id IS NOT NULL AND status IN "
                "('new', 'assigned', 'in_progress', 'promised', 'paused', 'disputed') "
                "GROUP BY collector_id, segment"
            )
        ).scalars()
        print(f"  open cases: {open_cases:,}")
        print("  load query plan: " + " / ".join(line.strip() for line in plan))

    samples = []
    for _ in range(5):
        with Session(engine) as session:
            started = time.perf_counter()
            view = load_board(session=session, actor=Actor.operator("bench"))
            samples.append(time.perf_counter() - started)
    print(f"  collectors on the board: {len(view.collectors)}")
    print(f"load_board with {open_cases:,} open cases: {median_seconds(samples)}")
    time_board_page(engine)


def time_board_page(engine) -> None:
    """Time one full run of app.py with the board page open, run by AppTest."""
    from streamlit.testing.v1 import AppTest

    from services import auth
    from services.actors import Actor
    from services.users import NewUser, add_user

    password = "bench password 1"
    with Session(engine) as session:
        add_user(
            session=session,
            actor=Actor.operator("bench"),
            data=NewUser(username="bench-manager", password=password, role="manager"),
        )
        token = auth.login(
            session=session, username="bench-manager", password=password
        ).token
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page(str(ROOT / "pages" / "board.py")).run()
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        at.run()
        samples.append(time.perf_counter() - started)
    if at.exception:
        print(f"  board page raised: {at.exception[0].value}")
    print(f"board page run (AppTest, app.py + board.py): {median_seconds(samples)}")


def main() -> None:
    cases = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    collectors = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    open_total = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000

    url = bench_url()
    drop(url)
    migrate.upgrade(url)
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    db_engine.get_engine.cache_clear()
    engine = create_engine(url)
    try:
        from services import segments

        with Session(engine) as session:
            session.execute(text("INSERT INTO creditors (name) VALUES ('Bench Bank')"))
            create_collectors(session, collectors)
            batch_id = create_cases(
                session,
                cases,
                status="new",
                offset=0,
                batch_name="new cases",
                collectors=collectors,
            )
            segments.classify(session, batch_id=batch_id)
            session.commit()
        print(f"{cases:,} new cases, {collectors} collectors")

        auto, mapping = time_auto_assign(engine, batch_id)
        print(f"auto_assign: {median_seconds(auto)}")
        bare = time_bare_update(engine, batch_id, mapping)
        print(f"bare UPDATE of the same rows: {median_seconds(bare)}")
        ratio = statistics.median(auto) / statistics.median(bare)
        print(f"ratio auto / bare: {ratio:.1f}")

        reset_new(engine, batch_id)
        with Session(engine) as session:
            from services.actors import Actor
            from services.assignment import auto_assign

            auto_assign(session=session, actor=Actor.operator("bench"))
            extra = max(open_total - cases, 0)
            create_cases(
                session,
                extra,
                status="assigned",
                offset=cases,
                batch_name="open cases",
                collectors=collectors,
            )
            session.commit()
        time_board(engine, url)
    finally:
        engine.dispose()
        db_engine.get_engine.cache_clear()
        drop(url)


if __name__ == "__main__":
    main()
