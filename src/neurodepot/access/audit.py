"""The append-only, hash-chained audit log: every read of data and every administrative act.

Each row's `hash` is the SHA-256 of its canonical form (`chain_hash`): its id, time, actor,
action, target, detail, outcome, note and the `previous_hash`, which is the hash of the row
before it by id (`GENESIS_HASH` for the first). Editing a row, deleting, inserting or moving one
breaks the chain at that row or the next, and `verify` names where.

What the chain cannot show on its own: that rows were cut off the end (the remaining rows are
still a valid chain), or that someone with write access rewrote a row and every hash after it
(there is no secret in the hash). Both need an anchor kept outside the database: export the log
or note the last row's id and hash (`audit verify` prints them) and pass it back to `verify`.
On PostgreSQL, the application's database role should have only SELECT and INSERT on the table
(see the README), so that the server itself cannot rewrite history.

Appending is serialised so that concurrent writers (threads, processes, server workers) never
fork the chain: PostgreSQL takes a transaction-scoped advisory lock, SQLite takes its write lock
before the last row is read. Either lock is held until the caller's transaction ends, so record
an event late in a transaction, or in a short one of its own; an event about a refused or
failed request must be recorded in a transaction that commits although the request fails.
"""

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, insert, select, text
from sqlalchemy.orm import Session

from neurodepot.access.models import AuditEvent
from neurodepot.errors import Invalid

# Documentation, not a closed set: any action name up to 64 characters is accepted.
ACTIONS = (
    "login",
    "login_failed",
    "logout",
    "token_used",
    "access_denied",
    "data_read",
    "download",
    "admin_read",  # of accounts or the prearchive, through the API
    "write",  # an allowed API request that may change something, with the route's outcome
    "membership_changed",
    "role_changed",
    "access_changed",
    "account_changed",
    "registration_refused",
    "verification_requested",
    "password_reset_requested",
    "password_reset",
    "mail_failed",
    "rate_limited",  # a public account route refused to an address over its limit
    "consent_set",
    "consent_withdrawn",
    "consent_imported",  # one event per spreadsheet, with its counts
    "sharing_requested",
    "sharing_approved",
    "sharing_rejected",
    "dua_published",
    "dua_accepted",
    "subject_exported",  # a GDPR subject access export
    "subject_erased",
    "retention_set",
    "processing_changed",
)

GENESIS_HASH = "0" * 64
CHUNK_ROWS = 1000

# One key for the whole database (advisory locks are not per schema): "ndaudit" in ASCII.
POSTGRES_LOCK_KEY = 0x6E_64_61_75_64_69_74

_LIMITS = {"actor": 255, "action": 64, "target": 1024, "outcome": 16}
_HASHED = ("id", "at", "actor", "action", "target", "detail", "outcome", "note", "previous_hash")
_COLUMNS = (
    AuditEvent.id,
    AuditEvent.at,
    AuditEvent.actor,
    AuditEvent.action,
    AuditEvent.target,
    AuditEvent.detail,
    AuditEvent.outcome,
    AuditEvent.note,
    AuditEvent.previous_hash,
    AuditEvent.hash,
)


