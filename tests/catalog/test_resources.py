"""Resources and their files: storing, deduplicating, replacing, deleting, refusing bad input."""

import hashlib
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from neurodepot.catalog.hierarchy import create_project
from neurodepot.catalog.models import Resource, ResourceFile
from neurodepot.catalog.resources import (
    add_file,
    add_local_file,
    create_resource,
    delete_file,
    get_file,
    get_resource,
    list_resources,
    store_file,
)
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.depot.fsck import fsck
from neurodepot.depot.orm import Base, Blob
from neurodepot.errors import Conflict, Invalid, NotFound

MIB = 1024 * 1024
PROJECT, SCAN = Target("p"), Target("p", "s", "v", "1")
LEVELS = [Target("p"), Target("p", "s"), Target("p", "s", "v"), Target("p", "s", "v", "1")]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def count(depot: Depot, model: type[Base]) -> int:
    with depot.transaction() as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


def stored_digests(depot: Depot) -> set[str]:
    return set(depot.blobs.digests())


class Untouched:
    """Chunks that record whether anyone asked for them."""

    def __init__(self) -> None:
        self.read = False

    def __iter__(self) -> Iterator[bytes]:
        self.read = True
        yield b"content"


class TestResources:
    @pytest.mark.parametrize("target", LEVELS, ids=str)
    def test_resource_is_created_at_every_level(self, tree: Depot, target: Target) -> None:
        with tree.transaction() as db:
            created = create_resource(db, target, "behaviour")
        assert (created.target, created.label, created.file_count) == (str(target), "behaviour", 0)
        with tree.transaction() as db:
            assert [r.label for r in list_resources(db, target)] == ["behaviour"]

    def test_duplicate_resource_label_is_a_conflict(self, tree: Depot) -> None:
        with tree.transaction() as db:
            create_resource(db, SCAN, "DICOM")
        with (
            pytest.raises(Conflict, match="resource 'DICOM' already exists"),
            tree.transaction() as db,
        ):
            create_resource(db, SCAN, "DICOM")
        assert count(tree, Resource) == 1

    def test_resource_listing_counts_files_and_bytes(self, tree: Depot) -> None:
        add_file(tree, SCAN, "NIFTI", "b.nii", [b"12345"])
        add_file(tree, SCAN, "NIFTI", "a.json", [b"{}"])
        with tree.transaction() as db:
            create_resource(db, SCAN, "QC")
            listed = [(r.label, r.file_count, r.total_size) for r in list_resources(db, SCAN)]
            files = get_resource(db, SCAN, "NIFTI").files
        assert listed == [("NIFTI", 2, 7), ("QC", 0, 0)]
        assert [(f.path, f.size, f.content_type) for f in files] == [
            ("a.json", 2, "application/json"),
            ("b.nii", 5, "application/octet-stream"),
        ]

    def test_unknown_resource_or_file_is_not_found(self, tree: Depot) -> None:
        add_file(tree, PROJECT, "docs", "protocol.pdf", [b"%PDF"])
        with tree.transaction() as db:
            with pytest.raises(NotFound, match="resource 'nope'"):
                get_resource(db, PROJECT, "nope")
            with pytest.raises(NotFound, match=r"file 'other\.pdf'"):
                get_file(db, PROJECT, "docs", "other.pdf")
            assert get_file(db, PROJECT, "docs", "protocol.pdf").digest == sha256(b"%PDF")


