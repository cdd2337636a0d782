"""Test database set-up: one fresh migrated database per run, emptied after each test.

Without DATABASE_URL the tests start their own embedded server under
.recova/test; with it they create `<name>_test` on that server.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RECOVA_HOME", str(ROOT / ".recova" / "test"))
os.environ.setdefault("RECOVA_SECRET", "test-secret-not-for-production")

import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from db import engine as db_engine  # noqa: E402
from db import migrate  # noqa: E402
from recova.settings import get_settings  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
APP_FILE = str(ROOT / "app.py")


def _test_url() -> str:
    # One database per test run, so runs in parallel do not empty each other's tables.
    base = make_url(db_engine.server_url())
    name = f"{base.database}_test_{os.getpid()}"
    return base.set(database=name).render_as_string(hide_password=False)


def _maintenance(url: str) -> str:
    target = make_url(url).set(database="postgres")
    return db_engine.psycopg_conninfo(target.render_as_string(hide_password=False))


def _drop(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(_maintenance(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = _test_url()
    _drop(url)
    migrate.upgrade(url)
    _keep_insertion_order(url)
    # Everything in this process (services, AppTest pages) now uses the test database.
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    db_engine.get_engine.cache_clear()
    yield url
    db_engine.get_engine(url).dispose()
    db_engine.get_engine.cache_clear()
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous
    get_settings.cache_clear()
    _drop(url)


@pytest.fixture
def engine(database_url: str):
    engine = db_engine.get_engine(database_url)
    yield engine
    _empty_tables(engine)


def _keep_insertion_order(url: str) -> None:
    """Turn autovacuum off for the test tables.

    Tests are emptied with DELETE, and a vacuum would let new rows fill the freed
    space, so a query without ORDER BY would return rows in another order from run
    to run. Without it, rows stay in insertion order, as in a new database.
    """
    engine = db_engine.get_engine(url)
    with engine.begin() as conn:
        names = conn.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).all()
        for name in names:
            conn.execute(text(f'ALTER TABLE "{name}" SET (autovacuum_enabled = off)'))


def _empty_tables(engine) -> None:
    """Delete every row of the public tables and restart their id sequences.

    A DELETE of a few rows is far cheaper than a TRUNCATE, which replaces each
    table's files. Replica mode skips the foreign-key checks, so the order does not
    matter, and the audit log's append-only triggers.
    """
    with engine.begin() as conn:
        names = conn.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ).all()
        sequences = conn.scalars(
            text(
                "SELECT quote_ident(sequencename) FROM pg_sequences "
                "WHERE schemaname = 'public' AND last_value IS NOT NULL"
            )
        ).all()
        statements = ["SET LOCAL session_replication_role = replica"]
        statements += [f'DELETE FROM "{name}"' for name in names]
        statements += [f"ALTER SEQUENCE {name} RESTART" for name in sequences]
        conn.exec_driver_sql(";\n".join(statements))
    # The result codes and compliance profiles that migration 0004 seeds are part
    # of a working database, so every test starts with them.
    from tests.followup_factories import seed_builtins

    seed_builtins(engine)


@pytest.fixture
def session(engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session
