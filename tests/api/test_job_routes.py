"""`/api/v1/jobs` and `/api/v1/pipelines`: queuing, reading, cancelling, and refusing bad input.

Running jobs on Dask is tested in tests/jobs; here nothing executes, so every job stays queued.
"""

import httpx
import pytest
from sqlalchemy import func, select

from neurodepot.catalog import hierarchy
from neurodepot.depot.folder import Depot
from neurodepot.jobs.models import Job

pytestmark = pytest.mark.anyio


@pytest.fixture
def project(depot: Depot) -> str:
    with depot.transaction() as db:
        hierarchy.create_project(db, "P")
        hierarchy.create_subject(db, "P", "S")
    return "P"


def job_count(depot: Depot) -> int:
    with depot.reading() as db:
        return db.scalar(select(func.count()).select_from(Job)) or 0


async def test_a_job_is_queued_read_listed_and_cancelled(
    operator_client: httpx.AsyncClient, project: str
) -> None:
    created = await operator_client.post(
        "/api/v1/jobs", json={"pipeline": "wait", "target": "P/S", "params": {"seconds": 3}}
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "queued"
    assert job["params"] == {"seconds": 3.0, "steps": 10, "fail": False}
    assert job["requested_by"] == "operator@loopback"
    assert job["max_attempts"] == 2

    read = (await operator_client.get(f"/api/v1/jobs/{job['id']}")).json()
    assert read["target"] == "P/S" and read["progress"] == 0.0
    listed = (await operator_client.get("/api/v1/jobs", params={"status": "queued"})).json()
    assert [j["id"] for j in listed] == [job["id"]]

    cancelled = await operator_client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await operator_client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["message"]


async def test_pipelines_are_listed_with_what_they_write(
    operator_client: httpx.AsyncClient,
) -> None:
    found = {p["name"]: p for p in (await operator_client.get("/api/v1/pipelines")).json()}
    assert {"noop", "wait", "manifest"} <= set(found)
    assert found["manifest"]["outputs"] == ["MANIFEST"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"pipeline": "nope", "target": "P"}, 404, "known pipelines"),
        ({"pipeline": "wait", "target": "P", "params": {"seconds": -1}}, 422, "seconds"),
        ({"pipeline": "wait", "target": "P", "params": {"seconds": "soon"}}, 422, "seconds"),
        ({"pipeline": "noop", "target": "Ghost"}, 404, "Ghost"),
        ({"pipeline": "noop", "target": "P/no.such"}, 422, "subject label"),
        ({"pipeline": "noop", "target": "P/S/E/1/extra"}, 422, "PROJECT[/SUBJECT"),
        ({"pipeline": "noop"}, 422, "target"),
    ],
)
async def test_bad_requests_are_refused_and_queue_nothing(
    operator_client: httpx.AsyncClient,
    project: str,
    depot: Depot,
    body: dict[str, object],
    status: int,
    fragment: str,
) -> None:
    response = await operator_client.post("/api/v1/jobs", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"]
    assert job_count(depot) == 0


async def test_an_unknown_job_is_not_found(operator_client: httpx.AsyncClient) -> None:
    response = await operator_client.get("/api/v1/jobs/4242")
    assert response.status_code == 404
    assert "4242" in response.json()["message"]


async def test_an_anonymous_caller_can_neither_queue_nor_read_jobs(
    anonymous_client: httpx.AsyncClient, project: str, depot: Depot
) -> None:
    response = await anonymous_client.post("/api/v1/jobs", json={"pipeline": "noop", "target": "P"})
    assert response.status_code == 403
    assert (await anonymous_client.get("/api/v1/jobs")).status_code == 403
    assert job_count(depot) == 0
