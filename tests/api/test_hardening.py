"""Web-facing hardening: security headers on every response, request size limits, file paths.

Path traversal on the file routes is covered method by method at the project level in
`test_file_routes.py`; here it is the upload at every level, with a body over the JSON limit
(uploads are not limited, so nothing but the path check stands in the way).
"""

import base64
import hashlib
import os
import re
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select
from starlette.types import Message, Receive, Scope, Send
from tests.api.live_server import serving
from tests.api.test_file_routes import raw_request, snapshot

from neurodepot.api.app import create_app
from neurodepot.api.hardening import (
    CACHE_CONTROL,
    HEADERS,
    HSTS,
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    STRICT_CSP,
    UPLOADS,
    SecurityHeaders,
    is_upload,
)
from neurodepot.catalog import resources
from neurodepot.catalog.hierarchy import list_projects
from neurodepot.catalog.models import Resource, ResourceFile
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot

pytestmark = pytest.mark.anyio

MIB = 1 << 20
LOOPBACK = ("127.0.0.1", 50000)
LEVELS = ["p", "p/s", "p/s/v", "p/s/v/1"]
FILE = b"hello\n"


def level_url(target: str) -> str:
    """`p/s/v/1` as `/api/v1/projects/p/subjects/s/sessions/v/scans/1`."""
    labels = target.split("/")
    names = ("projects", "subjects", "sessions", "scans")[: len(labels)]
    return "/api/v1/" + "/".join(f"{n}/{label}" for n, label in zip(names, labels, strict=True))


def assert_hardened(response: httpx.Response, csp: str = STRICT_CSP) -> None:
    assert response.headers["content-security-policy"] == csp
    for name, value in HEADERS.items():
        assert response.headers[name] == value, name
    assert "strict-transport-security" not in response.headers


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["message"]


def count(depot: Depot, model: type) -> int:
    with depot.reading() as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


