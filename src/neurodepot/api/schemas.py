"""Request and response bodies of `/api/v1`, apart from the ORM models."""

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ProjectIn(BaseModel):
    label: str = Field(description="Project ID: letters, digits, '_' or '-'.")
    name: str = ""
    description: str = ""


class ProjectOut(Out):
    label: str
    name: str
    description: str
    created_at: datetime
    subject_count: int


class SubjectIn(BaseModel):
    label: str


class SubjectOut(Out):
    project: str
    label: str
    created_at: datetime
    session_count: int


class SessionIn(BaseModel):
    label: str
    modality: str = ""
    acquired_on: date | None = None


class SessionOut(Out):
    project: str
    subject: str
    label: str
    modality: str
    acquired_on: date | None
    created_at: datetime
    scan_count: int


class ScanIn(BaseModel):
    label: str
    type: str = ""
    modality: str = ""


class ScanOut(Out):
    project: str
    subject: str
    session: str
    label: str
    type: str
    modality: str
    created_at: datetime


class ResourceIn(BaseModel):
    label: str


class FileOut(Out):
    path: str
    digest: str
    size: int
    content_type: str
    created_at: datetime


class ResourceOut(Out):
    target: str
    label: str
    file_count: int
    total_size: int
    created_at: datetime
    files: list[FileOut] = []


class StoredFileOut(Out):
    target: str
    resource: str
    file: FileOut
    outcome: str = Field(description="created, replaced or unchanged (same content re-sent).")


class Health(BaseModel):
    status: str
    version: str
    schema_revision: str | None
