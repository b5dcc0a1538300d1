"""Turning a prearchive study into a session: subject, session, one scan per series, files.

Everything happens in one transaction: a study is archived whole or not at all. Re-sending a
study merges into its session (instances already held with the same data are skipped); an
instance whose UID is held with other data is kept aside as a conflict and never replaces what
is archived. Once archived, the project's automatic pipelines are queued.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from neurodepot.catalog.hierarchy import create_scan, create_session, create_subject
from neurodepot.catalog.models import ImagingSession, Project, ResourceFile, Scan, Subject
from neurodepot.catalog.resources import ensure_resource
from neurodepot.catalog.target import Target
from neurodepot.depot.blobstore import BlobRef, BlobStore
from neurodepot.depot.orm import utcnow
from neurodepot.errors import Conflict, Invalid, NotFound
from neurodepot.ingest.acquisition import read_series_facts
from neurodepot.ingest.models import PrearchiveInstance, PrearchiveStudy, ScanInstance
from neurodepot.ingest.receive import add_conflict
from neurodepot.jobs.registry import PipelineRegistry
from neurodepot.jobs.triggers import session_archived

DICOM_RESOURCE = "DICOM"
ARCHIVABLE = ("receiving", "ready", "error", "conflict")


@dataclass(frozen=True)
class ArchiveOutcome:
    """What archiving one prearchive study did."""

    study_id: int
    session: str
    scans: tuple[str, ...]
    archived: int
    duplicates: int
    conflicts: int
    jobs: tuple[int, ...]


class ArchiveRefused(Invalid):
    """The study cannot be archived as it stands; the caller records `reason` on it."""

    def __init__(self, study_id: int, reason: str) -> None:
        super().__init__(f"prearchive study {study_id} was not archived: {reason}")
        self.reason = reason


def archive_study(
    db: Session,
    blobs: BlobStore,
    study_id: int,
    registry: PipelineRegistry | None,
    requested_by: str,
) -> ArchiveOutcome:
    """Archive prearchive study `study_id` into its project (see the module docstring).

    Raises `ArchiveRefused` when the destination is missing or clashes (the caller records its
    reason on the study, in a transaction of its own), `NotFound` for an unknown study.
    """
    study = db.get(PrearchiveStudy, study_id, with_for_update=True)
    if study is None:
        raise NotFound(
            f"prearchive study {study_id} does not exist; see `neurodepot prearchive list`"
        )
    if study.state not in ARCHIVABLE:
        raise Conflict(f"prearchive study {study_id} is {study.state}; there is nothing to archive")
    if study.project and not (study.subject and study.session):
        raise ArchiveRefused(
            study.id,
            "its headers give no patient to name a subject and session after; assign them with "
            f"`neurodepot prearchive move {study_id} {study.project} --subject S --session E`",
        )
    if not (study.project and study.subject and study.session):
        raise Invalid(
            f"prearchive study {study_id} has no project, subject and session yet; assign them "
            f"with `neurodepot prearchive move {study_id} PROJECT [--subject S] [--session E]`"
        )
    session = _destination_session(db, study)
    instances = db.scalars(
        select(PrearchiveInstance)
        .where(PrearchiveInstance.study_id == study.id)
        .order_by(PrearchiveInstance.series_number, PrearchiveInstance.sop_instance_uid)
    ).all()
    by_series: dict[str, list[PrearchiveInstance]] = defaultdict(list)
    for instance in instances:
        by_series[instance.series_instance_uid].append(instance)
    now = utcnow()
    archived = duplicates = conflicts = 0
    scan_labels = []
    for series_uid, members in by_series.items():
        scan = _series_scan(db, blobs, session, series_uid, members[0])
        scan_labels.append(scan.label)
        added, same, clashing = _archive_series(db, scan, members, now)
        archived, duplicates = archived + added, duplicates + same
        for instance in clashing:
            ref = BlobRef(instance.digest, instance.size)
            add_conflict(
                db.connection(),
                study.id,
                instance.sop_instance_uid,
                ref,
                instance.dataset_digest,
                "archive",
                now,
            )
        conflicts += len(clashing)
        scan.instance_count = (
            db.scalar(
                select(func.count())
                .select_from(ScanInstance)
                .where(ScanInstance.scan_id == scan.id)
            )
            or 0
        )
    session_target = Target(study.project, study.subject, study.session)
    # Pipelines run when the session gained something, not for a resend of what it holds.
    jobs = (
        session_archived(db, registry, session_target, requested_by)
        if registry and archived
        else []
    )
    db.execute(delete(PrearchiveInstance).where(PrearchiveInstance.study_id == study.id))
    study.archived_at = now
    study.archived_to = str(session_target)
    total_conflicts = study.conflict_count + conflicts
    study.conflict_count = total_conflicts
    if total_conflicts:
        study.state = "conflict"
        study.reason = (
            f"{total_conflicts} instance(s) reuse a UID with other data; they were kept aside, "
            "not archived (see `neurodepot prearchive show`)"
        )
    else:
        study.state, study.reason = "archived", ""
    db.flush()
    return ArchiveOutcome(
        study.id,
        str(session_target),
        tuple(scan_labels),
        archived,
        duplicates,
        conflicts,
        tuple(job.id for job in jobs),
    )


def _refuse(study: PrearchiveStudy, reason: str) -> ArchiveRefused:
    return ArchiveRefused(study.id, reason)


def _destination_session(db: Session, study: PrearchiveStudy) -> ImagingSession:
    assert study.project and study.subject and study.session
    project = db.scalar(select(Project).where(Project.label == study.project))
    if project is None:
        raise _refuse(
            study,
            f"project {study.project!r} does not exist; create it (`neurodepot project create "
            f"{study.project}`) or move the study to another project",
        )
    if study.session_derived:  # a re-sent study goes back to the session it made before
        earlier = db.scalar(
            select(ImagingSession.label)
            .join(Subject, Subject.id == ImagingSession.subject_id)
            .where(
                ImagingSession.project_id == project.id,
                ImagingSession.study_instance_uid == study.study_instance_uid,
                Subject.label == study.subject,
            )
        )
        if earlier is not None:
            study.session = earlier
    subject = db.scalar(
        select(Subject).where(Subject.project_id == project.id, Subject.label == study.subject)
    )
    if subject is None:
        create_subject(db, study.project, study.subject)
    session = db.scalar(
        select(ImagingSession).where(
            ImagingSession.project_id == project.id, ImagingSession.label == study.session
        )
    )
    if session is None:
        create_session(
            db, study.project, study.subject, study.session, study.modality, study.study_date
        )
        session = db.scalar(
            select(ImagingSession).where(
                ImagingSession.project_id == project.id, ImagingSession.label == study.session
            )
        )
        assert session is not None
    elif session.subject.label != study.subject:
        raise _refuse(
            study,
            f"session {study.session!r} of project {study.project!r} belongs to subject "
            f"{session.subject.label!r}, not {study.subject!r}; move the study to another session",
        )
    elif session.study_instance_uid not in (None, study.study_instance_uid):
        if study.session_derived:
            study.session = _free_session_label(db, project.id, study.session)
            return _destination_session(db, study)
        raise _refuse(
            study,
            f"session {study.session!r} already holds another study "
            f"({session.study_instance_uid}); move this one to a session of its own",
        )
    session.study_instance_uid = study.study_instance_uid
    return session


def _free_session_label(db: Session, project_id: int, base: str) -> str:
    """`base_2`, `base_3`…: the first label no session of the project has (made-up labels)."""
    taken = set(
        db.scalars(
            select(ImagingSession.label).where(
                ImagingSession.project_id == project_id,
                ImagingSession.label.like(f"{base[:58]}_%"),
            )
        )
    )
    n = 2
    while f"{base[:58]}_{n}" in taken:
        n += 1
    return f"{base[:58]}_{n}"


def _series_scan(
    db: Session,
    blobs: BlobStore,
    session: ImagingSession,
    series_uid: str,
    first: PrearchiveInstance,
) -> Scan:
    """The session's scan for a series, created (with its acquisition facts) if new."""
    scan = db.scalar(
        select(Scan).where(Scan.session_id == session.id, Scan.series_instance_uid == series_uid)
    )
    if scan is not None:
        return scan
    with blobs.open(first.digest) as handle:
        facts = read_series_facts(handle)
    taken = set(db.scalars(select(Scan.label).where(Scan.session_id == session.id)))
    base = str(facts.series_number) if facts.series_number is not None else "series"
    label, n = base, 1
    while label in taken:
        n += 1
        label = f"{base}-{n}"
    project, subject = session.subject.project.label, session.subject.label
    create_scan(
        db, project, subject, session.label, label, facts.series_description, facts.modality
    )
    scan = db.scalar(select(Scan).where(Scan.session_id == session.id, Scan.label == label))
    assert scan is not None
    scan.series_instance_uid = series_uid
    scan.sop_class_uid = first.sop_class_uid
    for name, value in vars(facts).items():
        if name != "modality":
            setattr(scan, name, value)
    return scan


