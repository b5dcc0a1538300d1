"""The hash-chained audit log: appending, finding tampering, concurrency, export and the CLI."""

import hashlib
import itertools
import json
import threading
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from neurodepot.access.audit import (
    ACTIONS,
    GENESIS_HASH,
    AuditEntry,
    chain_hash,
    export,
    iso_time,
    record,
    verify,
)
from neurodepot.access.models import AuditEvent
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid
from tests.cli import conftest as cli_conftest
from tests.cli.conftest import Run
from tests.cli.test_end_to_end import assert_one_line_error

cli = cli_conftest.cli  # the `cli` fixture (this folder's conftest does not import it)


def append(depot: Depot, count: int, actor: str = "alice") -> list[AuditEntry]:
    with depot.transaction() as db:
        return [
            record(db, actor, ACTIONS[n % len(ACTIONS)], f"P1/s{n}", {"n": n, "files": [n, 2]})
            for n in range(count)
        ]


def stored(depot: Depot) -> list[dict[str, Any]]:
    with depot.reading() as db:
        return list(export(db))


@contextmanager
def rolled_back(depot: Depot) -> Iterator[Session]:
    """A transaction that is never committed, so each scenario starts from the same log."""
    with depot.sessions() as db:
        db.begin()
        try:
            yield db
        finally:
            db.rollback()


class TestRecord:
    def test_appended_events_form_a_chain_that_verifies(self, depot: Depot) -> None:
        with depot.reading() as db:
            empty = verify(db)
        assert (empty.ok, empty.checked, empty.last_id, empty.last_hash) == (True, 0, None, "")
        entries = append(depot, 5)
        assert entries[0].previous_hash == GENESIS_HASH
        for before, after in itertools.pairwise(entries):
            assert after.previous_hash == before.hash and after.id > before.id
        assert stored(depot) == [entry.to_dict() for entry in entries]
        with depot.reading() as db:
            result = verify(db)
        assert (result.ok, result.checked, result.first_broken_id) == (True, 5, None)
        assert (result.last_id, result.last_hash) == (entries[-1].id, entries[-1].hash)

    def test_the_stored_time_and_detail_read_back_as_they_were_hashed(self, depot: Depot) -> None:
        detail = {"z": (1, 2), "a": {"é": 0.1, "n": None}, "3": True}
        with depot.transaction() as db:
            entry = record(db, "alice", "download", "P1", detail, outcome="denied", note="why")
        assert entry.detail == {"z": [1, 2], "a": {"é": 0.1, "n": None}, "3": True}
        with depot.reading() as db:
            if depot.engine.dialect.name == "postgresql":
                # The stored instant must hash the same whatever zone the session reads it in.
                db.execute(text("SET LOCAL TIME ZONE 'Asia/Kolkata'"))
            again = db.get_one(AuditEvent, entry.id)
            assert verify(db).ok
        assert iso_time(again.at) == iso_time(entry.at) == entry.to_dict()["at"]
        assert len(entry.to_dict()["at"]) == len("2026-01-01T00:00:00.000000+00:00")
        assert entry.to_dict()["at"].endswith("+00:00")
        assert again.detail == entry.detail

    def test_an_event_that_cannot_be_stored_faithfully_is_refused(self, depot: Depot) -> None:
        for arguments, fragment in [
            ({"detail": {"x": float("nan")}}, "finite"),
            ({"detail": {"x": object()}}, "JSON"),
            ({"detail": {"x": 1, 2: 3}}, "string keys"),
            ({"action": "x" * 65}, "action"),
            ({"actor": ""}, "actor"),
        ]:
            given: dict[str, Any] = {"actor": "alice", "action": "login"} | arguments
            with pytest.raises(Invalid, match=fragment), depot.transaction() as db:
                record(db, **given)
        assert stored(depot) == []


def test_times_are_hashed_as_utc_and_naive_means_utc() -> None:
    assert iso_time(datetime(2026, 1, 1, 12)) == "2026-01-01T12:00:00.000000+00:00"
    plus_two = datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert iso_time(plus_two) == "2026-01-01T12:00:00.000000+00:00"


Tamper = Callable[[Session, list[AuditEntry]], None]


def _edit(statement: str) -> Tamper:
    def tamper(db: Session, entries: list[AuditEntry]) -> None:
        if db.get_bind().dialect.name == "sqlite":
            sql = statement.replace("at + INTERVAL '1 second'", "datetime(at, '+1 second')")
        else:
            sql = statement
        db.execute(text(sql), {"id": entries[2].id})

    return tamper


