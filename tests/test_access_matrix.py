"""Every route of the app, called as an anonymous remote caller and as the local operator.

Routes are enumerated from the app itself, so a route added without the guard fails here:
the anonymous caller would not get 403, and the route would lack an `authorize_*` dependency;
nor would its writes by the operator be in the audit log.
The exceptions are named in the app: `PUBLIC_PATHS` answer everyone 200, and `ACCOUNT_PATHS`
(sign-in, registration, password reset) are for callers not signed in, so they take no guard
and answer the anonymous caller with what the request deserves (2xx or 4xx), never 403.
"""

import re
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from sqlalchemy import select

import neurodepot.example
from neurodepot.access import accounts, tokens
from neurodepot.access.models import AuditEvent
from neurodepot.api.app import ACCOUNT_PATHS, PUBLIC_PATHS, create_app
from neurodepot.api.guard import OPERATOR, SAFE_METHODS
from neurodepot.catalog import hierarchy, resources
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.ingest.bulk import import_dicom
from neurodepot.ingest.receive import Override
from neurodepot.jobs import records
from neurodepot.jobs.registry import load_registry

pytestmark = pytest.mark.anyio

FILE_CONTENT = b"hello from f.txt\n"
EXAMPLE_DICOM = Path(neurodepot.example.__file__).parent / "data" / "siemens_epi_ap"
# Labels of the populated tree, of nothing at all, and not labels at all: the anonymous caller
# learns neither what exists nor what would be valid.
EXISTING = {
    "project": "P", "subject": "S", "session": "E", "scan": "1", "resource": "R", "job_id": "1",
    "study_id": "1", "username": "someone", "token_id": "1", "override_id": "1",
    "dua_id": "1",
}  # fmt: skip
MISSING = {
    "project": "Nope", "subject": "Nope", "session": "Nope", "scan": "99", "resource": "X",
    "job_id": "999", "study_id": "999", "username": "nobody", "token_id": "999",
    "override_id": "999", "dua_id": "999",
}  # fmt: skip
MALFORMED = dict.fromkeys(EXISTING, "not.a.label")
PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")
# Deletes last, the project's last of all, so that the operator's calls find what they touch.
METHOD_ORDER = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    url: str

    @property
    def sort_key(self) -> tuple[int, int]:
        return METHOD_ORDER.index(self.method), -self.template.count("/")

    def send(self, client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        if self.method == "POST" and self.template.endswith("/jobs"):
            return client.post(self.url, json={"pipeline": "noop", "target": "P"})
        if self.method == "POST" and self.template.endswith("/tokens"):
            return client.post(self.url, json={"name": "new", "scope": "read"})
        if self.method == "PUT" and self.template.endswith("/role"):
            return client.put(self.url, json={"role": "steward"})
        if self.method == "POST":
            return client.post(self.url, json={"label": "new"})
        if self.method == "PUT":
            return client.put(self.url, content=FILE_CONTENT)
        return client.request(self.method, self.url)


def every_route(app: FastAPI) -> list[RouteContext]:
    """Each route the app serves, with the path and dependencies it is served with.

    FastAPI (0.165) keeps an included router as one lazy entry in `app.routes`; this is the
    flattening its own OpenAPI generator uses.
    """
    return list(iter_route_contexts(app.routes))


def url_for(template: str, labels: dict[str, str]) -> str:
    """`template` with each `{name}` filled; an unknown parameter name fails loudly."""
    values = {**labels, "path": "f.txt"}
    return PARAMETER.sub(lambda m: values[m.group(1)], template)


def calls(app: FastAPI, labels: dict[str, str]) -> list[Call]:
    found = [
        Call(method, route.path, url_for(route.path, labels))
        for route in every_route(app)
        for method in sorted(route.methods or ())
    ]
    return sorted(found, key=lambda c: c.sort_key)


def dependency_calls(dependant: Dependant) -> Iterator[str]:
    for sub in dependant.dependencies:
        yield getattr(sub.call, "__name__", "")
        yield from dependency_calls(sub)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app(depot: Depot) -> FastAPI:
    """The app over a depot holding P/S/E/1, with resource R holding f.txt at every level, and
    the pending account `someone` with API token 1."""
    with depot.transaction() as db:
        accounts.add_user(db, "test", "someone", "someone@example.org")
        tokens.create_token(db, "test", "someone", "matrix")
        hierarchy.create_project(db, "P")
        hierarchy.create_subject(db, "P", "S")
        hierarchy.create_session(db, "P", "S", "E")
        hierarchy.create_scan(db, "P", "S", "E", "1")
    for target in ("P", "P/S", "P/S/E", "P/S/E/1"):
        resources.add_file(depot, Target.parse(target), "R", "f.txt", [FILE_CONTENT])
    with depot.transaction() as db:
        records.create_job(db, load_registry(), "noop", Target("P"), {}, "test")
    imported = import_dicom(depot, EXAMPLE_DICOM, Override("P"), archive_after=False)
    assert imported.studies == [1]
    return create_app(depot)


async def client(app: FastAPI, host: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(host, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as opened:
        yield opened


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for opened in client(app, "203.0.113.7"):
        yield opened


@pytest.fixture
async def operator(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for opened in client(app, "127.0.0.1"):
        yield opened


def test_enumeration_covers_every_documented_route(app: FastAPI):
    served = {route.path_format for route in every_route(app)}
    documented = set(app.openapi()["paths"])
    assert documented <= served
    assert served >= PUBLIC_PATHS | ACCOUNT_PATHS
    every = calls(app, EXISTING)
    assert len(every) == len({(c.method, c.template) for c in every}), "a route is served twice"


def test_every_non_public_route_declares_the_guard(app: FastAPI):
    unguarded = []
    for route in every_route(app):
        if route.path in PUBLIC_PATHS | ACCOUNT_PATHS:
            continue
        if not isinstance(route.original_route, APIRoute):
            unguarded.append(f"{route.path} is not an APIRoute, so it cannot declare the guard")
            continue
        if not any(name.startswith("authorize_") for name in dependency_calls(route.dependant)):
            unguarded.append(f"{sorted(route.methods or ())} {route.path}")
    assert unguarded == []


@pytest.mark.parametrize(
    "labels", [EXISTING, MISSING, MALFORMED], ids=["existing", "missing", "malformed"]
)
async def test_anonymous_caller_is_denied_everything_but_the_public_paths(
    app: FastAPI, anonymous: httpx.AsyncClient, labels: dict[str, str]
):
    public: set[str] = set()
    wrong = []
    for call in calls(app, labels):
        response = await call.send(anonymous)
        if call.template in ACCOUNT_PATHS:
            if response.status_code == 403 or response.status_code // 100 not in (2, 4):
                wrong.append(f"{call.method} {call.url}: {response.status_code} {response.text}")
        elif response.status_code != 403:
            public.add(call.template)
            if response.status_code != 200:
                wrong.append(f"{call.method} {call.url}: {response.status_code}")
        elif call.method != "HEAD" and response.json()["error"] != "Denied":
            wrong.append(f"{call.method} {call.url}: {response.text}")
    assert public == PUBLIC_PATHS
    assert wrong == []


async def test_operator_is_refused_nothing_and_each_write_is_audited(
    app: FastAPI, depot: Depot, operator: httpx.AsyncClient
):
    refused, writes = [], []
    for call in calls(app, EXISTING):
        response = await call.send(operator)
        if response.status_code in {401, 403} or response.status_code >= 500:
            refused.append(f"{call.method} {call.url}: {response.status_code} {response.text}")
        if call.method not in SAFE_METHODS and call.template not in ACCOUNT_PATHS:
            writes.append((call.method, call.url))
    assert refused == []
    with depot.reading() as db:
        recorded = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "write", AuditEvent.actor == OPERATOR)
            .order_by(AuditEvent.id)
        )
        audited = [(event.detail["method"], event.detail["path"]) for event in recorded]
    assert audited == writes
