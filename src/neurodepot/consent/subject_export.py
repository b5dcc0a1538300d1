"""Subject access export (GDPR article 15): everything the depot holds about one subject, zipped.

The zip holds, under `<project>-<subject>/`:
- `manifest.json`: what the export is, who made it, when, and what each entry holds;
- `catalog.json`: the subject, its sessions, scans (with acquisition facts and conversion
  status) and resources, each file with its digest, size and place in the zip;
- `consent.json` (every consent record, oldest first), `pseudonyms.json` (the linkage rows),
  `jobs.json`, `prearchive.json` (received studies routed to the subject, with the headers
  the prearchive keeps), `audit.json` (the events whose target is the subject or below);
- `files/...`: the subject's files themselves, byte for byte (their SHA-256 is the digest).

The records are gathered in one transaction that also records `subject_exported`; the files
are then streamed from the blob store a chunk at a time, never held whole in memory. The
archived DICOM instance index is counted, not listed: it repeats the files' own UIDs.

The rows naming a subject are found with erasure's own queries (`consent.erasure`), so that
what is shown and what is erased are the same set.
"""

import dataclasses
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import find_subject
from neurodepot.catalog.models import ImagingSession, Project, Resource, ResourceFile, Scan, Subject
from neurodepot.consent.erasure import naming, routed_studies, subject_jobs, subject_resource_ids
from neurodepot.consent.records import consent_history
from neurodepot.convert.models import ScanConversion
from neurodepot.deid.models import SessionPseudonym, SubjectPseudonym
from neurodepot.depot.blobstore import BlobStore
from neurodepot.depot.folder import Depot
from neurodepot.depot.zip_stream import ZipPipe, open_archive, stream_entry
from neurodepot.errors import Conflict, Invalid
from neurodepot.ingest.models import PrearchiveConflict, PrearchiveInstance
from neurodepot.ingest.models import ScanInstance as ArchivedInstance

Progress = Callable[[int, int], None]
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class HeldFile:
    """A file of the subject: whose resource it is in, its content, and its name in the zip."""

    owner: str  # the target owning the resource: P/S, P/S/E or P/S/E/N
    resource: str
    path: str
    digest: str
    size: int
    content_type: str
    created_at: datetime
    archive_path: str


@dataclass(frozen=True)
class ExportPlan:
    """What one export will hold: the JSON records (name → bytes) and the files to stream."""

    project: str
    subject: str
    root: str
    records: tuple[tuple[str, bytes], ...]
    files: tuple[HeldFile, ...]
    audit_events: int
    export_event_id: int

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class ExportSummary:
    project: str
    subject: str
    path: Path
    files: int
    bytes: int
    audit_events: int


def held_files(db: Session, project: str, subject: Subject) -> list[HeldFile]:
    """Every file in a resource of the subject, its sessions or their scans, in zip order."""
    owners = {r.id: (r.label, e, n) for r, e, n in _subject_resources(db, subject.id)}
    found = []
    in_resources = ResourceFile.resource_id.in_(subject_resource_ids(subject.id))
    for row in db.scalars(select(ResourceFile).where(in_resources)):
        label, session, scan = owners[row.resource_id]
        owner = "/".join(p for p in (project, subject.label, session, scan) if p)
        place = f"{_place(session, scan)}/resources/{label}/{row.path}"
        held = HeldFile(
            owner, label, row.path, row.digest, row.size, row.content_type, row.created_at, place
        )
        found.append(held)
    return sorted(found, key=lambda f: f.archive_path)


