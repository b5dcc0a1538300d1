"""The content-addressed blob store: placement, atomicity under SIGKILL, concurrent writers."""

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from neurodepot.catalog.models import Project, Resource, ResourceFile
from neurodepot.catalog.resources import add_file
from neurodepot.catalog.target import Target
from neurodepot.depot.blobstore import BlobStore
from neurodepot.depot.folder import Depot
from neurodepot.depot.fsck import fsck
from neurodepot.depot.garbage import Collected, collect
from neurodepot.depot.orm import Base, Blob
from neurodepot.errors import Invalid, NotFound

MIB = 1024 * 1024
KILLED_WRITER_CONTENT = b"content of a killed writer"  # what writer_process.py adds

Spawn = Callable[..., subprocess.Popen[str]]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def blob_files(store: BlobStore) -> list[Path]:
    return sorted(p for p in store.content_root.rglob("*") if p.is_file())


def row_count(depot: Depot, model: type[Base]) -> int:
    with depot.transaction() as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    created = BlobStore(tmp_path / "blobs")
    created.create()
    return created


class TestStoring:
    def test_content_is_stored_under_its_sha256(self, store: BlobStore) -> None:
        ref = store.put_stream([b"hello ", b"world"])
        assert (ref.digest, ref.size) == (sha256(b"hello world"), 11)
        expected = store.content_root / ref.digest[:2] / ref.digest[2:4] / ref.digest
        assert blob_files(store) == [expected]
        assert b"".join(store.read_chunks(ref.digest, chunk_size=3)) == b"hello world"
        assert store.temporary_files() == []

    def test_a_stored_blob_is_read_only(self, store: BlobStore) -> None:
        ref = store.put_stream([b"shared by every file that names it"])

        assert store.path(ref.digest).stat().st_mode & 0o777 == 0o444

    def test_identical_content_is_stored_once(self, store: BlobStore) -> None:
        first = store.put_stream([b"same"])
        second = store.put_stream([b"sa", b"me"])
        assert first == second
        assert list(store.digests()) == [first.digest]
        assert store.temporary_files() == []

    def test_local_file_is_stored_with_its_digest(self, store: BlobStore, tmp_path: Path) -> None:
        source = tmp_path / "source.bin"
        source.write_bytes(os.urandom(3 * MIB + 5))
        ref = store.put_file(source)
        assert ref.digest == sha256(source.read_bytes())
        assert store.path(ref.digest).read_bytes() == source.read_bytes()

    def test_storing_again_heals_a_truncated_blob(self, store: BlobStore) -> None:
        ref = store.put_stream([b"precious content"])
        store.path(ref.digest).write_bytes(b"prec")
        store.put_stream([b"precious content"])
        assert store.path(ref.digest).read_bytes() == b"precious content"

    def test_abandoned_writer_stores_nothing(self, store: BlobStore) -> None:
        with pytest.raises(ConnectionError), store.writer() as writer:
            writer.write(b"half an upload")
            raise ConnectionError("client went away")
        assert blob_files(store) == []
        assert store.temporary_files() == []

    def test_source_failing_midway_stores_nothing(self, store: BlobStore) -> None:
        def chunks() -> Iterator[bytes]:
            yield b"x" * MIB
            raise OSError("disk read error")

        with pytest.raises(OSError, match="disk read error"):
            store.put_stream(chunks())
        assert blob_files(store) == []
        assert store.temporary_files() == []

    def test_content_not_matching_its_declared_digest_is_invalid_and_not_stored(
        self, store: BlobStore
    ) -> None:
        with store.writer() as writer:
            writer.write(b"damaged in transit")
            with pytest.raises(Invalid, match="damaged in transit"):
                writer.finish(expected_digest=sha256(b"what was sent"))
        assert blob_files(store) == []
        assert store.temporary_files() == []

    def test_declared_digest_is_compared_case_insensitively(self, store: BlobStore) -> None:
        with store.writer() as writer:
            writer.write(b"intact")
            ref = writer.finish(expected_digest=sha256(b"intact").upper())
        assert store.exists(ref.digest)

    def test_writer_refuses_writes_and_finishing_after_finish(self, store: BlobStore) -> None:
        with store.writer() as writer:
            writer.write(b"once")
            writer.finish()
            with pytest.raises(ValueError, match="write after finish"):
                writer.write(b"more")
            with pytest.raises(ValueError, match="finish called twice"):
                writer.finish()
        assert list(store.digests()) == [sha256(b"once")]


class TestNaming:
    @pytest.mark.parametrize(
        "digest",
        ["", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "../" + "0" * 61, "0" * 64 + "\n"],
        ids=["empty", "short", "long", "uppercase", "not hex", "climbing", "trailing newline"],
    )
    def test_only_sha256_digests_name_blobs(self, store: BlobStore, digest: str) -> None:
        with pytest.raises(Invalid, match="not a SHA-256 digest"):
            store.path(digest)

    def test_missing_blob_is_not_found_and_points_to_fsck(self, store: BlobStore) -> None:
        with pytest.raises(NotFound, match="neurodepot fsck"):
            store.open("0" * 64)

    def test_listing_ignores_files_that_are_not_placed_blobs(self, store: BlobStore) -> None:
        ref = store.put_stream([b"real"])
        misplaced = store.content_root / "ff" / "ff" / ref.digest
        misplaced.parent.mkdir(parents=True)
        misplaced.write_bytes(b"real")
        (store.content_root / "ff" / "ff" / "README").write_text("not a blob")
        assert list(store.digests()) == [ref.digest]


