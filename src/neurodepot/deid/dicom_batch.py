"""De-identify a whole folder of DICOM files in a pool of processes, going on past bad files.

Every readable instance of `src` is de-identified by `dicom_headers.deidentify_file` and written
as `dst/<remapped SeriesInstanceUID>/<remapped SOPInstanceUID>.dcm`: no source file or folder
name, which may identify, survives. A file that cannot be de-identified (not DICOM, truncated,
malformed, undecodable) is reported in `BatchReport.skipped` with its reason and the batch goes
on. A batch either returns its report or raises with `dst` left as it was found (empty or
absent): workers write into a staging folder inside `dst`, and only this process moves finished
files into place, in the sorted order of the source files, so the outcome does not depend on the
number of workers or on which finishes first.
"""

import math
import multiprocessing
import os
import re
import shutil
import stat
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.filereader import read_partial

from neurodepot.deid.dicom_headers import DicomRecipe, SubjectKeys, deidentify_file
from neurodepot.errors import Invalid, NeurodepotError

# Files per task sent to a worker: large enough that pickling and scheduling cost little next to
# de-identifying, small enough that the workers finish close together.
MAX_CHUNK = 64
CHUNKS_PER_WORKER = 8
# Chunks submitted ahead of the one being collected, per worker: bounds the staged files waiting.
IN_FLIGHT_PER_WORKER = 2
# Below this many files, starting worker processes costs more than it saves.
MIN_POOL_FILES = 32
STAGING = ".deid-staging"
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_PATIENT_ID = pydicom.tag.Tag("PatientID")


@dataclass(frozen=True)
class Skipped:
    """A source file (path relative to `src`, `/`-separated) not written, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class BatchReport:
    """What a batch wrote.

    `burned_in` pairs an output path (relative to `dst`) with why its pixels may carry text, for
    a steward to look at. `duplicates` are source files whose SOP instance was already written
    from an earlier file (in sorted order): each instance is written once.
    """

    written: int
    skipped: tuple[Skipped, ...]
    burned_in: tuple[tuple[str, str], ...]
    duplicates: tuple[Skipped, ...] = ()


@dataclass(frozen=True)
class _Chunk:
    src: str
    staging: str
    recipe: DicomRecipe
    files: tuple[tuple[int, str, SubjectKeys], ...]  # (index in sorted order, rel path, keys)


@dataclass(frozen=True)
class _Done:
    """A file's result as a worker returns it: small, never a dataset."""

    index: int
    rel: str
    staged: str | None = None
    series_uid: str = ""
    sop_uid: str = ""
    burned_in: str | None = None
    error: str | None = None


