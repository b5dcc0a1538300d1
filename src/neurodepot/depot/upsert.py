"""`INSERT … ON CONFLICT DO NOTHING` on both SQLite and PostgreSQL."""

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_duplicates(
    db: Session | Connection, model: Any, values: dict[str, Any]
) -> bool:
    """Insert a row unless one with the same key exists (another writer may have won).

    Returns whether this call inserted the row. On PostgreSQL a clash with a row another
    transaction has not yet committed waits for it, so afterwards that row can be read.
    """
    bind = db.get_bind() if isinstance(db, Session) else db
    dialect = bind.dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    key = model.__table__.primary_key.columns
    statement = module.insert(model).values(**values).on_conflict_do_nothing().returning(*key)
    return db.execute(statement).first() is not None