def _archive_series(
    db: Session, scan: Scan, members: list[PrearchiveInstance], now: datetime
) -> tuple[int, int, list[PrearchiveInstance]]:
    """File a series' instances in its scan's DICOM resource, a few statements in all.

    Returns how many were added, how many were already there with the same data, and those
    whose UID (or file name) is already held with other data.
    """
    session = scan.session
    target = Target(session.subject.project.label, session.subject.label, session.label, scan.label)
    resource = ensure_resource(db, target, DICOM_RESOURCE)
    held = dict(
        db.execute(
            select(ScanInstance.sop_instance_uid, ScanInstance.dataset_digest).where(
                ScanInstance.scan_id == scan.id
            )
        ).all()
    )
    files = set(
        db.scalars(select(ResourceFile.path).where(ResourceFile.resource_id == resource.id))
    )
    fresh: list[PrearchiveInstance] = []
    clashing: list[PrearchiveInstance] = []
    same = 0
    for instance in members:
        previous = held.get(instance.sop_instance_uid)
        if previous == instance.dataset_digest:
            same += 1
        elif previous is not None or f"{instance.sop_instance_uid}.dcm" in files:
            clashing.append(instance)
        else:
            held[instance.sop_instance_uid] = instance.dataset_digest
            fresh.append(instance)
    if not fresh:
        return 0, same, clashing
    conn = db.connection()
    file_ids = conn.execute(
        insert(ResourceFile).returning(ResourceFile.id, sort_by_parameter_order=True),
        [
            {
                "resource_id": resource.id,
                "path": f"{instance.sop_instance_uid}.dcm",
                "digest": instance.digest,
                "size": instance.size,
                "content_type": "application/dicom",
                "created_at": now,
            }
            for instance in fresh
        ],
    ).scalars()
    conn.execute(
        insert(ScanInstance),
        [
            {
                "scan_id": scan.id,
                "file_id": file_id,
                "sop_instance_uid": instance.sop_instance_uid,
                "sop_class_uid": instance.sop_class_uid,
                "dataset_digest": instance.dataset_digest,
            }
            for instance, file_id in zip(fresh, file_ids, strict=True)
        ],
    )
    return len(fresh), same, clashing