def _edit_and_rehash(db: Session, entries: list[AuditEntry]) -> None:
    forged = entries[2].to_dict() | {"actor": "mallory"}
    db.execute(
        text("UPDATE audit_events SET actor = 'mallory', hash = :hash WHERE id = :id"),
        {"hash": chain_hash(forged), "id": entries[2].id},
    )


def _delete(index: int) -> Tamper:
    def tamper(db: Session, entries: list[AuditEntry]) -> None:
        db.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": entries[index].id})

    return tamper


def _swap(db: Session, entries: list[AuditEntry]) -> None:
    first, second = entries[2].to_dict(), entries[3].to_dict()
    for row_id, content in ((first["id"], second), (second["id"], first)):
        moved = {k: v for k, v in content.items() if k != "id"}
        moved["at"] = datetime.fromisoformat(moved["at"])
        db.execute(update(AuditEvent).where(AuditEvent.id == row_id).values(moved))


def _forge_into_the_middle(db: Session, entries: list[AuditEntry]) -> None:
    # Make room at the third id (in two steps: the primary key is checked row by row).
    db.execute(
        text("UPDATE audit_events SET id = id + 1000 WHERE id >= :id"), {"id": entries[2].id}
    )
    db.execute(text("UPDATE audit_events SET id = id - 999 WHERE id >= 1000"))
    forged = entries[2].to_dict() | {"actor": "mallory", "previous_hash": entries[1].hash}
    forged["hash"] = chain_hash(forged)
    db.execute(insert(AuditEvent).values(forged | {"at": entries[2].at}))


# (what was done, how, index of the entry whose id verify must name, words in the reason)
TAMPERING: list[tuple[str, Tamper, int, str]] = [
    (
        "detail edited",
        _edit("""UPDATE audit_events SET detail = '{"n": 9}' WHERE id = :id"""),
        2,
        "edited",
    ),
    (
        "actor edited",
        _edit("UPDATE audit_events SET actor = 'mallory' WHERE id = :id"),
        2,
        "edited",
    ),
    (
        "time edited",
        _edit("UPDATE audit_events SET at = at + INTERVAL '1 second' WHERE id = :id"),
        2,
        "edited",
    ),
    ("edited and rehashed", _edit_and_rehash, 3, "not the hash of row"),
    ("middle row deleted", _delete(2), 3, "deleted"),
    ("first row deleted", _delete(0), 1, "start of the chain"),
    ("two rows swapped", _swap, 2, "edited or moved"),
    # The forged row links up; the row moved from its id to the next one does not.
    ("row forged into the middle", _forge_into_the_middle, 3, "edited or moved"),
]


class TestTampering:
    def test_each_kind_of_tampering_is_caught_where_it_happened(
        self, depot: Depot, subtests: pytest.Subtests
    ) -> None:
        entries = append(depot, 5)
        for what, tamper, broken, words in TAMPERING:
            with subtests.test(msg=what), rolled_back(depot) as db:
                tamper(db, entries)
                result = verify(db)
                assert (result.ok, result.first_broken_id) == (False, entries[broken].id)
                assert words in result.reason
        with depot.reading() as db:
            assert verify(db).ok

    def test_rows_deleted_from_the_end_need_an_anchor_to_be_seen(self, depot: Depot) -> None:
        """The remaining rows are still a valid chain: only an anchor kept elsewhere shows it."""
        entries = append(depot, 4)
        anchor = (entries[-1].id, entries[-1].hash)
        with rolled_back(depot) as db:
            _delete(3)(db, entries)
            unanchored, anchored = verify(db), verify(db, anchor=anchor)
        assert (unanchored.ok, unanchored.checked, unanchored.last_id) == (True, 3, entries[2].id)
        assert (anchored.ok, anchored.first_broken_id) == (False, entries[-1].id)
        assert "missing" in anchored.reason
        with rolled_back(depot) as db:
            forged = entries[-1].to_dict() | {"actor": "mallory"}
            db.execute(
                text("UPDATE audit_events SET actor = 'mallory', hash = :hash WHERE id = :id"),
                {"hash": chain_hash(forged), "id": entries[-1].id},
            )
            rewritten, anchored = verify(db), verify(db, anchor=anchor)
        assert rewritten.ok
        assert (anchored.ok, anchored.first_broken_id) == (False, entries[-1].id)
        assert "anchor" in anchored.reason


