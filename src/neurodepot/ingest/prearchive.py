"""Looking after the prearchive: list, show, move, delete, archive, and the quiet-period sweep."""

from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.identifiers import check_label
from neurodepot.catalog.models import Project
from neurodepot.depot.folder import Depot
from neurodepot.depot.garbage import collect
from neurodepot.depot.orm import utcnow
from neurodepot.errors import Conflict, Invalid, NotFound
from neurodepot.ingest.archive import ArchiveOutcome, ArchiveRefused, archive_study
from neurodepot.ingest.models import (
    OPEN_STATES,
    STATES,
    PrearchiveConflict,
    PrearchiveInstance,
    PrearchiveStudy,
)
from neurodepot.ingest.routing import derived_session
from neurodepot.jobs.registry import PipelineRegistry


@dataclass(frozen=True)
class StudyEntry:
    """A prearchive study as listed."""

    id: int
    study_instance_uid: str
    state: str
    reason: str
    source: str
    called_aet: str
    calling_aet: str
    project: str | None
    subject: str | None
    session: str | None
    rule: str
    patient_name: str
    patient_id: str
    study_date: date | None
    study_description: str
    accession_number: str
    modality: str
    instance_count: int
    total_size: int
    conflict_count: int
    first_received_at: datetime
    last_received_at: datetime
    archived_at: datetime | None
    archived_to: str


@dataclass(frozen=True)
class SeriesEntry:
    series_instance_uid: str
    series_number: int | None
    modality: str
    instance_count: int


@dataclass(frozen=True)
class ConflictEntry:
    sop_instance_uid: str
    against: str
    digest: str
    received_at: datetime


@dataclass(frozen=True)
class StudyDetail:
    """A prearchive study with its series (while not archived) and its conflicts."""

    study: StudyEntry
    series: tuple[SeriesEntry, ...]
    conflicts: tuple[ConflictEntry, ...]


@dataclass(frozen=True)
class SweepReport:
    ready: int
    archived: tuple[ArchiveOutcome, ...]
    refused: tuple[tuple[int, str], ...]


def list_studies(
    db: Session, state: str | None = None, project: str | None = None, unassigned: bool = False
) -> list[StudyEntry]:
    if state is not None and state not in STATES:
        raise Invalid(f"unknown prearchive state {state!r}; use one of {', '.join(STATES)}")
    query = select(PrearchiveStudy).order_by(PrearchiveStudy.id)
    if state is not None:
        query = query.where(PrearchiveStudy.state == state)
    if project is not None:
        query = query.where(PrearchiveStudy.project == project)
    if unassigned:
        query = query.where(PrearchiveStudy.project.is_(None))
    return [_entry(row) for row in db.scalars(query)]


def show_study(db: Session, study_id: int) -> StudyDetail:
    study = _find(db, study_id)
    series = db.execute(
        select(
            PrearchiveInstance.series_instance_uid,
            func.min(PrearchiveInstance.series_number),
            func.min(PrearchiveInstance.modality),
            func.count(),
        )
        .where(PrearchiveInstance.study_id == study_id)
        .group_by(PrearchiveInstance.series_instance_uid)
        .order_by(func.min(PrearchiveInstance.series_number))
    ).all()
    conflicts = db.scalars(
        select(PrearchiveConflict)
        .where(PrearchiveConflict.study_id == study_id)
        .order_by(PrearchiveConflict.id)
    )
    return StudyDetail(
        _entry(study),
        tuple(SeriesEntry(uid, number, modality, count) for uid, number, modality, count in series),
        tuple(
            ConflictEntry(c.sop_instance_uid, c.against, c.digest, c.received_at) for c in conflicts
        ),
    )


