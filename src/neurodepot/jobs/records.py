"""Job rows: creating, listing, and every state change, each one atomic.

State changes that race (a claim, a heartbeat, success after a lost lease) are conditional
updates on `(id, attempt, status)`, so the database decides who wins and no job runs twice.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from neurodepot.catalog.hierarchy import find_target
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict, NotFound
from neurodepot.jobs.models import Job
from neurodepot.jobs.registry import PipelineRegistry

FINISHED = ("succeeded", "failed", "cancelled")
MAX_LOG_CHARS = 200_000


@dataclass(frozen=True)
class JobInfo:
    id: int
    pipeline: str
    version: str
    target: str
    params: dict[str, Any]
    status: str
    progress: float
    message: str
    error: str
    outputs: list[str]
    requested_by: str
    attempt: int
    max_attempts: int
    cancel_requested: bool
    after_job_id: int | None
    worker: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    log: str = ""


def _info(job: Job, with_log: bool = False) -> JobInfo:
    return JobInfo(
        job.id, job.pipeline, job.version, job.target, dict(job.params), job.status,
        job.progress, job.message, job.error, list(job.outputs), job.requested_by, job.attempt,
        job.max_attempts, job.cancel_requested, job.after_job_id, job.worker, job.created_at,
        job.started_at, job.finished_at, job.log if with_log else "",
    )  # fmt: skip


def now() -> datetime:
    return datetime.now(UTC)


def create_job(
    db: Session,
    registry: PipelineRegistry,
    pipeline_name: str,
    target: Target,
    params: dict[str, Any],
    requested_by: str,
    after_job_id: int | None = None,
) -> JobInfo:
    """Queue a job after checking the pipeline, its parameters, the target and `after_job_id`."""
    pipeline = registry.get(pipeline_name)
    clean = pipeline.check(target, params)
    find_target(db, target)
    if after_job_id is not None:
        get_job(db, after_job_id, with_log=False)
    job = Job(
        pipeline=pipeline.name,
        version=pipeline.version,
        target=str(target),
        params=clean,
        requested_by=requested_by,
        max_attempts=pipeline.max_attempts,
        after_job_id=after_job_id,
    )
    db.add(job)
    db.flush()
    return _info(job)


def get_job(db: Session, job_id: int, with_log: bool = True) -> JobInfo:
    job = db.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist; `neurodepot jobs list` shows them")
    return _info(job, with_log)


def list_jobs(
    db: Session, status: str | None = None, pipeline: str | None = None, limit: int = 100
) -> list[JobInfo]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status:
        query = query.where(Job.status == status)
    if pipeline:
        query = query.where(Job.pipeline == pipeline)
    return [_info(job) for job in db.scalars(query)]


def count_by_status(db: Session) -> dict[str, int]:
    rows = db.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: count for status, count in rows}


def cancel_job(db: Session, job_id: int) -> JobInfo:
    """Cancel a queued job at once; ask a running one to stop (it stops at its next check)."""
    job = get_job(db, job_id, with_log=False)
    if job.status in FINISHED:
        raise Conflict(f"job {job_id} has already {job.status}; there is nothing to cancel")
    db.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="cancelled", finished_at=now(), message="cancelled before it started")
    )
    db.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    db.expire_all()
    return get_job(db, job_id, with_log=False)


def retry_job(db: Session, registry: PipelineRegistry, job_id: int) -> JobInfo:
    """Queue a failed or cancelled job again, with its pipeline's attempts afresh."""
    job = get_job(db, job_id, with_log=False)
    if job.status not in ("failed", "cancelled"):
        raise Conflict(f"job {job_id} is {job.status}; only failed or cancelled jobs are retried")
    attempts = registry.get(job.pipeline).max_attempts
    db.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == job.status)
        .values(
            status="queued", error="", progress=0.0, message="queued again",
            cancel_requested=False, max_attempts=job.attempt + attempts, finished_at=None,
        )
    )  # fmt: skip
    db.expire_all()
    return get_job(db, job_id, with_log=False)


# --- what workers do -------------------------------------------------------------------------


def claim(depot: Depot, job_id: int, worker: str) -> int | None:
    """Take a queued job for this worker; return the attempt number, or None if not ours."""
    with depot.transaction() as db:
        result = db.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued", Job.cancel_requested.is_(False))
            .values(
                status="running", attempt=Job.attempt + 1, worker=worker, started_at=now(),
                heartbeat_at=now(), finished_at=None, message="started",
            )
        )  # fmt: skip
        if result.rowcount != 1:
            return None
        return db.scalar(select(Job.attempt).where(Job.id == job_id))


def _running(job_id: int, attempt: int) -> tuple[object, ...]:
    return (Job.id == job_id, Job.attempt == attempt, Job.status == "running")


def heartbeat(depot: Depot, job_id: int, attempt: int) -> tuple[bool, bool]:
    """Renew the lease; return (still ours, cancel requested)."""
    with depot.transaction() as db:
        result = db.execute(
            update(Job).where(*_running(job_id, attempt)).values(heartbeat_at=now())
        )
        cancel = db.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    return result.rowcount == 1, bool(cancel)


