"""The prearchive and bulk import over HTTP: `/api/v1/prearchive…`, `/api/v1/projects/P/import`.

The operator (loopback) may do everything; the anonymous remote caller nothing, and a refused
request changes nothing. Uploads are streamed as the request body, in chunks.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from neurodepot.depot.folder import Depot
from neurodepot.ingest.bulk import import_dicom
from neurodepot.ingest.prearchive import list_studies
from neurodepot.ingest.receive import Override
from tests.ingest.conftest import (
    DATE_SESSION,
    SQLITE_ONLY,
    Archives,
    DicomSource,
    assert_consistent,
    blob_rows,
)

pytestmark = pytest.mark.anyio

IMPORT = "/api/v1/projects/P/import"


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def pending(project: Depot, dicom_source: DicomSource) -> Depot:
    """Project P with the GE (study 1) and Siemens (study 2) studies waiting in the prearchive."""
    assert import_dicom(project, dicom_source.root, Override("P"), archive_after=False).studies == [
        1,
        2,
    ]
    return project


@pytest.fixture
def one_pending(project: Depot, dicom_source: DicomSource) -> Depot:
    """Project P with one Siemens instance waiting in the prearchive as study 1."""
    path = dicom_source.siemens_files()[0]
    assert import_dicom(project, path, Override("P"), archive_after=False).studies == [1]
    return project


def states(depot: Depot) -> list[tuple[int, str]]:
    with depot.reading() as db:
        return [(s.id, s.state) for s in list_studies(db)]


def leftover_uploads(depot: Depot) -> list[Path]:
    return list(depot.settings.work_root.glob("import-*"))


class TestImport:
    async def test_a_streamed_zip_is_imported_and_archived(
        self,
        operator_client: httpx.AsyncClient,
        project: Depot,
        archives: Archives,
        dicom_source: DicomSource,
    ) -> None:
        response = await operator_client.post(IMPORT, content=chunks(archives.zip.read_bytes()))
        assert response.status_code == 200, response.text
        summary = response.json()
        assert (
            summary["files"],
            summary["imported"],
            summary["not_dicom"],
            summary["unreadable"],
        ) == (dicom_source.file_count, 16, 10, 0)
        assert [(a["session"], a["scans"], a["archived"]) for a in summary["archived"]] == [
            (f"P/DEV/{DATE_SESSION}", ["4", "5", "6", "7"], 8),
            (f"P/DEV/{DATE_SESSION}_2", ["3", "4", "5", "6"], 8),
        ]
        assert blob_rows(project) == set(dicom_source.by_sop.values())
        assert states(project) == [(1, "archived"), (2, "archived")]
        assert leftover_uploads(project) == []
        assert_consistent(project)

    async def test_labels_and_review_come_from_the_query(
        self,
        operator_client: httpx.AsyncClient,
        project: Depot,
        archives: Archives,
    ) -> None:
        response = await operator_client.post(
            IMPORT,
            params={"subject": "sub01", "session": "ses01", "prearchive": "true"},
            content=chunks(archives.tar_gz.read_bytes()),
        )
        assert response.status_code == 200, response.text
        assert (response.json()["studies"], response.json()["archived"]) == ([1, 2], [])
        with project.reading() as db:
            labels = [(s.project, s.subject, s.session, s.state) for s in list_studies(db)]
        assert labels == [("P", "sub01", "ses01", "receiving")] * 2

    async def test_a_missing_project_is_404_and_nothing_is_stored(
        self, operator_client: httpx.AsyncClient, project: Depot, archives: Archives
    ) -> None:
        response = await operator_client.post(
            "/api/v1/projects/NOPE/import", content=chunks(archives.zip.read_bytes())
        )
        assert response.status_code == 404
        assert response.json()["error"] == "NotFound"
        assert "project 'NOPE' does not exist" in response.json()["message"]
        assert blob_rows(project) == set()
        assert leftover_uploads(project) == []


class TestPrearchive:
    async def test_studies_are_listed_filtered_and_shown(
        self, operator_client: httpx.AsyncClient, pending: Depot, dicom_source: DicomSource
    ) -> None:
        listed = await operator_client.get("/api/v1/prearchive")
        assert listed.status_code == 200
        assert [(s["id"], s["state"], s["study_instance_uid"]) for s in listed.json()] == [
            (1, "receiving", dicom_source.ge_study),
            (2, "receiving", dicom_source.siemens_study),
        ]
        for query, expected in (
            ({"state": "archived"}, []),
            ({"project": "P"}, [1, 2]),
            ({"unassigned": "true"}, []),
        ):
            filtered = await operator_client.get("/api/v1/prearchive", params=query)
            assert [s["id"] for s in filtered.json()] == expected, query

        bad = await operator_client.get("/api/v1/prearchive", params={"state": "bogus"})
        assert bad.status_code == 422
        assert "unknown prearchive state 'bogus'" in bad.json()["message"]

        shown = await operator_client.get("/api/v1/prearchive/2")
        assert shown.status_code == 200
        detail = shown.json()
        assert detail["study"]["session"] == DATE_SESSION
        assert [(s["series_number"], s["instance_count"]) for s in detail["series"]] == [
            (3, 2),
            (4, 2),
            (5, 2),
            (6, 2),
        ]
        assert detail["conflicts"] == []

        missing = await operator_client.get("/api/v1/prearchive/99")
        assert missing.status_code == 404
        assert "prearchive study 99 does not exist" in missing.json()["message"]

    async def test_a_study_is_moved_archived_and_another_deleted(
        self, operator_client: httpx.AsyncClient, pending: Depot
    ) -> None:
        moved = await operator_client.post(
            "/api/v1/prearchive/2/move",
            json={"project": "P", "subject": "sub01", "session": "ses01"},
        )
        assert moved.status_code == 200, moved.text
        assert (moved.json()["state"], moved.json()["session"]) == ("ready", "ses01")

        archived = await operator_client.post("/api/v1/prearchive/2/archive")
        assert archived.status_code == 200, archived.text
        outcome = archived.json()
        assert (outcome["session"], outcome["archived"], outcome["scans"]) == (
            "P/sub01/ses01",
            8,
            ["3", "4", "5", "6"],
        )
        again = await operator_client.post("/api/v1/prearchive/2/archive")
        assert again.status_code == 409

        deleted = await operator_client.delete("/api/v1/prearchive/1")
        assert deleted.status_code == 200
        assert deleted.json()["instance_count"] == 8
        assert (await operator_client.get("/api/v1/prearchive/1")).status_code == 404
        assert states(pending) == [(2, "archived")]
        assert_consistent(pending)

    @SQLITE_ONLY
    @pytest.mark.parametrize(
        ("body", "status", "fragment"),
        [
            ({"project": "NOPE"}, 404, "project 'NOPE' does not exist"),
            ({"project": "P", "session": "a/b"}, 422, "session label 'a/b'"),
            ({"subject": "s"}, 422, "project"),
        ],
    )
    async def test_a_bad_move_is_refused(
        self,
        operator_client: httpx.AsyncClient,
        pending: Depot,
        body: dict[str, str],
        status: int,
        fragment: str,
    ) -> None:
        response = await operator_client.post("/api/v1/prearchive/1/move", json=body)
        assert response.status_code == status
        assert fragment in response.json()["message"]
        assert states(pending) == [(1, "receiving"), (2, "receiving")]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/v1/prearchive"),
        ("GET", "/api/v1/prearchive/1"),
        ("POST", "/api/v1/prearchive/1/move"),
        ("POST", "/api/v1/prearchive/1/archive"),
        ("DELETE", "/api/v1/prearchive/1"),
        ("POST", IMPORT),
    ],
)
async def test_the_anonymous_caller_is_refused_and_nothing_changes(
    anonymous_client: httpx.AsyncClient,
    one_pending: Depot,
    archives: Archives,
    method: str,
    url: str,
) -> None:
    blobs = blob_rows(one_pending)
    if url.endswith("/move"):
        response = await anonymous_client.request(method, url, json={"project": "P"})
    elif url == IMPORT:
        response = await anonymous_client.post(url, content=chunks(archives.zip.read_bytes()))
    else:
        response = await anonymous_client.request(method, url)
    assert response.status_code == 403
    assert response.json()["error"] == "Denied"
    assert states(one_pending) == [(1, "receiving")]
    assert blob_rows(one_pending) == blobs
    assert leftover_uploads(one_pending) == []