def move_study(
    db: Session, study_id: int, project: str, subject: str | None, session: str | None
) -> StudyEntry:
    """Assign a study to a project (and labels); it is then ready to archive."""
    study = _find(db, study_id)
    if study.state == "archived":
        raise Conflict(f"prearchive study {study_id} is already archived to {study.archived_to}")
    find_project(db, project)
    for label, level in ((subject, "subject"), (session, "session")):
        if label is not None:
            check_label(label, level)
    study.project = project
    if session is not None:
        study.session, study.session_derived = session, False
    elif subject is not None and study.session_derived:
        study.session = derived_session(subject, study.study_date, study.study_instance_uid)
    study.subject = subject or study.subject
    if not (study.subject and study.session):
        raise Invalid(
            f"prearchive study {study_id} has no subject or session label from its headers; "
            "give them with --subject and --session"
        )
    study.rule = "moved by hand"
    study.state, study.reason = "ready", ""
    db.flush()
    return _entry(study)


def delete_study(depot: Depot, study_id: int) -> StudyEntry:
    """Remove a study and its instances from the prearchive; blobs nothing else uses go too."""
    with depot.transaction() as db:
        study = _find(db, study_id)
        entry = _entry(study)
        digests = set(
            db.scalars(
                select(PrearchiveInstance.digest).where(PrearchiveInstance.study_id == study_id)
            )
        ) | set(
            db.scalars(
                select(PrearchiveConflict.digest).where(PrearchiveConflict.study_id == study_id)
            )
        )
        db.delete(study)
    collect(depot.engine, depot.blobs, candidates=sorted(digests))
    return entry


def archive(
    depot: Depot, study_id: int, registry: PipelineRegistry | None, requested_by: str
) -> ArchiveOutcome:
    """Archive one study; a refusal is recorded on the study (state error) and raised."""
    try:
        with depot.transaction() as db:
            return archive_study(db, depot.blobs, study_id, registry, requested_by)
    except ArchiveRefused as refused:
        with depot.transaction() as db:
            db.execute(
                update(PrearchiveStudy)
                .where(PrearchiveStudy.id == study_id)
                .values(state="error", reason=refused.reason)
            )
        raise


def set_archive_mode(db: Session, project: str, automatic: bool) -> None:
    find_project(db, project).auto_archive = automatic


def sweep(
    depot: Depot,
    registry: PipelineRegistry | None,
    quiet_s: float,
    now: datetime | None = None,
) -> SweepReport:
    """Mark quiet studies ready, then archive the ready ones of automatic projects."""
    now = now or utcnow()
    with depot.transaction() as db:
        ready = db.execute(
            update(PrearchiveStudy)
            .where(
                PrearchiveStudy.state == "receiving",
                PrearchiveStudy.last_received_at < now - timedelta(seconds=quiet_s),
            )
            .values(state="ready")
        ).rowcount
        modes = {
            label: auto for label, auto in db.execute(select(Project.label, Project.auto_archive))
        }
        candidates = db.execute(
            select(PrearchiveStudy.id, PrearchiveStudy.project).where(
                PrearchiveStudy.state == "ready", PrearchiveStudy.project.is_not(None)
            )
        ).all()
    archived, refused = [], []
    for study_id, project in candidates:
        if modes.get(project) is False:
            continue  # the project reviews its studies: they wait, ready
        try:
            archived.append(archive(depot, study_id, registry, "prearchive"))
        except (Invalid, Conflict) as problem:  # recorded on the study; the others go on
            refused.append((study_id, problem.message))
    return SweepReport(ready or 0, tuple(archived), tuple(refused))


def open_study_count(db: Session) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(PrearchiveStudy)
            .where(PrearchiveStudy.state.in_(OPEN_STATES))
        )
        or 0
    )


def _find(db: Session, study_id: int) -> PrearchiveStudy:
    study = db.get(PrearchiveStudy, study_id)
    if study is None:
        raise NotFound(
            f"prearchive study {study_id} does not exist; see `neurodepot prearchive list`"
        )
    return study


def _entry(row: PrearchiveStudy) -> StudyEntry:
    return StudyEntry(**{f.name: getattr(row, f.name) for f in fields(StudyEntry)})
