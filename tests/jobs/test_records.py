"""Job rows: creating (and refusing), claiming once, leases, cancelling, retrying, recovering.

These run without Dask: each state change is what a worker, the dispatcher or a user would do,
made directly on the test's depot (SQLite and PostgreSQL).
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from neurodepot.catalog.target import Level, Target
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict, Invalid, NotFound
from neurodepot.jobs import records
from neurodepot.jobs.context import JobContext
from neurodepot.jobs.models import Job
from neurodepot.jobs.records import JobInfo
from neurodepot.jobs.registry import Pipeline, PipelineRegistry, load_registry

PROJECT, SUBJECT = Target("p"), Target("p", "s")


def _never_run(context: JobContext) -> None:
    raise AssertionError("records tests never run a pipeline")


@pytest.fixture
def registry() -> PipelineRegistry:
    """The built-ins plus a non-idempotent pipeline and one that runs on sessions only."""
    registry = load_registry()
    registry.register(Pipeline("fragile", "1", _never_run, idempotent=False))
    registry.register(Pipeline("per-session", "1", _never_run, levels=frozenset({Level.SESSION})))
    return registry


Create = Callable[..., JobInfo]


@pytest.fixture
def create(tree: Depot, registry: PipelineRegistry) -> Create:
    """Queue a job on the test's depot (by default `noop` on project `p`)."""

    def create(
        pipeline: str = "noop",
        target: Target = PROJECT,
        params: dict[str, object] | None = None,
        after: int | None = None,
    ) -> JobInfo:
        with tree.transaction() as db:
            return records.create_job(
                db, registry, pipeline, target, params or {}, "tester", after_job_id=after
            )

    return create


def job(depot: Depot, job_id: int) -> JobInfo:
    with depot.transaction() as db:
        return records.get_job(db, job_id)


def job_count(depot: Depot) -> int:
    with depot.transaction() as db:
        return db.scalar(select(func.count()).select_from(Job)) or 0


def silence(depot: Depot, job_id: int, seconds: float) -> None:
    """Make the job's last heartbeat `seconds` old, as if its worker had stopped then."""
    with depot.transaction() as db:
        db.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(heartbeat_at=records.now() - timedelta(seconds=seconds))
        )


def end(depot: Depot, job_id: int, status: str, error: str = "") -> None:
    attempt = records.claim(depot, job_id, "w")
    assert attempt is not None
    with depot.transaction() as db:
        assert records.finish(db, job_id, attempt, status, error=error)


class TestCreate:
    def test_job_is_queued_with_checked_parameters_and_its_pipelines_attempts(
        self, create: Create
    ) -> None:
        queued = create("wait", SUBJECT, {"seconds": "2"})
        assert (queued.status, queued.attempt, queued.max_attempts) == ("queued", 0, 2)
        assert (queued.pipeline, queued.version, queued.target) == ("wait", "1", "p/s")
        assert queued.params == {"seconds": 2.0, "steps": 10, "fail": False}
        assert queued.requested_by == "tester"
        assert queued.progress == 0.0 and queued.outputs == [] and queued.worker == ""

    @pytest.mark.parametrize(
        ("pipeline", "target", "params", "error", "match"),
        [
            ("nope", PROJECT, {}, NotFound, "no pipeline 'nope'; known pipelines: convert, "
             "fragile, manifest, noop, per-session, wait"),
            ("wait", PROJECT, {"seconds": -1}, Invalid, "'wait': seconds: "),
            ("wait", PROJECT, {"seconds": "soon"}, Invalid, "'wait': seconds: "),
            ("wait", PROJECT, {"secs": 1}, Invalid, "'wait': secs: "),
            ("noop", Target("p", "nobody"), {}, NotFound, "subject 'nobody' does not exist"),
            ("noop", Target("elsewhere"), {}, NotFound, "project 'elsewhere' does not exist"),
            ("per-session", PROJECT, {}, Invalid, "runs on a session, not on a project"),
        ],
        ids=["pipeline", "negative", "type", "unknown-param", "subject", "project", "level"],
    )  # fmt: skip
    def test_bad_request_is_refused_and_creates_nothing(
        self,
        tree: Depot,
        create: Create,
        pipeline: str,
        target: Target,
        params: dict[str, object],
        error: type[Exception],
        match: str,
    ) -> None:
        with pytest.raises(error, match=match):
            create(pipeline, target, params)
        assert job_count(tree) == 0

    def test_waiting_for_a_job_that_does_not_exist_is_refused(
        self, tree: Depot, create: Create
    ) -> None:
        with pytest.raises(NotFound, match="job 99 does not exist"):
            create("noop", after=99)
        assert job_count(tree) == 0

    def test_missing_job_is_not_found(self, tree: Depot) -> None:
        with tree.transaction() as db, pytest.raises(NotFound, match="job 7 does not exist"):
            records.get_job(db, 7)

    def test_listing_filters_by_status_and_pipeline_newest_first(
        self, tree: Depot, create: Create
    ) -> None:
        first, second, third = create("noop"), create("wait"), create("noop")
        end(tree, first.id, "succeeded")
        with tree.transaction() as db:
            assert [j.id for j in records.list_jobs(db)] == [third.id, second.id, first.id]
            assert [j.id for j in records.list_jobs(db, status="queued")] == [third.id, second.id]
            assert [j.id for j in records.list_jobs(db, pipeline="noop")] == [third.id, first.id]
            assert [j.id for j in records.list_jobs(db, limit=1)] == [third.id]
            assert records.count_by_status(db) == {"queued": 2, "succeeded": 1}


