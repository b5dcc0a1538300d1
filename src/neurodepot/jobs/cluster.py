"""Connecting to Dask: a `LocalCluster` of processes by default, or an existing scheduler."""

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from distributed import Client, LocalCluster

from neurodepot.errors import Unavailable

logger = logging.getLogger("neurodepot.jobs")

CONNECT_TIMEOUT_S = 10


@contextmanager
def dask_client(
    scheduler: str | None, workers: int | None = None, env: Mapping[str, str] | None = None
) -> Iterator[tuple[Client, bool]]:
    """A client and whether this process owns its cluster (so its running jobs die with it).

    Raises `Unavailable` when `scheduler` cannot be reached.
    """
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except OSError as exc:
            raise Unavailable(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}; check "
                "NEURODEPOT_DASK_SCHEDULER and that the scheduler is running"
            ) from None
        try:
            yield client, False
        finally:
            client.close()
        return
    count = workers or max(1, min(os.cpu_count() or 1, 4))
    with (
        LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # its HTTP server always starts: keep it local
            silence_logs=logging.WARNING,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client, True
