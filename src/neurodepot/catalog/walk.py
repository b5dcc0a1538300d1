"""The scans under a target and the files of one of their resources, in one query each.

Conversion and export visit every scan of a project; walking the hierarchy row by row would
cost a query per level per scan.
"""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurodepot.catalog.hierarchy import find_target
from neurodepot.catalog.models import ImagingSession, Project, Resource, ResourceFile, Scan, Subject
from neurodepot.catalog.target import Level, Target

IDS_PER_QUERY = 500


@dataclass(frozen=True)
class ScanRow:
    """A scan with the labels that name it and the ORM row's acquisition facts."""

    target: Target
    scan_id: int
    session_id: int
    scan: Scan


@dataclass(frozen=True)
class FileRow:
    path: str
    digest: str
    size: int


def scans_under(db: Session, target: Target) -> list[ScanRow]:
    """Every scan at or under `target` (raises `NotFound` if it does not exist).

    Ordered by subject, session, then series number and label, so that a consumer numbering
    runs sees them in acquisition order within a session.
    """
    found = find_target(db, target)
    query = (
        select(Project.label, Subject.label, ImagingSession.label, Scan)
        .join(ImagingSession, ImagingSession.id == Scan.session_id)
        .join(Subject, Subject.id == ImagingSession.subject_id)
        .join(Project, Project.id == ImagingSession.project_id)
    )
    condition = {
        Level.PROJECT: Project.id,
        Level.SUBJECT: Subject.id,
        Level.SESSION: ImagingSession.id,
        Level.SCAN: Scan.id,
    }[target.level]
    query = query.where(condition == found.id).order_by(
        Subject.label, ImagingSession.label, Scan.series_number, Scan.label
    )
    return [
        ScanRow(Target(project, subject, session, scan.label), scan.id, scan.session_id, scan)
        for project, subject, session, scan in db.execute(query)
    ]


def scan_files(db: Session, scan_ids: list[int], label: str) -> dict[int, list[FileRow]]:
    """The files of resource `label` of each scan (scans without it are absent)."""
    files: dict[int, list[FileRow]] = {}
    for start in range(0, len(scan_ids), IDS_PER_QUERY):
        rows = db.execute(
            select(Resource.scan_id, ResourceFile.path, ResourceFile.digest, ResourceFile.size)
            .join(ResourceFile, ResourceFile.resource_id == Resource.id)
            .where(
                Resource.scan_id.in_(scan_ids[start : start + IDS_PER_QUERY]),
                Resource.label == label,
            )
            .order_by(Resource.scan_id, ResourceFile.path)
        )
        for scan_id, path, digest, size in rows:
            files.setdefault(scan_id, []).append(FileRow(path, digest, size))
    return files
