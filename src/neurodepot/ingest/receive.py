"""Recording received instances in the prearchive: grouping, duplicates and conflicts.

Every instance, whether it came over the network or from an import, ends here after its bytes
are a blob: it joins the open prearchive study of its StudyInstanceUID and destination (or
starts one). The same SOPInstanceUID with the same data is a duplicate: acknowledged, stored
once. The same UID with other data is a conflict: kept aside, reported, never applied.
"""

import errno
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from queue import Empty, Queue
from threading import Event, Lock, Thread

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from neurodepot.depot.blobstore import BlobRef
from neurodepot.depot.folder import Depot
from neurodepot.depot.orm import Blob, utcnow
from neurodepot.ingest.header import InstanceHeader, check_complete, read_header
from neurodepot.ingest.models import (
    OPEN_STATES,
    PrearchiveConflict,
    PrearchiveInstance,
    PrearchiveStudy,
)
from neurodepot.ingest.routing import Destination, Route, derived_session, route, sanitize_label

STORED, DUPLICATE, CONFLICT = "stored", "duplicate", "conflict"
_ROUTE_CACHE_SIZE = 1024
MAX_BATCH = 256
COMMIT_WAIT_S = 120.0  # beyond this the sender is told to retry (the row may still land)
COMMITTER_IDLE_S = 2.0


@dataclass(frozen=True)
class Arrival:
    """Who sent an instance and how: AE titles for the network, `import` for files."""

    source: str = "dicom"
    called_aet: str = ""
    calling_aet: str = ""


@dataclass(frozen=True)
class Override:
    """Labels an importer imposes, ahead of any routing rule."""

    project: str
    subject: str | None = None
    session: str | None = None


@dataclass(frozen=True)
class Received:
    """What became of one instance."""

    outcome: str
    study_id: int
    sop_instance_uid: str
    ref: BlobRef


@dataclass
class _Pending:
    """An instance whose blob is stored, waiting for the committer to record it."""

    header: InstanceHeader
    ref: BlobRef
    dataset_digest: str
    arrival: Arrival
    destination: Destination
    done: Event = field(default_factory=Event)
    result: Received | None = None
    error: BaseException | None = None


class Receiver:
    """Stores network-received instances, durably, before they are acknowledged.

    Each caller (one thread per association) writes its blob itself, fsynced, then hands the
    database row to one committer thread and waits. The committer records whatever is waiting
    in one transaction: a lone association costs one commit per instance as before, and eight
    at once share commits instead of queueing for the database's write lock one by one. The
    committer stops when idle and starts again on demand, so an unused receiver holds nothing.
    """

    def __init__(self, depot: Depot, routes: tuple[Route, ...]) -> None:
        self._depot = depot
        self._router = Router(routes)
        self._studies: dict[tuple[str, Destination], int] = {}
        self._waiting: Queue[_Pending] = Queue()
        self._lock = Lock()
        self._committing = False

    def store(self, data: bytes, arrival: Arrival) -> Received:
        """Store one encoded instance (file meta included); durable when this returns.

        Raises `Invalid` for data that cannot be archived (nothing is stored), `OSError` when
        the disk refuses, and the database's error when it cannot record the instance.
        """
        check_complete(data)
        header = read_header(data)
        dataset_digest = hashlib.sha256(memoryview(data)[header.dataset_offset :]).hexdigest()
        destination = self._router.destination(header, arrival)
        blobs = self._depot.blobs
        with blobs.writing():
            with blobs.writer() as writer:
                writer.write(data)
                ref = writer.finish()
            pending = _Pending(header, ref, dataset_digest, arrival, destination)
            self._waiting.put(pending)
            self._ensure_committer()
            if not pending.done.wait(COMMIT_WAIT_S):
                raise OSError(errno.ETIMEDOUT, "the database did not record the instance in time")
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _ensure_committer(self) -> None:
        with self._lock:
            if not self._committing:
                self._committing = True
                Thread(target=self._commit_loop, name="ingest-commit", daemon=True).start()

    def _commit_loop(self) -> None:
        while True:
            try:
                first = self._waiting.get(timeout=COMMITTER_IDLE_S)
            except Empty:
                with self._lock:
                    if self._waiting.empty():
                        self._committing = False
                        return
                continue
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._waiting.get_nowait())
                except Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        """Record a batch in one transaction; if that fails, each alone, to isolate the culprit."""
        known = dict(self._studies)
        try:
            with self._depot.transaction() as db:
                conn = db.connection()
                results = []
                for item in batch:
                    key = (item.header.study_instance_uid, item.destination)
                    received = record_instance(
                        conn,
                        item.header,
                        item.ref,
                        item.dataset_digest,
                        item.arrival,
                        item.destination,
                        known.get(key),
                    )
                    known[key] = received.study_id
                    results.append(received)
        except Exception as problem:
            if len(batch) > 1:
                for item in batch:
                    self._commit([item])
                return
            batch[0].error = problem
            batch[0].done.set()
            return
        if len(known) >= _ROUTE_CACHE_SIZE:
            known.clear()
        self._studies = known
        for item, received in zip(batch, results, strict=True):
            item.result = received
            item.done.set()