def append_concurrently(depot: Depot, begin: Callable[[], AbstractContextManager[Session]]) -> None:
    """4 threads x 50 events, each in its own transaction; then the log must be one chain."""

    def appender(name: str) -> list[int]:
        ids = []
        for n in range(50):
            with begin() as db:
                ids.append(record(db, name, "data_read", f"P1/s{n}").id)
        return ids

    with ThreadPoolExecutor(4) as pool:
        results = [f.result() for f in [pool.submit(appender, f"t{i}") for i in range(4)]]
    assert len({i for ids in results for i in ids}) == 200
    assert len({row["previous_hash"] for row in stored(depot)}) == 200
    with depot.reading() as db:
        result = verify(db)
    assert (result.ok, result.checked) == (True, 200)


class TestConcurrency:
    def test_concurrent_appenders_keep_one_chain(self, depot: Depot) -> None:
        append_concurrently(depot, depot.transaction)

    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    def test_deferred_sqlite_transactions_take_turns_instead_of_failing(self, depot: Depot) -> None:
        """`BEGIN DEFERRED` takes no lock; only the one `record` takes keeps appenders in turn."""
        append_concurrently(depot, depot.reading)

    def test_an_append_waits_for_an_open_append_to_end(self, depot: Depot) -> None:
        first_recorded, second_done = threading.Event(), threading.Event()

        def second() -> AuditEntry:
            first_recorded.wait(10)
            with depot.transaction() as db:
                entry = record(db, "bob", "login")
            second_done.set()
            return entry

        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(second)
            with depot.transaction() as db:
                first = record(db, "alice", "login")
                first_recorded.set()
                assert not second_done.wait(0.3)
            assert later.result(30).previous_hash == first.hash

    def test_a_transaction_that_read_an_older_log_cannot_fork_it(self, depot: Depot) -> None:
        """SQLite refuses the stale reader's write; PostgreSQL reads the last row after the lock."""
        before = append(depot, 1)[0]
        with depot.reading() as stale:
            assert stale.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc())) == (
                before.hash
            )
            newer = append(depot, 1)[0]
            if depot.engine.dialect.name == "sqlite":
                with pytest.raises(OperationalError, match="locked"):
                    record(stale, "mallory", "login")
            else:
                assert record(stale, "carol", "login").previous_hash == newer.hash
        with depot.reading() as db:
            assert verify(db).ok


def test_verify_and_export_read_in_chunks_so_memory_stays_flat(depot: Depot) -> None:
    def extend(count: int) -> None:
        with depot.transaction() as db:
            last = db.execute(
                select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
            ).first()
            next_id, previous = (last.id + 1, last.hash) if last else (1, GENESIS_HASH)
            at = datetime.now(UTC)
            rows = []
            for row_id in range(next_id, next_id + count):
                row = {
                    "id": row_id,
                    "at": iso_time(at),
                    "actor": "alice",
                    "action": "data_read",
                    "target": f"P1/sub-{row_id:06d}/ses-1/{row_id}",
                    "detail": {"files": [f"f{n}.nii.gz" for n in range(10)]},
                    "outcome": "ok",
                    "note": "",
                    "previous_hash": previous,
                }
                row["hash"] = previous = chain_hash(row)
                rows.append(row | {"at": at})
            db.execute(insert(AuditEvent), rows)

    def peaks() -> tuple[int, int]:
        """Peak bytes allocated while verifying, and while exporting, the whole log."""
        found = []
        for walk in (
            lambda db: verify(db, chunk_rows=50).ok,
            lambda db: sum(1 for _ in export(db, chunk_rows=50)) > 0,
        ):
            with depot.reading() as db:
                tracemalloc.start()
                try:
                    assert walk(db)
                    found.append(tracemalloc.get_traced_memory()[1])
                finally:
                    tracemalloc.stop()
        return found[0], found[1]

    extend(200)
    peaks()  # warm the statement cache
    small = peaks()
    extend(1800)  # ten times as many rows
    large = peaks()
    assert large[0] < 2 * small[0] and large[1] < 2 * small[1], (small, large)