class TestAddingFiles:
    def test_file_is_stored_as_a_blob_and_recorded(self, tree: Depot) -> None:
        stored = add_file(tree, SCAN, "DICOM", "dir/1.dcm", [b"DICM", b"data"])
        assert (stored.outcome, stored.target, stored.resource) == ("created", "p/s/v/1", "DICOM")
        assert (stored.file.path, stored.file.digest, stored.file.size) == (
            "dir/1.dcm",
            sha256(b"DICMdata"),
            8,
        )
        assert b"".join(tree.blobs.read_chunks(stored.file.digest)) == b"DICMdata"
        assert fsck(tree.engine, tree.blobs).ok

    def test_resending_the_same_content_changes_nothing(self, tree: Depot) -> None:
        first = add_file(tree, SCAN, "DICOM", "1.dcm", [b"same"])
        again = add_file(tree, SCAN, "DICOM", "1.dcm", [b"sa", b"me"])
        assert again.outcome == "unchanged"
        assert again.file == first.file
        assert (count(tree, Blob), count(tree, ResourceFile)) == (1, 1)

    def test_different_content_at_a_taken_path_is_a_conflict_and_is_not_kept(
        self, tree: Depot
    ) -> None:
        add_file(tree, SCAN, "DICOM", "1.dcm", [b"original"])
        with pytest.raises(Conflict, match="already exists with different content"):
            add_file(tree, SCAN, "DICOM", "1.dcm", [b"impostor"])
        with tree.transaction() as db:
            assert get_file(db, SCAN, "DICOM", "1.dcm").digest == sha256(b"original")
        assert stored_digests(tree) == {sha256(b"original")}
        assert count(tree, Blob) == 1
        assert tree.blobs.temporary_files() == []

    def test_overwrite_replaces_content_and_drops_the_unused_blob(self, tree: Depot) -> None:
        add_file(tree, SCAN, "NIFTI", "t1.nii", [b"version 1"])
        replaced = add_file(tree, SCAN, "NIFTI", "t1.nii", [b"version 2"], overwrite=True)
        assert replaced.outcome == "replaced"
        assert stored_digests(tree) == {sha256(b"version 2")}
        assert fsck(tree.engine, tree.blobs).ok

    def test_overwrite_keeps_the_old_blob_another_file_still_uses(self, tree: Depot) -> None:
        add_file(tree, SCAN, "NIFTI", "t1.nii", [b"version 1"])
        add_file(tree, PROJECT, "backup", "t1.nii", [b"version 1"])
        add_file(tree, SCAN, "NIFTI", "t1.nii", [b"version 2"], overwrite=True)
        assert stored_digests(tree) == {sha256(b"version 1"), sha256(b"version 2")}

    def test_local_file_is_added_under_its_name_or_a_given_path(
        self, tree: Depot, tmp_path: Path
    ) -> None:
        source = tmp_path / "events.tsv"
        source.write_bytes(b"onset\tduration\n")
        assert add_local_file(tree, PROJECT, "beh", source).file.path == "events.tsv"
        stored = add_local_file(tree, PROJECT, "beh", source, path="func/events.tsv")
        assert (stored.file.path, stored.file.content_type) == (
            "func/events.tsv",
            "text/tab-separated-values",
        )
        assert count(tree, Blob) == 1

    def test_missing_local_file_is_invalid(self, tree: Depot, tmp_path: Path) -> None:
        with pytest.raises(Invalid, match="does not exist"):
            add_local_file(tree, PROJECT, "beh", tmp_path / "nowhere.tsv")
        with pytest.raises(Invalid, match="not a regular file"):
            add_local_file(tree, PROJECT, "beh", tmp_path)

    def test_content_damaged_in_transit_is_invalid_and_not_stored(self, tree: Depot) -> None:
        with tree.blobs.writer() as writer:
            writer.write(b"damaged")
            with pytest.raises(Invalid, match="damaged in transit"):
                store_file(tree, SCAN, "DICOM", "1.dcm", writer, expected_digest=sha256(b"x"))
        assert stored_digests(tree) == set()
        assert (count(tree, Blob), count(tree, ResourceFile)) == (0, 0)
        assert tree.blobs.temporary_files() == []

    def test_source_failing_midway_leaves_no_blob_no_row_and_no_temporary_file(
        self, tree: Depot
    ) -> None:
        def chunks() -> Iterator[bytes]:
            yield b"x" * MIB
            raise ConnectionResetError("upload interrupted")

        with pytest.raises(ConnectionResetError):
            add_file(tree, SCAN, "DICOM", "1.dcm", chunks())
        assert stored_digests(tree) == set()
        assert (count(tree, Blob), count(tree, Resource), count(tree, ResourceFile)) == (0, 0, 0)
        assert tree.blobs.temporary_files() == []


