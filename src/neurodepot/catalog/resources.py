"""Resources (named groups of files) at every level, and the files in them.

A file's content goes to the blob store first and its row is committed after, both inside the
store's `writing()` lock, so a crash leaves at worst an orphan blob and never a row without
content. Re-sending identical content under the same path changes nothing.
"""

import mimetypes
import re
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from neurodepot.catalog.hierarchy import find_target
from neurodepot.catalog.identifiers import check_file_path, check_label
from neurodepot.catalog.models import ImagingSession, Project, Resource, ResourceFile, Scan, Subject
from neurodepot.catalog.records import FileInfo, ResourceInfo, StoredFile
from neurodepot.catalog.target import Level, Target
from neurodepot.depot.blobstore import CHUNK_SIZE, BlobRef, BlobWriter
from neurodepot.depot.folder import Depot
from neurodepot.depot.garbage import collect
from neurodepot.depot.orm import Blob
from neurodepot.depot.upsert import insert_ignoring_duplicates
from neurodepot.errors import Conflict, Invalid, NotFound

RECORD_ATTEMPTS = 3
# `type/subtype` with optional parameters (RFC 9110, section 8.3.1), one line.
MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*(\s*;[^\r\n]*)?")

_OWNER_COLUMN = {
    Level.PROJECT: Resource.project_id,
    Level.SUBJECT: Resource.subject_id,
    Level.SESSION: Resource.session_id,
    Level.SCAN: Resource.scan_id,
}


def _find_resource(db: Session, target: Target, label: str) -> Resource:
    resource = find_resource_or_none(db, target, label)
    if resource is None:
        raise NotFound(f"resource {label!r} does not exist at {target}")
    return resource


def find_resource_or_none(db: Session, target: Target, label: str) -> Resource | None:
    owner = find_target(db, target)
    return db.scalar(
        select(Resource).where(_OWNER_COLUMN[target.level] == owner.id, Resource.label == label)
    )


def ensure_resource(db: Session, target: Target, label: str) -> Resource:
    """The resource `label` at `target`, created if missing (safe against a concurrent writer)."""
    check_label(label, "resource")
    owner = find_target(db, target)
    column = _OWNER_COLUMN[target.level]
    query = select(Resource).where(column == owner.id, Resource.label == label)
    resource = db.scalar(query)
    if resource is None:
        # Two writers may create the same resource at once; the loser reads the winner's.
        insert_ignoring_duplicates(db, Resource, {"label": label, column.key: owner.id})
        resource = db.scalar(query)
        assert resource is not None
    return resource


def create_resource(db: Session, target: Target, label: str) -> ResourceInfo:
    check_label(label, "resource")
    owner = find_target(db, target)
    column = _OWNER_COLUMN[target.level]
    if db.scalar(select(Resource.id).where(column == owner.id, Resource.label == label)):
        raise Conflict(f"resource {label!r} already exists at {target}")
    resource = ensure_resource(db, target, label)
    return _resource_info(target, resource, 0, 0)


def list_resources(db: Session, target: Target) -> list[ResourceInfo]:
    owner = find_target(db, target)
    rows = db.execute(
        select(Resource, func.count(ResourceFile.id), func.coalesce(func.sum(ResourceFile.size), 0))
        .outerjoin(ResourceFile)
        .where(_OWNER_COLUMN[target.level] == owner.id)
        .group_by(Resource.id)
        .order_by(Resource.label)
    ).all()
    return [_resource_info(target, r, count, size) for r, count, size in rows]


def get_resource(db: Session, target: Target, label: str) -> ResourceInfo:
    resource = _find_resource(db, target, label)
    files = tuple(_file_info(f) for f in resource.files)
    return _resource_info(target, resource, len(files), sum(f.size for f in files), files)


def get_file(db: Session, target: Target, label: str, path: str) -> FileInfo:
    path = check_file_path(path)
    resource = _find_resource(db, target, label)
    row = db.scalar(
        select(ResourceFile).where(
            ResourceFile.resource_id == resource.id, ResourceFile.path == path
        )
    )
    if row is None:
        raise NotFound(f"file {path!r} does not exist in resource {label!r} at {target}")
    return _file_info(row)


def check_can_store(db: Session, target: Target, label: str, path: str) -> str:
    """Validate a file's destination before any content is received; returns the clean path."""
    check_label(label, "resource")
    find_target(db, target)
    return check_file_path(path)


def store_file(
    depot: Depot,
    target: Target,
    label: str,
    path: str,
    writer: BlobWriter,
    overwrite: bool = False,
    content_type: str | None = None,
    expected_digest: str | None = None,
) -> StoredFile:
    """Turn received content into a file of the resource (created if needed).

    Raises `Conflict` when `path` already holds different content and `overwrite` is false;
    the received content is then discarded.
    """
    path = check_file_path(path)
    check_label(label, "resource")
    with depot.blobs.writing():
        ref = writer.finish(expected_digest)
        for attempt in range(RECORD_ATTEMPTS):
            try:
                with depot.transaction() as db:
                    stored, superseded = record_file(
                        db, target, label, path, ref, overwrite, content_type
                    )
                break
            except IntegrityError:
                # A concurrent writer created the same resource or path first; look again.
                if attempt == RECORD_ATTEMPTS - 1:
                    raise Conflict(
                        f"{target}/{label}/{path} is being written by someone else; try again"
                    ) from None
    if superseded is not None:
        collect(depot.engine, depot.blobs, candidates=[superseded])
    if stored.outcome == "refused":
        raise Conflict(
            f"{target}/{label}/{path} already exists with different content; "
            "pass overwrite to replace it"
        )
    return stored


