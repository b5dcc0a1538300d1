"""Removing blobs nothing refers to, and leftovers of interrupted writes.

Runs under the blob store's exclusive `collecting()` lock, so no writer is between storing a
blob and committing the rows that name it. Rows are deleted (and committed) before files, so a
crash in between leaves an orphan file for the next run, never a row without its file.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, delete, select

from neurodepot.depot.blobstore import BlobStore
from neurodepot.depot.orm import Blob
from neurodepot.depot.references import referenced_digests

STALE_TEMPORARY_SECONDS = 3600


@dataclass
class Collected:
    rows: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    temporary_files: int = 0


def collect(
    engine: Engine,
    blobs: BlobStore,
    candidates: Iterable[str] | None = None,
    stale_after: float = STALE_TEMPORARY_SECONDS,
) -> Collected:
    """Delete unreferenced blobs: among `candidates` only, or everywhere when None.

    Blob files without a row are removed too (among `candidates`: those a rolled-back write
    placed). A full run also removes temporary files older than `stale_after` seconds (younger
    ones may belong to an upload still in progress).
    """
    result = Collected()
    wanted = None if candidates is None else set(candidates)
    with blobs.collecting():
        with engine.begin() as conn:
            referenced = referenced_digests(conn)
            query = select(Blob.digest)
            if referenced is not None:
                query = query.where(Blob.digest.not_in(referenced))
            unreferenced = [d for d in conn.scalars(query) if wanted is None or d in wanted]
            for start in range(0, len(unreferenced), 500):
                batch = unreferenced[start : start + 500]
                conn.execute(delete(Blob).where(Blob.digest.in_(batch)))
            result.rows = unreferenced
            known = _known(conn, wanted)
        for digest in unreferenced:
            blobs.remove(digest)
        result.files = list(unreferenced)
        on_disk = (
            blobs.digests() if wanted is None else [d for d in sorted(wanted) if blobs.exists(d)]
        )
        for digest in on_disk:
            if digest not in known and digest not in result.rows:
                blobs.remove(digest)
                result.files.append(digest)
        if wanted is None:
            cutoff = time.time() - stale_after
            for tmp in blobs.temporary_files():
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink(missing_ok=True)
                    result.temporary_files += 1
    return result


def _known(conn: Connection, wanted: set[str] | None) -> set[str]:
    """The digests that have a row: all of them, or those among `wanted`."""
    if wanted is None:
        return set(conn.scalars(select(Blob.digest)))
    listed = sorted(wanted)
    known: set[str] = set()
    for start in range(0, len(listed), 500):
        batch = listed[start : start + 500]
        known.update(conn.scalars(select(Blob.digest).where(Blob.digest.in_(batch))))
    return known
