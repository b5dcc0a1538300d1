"""Running one job inside a Dask worker (or any process that can open the depot).

The function submitted to Dask is `execute_job`; it takes only plain values (the depot folder
and environment), so it runs on any worker that mounts the same storage and reaches the same
database. It claims the job, keeps its lease alive, runs the pipeline, and commits the outputs
with the job's success in one transaction.
"""

import functools
import os
import shutil
import socket
import threading
import traceback
from pathlib import Path

from neurodepot.catalog.resources import record_file
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot, open_depot
from neurodepot.depot.garbage import collect
from neurodepot.jobs import records
from neurodepot.jobs.context import JobCancelled, JobContext
from neurodepot.jobs.models import Job
from neurodepot.jobs.registry import PipelineRegistry, load_registry

_DEPOTS: dict[tuple[str, tuple[tuple[str, str], ...]], Depot] = {}
_LOCK = threading.Lock()


def _depot(root: str, env: dict[str, str]) -> Depot:
    """One open depot per worker process and configuration (connections are reused)."""
    key = (root, tuple(sorted(env.items())))
    with _LOCK:
        if key not in _DEPOTS:
            _DEPOTS[key] = open_depot(Path(root), env=env, auto_migrate=False)
        return _DEPOTS[key]


@functools.cache
def _registry() -> PipelineRegistry:
    """Pipelines are found once per worker process (scanning entry points costs ~2 ms)."""
    return load_registry()


def execute_job(root: str, env: dict[str, str], job_id: int, heartbeat_s: float) -> str:
    """Run job `job_id` if it is still queued; return what became of it."""
    return execute_job_here(_depot(root, env), job_id, heartbeat_s)


def execute_job_here(depot: Depot, job_id: int, heartbeat_s: float) -> str:
    """Run a queued job in this process, on a depot already open (the CLI's `convert`)."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    attempt = records.claim(depot, job_id, worker)
    if attempt is None:
        return "not claimed"
    with depot.transaction() as db:
        job = db.get(Job, job_id)
        assert job is not None
        pipeline_name, target_text, params = job.pipeline, job.target, dict(job.params)
    staging = depot.settings.work_root / "jobs" / f"{job_id}-{attempt}"  # made on first output
    context = JobContext(depot, job_id, attempt, Target.parse(target_text), params, staging)
    try:
        return _run(depot, context, pipeline_name, heartbeat_s)
    finally:  # staged content is committed as blobs or abandoned: either way not needed here
        shutil.rmtree(staging, ignore_errors=True)


def _run(depot: Depot, context: JobContext, pipeline_name: str, heartbeat_s: float) -> str:
    """Run the claimed attempt with its lease kept alive; return what became of the job."""
    job_id, attempt = context.job_id, context.attempt
    beating = _Heartbeat(depot, context, heartbeat_s)
    beating.start()
    try:
        pipeline = _registry().get(pipeline_name)
        pipeline.run(context)
        context.check_cancelled()
    except JobCancelled as stopped:
        with depot.transaction() as db:
            ours = records.finish(db, job_id, attempt, "cancelled", message=str(stopped))
        return "cancelled" if ours else "lost"
    except Exception as exc:  # the pipeline's failure becomes the job's, with its traceback
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        records.append_log(depot, job_id, attempt, traceback.format_exc())
        with depot.transaction() as db:
            job = db.get(Job, job_id)
            if job is not None and job.status == "running" and job.attempt == attempt:
                return records.requeue_or_fail(db, job, detail)
        return "lost"
    finally:
        beating.stop()
    return _commit(depot, context)


class _LeaseLost(Exception):
    pass


def _commit(depot: Depot, context: JobContext) -> str:
    """Place the staged outputs and record them with the job's success, or nothing at all."""
    outputs = sorted({f"{o.target}/{o.resource}" for o in context.outputs})
    superseded = []
    try:
        with depot.blobs.writing():
            for output in context.outputs:
                depot.blobs.place(output.staged, output.ref)
            with depot.transaction() as db:
                for hook in context.commit_hooks:
                    superseded.extend(hook(db))
                for o in context.outputs:
                    _, old = record_file(db, o.target, o.resource, o.path, o.ref, True, None)
                    superseded.extend([old] if old else [])
                if not records.finish(
                    db, context.job_id, context.attempt, "succeeded", outputs=outputs
                ):
                    raise _LeaseLost
    except _LeaseLost:
        collect(depot.engine, depot.blobs, candidates=[o.ref.digest for o in context.outputs])
        return "lost"
    if superseded:
        collect(depot.engine, depot.blobs, candidates=superseded)
    return "succeeded"


class _Heartbeat:
    """Renews the job's lease and relays cancellation to the pipeline."""

    def __init__(self, depot: Depot, context: JobContext, every_s: float) -> None:
        self._depot = depot
        self._context = context
        self._every = every_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._done.wait(self._every):
            ours, cancel = records.heartbeat(
                self._depot, self._context.job_id, self._context.attempt
            )
            if not ours:
                self._context.stop_reason = "the job's lease was lost"
                self._context.stop.set()
            elif cancel:
                self._context.stop_reason = "cancelled on request"
                self._context.stop.set()
