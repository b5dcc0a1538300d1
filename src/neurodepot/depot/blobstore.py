"""Content-addressed file storage: `blobs/sha256/ab/cd/<digest>`.

Content streams in through a `BlobWriter` (temporary file in `blobs/tmp`, hashed while written,
fsynced, then renamed into place) and out as an open file, never whole in memory. Identical
content is stored once. A blob becomes visible only by an atomic rename, so a writer killed
mid-write leaves at most a temporary file, which `fsck --repair` sweeps.

Deletion (garbage collection) and writing are kept apart by a lock file: writers hold it shared
from the moment they store content until their database rows are committed; the collector holds
it exclusively. That makes "stored, then recorded" safe against "unreferenced, so deleted".
"""

import ctypes
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from neurodepot.errors import Invalid, NotFound

CHUNK_SIZE = 1024 * 1024
# From this size on, a chunk is hashed in a helper thread while it is written (and the next one
# read): SHA-256 would otherwise add its whole time to every large put.
OVERLAP_HASH_FROM = 256 * 1024
DIGEST_PATTERN = re.compile(r"[0-9a-f]{64}")
BLOB_MODE = 0o444


@dataclass(frozen=True)
class BlobRef:
    """A stored content: its SHA-256 (lowercase hex) and its size in bytes."""

    digest: str
    size: int


class BlobWriter:
    """Receives one content chunk by chunk; `finish()` makes it a blob.

    Use as a context manager: leaving without `finish()` (an error, a dropped upload) removes the
    temporary file and stores nothing. A caller may reuse a mutable chunk (bytearray, memoryview)
    once `write` returns; only immutable `bytes` are hashed in the background.
    """

    def __init__(self, store: "BlobStore", directory: Path | None = None) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self._size = 0
        self._kept = False
        fd, name = tempfile.mkstemp(prefix="incoming-", dir=directory or store.tmp_root)
        self.tmp_path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._hasher: ThreadPoolExecutor | None = None
        self._hashing: Future[None] | None = None
        self.ref: BlobRef | None = None

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise ValueError("write after finish")
        self._wait_for_hash()
        if type(chunk) is bytes and len(chunk) >= OVERLAP_HASH_FROM:
            if self._hasher is None:
                self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-hash")
            self._hashing = self._hasher.submit(self._hash.update, chunk)
        else:
            self._hash.update(chunk)
        self._file.write(chunk)
        self._size += len(chunk)

    def seal(self, expected_digest: str | None = None, durable: bool = True) -> BlobRef:
        """Close the temporary file (fsynced when `durable`) and name its content.

        With `expected_digest` (what the sender says it sent), a mismatch raises `Invalid` and
        stores nothing: the content was damaged on the way.
        """
        if self._file is None:
            raise ValueError("finish called twice: the content is already sealed")
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._stop_hasher()
        ref = BlobRef(self._hash.hexdigest(), self._size)
        if expected_digest is not None and expected_digest.lower() != ref.digest:
            self.abort()
            raise Invalid(
                f"received content hashes to {ref.digest}, not the {expected_digest} the sender "
                "declared; it was damaged in transit and was not stored; send it again"
            )
        return ref

    def finish(self, expected_digest: str | None = None) -> BlobRef:
        """Fsync, move into place (unless identical content is already stored), and return it."""
        ref = self.seal(expected_digest)
        self._store._place(self.tmp_path, ref)
        self.ref = ref
        return ref

    def keep(self) -> None:
        """Leave the sealed temporary file for the caller to place later (`BlobStore.place`)."""
        self._kept = True

    def abort(self) -> None:
        self._stop_hasher()
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp_path.unlink(missing_ok=True)

    def _wait_for_hash(self) -> None:
        if self._hashing is not None:
            self._hashing.result()
            self._hashing = None

    def _stop_hasher(self) -> None:
        self._wait_for_hash()
        if self._hasher is not None:
            self._hasher.shutdown()
            self._hasher = None

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.ref is None and not (self._kept and self._file is None):
            self.abort()


