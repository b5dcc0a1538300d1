"""Database engines for SQLite (embedded default) and PostgreSQL.

SQLite gets foreign keys enforced, WAL, a busy timeout, and `BEGIN IMMEDIATE` transactions so
that two processes writing the same depot wait for each other instead of failing.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from neurodepot.errors import Invalid, Unavailable

SQLITE_BUSY_TIMEOUT_MS = 60_000
SQLITE_BEGIN_OPTION = "neurodepot_sqlite_begin"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_depot_engine(url: str) -> Engine:
    """An engine for `url`, checked by connecting once.

    Raises `Invalid` for a malformed URL and `Unavailable` when the database cannot be reached.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise Invalid(f"database URL {url!r} is malformed: {exc}") from None
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if is_sqlite(url):
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            _configure_sqlite(engine)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except (NoSuchModuleError, ImportError) as exc:
        raise Invalid(f"database URL {url!r} names an unsupported driver: {exc}") from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise Unavailable(
            f"cannot reach the database at {parsed.render_as_string(hide_password=True)}: "
            f"{reason}; check NEURODEPOT_DATABASE_URL and that the server is running"
        ) from None
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def session_factory(engine: Engine, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions for writing (SQLite: `BEGIN IMMEDIATE`) or only reading (`BEGIN DEFERRED`).

    A reading transaction on SQLite takes no write lock, so it neither waits for nor blocks a
    writer (WAL); it must not write.
    """
    if read_only:
        engine = engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session
