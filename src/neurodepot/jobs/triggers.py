"""Pipelines a project runs by itself on every newly archived session.

The project's list is ordered; a pipeline that declares `after` (QC after convert) waits for
the job of that pipeline queued just before it for the same session, and fails if it fails.
The ingest capability calls `session_archived` when it archives a session.
"""

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.target import Level, Target
from neurodepot.errors import Invalid
from neurodepot.jobs import records
from neurodepot.jobs.models import ProjectPipeline
from neurodepot.jobs.registry import PipelineRegistry


def set_project_pipelines(
    db: Session,
    registry: PipelineRegistry,
    project: str,
    pipelines: list[tuple[str, dict[str, Any]]],
) -> list[tuple[str, dict[str, Any]]]:
    """Replace the project's list; each pipeline must run on sessions and its `after` come first."""
    owner = find_project(db, project)
    session = Target(project, "subject", "session")
    checked: list[tuple[str, dict[str, Any]]] = []
    for name, params in pipelines:
        pipeline = registry.get(name)
        if Level.SESSION not in pipeline.levels:
            raise Invalid(f"pipeline {name!r} does not run on sessions; it cannot be automatic")
        earlier = {n for n, _ in checked}
        missing = [needed for needed in pipeline.after if needed not in earlier]
        if missing:
            raise Invalid(f"pipeline {name!r} runs after {', '.join(missing)}: list that first")
        checked.append((name, pipeline.check(session, params)))
    db.execute(delete(ProjectPipeline).where(ProjectPipeline.project_id == owner.id))
    for position, (name, params) in enumerate(checked):
        db.add(
            ProjectPipeline(project_id=owner.id, position=position, pipeline=name, params=params)
        )
    db.flush()
    return checked


def project_pipelines(db: Session, project: str) -> list[tuple[str, dict[str, Any]]]:
    owner = find_project(db, project)
    rows = db.scalars(
        select(ProjectPipeline)
        .where(ProjectPipeline.project_id == owner.id)
        .order_by(ProjectPipeline.position)
    )
    return [(row.pipeline, dict(row.params)) for row in rows]


def session_archived(
    db: Session, registry: PipelineRegistry, session: Target, requested_by: str
) -> list[records.JobInfo]:
    """Queue the project's automatic pipelines for a newly archived session, in order."""
    if session.level is not Level.SESSION:
        raise Invalid(f"{session} is not a session")
    queued: list[records.JobInfo] = []
    latest: dict[str, int] = {}
    for name, params in project_pipelines(db, session.project):
        pipeline = registry.get(name)
        after = next((latest[n] for n in reversed(pipeline.after) if n in latest), None)
        job = records.create_job(db, registry, name, session, params, requested_by, after)
        latest[name] = job.id
        queued.append(job)
    return queued