@dataclass(frozen=True)
class AuditEntry:
    """One recorded event as it is stored; `at` is timezone-aware UTC."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    outcome: str
    note: str
    previous_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready values; `chain_hash` of it gives back `hash`."""
        return {
            "id": self.id,
            "at": iso_time(self.at),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "outcome": self.outcome,
            "note": self.note,
            "previous_hash": self.previous_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class AuditVerification:
    """The result of walking the chain.

    `checked` counts the rows read, up to and including the first broken one. `last_id` and
    `last_hash` describe the last row that checked out (keep them elsewhere as an anchor);
    they are None and "" when there is none.
    """

    ok: bool
    checked: int
    first_broken_id: int | None
    reason: str
    last_id: int | None = None
    last_hash: str = ""


def iso_time(at: datetime) -> str:
    """`at` as ISO-8601 UTC with microseconds, the form that is hashed; naive means UTC."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


def chain_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a row's canonical form; `fields` is an exported row (`hash` is ignored).

    The canonical form is the JSON object of the hashed fields with sorted keys, no spaces and
    UTF-8 text: `json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)`,
    so an exported log can be checked without neurodepot.
    """
    canonical = json.dumps(
        {name: fields[name] for name in _HASHED},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record(
    db: Session,
    actor: str,
    action: str,
    target: str = "",
    detail: Mapping[str, object] | None = None,
    outcome: str = "ok",
    note: str = "",
) -> AuditEntry:
    """Append one event to the chain in the caller's transaction, and return it as stored.

    `detail` must be JSON (string keys, no NaN or infinity); it is stored as JSON gives it
    back, so tuples become lists. Raises `Invalid` for an empty actor or action, a value longer
    than its column, or a detail that is not JSON.

    On SQLite, call it in a writing transaction (`Depot.transaction()`): in a reading one that
    has already read, SQLite refuses the write ("database is locked") rather than let the chain
    fork. On PostgreSQL the transaction must be READ COMMITTED (the default).
    """
    values = {"actor": actor, "action": action, "target": target, "outcome": outcome}
    for name, limit in _LIMITS.items():
        if len(values[name]) > limit:
            shown = values[name][:80]
            raise Invalid(f"audit {name} is longer than {limit} characters: {shown!r}…")
    if not actor or not action:
        raise Invalid("an audit event needs an actor and an action")
    plain_detail = _plain_json(detail or {})

    dialect = db.get_bind().dialect.name
    _lock_chain(db, dialect)
    last = db.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    if dialect == "postgresql":
        new_id = db.execute(text("SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))"))
        event_id = int(new_id.scalar_one())
    else:
        event_id = (last.id if last is not None else 0) + 1
    # Taken under the lock, so that times rise with ids as long as the clock does.
    at = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": event_id,
        "at": iso_time(at),
        **values,
        "detail": plain_detail,
        "note": note,
        "previous_hash": last.hash if last is not None else GENESIS_HASH,
    }
    fields["hash"] = chain_hash(fields)
    db.execute(insert(AuditEvent).values({**fields, "at": at}))
    return AuditEntry(**{**fields, "at": at})


def verify(
    db: Session, anchor: tuple[int, str] | None = None, chunk_rows: int = CHUNK_ROWS
) -> AuditVerification:
    """Walk the chain in id order, `chunk_rows` at a time, and report the first broken row.

    A row is broken when its content does not give its hash (it was edited, or moved to another
    id), or when its `previous_hash` is not the hash of the row before it (a row was deleted,
    inserted or moved between them; for the first row: rows before it were deleted).

    Rows deleted from the end cannot be seen without `anchor`, an (id, hash) pair noted
    earlier: the row with that id must still exist with that hash.
    """
    expected_previous, previous_id = GENESIS_HASH, None
    checked = 0
    anchor_seen = False

    def result(broken_id: int | None = None, reason: str = "") -> AuditVerification:
        last_hash = "" if previous_id is None else expected_previous
        return AuditVerification(
            broken_id is None, checked, broken_id, reason, previous_id, last_hash
        )

    for row in _stored_rows(db, chunk_rows=chunk_rows):
        checked += 1
        if chain_hash(_fields(row)) != row.hash:
            return result(
                row.id, "its content does not match its hash (the row was edited or moved)"
            )
        if row.previous_hash != expected_previous and previous_id is None:
            return result(
                row.id,
                "its previous_hash is not the start of the chain (earlier rows were deleted)",
            )
        if row.previous_hash != expected_previous:
            return result(
                row.id,
                f"its previous_hash is not the hash of row {previous_id} "
                "(a row was deleted, inserted or moved between them)",
            )
        if anchor is not None and row.id == anchor[0]:
            if row.hash != anchor[1].lower():
                return result(
                    row.id, "its hash is not the anchor's (the log was rewritten from here on)"
                )
            anchor_seen = True
        expected_previous, previous_id = row.hash, row.id
    if anchor is not None and not anchor_seen:
        return result(
            anchor[0], "the anchor's row is missing (rows were deleted from the end of the log)"
        )
    return result()


def export(
    db: Session, since: datetime | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[dict[str, Any]]:
    """The events at or after `since` (naive means UTC), in id order, as `AuditEntry.to_dict`.

    Rows are read `chunk_rows` at a time, so the log is never held in memory; the caller keeps
    the session open while iterating.
    """
    bound = None if since is None else datetime.fromisoformat(iso_time(since))
    for row in _stored_rows(db, since=bound, chunk_rows=chunk_rows):
        yield _fields(row) | {"hash": row.hash}


def _lock_chain(db: Session, dialect: str) -> None:
    """Hold, until the transaction ends, the lock that makes appends to the chain take turns."""
    if dialect == "postgresql":
        isolation = db.execute(
            text(
                "SELECT current_setting('transaction_isolation') "
                "FROM (SELECT pg_advisory_xact_lock(:key)) AS locked"
            ),
            {"key": POSTGRES_LOCK_KEY},
        ).scalar_one()
        if isolation != "read committed":
            # A snapshot taken before the lock was granted could miss the last row.
            raise RuntimeError(f"audit events need a READ COMMITTED transaction, not {isolation}")
    elif dialect == "sqlite":
        # A write that changes nothing: a deferred transaction takes the write lock here (or
        # fails if it read an older state), so the last row read next is the real last row.
        db.execute(text("UPDATE audit_events SET hash = hash WHERE 0"))


def _stored_rows(
    db: Session, since: datetime | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[Row[Any]]:
    """Rows in id order, fetched by keyset pages so that memory stays flat."""
    after = 0
    while True:
        query = select(*_COLUMNS).where(AuditEvent.id > after)
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        rows = db.execute(query.order_by(AuditEvent.id).limit(chunk_rows)).all()
        yield from rows
        if len(rows) < chunk_rows:
            return
        after = rows[-1].id


def _fields(row: Row[Any]) -> dict[str, Any]:
    """A stored row's hashed fields, with `at` in its canonical text form."""
    return {
        "id": row.id,
        "at": iso_time(row.at),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "detail": row.detail,
        "outcome": row.outcome,
        "note": row.note,
        "previous_hash": row.previous_hash,
    }


def _plain_json(detail: Mapping[str, object]) -> dict[str, Any]:
    try:
        text_form = json.dumps(dict(detail), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise Invalid(
            f"audit detail must be JSON with string keys and finite numbers: {exc}"
        ) from None
    plain: dict[str, Any] = json.loads(text_form)
    return plain
