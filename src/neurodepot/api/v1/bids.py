"""A project as BIDS: the naming preview, and the whole dataset as a streamed zip."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from neurodepot.api.guard import CanRead, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS
from neurodepot.consent.records import withdrawn_labels
from neurodepot.convert.bids_export import stream_zip
from neurodepot.convert.bids_plan import SeriesPreview, plan_project

router = APIRouter(tags=["bids"], responses=GUARDED_ERRORS)
Subjects = Annotated[list[str] | None, Query(description="Only these subjects.")]


@router.get("/projects/{project}/bids/preview", dependencies=[CanRead])
def bids_preview(depot: DepotDep, project: str, subject: Subjects = None) -> list[SeriesPreview]:
    """Per series: the BIDS name it gets, the rule that named it, or why it has none."""
    with depot.reading() as db:
        return list(plan_project(db, depot.blobs, project, subject or ()).preview)


@router.get(
    "/projects/{project}/bids.zip",
    dependencies=[CanRead],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def bids_zip(depot: DepotDep, project: str, subject: Subjects = None) -> StreamingResponse:
    """The project as a BIDS dataset in a zip, produced while it is sent (memory stays flat).

    Subjects who withdrew consent are left out, as from every export.
    """
    with depot.reading() as db:
        withdrawn = withdrawn_labels(db, project)
        plan = plan_project(db, depot.blobs, project, subject or (), withdrawn=withdrawn)
    return StreamingResponse(
        stream_zip(plan, depot.blobs, f"{project}-bids"),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{project}-bids.zip"'},
    )
