"""Bulk import of DICOM from a folder (recursive), a zip, or a tar (plain or compressed).

Files stream into the blob store in batches with group durability (two file-system flushes per
batch); nothing is unpacked to disk and no file is held in memory. Each file is checked: no
`DICM` marker → skipped as not DICOM; a DICOM header that cannot be read or lacks its UIDs →
reported as unreadable with the reason. The rest goes through the prearchive like network
instances (duplicates stored once, conflicts kept aside), then is archived unless the caller
wants it left for review.
"""

import bz2
import gzip
import hashlib
import lzma
import mmap
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.identifiers import check_label
from neurodepot.depot.blobstore import CHUNK_SIZE, BlobBatch, BlobRef
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict, Invalid
from neurodepot.ingest.archive import ArchiveOutcome
from neurodepot.ingest.header import InstanceHeader, check_complete, read_header
from neurodepot.ingest.prearchive import archive
from neurodepot.ingest.receive import (
    CONFLICT,
    DUPLICATE,
    Arrival,
    Override,
    Router,
    record_instance,
)
from neurodepot.jobs.registry import PipelineRegistry

BATCH_FILES = 500
BATCH_BYTES = 256 << 20
MARKER_OFFSET = 128
MAX_REPORTED = 1000  # problems listed one by one; beyond that only counted
ARCHIVE_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
)
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
# Openers used in a `with` by `_tar_members`.
_OPENERS: dict[str, Callable[[Path], BinaryIO]] = {
    "gzip": lambda path: gzip.open(path, "rb"),  # type: ignore[dict-item]  # noqa: SIM115
    "bzip2": lambda path: bz2.open(path, "rb"),  # type: ignore[dict-item]  # noqa: SIM115
    "xz": lambda path: lzma.open(path, "rb"),  # type: ignore[dict-item]  # noqa: SIM115
    "tar": lambda path: path.open("rb"),
}

Progress = Callable[[int, int], None]  # files seen, bytes read


@dataclass
class ImportSummary:
    """What an import did, file by file where something went wrong."""

    files: int = 0
    imported: int = 0
    duplicates: int = 0
    conflicts: int = 0
    not_dicom: int = 0
    unreadable: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    studies: list[int] = field(default_factory=list)
    archived: list[ArchiveOutcome] = field(default_factory=list)
    not_archived: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Member:
    name: str
    open: Callable[[], AbstractContextManager[BinaryIO]]


def import_dicom(
    depot: Depot,
    source: Path,
    override: Override,
    archive_after: bool = True,
    registry: PipelineRegistry | None = None,
    requested_by: str = "import",
    progress: Progress | None = None,
) -> ImportSummary:
    """Import every DICOM file under `source` into `override.project` (see module docstring)."""
    with depot.reading() as db:
        find_project(db, override.project)
    for label, level in ((override.subject, "subject"), (override.session, "session")):
        if label is not None:
            check_label(label, level)
    router = Router((), override)
    arrival = Arrival("import")
    summary = ImportSummary()
    pending: list[tuple[InstanceHeader, BlobRef, str]] = []
    batch_bytes = 0
    batch = depot.blobs.batch()
    members, atomic = _members(source)
    try:
        for member in members:
            summary.files += 1
            item = _stage(batch, member, summary)
            if item is not None:
                pending.append(item)
                batch_bytes += item[1].size
            if progress is not None:
                progress(summary.files, summary.bytes)
            # A tar is checked whole only at its end (compression checksum, trailing blocks):
            # nothing of it is recorded before, so a damaged one imports nothing.
            if not atomic and (len(pending) >= BATCH_FILES or batch_bytes >= BATCH_BYTES):
                _commit(depot, batch, pending, router, arrival, summary)
                batch, pending, batch_bytes = depot.blobs.batch(), [], 0
        _commit(depot, batch, pending, router, arrival, summary)
    finally:
        batch.abort()  # a failure mid-way leaves no temporary file (committed ones are kept)
    if archive_after:
        for study_id in summary.studies:
            try:
                outcome = archive(depot, study_id, registry, requested_by)
            except (Invalid, Conflict) as problem:
                summary.not_archived.append((study_id, problem.message))
                continue
            summary.archived.append(outcome)
            # What the archive already held is a duplicate (or a conflict), not an import.
            summary.imported -= outcome.duplicates + outcome.conflicts
            summary.duplicates += outcome.duplicates
            summary.conflicts += outcome.conflicts
    return summary


