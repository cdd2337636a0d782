"""Run Alembic migrations from code, so no alembic.ini has to be found on disk."""

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from db.engine import ensure_database, server_url

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", (url or server_url()).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Create the database if needed and migrate it to `revision`."""
    target = url or server_url()
    ensure_database(target)
    command.upgrade(alembic_config(target), revision)
    logger.info("database migrated to %s", revision)


def current_revision(url: str | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(url or server_url())
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    return revision
