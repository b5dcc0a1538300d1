"""Pipeline jobs: list, create, read (with live progress), cancel; and the pipelines on offer."""

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from neurodepot.access.policy import Action
from neurodepot.api.guard import CanCreate, CanRead, CanUpdate, DepotDep, ensure_on_target
from neurodepot.api.schemas import GUARDED_ERRORS, RowId
from neurodepot.catalog.target import Target
from neurodepot.jobs import records
from neurodepot.jobs.records import JobInfo
from neurodepot.jobs.registry import PipelineRegistry

router = APIRouter(tags=["jobs"], responses=GUARDED_ERRORS)


class JobIn(BaseModel):
    pipeline: str
    target: str = Field(description="PROJECT[/SUBJECT[/SESSION[/SCAN]]]")
    params: dict[str, Any] = {}


class PipelineOut(BaseModel):
    name: str
    version: str
    levels: list[str]
    outputs: list[str]
    max_attempts: int
    description: str


def _registry(request: Request) -> PipelineRegistry:
    registry: PipelineRegistry = request.app.state.registry
    return registry


@router.get("/pipelines", dependencies=[CanRead])
def list_pipelines(request: Request) -> list[PipelineOut]:
    return [
        PipelineOut(
            name=p.name,
            version=p.version,
            levels=sorted(level.value for level in p.levels),
            outputs=list(p.outputs),
            max_attempts=p.max_attempts,
            description=p.description,
        )
        for p in _registry(request)
    ]


@router.get("/jobs", dependencies=[CanRead])
def list_jobs(
    depot: DepotDep,
    status: str | None = None,
    pipeline: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[JobInfo]:
    with depot.reading() as db:
        return records.list_jobs(db, status, pipeline, limit)


@router.post("/jobs", status_code=201, dependencies=[CanCreate])
def create_job(body: JobIn, request: Request, depot: DepotDep) -> JobInfo:
    """Queue a job; it starts when a worker is free (poll `GET /jobs/{id}` for progress)."""
    principal = request.state.principal
    target = Target.parse(body.target)
    ensure_on_target(request, Action.CREATE, target)  # the target is in the body, not the path
    with depot.transaction() as db:
        return records.create_job(
            db, _registry(request), body.pipeline, target, body.params, principal.name
        )


@router.get("/jobs/{job_id}", dependencies=[CanRead])
def get_job(job_id: RowId, depot: DepotDep) -> JobInfo:
    with depot.reading() as db:
        return records.get_job(db, job_id)


@router.post("/jobs/{job_id}/cancel", dependencies=[CanUpdate])
def cancel_job(job_id: RowId, depot: DepotDep) -> JobInfo:
    with depot.transaction() as db:
        return records.cancel_job(db, job_id)
