"""A retention date per project, and the report of what is held past it.

The date is the last day the project's data may be kept (GDPR article 5(1)(e)); it lives in
the project's record of processing. The report names each project past its date on a given
day, with how many subjects and files it still holds, so that someone can decide to erase,
anonymise or extend. Nothing is deleted automatically: that is a person's decision.
"""

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.models import ImagingSession, Project, Resource, ResourceFile, Scan, Subject
from neurodepot.consent.models import ProcessingRecord
from neurodepot.consent.processing import ProcessingInfo, get_processing, processing_row
from neurodepot.depot.orm import utcnow
from neurodepot.errors import Invalid

DAY_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class RetentionEntry:
    """A project past its retention date, and what it still holds."""

    project: str
    retention_until: date
    days_past: int
    subjects: int
    files: int
    bytes: int


@dataclass(frozen=True)
class RetentionReport:
    """Projects past their retention date on `on`, and those that have no date at all."""

    on: date
    past: list[RetentionEntry]
    without_date: list[str]


def parse_day(value: str, what: str = "date") -> date:
    """`value` as an ISO day (YYYY-MM-DD); future days are fine here. Raises `Invalid`."""
    text = value.strip()
    try:
        if not DAY_PATTERN.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{what} {value!r} is not a day: give it as YYYY-MM-DD") from None


def set_retention(db: Session, actor: str, project: str, until: date | None) -> ProcessingInfo:
    """Set (or, with None, clear) the last day `project`'s data may be kept; audited."""
    owner = find_project(db, project)
    row = processing_row(db, owner.id, create=True)
    assert row is not None
    row.retention_until = until
    row.updated_by, row.updated_at = actor, utcnow()
    db.flush()
    shown = None if until is None else until.isoformat()
    audit.record(db, actor, "retention_set", project, {"until": shown})
    return get_processing(db, project)


def retention_report(db: Session, on: date | None = None) -> RetentionReport:
    """Projects whose retention date is before `on` (default today), most overdue first."""
    on = on or date.today()
    rows = db.execute(
        select(Project.id, Project.label, ProcessingRecord.retention_until)
        .outerjoin(ProcessingRecord, ProcessingRecord.project_id == Project.id)
        .order_by(Project.label)
    ).all()
    past = []
    for project_id, label, until in rows:
        if until is None or until >= on:
            continue
        files, size = project_files(db, project_id)
        subjects = db.scalar(
            select(func.count()).select_from(Subject).where(Subject.project_id == project_id)
        )
        past.append(RetentionEntry(label, until, (on - until).days, subjects or 0, files, size))
    past.sort(key=lambda e: (e.retention_until, e.project))
    without = [label for _, label, until in rows if until is None]
    return RetentionReport(on, past, without)


def project_files(db: Session, project_id: int) -> tuple[int, int]:
    """How many files the project holds at every level, and their total size in bytes."""
    sessions = select(ImagingSession.id).where(ImagingSession.project_id == project_id)
    owned = select(Resource.id).where(
        or_(
            Resource.project_id == project_id,
            Resource.subject_id.in_(select(Subject.id).where(Subject.project_id == project_id)),
            Resource.session_id.in_(sessions),
            Resource.scan_id.in_(select(Scan.id).where(Scan.session_id.in_(sessions))),
        )
    )
    count, size = db.execute(
        select(func.count(), func.coalesce(func.sum(ResourceFile.size), 0)).where(
            ResourceFile.resource_id.in_(owned)
        )
    ).one()
    return int(count), int(size)
