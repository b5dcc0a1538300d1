"""Creating, finding, listing and deleting projects, subjects, sessions and scans.

Functions take an open SQLAlchemy session (the caller owns the transaction) and raise
`NotFound`, `Conflict` or `Invalid` with messages that name the offending label.
"""

from collections.abc import Callable
from dataclasses import fields
from datetime import date
from typing import TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from neurodepot.catalog.identifiers import check_label
from neurodepot.catalog.models import ImagingSession, Project, Scan, Subject
from neurodepot.catalog.records import ProjectInfo, ScanInfo, SessionInfo, SubjectInfo
from neurodepot.catalog.target import Target
from neurodepot.errors import Conflict, NotFound

Row = TypeVar("Row")


def _insert(db: Session, row: Row, clash: str) -> Row:
    """Add `row`; a uniqueness race another writer won becomes a `Conflict`, not a traceback."""
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
    except IntegrityError:
        raise Conflict(clash) from None
    return row


def find_project(db: Session, label: str) -> Project:
    project = db.scalar(select(Project).where(Project.label == label))
    if project is None:
        raise NotFound(f"project {label!r} does not exist; `neurodepot project list` shows them")
    return project


def find_subject(db: Session, project: str, label: str) -> Subject:
    owner = find_project(db, project)
    subject = db.scalar(
        select(Subject).where(Subject.project_id == owner.id, Subject.label == label)
    )
    if subject is None:
        raise NotFound(f"subject {label!r} does not exist in project {project!r}")
    return subject


def find_session(db: Session, project: str, subject: str, label: str) -> ImagingSession:
    owner = find_subject(db, project, subject)
    session = db.scalar(
        select(ImagingSession).where(
            ImagingSession.subject_id == owner.id, ImagingSession.label == label
        )
    )
    if session is None:
        raise NotFound(f"session {label!r} does not exist for subject {project}/{subject}")
    return session


def find_scan(db: Session, project: str, subject: str, session: str, label: str) -> Scan:
    owner = find_session(db, project, subject, session)
    scan = db.scalar(select(Scan).where(Scan.session_id == owner.id, Scan.label == label))
    if scan is None:
        raise NotFound(f"scan {label!r} does not exist in session {project}/{subject}/{session}")
    return scan


def find_target(db: Session, target: Target) -> Project | Subject | ImagingSession | Scan:
    """The row `target` names, raising `NotFound` for the first level that is missing."""
    if target.scan is not None:
        assert target.subject is not None and target.session is not None
        return find_scan(db, target.project, target.subject, target.session, target.scan)
    if target.session is not None:
        assert target.subject is not None
        return find_session(db, target.project, target.subject, target.session)
    if target.subject is not None:
        return find_subject(db, target.project, target.subject)
    return find_project(db, target.project)


# --- projects -------------------------------------------------------------------------------


def create_project(db: Session, label: str, name: str = "", description: str = "") -> ProjectInfo:
    check_label(label, "project")
    clash = f"project {label!r} already exists; choose another label"
    if db.scalar(select(Project.id).where(Project.label == label)) is not None:
        raise Conflict(clash)
    project = _insert(db, Project(label=label, name=name or label, description=description), clash)
    return _project_info(project, 0)


def get_project(db: Session, label: str) -> ProjectInfo:
    project = find_project(db, label)
    return _project_info(project, _count(db, Subject.project_id == project.id, Subject))


def list_projects(
    db: Session,
    where: ColumnElement[bool] | None = None,
    counted: ColumnElement[bool] | None = None,
) -> list[ProjectInfo]:
    """Every project, or those `where` holds for (the access policy's listing filter).

    Each with the number of its subjects that `counted` holds for (those the caller may see).
    """
    count_query = select(Subject.project_id, func.count()).group_by(Subject.project_id)
    if counted is not None:
        count_query = count_query.where(counted)
    counts = dict(db.execute(count_query).all())
    query = select(Project).order_by(Project.label)
    if where is not None:
        query = query.where(where)
    projects = db.scalars(query)
    return [_project_info(p, counts.get(p.id, 0)) for p in projects]


def project_contents(db: Session, label: str) -> tuple[int, int]:
    """How many subjects and files a project holds, so a delete can say what it would remove."""
    from neurodepot.catalog.resources import project_file_digests

    project = find_project(db, label)
    subjects = _count(db, Subject.project_id == project.id, Subject)
    return subjects, len(project_file_digests(db, project.id))


def _project_info(project: Project, subject_count: int) -> ProjectInfo:
    return ProjectInfo(
        label=project.label,
        name=project.name,
        description=project.description,
        created_at=project.created_at,
        subject_count=subject_count,
    )


# --- subjects -------------------------------------------------------------------------------


