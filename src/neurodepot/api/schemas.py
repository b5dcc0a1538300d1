"""Request bodies of `/api/v1`.

Responses are the catalog's frozen records (`neurodepot.catalog.records`), never ORM models.
"""

from datetime import date
from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, Field

# A database row id in a path: a number the database can hold (PostgreSQL's 32-bit integer),
# so that a larger one is a 422 and not a failure of the query.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A row id (1 to 2^31-1).")]


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
