"""Rate limits of registering, asking for the link again and asking for a password reset, per
client address, over HTTP with a real SMTP server; on SQLite and PostgreSQL."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from neurodepot.access import accounts, sessions, throttle
from neurodepot.access.models import AuditEvent, LoginFailure, User
from neurodepot.api.app import create_app
from neurodepot.depot.folder import Depot
from tests.access.conftest import MailServer
from tests.access.test_registration import PASSWORD, depot_env, form  # noqa: F401

pytestmark = pytest.mark.anyio


async def client_from(depot: Depot, host: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(depot), client=(host, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def user_count(depot: Depot) -> int:
    with depot.reading() as db:
        return int(db.scalar(select(func.count()).select_from(User)) or 0)


def rate_limited(depot: Depot) -> list[tuple[str, str]]:
    with depot.reading() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.action == "rate_limited"))
        return [(r.target, str(r.detail["address"])) for r in rows]


def age_counts(depot: Depot, by: timedelta) -> None:
    with depot.transaction() as db:
        db.execute(update(LoginFailure).values(at=datetime.now(UTC) - by))


@pytest.fixture
def active(depot: Depot) -> Depot:
    """The depot with `ann`, active (as in test_registration)."""
    with depot.transaction() as db:
        accounts.add_user(db, "test", "ann", "ann.lee@example.org", "Ann Lee", password=PASSWORD)
        accounts.set_status(db, "test", "ann", "active")
    return depot


async def test_registering_is_limited_per_address_and_then_stores_and_sends_nothing(
    depot: Depot, smtp: MailServer
) -> None:
    limit = throttle.LIMITS[throttle.REGISTER]
    async for client in client_from(depot, "203.0.113.7"):
        for n in range(limit):
            made = await client.post(
                "/api/v1/register", json=form(username=f"ann{n}", email=f"ann{n}@example.org")
            )
            assert made.status_code == 202, made.text
        new = await client.post("/api/v1/register", json=form(username="zed", email="z@x.org"))
        taken = await client.post("/api/v1/register", json=form(username="ann0"))
    assert new.status_code == taken.status_code == 429
    assert new.json() == taken.json()  # the same answer whatever the account
    assert new.json()["error"] == "Throttled"
    assert 0 < int(new.headers["retry-after"]) <= 3600
    assert user_count(depot) == limit
    assert len(smtp.received) == limit
    assert rate_limited(depot) == [("route:register", "203.0.113.7")] * 2

    async for other in client_from(depot, "198.51.100.9"):
        elsewhere = await other.post("/api/v1/register", json=form(username="zed", email="z@x.org"))
        assert elsewhere.status_code == 202
    age_counts(depot, throttle.WINDOW + timedelta(seconds=1))
    async for client in client_from(depot, "203.0.113.7"):
        later = await client.post("/api/v1/register", json=form(username="yan", email="y@x.org"))
        assert later.status_code == 202


async def test_asking_for_the_link_again_is_limited_whatever_the_address_asked_about(
    depot: Depot, smtp: MailServer
) -> None:
    limit = throttle.LIMITS[throttle.RESEND]
    async for client in client_from(depot, "203.0.113.7"):
        assert (await client.post("/api/v1/register", json=form())).status_code == 202
        for n in range(limit):
            email = "ann.lee@example.org" if n % 2 else f"who{n}@example.org"
            asked = await client.post("/api/v1/register/verify", json={"email": email})
            assert asked.status_code == 202
        known = await client.post("/api/v1/register/verify", json={"email": "ann.lee@example.org"})
        unknown = await client.post("/api/v1/register/verify", json={"email": "no@example.org"})
        # Confirming the address with the link is not limited: the token is the secret.
        token = smtp.to("ann.lee@example.org")[0].link("/verify")
        confirmed = await client.post("/api/v1/register/verify", json={"token": token})
    assert known.status_code == unknown.status_code == 429
    assert known.json() == unknown.json()
    assert "retry-after" in known.headers
    assert len(smtp.to("ann.lee@example.org")) == 1 + limit // 2  # nothing after the limit
    assert confirmed.status_code == 200


async def test_asking_for_a_password_reset_is_limited_per_address(
    active: Depot, smtp: MailServer
) -> None:
    limit = throttle.LIMITS[throttle.RESET]
    async for client in client_from(active, "203.0.113.7"):
        for _ in range(limit):
            asked = await client.post(
                "/api/v1/password-reset", json={"email": "ann.lee@example.org"}
            )
            assert asked.status_code == 202
        known = await client.post("/api/v1/password-reset", json={"email": "ann.lee@example.org"})
        unknown = await client.post("/api/v1/password-reset", json={"email": "who@example.org"})
    assert known.status_code == unknown.status_code == 429
    assert known.json() == unknown.json()
    assert len(smtp.received) == limit
    async for other in client_from(active, "198.51.100.9"):
        asked = await other.post("/api/v1/password-reset", json={"email": "ann.lee@example.org"})
        assert asked.status_code == 202


async def test_the_counts_are_apart_from_sign_in_failures(active: Depot, smtp: MailServer) -> None:
    async for client in client_from(active, "203.0.113.7"):
        for _ in range(throttle.LIMITS[throttle.RESET]):
            await client.post("/api/v1/password-reset", json={"email": "ann.lee@example.org"})
        signed_in = await client.post(
            "/api/v1/session", json={"username": "ann", "password": PASSWORD}
        )
        assert signed_in.status_code == 200
    with active.reading() as db:
        count = db.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.address == "203.0.113.7")
        )
    assert count == 0


async def test_a_malformed_request_is_not_counted(depot: Depot, smtp: MailServer) -> None:
    async for client in client_from(depot, "203.0.113.7"):
        for _ in range(throttle.LIMITS[throttle.RESET] + 1):
            bad = await client.post("/api/v1/password-reset", json={"mail": "x"})
            assert bad.status_code == 422
        asked = await client.post("/api/v1/password-reset", json={"email": "who@example.org"})
        assert asked.status_code == 202


def test_the_wait_is_until_the_oldest_counted_request_leaves_the_window(depot: Depot) -> None:
    start = datetime.now(UTC) - timedelta(minutes=50)
    with depot.transaction() as db:
        for n in range(throttle.LIMITS[throttle.RESET]):
            counted = throttle.count_request(
                db, throttle.RESET, "192.0.2.1", start + timedelta(minutes=n)
            )
            assert counted.allowed
        refused = throttle.count_request(db, throttle.RESET, "192.0.2.1")
        other_route = throttle.count_request(db, throttle.RESEND, "192.0.2.1")
    assert not refused.allowed and 9 * 60 < refused.retry_after_s <= 10 * 60 + 1
    assert other_route.allowed
    assert throttle.WINDOW <= sessions.KEPT