class TestExport:
    def test_export_since_a_time_gives_only_the_events_at_or_after_it(self, depot: Depot) -> None:
        entries = append(depot, 3)
        with depot.reading() as db:
            assert [row["id"] for row in export(db, since=entries[1].at)] == [
                entries[1].id,
                entries[2].id,
            ]
            naive = entries[2].at.replace(tzinfo=None)
            assert [row["id"] for row in export(db, since=naive)] == [entries[2].id]
            assert list(export(db, since=entries[2].at + timedelta(seconds=1))) == []
            assert [row["id"] for row in export(db, chunk_rows=2)] == [e.id for e in entries]

    def test_exported_rows_can_be_checked_without_neurodepot(self, depot: Depot) -> None:
        append(depot, 3)
        previous = "0" * 64
        for row in stored(depot):
            content = {k: v for k, v in row.items() if k != "hash"}
            canonical = json.dumps(
                content, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
            assert hashlib.sha256(canonical.encode()).hexdigest() == row["hash"]
            assert row["previous_hash"] == previous
            previous = row["hash"]


class TestCli:
    def test_verify_exits_0_when_intact_and_1_naming_the_broken_row(
        self, depot: Depot, cli: Run
    ) -> None:
        entries = append(depot, 3)
        intact = cli("audit", "verify")
        assert intact.code == 0, intact.err
        assert intact.out.strip() == (
            f"audit log intact: 3 event(s); last row {entries[2].id}, hash {entries[2].hash}"
        )
        with depot.transaction() as db:
            db.execute(
                text("UPDATE audit_events SET note = 'x' WHERE id = :id"), {"id": entries[1].id}
            )
        reason = "its content does not match its hash (the row was edited or moved)"
        broken = cli("audit", "verify")
        assert (broken.code, broken.out.splitlines()) == (
            1,
            [f"audit log broken at row {entries[1].id}: {reason}"],
        )

    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    def test_export_writes_json_lines_and_verify_takes_an_anchor(
        self, depot: Depot, cli: Run, tmp_path: Path
    ) -> None:
        entries = append(depot, 3)
        since = iso_time(entries[1].at).replace("+00:00", "Z")
        printed = cli("audit", "export", "--since", since)
        assert printed.code == 0, printed.err
        lines = [json.loads(line) for line in printed.out.splitlines()]
        assert lines == [entries[1].to_dict(), entries[2].to_dict()]

        out = tmp_path / "audit.jsonl"
        written = cli("audit", "export", "-o", str(out))
        assert written.code == 0, written.err
        assert [json.loads(line) for line in out.read_text().splitlines()] == [
            e.to_dict() for e in entries
        ]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.jsonl", "depot"]

        with depot.transaction() as db:
            db.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": entries[2].id})
        cut = cli("audit", "verify", "--json", "--anchor", f"{entries[2].id}:{entries[2].hash}")
        assert cut.code == 1
        assert json.loads(cut.out) == {
            "ok": False,
            "checked": 2,
            "first_broken_id": entries[2].id,
            "reason": "the anchor's row is missing (rows were deleted from the end of the log)",
            "last_id": entries[1].id,
            "last_hash": entries[1].hash,
        }

        assert_one_line_error(cli("audit", "export", "--since", "yesterday"), 2, "--since")


@pytest.fixture
def app_role(depot: Depot) -> Iterator[str]:
    """A role with exactly the README's grants (and USAGE on the test's schema)."""
    role = f"nd_audit_app_{uuid.uuid4().hex[:8]}"
    with depot.engine.begin() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        conn.execute(text(f'REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM "{role}"'))
        conn.execute(text(f'GRANT SELECT, INSERT ON audit_events TO "{role}"'))
        conn.execute(text(f'GRANT USAGE ON SEQUENCE audit_events_id_seq TO "{role}"'))
    try:
        yield role
    finally:
        with depot.engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_app_role_without_update_and_delete_can_append_but_not_rewrite(
    depot: Depot, app_role: str
) -> None:
    first = append(depot, 1)[0]
    with depot.transaction() as db:
        db.execute(text(f'SET LOCAL ROLE "{app_role}"'))
        appended = record(db, "alice", "login")
    assert appended.previous_hash == first.hash
    for statement in (
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ):
        with pytest.raises(ProgrammingError) as refused, depot.transaction() as db:
            db.execute(text(f'SET LOCAL ROLE "{app_role}"'))
            db.execute(text(statement))
        assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege), statement
    with depot.reading() as db:
        result = verify(db)
    assert (result.ok, result.checked) == (True, 2)
