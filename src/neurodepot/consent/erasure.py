"""Erasing a subject (GDPR article 17): every row about it, then the blobs only it used.

In one transaction: the subject row goes, and the database's cascades take its sessions,
scans, resources, files, archived-instance index, conversions, consent records and
pseudonyms; the rows that name it by label are deleted with it: jobs whose target is the
subject or below, and prearchive studies routed to it (with the instances and conflicts the
prearchive keeps, and the patient headers it recorded). The audit log is append-only and keeps
its events, including the `subject_erased` record of this erasure (counts, no values).

After the commit, the blobs the erased rows named are collected: those no other row
references are removed, those shared with other subjects are kept. A crash between the commit
and the collection leaves only orphan blobs (content no row names), never a row without its
content; `neurodepot fsck` reports them and `fsck --repair` (or the next full collection)
removes them.

Erasure is refused while a job on the subject is queued or running, or a study for it is still
being received: either would write the subject's data again after it is gone.
"""

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, column, delete, func, or_, select, table
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.catalog.hierarchy import find_subject
from neurodepot.catalog.models import ImagingSession, Resource, ResourceFile, Scan, Subject
from neurodepot.consent.models import ConsentRecord
from neurodepot.consent.records import releases_containing
from neurodepot.convert.models import ScanConversion
from neurodepot.deid.models import SessionPseudonym, SubjectPseudonym
from neurodepot.depot.folder import Depot
from neurodepot.depot.garbage import collect
from neurodepot.depot.references import blob_referrers
from neurodepot.errors import Conflict, Invalid
from neurodepot.ingest.models import (
    PrearchiveConflict,
    PrearchiveInstance,
    PrearchiveStudy,
    ScanInstance,
)
from neurodepot.jobs.models import Job

BUSY_JOBS = ("queued", "running")
IDS_PER_QUERY = 500


@dataclass(frozen=True)
class ErasureCounts:
    """How many rows of each kind an erasure removes; `bytes` is the files' total size."""

    sessions: int
    scans: int
    resources: int
    files: int
    bytes: int
    archived_instances: int
    conversions: int
    consent_records: int
    pseudonyms: int
    jobs: int
    prearchive_studies: int


@dataclass(frozen=True)
class ErasurePlan:
    """What erasing the subject would remove, before anything is removed.

    `blobs_to_remove`: contents only this subject uses; `blobs_shared`: contents other rows
    also name, which stay. `releases`: published releases that still contain the subject.
    """

    project: str
    subject: str
    counts: ErasureCounts
    blobs_to_remove: int
    blobs_shared: int
    releases: list[str]


@dataclass(frozen=True)
class ErasureSummary:
    """What an erasure removed; `releases` still contain the subject and must be acted on."""

    project: str
    subject: str
    counts: ErasureCounts
    blobs_removed: int
    blobs_kept: int
    releases: list[str]
    audit_event_id: int


# --- the rows that name a subject (the subject access export shows the same) ---


def naming(column: Any, project: str, subject: str) -> ColumnElement[bool]:
    """`column` (a target text column) names the subject or something below it."""
    text = f"{project}/{subject}"
    condition: ColumnElement[bool] = or_(
        column == text, column.startswith(text + "/", autoescape=True)
    )
    return condition


def subject_jobs(project: str, subject: str) -> Select[tuple[Job]]:
    """The jobs whose target is the subject or below it."""
    return select(Job).where(naming(Job.target, project, subject)).order_by(Job.id)


def routed_studies(project: str, subject: str) -> Select[tuple[PrearchiveStudy]]:
    """Prearchive studies routed to the subject, or archived into it (labels, not keys)."""
    return (
        select(PrearchiveStudy)
        .where(
            or_(
                (PrearchiveStudy.project == project) & (PrearchiveStudy.subject == subject),
                naming(PrearchiveStudy.archived_to, project, subject),
            )
        )
        .order_by(PrearchiveStudy.id)
    )


def subject_resource_ids(subject_id: int) -> Select[tuple[int]]:
    """The ids of resources at the subject, its sessions and their scans."""
    sessions = select(ImagingSession.id).where(ImagingSession.subject_id == subject_id)
    scans = select(Scan.id).where(Scan.session_id.in_(sessions))
    return select(Resource.id).where(
        or_(
            Resource.subject_id == subject_id,
            Resource.session_id.in_(sessions),
            Resource.scan_id.in_(scans),
        )
    )


def routed_digests(db: Session, study_ids: list[int]) -> set[str]:
    """The blobs the prearchive keeps for these studies (instances and conflicts)."""
    digests: set[str] = set()
    for model in (PrearchiveInstance, PrearchiveConflict):
        digests.update(db.scalars(select(model.digest).where(model.study_id.in_(study_ids))))
    return digests


def plan_erasure(db: Session, project: str, subject: str) -> ErasurePlan:
    """What `erase_subject` would remove (raises `NotFound` for an unknown subject)."""
    row = find_subject(db, project, subject)
    counts, digests, study_ids = _inventory(db, project, row)
    shared = _shared_digests(db, row.id, study_ids, digests)
    return ErasurePlan(
        project, subject, counts, len(digests - shared), len(shared),
        releases_containing(db, project, subject),
    )  # fmt: skip


