"""Per-job overhead and throughput of neurodepot's job runner, next to plain Dask, in one run.

What is measured, with the built-in `noop` pipeline (it only checks for cancellation, so every
millisecond is the runner's own):

- latency: one job at a time, queue -> done. Each job is created in its own transaction and
  awaited by polling its row every `POLL_JOB_S` (read-only transactions, which take no lock on
  SQLite, so the polling does not hold the workers up); a random pause of up to one dispatcher
  poll interval before each job makes queue times land anywhere in the dispatcher's cycle, as
  a user's would. Median and p95 of the observed times, and the same split by the job row's
  own timestamps: queued -> started (dispatcher poll, Dask submit, claim) and started ->
  finished (the worker's work: reading the job, staging, heartbeat thread, pipeline, commit).
  Peer: `client.submit(...).result()` of a trivial function, one at a time.
- throughput: `--jobs` jobs created in one transaction, timed (creation included) until all have
  succeeded, by polling the count of jobs per status. Peers in the same run: calling the `noop`
  pipeline's `run` in a loop with a real `JobContext` and no database (the ceiling: what the
  pipeline itself costs), and plain Dask, `client.submit` of a trivial function `--jobs` times and
  `gather` (the meaningful peer: what scheduling on this cluster costs without job rows).
- worker-side cost: `execute_job` called in this process, one job after another, with no Dask
  and no dispatcher: the database work and bookkeeping each job costs wherever it runs.

Why: a pipeline run per series or per session is only worth dispatching through neurodepot if
its overhead is small next to the work (dcm2niix converts a series in ~0.1 s, see PEERS.md).
Absolute figures drift between runs and machines, so the peers run alongside and the ratios
(neurodepot / peer) are printed; throughput figures are medians of `--repeat` interleaved runs.

Everything runs in a temporary depot (SQLite, or PostgreSQL in a private schema with
`--database-url`) on a `LocalCluster` of `--workers` single-threaded processes listening on
loopback only, started once; all of it is removed at the end. Every wait is bounded.
Run: `.venv/bin/python bench/jobs.py [--jobs 500] [--workers 2] [--repeat 3] [--quick]
[--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]`.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from distributed import Client
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from neurodepot.catalog import hierarchy
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot, init_depot
from neurodepot.jobs import records
from neurodepot.jobs.cluster import dask_client
from neurodepot.jobs.context import JobContext
from neurodepot.jobs.dispatcher import POLL_S, Dispatcher, JobTimings
from neurodepot.jobs.executor import execute_job
from neurodepot.jobs.models import Job
from neurodepot.jobs.registry import PipelineRegistry, load_registry

PROJECT = "BENCH"
PIPELINE = "noop"
POLL_JOB_S = 0.005
POLL_COUNTS_S = 0.02
JOB_TIMEOUT_S = 30.0
BATCH_TIMEOUT_BASE_S = 60.0
BATCH_TIMEOUT_PER_JOB_S = 0.5
WARM_UP_JOBS_PER_WORKER = 4
SEED = 1234

NEURODEPOT = "neurodepot jobs"
LOOP = "noop run() in a loop"
DASK = "plain Dask submit+gather"
IN_PROCESS = "execute_job in-process"


@dataclass(frozen=True)
class BenchConfig:
    jobs: int
    latency_jobs: int
    workers: int
    repeat: int
    database_url: str | None


@dataclass(frozen=True)
class JobTiming:
    """One job's queue -> done time as seen by the caller, and split by its row's timestamps."""

    observed_s: float
    queued_to_started_s: float
    started_to_finished_s: float


@dataclass
class Results:
    """Seconds per run of each throughput contender, and latency samples (seconds)."""

    jobs: int
    throughput_s: dict[str, list[float]] = field(default_factory=dict)
    create_s: list[float] = field(default_factory=list)
    job_timings: list[JobTiming] = field(default_factory=list)
    dask_latency_s: list[float] = field(default_factory=list)

    def add(self, label: str, seconds: float) -> None:
        self.throughput_s.setdefault(label, []).append(seconds)

    def rate(self, label: str) -> float:
        return self.jobs / statistics.median(self.throughput_s[label])


def parse_args(argv: Sequence[str]) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, help="jobs per throughput run (default 500)")
    parser.add_argument("--latency-jobs", type=int, help="single jobs per run (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (2)")
    parser.add_argument("--repeat", type=int, help="runs per contender, median kept (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help="few jobs, one run: checks that the script works"
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL database to use, in a private schema dropped at the end "
        "(default: SQLite in the temporary depot)",
    )
    args = parser.parse_args(argv)
    defaults = (
        {"jobs": 50, "latency_jobs": 5, "repeat": 1}
        if args.quick
        else {"jobs": 500, "latency_jobs": 20, "repeat": 3}
    )
    values = {
        key: default if getattr(args, key) is None else getattr(args, key)
        for key, default in defaults.items()
    }
    if min(*values.values(), args.workers) < 1:
        parser.error("--jobs, --latency-jobs, --workers and --repeat must be at least 1")
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a postgresql:// or postgresql+psycopg:// URL")
    return BenchConfig(**values, workers=args.workers, database_url=args.database_url)


# --- the depot -------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def private_schema(url: str) -> Iterator[str]:
    """A URL whose connections work in a fresh schema, dropped afterwards (as tests/conftest)."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(_libpq(url), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def database_env(database_url: str | None) -> Iterator[dict[str, str]]:
    """The environment the depot is opened with, here and on every worker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURODEPOT_")}
    if database_url is None:
        yield env
        return
    with private_schema(database_url) as schema_url:
        yield {**env, "NEURODEPOT_DATABASE_URL": schema_url}


def open_bench_depot(root: Path, env: dict[str, str]) -> Depot:
    depot = init_depot(root, env=env)
    with depot.transaction() as db:
        hierarchy.create_project(db, PROJECT)
    return depot


def queue_noop(depot: Depot, registry: PipelineRegistry, count: int) -> list[int]:
    """`count` noop jobs on the bench project, created in one transaction."""
    with depot.transaction() as db:
        return [
            records.create_job(db, registry, PIPELINE, Target(PROJECT), {}, "bench").id
            for _ in range(count)
        ]


@contextmanager
def dispatching(
    depot: Depot, client: Client, registry: PipelineRegistry, env: dict[str, str]
) -> Iterator[None]:
    dispatcher = Dispatcher(depot, client, registry, env, JobTimings())
    dispatcher.start()
    try:
        yield
    finally:
        dispatcher.stop()


# --- waiting, bounded ------------------------------------------------------------------------


def wait_for_job(depot: Depot, job_id: int) -> records.JobInfo:
    """Poll until the job has finished; raise when it did not succeed or took too long."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        with depot.reading() as db:
            job = records.get_job(db, job_id, with_log=False)
        if job.status in records.FINISHED:
            if job.status != "succeeded":
                raise RuntimeError(f"job {job_id} {job.status}: {job.error or job.message}")
            return job
        time.sleep(POLL_JOB_S)
    raise TimeoutError(f"job {job_id} did not finish within {JOB_TIMEOUT_S} s")


