"""Running one job: on a real Dask worker, and in this process with pipelines made for the test.

What is checked is what the job leaves behind: its row, the resource it wrote (and only on
success), the blob store (no orphan, nothing staged left over), whatever became of the attempt.
"""

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from hashlib import sha256
from operator import itemgetter

import pytest
from distributed import Client, Future
from sqlalchemy import func, select

from neurodepot.catalog import resources
from neurodepot.catalog.models import Resource
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.depot.fsck import fsck
from neurodepot.depot.orm import Blob
from neurodepot.jobs import executor, records
from neurodepot.jobs.context import JobContext
from neurodepot.jobs.executor import execute_job
from neurodepot.jobs.records import JobInfo
from neurodepot.jobs.registry import Pipeline, load_registry
from tests.jobs.conftest import WaitFor

SUBJECT = Target("p", "s")
HEARTBEAT_S = 0.1
STAGED = b"staged output\n"


def queue(depot: Depot, pipeline: str, params: dict[str, object] | None = None) -> JobInfo:
    with depot.transaction() as db:
        return records.create_job(db, load_registry(), pipeline, SUBJECT, params or {}, "t")


def leaves_no_trace(depot: Depot) -> None:
    """No resource, no blob (row or file), nothing staged, and fsck finds nothing wrong."""
    with depot.transaction() as db:
        assert db.scalar(select(func.count()).select_from(Resource)) == 0
        assert db.scalar(select(func.count()).select_from(Blob)) == 0
    assert list(depot.blobs.digests()) == []
    assert list((depot.settings.work_root / "jobs").glob("*")) == []
    assert fsck(depot.engine, depot.blobs).ok


