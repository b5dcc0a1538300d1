"""`INSERT … ON CONFLICT DO NOTHING` on both SQLite and PostgreSQL."""

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_duplicates(db: Session, model: Any, values: dict[str, Any]) -> None:
    """Insert a row unless one with the same key exists (another writer may have won)."""
    dialect = db.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    db.execute(module.insert(model).values(**values).on_conflict_do_nothing())
