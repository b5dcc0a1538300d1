"""Handing queued jobs to Dask, and noticing jobs whose worker died.

One dispatcher runs beside the server (or beside a `neurodepot run --wait`). It polls the job
table, submits ready jobs to the Dask client, and reaps running jobs whose lease expired. All of
its knowledge is in the database, so it can be stopped and restarted at any time.
"""

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from distributed import Client, Future

from neurodepot.depot.folder import Depot
from neurodepot.jobs import records
from neurodepot.jobs.executor import execute_job
from neurodepot.jobs.registry import PipelineRegistry

logger = logging.getLogger("neurodepot.jobs")

POLL_S = 0.05
SUBMIT_BATCH = 200


@dataclass(frozen=True)
class JobTimings:
    """How often workers renew a lease, and how long until a silent worker's job is reaped."""

    heartbeat_s: float = 5.0
    lease_s: float = 30.0


class Dispatcher:
    def __init__(
        self,
        depot: Depot,
        client: Client,
        registry: PipelineRegistry,
        env: Mapping[str, str],
        timings: JobTimings = JobTimings(),
    ) -> None:
        self._depot = depot
        self._client = client
        self._registry = registry
        # Workers open the depot exactly as this process did, whatever their own environment.
        self._env = {**env, "NEURODEPOT_DATABASE_URL": depot.settings.database_url}
        self._timings = timings
        self._submitted: dict[tuple[int, int], Future] = {}
        self._next_reap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-dispatcher", daemon=True)

    def recover(self) -> list[tuple[int, str]]:
        """After a crash of a server that owned its cluster: re-queue or fail running jobs."""
        changed = records.recover_after_restart(self._depot, self._registry)
        for job_id, status in changed:
            logger.warning("job interrupted", extra={"fields": {"job": job_id, "now": status}})
        return changed

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def tick(self) -> int:
        """One round: reap stale jobs, forget finished futures, submit ready jobs."""
        if time.monotonic() >= self._next_reap:
            self._next_reap = time.monotonic() + self._timings.lease_s / 4
            for job_id, status in records.reap_stale(self._depot, self._timings.lease_s):
                logger.warning(
                    "job lost its worker", extra={"fields": {"job": job_id, "now": status}}
                )
        self._submitted = {k: f for k, f in self._submitted.items() if not f.done()}
        submitted = 0
        for job_id, attempt in records.dispatchable(self._depot, SUBMIT_BATCH):
            if (job_id, attempt) in self._submitted:
                continue
            self._submitted[(job_id, attempt)] = self._client.submit(
                execute_job,
                str(self._depot.settings.root),
                self._env,
                job_id,
                self._timings.heartbeat_s,
                key=f"neurodepot-job-{job_id}-{attempt}",
                pure=False,
            )
            submitted += 1
        return submitted

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                submitted = self.tick()
            except Exception:  # keep dispatching; the next round retries (e.g. database blip)
                logger.exception("dispatch round failed")
                submitted = 0
            if not submitted:
                self._stop.wait(POLL_S)