def plan_export(depot: Depot, actor: str, project: str, subject: str) -> ExportPlan:
    """Gather the subject's records and file list, and record the export in the audit log.

    Raises `NotFound` for an unknown project or subject.
    """
    with depot.transaction() as db:
        row = find_subject(db, project, subject)
        files = held_files(db, project, row)
        events = [
            audit.AuditEntry(*event).to_dict()
            for event in db.execute(
                select(*_AUDIT_COLUMNS)
                .where(naming(AuditEvent.target, project, subject))
                .order_by(AuditEvent.id)
            )
        ]
        records = {
            "catalog.json": _catalog(db, project, row, files),
            "consent.json": consent_history(db, project, subject),
            "pseudonyms.json": _pseudonyms(db, row),
            "jobs.json": [_columns(j) for j in db.scalars(subject_jobs(project, subject))],
            "prearchive.json": _studies(db, project, subject),
            "audit.json": events,
        }
        entry = audit.record(
            db, actor, "subject_exported", f"{project}/{subject}",
            {"files": len(files), "bytes": sum(f.size for f in files), "audit_events": len(events)},
        )  # fmt: skip
    manifest = {
        "kind": "neurodepot subject access export",
        "project": project,
        "subject": subject,
        "exported_at": audit.iso_time(entry.at),
        "exported_by": actor,
        "export_event_id": entry.id,
        "files": len(files),
        "bytes": sum(f.size for f in files),
        "entries": MANIFEST_ENTRIES,
    }
    encoded = [("manifest.json", _json(manifest))]
    encoded += [(name, _json(value)) for name, value in records.items()]
    return ExportPlan(
        project, subject, f"{project}-{subject}", tuple(encoded), tuple(files), len(events),
        entry.id,
    )  # fmt: skip


MANIFEST_ENTRIES = {
    "catalog.json": "the subject, its sessions, scans (acquisition facts) and resources, "
    "with every file's SHA-256 digest and its place under files/",
    "consent.json": "every consent record of the subject, oldest first",
    "pseudonyms.json": "the pseudonyms and date offset used for the subject's shared data",
    "jobs.json": "pipeline runs on the subject or below",
    "prearchive.json": "received studies routed to the subject, as the prearchive keeps them",
    "audit.json": "audit events whose target is the subject or below it",
    "files/": "the subject's files, byte for byte",
}


def stream_export(
    plan: ExportPlan, blobs: BlobStore, progress: Progress | None = None
) -> Iterator[bytes]:
    """The export as a zip, in chunks of about a megabyte (records deflated, files stored).

    Raises `NotFound` if a file's blob went missing since `plan_export` (a concurrent deletion).
    """
    pipe = ZipPipe()
    with open_archive(pipe) as archive:
        for name, data in plan.records:
            archive.writestr(f"{plan.root}/{name}", data, compress_type=zipfile.ZIP_DEFLATED)
            yield pipe.take()
        for index, held in enumerate(plan.files, 1):
            name = f"{plan.root}/{held.archive_path}"
            with blobs.open(held.digest) as source:
                yield from stream_entry(
                    archive, pipe, name, source, held.size, _zip_time(held.created_at)
                )
            if progress is not None:
                progress(index, len(plan.files))
    yield pipe.take()