class TestOnDask:
    """`execute_job` submitted to the shared `LocalCluster`, as the dispatcher submits it."""

    def submit(self, client: Client, depot: Depot, env: dict[str, str], job_id: int) -> Future:
        root = str(depot.settings.root)
        future = client.submit(execute_job, root, env, job_id, HEARTBEAT_S, pure=False)
        return future

    def test_job_runs_on_a_worker_process(
        self, tree: Depot, depot_env: dict[str, str], local_client: Client
    ) -> None:
        queued = queue(tree, "noop")
        result = self.submit(local_client, tree, depot_env, queued.id).result(timeout=30)
        assert result == "succeeded"
        with tree.transaction() as db:
            done = records.get_job(db, queued.id)
        assert (done.status, done.attempt, done.progress) == ("succeeded", 1, 1.0)
        assert int(done.worker.rsplit(":", 1)[1]) in local_client.run(os.getpid).values()
        assert done.finished_at is not None and done.error == ""

    def test_manifest_lists_every_file_at_its_target(
        self, tree: Depot, depot_env: dict[str, str], local_client: Client
    ) -> None:
        contents = {
            ("T1", "a.nii"): b"first",
            ("T1", "sub/b.json"): b"{}",
            ("NOTES", "n.txt"): b"x",
        }
        for (label, path), data in contents.items():
            resources.add_file(tree, SUBJECT, label, path, [data])
        resources.add_file(tree, Target("p"), "ELSEWHERE", "other.txt", [b"not at p/s"])
        queued = queue(tree, "manifest")
        assert self.submit(local_client, tree, depot_env, queued.id).result(30) == "succeeded"
        manifest = read_manifest(tree)
        assert manifest["target"] == "p/s"
        expected = [
            {"resource": label, "path": path, "sha256": sha256(data).hexdigest(), "size": len(data)}
            for (label, path), data in contents.items()
        ]
        by_place = itemgetter("resource", "path")
        assert sorted(manifest["files"], key=by_place) == sorted(expected, key=by_place)
        with tree.transaction() as db:
            assert records.get_job(db, queued.id).outputs == ["p/s/MANIFEST"]
        assert fsck(tree.engine, tree.blobs).ok

    def test_second_manifest_replaces_the_first_and_its_blob_is_collected(
        self, tree: Depot, depot_env: dict[str, str], local_client: Client
    ) -> None:
        resources.add_file(tree, SUBJECT, "T1", "a.nii", [b"first"])
        first = queue(tree, "manifest")
        assert self.submit(local_client, tree, depot_env, first.id).result(30) == "succeeded"
        old = manifest_digest(tree)
        resources.add_file(tree, SUBJECT, "T1", "b.nii", [b"second"])
        second = queue(tree, "manifest")
        assert self.submit(local_client, tree, depot_env, second.id).result(30) == "succeeded"
        assert [f["path"] for f in read_manifest(tree)["files"]] == ["a.nii", "b.nii"]
        assert manifest_digest(tree) != old and not tree.blobs.exists(old)
        assert fsck(tree.engine, tree.blobs).ok

    def test_failing_job_is_queued_again_then_fails_with_its_reason(
        self, tree: Depot, depot_env: dict[str, str], local_client: Client
    ) -> None:
        queued = queue(tree, "wait", {"seconds": 0, "steps": 1, "fail": True})
        assert self.submit(local_client, tree, depot_env, queued.id).result(30) == "queued"
        assert self.submit(local_client, tree, depot_env, queued.id).result(30) == "failed"
        with tree.transaction() as db:
            failed = records.get_job(db, queued.id)
        assert (failed.status, failed.attempt) == ("failed", 2)
        assert failed.error == ("RuntimeError: failed on request (fail=true) (after 2 attempt(s))")
        assert failed.log.count("Traceback") == 2
        assert failed.outputs == []

    def test_running_job_cancelled_stops_at_its_next_check(
        self, tree: Depot, depot_env: dict[str, str], local_client: Client, wait_for: WaitFor
    ) -> None:
        queued = queue(tree, "wait", {"seconds": 60, "steps": 600})
        future = self.submit(local_client, tree, depot_env, queued.id)
        wait_for(queued.id, lambda job: job.status == "running" and job.progress > 0)
        asked = time.monotonic()
        with tree.transaction() as db:
            records.cancel_job(db, queued.id)
        assert future.result(timeout=30) == "cancelled"
        assert time.monotonic() - asked < 5
        with tree.transaction() as db:
            cancelled = records.get_job(db, queued.id)
        assert (cancelled.status, cancelled.message) == ("cancelled", "cancelled on request")
        assert cancelled.outputs == [] and cancelled.progress < 1

    def test_job_that_is_not_queued_is_left_alone(
        self, tree: Depot, depot_env: dict[str, str], local_client: Client
    ) -> None:
        queued = queue(tree, "noop")
        with tree.transaction() as db:
            records.cancel_job(db, queued.id)
        result = self.submit(local_client, tree, depot_env, queued.id).result(timeout=30)
        assert result == "not claimed"
        with tree.transaction() as db:
            assert records.get_job(db, queued.id).attempt == 0


def read_manifest(depot: Depot) -> dict[str, object]:
    with depot.transaction() as db:
        stored = resources.get_file(db, SUBJECT, "MANIFEST", "manifest.json")
    return json.loads(b"".join(depot.blobs.read_chunks(stored.digest)))


def manifest_digest(depot: Depot) -> str:
    with depot.transaction() as db:
        return resources.get_file(db, SUBJECT, "MANIFEST", "manifest.json").digest


# --- in this process, with pipelines that stage an output and then misbehave ------------------


class Gate:
    """Lets a test wait until a pipeline has staged its output."""

    def __init__(self) -> None:
        self.staged = threading.Event()

    def stage(self, context: JobContext) -> None:
        context.add_output("OUT", "result.txt", [STAGED])
        self.staged.set()

    def stage_then_fail(self, context: JobContext) -> None:
        self.stage(context)
        raise ValueError("broke after staging")

    def stage_then_wait(self, context: JobContext) -> None:
        self.stage(context)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            context.progress(0.5, "waiting to be stopped")
            time.sleep(0.02)
        raise AssertionError("the job was never stopped")

    def stage_then_lose_lease(self, context: JobContext) -> None:
        self.stage(context)
        records.reap_stale(context.depot, lease_seconds=0)  # as a reaper acting just now would


@pytest.fixture
def gate() -> Gate:
    return Gate()