async def chunks(size: int, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`size` bytes as a chunked body (no Content-Length)."""
    for start in range(0, size, chunk):
        yield b" " * min(chunk, size - start)


def client_for(app: FastAPI, base_url: str = "http://testserver") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=LOOPBACK, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.fixture
def database_url() -> None:
    """SQLite only: the hardening stands in front of the database, the same for either."""
    return None


@pytest.fixture
def stored_file(tree: Depot) -> str:
    """The URL of `f.txt` in resource R of project p."""
    resources.add_file(tree, Target("p"), "R", "f.txt", [FILE])
    return f"{level_url('p')}/resources/R/files/f.txt"


class TestSecurityHeaders:
    async def test_json_responses_have_them(self, operator_client: httpx.AsyncClient, tree: Depot):
        for url in ("/healthz", "/api/v1/projects", "/api/v1/projects/p", "/api/openapi.json"):
            response = await operator_client.get(url)
            assert response.status_code == 200, url
            assert_hardened(response)

    async def test_error_responses_have_them(
        self, operator_client: httpx.AsyncClient, anonymous_client: httpx.AsyncClient
    ):
        assert_hardened(await operator_client.get("/api/v1/projects/nope"))  # 404
        assert_hardened(await operator_client.get("/no/such/route"))
        assert_hardened(await operator_client.post("/api/v1/projects", json={}))  # 422
        assert_hardened(await anonymous_client.get("/api/v1/projects"))  # 403

    async def test_streamed_responses_have_them(
        self, operator_client: httpx.AsyncClient, stored_file: str
    ):
        download = await operator_client.get(stored_file)
        assert download.content == FILE
        assert_hardened(download)
        assert_hardened(await operator_client.head(stored_file))
        assert_hardened(await operator_client.get(stored_file, headers={"range": "bytes=0-1"}))
        bids = await operator_client.get("/api/v1/projects/p/bids.zip")
        assert bids.status_code == 200
        assert bids.content.startswith(b"PK")
        assert_hardened(bids)

    async def test_a_server_error_has_them(self, depot: Depot):
        app = create_app(depot)

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("a bug")

        async with client_for(app) as client:
            response = await client.get("/boom")
        assert response.status_code == 500
        assert_hardened(response)

    async def test_no_cache_may_store_a_response_unless_the_route_says_so(
        self, operator_client: httpx.AsyncClient, tree: Depot
    ):
        listing = await operator_client.get("/api/v1/projects")
        missing = await operator_client.get("/api/v1/projects/Nope")
        assert [listing.headers["cache-control"], missing.headers["cache-control"]] == [
            CACHE_CONTROL,
            CACHE_CONTROL,
        ]
        assert CACHE_CONTROL == "no-store"

    async def test_a_header_the_response_sets_itself_is_kept(self, depot: Depot):
        app = create_app(depot)

        @app.get("/framed", response_class=PlainTextResponse)
        def framed() -> PlainTextResponse:
            return PlainTextResponse("ok", headers={"X-Frame-Options": "SAMEORIGIN"})

        async with client_for(app) as client:
            response = await client.get("/framed")
        assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]

    async def test_docs_allow_their_cdn_and_their_own_inline_script_only(
        self, anonymous_client: httpx.AsyncClient
    ):
        response = await anonymous_client.get("/api/docs")
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        assert policy.startswith(STRICT_CSP + "; ")
        assert_hardened(response, csp=policy)
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        script = re.search(r'<script src="([^"]+)"', response.text)
        style = re.search(r'<link type="text/css" rel="stylesheet" href="([^"]+)"', response.text)
        assert script and style
        assert script[1].startswith("https://cdn.jsdelivr.net/")
        assert style[1].startswith("https://cdn.jsdelivr.net/")
        inline = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
        assert len(inline) == 1
        digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
        assert directives["script-src"] == f"'self' https://cdn.jsdelivr.net 'sha256-{digest}'"
        assert directives["style-src"] == "'self' https://cdn.jsdelivr.net 'unsafe-inline'"
        assert directives["img-src"] == "'self' data: https://fastapi.tiangolo.com"
        assert "frame-ancestors 'none'" in policy

    async def test_hsts_is_sent_over_https_only(self, depot: Depot):
        app = create_app(depot)
        async with client_for(app, "https://testserver") as client:
            for url in ("/healthz", "/api/v1/projects/nope", "/api/docs"):
                assert (await client.get(url)).headers["strict-transport-security"] == HSTS
        async with client_for(app) as client:
            assert "strict-transport-security" not in (await client.get("/healthz")).headers

    async def test_a_streamed_body_is_passed_on_chunk_by_chunk(self):
        # The app sends its second chunk only once the first has reached the client: were the
        # middleware to buffer the body, this would never finish.
        delivered = anyio.Event()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            await delivered.wait()
            await send({"type": "http.response.body", "body": b"second"})

        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)
            if message.get("body") == b"first":
                delivered.set()

        async def receive() -> Message:
            return {"type": "http.disconnect"}

        scope = {"type": "http", "scheme": "http", "path": "/", "headers": []}
        with anyio.fail_after(5):
            await SecurityHeaders(app, lambda _scope: STRICT_CSP)(scope, receive, send)
        assert [m.get("body") for m in sent] == [None, b"first", b"second"]
        assert (b"x-frame-options", b"DENY") in sent[0]["headers"]


class TestBodyLimit:
    @pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
    async def test_json_body_over_1_mib_is_413_and_stores_nothing(
        self, operator_client: httpx.AsyncClient, depot: Depot, declared: bool
    ):
        size = 2 * MIB
        padding = b" " * (size - len(b'{"label": "big"}'))
        body = b'{"label": "big"' + padding + b"}"
        content = body if declared else chunks(size)
        response = await operator_client.post(
            "/api/v1/projects", content=content, headers={"content-type": "application/json"}
        )
        assert_error(response, 413, "ContentTooLarge")
        assert_hardened(response)
        assert "1 MiB" in response.json()["message"]
        with depot.reading() as db:
            assert list_projects(db) == []

    async def test_a_body_of_exactly_1_mib_is_taken(
        self, operator_client: httpx.AsyncClient, depot: Depot
    ):
        skeleton = b'{"label": "big", "description": ""}'
        body = skeleton[:-2] + b"x" * (MAX_BODY_BYTES - len(skeleton)) + b'"}'
        assert len(body) == MAX_BODY_BYTES
        created = await operator_client.post(
            "/api/v1/projects", content=body, headers={"content-type": "application/json"}
        )
        assert created.status_code == 201, created.text
        one_more = await operator_client.post(
            "/api/v1/projects", content=body + b" ", headers={"content-type": "application/json"}
        )
        assert_error(one_more, 413, "ContentTooLarge")

    async def test_any_content_type_is_limited_off_the_upload_routes(
        self, operator_client: httpx.AsyncClient, tree: Depot
    ):
        for content in (b"x" * (MAX_BODY_BYTES + 1), chunks(MAX_BODY_BYTES + 1)):
            response = await operator_client.post(
                "/api/v1/jobs", content=content, headers={"content-type": "text/plain"}
            )
            assert_error(response, 413, "ContentTooLarge")

    @pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
    async def test_a_3_mib_upload_is_stored(
        self, operator_client: httpx.AsyncClient, tree: Depot, declared: bool
    ):
        content = os.urandom(3 * MIB)
        url = f"{level_url('p/s/v/1')}/resources/R/files/big.json"
        body = content if declared else self._chunked(content)
        response = await operator_client.put(
            url, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 201, response.text
        assert response.json()["file"]["digest"] == hashlib.sha256(content).hexdigest()
        assert (await operator_client.get(url)).content == content

    async def test_the_import_route_takes_a_body_over_the_limit(
        self, operator_client: httpx.AsyncClient, tree: Depot
    ):
        response = await operator_client.post(
            "/api/v1/projects/p/import", content=b"not dicom" * (MIB // 4)
        )
        assert response.status_code == 200, response.text
        assert response.json()["not_dicom"] == 1

    def test_every_upload_route_is_served(self, depot: Depot):
        served = {
            (method, route.path)
            for route in iter_route_contexts(create_app(depot).routes)
            for method in route.methods or ()
        }
        assert set(UPLOADS) <= served

    @pytest.mark.parametrize(
        ("method", "path", "expected"),
        [
            ("PUT", "/api/v1/projects/p/resources/R/files/a/b.nii.gz", True),
            ("PUT", "/api/v1/projects/p/subjects/s/sessions/v/scans/1/resources/R/files/f", True),
            ("POST", "/api/v1/projects/p/import", True),
            ("POST", "/api/v1/projects/p/consent/import", True),
            ("POST", "/api/v1/projects/p/consent", False),
            ("POST", "/api/v1/projects/p/resources/R/files/f", False),
            ("PUT", "/api/v1/projects/p/resources/R", False),
            ("POST", "/api/v1/projects/p/import/more", False),
            ("POST", "/api/v1/projects", False),
            ("PUT", "/api/v1/projects/p/resources/R/filesX/f", False),
        ],
    )
    def test_only_the_upload_routes_are_uploads(self, method: str, path: str, expected: bool):
        assert is_upload(method, path) is expected

    @staticmethod
    async def _chunked(content: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(content), MIB // 2):
            yield content[start : start + MIB // 2]


class TestHeaderLimit:
    async def test_a_header_section_over_64_kib_is_431(self, operator_client: httpx.AsyncClient):
        big = {f"x-filler-{i}": "a" * 1000 for i in range(MAX_HEADER_BYTES // 1000 + 1)}
        response = await operator_client.get("/healthz", headers=big)
        assert_error(response, 431, "HeadersTooLarge")
        assert_hardened(response)
        fits = {f"x-filler-{i}": "a" * 1000 for i in range(MAX_HEADER_BYTES // 1000 - 2)}
        assert (await operator_client.get("/healthz", headers=fits)).status_code == 200


@pytest.mark.slow
class TestLiveServer:
    """What uvicorn refuses itself (so the app need not), and what the app adds to it."""

    @pytest.fixture
    def server(
        self,
        cli_path: str,
        initialised_depot: Path,
        depot_env: dict[str, str],
        port: int,
        tmp_path: Path,
    ) -> Iterator[tuple[str, int]]:
        env = {**depot_env, "NEURODEPOT_DICOM_ENABLED": "false"}
        with serving(cli_path, initialised_depot, env, port, tmp_path / "server.log") as live:
            yield live

    @staticmethod
    def exchange(port: int, request: bytes) -> bytes:
        """Send `request` as it is, and read the answer until the server closes."""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(request)
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
            return answer

    def test_uvicorn_refuses_a_1_mib_url(self, server: tuple[str, int], port: int):
        answer = self.exchange(
            port, b"GET /" + b"a" * MIB + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]

    def test_a_100_kib_header_section_is_431_from_the_app(self, server: tuple[str, int], port: int):
        filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(100))
        answer = self.exchange(
            port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + filler + b"\r\n"
        )
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"x-frame-options: DENY" in head
        assert b'"error":"HeadersTooLarge"' in body


class TestPathTraversal:
    # Sent through httpx, which keeps percent-encoding.
    ENCODED = [
        "%2e%2e%2fsecret",
        "..%2f..%2f..%2fsecret",
        "a%2f%2e%2e%2f%2e%2e%2fsecret",
        "%2fetc%2fpasswd",
        "..%5c..%5csecret",
        "a%5c..%5c..%5csecret",
        "C:%5csecret",
    ]
    # Sent as raw paths, as `curl --path-as-is` sends them.
    LITERAL = [
        "../../../secret",
        "a/../../secret",
        "/etc/passwd",
        "..\\..\\secret",
        "./f.txt",
    ]
    BODY = b"x" * (2 * MIB)

    @pytest.fixture
    def outside(self, tree: Depot, tmp_path: Path) -> set[Path]:
        """What is under `tmp_path` (the depot and its surroundings) before the attack."""
        (tmp_path / "secret").write_bytes(b"outside the depot")
        return snapshot(tmp_path)

    def assert_nothing_stored(self, depot: Depot, tmp_path: Path, before: set[Path]) -> None:
        assert count(depot, ResourceFile) == 0
        assert count(depot, Resource) == 0
        assert list(depot.blobs.digests()) == []
        assert depot.blobs.temporary_files() == []
        assert snapshot(tmp_path) == before
        assert (tmp_path / "secret").read_bytes() == b"outside the depot"

    @pytest.mark.parametrize("attack", ENCODED)
    async def test_encoded_path_is_a_clear_4xx_and_stores_nothing(
        self,
        operator_client: httpx.AsyncClient,
        tree: Depot,
        tmp_path: Path,
        outside: set[Path],
        attack: str,
    ):
        for target in LEVELS:
            url = f"{level_url(target)}/resources/R/files/{attack}"
            response = await operator_client.put(url, content=self.BODY)
            assert_error(response, 422, "Invalid")
            assert "file path" in response.json()["message"]
            assert_hardened(response)
        self.assert_nothing_stored(tree, tmp_path, outside)

    @pytest.mark.parametrize("attack", LITERAL)
    async def test_literal_path_is_a_clear_4xx_and_stores_nothing(
        self, tree: Depot, tmp_path: Path, outside: set[Path], attack: str
    ):
        for target in LEVELS:
            path = f"{level_url(target)}/resources/R/files/{attack}"
            status, content = await raw_request(tree, "PUT", path, self.BODY)
            assert 400 <= status < 500, (path, status, content)
            assert b'"error":' in content and b'"message":' in content, content
        self.assert_nothing_stored(tree, tmp_path, outside)
