"""Adding many local files at once: checked first, stored in batches, all or nothing per check."""

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from neurodepot.catalog import batch_add
from neurodepot.catalog.batch_add import add_local_files
from neurodepot.catalog.models import ResourceFile
from neurodepot.catalog.resources import get_file, get_resource
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.depot.fsck import fsck
from neurodepot.depot.orm import Blob
from neurodepot.errors import Conflict, Invalid

SCAN = Target("p", "s", "v", "1")


def make_files(folder: Path, count: int, prefix: str = "f") -> list[tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for index in range(count):
        source = folder / f"{prefix}{index:03d}.dcm"
        source.write_bytes(f"instance {index}".encode() * 50)
        pairs.append((source, f"series/{source.name}"))
    return pairs


def count(depot: Depot, model: type) -> int:
    with depot.transaction() as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


def test_many_files_are_added_over_several_batches(
    tree: Depot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_add, "BATCH_FILES", 7)
    pairs = make_files(tmp_path / "in", 30)
    progressed: list[int] = []
    stored = add_local_files(tree, SCAN, "DICOM", pairs, progress=progressed.append)
    assert [s.outcome for s in stored] == ["created"] * 30
    assert sum(progressed) == sum(source.stat().st_size for source, _ in pairs)
    with tree.transaction() as db:
        resource = get_resource(db, SCAN, "DICOM")
        assert resource.file_count == 30
        assert get_file(db, SCAN, "DICOM", "series/f007.dcm").size == pairs[7][0].stat().st_size
    assert fsck(tree.engine, tree.blobs).ok
    assert tree.blobs.temporary_files() == []


def test_sending_the_same_folder_again_changes_nothing(tree: Depot, tmp_path: Path) -> None:
    pairs = make_files(tmp_path / "in", 5)
    add_local_files(tree, SCAN, "DICOM", pairs)
    again = add_local_files(tree, SCAN, "DICOM", pairs)
    assert [s.outcome for s in again] == ["unchanged"] * 5
    assert count(tree, Blob) == 5
    assert count(tree, ResourceFile) == 5


def test_a_missing_source_refuses_everything(tree: Depot, tmp_path: Path) -> None:
    pairs = make_files(tmp_path / "in", 3)
    pairs.append((tmp_path / "in" / "gone.dcm", "series/gone.dcm"))
    with pytest.raises(Invalid, match=r"gone\.dcm.*nothing was added"):
        add_local_files(tree, SCAN, "DICOM", pairs)
    assert count(tree, ResourceFile) == 0
    assert list(tree.blobs.digests()) == []


def test_a_path_given_twice_is_refused(tree: Depot, tmp_path: Path) -> None:
    pairs = make_files(tmp_path / "in", 2)
    with pytest.raises(Invalid, match="given twice"):
        add_local_files(tree, SCAN, "DICOM", [pairs[0], (pairs[1][0], pairs[0][1])])
    assert count(tree, ResourceFile) == 0


def test_changed_content_without_overwrite_refuses_everything(tree: Depot, tmp_path: Path) -> None:
    pairs = make_files(tmp_path / "in", 3)
    add_local_files(tree, SCAN, "DICOM", pairs[:1])
    pairs[0][0].write_bytes(b"edited")
    with pytest.raises(Conflict, match=r"f000\.dcm.*nothing was added"):
        add_local_files(tree, SCAN, "DICOM", pairs)
    assert count(tree, ResourceFile) == 1
    assert count(tree, Blob) == 1
    assert list(tree.blobs.digests()) != []
    assert fsck(tree.engine, tree.blobs).ok


def test_overwrite_replaces_and_drops_the_old_content(tree: Depot, tmp_path: Path) -> None:
    pairs = make_files(tmp_path / "in", 2)
    add_local_files(tree, SCAN, "DICOM", pairs)
    pairs[1][0].write_bytes(b"edited")
    stored = add_local_files(tree, SCAN, "DICOM", pairs, overwrite=True)
    assert [s.outcome for s in stored] == ["unchanged", "replaced"]
    assert count(tree, Blob) == 2
    assert len(list(tree.blobs.digests())) == 2
    assert fsck(tree.engine, tree.blobs).ok


def test_a_path_changed_by_someone_else_meanwhile_refuses_the_batch_without_hanging(
    tree: Depot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = make_files(tmp_path / "in", 3)
    real_record = batch_add.record_file

    def someone_else_was_faster(*args: object, **kwargs: object) -> object:
        stored, superseded = real_record(*args, **kwargs)  # type: ignore[arg-type]
        return replace(stored, outcome="refused"), superseded

    monkeypatch.setattr(batch_add, "record_file", someone_else_was_faster)
    outcome: list[BaseException | None] = []

    def add() -> None:
        try:
            add_local_files(tree, SCAN, "DICOM", pairs)
            outcome.append(None)
        except BaseException as error:  # handed to the test thread
            outcome.append(error)

    worker = threading.Thread(target=add, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "adding hung (collecting while holding the writing lock)"
    assert isinstance(outcome[0], Conflict)
    assert "changed by someone else" in str(outcome[0])
    assert count(tree, ResourceFile) == 0
    assert list(tree.blobs.digests()) == []
    assert fsck(tree.engine, tree.blobs).ok