def erase_subject(
    depot: Depot, actor: str, project: str, subject: str, confirm: str
) -> ErasureSummary:
    """Erase `subject` of `project` with everything about it (see the module docstring).

    `confirm` must repeat the subject's label. Raises `Invalid` if it does not, `NotFound` for
    an unknown subject, `Conflict` while a job or a reception is still at work on it; in each
    case nothing is erased.
    """
    if confirm != subject:
        raise Invalid(
            f"confirm the erasure of {project}/{subject} by repeating the subject's label "
            f"({subject}) exactly, not {confirm!r}; nothing was erased"
        )
    with depot.transaction() as db:
        row = find_subject(db, project, subject)
        # Serialises with an archive adding a session to this subject (PostgreSQL).
        db.execute(select(Subject.id).where(Subject.id == row.id).with_for_update())
        _refuse_while_busy(db, project, subject)
        counts, digests, study_ids = _inventory(db, project, row)
        releases = releases_containing(db, project, subject)
        db.execute(delete(Job).where(naming(Job.target, project, subject)))
        for start in range(0, len(study_ids), IDS_PER_QUERY):
            batch = study_ids[start : start + IDS_PER_QUERY]
            db.execute(delete(PrearchiveStudy).where(PrearchiveStudy.id.in_(batch)))
        db.execute(delete(Subject).where(Subject.id == row.id))
        entry = audit.record(
            db, actor, "subject_erased", f"{project}/{subject}",
            {**asdict(counts), "blobs": len(digests), "releases": len(releases)},
        )  # fmt: skip
    collected = collect(depot.engine, depot.blobs, candidates=digests)
    removed = len(set(collected.rows) & digests)
    return ErasureSummary(
        project, subject, counts, removed, len(digests) - removed, releases, entry.id
    )


def _refuse_while_busy(db: Session, project: str, subject: str) -> None:
    target = f"{project}/{subject}"
    busy = list(
        db.scalars(
            select(Job.id)
            .where(naming(Job.target, project, subject), Job.status.in_(BUSY_JOBS))
            .order_by(Job.id)
        )
    )
    if busy:
        ids = ", ".join(str(i) for i in busy)
        raise Conflict(
            f"job(s) {ids} on {target} are queued or running: cancel them "
            "(`neurodepot jobs cancel ID`) and wait until they stop; nothing was erased"
        )
    receiving = [
        s.id for s in db.scalars(routed_studies(project, subject)) if s.state == "receiving"
    ]
    if receiving:
        ids = ", ".join(str(i) for i in receiving)
        raise Conflict(
            f"prearchive study(ies) {ids} for {target} are still being received: wait until "
            "they are ready, then erase again; nothing was erased"
        )


def _inventory(
    db: Session, project: str, row: Subject
) -> tuple[ErasureCounts, set[str], list[int]]:
    """The rows an erasure removes, the digests they name, and the prearchive studies' ids."""
    sessions = select(ImagingSession.id).where(ImagingSession.subject_id == row.id)
    scans = select(Scan.id).where(Scan.session_id.in_(sessions))
    resources = subject_resource_ids(row.id)
    files = select(ResourceFile).where(ResourceFile.resource_id.in_(resources)).subquery()
    study_ids = [s.id for s in db.scalars(routed_studies(project, row.label))]
    digests = set(db.scalars(select(files.c.digest).distinct())) | routed_digests(db, study_ids)

    def count(model: type, condition: object) -> int:
        return db.scalar(select(func.count()).select_from(model).where(condition)) or 0  # type: ignore[arg-type]

    counts = ErasureCounts(
        sessions=count(ImagingSession, ImagingSession.subject_id == row.id),
        scans=count(Scan, Scan.id.in_(scans)),
        resources=count(Resource, Resource.id.in_(resources)),
        files=db.scalar(select(func.count()).select_from(files)) or 0,
        bytes=int(db.scalar(select(func.coalesce(func.sum(files.c.size), 0))) or 0),
        archived_instances=count(ScanInstance, ScanInstance.scan_id.in_(scans)),
        conversions=count(ScanConversion, ScanConversion.scan_id.in_(scans)),
        consent_records=count(ConsentRecord, ConsentRecord.subject_id == row.id),
        pseudonyms=count(SubjectPseudonym, SubjectPseudonym.subject_id == row.id)
        + count(SessionPseudonym, SessionPseudonym.session_id.in_(sessions)),
        jobs=count(Job, naming(Job.target, project, row.label)),
        prearchive_studies=len(study_ids),
    )
    return counts, digests, study_ids


def _shared_digests(
    db: Session, subject_id: int, study_ids: list[int], digests: set[str]
) -> set[str]:
    """Those of `digests` that a row outside the subject (and its studies) also names.

    Any referrer other than files and the prearchive (a release, say) counts as outside.
    """
    known = {"resource_files", "prearchive_instances", "prearchive_conflicts"}
    others = [r for r in blob_referrers(db.connection()) if r.table not in known]
    shared: set[str] = set()
    listed = sorted(digests)
    for start in range(0, len(listed), IDS_PER_QUERY):
        batch = listed[start : start + IDS_PER_QUERY]
        shared.update(
            db.scalars(
                select(ResourceFile.digest).where(
                    ResourceFile.digest.in_(batch),
                    ResourceFile.resource_id.not_in(subject_resource_ids(subject_id)),
                )
            )
        )
        for model in (PrearchiveInstance, PrearchiveConflict):
            shared.update(
                db.scalars(
                    select(model.digest).where(
                        model.digest.in_(batch), model.study_id.not_in(study_ids)
                    )
                )
            )
        for referrer in others:
            col = column(referrer.column)
            shared.update(
                db.scalars(select(col).select_from(table(referrer.table)).where(col.in_(batch)))
            )
    return shared
