"""Resources and their files at every level: streamed upload, download, ranges and deletion."""

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import func, select

from neurodepot.api.app import create_app
from neurodepot.catalog import hierarchy, resources
from neurodepot.catalog.models import Resource, ResourceFile
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.depot.orm import Blob

pytestmark = pytest.mark.anyio

LEVELS = ["project", "subject", "session", "scan"]
LOOPBACK = ("127.0.0.1", 50000)
CONTENT = bytes(range(256)) * 40  # 10 KiB, every byte value, no two equal 10-byte windows
DIGEST = hashlib.sha256(CONTENT).hexdigest()


@dataclass(frozen=True)
class Tree:
    """Project P with subject S, session E and scan 1: a target and a URL at each level."""

    targets: dict[str, Target]

    def url(self, level: str) -> str:
        """`/api/v1/projects/P[/subjects/S[/sessions/E[/scans/1]]]`."""
        target = self.targets[level]
        url = f"/api/v1/projects/{target.project}"
        for name, label in (
            ("subjects", target.subject),
            ("sessions", target.session),
            ("scans", target.scan),
        ):
            if label is not None:
                url += f"/{name}/{label}"
        return url


@pytest.fixture
def tree(depot: Depot) -> Tree:
    with depot.transaction() as db:
        hierarchy.create_project(db, "P")
        hierarchy.create_subject(db, "P", "S")
        hierarchy.create_session(db, "P", "S", "E", "MR")
        hierarchy.create_scan(db, "P", "S", "E", "1")
    levels = (Target("P"), Target("P", "S"), Target("P", "S", "E"), Target("P", "S", "E", "1"))
    return Tree(dict(zip(LEVELS, levels, strict=True)))


