"""`/api/v1` projects, subjects, sessions and scans, as the local operator sees them."""

import httpx
import pytest

from neurodepot.catalog import resources
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot

pytestmark = pytest.mark.anyio

API = "/api/v1"
INVALID_LABELS = ["", "a b", "a.b", "x" * 65, "sub\u00e9", "a;b", "a*"]


def assert_error(response: httpx.Response, status: int, error: str, *words: str) -> str:
    """Check a domain error's status and JSON shape; return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == error
    for word in words:
        assert word in body["message"]
    return body["message"]


async def post(client: httpx.AsyncClient, url: str, **body: object) -> httpx.Response:
    return await client.post(f"{API}{url}", json=body)


class TestProjects:
    async def test_a_new_depot_lists_no_projects(self, operator_client: httpx.AsyncClient):
        response = await operator_client.get(f"{API}/projects")
        assert response.status_code == 200
        assert response.json() == []

    async def test_created_project_is_returned_with_201_and_readable(
        self, operator_client: httpx.AsyncClient
    ):
        created = await post(
            operator_client, "/projects", label="Study_1", name="A study", description="why"
        )
        assert created.status_code == 201
        body = created.json()
        assert body["label"] == "Study_1"
        assert body["name"] == "A study"
        assert body["description"] == "why"
        assert body["subject_count"] == 0

        read = await operator_client.get(f"{API}/projects/Study_1")
        assert read.status_code == 200
        assert read.json() == body

    async def test_name_defaults_to_the_label(self, operator_client: httpx.AsyncClient):
        created = await post(operator_client, "/projects", label="P")
        assert created.json()["name"] == "P"

    async def test_projects_are_listed_by_label(self, operator_client: httpx.AsyncClient):
        for label in ("c", "a", "b"):
            assert (await post(operator_client, "/projects", label=label)).status_code == 201
        listed = (await operator_client.get(f"{API}/projects")).json()
        assert [p["label"] for p in listed] == ["a", "b", "c"]

    async def test_duplicate_project_is_a_409_conflict(self, operator_client: httpx.AsyncClient):
        await post(operator_client, "/projects", label="P")
        again = await post(operator_client, "/projects", label="P", name="other")
        assert_error(again, 409, "Conflict", "'P'", "already exists")
        assert len((await operator_client.get(f"{API}/projects")).json()) == 1

    @pytest.mark.parametrize("label", INVALID_LABELS)
    async def test_invalid_project_label_is_422_and_creates_nothing(
        self, operator_client: httpx.AsyncClient, label: str
    ):
        response = await post(operator_client, "/projects", label=label)
        assert_error(response, 422, "Invalid", "project label")
        assert (await operator_client.get(f"{API}/projects")).json() == []

    async def test_missing_label_is_422(self, operator_client: httpx.AsyncClient):
        response = await operator_client.post(f"{API}/projects", json={"name": "no label"})
        assert response.status_code == 422

    @pytest.mark.parametrize(
        "url",
        [
            "/projects/not.a.label",
            "/projects/P/subjects/a;b",
            "/projects/P/subjects/S/sessions/%20",
        ],
    )
    async def test_malformed_label_in_the_path_is_422(
        self, operator_client: httpx.AsyncClient, url: str
    ):
        assert_error(await operator_client.get(f"{API}{url}"), 422, "Invalid", "label")

    async def test_unknown_project_is_404(self, operator_client: httpx.AsyncClient):
        response = await operator_client.get(f"{API}/projects/nope")
        assert_error(response, 404, "NotFound", "'nope'")


class TestSubjects:
    async def test_created_subject_is_listed_read_and_counted(
        self, operator_client: httpx.AsyncClient
    ):
        await post(operator_client, "/projects", label="P")
        created = await post(operator_client, "/projects/P/subjects", label="sub-01")
        assert created.status_code == 201
        assert created.json()["project"] == "P"
        assert created.json()["label"] == "sub-01"
        assert created.json()["session_count"] == 0

        listed = await operator_client.get(f"{API}/projects/P/subjects")
        assert listed.status_code == 200
        assert listed.json() == [created.json()]
        read = await operator_client.get(f"{API}/projects/P/subjects/sub-01")
        assert read.json() == created.json()
        project = await operator_client.get(f"{API}/projects/P")
        assert project.json()["subject_count"] == 1

    async def test_subject_labels_are_per_project(self, operator_client: httpx.AsyncClient):
        for project in ("P", "Q"):
            await post(operator_client, "/projects", label=project)
            created = await post(operator_client, f"/projects/{project}/subjects", label="s1")
            assert created.status_code == 201

    async def test_duplicate_subject_is_a_409_conflict(self, operator_client: httpx.AsyncClient):
        await post(operator_client, "/projects", label="P")
        await post(operator_client, "/projects/P/subjects", label="s1")
        again = await post(operator_client, "/projects/P/subjects", label="s1")
        assert_error(again, 409, "Conflict", "'s1'", "'P'")

    async def test_subject_of_unknown_project_is_404(self, operator_client: httpx.AsyncClient):
        created = await post(operator_client, "/projects/nope/subjects", label="s1")
        assert_error(created, 404, "NotFound", "'nope'")
        listed = await operator_client.get(f"{API}/projects/nope/subjects")
        assert_error(listed, 404, "NotFound", "'nope'")
        read = await operator_client.get(f"{API}/projects/nope/subjects/s1")
        assert_error(read, 404, "NotFound", "'nope'")

    async def test_unknown_subject_is_404(self, operator_client: httpx.AsyncClient):
        await post(operator_client, "/projects", label="P")
        read = await operator_client.get(f"{API}/projects/P/subjects/ghost")
        assert_error(read, 404, "NotFound", "'ghost'")

    @pytest.mark.parametrize("label", INVALID_LABELS)
    async def test_invalid_subject_label_is_422(
        self, operator_client: httpx.AsyncClient, label: str
    ):
        await post(operator_client, "/projects", label="P")
        response = await post(operator_client, "/projects/P/subjects", label=label)
        assert_error(response, 422, "Invalid", "subject label")
        assert (await operator_client.get(f"{API}/projects/P/subjects")).json() == []


class TestSessions:
    @pytest.fixture
    async def subject(self, operator_client: httpx.AsyncClient) -> str:
        await post(operator_client, "/projects", label="P")
        await post(operator_client, "/projects/P/subjects", label="S")
        return "/projects/P/subjects/S"

    async def test_created_session_keeps_modality_and_date(
        self, operator_client: httpx.AsyncClient, subject: str
    ):
        created = await post(
            operator_client,
            f"{subject}/sessions",
            label="S_MR1",
            modality="mr",
            acquired_on="2024-03-01",
        )
        assert created.status_code == 201
        body = created.json()
        assert (body["project"], body["subject"], body["label"]) == ("P", "S", "S_MR1")
        assert body["modality"] == "MR"
        assert body["acquired_on"] == "2024-03-01"
        assert body["scan_count"] == 0

        listed = await operator_client.get(f"{API}{subject}/sessions")
        assert listed.json() == [body]
        read = await operator_client.get(f"{API}{subject}/sessions/S_MR1")
        assert read.json() == body
        owner = await operator_client.get(f"{API}{subject}")
        assert owner.json()["session_count"] == 1

    async def test_session_labels_are_unique_across_the_project(
        self, operator_client: httpx.AsyncClient, subject: str
    ):
        await post(operator_client, "/projects/P/subjects", label="T")
        await post(operator_client, f"{subject}/sessions", label="MR1")
        clash = await post(operator_client, "/projects/P/subjects/T/sessions", label="MR1")
        assert_error(clash, 409, "Conflict", "'MR1'", "'P'")

    async def test_session_of_unknown_subject_or_project_is_404(
        self, operator_client: httpx.AsyncClient, subject: str
    ):
        ghost = await post(operator_client, "/projects/P/subjects/ghost/sessions", label="MR1")
        assert_error(ghost, 404, "NotFound", "'ghost'")
        nope = await post(operator_client, "/projects/nope/subjects/S/sessions", label="MR1")
        assert_error(nope, 404, "NotFound", "'nope'")
        listed = await operator_client.get(f"{API}/projects/P/subjects/ghost/sessions")
        assert_error(listed, 404, "NotFound", "'ghost'")
        read = await operator_client.get(f"{API}{subject}/sessions/none")
        assert_error(read, 404, "NotFound", "'none'")

    @pytest.mark.parametrize("label", INVALID_LABELS)
    async def test_invalid_session_label_is_422(
        self, operator_client: httpx.AsyncClient, subject: str, label: str
    ):
        response = await post(operator_client, f"{subject}/sessions", label=label)
        assert_error(response, 422, "Invalid", "session label")

    async def test_malformed_date_is_422(self, operator_client: httpx.AsyncClient, subject: str):
        response = await post(
            operator_client, f"{subject}/sessions", label="MR1", acquired_on="yesterday"
        )
        assert response.status_code == 422
        assert (await operator_client.get(f"{API}{subject}/sessions")).json() == []


class TestScans:
    @pytest.fixture
    async def session(self, operator_client: httpx.AsyncClient) -> str:
        await post(operator_client, "/projects", label="P")
        await post(operator_client, "/projects/P/subjects", label="S")
        await post(operator_client, "/projects/P/subjects/S/sessions", label="E")
        return "/projects/P/subjects/S/sessions/E"

    async def test_created_scans_are_listed_in_creation_order(
        self, operator_client: httpx.AsyncClient, session: str
    ):
        created = []
        for label in ("10", "2", "anat"):
            response = await post(
                operator_client, f"{session}/scans", label=label, type="T1w", modality="mr"
            )
            assert response.status_code == 201
            created.append(response.json())
        assert created[0]["modality"] == "MR"
        assert created[0]["type"] == "T1w"
        assert (created[0]["project"], created[0]["subject"], created[0]["session"]) == (
            "P",
            "S",
            "E",
        )
        listed = await operator_client.get(f"{API}{session}/scans")
        assert listed.json() == created
        read = await operator_client.get(f"{API}{session}/scans/2")
        assert read.json() == created[1]
        owner = await operator_client.get(f"{API}{session}")
        assert owner.json()["scan_count"] == 3

    async def test_duplicate_scan_is_a_409_conflict(
        self, operator_client: httpx.AsyncClient, session: str
    ):
        await post(operator_client, f"{session}/scans", label="1")
        again = await post(operator_client, f"{session}/scans", label="1")
        assert_error(again, 409, "Conflict", "'1'")

    async def test_scan_of_unknown_session_is_404(
        self, operator_client: httpx.AsyncClient, session: str
    ):
        response = await post(operator_client, "/projects/P/subjects/S/sessions/X/scans", label="1")
        assert_error(response, 404, "NotFound", "'X'")
        unknown = await operator_client.get(f"{API}{session}/scans/99")
        assert_error(unknown, 404, "NotFound", "'99'")

    @pytest.mark.parametrize("label", INVALID_LABELS)
    async def test_invalid_scan_label_is_422(
        self, operator_client: httpx.AsyncClient, session: str, label: str
    ):
        response = await post(operator_client, f"{session}/scans", label=label)
        assert_error(response, 422, "Invalid", "scan label")


class TestDeleteProject:
    async def test_empty_project_is_deleted(self, operator_client: httpx.AsyncClient):
        await post(operator_client, "/projects", label="P")
        response = await operator_client.delete(f"{API}/projects/P")
        assert response.status_code == 204
        assert response.content == b""
        assert_error(await operator_client.get(f"{API}/projects/P"), 404, "NotFound")

    async def test_project_with_a_subject_is_refused_with_409(
        self, operator_client: httpx.AsyncClient
    ):
        await post(operator_client, "/projects", label="P")
        await post(operator_client, "/projects/P/subjects", label="S")
        response = await operator_client.delete(f"{API}/projects/P")
        assert_error(response, 409, "Conflict", "'P'", "1 subject")
        assert (await operator_client.get(f"{API}/projects/P/subjects/S")).status_code == 200

    async def test_project_holding_only_files_is_refused_with_409(
        self, operator_client: httpx.AsyncClient, depot: Depot
    ):
        await post(operator_client, "/projects", label="P")
        resources.add_file(depot, Target("P"), "docs", "protocol.txt", [b"protocol"])
        response = await operator_client.delete(f"{API}/projects/P")
        assert_error(response, 409, "Conflict", "'P'")
        assert (await operator_client.get(f"{API}/projects/P")).status_code == 200

    async def test_force_deletes_everything_and_unshared_blobs(
        self, operator_client: httpx.AsyncClient, depot: Depot
    ):
        for project in ("P", "Q"):
            await post(operator_client, "/projects", label=project)
        await post(operator_client, "/projects/P/subjects", label="S")
        await post(operator_client, "/projects/P/subjects/S/sessions", label="E")
        own = resources.add_file(
            depot, Target("P", "S", "E"), "EEG", "rec.edf", [b"only in P"]
        ).file.digest
        shared = resources.add_file(depot, Target("P"), "docs", "a.txt", [b"shared"]).file.digest
        resources.add_file(depot, Target("Q"), "docs", "a.txt", [b"shared"])

        response = await operator_client.delete(f"{API}/projects/P", params={"force": "true"})
        assert response.status_code == 204
        assert_error(await operator_client.get(f"{API}/projects/P"), 404, "NotFound")
        assert_error(
            await operator_client.get(f"{API}/projects/P/subjects/S"), 404, "NotFound", "'P'"
        )
        assert not depot.blobs.exists(own)
        assert depot.blobs.exists(shared)
        kept = await operator_client.get(f"{API}/projects/Q/resources/docs/files/a.txt")
        assert kept.content == b"shared"

    async def test_deleting_an_unknown_project_is_404(self, operator_client: httpx.AsyncClient):
        response = await operator_client.delete(f"{API}/projects/nope", params={"force": "true"})
        assert_error(response, 404, "NotFound", "'nope'")