def create_subject(db: Session, project: str, label: str) -> SubjectInfo:
    check_label(label, "subject")
    owner = find_project(db, project)
    clash = f"subject {label!r} already exists in project {project!r}"
    if db.scalar(select(Subject.id).where(Subject.project_id == owner.id, Subject.label == label)):
        raise Conflict(clash)
    subject = _insert(db, Subject(project_id=owner.id, label=label), clash)
    return SubjectInfo(project, subject.label, subject.created_at, 0)


def list_subjects(db: Session, project: str) -> list[SubjectInfo]:
    owner = find_project(db, project)
    counts = _counts_by(db, ImagingSession.subject_id, ImagingSession.project_id == owner.id)
    subjects = db.scalars(
        select(Subject).where(Subject.project_id == owner.id).order_by(Subject.label)
    )
    return [SubjectInfo(project, s.label, s.created_at, counts.get(s.id, 0)) for s in subjects]


def get_subject(db: Session, project: str, label: str) -> SubjectInfo:
    subject = find_subject(db, project, label)
    count = _count(db, ImagingSession.subject_id == subject.id, ImagingSession)
    return SubjectInfo(project, subject.label, subject.created_at, count)


# --- sessions -------------------------------------------------------------------------------


def create_session(
    db: Session,
    project: str,
    subject: str,
    label: str,
    modality: str = "",
    acquired_on: date | None = None,
) -> SessionInfo:
    check_label(label, "session")
    owner = find_subject(db, project, subject)
    clash = f"session {label!r} already exists in project {project!r} (labels are per project)"
    if db.scalar(
        select(ImagingSession.id).where(
            ImagingSession.project_id == owner.project_id, ImagingSession.label == label
        )
    ):
        raise Conflict(clash)
    row = ImagingSession(
        project_id=owner.project_id,
        subject_id=owner.id,
        label=label,
        modality=modality.upper(),
        acquired_on=acquired_on,
    )
    return _session_info(_insert(db, row, clash), project, subject, 0)


def list_sessions(db: Session, project: str, subject: str) -> list[SessionInfo]:
    owner = find_subject(db, project, subject)
    counts = _counts_by(
        db,
        Scan.session_id,
        Scan.session_id.in_(select(ImagingSession.id).where(ImagingSession.subject_id == owner.id)),
    )
    rows = db.scalars(
        select(ImagingSession)
        .where(ImagingSession.subject_id == owner.id)
        .order_by(ImagingSession.label)
    )
    return [_session_info(r, project, subject, counts.get(r.id, 0)) for r in rows]


def get_session(db: Session, project: str, subject: str, label: str) -> SessionInfo:
    row = find_session(db, project, subject, label)
    return _session_info(row, project, subject, _count(db, Scan.session_id == row.id, Scan))


def _session_info(row: ImagingSession, project: str, subject: str, scans: int) -> SessionInfo:
    return SessionInfo(
        project, subject, row.label, row.modality, row.acquired_on, row.created_at, scans
    )


# --- scans ----------------------------------------------------------------------------------


def create_scan(
    db: Session,
    project: str,
    subject: str,
    session: str,
    label: str,
    type: str = "",
    modality: str = "",
) -> ScanInfo:
    check_label(label, "scan")
    owner = find_session(db, project, subject, session)
    clash = f"scan {label!r} already exists in session {project}/{subject}/{session}"
    if db.scalar(select(Scan.id).where(Scan.session_id == owner.id, Scan.label == label)):
        raise Conflict(clash)
    row = _insert(
        db,
        Scan(session_id=owner.id, label=label, type=type, modality=modality.upper()),
        clash,
    )
    return _scan_info(row, project, subject, session)


def list_scans(db: Session, project: str, subject: str, session: str) -> list[ScanInfo]:
    owner = find_session(db, project, subject, session)
    rows = db.scalars(select(Scan).where(Scan.session_id == owner.id).order_by(Scan.id))
    return [_scan_info(r, project, subject, session) for r in rows]


def get_scan(db: Session, project: str, subject: str, session: str, label: str) -> ScanInfo:
    return _scan_info(find_scan(db, project, subject, session, label), project, subject, session)


_SCAN_COLUMNS = [f.name for f in fields(ScanInfo)][3:]


def _scan_info(row: Scan, project: str, subject: str, session: str) -> ScanInfo:
    return ScanInfo(project, subject, session, *(getattr(row, name) for name in _SCAN_COLUMNS))


# --- counting -------------------------------------------------------------------------------


def _count(db: Session, condition: object, model: Callable[..., object]) -> int:
    return db.scalar(select(func.count()).select_from(model).where(condition)) or 0  # type: ignore[arg-type]


def _counts_by(db: Session, column: object, condition: object) -> dict[int, int]:
    rows = db.execute(select(column, func.count()).where(condition).group_by(column))  # type: ignore[call-overload]
    return {key: count for key, count in rows.all()}
