"""Signing in with a password over HTTP: cookie, CSRF, one failure message, lockout,
throttling, sign-out, expiry, and the second factor."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from neurodepot.access import accounts, sessions
from neurodepot.access.models import AuditEvent, User, WebSession
from neurodepot.access.totp import code_at
from neurodepot.api.app import create_app
from neurodepot.catalog.hierarchy import create_project
from neurodepot.depot.folder import Depot

pytestmark = pytest.mark.anyio

PASSWORD = "a long and quiet river"


@pytest.fixture
def people(depot: Depot) -> Depot:
    with depot.transaction() as db:
        create_project(db, "P")
        for name, status in (("mia", "active"), ("pat", "pending")):
            accounts.add_user(db, "test", name, f"{name}@example.org", password=PASSWORD)
            if status == "active":
                accounts.set_status(db, "test", name, "active")
        accounts.set_project_role(db, "test", "mia", "P", "member")
    return depot


async def browser(
    depot: Depot, host: str = "192.0.2.10", https: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(depot), client=(host, 50000))
    base = "https://testserver" if https else "http://testserver"
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        yield client


@pytest.fixture
async def client(people: Depot) -> AsyncIterator[httpx.AsyncClient]:
    async for opened in browser(people):
        yield opened


async def sign_in(
    client: httpx.AsyncClient, username: str = "mia", password: str = PASSWORD, code: str = ""
) -> httpx.Response:
    return await client.post(
        "/api/v1/session", json={"username": username, "password": password, "code": code}
    )


async def test_a_signed_in_browser_reads_and_writes_with_its_csrf_token(
    client: httpx.AsyncClient,
) -> None:
    response = await sign_in(client)

    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    csrf = response.json()["csrf_token"]
    assert (await client.get("/api/v1/session")).json()["username"] == "mia"
    assert (await client.get("/api/v1/projects/P")).status_code == 200
    assert (await client.get("/api/v1/projects")).json()[0]["label"] == "P"
    refused = await client.post("/api/v1/projects/P/subjects", json={"label": "s1"})
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["message"]
    wrong = await client.post(
        "/api/v1/projects/P/subjects", json={"label": "s1"}, headers={"X-CSRF-Token": "nope"}
    )
    assert wrong.status_code == 403
    made = await client.post(
        "/api/v1/projects/P/subjects", json={"label": "s1"}, headers={"X-CSRF-Token": csrf}
    )
    assert made.status_code == 201


async def test_the_cookie_is_secure_over_tls(people: Depot) -> None:
    async for client in browser(people, https=True):
        response = await sign_in(client)
        assert "secure" in response.headers["set-cookie"].lower()


async def test_every_failure_looks_the_same(client: httpx.AsyncClient, people: Depot) -> None:
    bodies = []
    for username, password in (
        ("mia", "wrong password!!"),
        ("nobody", PASSWORD),
        ("pat", PASSWORD),
    ):
        response = await sign_in(client, username, password)
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        bodies.append(response.json())
    assert bodies[0] == bodies[1] == bodies[2]
    with people.reading() as db:
        reasons = [
            e.detail["reason"]
            for e in db.scalars(select(AuditEvent).where(AuditEvent.action == "login_failed"))
        ]
    assert reasons == ["wrong password", "no such account", "account pending"]


async def test_an_account_locks_after_repeated_failures(
    client: httpx.AsyncClient, people: Depot
) -> None:
    for _ in range(sessions.ACCOUNT_FAILURES):
        assert (await sign_in(client, password="not the password")).status_code == 401

    locked = await sign_in(client)

    assert locked.status_code == 401
    with people.transaction() as db:
        db.execute(update(sessions.LoginFailure).values(at=datetime.now(UTC) - 2 * sessions.WINDOW))
    assert (await sign_in(client)).status_code == 200


async def test_an_address_with_many_failures_is_throttled(people: Depot) -> None:
    async for client in browser(people, host="198.51.100.4"):
        for n in range(sessions.ADDRESS_FAILURES):
            assert (await sign_in(client, f"guess{n}", "whatever password")).status_code == 401
        throttled = await sign_in(client)
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
    async for other in browser(people, host="198.51.100.5"):
        assert (await sign_in(other)).status_code == 200


async def test_a_failed_sign_in_forgets_failures_no_window_counts_any_more(
    client: httpx.AsyncClient, people: Depot
) -> None:
    now = datetime.now(UTC)
    with people.transaction() as db:
        for username, address, age in (
            ("mia", "192.0.2.10", sessions.KEPT + timedelta(minutes=1)),  # forgotten
            ("#reset", "reset:192.0.2.10", sessions.KEPT + timedelta(minutes=1)),  # forgotten
            ("mia", "192.0.2.10", sessions.WINDOW + timedelta(minutes=1)),  # kept a while
            ("#reset", "reset:192.0.2.10", sessions.KEPT - timedelta(minutes=5)),  # still counts
        ):
            db.add(sessions.LoginFailure(username=username, address=address, at=now - age))

    assert (await sign_in(client, password="not the password")).status_code == 401

    with people.reading() as db:
        kept = db.scalars(select(sessions.LoginFailure.at).order_by(sessions.LoginFailure.at))
        ages = [now - (at if at.tzinfo else at.replace(tzinfo=UTC)) for at in kept]
    assert len(ages) == 3  # the two older than KEPT went; the new failure came
    assert all(age < sessions.KEPT for age in ages)


async def test_signing_out_disabling_and_expiry_end_the_session(
    client: httpx.AsyncClient, people: Depot
) -> None:
    assert (await sign_in(client)).status_code == 200
    assert (await client.delete("/api/v1/session")).status_code == 204
    # A copy of a signed-out cookie no longer works, and never falls back to another identity.
    assert (await sign_in(client)).status_code == 200
    copied = client.cookies["neurodepot_session"]
    assert (await client.delete("/api/v1/session")).status_code == 204
    async for stale in browser(people):
        stale.cookies.set("neurodepot_session", copied)
        ended = await stale.get("/api/v1/projects/P")
        assert ended.status_code == 403 and "sign in again" in ended.json()["message"]
    async for local in browser(people, host="127.0.0.1"):  # not the operator with a bad cookie
        local.cookies.set("neurodepot_session", "forged")
        assert (await local.get("/api/v1/projects")).status_code == 403

    response = await sign_in(client)
    assert response.status_code == 200
    with people.transaction() as db:
        accounts.set_status(db, "test", "mia", "disabled")
    assert (await client.get("/api/v1/projects/P")).status_code == 403
    with people.transaction() as db:
        accounts.set_status(db, "test", "mia", "active")
    assert (await client.get("/api/v1/projects/P")).status_code == 200
    with people.transaction() as db:
        db.execute(update(WebSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert (await client.get("/api/v1/projects/P")).status_code == 403


async def test_a_second_factor_is_required_once_enabled(
    client: httpx.AsyncClient, people: Depot
) -> None:
    with people.transaction() as db:
        secret = accounts.set_second_factor(db, "test", "mia", True)
    assert secret is not None

    assert (await sign_in(client)).status_code == 401
    assert (
        await sign_in(
            client,
            code="000000"
            if code_at(secret, datetime.now(UTC).timestamp()) != "000000"
            else "111111",
        )
    ).status_code == 401
    good = await sign_in(client, code=code_at(secret, datetime.now(UTC).timestamp()))
    assert good.status_code == 200
    with people.reading() as db:
        stored = db.scalar(select(User.totp_secret).where(User.username == "mia"))
    assert stored == secret


async def test_malformed_sign_ins_are_refused_clearly(client: httpx.AsyncClient) -> None:
    for body in ({}, {"username": "mia"}, {"username": "x" * 300, "password": "p"}, []):
        response = await client.post("/api/v1/session", json=body)
        assert response.status_code == 422, response.text
    response = await client.post(
        "/api/v1/session", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
