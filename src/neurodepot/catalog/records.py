"""Immutable views of catalog rows, handed to the CLI and the API instead of ORM objects."""

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class ProjectInfo:
    label: str
    name: str
    description: str
    created_at: datetime
    subject_count: int = 0


@dataclass(frozen=True)
class SubjectInfo:
    project: str
    label: str
    created_at: datetime
    session_count: int = 0


@dataclass(frozen=True)
class SessionInfo:
    project: str
    subject: str
    label: str
    modality: str
    acquired_on: date | None
    created_at: datetime
    scan_count: int = 0


@dataclass(frozen=True)
class ScanInfo:
    """A scan; the acquisition fields are filled for series archived from DICOM."""

    project: str
    subject: str
    session: str
    label: str
    type: str
    modality: str
    created_at: datetime
    series_instance_uid: str | None = None
    series_number: int | None = None
    series_description: str = ""
    protocol: str = ""
    image_type: str = ""
    sop_class_uid: str = ""
    instance_count: int = 0
    manufacturer: str = ""
    model: str = ""
    field_strength: float | None = None
    acquired_on: date | None = None
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    flip_angle: float | None = None
    voxel_size: str = ""
    matrix: str = ""


@dataclass(frozen=True)
class FileInfo:
    path: str
    digest: str
    size: int
    content_type: str
    created_at: datetime


@dataclass(frozen=True)
class ResourceInfo:
    target: str
    label: str
    file_count: int
    total_size: int
    created_at: datetime
    files: tuple[FileInfo, ...] = ()


@dataclass(frozen=True)
class StoredFile:
    """What adding a file did: `created`, `unchanged` (same content re-sent) or `replaced`."""

    target: str
    resource: str
    file: FileInfo
    outcome: str
