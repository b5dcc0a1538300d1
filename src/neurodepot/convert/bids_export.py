"""Writing a BIDS plan: into a folder (copies or hard links), or as a zip streamed in chunks.

The folder is written next to its destination under a temporary name and renamed into place
when complete, so an interrupted export leaves no half dataset where one is expected. The zip
is produced as it is sent: each file is read in chunks and the archive never exists whole,
in memory or on disk.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from neurodepot.convert.bids_plan import BidsPlan, PlannedFile
from neurodepot.depot.blobstore import BlobStore
from neurodepot.depot.zip_stream import ZipPipe, open_archive, stream_entry
from neurodepot.errors import Conflict, Invalid

PROGRESS_EVERY = 64  # files between progress reports
# Small text files (sidecars, tables) that a de-identified export rewrites as it writes them.
TEXT_EXTENSIONS = (".json", ".tsv")
Rewrite = Callable[[PlannedFile, bytes], bytes]


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    files: int
    linked: int
    copied: int
    written: int
    bytes: int


def sidecar_bytes(blobs: BlobStore, planned: PlannedFile) -> bytes:
    """A dcm2niix sidecar with the plan's additions (TaskName, IntendedFor)."""
    assert planned.digest is not None
    with blobs.open(planned.digest) as handle:
        data = json.load(handle)
    data.update(dict(planned.additions))
    return (json.dumps(data, indent=2) + "\n").encode()


def _generated(blobs: BlobStore, planned: PlannedFile) -> bytes | None:
    """The content of a file that is not a blob as it is, or None for one that is."""
    if planned.text is not None:
        return planned.text.encode()
    if planned.is_sidecar and planned.additions:
        return sidecar_bytes(blobs, planned)
    return None


def _content(blobs: BlobStore, planned: PlannedFile, rewrite: Rewrite | None) -> bytes | None:
    """What to write for a file that is not a blob as it is; `rewrite` sees every text file."""
    content = _generated(blobs, planned)
    if rewrite is None or not planned.path.endswith(TEXT_EXTENSIONS):
        return content
    if content is None:
        assert planned.digest is not None
        with blobs.open(planned.digest) as handle:
            content = handle.read()
    return rewrite(planned, content)


def export_folder(
    plan: BidsPlan,
    blobs: BlobStore,
    out: Path,
    link: bool = False,
    progress: Callable[[int, int], None] | None = None,
    rewrite: Rewrite | None = None,
) -> ExportSummary:
    """Write the dataset to `out`, which must not exist (or be an empty folder)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Conflict(f"{out} already exists and is not an empty folder: choose another")
    parent = out.parent if out.parent != Path() else Path.cwd()
    if not parent.is_dir():
        raise Invalid(f"{parent} does not exist: create it first")
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    linked = copied = written = total = 0
    made: set[Path] = set()
    try:
        for index, planned in enumerate(plan.files):
            destination = work / planned.path
            if destination.parent not in made:
                destination.parent.mkdir(parents=True, exist_ok=True)
                made.add(destination.parent)
            content = _content(blobs, planned, rewrite)
            if content is not None:
                destination.write_bytes(content)
                written += 1
                total += len(content)
            else:
                assert planned.digest is not None
                source = blobs.path(planned.digest)
                if link and _try_link(source, destination):
                    linked += 1
                else:
                    shutil.copyfile(source, destination)
                    copied += 1
                total += planned.size
            if progress is not None and (
                index % PROGRESS_EVERY == 0 or index + 1 == len(plan.files)
            ):
                progress(index + 1, len(plan.files))
        if out.exists():
            out.rmdir()
        os.rename(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ExportSummary(out, len(plan.files), linked, copied, written, total)


def _try_link(source: Path, destination: Path) -> bool:
    """Hard-link a blob; False where the file system cannot (another device, no links)."""
    try:
        os.link(source, destination)
    except OSError:
        return False
    return True


def stream_zip(
    plan: BidsPlan, blobs: BlobStore, root: str, rewrite: Rewrite | None = None
) -> Iterator[bytes]:
    """The dataset as a zip (entries under `root/`), in chunks of about a megabyte.

    Entries are stored, not deflated: NIfTI is already gzip-compressed, and storing keeps
    the cost of a download that of reading the files.
    """
    pipe = ZipPipe()
    with open_archive(pipe) as archive:
        for planned in plan.files:
            name = f"{root}/{planned.path}"
            content = _content(blobs, planned, rewrite)
            if content is not None:
                archive.writestr(name, content)
                yield pipe.take()
                continue
            assert planned.digest is not None
            with blobs.open(planned.digest) as source:
                yield from stream_entry(archive, pipe, name, source, planned.size)
    yield pipe.take()