def deidentify_tree(
    src: Path,
    dst: Path,
    recipe: DicomRecipe,
    keys_for: Callable[[str], SubjectKeys] | SubjectKeys,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BatchReport:
    """De-identify every file under `src` into the empty or absent folder `dst`.

    `keys_for` is the subject's keys, or a function of the original PatientID ("" when absent)
    called here, in this process, once per distinct PatientID (so it may use a database); a
    `NeurodepotError` it raises skips that patient's files. `workers` processes (default: the
    CPU count; 1, or fewer than `MIN_POOL_FILES` files, runs here without a pool) share the
    files. `progress(done, total)` is called as files are handled. Symbolic links are followed
    to files inside `src` only; folders reached through links are not walked. Raises `Invalid`
    for a missing `src` or a non-empty `dst`; on any other error (a worker that dies, Ctrl-C,
    an exception from `keys_for` or `progress`) removes what it wrote and re-raises.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise Invalid(f"{src}: not a folder; give the folder of DICOM files to de-identify")
    created = _claim_destination(dst)
    skipped: list[Skipped] = []
    workers = max(1, workers or os.cpu_count() or 1)
    staging = dst / STAGING
    try:
        files = sorted(_walk(src, skipped))
        total = len(files) + len(skipped)
        tasks = _tasks(src, files, keys_for, skipped)
        collector = _Collector(dst, total, total - len(tasks), progress)
        staging.mkdir()
        chunks = _chunks(src, staging, recipe, tasks, workers)
        if workers == 1 or len(tasks) < MIN_POOL_FILES:
            for chunk in chunks:
                collector.take(_deidentify_chunk(chunk))
        else:
            _run_pool(chunks, workers, collector)
        shutil.rmtree(staging)
    except BaseException:
        _undo(dst, created)
        raise
    skipped.extend(collector.skipped)
    return BatchReport(
        written=collector.written,
        skipped=tuple(sorted(skipped, key=lambda item: item.path)),
        burned_in=tuple(collector.burned_in),
        duplicates=tuple(collector.duplicates),
    )


def _claim_destination(dst: Path) -> bool:
    """Check `dst` is empty or absent; True when it was made here (so removed on failure)."""
    if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
        raise Invalid(f"{dst}: not a folder; give an empty or new folder for the output")
    if dst.is_dir():
        if any(dst.iterdir()):
            raise Invalid(f"{dst}: not empty; give an empty or new folder for the output")
        return False
    dst.mkdir(parents=True)
    return True


def _undo(dst: Path, created: bool) -> None:
    """Leave `dst` as it was found: absent if made here, else empty."""
    if created:
        shutil.rmtree(dst, ignore_errors=True)
        return
    for child in dst.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _walk(src: Path, skipped: list[Skipped]) -> Iterator[str]:
    """Relative paths of the regular files under `src`, sorted; links out of `src` skipped."""
    root = src.resolve()

    def unlisted(error: OSError) -> None:
        rel = Path(error.filename).relative_to(src).as_posix()
        skipped.append(Skipped(rel, f"{rel}: a folder that cannot be listed ({error.strerror})"))

    for folder, dirs, names in os.walk(src, onerror=unlisted):
        base = Path(folder)
        for name in sorted(dirs):
            if (base / name).is_symlink():
                rel = (base / name).relative_to(src).as_posix()
                skipped.append(Skipped(rel, f"{rel}: a link to a folder, not followed"))
        dirs[:] = sorted(d for d in dirs if not (base / d).is_symlink())
        for name in sorted(names):
            path = base / name
            rel = path.relative_to(src).as_posix()
            try:
                if path.is_symlink() and not path.resolve().is_relative_to(root):
                    skipped.append(
                        Skipped(rel, f"{rel}: a link to outside the folder, not followed")
                    )
                    continue
                regular = stat.S_ISREG(path.stat().st_mode)
            except (OSError, RuntimeError) as error:  # RuntimeError: a loop of links
                skipped.append(Skipped(rel, f"{rel}: cannot be read ({error})"))
                continue
            if not regular:
                skipped.append(Skipped(rel, f"{rel}: not a regular file"))
                continue
            yield rel


def _tasks(
    src: Path,
    files: list[str],
    keys_for: Callable[[str], SubjectKeys] | SubjectKeys,
    skipped: list[Skipped],
) -> list[tuple[int, str, SubjectKeys]]:
    """(index, rel, keys) per file, resolved here so that `keys_for` never leaves this process.

    `keys_for` is called once per distinct PatientID.
    """
    if isinstance(keys_for, SubjectKeys):
        return [(index, rel, keys_for) for index, rel in enumerate(files)]
    known: dict[str, SubjectKeys | str] = {}  # PatientID -> keys, or why there are none
    tasks: list[tuple[int, str, SubjectKeys]] = []
    for index, rel in enumerate(files):
        try:
            patient_id = _patient_id(src / rel)
        except Invalid as error:
            skipped.append(Skipped(rel, f"{rel}: {error.message}"))
            continue
        if patient_id not in known:
            try:
                known[patient_id] = keys_for(patient_id)
            except NeurodepotError as error:
                known[patient_id] = error.message
        keys = known[patient_id]
        if isinstance(keys, str):
            skipped.append(Skipped(rel, f"{rel}: {keys}"))
            continue
        tasks.append((index, rel, keys))
    return tasks


_READ_ERRORS = (OSError, ValueError, LookupError, EOFError, pydicom.errors.InvalidDicomError)


def _patient_id(path: Path) -> str:
    """The PatientID of a DICOM file, reading no further than the patient module."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with path.open("rb") as handle:
                ds = read_partial(handle, stop_when=lambda tag, vr, length: tag.group > 0x0010)
            return str(ds[_PATIENT_ID].value or "").strip(" \x00") if _PATIENT_ID in ds else ""
    except (*_READ_ERRORS, Warning) as error:
        raise Invalid(
            f"its PatientID cannot be read ({error}); is it a complete DICOM file?"
        ) from error


def _chunks(
    src: Path,
    staging: Path,
    recipe: DicomRecipe,
    tasks: list[tuple[int, str, SubjectKeys]],
    workers: int,
) -> list[_Chunk]:
    size = max(1, min(MAX_CHUNK, math.ceil(len(tasks) / (workers * CHUNKS_PER_WORKER))))
    return [
        _Chunk(str(src), str(staging), recipe, tuple(tasks[start : start + size]))
        for start in range(0, len(tasks), size)
    ]


def _run_pool(chunks: list[_Chunk], workers: int, collector: "_Collector") -> None:
    """Run chunks in a pool, collecting results in submission order, a bounded window ahead."""
    executor = ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=_context())
    pending: deque[Future[list[_Done]]] = deque()
    try:
        for chunk in chunks:
            pending.append(executor.submit(_deidentify_chunk, chunk))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                collector.take(pending.popleft().result())
        while pending:
            collector.take(pending.popleft().result())
    finally:
        # Running chunks finish before the caller cleans up, so none writes after it.
        executor.shutdown(wait=True, cancel_futures=True)