class Router:
    """Routing with a small cache: a study's instances all ask the same question."""

    def __init__(self, routes: tuple[Route, ...], override: Override | None = None) -> None:
        self._routes = routes
        self._override = override
        self._cache: dict[tuple[str, str], Destination] = {}
        self._lock = Lock()

    def destination(self, header: InstanceHeader, arrival: Arrival) -> Destination:
        key = (header.study_instance_uid, arrival.called_aet)
        with self._lock:
            found = self._cache.get(key)
        if found is not None:
            return found
        if self._override is not None:
            found = _overridden(self._override, header)
        else:
            found = route(
                self._routes,
                arrival.called_aet,
                header.routing,
                header.patient_id,
                header.patient_name,
                header.study_date,
                header.study_instance_uid,
            )
        with self._lock:
            if len(self._cache) >= _ROUTE_CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = found
        return found


def _overridden(override: Override, header: InstanceHeader) -> Destination:
    """The importer's labels; what it leaves out is made as routing would (PatientID, date)."""
    subject = override.subject or sanitize_label(header.patient_id or header.patient_name)
    session = override.session
    if session is None and subject:
        session = derived_session(subject, header.study_date, header.study_instance_uid)
    return Destination(
        override.project, subject or None, session, "import", override.session is None
    )


# Built once: a statement object caches its compiled form, and this path runs per instance.
_HELD = select(PrearchiveInstance.dataset_digest).where(
    PrearchiveInstance.study_id == bindparam("sid"),
    PrearchiveInstance.sop_instance_uid == bindparam("sop"),
)
_COUNT = (
    update(PrearchiveStudy)
    .where(PrearchiveStudy.id == bindparam("sid"), PrearchiveStudy.state.in_(OPEN_STATES))
    .values(
        instance_count=PrearchiveStudy.instance_count + bindparam("added"),
        total_size=PrearchiveStudy.total_size + bindparam("size"),
        last_received_at=bindparam("now"),
        state="receiving",
    )
)
_FORGET = delete(PrearchiveInstance).where(PrearchiveInstance.id == bindparam("id"))
_INSERTS = {
    name: (
        dialect.insert(Blob).on_conflict_do_nothing(),
        dialect.insert(PrearchiveInstance)
        .on_conflict_do_nothing(index_elements=["study_id", "sop_instance_uid"])
        .returning(PrearchiveInstance.id),
    )
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


def record_instance(
    conn: Connection,
    header: InstanceHeader,
    ref: BlobRef,
    dataset_digest: str,
    arrival: Arrival,
    destination: Destination,
    known_study: int | None = None,
) -> Received:
    """Add a stored instance to its prearchive study (the blob is already in place).

    Plain SQL statements, no ORM: this runs once per received instance, usually as three
    statements (blob row, instance row, study counters). `known_study` is the study the caller
    saw last for this StudyInstanceUID and destination; it is used only while still open.
    """
    if known_study is not None:
        received = _record(conn, header, ref, dataset_digest, known_study)
        if received is not None:
            return received
    study_id = _open_study(conn, header, arrival, destination, utcnow())
    received = _record(conn, header, ref, dataset_digest, study_id)
    assert received is not None, "a study opened in this transaction cannot be closed yet"
    return received


def _record(
    conn: Connection, header: InstanceHeader, ref: BlobRef, dataset_digest: str, study_id: int
) -> Received | None:
    """Add to `study_id`; None (and nothing added) if that study is no longer open."""
    now = utcnow()
    add_blob, add_instance = _INSERTS[conn.dialect.name]
    conn.execute(add_blob, {"digest": ref.digest, "size": ref.size, "created_at": now})
    added = conn.execute(
        add_instance,
        {
            "study_id": study_id,
            "sop_instance_uid": header.sop_instance_uid,
            "sop_class_uid": header.sop_class_uid,
            "series_instance_uid": header.series_instance_uid,
            "series_number": header.series_number,
            "modality": header.modality,
            "transfer_syntax": header.transfer_syntax,
            "digest": ref.digest,
            "size": ref.size,
            "dataset_digest": dataset_digest,
            "received_at": now,
        },
    ).first()
    counted = {"sid": study_id, "added": 1, "size": ref.size, "now": now}
    if added is None:
        counted.update(added=0, size=0)
    if not conn.execute(_COUNT, counted).rowcount:
        if added is not None:
            conn.execute(_FORGET, {"id": added.id})
        return None
    if added is not None:
        return Received(STORED, study_id, header.sop_instance_uid, ref)
    held = conn.execute(_HELD, {"sid": study_id, "sop": header.sop_instance_uid}).scalar_one()
    if held == dataset_digest:
        return Received(DUPLICATE, study_id, header.sop_instance_uid, ref)
    add_conflict(conn, study_id, header.sop_instance_uid, ref, dataset_digest, "prearchive", now)
    return Received(CONFLICT, study_id, header.sop_instance_uid, ref)


def add_conflict(
    conn: Connection,
    study_id: int,
    sop_instance_uid: str,
    ref: BlobRef,
    dataset_digest: str,
    against: str,
    now: datetime,
) -> None:
    """Keep an instance aside: its UID is already held with other data."""
    conn.execute(
        insert(PrearchiveConflict).values(
            study_id=study_id,
            sop_instance_uid=sop_instance_uid,
            digest=ref.digest,
            size=ref.size,
            dataset_digest=dataset_digest,
            against=against,
            received_at=now,
        )
    )
    conn.execute(
        update(PrearchiveStudy)
        .where(PrearchiveStudy.id == study_id)
        .values(conflict_count=PrearchiveStudy.conflict_count + 1)
    )


def _open_study(
    conn: Connection,
    header: InstanceHeader,
    arrival: Arrival,
    destination: Destination,
    now: datetime,
) -> int:
    """The study still collecting instances for this UID and destination, or a new one."""
    found = conn.scalar(
        select(PrearchiveStudy.id)
        .where(
            PrearchiveStudy.study_instance_uid == header.study_instance_uid,
            PrearchiveStudy.state.in_(OPEN_STATES),
            _same(PrearchiveStudy.project, destination.project),
            _same(PrearchiveStudy.subject, destination.subject),
            _same(PrearchiveStudy.session, destination.session),
        )
        .order_by(PrearchiveStudy.id.desc())
        .limit(1)
    )
    if found is not None:
        return int(found)
    created = conn.execute(
        insert(PrearchiveStudy)
        .values(
            study_instance_uid=header.study_instance_uid,
            state="receiving",
            reason=_unassigned_reason(destination),
            source=arrival.source,
            called_aet=arrival.called_aet[:16],
            calling_aet=arrival.calling_aet[:16],
            project=destination.project,
            subject=destination.subject,
            session=destination.session,
            session_derived=destination.session_derived,
            rule=destination.rule,
            patient_name=header.patient_name,
            patient_id=header.patient_id,
            study_date=header.study_date,
            study_description=header.routing.get("StudyDescription", "")[:255],
            accession_number=header.routing.get("AccessionNumber", "")[:64],
            modality=header.modality,
            instance_count=0,
            total_size=0,
            conflict_count=0,
            first_received_at=now,
            last_received_at=now,
            archived_to="",
        )
        .returning(PrearchiveStudy.id)
    )
    return int(created.scalar_one())


def _unassigned_reason(destination: Destination) -> str:
    if destination.project:
        return ""
    if destination.rule:
        return f"{destination.rule} gave no usable project label: assign a project"
    return "no routing rule matched: assign a project"


def _same(column: object, value: str | None) -> object:
    return column.is_(None) if value is None else column == value  # type: ignore[attr-defined]
