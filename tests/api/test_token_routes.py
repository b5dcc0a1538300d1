"""`/api/v1/tokens`: each account's own API tokens; an admin revokes anyone's."""

import httpx
import pytest
from sqlalchemy import select
from tests.api.conftest import caller

from neurodepot.access import accounts, tokens
from neurodepot.access.models import AuditEvent
from neurodepot.api.app import create_app
from neurodepot.api.guard import OPERATOR
from neurodepot.catalog.hierarchy import create_project
from neurodepot.depot.folder import Depot

pytestmark = pytest.mark.anyio

FIELDS = {"id", "username", "name", "prefix", "scope", "created_at", "expires_at",
          "last_used_at", "revoked_at"}  # fmt: skip


@pytest.fixture
def people(depot: Depot) -> dict[str, str]:
    """Write tokens of `ada` (admin), `mia` (centre member) and `eve` (external)."""
    made = {}
    with depot.transaction() as db:
        create_project(db, "P")
        for name, kind, role in (("ada", "member", "admin"), ("mia", "member", "none"),
                                 ("eve", "external", "none")):  # fmt: skip
            accounts.add_user(db, "test", name, f"{name}@example.org", kind=kind)
            accounts.set_status(db, "test", name, "active")
            accounts.set_site_role(db, "test", name, role)
            made[name] = tokens.create_token(db, "test", name, "first", "write")[1]
        accounts.set_project_role(db, "test", "eve", "P", "collaborator")
    return made


def token_id(depot: Depot, username: str) -> int:
    with depot.reading() as db:
        return tokens.list_tokens(db, username)[0].id


async def test_an_account_lists_only_its_own_tokens_never_their_secrets(
    depot: Depot, people: dict[str, str]
) -> None:
    async with caller(depot, people["eve"]) as eve:
        listed = await eve.get("/api/v1/tokens")
    assert listed.status_code == 200
    [only] = listed.json()
    assert set(only) == FIELDS
    assert (only["username"], only["name"], only["scope"]) == ("eve", "first", "write")
    assert only["last_used_at"] is not None  # this very request used it
    assert people["eve"] not in listed.text and only["prefix"] == people["eve"][:10]


async def test_a_new_tokens_secret_is_shown_once_and_works(
    depot: Depot, people: dict[str, str]
) -> None:
    async with caller(depot, people["eve"]) as eve:  # external accounts make tokens too
        made = await eve.post("/api/v1/tokens", json={"name": "laptop", "days": 7})
        assert made.status_code == 201, made.text
        body = made.json()
        secret = body["secret"]
        assert secret.startswith("ndp_") and body["token"]["scope"] == "read"
        listed = await eve.get("/api/v1/tokens")
        assert [t["name"] for t in listed.json()] == ["first", "laptop"]
        assert secret not in listed.text
    async with caller(depot, secret) as script:
        assert (await script.get("/api/v1/projects/P")).status_code == 200
        assert (
            await script.post("/api/v1/projects/P/subjects", json={"label": "s"})
        ).status_code == 403
    with depot.reading() as db:
        row = db.scalar(
            select(AuditEvent)
            .where(AuditEvent.action == "account_changed", AuditEvent.actor == "eve")
            .order_by(AuditEvent.id.desc())
        )
        assert row is not None and (row.target, row.detail["created"]) == ("user:eve", "read")


async def test_a_read_only_token_cannot_make_or_revoke_tokens(
    depot: Depot, people: dict[str, str]
) -> None:
    with depot.transaction() as db:
        _, read_only = tokens.create_token(db, "test", "mia", "ro", "read")
    async with caller(depot, read_only) as script:
        assert (await script.get("/api/v1/tokens")).status_code == 200
        made = await script.post("/api/v1/tokens", json={"name": "stronger", "scope": "write"})
        assert made.status_code == 403 and "read-only" in made.json()["message"]
        revoked = await script.delete(f"/api/v1/tokens/{token_id(depot, 'mia')}")
        assert revoked.status_code == 403
    with depot.reading() as db:
        assert [t.name for t in tokens.list_tokens(db, "mia")] == ["first", "ro"]


async def test_an_account_revokes_its_own_tokens_but_no_one_elses(
    depot: Depot, people: dict[str, str]
) -> None:
    eves = token_id(depot, "eve")
    async with caller(depot, people["mia"]) as mia:
        other = await mia.delete(f"/api/v1/tokens/{eves}")
        missing = await mia.delete("/api/v1/tokens/999")
        assert other.status_code == missing.status_code == 404
        said = [other.json()["message"].replace(str(eves), "N"), missing.json()["message"]]
        assert said[0] == said[1].replace("999", "N")  # nothing tells them apart
        made = (await mia.post("/api/v1/tokens", json={"name": "spare"})).json()
        gone = await mia.delete(f"/api/v1/tokens/{made['token']['id']}")
        assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
    async with caller(depot, made["secret"]) as spare:
        assert (await spare.get("/api/v1/tokens")).status_code == 403
    async with caller(depot, people["eve"]) as eve:
        assert (await eve.get("/api/v1/tokens")).status_code == 200


async def test_an_admin_or_the_operator_revokes_anyones_token(
    depot: Depot, people: dict[str, str]
) -> None:
    async with caller(depot, people["ada"]) as ada:
        revoked = await ada.delete(f"/api/v1/tokens/{token_id(depot, 'eve')}")
        assert (revoked.status_code, revoked.json()["username"]) == (200, "eve")
    async with caller(depot, people["eve"]) as eve:
        assert (await eve.get("/api/v1/tokens")).status_code == 403
    async with caller(depot, None) as operator:
        assert (await operator.delete(f"/api/v1/tokens/{token_id(depot, 'mia')}")).is_success
        own = await operator.get("/api/v1/tokens")
        assert own.status_code == 422 and "neurodepot user token" in own.json()["message"]
        assert (await operator.post("/api/v1/tokens", json={"name": "x"})).status_code == 422
    with depot.reading() as db:
        rows = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "account_changed", AuditEvent.actor != "test")
            .order_by(AuditEvent.id)
        )
        assert [(r.actor, r.target, r.detail.get("revoked")) for r in rows] == [
            ("ada", "user:eve", True), (OPERATOR, "user:mia", True),
        ]  # fmt: skip


async def test_the_anonymous_caller_gets_nothing(depot: Depot, people: dict[str, str]) -> None:
    transport = httpx.ASGITransport(app=create_app(depot), client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anyone:
        for response in (
            await anyone.get("/api/v1/tokens"),
            await anyone.post("/api/v1/tokens", json={"name": "x"}),
            await anyone.delete(f"/api/v1/tokens/{token_id(depot, 'eve')}"),
        ):
            assert response.status_code == 403


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "x" * 256}, {"name": "a\nb"}, {"name": "x", "scope": "admin"},
     {"name": "x", "days": 0}, {"name": "x", "days": 367}, {"name": "x", "user": "ada"}],
)  # fmt: skip
async def test_a_bad_request_for_a_token_is_422_and_makes_none(
    depot: Depot, people: dict[str, str], body: dict[str, object]
) -> None:
    async with caller(depot, people["mia"]) as mia:
        response = await mia.post("/api/v1/tokens", json=body)
    assert response.status_code == 422, response.text
    with depot.reading() as db:
        assert [t.name for t in tokens.list_tokens(db, "mia")] == ["first"]
