"""The dispatcher on real Dask clusters: jobs run once, wait for each other, stop when cancelled,
run again when retried or recovered after a restart, and outlive a worker killed mid-job."""

import dataclasses
import os
import signal

import pytest
from distributed import Client
from sqlalchemy import update

from neurodepot.catalog import resources
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.depot.fsck import fsck
from neurodepot.errors import NotFound
from neurodepot.jobs import records
from neurodepot.jobs.dispatcher import Dispatcher
from neurodepot.jobs.models import Job
from neurodepot.jobs.records import FINISHED, JobInfo
from neurodepot.jobs.registry import PipelineRegistry, load_registry
from tests.jobs.conftest import FAST, STEADY, Dispatch, ExternalDask, WaitFor

PROJECT = Target("p")


def queue(
    depot: Depot,
    pipeline: str,
    params: dict[str, object] | None = None,
    after: int | None = None,
    registry: PipelineRegistry | None = None,
) -> JobInfo:
    with depot.transaction() as db:
        return records.create_job(
            db, registry or load_registry(), pipeline, PROJECT, params or {}, "t", after
        )


def worker_pid(job: JobInfo) -> int:
    """The pid in a job's `worker` (`host:pid`)."""
    return int(job.worker.rsplit(":", 1)[1])


def is_running(job: JobInfo) -> bool:
    return job.status == "running" and job.progress > 0


class TestOnLocalCluster:
    def test_queued_jobs_run_once_and_write_their_outputs(
        self, tree: Depot, local_client: Client, dispatch: Dispatch, wait_for: WaitFor
    ) -> None:
        stored = resources.add_file(tree, PROJECT, "RAW", "data.bin", [b"\x00" * 1000]).file
        ids = [
            queue(tree, "noop").id,
            queue(tree, "wait", {"seconds": 0.2, "steps": 2}).id,
            queue(tree, "manifest").id,
        ]
        dispatch(local_client)
        done = [wait_for(job_id) for job_id in ids]
        assert [(j.status, j.attempt, j.progress) for j in done] == [("succeeded", 1, 1.0)] * 3
        assert done[2].outputs == ["p/MANIFEST"]
        with tree.transaction() as db:
            manifest = resources.get_file(db, PROJECT, "MANIFEST", "manifest.json")
        body = b"".join(tree.blobs.read_chunks(manifest.digest))
        assert b'"sha256": "%s"' % stored.digest.encode() in body
        assert fsck(tree.engine, tree.blobs).ok

    @pytest.mark.slow
    def test_200_jobs_queued_at_once_all_run_exactly_once(
        self, tree: Depot, local_client: Client, dispatch: Dispatch, wait_for: WaitFor
    ) -> None:
        with tree.transaction() as db:
            registry = load_registry()
            ids = [
                records.create_job(db, registry, "noop", PROJECT, {}, "t").id for _ in range(200)
            ]
        dispatch(local_client)
        wait_for(ids[-1], timeout=90)
        for job_id in ids:
            wait_for(job_id, timeout=10)
        with tree.transaction() as db:
            finished = records.list_jobs(db, limit=1000)
        assert len(finished) == 200
        assert {(j.status, j.attempt) for j in finished} == {("succeeded", 1)}

    def test_queued_job_cancelled_never_runs(
        self, tree: Depot, local_client: Client, dispatch: Dispatch, wait_for: WaitFor
    ) -> None:
        cancelled = queue(tree, "noop")
        with tree.transaction() as db:
            records.cancel_job(db, cancelled.id)
        later = queue(tree, "noop")
        dispatch(local_client)
        assert wait_for(later.id).status == "succeeded"
        with tree.transaction() as db:
            never = records.get_job(db, cancelled.id)
        assert (never.status, never.attempt, never.worker) == ("cancelled", 0, "")
        assert never.started_at is None

    def test_running_job_cancelled_stops_at_its_next_progress_check(
        self, tree: Depot, local_client: Client, dispatch: Dispatch, wait_for: WaitFor
    ) -> None:
        queued = queue(tree, "wait", {"seconds": 60, "steps": 600})
        dispatch(local_client)
        wait_for(queued.id, is_running)
        with tree.transaction() as db:
            records.cancel_job(db, queued.id)
        stopped = wait_for(queued.id, timeout=10)
        assert (stopped.status, stopped.attempt, stopped.outputs) == ("cancelled", 1, [])
        assert stopped.message == "cancelled on request" and stopped.progress < 1

    def test_failed_job_runs_again_when_retried(
        self,
        tree: Depot,
        registry: PipelineRegistry,
        local_client: Client,
        dispatch: Dispatch,
        wait_for: WaitFor,
    ) -> None:
        queued = queue(tree, "wait", {"seconds": 0, "steps": 1, "fail": True})
        dispatch(local_client)
        failed = wait_for(queued.id)
        assert (failed.status, failed.attempt) == ("failed", 2)
        assert "failed on request" in failed.error
        with tree.transaction() as db:
            assert records.retry_job(db, registry, queued.id).status == "queued"
        again = wait_for(queued.id)
        assert (again.status, again.attempt, again.max_attempts) == ("failed", 4, 4)

    def test_job_waits_until_the_one_before_it_succeeded(
        self, tree: Depot, local_client: Client, dispatch: Dispatch, wait_for: WaitFor
    ) -> None:
        parent = queue(tree, "wait", {"seconds": 1, "steps": 2})
        child = queue(tree, "manifest", after=parent.id)
        dispatch(local_client)
        child_done, parent_done = wait_for(child.id), wait_for(parent.id)
        assert (parent_done.status, child_done.status) == ("succeeded", "succeeded")
        assert parent_done.finished_at is not None and child_done.started_at is not None
        assert child_done.started_at >= parent_done.finished_at

    def test_job_after_a_failed_one_fails_saying_why(
        self, tree: Depot, local_client: Client, dispatch: Dispatch, wait_for: WaitFor
    ) -> None:
        parent = queue(tree, "wait", {"seconds": 0, "steps": 1, "fail": True})
        child = queue(tree, "manifest", after=parent.id)
        dispatch(local_client)
        assert wait_for(parent.id).status == "failed"
        orphan = wait_for(child.id)
        assert (orphan.status, orphan.attempt) == ("failed", 0)
        assert orphan.error == "the job it waits for failed"
        with tree.transaction() as db, pytest.raises(NotFound):
            resources.get_resource(db, PROJECT, "MANIFEST")