class BlobBatch:
    """Stores many contents with two file-system flushes in all instead of two fsyncs each.

    Contents are written to temporary files without fsync; `commit()` flushes the file system
    once, renames every blob into place, and flushes again, so that every blob is durable when it
    returns. Nothing is visible before `commit()`; leaving the context without it removes the
    temporary files. Meant for many small files (a folder, a DICOM study) where per-file fsync
    dominates.
    """

    def __init__(self, store: "BlobStore") -> None:
        self._store = store
        self._pending: list[tuple[Path, BlobRef]] = []
        self.committed = False

    def put_stream(self, chunks: Iterable[bytes]) -> BlobRef:
        writer = self._store.writer()
        try:
            for chunk in chunks:
                writer.write(chunk)
            ref = writer.seal(durable=False)
        except BaseException:
            writer.abort()
            raise
        self._pending.append((writer.tmp_path, ref))
        return ref

    def staged_path(self) -> Path:
        """The temporary file of the content put last, readable until `commit()` or `abort()`."""
        if not self._pending:
            raise ValueError("nothing has been put in this batch")
        return self._pending[-1][0]

    def drop_last(self) -> None:
        """Forget the content put last (its temporary file is removed): it will not be stored."""
        tmp_path, _ = self._pending.pop()
        tmp_path.unlink(missing_ok=True)

    def put_file(self, source: Path) -> BlobRef:
        with source.open("rb") as handle:
            return self.put_stream(iter(lambda: handle.read(CHUNK_SIZE), b""))

    def commit(self) -> list[BlobRef]:
        """Make every content durable and visible.

        The caller holds the store's `writing()` lock from here until its rows are committed.
        """
        _flush_file_system(self._store.tmp_root)
        for tmp_path, ref in self._pending:
            self._store._place(tmp_path, ref, sync_directory=False)
        _flush_file_system(self._store.content_root)
        self.committed = True
        return [ref for _, ref in self._pending]

    def abort(self) -> None:
        for tmp_path, _ in self._pending:
            tmp_path.unlink(missing_ok=True)
        self._pending.clear()

    def __enter__(self) -> "BlobBatch":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.committed:
            self.abort()


class BlobStore:
    """The blob folder of one depot. Safe for many threads and processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.content_root = root / "sha256"
        self.tmp_root = root / "tmp"
        self._lock_path = root / ".lock"

    def create(self) -> None:
        self.content_root.mkdir(parents=True, exist_ok=True)
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        self._lock_path.touch(exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the blob with `digest` lives; raises `Invalid` for anything but a SHA-256."""
        if not DIGEST_PATTERN.fullmatch(digest):
            raise Invalid(f"{digest!r} is not a SHA-256 digest (64 lowercase hex characters)")
        return self.content_root / digest[:2] / digest[2:4] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def writer(self, directory: Path | None = None) -> BlobWriter:
        """A writer staging in `directory` (default `blobs/tmp`; same file system required)."""
        return BlobWriter(self, directory)

    def place(self, sealed: Path, ref: BlobRef) -> None:
        """Make a sealed, kept temporary file the blob `ref` (hold `writing()` until recorded)."""
        self._place(sealed, ref)

    def batch(self) -> BlobBatch:
        return BlobBatch(self)

    def put_stream(self, chunks: Iterable[bytes]) -> BlobRef:
        with self.writer() as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.finish()

    def put_file(self, source: Path) -> BlobRef:
        with source.open("rb") as handle:
            return self.put_stream(iter(lambda: handle.read(CHUNK_SIZE), b""))

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise NotFound(
                f"blob {digest} is missing from the store; run `neurodepot fsck`"
            ) from None

    def read_chunks(self, digest: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        with self.open(digest) as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def digests(self) -> Iterator[str]:
        """Every digest with a file in the store (whatever the database says)."""
        for path in self.content_root.glob("*/*/*"):
            if DIGEST_PATTERN.fullmatch(path.name) and path.parent.parent.name == path.name[:2]:
                yield path.name

    def temporary_files(self) -> list[Path]:
        return sorted(self.tmp_root.glob("incoming-*"))

    def remove(self, digest: str) -> None:
        """Delete a blob file; only the garbage collector (holding `collecting()`) calls this."""
        self.path(digest).unlink(missing_ok=True)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Held by a writer from storing content until the rows naming it are committed."""
        with self._locked(fcntl.LOCK_SH):
            yield

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Held by the garbage collector while it decides what is unreferenced and deletes it."""
        with self._locked(fcntl.LOCK_EX):
            yield

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle.fileno(), mode)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _place(self, tmp_path: Path, ref: BlobRef, sync_directory: bool = True) -> None:
        """Rename a sealed temporary file into place; a stored blob of the same size wins.

        With `sync_directory`, every folder the rename changed (and any it had to create) is
        fsynced, so the blob survives a power cut once this returns.
        """
        final = self.path(ref.digest)
        try:
            if os.stat(final).st_size == ref.size:
                tmp_path.unlink()
                return
        except FileNotFoundError:
            pass
        changed = [final.parent]
        # Read-only: a blob is shared by every file that names it and by hard-linked exports,
        # so nothing may write into it in place.
        os.chmod(tmp_path, BLOB_MODE)
        try:
            os.replace(tmp_path, final)
        except FileNotFoundError:
            if not final.parent.parent.is_dir():
                changed.append(self.content_root)
            changed.append(final.parent.parent)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_path, final)
        if sync_directory:
            for folder in changed:
                _fsync_dir(folder)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush_file_system(path: Path) -> None:
    """syncfs(2) on the file system holding `path` (all of it, data and metadata)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _LIBC is not None and _LIBC.syncfs(fd) == 0:
            return
        os.sync()  # no syncfs here: flush everything, slower but as durable
    finally:
        os.close(fd)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs.argtypes = [ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()