def add_file(
    depot: Depot,
    target: Target,
    label: str,
    path: str,
    chunks: Iterable[bytes],
    overwrite: bool = False,
) -> StoredFile:
    with depot.transaction() as db:
        path = check_can_store(db, target, label, path)
    with depot.blobs.writer() as writer:
        for chunk in chunks:
            writer.write(chunk)
        return store_file(depot, target, label, path, writer, overwrite)


def add_local_file(
    depot: Depot,
    target: Target,
    label: str,
    source: Path,
    path: str | None = None,
    overwrite: bool = False,
) -> StoredFile:
    """Add a file from the local file system, named `path` (default: its file name)."""
    if not source.is_file():
        raise Invalid(f"{source} does not exist or is not a regular file")
    with source.open("rb") as handle:
        return add_file(
            depot,
            target,
            label,
            path or source.name,
            iter(lambda: handle.read(CHUNK_SIZE), b""),
            overwrite,
        )


def record_file(
    db: Session,
    target: Target,
    label: str,
    path: str,
    ref: BlobRef,
    overwrite: bool,
    content_type: str | None,
) -> tuple[StoredFile, str | None]:
    """Record content already placed in the store as the file `path` of the resource.

    Returns what happened and a digest that may have lost its last reference (to collect).
    """
    resource = ensure_resource(db, target, label)
    insert_ignoring_duplicates(db, Blob, {"digest": ref.digest, "size": ref.size})
    query = select(ResourceFile).where(
        ResourceFile.resource_id == resource.id, ResourceFile.path == path
    )
    if content_type is not None and not MEDIA_TYPE.fullmatch(content_type.strip()):
        content_type = None  # not a media type: named from the file instead, never served back
    kind = (
        (content_type or "").strip() or mimetypes.guess_type(path)[0] or "application/octet-stream"
    )
    row = db.scalar(query)
    if row is None:
        values = {"resource_id": resource.id, "path": path, "digest": ref.digest}
        created = insert_ignoring_duplicates(
            db, ResourceFile, {**values, "size": ref.size, "content_type": kind}
        )
        row = db.scalar(query)  # ours, or that of a writer who stored this path first
        assert row is not None
        if created:
            return StoredFile(str(target), label, _file_info(row), "created"), None
    if row.digest == ref.digest:
        return StoredFile(str(target), label, _file_info(row), "unchanged"), None
    if not overwrite:
        return StoredFile(str(target), label, _file_info(row), "refused"), ref.digest
    superseded = row.digest
    row.digest, row.size, row.content_type = ref.digest, ref.size, kind
    db.flush()
    return StoredFile(str(target), label, _file_info(row), "replaced"), superseded


def delete_file(depot: Depot, target: Target, label: str, path: str) -> FileInfo:
    path = check_file_path(path)
    with depot.transaction() as db:
        resource = _find_resource(db, target, label)
        row = db.scalar(
            select(ResourceFile).where(
                ResourceFile.resource_id == resource.id, ResourceFile.path == path
            )
        )
        if row is None:
            raise NotFound(f"file {path!r} does not exist in resource {label!r} at {target}")
        info = _file_info(row)
        db.delete(row)
    collect(depot.engine, depot.blobs, candidates=[info.digest])
    return info


def project_file_digests(db: Session, project_id: int) -> set[str]:
    """Every digest a file anywhere in the project names (for collecting after a delete)."""
    owners = (
        (Resource.project_id, select(Project.id).where(Project.id == project_id)),
        (Resource.subject_id, select(Subject.id).where(Subject.project_id == project_id)),
        (
            Resource.session_id,
            select(ImagingSession.id).where(ImagingSession.project_id == project_id),
        ),
        (
            Resource.scan_id,
            select(Scan.id).join(ImagingSession).where(ImagingSession.project_id == project_id),
        ),
    )
    digests: set[str] = set()
    for column, ids in owners:
        digests.update(
            db.scalars(select(ResourceFile.digest).join(Resource).where(column.in_(ids)))
        )
    return digests


def _file_info(row: ResourceFile) -> FileInfo:
    return FileInfo(row.path, row.digest, row.size, row.content_type, row.created_at)


def _resource_info(
    target: Target,
    resource: Resource,
    count: int,
    size: int,
    files: tuple[FileInfo, ...] = (),
) -> ResourceInfo:
    return ResourceInfo(str(target), resource.label, count, int(size), resource.created_at, files)
