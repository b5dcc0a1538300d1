"""The depot's schema version: Alembic migrations applied programmatically.

A depot opened by newer code has pending migrations; opening runs them unless told not to, in
which case `MigrationRequired` says what to run. A depot written by newer code is refused.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from neurodepot.errors import MigrationRequired, Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision`, in one transaction.

    On SQLite, foreign keys are switched off while migrating (and checked before the commit):
    a migration that must rebuild a table (Alembic's batch mode: copy, drop, rename) would
    otherwise cascade the drop into every row that refers to it, deleting the catalog.
    """
    config = _config(engine)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # a PRAGMA only takes effect outside a transaction: set it on the driver
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise Unavailable(
                            f"migrating would leave {len(broken)} broken reference(s) "
                            f"(first: {tuple(broken[0])}); nothing was changed"
                        )
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]


def pending(engine: Engine) -> list[str]:
    """Revisions not yet applied, oldest first; raises if the depot is newer than this code."""
    script = ScriptDirectory(str(MIGRATIONS))
    current = current_revision(engine)
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise Unavailable(
            f"the depot's schema revision {current} is newer than this neurodepot knows; "
            "upgrade neurodepot before opening it"
        )
    revisions = [rev.revision for rev in script.walk_revisions(base="base", head="heads")]
    revisions.reverse()
    if current is None:
        return revisions
    return revisions[revisions.index(current) + 1 :]


def ensure_current(engine: Engine, auto_migrate: bool) -> list[str]:
    """Bring the schema to head (returning what was applied) or refuse when not allowed."""
    todo = pending(engine)
    if todo and not auto_migrate:
        raise MigrationRequired(
            f"the depot's database needs {len(todo)} migration(s) ({', '.join(todo)}); "
            "run `neurodepot migrate` (or allow NEURODEPOT_AUTO_MIGRATE) to apply them"
        )
    if todo:
        upgrade(engine)
    return todo
