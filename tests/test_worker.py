"""The procrastinate worker on the test database: schema, a deferred job run by a
real worker, and the daily jobs run twice."""

import threading

import psycopg
import pytest
from sqlalchemy import func, select

from db.engine import psycopg_conninfo
from db.models import Notification
from recova import worker
from services.segments import local_today
from tests.followup_factories import seed_builtins, setup_case


@pytest.fixture(autouse=True)
def builtins(engine):
    seed_builtins(engine)


@pytest.fixture
def conninfo(database_url):
    info = psycopg_conninfo(database_url)
    worker.ensure_schema(info)
    return info


def test_schema_is_applied_once(conninfo):
    assert worker.ensure_schema(conninfo) is False
    with psycopg.connect(conninfo) as conn:
        found = conn.execute(
            "SELECT to_regclass('procrastinate.procrastinate_jobs')"
        ).fetchone()
    assert found[0] is not None


def test_daily_cron_is_six_in_the_morning_in_shanghai():
    assert worker._daily_cron() == "0 22 * * *"


def test_worker_runs_a_deferred_job(session, conninfo):
    setup_case(session)
    app = worker._register(worker.make_app(conninfo))
    day = local_today().isoformat()
    with app.open():
        job_id = app.configure_task("recova.run_daily").defer(day=day)

    errors: list[BaseException] = []

    def work():
        try:
            app.run_worker(
                queues=[worker.QUEUE],
                wait=False,
                install_signal_handlers=False,
                listen_notify=False,
            )
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive() and errors == []
    with psycopg.connect(conninfo) as conn:
        status = conn.execute(
            "SELECT status FROM procrastinate.procrastinate_jobs WHERE id = %s",
            (job_id,),
        ).fetchone()[0]
    assert status == "succeeded"
    assert session.scalar(select(func.count()).select_from(Notification)) == 1


def test_run_daily_twice_changes_nothing_the_second_time(session):
    setup_case(session)
    first = worker.run_daily(local_today())
    second = worker.run_daily(local_today())
    assert first["send_digests"] == 1
    assert second["evaluate_promises"] == {"cases": 0}
    assert (second["resume_paused"], second["send_digests"]) == (0, 0)