@pytest.fixture(params=LEVELS)
def level(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def files(tree: Tree, level: str) -> str:
    """The URL of resource `R`'s files at the parametrised level (the resource not yet made)."""
    return f"{tree.url(level)}/resources/R/files"


@pytest.fixture
async def stored(operator_client: httpx.AsyncClient, files: str) -> str:
    """The URL of `f.txt` holding `CONTENT`, uploaded through the API."""
    response = await operator_client.put(f"{files}/f.txt", content=CONTENT)
    assert response.status_code == 201, response.text
    return f"{files}/f.txt"


def blob_files(depot: Depot) -> set[str]:
    return set(depot.blobs.digests())


def count(depot: Depot, model: type) -> int:
    with depot.transaction() as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


def assert_error(response: httpx.Response, status: int, error: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    for word in words:
        assert word in body["message"]


async def chunks(content: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start : start + size]


class TestResources:
    async def test_created_resource_is_listed_and_read_at_every_level(
        self, operator_client: httpx.AsyncClient, tree: Tree, level: str
    ):
        base = f"{tree.url(level)}/resources"
        created = await operator_client.post(base, json={"label": "NIFTI"})
        assert created.status_code == 201
        body = created.json()
        assert body["label"] == "NIFTI"
        assert body["target"] == str(tree.targets[level])
        assert (body["file_count"], body["total_size"], body["files"]) == (0, 0, [])

        listed = await operator_client.get(base)
        assert listed.status_code == 200
        assert [r["label"] for r in listed.json()] == ["NIFTI"]
        read = await operator_client.get(f"{base}/NIFTI")
        assert read.status_code == 200
        assert read.json() == body

    async def test_resources_belong_to_their_own_level_only(
        self, operator_client: httpx.AsyncClient, tree: Tree, level: str
    ):
        await operator_client.post(f"{tree.url(level)}/resources", json={"label": "QC"})
        for other in LEVELS:
            listed = await operator_client.get(f"{tree.url(other)}/resources")
            expected = ["QC"] if other == level else []
            assert [r["label"] for r in listed.json()] == expected

    async def test_duplicate_resource_is_a_409_conflict(
        self, operator_client: httpx.AsyncClient, tree: Tree, level: str
    ):
        base = f"{tree.url(level)}/resources"
        await operator_client.post(base, json={"label": "QC"})
        assert_error(await operator_client.post(base, json={"label": "QC"}), 409, "Conflict")

    async def test_invalid_resource_label_is_422(
        self, operator_client: httpx.AsyncClient, tree: Tree, level: str
    ):
        response = await operator_client.post(f"{tree.url(level)}/resources", json={"label": "a b"})
        assert_error(response, 422, "Invalid", "resource label")

    async def test_unknown_resource_is_404(
        self, operator_client: httpx.AsyncClient, tree: Tree, level: str
    ):
        response = await operator_client.get(f"{tree.url(level)}/resources/none")
        assert_error(response, 404, "NotFound", "'none'")

    async def test_resources_of_an_unknown_parent_are_404(
        self, operator_client: httpx.AsyncClient, tree: Tree
    ):
        for url in (
            "/api/v1/projects/nope/resources",
            f"{tree.url('project')}/subjects/ghost/resources",
            f"{tree.url('subject')}/sessions/ghost/resources",
            f"{tree.url('session')}/scans/ghost/resources",
        ):
            assert_error(await operator_client.get(url), 404, "NotFound")
            created = await operator_client.post(url, json={"label": "QC"})
            assert_error(created, 404, "NotFound")


class TestUpload:
    async def test_streamed_body_is_stored_and_created_with_201(
        self, operator_client: httpx.AsyncClient, depot: Depot, files: str, tree: Tree, level: str
    ):
        response = await operator_client.put(
            f"{files}/sub/dir/f.txt", content=chunks(CONTENT, 1000)
        )
        assert response.status_code == 201, response.text
        assert response.headers["etag"] == f'"{DIGEST}"'
        body = response.json()
        assert body["outcome"] == "created"
        assert body["target"] == str(tree.targets[level])
        assert body["resource"] == "R"
        assert body["file"]["path"] == "sub/dir/f.txt"
        assert body["file"]["digest"] == DIGEST
        assert body["file"]["size"] == len(CONTENT)
        assert body["file"]["content_type"] == "text/plain"
        assert depot.blobs.path(DIGEST).read_bytes() == CONTENT
        assert depot.blobs.temporary_files() == []

        listing = (await operator_client.get(files.removesuffix("/files"))).json()
        assert (listing["file_count"], listing["total_size"]) == (1, len(CONTENT))
        assert [f["path"] for f in listing["files"]] == ["sub/dir/f.txt"]

    async def test_same_content_again_is_200_unchanged(
        self, operator_client: httpx.AsyncClient, depot: Depot, stored: str
    ):
        again = await operator_client.put(stored, content=CONTENT)
        assert again.status_code == 200
        assert again.json()["outcome"] == "unchanged"
        assert again.json()["file"]["digest"] == DIGEST
        assert blob_files(depot) == {DIGEST}

    async def test_different_content_is_409_and_leaves_the_file_and_store_as_they_were(
        self, operator_client: httpx.AsyncClient, depot: Depot, stored: str
    ):
        refused = await operator_client.put(stored, content=b"something else")
        assert_error(refused, 409, "Conflict", "overwrite")
        assert (await operator_client.get(stored)).content == CONTENT
        assert blob_files(depot) == {DIGEST}
        assert count(depot, Blob) == 1
        assert depot.blobs.temporary_files() == []

    async def test_overwrite_replaces_and_collects_the_old_content(
        self, operator_client: httpx.AsyncClient, depot: Depot, stored: str
    ):
        replaced = await operator_client.put(
            stored, content=b"new content", params={"overwrite": "true"}
        )
        assert replaced.status_code == 200
        assert replaced.json()["outcome"] == "replaced"
        new_digest = hashlib.sha256(b"new content").hexdigest()
        assert replaced.headers["etag"] == f'"{new_digest}"'
        assert (await operator_client.get(stored)).content == b"new content"
        assert blob_files(depot) == {new_digest}

    async def test_matching_declared_digest_is_accepted_in_any_case(
        self, operator_client: httpx.AsyncClient, files: str
    ):
        response = await operator_client.put(
            f"{files}/f.txt", content=CONTENT, headers={"X-Content-SHA256": DIGEST.upper()}
        )
        assert response.status_code == 201

    async def test_digest_mismatch_is_422_and_stores_nothing(
        self, operator_client: httpx.AsyncClient, depot: Depot, files: str
    ):
        response = await operator_client.put(
            f"{files}/f.txt",
            content=chunks(CONTENT, 4096),
            headers={"X-Content-SHA256": hashlib.sha256(b"what was meant").hexdigest()},
        )
        assert_error(response, 422, "Invalid", DIGEST, "not stored")
        assert blob_files(depot) == set()
        assert depot.blobs.temporary_files() == []
        assert not depot.blobs.exists(DIGEST)
        assert (count(depot, Blob), count(depot, ResourceFile), count(depot, Resource)) == (0, 0, 0)
        assert_error(await operator_client.get(f"{files}/f.txt"), 404, "NotFound")

    async def test_content_type_is_kept_or_guessed(
        self, operator_client: httpx.AsyncClient, files: str
    ):
        sent = await operator_client.put(
            f"{files}/scan.nii.gz", content=b"x", headers={"Content-Type": "application/x-nifti"}
        )
        assert sent.json()["file"]["content_type"] == "application/x-nifti"
        guessed = await operator_client.put(f"{files}/events.json", content=b"{}")
        assert guessed.json()["file"]["content_type"] == "application/json"
        unknown = await operator_client.put(f"{files}/raw.fif", content=b"y")
        assert unknown.json()["file"]["content_type"] == "application/octet-stream"
        download = await operator_client.get(f"{files}/scan.nii.gz")
        assert download.headers["content-type"] == "application/x-nifti"

    async def test_empty_file_is_stored(self, operator_client: httpx.AsyncClient, files: str):
        response = await operator_client.put(f"{files}/empty", content=b"")
        assert response.status_code == 201
        assert response.json()["file"]["size"] == 0
        download = await operator_client.get(f"{files}/empty")
        assert download.status_code == 200
        assert download.content == b""
        assert download.headers["content-length"] == "0"

    async def test_upload_to_an_unknown_parent_is_404_and_stores_nothing(
        self, operator_client: httpx.AsyncClient, depot: Depot, tree: Tree
    ):
        for url in (
            "/api/v1/projects/nope/resources/R/files/f.txt",
            f"{tree.url('session')}/scans/ghost/resources/R/files/f.txt",
        ):
            assert_error(await operator_client.put(url, content=CONTENT), 404, "NotFound")
        assert blob_files(depot) == set()
        assert count(depot, Blob) == 0

    async def test_upload_with_an_invalid_resource_label_is_422(
        self, operator_client: httpx.AsyncClient, depot: Depot, tree: Tree
    ):
        url = f"{tree.url('project')}/resources/a%20b/files/f.txt"
        assert_error(await operator_client.put(url, content=CONTENT), 422, "Invalid")
        assert blob_files(depot) == set()


class TestDownload:
    async def test_bytes_are_exact_with_length_and_etag(
        self, operator_client: httpx.AsyncClient, stored: str
    ):
        response = await operator_client.get(stored)
        assert response.status_code == 200
        assert response.content == CONTENT
        assert response.headers["content-length"] == str(len(CONTENT))
        assert response.headers["etag"] == f'"{DIGEST}"'
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["content-type"].startswith("text/plain")
        assert 'filename="f.txt"' in response.headers["content-disposition"]

    async def test_head_gives_the_headers_without_a_body(
        self, operator_client: httpx.AsyncClient, stored: str
    ):
        head = await operator_client.head(stored)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(CONTENT))
        assert head.headers["etag"] == f'"{DIGEST}"'

    @pytest.mark.parametrize(
        "if_none_match", [f'"{DIGEST}"', f'W/"{DIGEST}"', f'"other", "{DIGEST}"', "*"]
    )
    async def test_matching_if_none_match_is_304(
        self, operator_client: httpx.AsyncClient, stored: str, if_none_match: str
    ):
        response = await operator_client.get(stored, headers={"If-None-Match": if_none_match})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == f'"{DIGEST}"'

    async def test_stale_if_none_match_gets_the_content(
        self, operator_client: httpx.AsyncClient, stored: str
    ):
        response = await operator_client.get(stored, headers={"If-None-Match": f'"{"0" * 64}"'})
        assert response.status_code == 200
        assert response.content == CONTENT

    @pytest.mark.parametrize(
        ("header", "start", "end"),
        [
            ("bytes=10-19", 10, 19),
            ("bytes=0-0", 0, 0),
            ("bytes=-5", len(CONTENT) - 5, len(CONTENT) - 1),
            ("bytes=10000-", 10000, len(CONTENT) - 1),
            ("bytes=10230-99999", 10230, len(CONTENT) - 1),
        ],
    )
    async def test_single_range_is_206_with_the_right_bytes(
        self, operator_client: httpx.AsyncClient, stored: str, header: str, start: int, end: int
    ):
        response = await operator_client.get(stored, headers={"Range": header})
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes {start}-{end}/{len(CONTENT)}"
        assert response.headers["content-length"] == str(end - start + 1)
        assert response.content == CONTENT[start : end + 1]

    async def test_multiple_ranges_are_206_multipart_byteranges(
        self, operator_client: httpx.AsyncClient, stored: str
    ):
        response = await operator_client.get(stored, headers={"Range": "bytes=0-3,100-109,-2"})
        assert response.status_code == 206
        kind, _, boundary = response.headers["content-type"].partition("; boundary=")
        assert kind == "multipart/byteranges"
        assert response.headers["content-length"] == str(len(response.content))
        parts = response.content.split(b"--" + boundary.encode())
        assert parts[0] == b""
        assert parts[-1].strip() == b"--"
        found = []
        for part in parts[1:-1]:
            head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
            match = re.search(rb"Content-Range: bytes (\d+)-(\d+)/(\d+)", head, re.IGNORECASE)
            assert match is not None
            start, end, total = (int(g) for g in match.groups())
            assert total == len(CONTENT)
            assert data.removesuffix(b"\r\n") == CONTENT[start : end + 1]
            found.append((start, end))
        assert found == [(0, 3), (100, 109), (len(CONTENT) - 2, len(CONTENT) - 1)]

    @pytest.mark.parametrize("header", ["bytes=20000-20010", f"bytes={len(CONTENT)}-"])
    async def test_unsatisfiable_range_is_416(
        self, operator_client: httpx.AsyncClient, stored: str, header: str
    ):
        response = await operator_client.get(stored, headers={"Range": header})
        assert response.status_code == 416
        assert response.headers["content-range"] == f"bytes */{len(CONTENT)}"

    async def test_if_range_serves_a_range_only_for_the_current_content(
        self, operator_client: httpx.AsyncClient, stored: str
    ):
        current = await operator_client.get(
            stored, headers={"Range": "bytes=10-19", "If-Range": f'"{DIGEST}"'}
        )
        assert current.status_code == 206
        assert current.content == CONTENT[10:20]
        stale = await operator_client.get(
            stored, headers={"Range": "bytes=10-19", "If-Range": f'"{"0" * 64}"'}
        )
        assert stale.status_code == 200
        assert stale.content == CONTENT

    async def test_unknown_file_is_404(self, operator_client: httpx.AsyncClient, stored: str):
        response = await operator_client.get(stored.replace("f.txt", "g.txt"))
        assert_error(response, 404, "NotFound", "'g.txt'")
        head = await operator_client.head(stored.replace("f.txt", "g.txt"))
        assert head.status_code == 404

    async def test_missing_blob_is_a_404_naming_fsck_not_a_500(
        self, operator_client: httpx.AsyncClient, depot: Depot, stored: str
    ):
        depot.blobs.path(DIGEST).unlink()
        for headers in ({}, {"Range": "bytes=10-19"}):
            response = await operator_client.get(stored, headers=headers)
            assert_error(response, 404, "NotFound", DIGEST, "fsck")
        assert (await operator_client.head(stored)).status_code == 404


class TestDelete:
    async def test_deleted_file_is_gone_with_its_unreferenced_blob(
        self, operator_client: httpx.AsyncClient, depot: Depot, stored: str
    ):
        response = await operator_client.delete(stored)
        assert response.status_code == 200
        assert response.json()["digest"] == DIGEST
        assert_error(await operator_client.get(stored), 404, "NotFound")
        assert not depot.blobs.exists(DIGEST)
        assert count(depot, Blob) == 0

    async def test_blob_still_named_by_another_file_is_kept(
        self, operator_client: httpx.AsyncClient, depot: Depot, stored: str, files: str
    ):
        await operator_client.put(f"{files}/copy.txt", content=CONTENT)
        assert (await operator_client.delete(stored)).status_code == 200
        assert depot.blobs.exists(DIGEST)
        assert (await operator_client.get(f"{files}/copy.txt")).content == CONTENT

    async def test_deleting_an_unknown_file_is_404(
        self, operator_client: httpx.AsyncClient, stored: str
    ):
        response = await operator_client.delete(stored.replace("f.txt", "g.txt"))
        assert_error(response, 404, "NotFound", "'g.txt'")

    async def test_file_whose_blob_is_missing_can_still_be_deleted(
        self, operator_client: httpx.AsyncClient, depot: Depot, stored: str
    ):
        depot.blobs.path(DIGEST).unlink()
        assert (await operator_client.delete(stored)).status_code == 200
        assert count(depot, Blob) == 0


# --- path traversal ---------------------------------------------------------------------------

SECRET = b"outside the depot: must never be served"

# Sent through httpx, which keeps percent-encoding but removes literal dot segments.
ENCODED_ATTACKS = [
    "%2e%2e/secret",
    "%2E%2E/%2E%2E/%2E%2E/secret",
    "..%2f..%2f..%2fsecret",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret",
    "a/%2e%2e/%2e%2e/%2e%2e/secret",
    ".%2e/secret",
    "%2F%2Fetc%2Fpasswd",
    "%2fetc/passwd",
    "..%5c..%5csecret",
    "%2e%2e%5csecret",
    "f.txt%00.png",
]
# Sent as raw ASGI paths, as `curl --path-as-is` would send them.
LITERAL_ATTACKS = [
    "{files}/../../../../../../secret",
    "{files}/a/../f.txt",
    "{files}/./f.txt",
    "{files}/..",
    "{files}/",
    "{files}//etc/passwd",
    "{files}/..\\..\\secret",
    "/api/v1/projects/../../secret",
    "/api/v1/projects/P/resources/../../../../secret/files/f.txt",
    "/api/v1/projects/P/resources/../files/f.txt",
    "/api/v1/projects/%2e%2e/resources/R/files/f.txt",
    "/api/v1/projects/P%2f..%2f../resources/R/files/f.txt",
]


def snapshot(root: Path) -> set[Path]:
    """Every file under `root` but SQLite's own journals (which change on any read)."""
    return {
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and not re.search(r"-(wal|shm|journal)$", p.name)
    }


async def raw_request(
    depot: Depot, method: str, raw_path: str, body: bytes = b""
) -> tuple[int, bytes]:
    """Call the app with `raw_path` exactly as written: no client normalises it."""
    messages = []
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())],
        "client": LOOPBACK,
        "server": ("testserver", 80),
    }
    await create_app(depot)(scope, receive, send)
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    assert isinstance(status, int)
    return status, content