def status_counts(db: Session) -> dict[str, int]:
    """What `records.count_by_status` is meant to return.

    That function raises TypeError as of commit 29870ad (`dict()` of a `Result`, which has a
    `keys()` method, so `dict` indexes it as a mapping); use it here once it is fixed.
    """
    return dict(db.execute(select(Job.status, func.count()).group_by(Job.status)).all())


def wait_for_succeeded(depot: Depot, expected: int, timeout_s: float) -> None:
    """Poll the counts per status until `expected` jobs in all have succeeded; a failure raises."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with depot.reading() as db:
            counts = status_counts(db)
        unsuccessful = counts.get("failed", 0) + counts.get("cancelled", 0)
        if unsuccessful:
            raise RuntimeError(f"{unsuccessful} job(s) did not succeed: {counts}")
        if counts.get("succeeded", 0) >= expected:
            return
        time.sleep(POLL_COUNTS_S)
    raise TimeoutError(f"jobs not all succeeded within {timeout_s:.0f} s: {counts}")


def batch_timeout_s(count: int) -> float:
    return BATCH_TIMEOUT_BASE_S + BATCH_TIMEOUT_PER_JOB_S * count


def succeeded_so_far(depot: Depot) -> int:
    with depot.reading() as db:
        return status_counts(db).get("succeeded", 0)


# --- the contenders --------------------------------------------------------------------------


def time_one_job(depot: Depot, registry: PipelineRegistry) -> JobTiming:
    start = time.perf_counter()
    (job_id,) = queue_noop(depot, registry, 1)
    job = wait_for_job(depot, job_id)
    observed = time.perf_counter() - start
    assert job.started_at is not None and job.finished_at is not None
    return JobTiming(
        observed,
        (job.started_at - job.created_at).total_seconds(),
        (job.finished_at - job.started_at).total_seconds(),
    )


def time_job_batch(depot: Depot, registry: PipelineRegistry, count: int) -> tuple[float, float]:
    """Seconds from creating `count` jobs until all succeeded, and of the creation alone."""
    expected = succeeded_so_far(depot) + count
    start = time.perf_counter()
    queue_noop(depot, registry, count)
    created = time.perf_counter() - start
    wait_for_succeeded(depot, expected, batch_timeout_s(count))
    return time.perf_counter() - start, created


def time_pipeline_loop(registry: PipelineRegistry, context: JobContext, count: int) -> float:
    run = registry.get(PIPELINE).run
    start = time.perf_counter()
    for _ in range(count):
        run(context)
    return time.perf_counter() - start


def trivial_task(value: int) -> int:
    return value


def time_dask_batch(client: Client, count: int) -> float:
    start = time.perf_counter()
    futures = [client.submit(trivial_task, index, pure=False) for index in range(count)]
    client.gather(futures)
    return time.perf_counter() - start


def time_dask_single(client: Client) -> float:
    start = time.perf_counter()
    client.submit(trivial_task, 0, pure=False).result(timeout=JOB_TIMEOUT_S)
    return time.perf_counter() - start


def time_in_process(
    depot: Depot, registry: PipelineRegistry, env: dict[str, str], count: int
) -> float:
    """`execute_job` of `count` new jobs in this process; the dispatcher must be stopped."""
    job_ids = queue_noop(depot, registry, count)
    root = str(depot.settings.root)
    heartbeat_s = JobTimings().heartbeat_s
    start = time.perf_counter()
    for job_id in job_ids:
        outcome = execute_job(root, env, job_id, heartbeat_s)
        if outcome != "succeeded":
            raise RuntimeError(f"job {job_id} run in this process: {outcome}")
    return time.perf_counter() - start


# --- running the contenders ------------------------------------------------------------------


def warm_up(depot: Depot, registry: PipelineRegistry, client: Client, workers: int) -> None:
    """Untimed: workers import neurodepot and open the depot; Dask sends its first tasks."""
    time_dask_batch(client, 10 * workers)
    count = WARM_UP_JOBS_PER_WORKER * workers
    time_job_batch(depot, registry, count)


def run_latency(
    depot: Depot,
    registry: PipelineRegistry,
    client: Client,
    config: BenchConfig,
    results: Results,
    rng: random.Random,
) -> None:
    for _ in range(config.latency_jobs):
        time.sleep(rng.uniform(0, POLL_S))
        results.job_timings.append(time_one_job(depot, registry))
    for _ in range(config.latency_jobs):
        results.dask_latency_s.append(time_dask_single(client))


def run_throughput(
    depot: Depot,
    registry: PipelineRegistry,
    client: Client,
    context: JobContext,
    results: Results,
) -> None:
    seconds, created = time_job_batch(depot, registry, results.jobs)
    results.add(NEURODEPOT, seconds)
    results.create_s.append(created)
    results.add(LOOP, time_pipeline_loop(registry, context, results.jobs))
    results.add(DASK, time_dask_batch(client, results.jobs))


def run_on_cluster(
    depot: Depot,
    registry: PipelineRegistry,
    env: dict[str, str],
    config: BenchConfig,
    results: Results,
    staging: Path,
) -> None:
    """Latency and throughput runs, interleaved, on one cluster with one dispatcher."""
    context = JobContext(depot, 0, 0, Target(PROJECT), {}, staging)
    rng = random.Random(SEED)
    with (
        dask_client(None, config.workers) as (client, _),
        dispatching(depot, client, registry, env),
    ):
        warm_up(depot, registry, client, config.workers)
        for _ in range(config.repeat):
            run_latency(depot, registry, client, config, results, rng)
            run_throughput(depot, registry, client, context, results)


def run_in_process(
    depot: Depot, registry: PipelineRegistry, env: dict[str, str], results: Results, repeat: int
) -> None:
    time_in_process(depot, registry, env, 1)
    for _ in range(repeat):
        results.add(IN_PROCESS, time_in_process(depot, registry, env, results.jobs))


# --- printing --------------------------------------------------------------------------------


def percentile(samples: Sequence[float], percent: int) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[percent - 1]


def describe_ms(samples: Sequence[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:7.1f} ms, "
        f"p95 {percentile(samples, 95) * 1000:7.1f} ms"
    )


def print_header(config: BenchConfig) -> None:
    database = "PostgreSQL (private schema)" if config.database_url else "SQLite"
    timings = JobTimings()
    print(
        f"{database} depot; LocalCluster of {config.workers} single-threaded worker process(es) "
        f"on 127.0.0.1; dispatcher poll {POLL_S} s, heartbeat {timings.heartbeat_s} s; "
        f"{config.repeat} run(s), interleaved; load average {os.getloadavg()[0]:.2f}"
    )


def print_latency(results: Results) -> None:
    timings = results.job_timings
    print(
        f"\nlatency, one {PIPELINE} job at a time ({len(timings)} jobs, each queued after a "
        f"random pause of up to {POLL_S} s):"
    )
    print(
        f"  {'neurodepot queue -> done':<34} {describe_ms([t.observed_s for t in timings])}"
        f"  (observed, polling every {POLL_JOB_S * 1000:.0f} ms)"
    )
    print(
        f"  {'  queued -> started (job row)':<34} "
        f"{describe_ms([t.queued_to_started_s for t in timings])}"
    )
    print(
        f"  {'  started -> finished (job row)':<34} "
        f"{describe_ms([t.started_to_finished_s for t in timings])}"
    )
    print(f"  {'plain Dask submit().result()':<34} {describe_ms(results.dask_latency_s)}")
    ratio = statistics.median(t.observed_s for t in timings) / statistics.median(
        results.dask_latency_s
    )
    print(f"  ratio of medians neurodepot / plain Dask: {ratio:.1f}x the time")


def print_throughput(results: Results, repeat: int) -> None:
    print(f"\nthroughput, {results.jobs} {PIPELINE} jobs, median of {repeat}:")
    units = {NEURODEPOT: "jobs/s", LOOP: "calls/s", DASK: "tasks/s", IN_PROCESS: "jobs/s"}
    for label, runs in results.throughput_s.items():
        rate = results.rate(label)
        listed = ", ".join(f"{seconds:.4g}" for seconds in runs)
        print(
            f"  {label:<26} {rate:12.1f} {units[label]:<8} {1000 / rate:9.4f} ms each  "
            f"(runs, s: {listed})"
        )
    print(
        f"  creating {results.jobs} job rows in one transaction: median "
        f"{statistics.median(results.create_s):.3f} s (included above)"
    )
    ours = results.rate(NEURODEPOT)
    print(
        f"  ratio neurodepot jobs/s / loop calls/s: {ours / results.rate(LOOP):.2e}; "
        f"/ plain Dask tasks/s: {ours / results.rate(DASK):.3f}"
    )


def main(argv: Sequence[str]) -> None:
    config = parse_args(argv)
    results = Results(config.jobs)
    with (
        tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp,
        database_env(config.database_url) as env,
    ):
        print_header(config)
        depot = open_bench_depot(Path(tmp) / "depot", env)
        try:
            registry = load_registry()
            run_on_cluster(depot, registry, env, config, results, Path(tmp) / "staging")
            run_in_process(depot, registry, env, results, config.repeat)
        finally:
            depot.close()
    print_latency(results)
    print_throughput(results, config.repeat)


if __name__ == "__main__":
    main(sys.argv[1:])
