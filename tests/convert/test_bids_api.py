"""`/api/v1/projects/{project}/bids/preview` and `/bids.zip` over HTTP; conversion queued by
a project's automatic pipelines when a session is archived."""

import io
import zipfile

import httpx
import pytest

from neurodepot.catalog.target import Target
from neurodepot.consent import records as consent
from neurodepot.depot.folder import Depot
from neurodepot.jobs import records
from neurodepot.jobs.executor import execute_job_here
from neurodepot.jobs.registry import load_registry
from neurodepot.jobs.triggers import set_project_pipelines
from tests.convert.conftest import SIEMENS_SERIES, Convert, Studies, archive

pytestmark = pytest.mark.anyio


@pytest.fixture
def converted(depot: Depot, studies: Studies, convert: Convert) -> Depot:
    archive(depot, studies((), SIEMENS_SERIES))
    assert convert("P").status == "succeeded"
    return depot


async def test_the_preview_is_served_as_json(
    converted: Depot, operator_client: httpx.AsyncClient
) -> None:
    response = await operator_client.get("/api/v1/projects/P/bids/preview")

    assert response.status_code == 200
    rows = response.json()
    assert [(r["scan"], r["rule"]) for r in rows] == [
        (f"P/DEV/DEV_20180918/{n}", "functional: BOLD") for n in (3, 4, 5, 6)
    ]
    only = await operator_client.get("/api/v1/projects/P/bids/preview", params={"subject": "DEV"})
    assert only.json() == rows


async def test_the_zip_is_streamed_and_holds_a_dataset(
    converted: Depot, operator_client: httpx.AsyncClient
) -> None:
    async with operator_client.stream("GET", "/api/v1/projects/P/bids.zip") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        assert "P-bids.zip" in response.headers["content-disposition"]
        assert "content-length" not in response.headers  # produced while sent
        body = b"".join([chunk async for chunk in response.aiter_bytes()])

    with zipfile.ZipFile(io.BytesIO(body)) as archive_file:
        names = archive_file.namelist()
        assert archive_file.testzip() is None
    assert "P-bids/dataset_description.json" in names
    assert sum(n.endswith("_bold.nii.gz") for n in names) == 4


async def test_a_subject_who_withdrew_consent_is_left_out_of_the_zip(
    converted: Depot, operator_client: httpx.AsyncClient
) -> None:
    with converted.transaction() as db:
        consent.withdraw_consent(db, "test", "P", "DEV")
    response = await operator_client.get("/api/v1/projects/P/bids.zip")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive_file:
        names = archive_file.namelist()
    assert "P-bids/dataset_description.json" in names
    assert not [n for n in names if "sub-" in n]
    named = await operator_client.get("/api/v1/projects/P/bids.zip", params={"subject": "DEV"})
    assert named.status_code == 409 and "withdrew consent" in named.json()["message"]


async def test_unknown_projects_and_subjects_are_404(
    converted: Depot, operator_client: httpx.AsyncClient
) -> None:
    assert (await operator_client.get("/api/v1/projects/Nope/bids.zip")).status_code == 404
    missing = await operator_client.get(
        "/api/v1/projects/P/bids/preview", params={"subject": "nobody"}
    )
    assert missing.status_code == 404


async def test_the_anonymous_caller_gets_neither(
    converted: Depot, anonymous_client: httpx.AsyncClient
) -> None:
    for path in ("/api/v1/projects/P/bids/preview", "/api/v1/projects/P/bids.zip"):
        assert (await anonymous_client.get(path)).status_code == 403


def test_a_project_that_asks_for_it_converts_each_archived_session(
    depot: Depot, studies: Studies
) -> None:
    registry = load_registry()
    archive(depot, studies((), ("mr_0003",)), project="A")
    with depot.transaction() as db:
        set_project_pipelines(db, registry, "A", [("convert", {})])

    archive(depot, studies(("mr_0004",), (), name="ge"), project="A")

    with depot.transaction() as db:
        [job] = records.list_jobs(db, pipeline="convert")
    assert (job.target, job.status) == ("A/DEV/DEV_20180918_2", "queued")
    execute_job_here(depot, job.id, 5.0)
    with depot.reading() as db:
        from neurodepot.catalog.resources import get_resource

        nifti = get_resource(db, Target("A", "DEV", "DEV_20180918_2", "4"), "NIFTI")
    assert sorted(f.path for f in nifti.files) == ["4.json", "4.nii.gz"]