class TestKilledWriter:
    def test_writer_killed_mid_write_leaves_no_blob_and_no_row(
        self, project_depot: Depot, spawn_writer: Spawn
    ) -> None:
        depot = project_depot
        process = spawn_writer(depot.settings.root, "slow", "big.bin")

        def temporary_file_has_grown() -> bool:
            sizes = [p.stat().st_size for p in depot.blobs.temporary_files()]
            return process.poll() is not None or any(size > 2 * MIB for size in sizes)

        wait_until(temporary_file_has_grown, timeout=60, what="the writer to stream 2 MiB")
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL

        assert blob_files(depot.blobs) == []
        assert [row_count(depot, m) for m in (Blob, Resource, ResourceFile)] == [0, 0, 0]
        assert len(depot.blobs.temporary_files()) == 1
        in_progress = fsck(depot.engine, depot.blobs)
        assert (in_progress.ok, in_progress.writes_in_progress) == (True, 1)
        assert [p.kind for p in fsck(depot.engine, depot.blobs, stale_after=0).problems] == [
            "temporary"
        ]

        assert collect(depot.engine, depot.blobs, stale_after=0).temporary_files == 1
        assert depot.blobs.temporary_files() == []
        assert fsck(depot.engine, depot.blobs, stale_after=0).ok

    @pytest.mark.parametrize("moment", ["kill-after-place", "kill-before-commit"])
    def test_writer_killed_between_rename_and_commit_leaves_an_orphan_that_fsck_repairs(
        self, project_depot: Depot, spawn_writer: Spawn, moment: str
    ) -> None:
        depot = project_depot
        process = spawn_writer(depot.settings.root, moment, "f.txt")
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL, stderr
        digest = sha256(KILLED_WRITER_CONTENT)

        assert blob_files(depot.blobs) == [depot.blobs.path(digest)]
        assert [row_count(depot, m) for m in (Blob, Resource, ResourceFile)] == [0, 0, 0]
        report = fsck(depot.engine, depot.blobs)
        assert [(p.kind, p.digest) for p in report.problems] == [("orphaned-blob", digest)]

        repaired = fsck(depot.engine, depot.blobs, repair=True)
        assert repaired.ok, repaired.problems
        assert repaired.repaired is not None and repaired.repaired.files == [digest]
        assert blob_files(depot.blobs) == []
        stored = add_file(depot, Target("p"), "R", "after.txt", [b"the depot is still usable"])
        assert stored.outcome == "created"


def write_rows(depot: Depot, digest: str, size: int, path: str = "f") -> None:
    """Record a blob and one project file naming it, as `store_file` would."""
    with depot.transaction() as db:
        project = db.scalar(select(Project.id).where(Project.label == "p"))
        resource = db.scalar(select(Resource.id).where(Resource.project_id == project))
        if resource is None:
            db.add(Resource(label="R", project_id=project))
            db.flush()
            resource = db.scalar(select(Resource.id).where(Resource.project_id == project))
        db.add(Blob(digest=digest, size=size))
        db.flush()
        db.add(ResourceFile(resource_id=resource, path=path, digest=digest, size=size))


