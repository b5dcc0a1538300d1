"""Writing a zip while it is sent: the archive goes to a pipe whose bytes are taken in chunks.

Used by every download that is a zip (the BIDS export, the shared dataset, a subject access
export), so that memory stays flat whatever the size: entries are copied a chunk at a time and
each chunk is handed on as soon as zipfile has written it.
"""

import zipfile
from collections.abc import Iterator
from typing import BinaryIO

from neurodepot.depot.blobstore import CHUNK_SIZE


class ZipPipe:
    """A write-only stream whose written bytes are collected until taken (zipfile's output)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._offset = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def open_archive(pipe: ZipPipe) -> zipfile.ZipFile:
    """A zip written to `pipe`; entries stored (NIfTI and DICOM gain little from deflating)."""
    return zipfile.ZipFile(pipe, "w", zipfile.ZIP_STORED, allowZip64=True)  # type: ignore[arg-type]


def stream_entry(
    archive: zipfile.ZipFile,
    pipe: ZipPipe,
    name: str,
    source: BinaryIO,
    size: int,
    date_time: tuple[int, int, int, int, int, int] | None = None,
) -> Iterator[bytes]:
    """Copy `size` bytes of `source` into entry `name`, yielding what is written as it goes."""
    info = zipfile.ZipInfo(name, date_time) if date_time else zipfile.ZipInfo(name)
    info.file_size = size
    with archive.open(info, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as entry:
        while chunk := source.read(CHUNK_SIZE):
            entry.write(chunk)
            yield pipe.take()
    yield pipe.take()