def export_subject(
    depot: Depot,
    actor: str,
    project: str,
    subject: str,
    out: Path,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the subject's access export to `out` (a new file; a partial one is removed).

    Raises `Conflict` if `out` exists, `Invalid` if its folder does not.
    """
    if out.exists():
        raise Conflict(f"{out} already exists: choose another file name or remove it first")
    if not out.parent.is_dir():
        raise Invalid(f"folder {out.parent} does not exist: create it or choose another place")
    plan = plan_export(depot, actor, project, subject)
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("xb") as handle:
            for chunk in stream_export(plan, depot.blobs, progress):
                handle.write(chunk)
        partial.rename(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ExportSummary(
        project, subject, out, len(plan.files), plan.total_bytes, plan.audit_events
    )


_AUDIT_COLUMNS = (
    AuditEvent.id, AuditEvent.at, AuditEvent.actor, AuditEvent.action, AuditEvent.target,
    AuditEvent.detail, AuditEvent.outcome, AuditEvent.note, AuditEvent.previous_hash,
    AuditEvent.hash,
)  # fmt: skip


def _catalog(db: Session, project: str, row: Subject, files: list[HeldFile]) -> dict[str, Any]:
    listed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for held in files:
        entry = dataclasses.asdict(held)
        listed.setdefault((entry.pop("owner"), entry.pop("resource")), []).append(entry)
    at: dict[tuple[str | None, str | None], list[dict[str, Any]]] = {}
    for resource, session, scan in _subject_resources(db, row.id):
        owner = "/".join(p for p in (project, row.label, session, scan) if p)
        at.setdefault((session, scan), []).append(
            {"label": resource.label, "created_at": resource.created_at,
             "files": listed.get((owner, resource.label), [])}
        )  # fmt: skip
    of_subject = ImagingSession.subject_id == row.id
    conversions = {
        c.scan_id: _columns(c, ("scan_id",))
        for c in db.scalars(
            select(ScanConversion).join(Scan).join(ImagingSession).where(of_subject)
        )
    }
    instances = dict(
        db.execute(
            select(ArchivedInstance.scan_id, func.count())
            .join(Scan, Scan.id == ArchivedInstance.scan_id)
            .join(ImagingSession)
            .where(of_subject)
            .group_by(ArchivedInstance.scan_id)
        ).all()
    )
    sessions = []
    for session in db.scalars(
        select(ImagingSession).where(of_subject).order_by(ImagingSession.label)
    ):
        scans = [
            _columns(scan, ("id", "session_id"))
            | {
                "conversion": conversions.get(scan.id),
                "archived_instances": instances.get(scan.id, 0),
                "resources": at.get((session.label, scan.label), []),
            }
            for scan in db.scalars(
                select(Scan).where(Scan.session_id == session.id).order_by(Scan.id)
            )
        ]
        sessions.append(
            _columns(session, ("id", "project_id", "subject_id"))
            | {"resources": at.get((session.label, None), []), "scans": scans}
        )
    name = db.scalar(select(Project.name).where(Project.id == row.project_id))
    return {
        "project": {"label": project, "name": name},
        "subject": {"label": row.label, "created_at": row.created_at},
        "resources": at.get((None, None), []),
        "sessions": sessions,
    }


def _subject_resources(
    db: Session, subject_id: int
) -> list[tuple[Resource, str | None, str | None]]:
    """The subject's resources, each with its session's and scan's labels (None above them)."""
    rows = db.execute(
        select(Resource, ImagingSession.label, Scan.label)
        .outerjoin(Scan, Scan.id == Resource.scan_id)
        .outerjoin(
            ImagingSession, ImagingSession.id == func.coalesce(Resource.session_id, Scan.session_id)
        )
        .where(Resource.id.in_(subject_resource_ids(subject_id)))
        .order_by(Resource.label)
    )
    return [(resource, session, scan) for resource, session, scan in rows]


def _place(session: str | None, scan: str | None) -> str:
    """Where in the zip a resource's files go: under its session and scan, if any."""
    return (
        "files" + (f"/sessions/{session}" if session else "") + (f"/scans/{scan}" if scan else "")
    )


def _pseudonyms(db: Session, row: Subject) -> dict[str, Any]:
    own = db.get(SubjectPseudonym, row.id)
    sessions = db.execute(
        select(ImagingSession.label, SessionPseudonym.pseudonym, SessionPseudonym.created_at)
        .join(SessionPseudonym, SessionPseudonym.session_id == ImagingSession.id)
        .where(ImagingSession.subject_id == row.id)
        .order_by(ImagingSession.label)
    ).all()
    return {
        "subject": None if own is None else _columns(own, ("subject_id", "project_id")),
        "sessions": [
            {"session": label, "pseudonym": pseudonym, "created_at": created}
            for label, pseudonym, created in sessions
        ],
    }


def _studies(db: Session, project: str, subject: str) -> list[dict[str, Any]]:
    studies = list(db.scalars(routed_studies(project, subject)))
    held = {
        name: dict(
            db.execute(
                select(model.study_id, func.count())
                .where(model.study_id.in_([s.id for s in studies]))
                .group_by(model.study_id)
            ).all()
        )
        for name, model in (
            ("instances_held", PrearchiveInstance),
            ("conflicts_held", PrearchiveConflict),
        )
    }
    return [
        _columns(s) | {name: counts.get(s.id, 0) for name, counts in held.items()} for s in studies
    ]


def _columns(row: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """An ORM row's column values by name."""
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in exclude}


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=_plain, ensure_ascii=False).encode()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime):
        return audit.iso_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _zip_time(at: datetime) -> tuple[int, int, int, int, int, int]:
    at = at.astimezone(UTC) if at.tzinfo is not None else at
    stamp = (at.year, at.month, at.day, at.hour, at.minute, at.second)
    return max(stamp, ZIP_EPOCH)
