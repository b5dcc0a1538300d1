"""Jobs beside a long-running process: connect to Dask, recover, dispatch; retry the connection.

An unreachable scheduler does not stop the server: the service logs a warning, keeps trying,
and queued jobs wait until it connects.
"""

import logging
import threading
from collections.abc import Mapping
from contextlib import ExitStack

from neurodepot.depot.folder import Depot
from neurodepot.errors import Unavailable
from neurodepot.jobs.cluster import dask_client
from neurodepot.jobs.dispatcher import Dispatcher, JobTimings
from neurodepot.jobs.registry import PipelineRegistry

logger = logging.getLogger("neurodepot.jobs")

RECONNECT_S = 15.0


class JobService:
    """Runs a dispatcher in a background thread for as long as the process lives.

    `recover` re-queues jobs left running by a crash; only the server, which owns its cluster,
    asks for it (a one-off `run --wait` must not touch jobs another process is running).
    """

    def __init__(
        self,
        depot: Depot,
        registry: PipelineRegistry,
        env: Mapping[str, str],
        recover: bool,
    ) -> None:
        self._depot = depot
        self._registry = registry
        self._env = dict(env)
        self._recover = recover
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-service", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        settings = self._depot.settings
        timings = JobTimings(settings.job_heartbeat_s, settings.job_lease_s)
        while not self._stop.is_set():
            with ExitStack() as stack:
                try:
                    client, owned = stack.enter_context(
                        dask_client(settings.dask_scheduler, settings.dask_workers)
                    )
                except Unavailable as problem:
                    logger.warning(
                        "jobs wait: no Dask scheduler",
                        extra={"fields": {"reason": problem.message, "retry_in_s": RECONNECT_S}},
                    )
                    self._stop.wait(RECONNECT_S)
                    continue
                dispatcher = Dispatcher(self._depot, client, self._registry, self._env, timings)
                if self._recover and owned:
                    dispatcher.recover()
                dispatcher.start()
                self.connected.set()
                logger.info(
                    "jobs dispatching",
                    extra={"fields": {"scheduler": settings.dask_scheduler or "local cluster"}},
                )
                self._stop.wait()
                dispatcher.stop()
