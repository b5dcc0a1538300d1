"""Request bodies of `/api/v1`.

Responses are the catalog's frozen records (`neurodepot.catalog.records`), never ORM models.
"""

from datetime import date

from pydantic import BaseModel, Field


class ProjectIn(BaseModel):
    label: str = Field(description="Project ID: letters, digits, '_' or '-'.")
    name: str = ""
    description: str = ""


class SubjectIn(BaseModel):
    label: str


class SessionIn(BaseModel):
    label: str
    modality: str = ""
    acquired_on: date | None = None


class ScanIn(BaseModel):
    label: str
    type: str = ""
    modality: str = ""


class ResourceIn(BaseModel):
    label: str


class Health(BaseModel):
    status: str
    version: str
    schema_revision: str | None
