"""`/api/v1/users`: accounts for admins, through the same domain functions as `neurodepot user`."""

import httpx
import pytest
from sqlalchemy import select
from tests.api.conftest import caller

from neurodepot.access import accounts, sessions, tokens
from neurodepot.access.models import AuditEvent
from neurodepot.api.app import create_app
from neurodepot.api.guard import OPERATOR
from neurodepot.catalog.hierarchy import create_project
from neurodepot.depot.folder import Depot

pytestmark = pytest.mark.anyio

PASSWORD = "a long and quiet river"


@pytest.fixture
def people(depot: Depot) -> dict[str, str]:
    """`ada` (admin), `mia` (active member), `pat` (pending, verified); their write tokens."""
    made = {}
    with depot.transaction() as db:
        for name, status, role in (("ada", "active", "admin"), ("mia", "active", "none"),
                                   ("pat", "pending", "none")):  # fmt: skip
            accounts.add_user(db, "test", name, f"{name}@example.org", password=PASSWORD)
            if status == "active":
                accounts.set_status(db, "test", name, "active")
            accounts.set_site_role(db, "test", name, role)
            made[name] = tokens.create_token(db, "test", name, "t", "write")[1]
    return made


def changes(depot: Depot) -> list[tuple[str, str, str, dict[str, object]]]:
    """The account and role changes since the fixture's, as (actor, action, target, detail)."""
    with depot.reading() as db:
        rows = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.in_(("account_changed", "role_changed")))
            .where(AuditEvent.actor != "test")
            .order_by(AuditEvent.id)
        )
        return [(r.actor, r.action, r.target, dict(r.detail)) for r in rows]


async def test_an_admin_lists_shows_approves_disables_and_sets_roles(
    depot: Depot, people: dict[str, str]
) -> None:
    async with caller(depot, people["ada"]) as admin:
        listed = await admin.get("/api/v1/users")
        assert listed.status_code == 200
        assert [(u["username"], u["status"]) for u in listed.json()] == [
            ("ada", "active"), ("mia", "active"), ("pat", "pending"),
        ]  # fmt: skip
        assert "password_hash" not in listed.text and "totp" not in listed.text
        pending = await admin.get("/api/v1/users", params={"status": "pending"})
        assert [u["username"] for u in pending.json()] == ["pat"]
        shown = await admin.get("/api/v1/users/pat")
        assert (shown.status_code, shown.json()["email"]) == (200, "pat@example.org")
        with depot.transaction() as db:
            create_project(db, "P")
            accounts.set_project_role(db, "test", "mia", "P", "member")
        roles = (await admin.get("/api/v1/users/mia")).json()["roles"]
        assert roles == [{"project": "P", "role": "member"}]

        approved = await admin.post("/api/v1/users/pat/approve")
        assert (approved.status_code, approved.json()["status"]) == (200, "active")
        disabled = await admin.post("/api/v1/users/mia/disable")
        assert (disabled.status_code, disabled.json()["status"]) == (200, "disabled")
        role = await admin.put("/api/v1/users/pat/role", json={"role": "steward"})
        assert (role.status_code, role.json()["is_steward"]) == (200, True)
    assert changes(depot) == [
        ("ada", "account_changed", "user:pat", {"status": ["pending", "active"]}),
        ("ada", "account_changed", "user:mia", {"status": ["active", "disabled"]}),
        ("ada", "role_changed", "user:pat", {"site_role": "steward"}),
    ]


async def test_nobody_but_an_admin_sees_or_changes_accounts(
    depot: Depot, people: dict[str, str]
) -> None:
    async with caller(depot, people["mia"]) as member:
        for response in (
            await member.get("/api/v1/users"),
            await member.get("/api/v1/users/mia"),
            await member.post("/api/v1/users/pat/approve"),
            await member.post("/api/v1/users/mia/disable"),
            await member.put("/api/v1/users/mia/role", json={"role": "admin"}),
        ):
            assert response.status_code == 403, response.text
    async with caller(depot, people["pat"]) as pending:
        assert (await pending.get("/api/v1/users")).status_code == 403
    with depot.reading() as db:
        assert [(u.username, u.status, u.is_admin) for u in accounts.list_users(db)] == [
            ("ada", "active", True), ("mia", "active", False), ("pat", "pending", False),
        ]  # fmt: skip


async def test_the_operators_acts_name_the_operator(depot: Depot, people: dict[str, str]) -> None:
    async with caller(depot, None) as operator:
        assert (await operator.post("/api/v1/users/pat/approve")).status_code == 200
        assert (await operator.put("/api/v1/users/pat/role", json={"role": "admin"})).is_success
    assert changes(depot) == [
        (OPERATOR, "account_changed", "user:pat", {"status": ["pending", "active"]}),
        (OPERATOR, "role_changed", "user:pat", {"site_role": "admin"}),
    ]


async def test_a_disabled_accounts_tokens_and_sessions_are_refused_until_approved_again(
    depot: Depot, people: dict[str, str]
) -> None:
    with depot.transaction() as db:
        signed_in = sessions.attempt_sign_in(db, "mia", PASSWORD, "192.0.2.8").signed_in
    assert signed_in is not None
    transport = httpx.ASGITransport(app=create_app(depot), client=("192.0.2.8", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        browser.cookies.set("neurodepot_session", signed_in.secret)
        async with caller(depot, people["mia"]) as member:
            assert (await member.get("/api/v1/tokens")).status_code == 200
            assert (await browser.get("/api/v1/tokens")).status_code == 200
            async with caller(depot, people["ada"]) as admin:
                assert (await admin.post("/api/v1/users/mia/disable")).status_code == 200
            assert (await member.get("/api/v1/tokens")).status_code == 403
            assert (await browser.get("/api/v1/tokens")).status_code == 403
            async with caller(depot, people["ada"]) as admin:
                assert (await admin.post("/api/v1/users/mia/approve")).status_code == 200
            assert (await member.get("/api/v1/tokens")).status_code == 200
            assert (await browser.get("/api/v1/tokens")).status_code == 200


async def test_refusals_say_why(depot: Depot, people: dict[str, str]) -> None:
    with depot.transaction() as db:
        accounts.add_user(db, "test", "new", "new@example.org", verified=False)
    async with caller(depot, people["ada"]) as admin:
        missing = await admin.get("/api/v1/users/nobody")
        assert (missing.status_code, missing.json()["error"]) == (404, "NotFound")
        unverified = await admin.post("/api/v1/users/new/approve")
        assert unverified.status_code == 422 and "verified" in unverified.json()["message"]
        itself = await admin.post("/api/v1/users/ada/disable")
        assert itself.status_code == 409 and "another admin" in itself.json()["message"]
        demoted = await admin.put("/api/v1/users/ada/role", json={"role": "none"})
        assert demoted.status_code == 409
        for body in ({"role": "root"}, {"role": "admin", "extra": 1}, {}):
            bad = await admin.put("/api/v1/users/mia/role", json=body)
            assert bad.status_code == 422, body
        bad_status = await admin.get("/api/v1/users", params={"status": "everyone"})
        assert bad_status.status_code == 422
    with depot.reading() as db:
        ada = accounts.get_user(db, "ada")
        assert (ada.status, ada.is_admin) == ("active", True)
        assert accounts.get_user(db, "new").status == "pending"