class TestClaim:
    def test_queued_job_is_claimed_once(self, tree: Depot, create: Create) -> None:
        queued = create()
        assert records.claim(tree, queued.id, "host:1") == 1
        assert records.claim(tree, queued.id, "host:2") is None
        running = job(tree, queued.id)
        assert (running.status, running.attempt, running.worker) == ("running", 1, "host:1")
        assert running.started_at is not None

    def test_racing_workers_claim_each_job_exactly_once(self, tree: Depot, create: Create) -> None:
        ids = [create().id for _ in range(20)]

        def claim_all(worker: str) -> list[int]:
            return [i for i in ids if records.claim(tree, i, worker) is not None]

        with ThreadPoolExecutor(4) as pool:
            won = list(pool.map(claim_all, ["a", "b", "c", "d"]))
        assert sorted(i for claimed in won for i in claimed) == ids
        assert {job(tree, i).attempt for i in ids} == {1}

    def test_job_asked_to_cancel_is_not_claimed(self, tree: Depot, create: Create) -> None:
        queued = create()
        with tree.transaction() as db:
            records.cancel_job(db, queued.id)
        assert records.claim(tree, queued.id, "w") is None
        assert job(tree, queued.id).attempt == 0


class TestLease:
    def test_heartbeat_renews_the_lease_and_relays_cancellation(
        self, tree: Depot, create: Create
    ) -> None:
        queued = create()
        attempt = records.claim(tree, queued.id, "w")
        assert attempt == 1
        assert records.heartbeat(tree, queued.id, attempt) == (True, False)
        with tree.transaction() as db:
            assert records.cancel_job(db, queued.id).status == "running"
        assert records.heartbeat(tree, queued.id, attempt) == (True, True)

    def test_fresh_lease_is_not_reaped(self, tree: Depot, create: Create) -> None:
        queued = create()
        records.claim(tree, queued.id, "w")
        assert records.reap_stale(tree, lease_seconds=30) == []
        assert job(tree, queued.id).status == "running"

    def test_stale_job_with_attempts_left_is_queued_again(
        self, tree: Depot, create: Create
    ) -> None:
        queued = create("wait")
        records.claim(tree, queued.id, "host:41")
        silence(tree, queued.id, 60)
        assert records.reap_stale(tree, lease_seconds=30) == [(queued.id, "queued")]
        again = job(tree, queued.id)
        assert (again.status, again.attempt) == ("queued", 1)
        assert again.message == "queued again after: worker host:41 stopped responding"
        assert records.claim(tree, queued.id, "host:42") == 2

    def test_stale_job_on_its_last_attempt_fails_naming_the_worker(
        self, tree: Depot, create: Create
    ) -> None:
        queued = create("noop")
        records.claim(tree, queued.id, "host:41")
        silence(tree, queued.id, 60)
        assert records.reap_stale(tree, lease_seconds=30) == [(queued.id, "failed")]
        failed = job(tree, queued.id)
        assert failed.status == "failed" and failed.finished_at is not None
        assert failed.error == "worker host:41 stopped responding (after 1 attempt(s))"

    def test_stale_job_asked_to_cancel_ends_cancelled(self, tree: Depot, create: Create) -> None:
        queued = create("wait")
        records.claim(tree, queued.id, "host:41")
        with tree.transaction() as db:
            records.cancel_job(db, queued.id)
        silence(tree, queued.id, 60)
        assert records.reap_stale(tree, lease_seconds=30) == [(queued.id, "cancelled")]
        assert job(tree, queued.id).status == "cancelled"

    def test_attempt_that_lost_its_lease_changes_nothing(self, tree: Depot, create: Create) -> None:
        queued = create("wait")
        first = records.claim(tree, queued.id, "slow")
        assert first == 1
        silence(tree, queued.id, 60)
        records.reap_stale(tree, lease_seconds=30)
        second = records.claim(tree, queued.id, "fast")
        assert second == 2
        assert records.heartbeat(tree, queued.id, first) == (False, False)
        records.set_progress(tree, queued.id, first, 0.9, "late")
        records.append_log(tree, queued.id, first, "late line")
        with tree.transaction() as db:
            assert not records.finish(db, queued.id, first, "succeeded", outputs=["p/X"])
        current = job(tree, queued.id)
        assert (current.status, current.attempt, current.worker) == ("running", 2, "fast")
        assert (current.progress, current.outputs, current.log) == (0.0, [], "")

    def test_progress_is_clamped_and_the_log_kept(self, tree: Depot, create: Create) -> None:
        queued = create()
        attempt = records.claim(tree, queued.id, "w")
        assert attempt == 1
        records.set_progress(tree, queued.id, attempt, 1.5, "over")
        records.append_log(tree, queued.id, attempt, "one\n")
        records.append_log(tree, queued.id, attempt, "two")
        running = job(tree, queued.id)
        assert (running.progress, running.message, running.log) == (1.0, "over", "one\ntwo\n")