class TestBadInput:
    @pytest.mark.parametrize(
        ("target", "missing"),
        [
            (Target("nope"), "project 'nope'"),
            (Target("p", "nope"), "subject 'nope'"),
            (Target("p", "s", "v", "9"), "scan '9'"),
        ],
    )
    def test_unknown_target_is_not_found_before_any_content_is_read(
        self, tree: Depot, target: Target, missing: str
    ) -> None:
        chunks = Untouched()
        with pytest.raises(NotFound, match=f"^{missing} does not exist"):
            add_file(tree, target, "R", "f.txt", chunks)
        assert not chunks.read
        assert count(tree, Resource) == 0

    @pytest.mark.parametrize(
        "path", ["../escape.txt", "a/../../b", "/etc/passwd", "dir\\file", "a\x00b", "", "."]
    )
    def test_unsafe_path_is_invalid_before_any_content_is_read(
        self, tree: Depot, path: str
    ) -> None:
        chunks = Untouched()
        with pytest.raises(Invalid, match="file path"):
            add_file(tree, PROJECT, "R", path, chunks)
        assert not chunks.read
        assert (count(tree, Resource), count(tree, ResourceFile)) == (0, 0)
        assert stored_digests(tree) == set()

    @pytest.mark.parametrize("label", ["two words", "a/b", "", "x" * 65, "R\n"])
    def test_invalid_resource_label_is_invalid(self, tree: Depot, label: str) -> None:
        chunks = Untouched()
        with pytest.raises(Invalid, match=r"^resource label"):
            add_file(tree, PROJECT, label, "f.txt", chunks)
        assert not chunks.read
        with pytest.raises(Invalid, match=r"^resource label"), tree.transaction() as db:
            create_resource(db, PROJECT, label)
        assert count(tree, Resource) == 0


class TestDeduplication:
    def test_identical_content_under_two_paths_and_projects_is_stored_once(
        self, tree: Depot
    ) -> None:
        with tree.transaction() as db:
            create_project(db, "q")
        content = b"shared protocol" * 1000
        add_file(tree, PROJECT, "docs", "protocol.txt", [content])
        add_file(tree, PROJECT, "docs", "copy/protocol.txt", [content])
        add_file(tree, Target("q"), "docs", "protocol.txt", [content])
        assert stored_digests(tree) == {sha256(content)}
        assert (count(tree, Blob), count(tree, ResourceFile)) == (1, 3)
        assert fsck(tree.engine, tree.blobs).ok

    def test_deleting_a_file_keeps_content_another_file_uses(self, tree: Depot) -> None:
        add_file(tree, PROJECT, "docs", "a.txt", [b"shared"])
        add_file(tree, SCAN, "docs", "b.txt", [b"shared"])
        add_file(tree, SCAN, "docs", "c.txt", [b"only c"])

        deleted = delete_file(tree, PROJECT, "docs", "a.txt")
        assert deleted.digest == sha256(b"shared")
        assert stored_digests(tree) == {sha256(b"shared"), sha256(b"only c")}

        delete_file(tree, SCAN, "docs", "b.txt")
        assert stored_digests(tree) == {sha256(b"only c")}
        assert count(tree, Blob) == 1
        assert fsck(tree.engine, tree.blobs).ok

    def test_deleting_an_unknown_file_is_not_found(self, tree: Depot) -> None:
        add_file(tree, PROJECT, "docs", "a.txt", [b"kept"])
        with pytest.raises(NotFound, match=r"file 'b\.txt'"):
            delete_file(tree, PROJECT, "docs", "b.txt")
        assert stored_digests(tree) == {sha256(b"kept")}


def test_adding_a_large_stream_keeps_memory_flat(tree: Depot) -> None:
    total_mib = 200
    digest = hashlib.sha256()

    def chunks() -> Iterator[bytes]:
        for index in range(total_mib):
            chunk = bytes([index % 256]) * MIB  # a fresh chunk each time, as a reader gives
            digest.update(chunk)
            yield chunk

    tracemalloc.start()
    try:
        stored = add_file(tree, SCAN, "NIFTI", "big.nii", chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.file.size == total_mib * MIB
    assert stored.file.digest == digest.hexdigest()
    assert peak < 20 * MIB, f"peak {peak / MIB:.1f} MiB while streaming {total_mib} MiB"
