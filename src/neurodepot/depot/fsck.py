"""Checking that the database and the blob store agree.

Reports blobs the database names but the store lacks (missing), blobs whose content no longer
matches their name (corrupt), blobs and rows nothing needs (orphaned), leftover temporary files,
and rows pointing at blobs that have no row (dangling). Only orphans are ever repaired
automatically: anything else needs a person, and usually a backup.
"""

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, column, select, table

from neurodepot.depot.blobstore import CHUNK_SIZE, BlobStore
from neurodepot.depot.garbage import STALE_TEMPORARY_SECONDS, Collected, collect
from neurodepot.depot.orm import Blob
from neurodepot.depot.references import blob_referrers, referenced_digests

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Problem:
    kind: str  # missing | corrupt | orphaned-blob | orphaned-row | temporary | dangling
    digest: str
    detail: str


@dataclass
class FsckReport:
    checked_blobs: int = 0
    writes_in_progress: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: Collected | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, kind: str) -> int:
        return sum(1 for p in self.problems if p.kind == kind)


def fsck(
    engine: Engine,
    blobs: BlobStore,
    verify_content: bool = True,
    repair: bool = False,
    progress: Progress | None = None,
    stale_after: float = STALE_TEMPORARY_SECONDS,
) -> FsckReport:
    """Check the depot; with `repair`, remove orphans first and report what remains.

    Temporary files younger than `stale_after` seconds may be uploads in progress: they are
    counted, not reported as problems.
    """
    report = FsckReport()
    if repair:
        report.repaired = collect(engine, blobs, stale_after=stale_after)
    with engine.connect() as conn:
        rows = {digest: size for digest, size in conn.execute(select(Blob.digest, Blob.size))}
        referenced_query = referenced_digests(conn)
        referenced = set(conn.scalars(referenced_query)) if referenced_query is not None else set()
        for referrer in blob_referrers(conn):
            col = column(referrer.column)
            dangling = conn.scalars(
                select(col)
                .select_from(table(referrer.table))
                .where(col.not_in(select(Blob.digest)))
            )
            for digest in dangling:
                report.problems.append(
                    Problem("dangling", digest, f"{referrer.table}.{referrer.column} names no blob")
                )
    on_disk = set(blobs.digests())
    everything = sorted(rows.keys() | on_disk)
    for index, digest in enumerate(everything, 1):
        if progress is not None:
            progress(index, len(everything))
        if digest not in on_disk:
            report.problems.append(Problem("missing", digest, "recorded but no file in the store"))
            continue
        if digest not in rows:
            report.problems.append(Problem("orphaned-blob", digest, "file with no database row"))
            continue
        report.checked_blobs += 1
        if digest not in referenced:
            report.problems.append(Problem("orphaned-row", digest, "no file or release uses it"))
        problem = _check_content(blobs, digest, rows[digest], verify_content)
        if problem is not None:
            report.problems.append(problem)
    cutoff = time.time() - stale_after
    for tmp in blobs.temporary_files():
        if tmp.stat().st_mtime < cutoff:
            report.problems.append(Problem("temporary", tmp.name, "left by an interrupted write"))
        else:
            report.writes_in_progress += 1
    return report


def _check_content(blobs: BlobStore, digest: str, size: int, verify: bool) -> Problem | None:
    path = blobs.path(digest)
    actual_size = path.stat().st_size
    if actual_size != size:
        return Problem("corrupt", digest, f"size {actual_size} bytes, recorded {size}")
    if not verify:
        return None
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            sha.update(chunk)
    if sha.hexdigest() != digest:
        return Problem("corrupt", digest, f"content hashes to {sha.hexdigest()}")
    return None