def _stage(
    batch: BlobBatch, member: _Member, summary: ImportSummary
) -> tuple[InstanceHeader, BlobRef, str] | None:
    """Write one file to the batch if it is DICOM; None (and a note) otherwise."""
    try:
        with member.open() as handle:
            head = handle.read(MARKER_OFFSET + 4)
            if len(head) < MARKER_OFFSET + 4 or head[MARKER_OFFSET:] != b"DICM":
                summary.not_dicom += 1
                summary.bytes += len(head)
                if len(summary.skipped) < MAX_REPORTED:
                    summary.skipped.append(member.name)
                return None
            ref = batch.put_stream(_chunks(head, handle))
    except ARCHIVE_ERRORS as problem:
        _unreadable(summary, member.name, f"cannot be read: {problem}")
        return None
    summary.bytes += ref.size
    staged = batch.staged_path()
    try:
        with (
            staged.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
        ):
            check_complete(mapped)
            header = read_header(mapped)
            view = memoryview(mapped)
            try:
                dataset = hashlib.sha256(view[header.dataset_offset :])
            finally:
                view.release()
    except Invalid as problem:
        batch.drop_last()
        _unreadable(summary, member.name, problem.message)
        return None
    return header, ref, dataset.hexdigest()


def _commit(
    depot: Depot,
    batch: BlobBatch,
    pending: list[tuple[InstanceHeader, BlobRef, str]],
    router: Router,
    arrival: Arrival,
    summary: ImportSummary,
) -> None:
    if not pending:
        return
    known: dict[object, int] = {}
    with depot.blobs.writing():
        batch.commit()
        with depot.transaction() as db:
            conn = db.connection()
            for header, ref, dataset_digest in pending:
                destination = router.destination(header, arrival)
                key = (header.study_instance_uid, destination)
                received = record_instance(
                    conn, header, ref, dataset_digest, arrival, destination, known.get(key)
                )
                known[key] = received.study_id
                if received.outcome == DUPLICATE:
                    summary.duplicates += 1
                elif received.outcome == CONFLICT:
                    summary.conflicts += 1
                else:
                    summary.imported += 1
                if received.study_id not in summary.studies:
                    summary.studies.append(received.study_id)


def _unreadable(summary: ImportSummary, name: str, reason: str) -> None:
    summary.unreadable += 1
    if len(summary.problems) < MAX_REPORTED:
        summary.problems.append((name, reason))


def _chunks(head: bytes, handle: BinaryIO) -> Iterator[bytes]:
    yield head
    while chunk := handle.read(CHUNK_SIZE):
        yield chunk


def _members(source: Path) -> tuple[Iterator[_Member], bool]:
    """Every file of a folder, zip or tar, in a stable order; and whether to import it whole."""
    if source.is_dir():
        return _folder_members(source), False
    if not source.is_file():
        raise Invalid(f"{source} does not exist; give a folder, a zip, a tar(.gz) or a DICOM file")
    kind = _kind(source)
    if kind == "zip":
        if not zipfile.is_zipfile(source):
            raise Invalid(
                f"{source} is a damaged zip (its table of contents is missing: cut short?); "
                "nothing was imported"
            )
        return _zip_members(source), False
    if kind is not None:
        return _tar_members(source, kind), True
    return iter([_Member(source.name, lambda: source.open("rb"))]), False


def _kind(path: Path) -> str | None:
    """What a file is, by its first bytes: zip, a (compressed) tar, or None (a plain file)."""
    with path.open("rb") as handle:
        head = handle.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            return kind
    return "tar" if head[257:262] == b"ustar" else None


def _folder_members(root: Path) -> Iterator[_Member]:
    for folder, dirs, files in os.walk(root, onerror=_raise):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                yield _Member(str(path.relative_to(root)), lambda path=path: path.open("rb"))


def _raise(error: OSError) -> None:
    raise Invalid(f"cannot read folder {error.filename}: {error.strerror}") from None


def _zip_members(path: Path) -> Iterator[_Member]:
    try:
        archive_file = zipfile.ZipFile(path)
    except ARCHIVE_ERRORS as problem:
        raise Invalid(f"{path} is not a readable zip file: {problem}") from None
    with archive_file:
        for info in archive_file.infolist():
            if not info.is_dir():
                yield _Member(info.filename, lambda info=info: archive_file.open(info))


def _tar_members(path: Path, kind: str) -> Iterator[_Member]:
    """A tar's files in order, streamed; raises `Invalid` at the end if it proves damaged."""
    last = "its start"
    try:
        with _OPENERS[kind](path) as raw:
            # Streamed ("r|"): members in order, no seeking; closed by the `with` below.
            archive_file = tarfile.open(fileobj=raw, mode="r|")  # noqa: SIM115
            with archive_file:
                for info in archive_file:
                    last = info.name
                    if info.isfile():
                        handle = archive_file.extractfile(info)
                        if handle is not None:
                            yield _Member(info.name, lambda handle=handle: nullcontext(handle))
                # A tar ends in zero blocks; anything else is a header tarfile could not read.
                # Reading to the end also makes gzip, bzip2 and xz check their checksums.
                while chunk := raw.read(CHUNK_SIZE):
                    if chunk.strip(b"\0"):
                        raise tarfile.ReadError("unreadable data where a file header should be")
    except ARCHIVE_ERRORS as problem:
        raise Invalid(
            f"{path} is a damaged {kind} archive (after {last}): {problem}; nothing was imported"
        ) from None
