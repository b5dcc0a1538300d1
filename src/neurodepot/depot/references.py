"""Which database columns name blobs, read from the database's own foreign keys.

Garbage collection and fsck must never miss a referrer (missing one would delete live data), so
they ask the database rather than trusting which ORM modules happen to be imported.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, column, inspect, select, table, union
from sqlalchemy.sql import Select


@dataclass(frozen=True)
class Referrer:
    table: str
    column: str


def blob_referrers(conn: Connection) -> list[Referrer]:
    inspector = inspect(conn)
    found = []
    for name in inspector.get_table_names():
        for fk in inspector.get_foreign_keys(name):
            if fk["referred_table"] == "blobs":
                found.extend(Referrer(name, col) for col in fk["constrained_columns"])
    return sorted(found, key=lambda r: (r.table, r.column))


def referenced_digests(conn: Connection) -> Select[tuple[str]] | None:
    """A query of every digest some row refers to (None when nothing can refer to blobs)."""
    selects = [
        select(column(r.column).label("digest")).select_from(table(r.table))
        for r in blob_referrers(conn)
    ]
    if not selects:
        return None
    if len(selects) == 1:
        return selects[0]
    return select(union(*selects).subquery().c.digest)