class TestCancelAndRetry:
    def test_queued_job_is_cancelled_at_once(self, tree: Depot, create: Create) -> None:
        queued = create()
        with tree.transaction() as db:
            cancelled = records.cancel_job(db, queued.id)
        assert (cancelled.status, cancelled.attempt) == ("cancelled", 0)
        assert cancelled.finished_at is not None

    def test_running_job_is_asked_to_stop(self, tree: Depot, create: Create) -> None:
        queued = create()
        records.claim(tree, queued.id, "w")
        with tree.transaction() as db:
            asked = records.cancel_job(db, queued.id)
        assert (asked.status, asked.cancel_requested) == ("running", True)

    @pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
    def test_finished_job_cannot_be_cancelled(
        self, tree: Depot, create: Create, status: str
    ) -> None:
        queued = create()
        end(tree, queued.id, status)
        with tree.transaction() as db, pytest.raises(Conflict, match=f"has already {status}"):
            records.cancel_job(db, queued.id)

    def test_failed_job_is_queued_again_with_fresh_attempts(
        self, tree: Depot, create: Create, registry: PipelineRegistry
    ) -> None:
        queued = create("wait")
        end(tree, queued.id, "failed", error="boom")
        with tree.transaction() as db:
            again = records.retry_job(db, registry, queued.id)
        assert (again.status, again.error, again.attempt, again.max_attempts) == (
            "queued", "", 1, 3,
        )  # fmt: skip
        assert again.finished_at is None
        assert records.claim(tree, queued.id, "w") == 2

    def test_cancelled_job_can_be_retried(
        self, tree: Depot, create: Create, registry: PipelineRegistry
    ) -> None:
        queued = create()
        with tree.transaction() as db:
            records.cancel_job(db, queued.id)
            again = records.retry_job(db, registry, queued.id)
        assert (again.status, again.cancel_requested) == ("queued", False)
        assert records.claim(tree, queued.id, "w") == 1

    @pytest.mark.parametrize("status", ["queued", "running", "succeeded"])
    def test_only_failed_or_cancelled_jobs_are_retried(
        self, tree: Depot, create: Create, registry: PipelineRegistry, status: str
    ) -> None:
        queued = create()
        if status == "running":
            records.claim(tree, queued.id, "w")
        elif status == "succeeded":
            end(tree, queued.id, status)
        with tree.transaction() as db, pytest.raises(Conflict, match=f"is {status}; only"):
            records.retry_job(db, registry, queued.id)


