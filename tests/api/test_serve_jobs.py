"""`neurodepot serve` runs queued jobs on its own local cluster, and starts without a scheduler."""

import time
from pathlib import Path

import httpx
import pytest
from tests.api.live_server import serving

JOB_TIMEOUT_S = 90


def queue_manifest(url: str) -> int:
    assert httpx.post(f"{url}/api/v1/projects", json={"label": "P"}).status_code == 201
    put = httpx.put(f"{url}/api/v1/projects/P/resources/notes/files/a.txt", content=b"a\n")
    assert put.status_code == 201
    created = httpx.post(f"{url}/api/v1/jobs", json={"pipeline": "manifest", "target": "P"})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


@pytest.mark.slow
def test_the_server_runs_a_queued_job_and_publishes_its_outputs(
    cli_path: str, initialised_depot: Path, depot_env: dict[str, str], port: int, tmp_path: Path
) -> None:
    with serving(cli_path, initialised_depot, depot_env, port, tmp_path / "log") as (url, _):
        job_id = queue_manifest(url)
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            job = httpx.get(f"{url}/api/v1/jobs/{job_id}").json()
            if job["status"] in {"succeeded", "failed", "cancelled"}:
                break
            time.sleep(0.2)
        assert job["status"] == "succeeded", job
        manifest = httpx.get(f"{url}/api/v1/projects/P/resources/MANIFEST/files/manifest.json")
        assert manifest.status_code == 200
        assert [f["path"] for f in manifest.json()["files"]] == ["a.txt"]


@pytest.mark.slow
def test_without_a_reachable_scheduler_the_server_starts_and_jobs_wait(
    cli_path: str, initialised_depot: Path, depot_env: dict[str, str], port: int, tmp_path: Path
) -> None:
    env = dict(depot_env, NEURODEPOT_DASK_SCHEDULER="tcp://127.0.0.1:1")
    log = tmp_path / "log"
    with serving(cli_path, initialised_depot, env, port, log) as (url, _):
        job_id = queue_manifest(url)
        deadline = time.monotonic() + 30  # Dask retries a refused connection for 10 s
        while "jobs wait: no Dask scheduler" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert httpx.get(f"{url}/api/v1/jobs/{job_id}").json()["status"] == "queued"
        assert httpx.get(f"{url}/healthz").status_code == 200
    text = log.read_text()
    assert "tcp://127.0.0.1:1" in text
    assert "Traceback" not in text