class TestConcurrentWriters:
    @pytest.mark.parametrize("same_path", [False, True], ids=["different paths", "same path"])
    def test_two_processes_storing_the_same_content_at_once_keep_one_blob(
        self,
        project_depot: Depot,
        spawn_writer: Spawn,
        tmp_path: Path,
        same_path: bool,
    ) -> None:
        depot = project_depot
        source = tmp_path / "scan.bin"
        source.write_bytes(os.urandom(20 * MIB))
        digest = sha256(source.read_bytes())
        go = tmp_path / "go"
        ready = [tmp_path / f"ready-{n}" for n in range(2)]
        processes = [
            spawn_writer(
                depot.settings.root,
                "file",
                "scan.bin" if same_path else f"scan-{n}.bin",
                str(source),
                GO_FILE=str(go),
                READY_FILE=str(ready[n]),
            )
            for n in range(2)
        ]
        wait_until(
            lambda: all(r.exists() for r in ready) or any(p.poll() is not None for p in processes),
            timeout=60,
            what="both writers to be ready",
        )
        go.touch()
        outputs = [p.communicate(timeout=120) for p in processes]

        assert [p.returncode for p in processes] == [0, 0], outputs
        outcomes = sorted(json.loads(stdout)["outcome"] for stdout, _ in outputs)
        assert outcomes == (["created", "unchanged"] if same_path else ["created", "created"])
        assert blob_files(depot.blobs) == [depot.blobs.path(digest)]
        assert sha256(depot.blobs.path(digest).read_bytes()) == digest
        with depot.transaction() as db:
            assert list(db.execute(select(Blob.digest, Blob.size))) == [(digest, 20 * MIB)]
            files = list(db.execute(select(ResourceFile.path, ResourceFile.digest)))
        expected_paths = ["scan.bin"] if same_path else ["scan-0.bin", "scan-1.bin"]
        assert sorted(files) == [(path, digest) for path in expected_paths]
        assert depot.blobs.temporary_files() == []
        assert fsck(depot.engine, depot.blobs).ok

    @pytest.mark.parametrize("same_path", [False, True], ids=["different paths", "same path"])
    def test_many_threads_storing_the_same_content_at_once_keep_one_blob(
        self, project_depot: Depot, same_path: bool
    ) -> None:
        depot, writers = project_depot, 8
        start = threading.Barrier(writers)

        def write(n: int) -> str:
            start.wait(timeout=30)
            path = "same.txt" if same_path else f"file-{n}.txt"
            return add_file(depot, Target("p"), "R", path, [b"small ", b"content"]).outcome

        with ThreadPoolExecutor(writers) as pool:
            outcomes = sorted(pool.map(write, range(writers), timeout=120))

        if same_path:
            assert outcomes == ["created"] + ["unchanged"] * (writers - 1)
        else:
            assert outcomes == ["created"] * writers
        digest = sha256(b"small content")
        assert blob_files(depot.blobs) == [depot.blobs.path(digest)]
        assert [row_count(depot, m) for m in (Blob, Resource)] == [1, 1]
        assert row_count(depot, ResourceFile) == (1 if same_path else writers)
        assert depot.blobs.temporary_files() == []
        assert fsck(depot.engine, depot.blobs).ok

    def test_many_threads_putting_the_same_content_leave_one_file(self, store: BlobStore) -> None:
        content = os.urandom(MIB)
        start = threading.Barrier(16)

        def put(_: int) -> str:
            start.wait(timeout=30)
            return store.put_stream([content[: MIB // 2], content[MIB // 2 :]]).digest

        with ThreadPoolExecutor(16) as pool:
            digests = set(pool.map(put, range(16), timeout=60))
        assert digests == {sha256(content)}
        assert blob_files(store) == [store.path(sha256(content))]
        assert store.temporary_files() == []

    def test_collector_waits_for_a_writer_between_storing_and_recording(
        self, project_depot: Depot
    ) -> None:
        depot = project_depot
        collected: list[Collected] = []
        collector = threading.Thread(
            target=lambda: collected.append(collect(depot.engine, depot.blobs))
        )
        with depot.blobs.writing():
            ref = depot.blobs.put_stream([b"stored, not yet recorded"])
            collector.start()
            collector.join(timeout=0.5)
            assert collector.is_alive(), "the collector ran while a writer held the lock"
            write_rows(depot, ref.digest, ref.size)
        collector.join(timeout=30)
        assert not collector.is_alive()
        assert collected[0].files == []
        assert depot.blobs.exists(ref.digest)


class TestBatch:
    def test_nothing_is_visible_before_commit(self, store: BlobStore) -> None:
        with store.batch() as batch:
            ref = batch.put_stream([b"first ", b"content"])
            assert ref.digest == sha256(b"first content")
            assert list(store.digests()) == []
            assert len(store.temporary_files()) == 1
            batch.commit()
        assert list(store.digests()) == [ref.digest]
        assert store.path(ref.digest).read_bytes() == b"first content"
        assert store.temporary_files() == []

    def test_leaving_without_commit_stores_nothing(self, store: BlobStore) -> None:
        with store.batch() as batch:
            batch.put_stream([b"a"])
            batch.put_stream([b"b"])
        assert list(store.digests()) == []
        assert store.temporary_files() == []

    def test_a_failing_source_leaves_no_temporary_file(self, store: BlobStore) -> None:
        def broken() -> Iterator[bytes]:
            yield b"partial"
            raise OSError("disk went away")

        with store.batch() as batch, pytest.raises(OSError, match="disk went away"):
            batch.put_stream(broken())
        assert store.temporary_files() == []

    def test_identical_contents_in_one_batch_are_stored_once(
        self, store: BlobStore, tmp_path: Path
    ) -> None:
        sources = []
        for index in range(3):
            source = tmp_path / f"copy{index}.bin"
            source.write_bytes(b"same bytes" * 1000)
            sources.append(source)
        with store.batch() as batch:
            refs = [batch.put_file(source) for source in sources]
            batch.commit()
        assert len({ref.digest for ref in refs}) == 1
        assert list(store.digests()) == [refs[0].digest]
        assert store.temporary_files() == []

    def test_large_chunks_hash_the_same_as_hashlib(self, store: BlobStore) -> None:
        chunks = [os.urandom(300 * 1024), bytearray(os.urandom(400 * 1024)), os.urandom(17)]
        expected = hashlib.sha256(b"".join(bytes(c) for c in chunks)).hexdigest()
        with store.writer() as writer:
            for chunk in chunks:
                writer.write(chunk)
            assert writer.finish().digest == expected