def _context() -> multiprocessing.context.BaseContext:
    """A start method without fork (unsafe once threads run); forkserver preloads the engine."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["__main__", __name__])
        return context
    return multiprocessing.get_context("spawn")


def _deidentify_chunk(chunk: _Chunk) -> list[_Done]:
    """De-identify a chunk's files into the staging folder (runs in a worker)."""
    done: list[_Done] = []
    for index, rel, keys in chunk.files:
        staged = Path(chunk.staging, f"{index:09d}.dcm")
        try:
            outcome = deidentify_file(Path(chunk.src, rel), staged, chunk.recipe, keys)
            series_uid, sop_uid = outcome.series_instance_uid, outcome.sop_instance_uid
            for keyword, uid in (("SeriesInstanceUID", series_uid), ("SOPInstanceUID", sop_uid)):
                if not _UID.fullmatch(uid):
                    raise Invalid(f"{rel}: no valid {keyword}, so not an instance to name")
        except Invalid as error:
            staged.unlink(missing_ok=True)
            done.append(_Done(index, rel, error=error.message))
            continue
        except BaseException as error:
            staged.unlink(missing_ok=True)
            error.add_note(f"while de-identifying {rel}")
            raise
        done.append(_Done(index, rel, str(staged), series_uid, sop_uid, outcome.burned_in))
    return done


class _Collector:
    """Moves staged files into place in source order and tallies the batch (this process)."""

    def __init__(
        self,
        dst: Path,
        total: int,
        done: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.dst, self.total, self.done, self.progress = dst, total, done, progress
        self.written = 0
        self.skipped: list[Skipped] = []
        self.duplicates: list[Skipped] = []
        self.burned_in: list[tuple[str, str]] = []
        self._first: dict[str, str] = {}  # output name -> the source file it came from
        if progress is not None:
            progress(done, total)

    def take(self, results: list[_Done]) -> None:
        for result in results:
            self._place(result)
        self.done += len(results)
        if self.progress is not None:
            self.progress(self.done, self.total)

    def _place(self, result: _Done) -> None:
        if result.staged is None:
            self.skipped.append(Skipped(result.rel, result.error or "not de-identified"))
            return
        name = f"{result.series_uid}/{result.sop_uid}.dcm"
        if name in self._first:
            Path(result.staged).unlink()
            first = self._first[name]
            reason = f"{result.rel}: the same SOP instance as {first}, written once"
            self.duplicates.append(Skipped(result.rel, reason))
            return
        self._first[name] = result.rel
        final = self.dst / name
        final.parent.mkdir(exist_ok=True)
        os.replace(result.staged, final)
        self.written += 1
        if result.burned_in is not None:
            self.burned_in.append((name, result.burned_in))