class TestRecoverAfterRestart:
    def test_idempotent_job_is_queued_again_and_others_fail(
        self, tree: Depot, create: Create, registry: PipelineRegistry
    ) -> None:
        safe, fragile, waiting = create("noop"), create("fragile"), create("noop")
        for running in (safe, fragile):
            records.claim(tree, running.id, "gone:1")
        changed = records.recover_after_restart(tree, registry)
        assert sorted(changed) == [(safe.id, "queued"), (fragile.id, "failed")]
        assert job(tree, safe.id).message == "queued again after a server restart"
        failed = job(tree, fragile.id)
        assert failed.error.startswith("interrupted by a server restart; this pipeline is not safe")
        assert job(tree, waiting.id).status == "queued"
        assert records.claim(tree, safe.id, "new:1") == 2

    def test_job_of_a_pipeline_no_longer_installed_fails(self, tree: Depot, create: Create) -> None:
        running = create("fragile")
        records.claim(tree, running.id, "gone:1")
        assert records.recover_after_restart(tree, load_registry()) == [(running.id, "failed")]

    def test_job_asked_to_cancel_ends_cancelled(
        self, tree: Depot, create: Create, registry: PipelineRegistry
    ) -> None:
        running = create("noop")
        records.claim(tree, running.id, "gone:1")
        with tree.transaction() as db:
            records.cancel_job(db, running.id)
        assert records.recover_after_restart(tree, registry) == [(running.id, "cancelled")]
        cancelled = job(tree, running.id)
        assert (cancelled.status, cancelled.error) == ("cancelled", "")

    def test_recovering_twice_changes_nothing_more(
        self, tree: Depot, create: Create, registry: PipelineRegistry
    ) -> None:
        running = create("noop")
        records.claim(tree, running.id, "gone:1")
        records.recover_after_restart(tree, registry)
        assert records.recover_after_restart(tree, registry) == []


class TestDispatchable:
    def test_ready_jobs_oldest_first_up_to_the_limit(self, tree: Depot, create: Create) -> None:
        ids = [create().id for _ in range(4)]
        records.claim(tree, ids[1], "w")
        assert records.dispatchable(tree, limit=10) == [(ids[0], 0), (ids[2], 0), (ids[3], 0)]
        assert records.dispatchable(tree, limit=2) == [(ids[0], 0), (ids[2], 0)]

    def test_job_waits_until_the_one_before_it_succeeded(self, tree: Depot, create: Create) -> None:
        parent = create("wait")
        child = create("noop", after=parent.id)
        assert records.dispatchable(tree, 10) == [(parent.id, 0)]
        records.claim(tree, parent.id, "w")
        assert records.dispatchable(tree, 10) == []
        with tree.transaction() as db:
            records.finish(db, parent.id, 1, "succeeded")
        assert records.dispatchable(tree, 10) == [(child.id, 0)]

    @pytest.mark.parametrize("outcome", ["failed", "cancelled"])
    def test_job_after_one_that_did_not_succeed_fails_saying_why(
        self, tree: Depot, create: Create, outcome: str
    ) -> None:
        parent = create("wait")
        child = create("noop", after=parent.id)
        end(tree, parent.id, outcome)
        assert records.dispatchable(tree, 10) == []
        failed = job(tree, child.id)
        assert (failed.status, failed.attempt) == ("failed", 0)
        assert failed.error == f"the job it waits for {outcome}"
