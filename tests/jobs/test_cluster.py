"""Connecting to Dask: a local cluster this process owns, a scheduler started apart, none at all."""

import os

import pytest
from distributed import Client

from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.errors import Unavailable
from neurodepot.jobs import cluster, records
from neurodepot.jobs.cluster import dask_client
from neurodepot.jobs.registry import load_registry
from tests.jobs.conftest import Dispatch, ExternalDask, WaitFor


def test_local_cluster_runs_single_threaded_worker_processes(local_client: Client) -> None:
    workers = local_client.scheduler_info()["workers"].values()
    assert [w["nthreads"] for w in workers] == [1, 1]
    pids = set(local_client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids


def test_job_runs_on_a_separately_started_scheduler_and_worker(
    tree: Depot,
    external_dask: ExternalDask,
    external_client: Client,
    dispatch: Dispatch,
    wait_for: WaitFor,
) -> None:
    pid = external_dask.start_worker()
    external_client.wait_for_workers(1, timeout=30)
    with tree.transaction() as db:
        queued = records.create_job(db, load_registry(), "manifest", Target("p"), {}, "t")
    dispatch(external_client)
    done = wait_for(queued.id)
    assert (done.status, done.attempt, done.outputs) == ("succeeded", 1, ["p/MANIFEST"])
    assert done.worker.endswith(f":{pid}")


def test_unreachable_scheduler_is_unavailable_with_what_to_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)  # Dask retries a refusal until then
    with (
        pytest.raises(
            Unavailable, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:1: "
        ) as raised,
        dask_client("tcp://127.0.0.1:1"),
    ):
        pass
    assert "NEURODEPOT_DASK_SCHEDULER" in raised.value.message