class TestRestart:
    """A server that owned its cluster died: its jobs are `running` with no worker left."""

    def test_idempotent_job_is_queued_again_and_runs(
        self,
        tree: Depot,
        depot_env: dict[str, str],
        registry: PipelineRegistry,
        local_client: Client,
        dispatch: Dispatch,
        wait_for: WaitFor,
    ) -> None:
        interrupted = queue(tree, "manifest")
        assert records.claim(tree, interrupted.id, "old-server:1") == 1
        restarted = Dispatcher(tree, local_client, registry, depot_env, STEADY)
        assert restarted.recover() == [(interrupted.id, "queued")]
        assert restarted.recover() == []
        dispatch(local_client)
        done = wait_for(interrupted.id)
        assert (done.status, done.attempt, done.outputs) == ("succeeded", 2, ["p/MANIFEST"])

    def test_job_not_safe_to_run_again_fails_and_never_runs(
        self,
        tree: Depot,
        depot_env: dict[str, str],
        local_client: Client,
        dispatch: Dispatch,
        wait_for: WaitFor,
    ) -> None:
        registry = PipelineRegistry()
        builtin = load_registry()
        registry.register(dataclasses.replace(builtin.get("manifest"), idempotent=False))
        registry.register(builtin.get("noop"))
        interrupted = queue(tree, "manifest", registry=registry)
        assert records.claim(tree, interrupted.id, "old-server:1") == 1
        restarted = Dispatcher(tree, local_client, registry, depot_env, STEADY)
        assert restarted.recover() == [(interrupted.id, "failed")]
        later = queue(tree, "noop", registry=registry)
        dispatch(local_client, registry=registry)
        assert wait_for(later.id).status == "succeeded"
        with tree.transaction() as db:
            failed = records.get_job(db, interrupted.id)
            assert resources.list_resources(db, PROJECT) == []
        assert (failed.status, failed.attempt) == ("failed", 1)
        assert failed.error.startswith("interrupted by a server restart")


@pytest.mark.slow
class TestKilledWorker:
    """A separately started scheduler and workers; the worker running the job is SIGKILLed."""

    def test_job_runs_again_on_another_worker_and_succeeds(
        self,
        tree: Depot,
        external_dask: ExternalDask,
        external_client: Client,
        dispatch: Dispatch,
        wait_for: WaitFor,
    ) -> None:
        pids = {external_dask.start_worker(), external_dask.start_worker()}
        external_client.wait_for_workers(2, timeout=30)
        queued = queue(tree, "wait", {"seconds": 5, "steps": 10})
        dispatch(external_client, FAST)
        running = wait_for(queued.id, is_running)
        victim = worker_pid(running)
        assert victim in pids
        os.kill(victim, signal.SIGKILL)
        done = wait_for(queued.id, timeout=30)
        assert (done.status, done.attempt) == ("succeeded", 2)
        assert worker_pid(done) == (pids - {victim}).pop()

    def test_job_out_of_attempts_fails_naming_the_lost_worker(
        self,
        tree: Depot,
        external_dask: ExternalDask,
        external_client: Client,
        dispatch: Dispatch,
        wait_for: WaitFor,
    ) -> None:
        only = external_dask.start_worker()
        external_client.wait_for_workers(1, timeout=30)
        queued = queue(tree, "wait", {"seconds": 5, "steps": 10})
        with tree.transaction() as db:
            db.execute(update(Job).where(Job.id == queued.id).values(max_attempts=1))
        dispatch(external_client, FAST)
        running = wait_for(queued.id, is_running)
        assert worker_pid(running) == only
        os.kill(only, signal.SIGKILL)
        failed = wait_for(queued.id, timeout=30)
        assert failed.status in FINISHED
        assert (failed.status, failed.attempt) == ("failed", 1)
        assert failed.error == f"worker {running.worker} stopped responding (after 1 attempt(s))"