class TestPathTraversal:
    @pytest.fixture
    def planted(self, depot: Depot, tree: Tree, tmp_path: Path) -> Path:
        """A secret beside the depot, and f.txt in resource R of project P."""
        (tmp_path / "secret").write_bytes(SECRET)
        resources.add_file(depot, tree.targets["project"], "R", "f.txt", [CONTENT])
        return tmp_path

    @pytest.mark.parametrize("attack", ENCODED_ATTACKS)
    async def test_encoded_traversal_never_escapes(
        self,
        operator_client: httpx.AsyncClient,
        depot: Depot,
        tree: Tree,
        planted: Path,
        attack: str,
    ):
        url = f"{tree.url('project')}/resources/R/files/{attack}"
        before = snapshot(planted)
        for method in ("GET", "HEAD", "PUT", "DELETE"):
            response = await operator_client.request(method, url, content=SECRET)
            assert response.status_code in {404, 422}, (method, response.text)
            assert SECRET not in response.content
        assert snapshot(planted) == before
        assert count(depot, ResourceFile) == 1

    @pytest.mark.parametrize("attack", LITERAL_ATTACKS)
    async def test_literal_dot_segments_never_escape(
        self, depot: Depot, tree: Tree, planted: Path, attack: str
    ):
        path = attack.format(files=f"{tree.url('project')}/resources/R/files")
        before = snapshot(planted)
        for method in ("GET", "PUT", "DELETE"):
            status, content = await raw_request(depot, method, path, SECRET)
            assert status in {404, 405, 422}, (method, path, status, content)
            assert SECRET not in content
            assert CONTENT not in content  # not even f.txt by a roundabout name
        assert snapshot(planted) == before
        assert count(depot, ResourceFile) == 1
