"""The guard: who the local operator is (and is not), and what it writes to the audit log."""

from pathlib import Path

import pytest
from sqlalchemy import select
from tests.api.conftest import api_client

from neurodepot.access import accounts, tokens
from neurodepot.access.models import AuditEvent
from neurodepot.api.guard import OPERATOR
from neurodepot.catalog.hierarchy import create_project, list_projects
from neurodepot.depot.folder import Depot, init_depot

pytestmark = pytest.mark.anyio

LOOPBACK = ("127.0.0.1", 50000)
FILE = "/api/v1/projects/p/resources/R/files/notes.txt"
PROXY_HEADERS = [
    {"Forwarded": "for=203.0.113.7;proto=https"},
    {"X-Forwarded-For": "203.0.113.7"},
    {"X-Forwarded-For": "127.0.0.1"},  # loopback named by a proxy is still a proxied caller
    {"X-Real-IP": "203.0.113.7"},
    {"X-Forwarded-Proto": "https"},
    {"X-Forwarded-Host": "depot.example.org"},
    {"Via": "1.1 proxy.example.org"},
]


def events(depot: Depot, *actions: str) -> list[tuple[str, str, str, str]]:
    """(actor, action, target, outcome) of the events with these actions, in order."""
    with depot.reading() as db:
        rows = db.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(actions)).order_by(AuditEvent.id)
        )
        return [(r.actor, r.action, r.target, r.outcome) for r in rows]


def details(depot: Depot, action: str) -> list[dict[str, object]]:
    with depot.reading() as db:
        rows = db.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
        return [dict(r.detail) for r in rows]


def make_user(depot: Depot, name: str, site_role: str = "none", scope: str = "write") -> str:
    """An active account `name` with a token of `scope`; its secret."""
    with depot.transaction() as db:
        accounts.add_user(db, "test", name, f"{name}@example.org")
        accounts.set_status(db, "test", name, "active")
        accounts.set_site_role(db, "test", name, site_role)
        return tokens.create_token(db, "test", name, "t", scope)[1]


class TestTheLoopbackOperator:
    async def test_a_loopback_client_without_credentials_is_the_operator(self, tree: Depot):
        async with api_client(tree, "127.0.0.1") as client:
            assert (await client.get("/api/v1/projects/p")).status_code == 200

    @pytest.mark.parametrize("headers", PROXY_HEADERS, ids=lambda h: next(iter(h)))
    async def test_a_proxied_request_is_anonymous(self, tree: Depot, headers: dict[str, str]):
        async with api_client(tree, "127.0.0.1", **headers) as client:
            for response in (
                await client.get("/api/v1/projects/p"),
                await client.get("/api/v1/projects"),
                await client.post("/api/v1/projects", json={"label": "q"}),
                await client.delete("/api/v1/projects/p"),
            ):
                assert response.status_code == 403, response.text
                assert response.json()["error"] == "Denied"
                assert "sign-in is required" in response.json()["message"]
        with tree.reading() as db:
            assert [p.label for p in list_projects(db)] == ["p"]

    async def test_a_proxied_request_with_a_token_is_the_tokens_owner(self, tree: Depot):
        secret = make_user(tree, "ada", "admin")
        headers = {"X-Forwarded-For": "203.0.113.7", "Authorization": f"Bearer {secret}"}
        async with api_client(tree, "127.0.0.1", **headers) as client:
            assert (await client.get("/api/v1/projects/p")).status_code == 200

    async def test_with_the_setting_off_a_loopback_client_is_anonymous(
        self, tmp_path: Path, depot_env: dict[str, str]
    ):
        env = {**depot_env, "NEURODEPOT_LOOPBACK_OPERATOR": "false"}
        with init_depot(tmp_path / "off", env=env) as depot:
            assert depot.settings.loopback_operator is False
            with depot.transaction() as db:
                create_project(db, "p")
            secret = make_user(depot, "ada", "admin")
            async with api_client(depot, "127.0.0.1") as client:
                refused = await client.get("/api/v1/projects/p")
                assert refused.status_code == 403
                assert "sign-in is required" in refused.json()["message"]
                assert (await client.delete("/api/v1/projects/p")).status_code == 403
                signed_in = await client.get(
                    "/api/v1/projects/p", headers={"Authorization": f"Bearer {secret}"}
                )
                assert signed_in.status_code == 200


class TestTheAuditLog:
    async def test_the_operators_writes_are_recorded_with_their_outcome(self, tree: Depot):
        async with api_client(tree, "127.0.0.1") as client:
            assert (await client.post("/api/v1/projects", json={"label": "q"})).status_code == 201
            clash = await client.post("/api/v1/projects", json={"label": "q"})
            assert clash.status_code == 409
            put = await client.put(FILE, content=b"notes\n")
            assert put.status_code == 201
            assert (await client.delete("/api/v1/projects/q")).status_code == 204
        assert events(tree, "write") == [
            (OPERATOR, "write", "", "ok"),
            (OPERATOR, "write", "", "failed"),
            (OPERATOR, "write", "p", "ok"),
            (OPERATOR, "write", "q", "ok"),
        ]
        first, failed, upload, deleted = details(tree, "write")
        assert first == {"method": "POST", "path": "/api/v1/projects", "action": "create"}
        assert failed["error"] == "Conflict" and "already exists" in str(failed["message"])
        assert (upload["method"], upload["path"]) == ("PUT", FILE)
        assert (deleted["method"], deleted["action"]) == ("DELETE", "administer")

    async def test_the_operators_reads_of_data_are_recorded_as_a_users_are(self, tree: Depot):
        async with api_client(tree, "127.0.0.1") as client:
            assert (await client.put(FILE, content=b"notes\n")).status_code == 201
            assert (await client.get("/api/v1/projects/p/subjects/s")).status_code == 200
            assert (await client.get(FILE)).status_code == 200
            assert (await client.get("/api/v1/projects")).status_code == 200  # a listing
            assert (await client.get("/api/v1/prearchive")).status_code == 200
        assert events(tree, "data_read", "download", "admin_read") == [
            (OPERATOR, "data_read", "p/s", "ok"),
            (OPERATOR, "download", "p", "ok"),
            (OPERATOR, "admin_read", "", "ok"),
        ]

    async def test_a_users_writes_and_depot_wide_refusals_are_recorded(self, tree: Depot):
        secret = make_user(tree, "mia")
        with tree.transaction() as db:
            accounts.set_project_role(db, "test", "mia", "p", "member")
        async with api_client(tree, "192.0.2.4", Authorization=f"Bearer {secret}") as client:
            made = await client.post("/api/v1/projects/p/subjects", json={"label": "s2"})
            assert made.status_code == 201
            assert (await client.get("/api/v1/prearchive")).status_code == 403
            assert (await client.get("/api/v1/users")).status_code == 403
        assert events(tree, "write", "access_denied") == [
            ("mia", "write", "p", "ok"),
            ("mia", "access_denied", "", "denied"),
            ("mia", "access_denied", "", "denied"),
        ]

    async def test_the_anonymous_callers_refusals_are_not_recorded(self, tree: Depot):
        async with api_client(tree, "203.0.113.7") as client:
            assert (await client.post("/api/v1/projects", json={"label": "q"})).status_code == 403
            assert (await client.get("/api/v1/projects/p")).status_code == 403
        assert events(tree, "write", "access_denied", "data_read") == []