RunHere = Callable[[str], tuple[int, Callable[[], str]]]
StartBackground = Callable[[Callable[[], str]], "Background"]


@pytest.fixture
def run_here(tree: Depot, gate: Gate, monkeypatch: pytest.MonkeyPatch) -> RunHere:
    """Queue a job of a test pipeline; return its id and a function running it in this process.

    The executor opens the test's own depot and finds the test pipelines beside the built-ins.
    """
    registry = load_registry()
    for name, run in [
        ("stage-then-fail", gate.stage_then_fail),
        ("stage-then-wait", gate.stage_then_wait),
        ("stage-then-lose-lease", gate.stage_then_lose_lease),
    ]:
        registry.register(Pipeline(name, "1", run, outputs=("OUT",), max_attempts=2))
    monkeypatch.setattr(executor, "_depot", lambda root, env: tree)
    monkeypatch.setattr(executor, "_registry", lambda: registry)

    def prepare(pipeline: str) -> tuple[int, Callable[[], str]]:
        with tree.transaction() as db:
            job_id = records.create_job(db, registry, pipeline, SUBJECT, {}, "t").id
        return job_id, lambda: execute_job(str(tree.settings.root), {}, job_id, HEARTBEAT_S)

    return prepare


class Background:
    """`execute_job` in a thread of this process, so the test can act while it runs."""

    def __init__(self, run: Callable[[], str]) -> None:
        self.result: str | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(run,))
        self._thread.start()

    def _run(self, run: Callable[[], str]) -> None:
        try:
            self.result = run()
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self) -> str | None:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the job did not stop within 30 s"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def background() -> Iterator[StartBackground]:
    """Start `execute_job` in a thread; every thread is joined after the test."""
    started: list[Background] = []

    def start(run: Callable[[], str]) -> Background:
        started.append(Background(run))
        return started[-1]

    yield start
    for running in started:
        running._thread.join(timeout=30)


class TestStagedOutputs:
    def test_failed_job_leaves_no_resource_and_no_blob(
        self, tree: Depot, run_here: RunHere
    ) -> None:
        job_id, run = run_here("stage-then-fail")
        assert run() == "queued"
        assert run() == "failed"
        with tree.transaction() as db:
            failed = records.get_job(db, job_id)
        assert failed.error == "ValueError: broke after staging (after 2 attempt(s))"
        assert failed.outputs == []
        leaves_no_trace(tree)

    def test_cancelled_job_leaves_no_resource_and_no_blob(
        self, tree: Depot, run_here: RunHere, gate: Gate, background: StartBackground
    ) -> None:
        job_id, run = run_here("stage-then-wait")
        running = background(run)
        assert gate.staged.wait(timeout=30)
        with tree.transaction() as db:
            records.cancel_job(db, job_id)
        assert running.join() == "cancelled"
        with tree.transaction() as db:
            cancelled = records.get_job(db, job_id)
        assert (cancelled.status, cancelled.outputs) == ("cancelled", [])
        leaves_no_trace(tree)

    def test_attempt_that_lost_its_lease_stops_and_leaves_the_job_to_the_next(
        self, tree: Depot, run_here: RunHere, gate: Gate, background: StartBackground
    ) -> None:
        job_id, run = run_here("stage-then-wait")
        running = background(run)
        assert gate.staged.wait(timeout=30)
        assert records.reap_stale(tree, lease_seconds=0) == [(job_id, "queued")]
        assert running.join() == "lost"
        with tree.transaction() as db:
            requeued = records.get_job(db, job_id)
        assert (requeued.status, requeued.attempt, requeued.outputs) == ("queued", 1, [])
        leaves_no_trace(tree)

    def test_outputs_of_an_attempt_that_lost_its_lease_before_committing_are_discarded(
        self, tree: Depot, run_here: RunHere
    ) -> None:
        job_id, run = run_here("stage-then-lose-lease")
        assert run() == "lost"
        with tree.transaction() as db:
            requeued = records.get_job(db, job_id)
        assert (requeued.status, requeued.outputs) == ("queued", [])
        leaves_no_trace(tree)
