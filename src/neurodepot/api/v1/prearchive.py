"""The prearchive (review, assign, archive, delete received studies) and bulk import."""

import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from neurodepot.api.guard import CanAdminister, CanCreate, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS, RowId
from neurodepot.depot.blobstore import CHUNK_SIZE
from neurodepot.ingest import prearchive as records
from neurodepot.ingest.archive import ArchiveOutcome
from neurodepot.ingest.bulk import ImportSummary, import_dicom
from neurodepot.ingest.prearchive import StudyDetail, StudyEntry
from neurodepot.ingest.receive import Override

router = APIRouter(tags=["prearchive"], responses=GUARDED_ERRORS)


class MoveIn(BaseModel):
    project: str
    subject: str | None = None
    session: str | None = None


@router.get("/prearchive", dependencies=[CanAdminister])
def list_prearchive(
    depot: DepotDep,
    state: str | None = None,
    project: str | None = None,
    unassigned: bool = False,
) -> list[StudyEntry]:
    with depot.reading() as db:
        return records.list_studies(db, state, project, unassigned)


@router.get("/prearchive/{study_id}", dependencies=[CanAdminister])
def show_prearchive_study(depot: DepotDep, study_id: RowId) -> StudyDetail:
    with depot.reading() as db:
        return records.show_study(db, study_id)


@router.post("/prearchive/{study_id}/archive", dependencies=[CanAdminister])
def archive_prearchive_study(depot: DepotDep, request: Request, study_id: RowId) -> ArchiveOutcome:
    principal = request.state.principal
    return records.archive(depot, study_id, request.app.state.registry, principal.name)


@router.post("/prearchive/{study_id}/move", dependencies=[CanAdminister])
def move_prearchive_study(depot: DepotDep, study_id: RowId, body: MoveIn) -> StudyEntry:
    with depot.transaction() as db:
        return records.move_study(db, study_id, body.project, body.subject, body.session)


@router.delete("/prearchive/{study_id}", dependencies=[CanAdminister])
def delete_prearchive_study(depot: DepotDep, study_id: RowId) -> StudyEntry:
    return records.delete_study(depot, study_id)


@router.post("/projects/{project}/import", dependencies=[CanCreate])
async def import_into_project(
    depot: DepotDep,
    request: Request,
    project: str,
    subject: str | None = None,
    session: str | None = None,
    prearchive: bool = Query(False, description="Leave the studies in the prearchive."),
) -> ImportSummary:
    """Import a zip or tar(.gz) of DICOM sent as the request body, streamed to disk first."""
    fd, name = tempfile.mkstemp(prefix="import-", dir=depot.settings.work_root)
    upload = Path(name)
    try:
        with os.fdopen(fd, "wb", buffering=CHUNK_SIZE) as handle:
            async for chunk in request.stream():
                await run_in_threadpool(handle.write, chunk)
        return await run_in_threadpool(
            import_dicom,
            depot,
            upload,
            Override(project, subject, session),
            not prearchive,
            request.app.state.registry,
            request.state.principal.name,
        )
    finally:
        upload.unlink(missing_ok=True)