def set_progress(depot: Depot, job_id: int, attempt: int, fraction: float, message: str) -> None:
    fraction = min(max(fraction, 0.0), 1.0)
    with depot.transaction() as db:
        db.execute(
            update(Job)
            .where(*_running(job_id, attempt))
            .values(progress=fraction, message=message[:2000])
        )


def append_log(depot: Depot, job_id: int, attempt: int, line: str) -> None:
    with depot.transaction() as db:
        current = db.scalar(select(Job.log).where(*_running(job_id, attempt)))
        if current is None:
            return
        text = (current + line.rstrip("\n") + "\n")[-MAX_LOG_CHARS:]
        db.execute(update(Job).where(*_running(job_id, attempt)).values(log=text))


def finish(
    db: Session,
    job_id: int,
    attempt: int,
    status: str,
    error: str = "",
    outputs: list[str] | None = None,
    message: str = "",
) -> bool:
    """End a running attempt; False when the attempt no longer owns the job (lease lost)."""
    values: dict[str, Any] = {"status": status, "error": error, "finished_at": now()}
    if status == "succeeded":
        values["progress"] = 1.0
    if outputs is not None:
        values["outputs"] = outputs
    if message:
        values["message"] = message
    result = db.execute(update(Job).where(*_running(job_id, attempt)).values(**values))
    return result.rowcount == 1


def requeue_or_fail(db: Session, job: Job, reason: str) -> str:
    """After a crash: queue again while attempts remain, else fail with `reason`."""
    if job.cancel_requested:
        status, values = "cancelled", {"message": f"cancelled ({reason})"}
    elif job.attempt < job.max_attempts:
        status, values = "queued", {"message": f"queued again after: {reason}"}
    else:
        status = "failed"
        values = {"error": f"{reason} (after {job.attempt} attempt(s))", "message": reason}
    if status != "queued":
        values["finished_at"] = now()
    db.execute(
        update(Job)
        .where(Job.id == job.id, Job.attempt == job.attempt, Job.status == "running")
        .values(status=status, **values)
    )
    return status


# --- what the dispatcher does ----------------------------------------------------------------


def reap_stale(depot: Depot, lease_seconds: float) -> list[tuple[int, str]]:
    """Jobs whose worker stopped renewing its lease: re-queued or failed per their policy."""
    cutoff = now() - timedelta(seconds=lease_seconds)
    changed = []
    with depot.transaction() as db:
        stale = db.scalars(
            select(Job).where(Job.status == "running", Job.heartbeat_at < cutoff)
        ).all()
        for job in stale:
            reason = f"worker {job.worker or '?'} stopped responding"
            changed.append((job.id, requeue_or_fail(db, job, reason)))
    return changed


def recover_after_restart(depot: Depot, registry: PipelineRegistry) -> list[tuple[int, str]]:
    """Jobs left running by a server that died with its own cluster.

    A job asked to cancel ends cancelled (as `requeue_or_fail` does); an idempotent one is
    queued again; any other fails, since its partial effects need a person to look.
    """
    changed = []
    with depot.transaction() as db:
        for job in db.scalars(select(Job).where(Job.status == "running")).all():
            try:
                idempotent = registry.get(job.pipeline).idempotent
            except NotFound:
                idempotent = False
            if job.cancel_requested:
                finish(
                    db, job.id, job.attempt, "cancelled",
                    message="cancelled (interrupted by a server restart)",
                )  # fmt: skip
                changed.append((job.id, "cancelled"))
            elif idempotent:
                db.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.status == "running")
                    .values(status="queued", message="queued again after a server restart")
                )
                changed.append((job.id, "queued"))
            else:
                finish(
                    db, job.id, job.attempt, "failed",
                    error="interrupted by a server restart; this pipeline is not safe to re-run "
                    "on its own: check its outputs, then `neurodepot jobs retry`",
                )  # fmt: skip
                changed.append((job.id, "failed"))
    return changed


def dispatchable(depot: Depot, limit: int) -> list[tuple[int, int]]:
    """Queued jobs ready to start, oldest first, as (id, attempt).

    A job waiting for another that failed or was cancelled fails itself here.
    """
    with depot.transaction() as db:
        parent = Job.__table__.alias("parent")
        blocked = db.execute(
            select(Job.id, parent.c.status)
            .join(parent, parent.c.id == Job.after_job_id)
            .where(
                Job.status == "queued",
                Job.after_job_id.is_not(None),
                parent.c.status.in_(("failed", "cancelled")),
            )
        ).all()
        for job_id, parent_status in blocked:
            db.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued")
                .values(
                    status="failed", finished_at=now(),
                    error=f"the job it waits for {parent_status}",
                )
            )  # fmt: skip
        ready = db.execute(
            select(Job.id, Job.attempt)
            .outerjoin(parent, parent.c.id == Job.after_job_id)
            .where(
                Job.status == "queued",
                Job.cancel_requested.is_(False),
                (Job.after_job_id.is_(None)) | (parent.c.status == "succeeded"),
            )
            .order_by(Job.id)
            .limit(limit)
        ).all()
    return [(job_id, attempt) for job_id, attempt in ready]
