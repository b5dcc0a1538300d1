"""Request bodies of `/api/v1`, and the error responses its routes declare.

Responses are the catalog's frozen records (`neurodepot.catalog.records`), never ORM models.
Errors have one shape (`ErrorOut`, written by `api.exception_handlers`); each router declares
the statuses its routes answer with (`error_responses`), so that clients and schemathesis see
them in the OpenAPI schema.
"""

from datetime import date
from typing import Annotated, Any

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


class ErrorOut(BaseModel):
    """Every error: the kind (`Denied`, `NotFound`, …) and a message a person can act on."""

    error: str = Field(description="The kind of error, such as Denied or NotFound.")
    message: str


class ValidationProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str | None


class ValidationErrorOut(ErrorOut):
    """A malformed request (422): the message names each problem, `detail` lists them."""

    detail: list[ValidationProblem] = []


ERROR_MEANINGS = {
    400: "The body could not be read (JSON that is not UTF-8), or the link or token in it is "
    "not valid, was used already, or has expired.",
    401: "Signing in failed (the same answer whatever the reason).",
    403: "Denied: sign in, or the caller may not do this (or know that the target exists).",
    404: "There is no such thing (or the caller may not know it exists).",
    409: "The request clashes with what is stored.",
    413: "The request body is too large for this route.",
    422: "The request is malformed, or a value in it is not acceptable.",
    429: "Too many requests from this address: wait `Retry-After` seconds.",
    503: "A service the depot needs (database, storage, mail) is not available now.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a router whose routes answer with these error statuses."""
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": ValidationErrorOut if status == 422 else ErrorOut,
            "description": ERROR_MEANINGS[status],
        }
        if status == 429:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            }
        declared[status] = entry
    return declared


GUARDED_ERRORS = error_responses(400, 403, 404, 409, 413, 422)
"""What a guarded route may answer besides success (400 and 413 for a body it cannot take)."""
