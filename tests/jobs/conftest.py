"""Fixtures for job tests: a hierarchy to run on, Dask clusters to run in, dispatchers to stop.

The `LocalCluster` is shared by the session (starting one per test would cost a second each);
every test still gets its own depot. `external_dask` starts a `dask scheduler` and `dask worker`s
as processes of their own on loopback, as a site with its own cluster would, so that a test can
kill a worker the way an outage does.
"""

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from distributed import Client

from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict
from neurodepot.jobs import records
from neurodepot.jobs.cluster import dask_client
from neurodepot.jobs.dispatcher import Dispatcher, JobTimings
from neurodepot.jobs.records import FINISHED, JobInfo
from neurodepot.jobs.registry import PipelineRegistry, load_registry

# Heartbeats relay a cancellation within half a second; a lease of 30 s is never lost by a busy
# (not dead) worker, so attempt counts stay exact. FAST loses a dead worker's job in 2 s.
STEADY = JobTimings(heartbeat_s=0.5, lease_s=30)
FAST = JobTimings(heartbeat_s=0.5, lease_s=2)
WAIT_S = 30
START_S = 30

WaitFor = Callable[..., JobInfo]
Dispatch = Callable[..., Dispatcher]


@pytest.fixture
def registry() -> PipelineRegistry:
    return load_registry()


@pytest.fixture(scope="session")
def local_client() -> Iterator[Client]:
    """A client of a two-worker `LocalCluster` that this process owns."""
    with dask_client(None, workers=2) as (client, owned):
        assert owned
        yield client


@pytest.fixture
def wait_for(depot: Depot) -> WaitFor:
    """Poll a job until `until(job)` holds (default: it finished); fail after `timeout` s."""

    def wait(
        job_id: int,
        until: Callable[[JobInfo], bool] = lambda job: job.status in FINISHED,
        timeout: float = WAIT_S,
    ) -> JobInfo:
        deadline = time.monotonic() + timeout
        while True:
            with depot.transaction() as db:
                job = records.get_job(db, job_id)
            if until(job):
                return job
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} did not get there within {timeout} s: {job}")
            time.sleep(0.05)

    return wait


@pytest.fixture
def dispatch(
    depot: Depot, depot_env: dict[str, str], registry: PipelineRegistry
) -> Iterator[Dispatch]:
    """Start a dispatcher for the test's depot on a client; stopped, and its jobs settled, after.

    Request it after the client's fixture, so that it is stopped before the client closes.
    """
    started: list[Dispatcher] = []

    def start(
        client: Client, timings: JobTimings = STEADY, registry: PipelineRegistry = registry
    ) -> Dispatcher:
        dispatcher = Dispatcher(depot, client, registry, depot_env, timings)
        dispatcher.start()
        started.append(dispatcher)
        return dispatcher

    yield start
    for dispatcher in started:
        dispatcher.stop()
    _settle(depot)


def _settle(depot: Depot) -> None:
    """Cancel what a failed test left unfinished, so no worker keeps running on a dropped depot."""
    with depot.transaction() as db:
        unfinished = [j.id for j in records.list_jobs(db, limit=10_000) if j.status not in FINISHED]
        for job_id in unfinished:
            try:
                records.cancel_job(db, job_id)
            except Conflict:  # it finished meanwhile: nothing left to stop
                continue
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with depot.transaction() as db:
            running = records.count_by_status(db).get("running", 0)
        if not running:
            return
        time.sleep(0.1)
    pytest.fail(f"{running} job(s) still running {WAIT_S} s after they were cancelled")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ExternalDask:
    """A `dask scheduler` and its `dask worker`s, each a process of its own on loopback.

    Workers run without a nanny: the process started here is the one that runs tasks (its pid is
    in the job's `worker`), and a killed worker stays dead instead of being restarted.
    """

    logs: Path
    port: int = field(default_factory=free_port)
    scheduler: "subprocess.Popen[bytes] | None" = None
    workers: list["subprocess.Popen[bytes]"] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _spawn(self, name: str, module: str, *args: str) -> "subprocess.Popen[bytes]":
        with (self.logs / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT
            )

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn(
            "scheduler",
            "distributed.cli.dask_scheduler",
            *("--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"),
        )
        deadline = time.monotonic() + START_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.scheduler.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Dask scheduler did not start:\n{self.log('scheduler')}")
                time.sleep(0.05)

    def start_worker(self) -> int:
        """Start one single-threaded worker; return its pid."""
        worker = self._spawn(
            f"worker-{len(self.workers)}",
            "distributed.cli.dask_worker",
            self.address,
            *("--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"),
            *("--death-timeout", str(START_S)),
        )
        self.workers.append(worker)
        return worker.pid

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """Workers first, then the scheduler; whatever does not stop in time is killed."""
        processes = [*self.workers, *([self.scheduler] if self.scheduler else [])]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def external_dask(tmp_path: Path) -> Iterator[ExternalDask]:
    """A running scheduler with no workers yet (`start_worker` adds them); all stopped after."""
    cluster = ExternalDask(tmp_path / "dask-logs")
    cluster.logs.mkdir()
    try:
        cluster.start_scheduler()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def external_client(external_dask: ExternalDask) -> Iterator[Client]:
    """A client of `external_dask`, closed before its processes stop."""
    with dask_client(external_dask.address) as (client, owned):
        assert not owned
        yield client
