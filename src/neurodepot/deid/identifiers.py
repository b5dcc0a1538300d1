"""What identifies a project's participants inside the centre: what the checker must not find.

Subject and session labels come from the catalog (as they are and as a BIDS export writes
them); patient names and IDs, accession numbers,
birth and study dates from the prearchive's record of each study and from the first DICOM
header of each session (data imported in other ways has no prearchive row). A patient name
counts whole and by its parts (family, given names), since either identifies.
"""

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.models import ImagingSession, Scan, Subject
from neurodepot.catalog.walk import scan_files
from neurodepot.convert.bids_mapping import bids_label
from neurodepot.convert.nifti import DICOM_RESOURCE
from neurodepot.deid.check import Identifier
from neurodepot.depot.blobstore import BlobStore
from neurodepot.ingest.models import PrearchiveStudy

MIN_PART_LENGTH = 3
# DICOM attributes that name the person or the visit, read from one header per session.
HEADER_IDENTIFIERS = {
    "PatientName": "patient name",
    "PatientID": "patient ID",
    "OtherPatientIDs": "patient ID",
    "AccessionNumber": "accession number",
    "StudyID": "study ID",
}
HEADER_DATES = ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate")


def _name_parts(name: str) -> list[str]:
    parts = [p.strip() for p in name.replace("=", "^").split("^")]
    return [p for p in parts if len(p) >= MIN_PART_LENGTH]


def _add(found: dict[str, str], value: str, kind: str) -> None:
    """Keep the first kind seen of each value (compared without case)."""
    value = value.strip()
    if value:
        found.setdefault(value.casefold(), f"{kind}\t{value}")


def _parse_da(value: str) -> date | None:
    try:
        return datetime.strptime(value.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def project_identifiers(
    db: Session, blobs: BlobStore, project: str, consent_ids: Iterable[str] = ()
) -> tuple[tuple[Identifier, ...], tuple[date, ...]]:
    """The project's internal identifiers and the original dates of its participants."""
    owner = find_project(db, project)
    found: dict[str, str] = {}
    dates: set[date] = set()
    for label in db.scalars(select(Subject.label).where(Subject.project_id == owner.id)):
        _add(found, label, "subject label")
        _add(found, bids_label(label), "subject label")
    sessions = db.execute(
        select(ImagingSession.id, ImagingSession.label, ImagingSession.acquired_on).where(
            ImagingSession.project_id == owner.id
        )
    ).all()
    for _, label, acquired in sessions:
        _add(found, label, "session label")
        _add(found, bids_label(label), "session label")
        if acquired is not None:
            dates.add(acquired)
    for study in db.scalars(select(PrearchiveStudy).where(PrearchiveStudy.project == project)):
        _add(found, study.patient_id, "patient ID")
        _add(found, study.patient_name, "patient name")
        for part in _name_parts(study.patient_name):
            _add(found, part, "patient name part")
        _add(found, study.accession_number, "accession number")
        if study.study_date is not None:
            dates.add(study.study_date)
    for scan_date in db.scalars(
        select(Scan.acquired_on)
        .join(ImagingSession, ImagingSession.id == Scan.session_id)
        .where(ImagingSession.project_id == owner.id, Scan.acquired_on.is_not(None))
        .distinct()
    ):
        dates.add(scan_date)
    _from_headers(db, blobs, [s[0] for s in sessions], found, dates)
    for consent_id in consent_ids:
        _add(found, consent_id, "consent ID")
    identifiers = tuple(
        Identifier(value, kind) for kind, value in (v.split("\t", 1) for v in found.values())
    )
    return identifiers, tuple(sorted(dates))


def _from_headers(
    db: Session, blobs: BlobStore, session_ids: list[int], found: dict[str, str], dates: set[date]
) -> None:
    """Read one DICOM header (no pixel data) of each session."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    first_scans = db.execute(
        select(Scan.session_id, Scan.id).where(Scan.session_id.in_(session_ids)).order_by(Scan.id)
    ).all()
    scan_of: dict[int, int] = {}
    for session_id, scan_id in first_scans:
        scan_of.setdefault(session_id, scan_id)
    files = scan_files(db, list(scan_of.values()), DICOM_RESOURCE)
    for rows in files.values():
        if not rows:
            continue
        try:
            with blobs.open(rows[0].digest) as handle:
                ds = dcmread(handle, stop_before_pixels=True, force=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        for keyword, kind in HEADER_IDENTIFIERS.items():
            value = ds.get(keyword)
            if value is None:
                continue
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                if keyword == "StudyID" and len(str(item).strip()) < MIN_PART_LENGTH:
                    continue  # a scanner's study counter ("1"), not a person's identifier
                _add(found, str(item), kind)
                if keyword == "PatientName":
                    for part in _name_parts(str(item)):
                        _add(found, part, "patient name part")
        for keyword in HEADER_DATES:
            parsed = _parse_da(str(ds.get(keyword, "") or ""))
            if parsed is not None:
                dates.add(parsed)
