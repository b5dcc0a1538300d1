"""fsck: what it finds when the database and the blob store disagree, and what it repairs."""

import hashlib
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from neurodepot.catalog.resources import add_file
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.depot.fsck import FsckReport, fsck
from neurodepot.depot.orm import Blob

CONTENTS = {"alpha.txt": b"alpha " * 1000, "bravo.txt": b"bravo " * 1000, "charlie.txt": b"c"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def kinds(report: FsckReport) -> list[tuple[str, str]]:
    return sorted((p.kind, p.digest) for p in report.problems)


@pytest.fixture
def stored(project_depot: Depot) -> Depot:
    """A depot with three files in project `p`, each with its own content."""
    for path, content in CONTENTS.items():
        add_file(project_depot, Target("p"), "R", path, [content])
    return project_depot


def alpha(depot: Depot) -> tuple[str, Path]:
    digest = sha256(CONTENTS["alpha.txt"])
    return digest, depot.blobs.path(digest)


def flip_a_byte(depot: Depot) -> str:
    digest, path = alpha(depot)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(data)
    return digest


def blob_rows(depot: Depot) -> set[str]:
    with depot.transaction() as db:
        return set(db.scalars(select(Blob.digest)))


def orphan_row(depot: Depot, content: bytes) -> str:
    """A blob with its row, but no file or release naming it."""
    ref = depot.blobs.put_stream([content])
    with depot.transaction() as db:
        db.add(Blob(digest=ref.digest, size=ref.size))
    return ref.digest


def stale_temporary_file(depot: Depot, age: float = 7200) -> str:
    path = depot.blobs.tmp_root / "incoming-interrupted"
    path.write_bytes(b"half")
    os.utime(path, (time.time() - age, time.time() - age))
    return path.name


def insert_bypassing_foreign_keys(engine: Engine, statement: str) -> None:
    """Write a row the schema forbids, as a damaged or hand-edited database might hold."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "sqlite":
            cursor.execute("PRAGMA foreign_keys = OFF")
            cursor.execute(statement)
            cursor.execute("PRAGMA foreign_keys = ON")
        else:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(statement)
        raw.commit()
    finally:
        raw.close()


def test_healthy_depot_is_ok(stored: Depot) -> None:
    report = fsck(stored.engine, stored.blobs)
    assert report.ok
    assert (report.checked_blobs, report.problems, report.writes_in_progress) == (3, [], 0)


def test_flipped_byte_is_corrupt_and_is_not_repaired(stored: Depot) -> None:
    digest = flip_a_byte(stored)
    damaged = alpha(stored)[1]
    damaged_bytes = damaged.read_bytes()

    report = fsck(stored.engine, stored.blobs)
    assert not report.ok
    assert kinds(report) == [("corrupt", digest)]
    assert "hashes to" in report.problems[0].detail

    after = fsck(stored.engine, stored.blobs, repair=True)
    assert kinds(after) == [("corrupt", digest)]
    assert damaged.read_bytes() == damaged_bytes
    assert digest in blob_rows(stored)


def test_flipped_byte_goes_unnoticed_without_reading_content(stored: Depot) -> None:
    flip_a_byte(stored)
    assert fsck(stored.engine, stored.blobs, verify_content=False).ok


@pytest.mark.parametrize("change", ["truncated", "grown"])
def test_size_change_is_corrupt_even_without_reading_content(stored: Depot, change: str) -> None:
    digest, path = alpha(stored)
    content = CONTENTS["alpha.txt"]
    path.write_bytes(content[:-1] if change == "truncated" else content + b"!")
    report = fsck(stored.engine, stored.blobs, verify_content=False)
    assert kinds(report) == [("corrupt", digest)]
    assert "recorded" in report.problems[0].detail


def test_deleted_blob_file_is_missing_and_its_row_is_kept_by_repair(stored: Depot) -> None:
    digest, path = alpha(stored)
    path.unlink()

    assert kinds(fsck(stored.engine, stored.blobs)) == [("missing", digest)]
    assert kinds(fsck(stored.engine, stored.blobs, repair=True)) == [("missing", digest)]
    assert digest in blob_rows(stored)


def test_blob_file_without_a_row_is_orphaned_and_repair_removes_it(stored: Depot) -> None:
    ref = stored.blobs.put_stream([b"stored but never recorded"])

    assert kinds(fsck(stored.engine, stored.blobs)) == [("orphaned-blob", ref.digest)]
    repaired = fsck(stored.engine, stored.blobs, repair=True)
    assert repaired.ok
    assert repaired.repaired is not None and repaired.repaired.files == [ref.digest]
    assert not stored.blobs.exists(ref.digest)


def test_blob_row_nothing_refers_to_is_orphaned_and_repair_removes_row_and_file(
    stored: Depot,
) -> None:
    digest = orphan_row(stored, b"recorded, then its file row was deleted")

    assert kinds(fsck(stored.engine, stored.blobs)) == [("orphaned-row", digest)]
    repaired = fsck(stored.engine, stored.blobs, repair=True)
    assert repaired.ok
    assert repaired.repaired is not None and repaired.repaired.rows == [digest]
    assert digest not in blob_rows(stored)
    assert not stored.blobs.exists(digest)


def test_stale_temporary_file_is_reported_and_repair_removes_it(stored: Depot) -> None:
    name = stale_temporary_file(stored)

    assert kinds(fsck(stored.engine, stored.blobs)) == [("temporary", name)]
    repaired = fsck(stored.engine, stored.blobs, repair=True)
    assert repaired.ok
    assert repaired.repaired is not None and repaired.repaired.temporary_files == 1
    assert stored.blobs.temporary_files() == []


def test_young_temporary_file_is_a_write_in_progress_and_is_kept(stored: Depot) -> None:
    stale_temporary_file(stored, age=0)

    report = fsck(stored.engine, stored.blobs, repair=True)
    assert report.ok
    assert report.writes_in_progress == 1
    assert len(stored.blobs.temporary_files()) == 1


def test_file_row_naming_an_unrecorded_blob_is_dangling(stored: Depot) -> None:
    digest = "d" * 64
    insert_bypassing_foreign_keys(
        stored.engine,
        "INSERT INTO resource_files (resource_id, path, digest, size, content_type, created_at) "
        f"SELECT id, 'ghost.txt', '{digest}', 1, 'text/plain', created_at FROM resources",
    )
    report = fsck(stored.engine, stored.blobs, repair=True)
    assert kinds(report) == [("dangling", digest)]
    assert "resource_files.digest" in report.problems[0].detail


def test_repair_removes_only_orphans_never_a_corrupt_or_missing_blob(stored: Depot) -> None:
    corrupt = flip_a_byte(stored)
    corrupt_bytes = stored.blobs.path(corrupt).read_bytes()
    missing = sha256(CONTENTS["bravo.txt"])
    stored.blobs.path(missing).unlink()
    orphan_file = stored.blobs.put_stream([b"orphan file"]).digest
    unreferenced = orphan_row(stored, b"orphan row")
    temporary = stale_temporary_file(stored)
    healthy = sha256(CONTENTS["charlie.txt"])

    before = fsck(stored.engine, stored.blobs)
    assert kinds(before) == sorted(
        [
            ("corrupt", corrupt),
            ("missing", missing),
            ("orphaned-blob", orphan_file),
            ("orphaned-row", unreferenced),
            ("temporary", temporary),
        ]
    )

    after = fsck(stored.engine, stored.blobs, repair=True)

    assert kinds(after) == sorted([("corrupt", corrupt), ("missing", missing)])
    assert after.repaired is not None
    assert sorted(after.repaired.files) == sorted([orphan_file, unreferenced])
    assert after.repaired.rows == [unreferenced]
    assert stored.blobs.path(corrupt).read_bytes() == corrupt_bytes
    assert blob_rows(stored) == {corrupt, missing, healthy}
    assert stored.blobs.exists(healthy)


def test_progress_is_reported_for_every_blob(stored: Depot) -> None:
    stored.blobs.put_stream([b"orphan file"])
    calls: list[tuple[int, int]] = []
    fsck(stored.engine, stored.blobs, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_empty_depot_is_ok(depot: Depot) -> None:
    with depot.transaction() as db:
        assert db.scalar(select(func.count()).select_from(Blob)) == 0
    assert fsck(depot.engine, depot.blobs).ok
