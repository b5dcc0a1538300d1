"""Adding many local files to one resource at once (a folder, a study), with group durability.

Everything is checked before any content is stored: a missing source, a path given twice, or a
path that already holds different content (without overwrite) refuses the whole request. Files
are then stored in batches; each batch costs two file-system flushes and one database
transaction instead of two fsyncs and one transaction per file.
"""

import hashlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from sqlalchemy import select

from neurodepot.catalog.models import ResourceFile
from neurodepot.catalog.records import StoredFile
from neurodepot.catalog.resources import check_can_store, find_resource_or_none, record_file
from neurodepot.catalog.target import Target
from neurodepot.depot.blobstore import CHUNK_SIZE
from neurodepot.depot.folder import Depot
from neurodepot.depot.garbage import collect
from neurodepot.errors import Conflict, Invalid

BATCH_FILES = 1000
BATCH_BYTES = 1 << 30

Progress = Callable[[int], None]


def add_local_files(
    depot: Depot,
    target: Target,
    label: str,
    sources: Sequence[tuple[Path, str]],
    overwrite: bool = False,
    progress: Progress | None = None,
) -> list[StoredFile]:
    """Add each `(local file, path in the resource)`; `progress` is told the bytes stored."""
    planned = _plan(depot, target, label, sources, overwrite)
    stored: list[StoredFile] = []
    for batch in _batches(planned):
        stored.extend(_store_batch(depot, target, label, batch, overwrite, progress))
    return stored


def _plan(
    depot: Depot,
    target: Target,
    label: str,
    sources: Sequence[tuple[Path, str]],
    overwrite: bool,
) -> list[tuple[Path, str, int]]:
    planned: list[tuple[Path, str, int]] = []
    seen: set[str] = set()
    with depot.transaction() as db:
        for source, path in sources:
            if not source.is_file():
                raise Invalid(
                    f"{source} does not exist or is not a regular file; nothing was added"
                )
            clean = check_can_store(db, target, label, path)
            if clean in seen:
                raise Invalid(f"{clean!r} is given twice; nothing was added")
            seen.add(clean)
            planned.append((source, clean, source.stat().st_size))
        resource = find_resource_or_none(db, target, label)
        existing = {}
        if resource is not None and not overwrite:
            existing = dict(
                db.execute(
                    select(ResourceFile.path, ResourceFile.digest).where(
                        ResourceFile.resource_id == resource.id, ResourceFile.path.in_(seen)
                    )
                ).all()
            )
    for source, path, _ in planned:
        if path in existing and _sha256(source) != existing[path]:
            raise Conflict(
                f"{target}/{label}/{path} already exists with different content; nothing was "
                "added; pass overwrite to replace it"
            )
    return planned


def _batches(planned: list[tuple[Path, str, int]]) -> Iterator[list[tuple[Path, str, int]]]:
    batch: list[tuple[Path, str, int]] = []
    size = 0
    for item in planned:
        if batch and (len(batch) >= BATCH_FILES or size + item[2] > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item[2]
    if batch:
        yield batch


def _store_batch(
    depot: Depot,
    target: Target,
    label: str,
    batch: list[tuple[Path, str, int]],
    overwrite: bool,
    progress: Progress | None,
) -> list[StoredFile]:
    with depot.blobs.batch() as blobs:
        refs = []
        for source, _, size in batch:
            refs.append(blobs.put_file(source))
            if progress is not None:
                progress(size)
        refused: Conflict | None = None
        with depot.blobs.writing():
            blobs.commit()
            try:
                with depot.transaction() as db:
                    recorded = [
                        record_file(db, target, label, path, ref, overwrite, None)
                        for (_, path, _), ref in zip(batch, refs, strict=True)
                    ]
                    changed = [s for s, _ in recorded if s.outcome == "refused"]
                    if changed:
                        raise Conflict(
                            f"{target}/{label}/{changed[0].file.path} was changed by someone "
                            "else meanwhile; this batch was not added; try again"
                        )
            except Conflict as conflict:
                refused = conflict
    if refused is not None:
        # Collecting takes the store's exclusive lock: only after `writing()` is released.
        collect(depot.engine, depot.blobs, candidates=[r.digest for r in refs])
        raise refused
    superseded = [digest for _, digest in recorded if digest is not None]
    if superseded:
        collect(depot.engine, depot.blobs, candidates=superseded)
    return [s for s, _ in recorded]


def _sha256(source: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()
