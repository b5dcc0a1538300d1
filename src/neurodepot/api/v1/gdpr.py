"""GDPR over HTTP: a subject's access export and erasure, the record of processing, retention.

The same domain functions as `neurodepot gdpr`. Exporting and erasing a subject are for those
who administer its project (owners, site admins); the record of processing is read by the
project's team and changed by its owners; the retention report spans the depot (site admins).
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from neurodepot.access.policy import Principal
from neurodepot.api.guard import CanAdminister, CanRead, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS
from neurodepot.consent.erasure import ErasureSummary, erase_subject
from neurodepot.consent.processing import (
    LIMITS,
    MAX_CATEGORIES,
    processing_markdown,
    processing_summary,
    set_processing,
)
from neurodepot.consent.retention import RetentionReport, parse_day, retention_report, set_retention
from neurodepot.consent.subject_export import plan_export, stream_export

router = APIRouter(tags=["gdpr"], responses=GUARDED_ERRORS)
NO_STORE = {"Cache-Control": "no-store"}


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: str = Field(max_length=64, description="The subject's label again, to confirm.")


class ProcessingIn(BaseModel):
    """What to change; a field left out stays as it is (`retention_until: null` clears it)."""

    model_config = ConfigDict(extra="forbid")

    purpose: str | None = Field(None, max_length=LIMITS["purpose"])
    lawful_basis: str | None = Field(None, max_length=LIMITS["lawful_basis"])
    data_categories: list[str] | None = Field(None, max_length=MAX_CATEGORIES)
    controller: str | None = Field(None, max_length=LIMITS["controller"])
    retention_until: str | None = Field(
        None, max_length=10, description="The last day the data may be kept (YYYY-MM-DD)."
    )


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


@router.get(
    "/projects/{project}/subjects/{subject}/access-export",
    dependencies=[CanAdminister],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def access_export(
    request: Request, depot: DepotDep, project: str, subject: str
) -> StreamingResponse:
    """Everything held about the subject, with its audit trail, as a zip streamed while sent."""
    plan = plan_export(depot, _principal(request).name, project, subject)
    return StreamingResponse(
        stream_export(plan, depot.blobs),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{plan.root}-access-export.zip"',
            **NO_STORE,
        },
    )


@router.post("/projects/{project}/subjects/{subject}/erase", dependencies=[CanAdminister])
def erase(
    request: Request, depot: DepotDep, project: str, subject: str, body: EraseIn
) -> ErasureSummary:
    """Erase the subject, its files and the blobs only it used; lists releases to act on."""
    return erase_subject(depot, _principal(request).name, project, subject, body.confirm)


@router.get(
    "/projects/{project}/processing",
    dependencies=[CanRead],
    response_model=None,
    responses={200: {"content": {"application/json": {}, "text/markdown": {}}}},
)
def get_processing(
    depot: DepotDep,
    project: str,
    output: Annotated[Literal["json", "markdown"], Query(alias="format")] = "json",
) -> Response:
    """The project's record of processing, as JSON or (`?format=markdown`) as Markdown."""
    with depot.reading() as db:
        summary = processing_summary(db, project)
    if output == "markdown":
        return PlainTextResponse(
            processing_markdown(summary), media_type="text/markdown; charset=utf-8"
        )
    return JSONResponse(summary)


@router.put("/projects/{project}/processing", dependencies=[CanAdminister])
def put_processing(
    request: Request, depot: DepotDep, project: str, body: ProcessingIn
) -> dict[str, Any]:
    """Change purpose, lawful basis, data categories, controller and retention date."""
    actor = _principal(request).name
    retention = body.retention_until
    until = None if retention is None else parse_day(retention, "retention date")
    with depot.transaction() as db:
        set_processing(
            db, actor, project, body.purpose, body.lawful_basis, body.data_categories,
            body.controller,
        )  # fmt: skip
        if "retention_until" in body.model_fields_set:
            set_retention(db, actor, project, until)
        return processing_summary(db, project)


@router.get("/retention", dependencies=[CanAdminister])
def get_retention(
    depot: DepotDep,
    on: Annotated[
        str | None, Query(max_length=10, description="YYYY-MM-DD; default today.")
    ] = None,
) -> RetentionReport:
    """Projects past their retention date (on `on`), with what they still hold."""
    day = None if on is None else parse_day(on, "report date")
    with depot.reading() as db:
        return retention_report(db, day)
