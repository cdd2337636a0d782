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


def _test_url() -> str:
    base = make_url(db_engine.server_url())
    name = f"{base.database}_test" if os.environ.get("DATABASE_URL") else "recova_test"
    return base.set(database=name).render_as_string(hide_password=False)


def _recreate(url: str) -> None:
    target = make_url(url)
    maintenance = db_engine.psycopg_conninfo(
        target.set(database="postgres").render_as_string(hide_password=False)
    )
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{target.database}"')


@pytest.fixture(scope="session")
def database_url() -> str:
    url = _test_url()
    _recreate(url)
    migrate.upgrade(url)
    # Everything in this process (services, AppTest pages) now uses the test database.
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    db_engine.get_engine.cache_clear()
    return url


TABLES_IN_ORDER = None


@pytest.fixture
def engine(database_url: str):
    engine = db_engine.get_engine(database_url)
    yield engine
    _empty_tables(engine)


def _empty_tables(engine) -> None:
    with engine.begin() as conn:
        names = conn.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ).all()
        # Replica mode skips the audit log's append-only triggers for the clean-up.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))


@pytest.fixture
def session(engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session
