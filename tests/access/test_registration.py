"""Self-registration, address verification and password reset over HTTP, with a real SMTP server.

The mail server is aiosmtpd on loopback (the `smtp` fixture); the depot's settings point at it.
Each test runs on SQLite and PostgreSQL, as a remote caller who is not signed in.
"""

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from neurodepot.access import accounts, registration, sessions, tokens
from neurodepot.access.models import AuditEvent, User
from neurodepot.access.passwords import verify_password
from neurodepot.access.signed import SECRET_FILE, secret_key, sign
from neurodepot.api.app import create_app
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid
from tests.access.conftest import PUBLIC_URL, MailServer

pytestmark = pytest.mark.anyio

PASSWORD = "a long and quiet river"
NEW_PASSWORD = "seven tired owls at dawn"
REMOTE = ("203.0.113.7", 50000)


def form(**changes: str) -> dict[str, str]:
    """A valid registration, with `changes`."""
    return {
        "username": "ann",
        "email": "ann.lee@example.org",
        "name": "Ann Lee",
        "affiliation": "Institute of Examples",
        "purpose": "Replicating a resting-state study.",
        "kind": "external",
        "password": PASSWORD,
        **changes,
    }


@pytest.fixture
def depot_env(depot_env: dict[str, str], smtp: MailServer) -> dict[str, str]:
    """The depot's environment, pointing its mail at the test's SMTP server."""
    return {
        **depot_env,
        "NEURODEPOT_SMTP_PORT": str(smtp.port),
        "NEURODEPOT_PUBLIC_URL": PUBLIC_URL + "/",
        "NEURODEPOT_MAIL_FROM": "Neurodepot <depot@example.org>",
    }


@pytest.fixture
async def client(depot: Depot) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(depot), client=REMOTE)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as opened:
        yield opened


@pytest.fixture
def admin(depot: Depot) -> str:
    """An active admin with a verified address, who is told about accounts to approve."""
    with depot.transaction() as db:
        accounts.add_user(db, "test", "boss", "boss@example.org", "The Boss", password=PASSWORD)
        accounts.set_status(db, "test", "boss", "active")
        accounts.set_site_role(db, "test", "boss", "admin")
    return "boss@example.org"


@pytest.fixture
def active(depot: Depot) -> Depot:
    """The depot with `ann`, active, with PASSWORD (added by an admin)."""
    with depot.transaction() as db:
        accounts.add_user(db, "test", "ann", "Ann.Lee@example.org", "Ann Lee", password=PASSWORD)
        accounts.set_status(db, "test", "ann", "active")
    return depot


def user_count(depot: Depot) -> int:
    with depot.reading() as db:
        return int(db.scalar(select(func.count()).select_from(User)) or 0)


def stored(depot: Depot, username: str) -> User:
    with depot.reading() as db:
        user = db.scalar(select(User).where(User.username == username))
        assert user is not None
        db.expunge(user)
        return user


def actions(depot: Depot) -> list[tuple[str, str, str]]:
    with depot.reading() as db:
        rows = db.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [(r.action, r.target, r.outcome) for r in rows]


async def register(client: httpx.AsyncClient, **changes: str) -> httpx.Response:
    return await client.post("/api/v1/register", json=form(**changes))


class TestRegistration:
    async def test_registering_verifying_and_approval_make_an_active_verified_account(
        self, depot: Depot, client: httpx.AsyncClient, smtp: MailServer, admin: str
    ) -> None:
        response = await register(client)
        assert response.status_code == 202
        assert "check your mail" in response.json()["message"]
        user = stored(depot, "ann")
        assert (user.status, user.email_verified_at, user.kind) == ("pending", None, "external")
        assert (user.affiliation, user.purpose) == (form()["affiliation"], form()["purpose"])
        with depot.transaction() as db, pytest.raises(Invalid, match="not verified"):
            accounts.set_status(db, "test", "ann", "active")

        [mail] = smtp.to("ann.lee@example.org")
        assert mail.mail_from == "depot@example.org"
        assert mail.message["From"] == "Neurodepot <depot@example.org>"
        assert mail.message["To"] == "ann.lee@example.org"
        assert mail.message["Auto-Submitted"] == "auto-generated"
        assert "Ann Lee" not in mail.text  # nothing the registrant typed but the username
        token = mail.link("/verify")

        response = await client.post("/api/v1/register/verify", json={"token": token})
        assert response.status_code == 200, response.text
        assert "admin" in response.json()["message"]
        assert stored(depot, "ann").email_verified_at is not None
        [notice] = smtp.to(admin)
        assert "neurodepot user approve ann" in notice.text

        with depot.transaction() as db:
            info = accounts.set_status(db, "boss", "ann", "active")
        assert (info.status, info.email_verified) == ("active", True)
        assert verify_password(stored(depot, "ann").password_hash, PASSWORD)
        assert ("account_changed", "user:ann", "ok") in actions(depot)

    async def test_verifying_again_changes_nothing_and_tells_no_admin_again(
        self, depot: Depot, client: httpx.AsyncClient, smtp: MailServer, admin: str
    ) -> None:
        await register(client)
        token = smtp.to("ann.lee@example.org")[0].link("/verify")
        for _ in range(2):
            response = await client.post("/api/v1/register/verify", json={"token": token})
            assert response.status_code == 200
        assert len(smtp.to(admin)) == 1

    async def test_the_link_can_be_asked_for_again(
        self, depot: Depot, client: httpx.AsyncClient, smtp: MailServer
    ) -> None:
        await register(client)
        asked = await client.post("/api/v1/register/verify", json={"email": "ANN.lee@example.org"})
        unknown = await client.post("/api/v1/register/verify", json={"email": "no@example.org"})
        assert asked.status_code == unknown.status_code == 202
        assert asked.json() == unknown.json()
        _first, again = smtp.to("ann.lee@example.org")
        assert smtp.to("no@example.org") == []
        response = await client.post(
            "/api/v1/register/verify", json={"token": again.link("/verify")}
        )
        assert response.status_code == 200
        # Once verified, there is nothing to send again.
        await client.post("/api/v1/register/verify", json={"email": "ann.lee@example.org"})
        assert len(smtp.to("ann.lee@example.org")) == 2

    @pytest.mark.parametrize(
        "taken",
        [{"email": "other@example.org"}, {"username": "bob"}, {"email": "ANN.LEE@example.org"}],
        ids=["same username", "same email", "same email in other case"],
    )
    async def test_a_taken_username_or_address_gets_the_same_answer_and_no_mail(
        self, depot: Depot, client: httpx.AsyncClient, smtp: MailServer, taken: dict[str, str]
    ) -> None:
        first = await register(client)
        again = await register(client, **taken)
        assert (again.status_code, again.json()) == (first.status_code, first.json())
        assert user_count(depot) == 1
        assert len(smtp.received) == 1
        assert actions(depot)[-1] == ("registration_refused", f"user:{form(**taken)['username']}",
                                      "refused")  # fmt: skip

    @pytest.mark.parametrize(
        ("changes", "says"),
        [
            ({"username": "Ann Lee"}, "username"),
            ({"username": "a"}, "username"),
            ({"email": "not-an-address"}, "address"),
            ({"email": "ann@localhost"}, "address"),
            ({"password": "short"}, "12 characters"),
            ({"password": "ann.lee@example.org!"}, "name or email"),
            ({"kind": "admin"}, "kind"),
            ({"name": ""}, "name"),
            ({"name": "x" * 256}, "name"),
            ({"purpose": "x" * 4001}, "purpose"),
            ({"is_admin": True}, "is_admin"),
        ],
        ids=lambda value: value if isinstance(value, str) else None,
    )
    async def test_invalid_input_is_422_saying_what_is_wrong_and_stores_nothing(
        self,
        depot: Depot,
        client: httpx.AsyncClient,
        smtp: MailServer,
        changes: dict[str, Any],
        says: str,
    ) -> None:
        response = await client.post("/api/v1/register", json={**form(), **changes})
        assert response.status_code == 422, response.text
        assert says in response.json()["message"]
        assert user_count(depot) == 0
        assert smtp.received == []

    async def test_a_missing_field_is_422(self, depot: Depot, client: httpx.AsyncClient) -> None:
        body = form()
        del body["purpose"]
        response = await client.post("/api/v1/register", json=body)
        assert response.status_code == 422
        assert "purpose" in response.json()["message"]
        assert user_count(depot) == 0

    @pytest.mark.parametrize(
        "changes",
        [
            {"name": "Ann\r\nBcc: victim@example.net"},
            {"name": "Ann\nBcc: victim@example.net"},
            {"email": "ann@example.org\r\nBcc: victim@example.net"},
            {"email": "ann@example.org\nBcc:victim@example.net"},
            {"email": "ann@example.org,victim@example.net"},
            {"email": "Ann <ann@example.org>"},
            {"affiliation": "Lab\r\nX-Injected: 1"},
        ],
    )
    async def test_header_injection_is_refused_storing_nothing_and_sending_nothing(
        self, depot: Depot, client: httpx.AsyncClient, smtp: MailServer, changes: dict[str, str]
    ) -> None:
        response = await register(client, **changes)
        assert response.status_code == 422, response.text
        assert user_count(depot) == 0
        assert smtp.received == []

    SQL = "'); DROP TABLE users; --"

    @pytest.mark.parametrize(
        "changes",
        [
            {"name": "Robert'); DROP TABLE users; --"},
            {"affiliation": '" OR 1=1 --; DELETE FROM audit_events'},
            {"purpose": "' UNION SELECT password_hash FROM users --\n%_\\ ;"},
            {"password": "x'); DROP TABLE users; --"},
            {"email": "o'brien'--@example.org"},
        ],
    )
    async def test_sql_metacharacters_are_stored_verbatim(
        self, depot: Depot, client: httpx.AsyncClient, smtp: MailServer, changes: dict[str, str]
    ) -> None:
        response = await register(client, **changes)
        assert response.status_code == 202, response.text
        user = stored(depot, "ann")
        assert (user.display_name, user.affiliation, user.purpose, user.email) == (
            form(**changes)["name"], form(**changes)["affiliation"], form(**changes)["purpose"],
            form(**changes)["email"],
        )  # fmt: skip
        assert verify_password(user.password_hash, form(**changes)["password"])
        assert user_count(depot) == 1
        assert len(smtp.to(form(**changes)["email"])) == 1

    @pytest.mark.parametrize("username", ["ann'; drop table users; --", "ann' or '1'='1"])
    async def test_sql_metacharacters_in_the_username_are_refused(
        self, depot: Depot, client: httpx.AsyncClient, username: str
    ) -> None:
        assert (await register(client)).status_code == 202
        response = await register(client, username=username, email="eve@example.org")
        assert response.status_code == 422
        assert user_count(depot) == 1

    async def test_a_mail_server_that_is_down_gives_503_but_keeps_the_account(
        self, depot: Depot, client: httpx.AsyncClient, smtp: MailServer
    ) -> None:
        smtp.stop()
        response = await register(client)
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "Unavailable"
        assert "registered" in body["message"] and "again" in body["message"]
        assert str(smtp.port) not in body["message"]  # the server is not the caller's business
        assert stored(depot, "ann").status == "pending"
        assert actions(depot)[-1] == ("mail_failed", "user:ann", "failed")

        smtp.start()
        asked = await client.post("/api/v1/register/verify", json={"email": "ann.lee@example.org"})
        assert asked.status_code == 202
        [mail] = smtp.to("ann.lee@example.org")
        verified = await client.post(
            "/api/v1/register/verify", json={"token": mail.link("/verify")}
        )
        assert verified.status_code == 200
        assert stored(depot, "ann").email_verified_at is not None

    async def test_the_secret_key_is_made_on_first_use_readable_by_its_owner_only(
        self, depot: Depot, client: httpx.AsyncClient
    ) -> None:
        key = depot.settings.root / SECRET_FILE
        assert not key.exists()
        assert (await register(client)).status_code == 202
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert len(key.read_bytes()) == 32

    async def test_a_secret_key_others_can_read_is_refused(
        self, depot: Depot, client: httpx.AsyncClient, smtp: MailServer
    ) -> None:
        key = depot.settings.root / SECRET_FILE
        secret_key(depot.settings.root)
        key.chmod(0o644)
        response = await register(client)
        assert response.status_code == 503
        assert "chmod 600" in response.json()["message"]
        assert user_count(depot) == 0
        assert smtp.received == []


class TestVerificationLinks:
    async def test_an_expired_link_is_refused_saying_so(
        self, depot: Depot, client: httpx.AsyncClient
    ) -> None:
        await register(client)
        user = stored(depot, "ann")
        token = sign(
            secret_key(depot.settings.root), registration.VERIFY_EMAIL, str(user.id), -1,
            user.email.lower(),
        )  # fmt: skip
        response = await client.post("/api/v1/register/verify", json={"token": token})
        assert response.status_code == 400
        assert "expired" in response.json()["message"]
        assert stored(depot, "ann").email_verified_at is None

    @pytest.mark.parametrize(
        "token",
        ["", "garbage", "a.b.c", "MQ.99999999999.AAAA", "...",
         sign(b"k" * 32, registration.VERIFY_EMAIL, "9" * 40, 60),
         sign(b"k" * 32, registration.VERIFY_EMAIL, "-1", 60)],
    )  # fmt: skip
    async def test_a_malformed_link_is_refused(
        self, depot: Depot, client: httpx.AsyncClient, token: str
    ) -> None:
        response = await client.post("/api/v1/register/verify", json={"token": token})
        assert response.status_code == 400
        assert "not valid" in response.json()["message"]

    async def test_a_link_for_another_account_or_purpose_is_refused(
        self, depot: Depot, client: httpx.AsyncClient, smtp: MailServer
    ) -> None:
        await register(client)
        await register(client, username="bob", email="bob@example.org")
        token = smtp.to("ann.lee@example.org")[0].link("/verify")
        subject, expiry, mac = token.split(".")
        bob = stored(depot, "bob")
        forged = f"{sign(b'k' * 32, 'x', str(bob.id), 60).split('.')[0]}.{expiry}.{mac}"
        other_purpose = sign(
            secret_key(depot.settings.root), registration.RESET_PASSWORD, subject, 3600,
            bob.email.lower(),
        )  # fmt: skip
        for bad in (forged, other_purpose, f"{subject}.{int(expiry) + 1}.{mac}"):
            response = await client.post("/api/v1/register/verify", json={"token": bad})
            assert response.status_code == 400, bad
        assert stored(depot, "bob").email_verified_at is None
        assert stored(depot, "ann").email_verified_at is None


class TestPasswordReset:
    async def test_known_and_unknown_addresses_get_the_same_answer_only_one_gets_mail(
        self, active: Depot, client: httpx.AsyncClient, smtp: MailServer
    ) -> None:
        known = await client.post("/api/v1/password-reset", json={"email": "ann.lee@example.org"})
        unknown = await client.post("/api/v1/password-reset", json={"email": "who@example.org"})
        assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
        assert known.status_code == 202
        assert dict(known.headers) == dict(unknown.headers)
        assert [mail.rcpt_tos for mail in smtp.received] == [["Ann.Lee@example.org"]]
        assert [a for a in actions(active) if a[0] == "password_reset_requested"] == [
            ("password_reset_requested", "user:ann", "ok"),
            ("password_reset_requested", "email:who@example.org", "nothing_sent"),
        ]

    async def test_the_link_sets_a_new_password_once(
        self, active: Depot, client: httpx.AsyncClient, smtp: MailServer
    ) -> None:
        with active.transaction() as db:
            signed_in = sessions.attempt_sign_in(db, "ann", PASSWORD, "192.0.2.1").signed_in
        assert signed_in is not None
        await client.post("/api/v1/password-reset", json={"email": "ann.lee@example.org"})
        token = smtp.received[0].link("/reset-password")
        confirm = {"token": token, "password": NEW_PASSWORD}

        response = await client.post("/api/v1/password-reset/confirm", json=confirm)
        assert response.status_code == 200, response.text
        user = stored(active, "ann")
        assert verify_password(user.password_hash, NEW_PASSWORD)
        assert not verify_password(user.password_hash, PASSWORD)
        with active.reading() as db:
            assert sessions.session_owner(db, signed_in.secret) is None  # signed out everywhere
        assert ("password_reset", "user:ann", "ok") in actions(active)

        again = await client.post(
            "/api/v1/password-reset/confirm", json={**confirm, "password": "another fine secret"}
        )
        assert again.status_code == 400
        assert "already been used" in again.json()["message"]
        assert verify_password(stored(active, "ann").password_hash, NEW_PASSWORD)

    async def test_a_reset_revokes_the_accounts_api_tokens(
        self, active: Depot, client: httpx.AsyncClient, smtp: MailServer
    ) -> None:
        with active.transaction() as db:
            tokens.create_token(db, "test", "ann", "laptop", "write")
            _, secret = tokens.create_token(db, "test", "ann", "script", "read")
            accounts.add_user(db, "test", "bob", "bob@example.org")
            accounts.set_status(db, "test", "bob", "active")
            _, others = tokens.create_token(db, "test", "bob", "other", "read")
        await client.post("/api/v1/password-reset", json={"email": "ann.lee@example.org"})
        token = smtp.received[0].link("/reset-password")
        done = await client.post(
            "/api/v1/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
        )
        assert done.status_code == 200 and "tokens are revoked" in done.json()["message"]
        with active.transaction() as db:
            assert tokens.authenticate(db, secret, "192.0.2.1") is None
            assert all(t.revoked_at is not None for t in tokens.list_tokens(db, "ann"))
            assert tokens.authenticate(db, others, "192.0.2.1") is not None  # only ann's
            reset = db.scalar(select(AuditEvent).where(AuditEvent.action == "password_reset"))
            assert reset is not None
            assert reset.detail == {"sessions_revoked": 0, "tokens_revoked": 2}

    async def test_a_refused_password_is_422_and_the_link_still_works(
        self, active: Depot, client: httpx.AsyncClient, smtp: MailServer
    ) -> None:
        await client.post("/api/v1/password-reset", json={"email": "ann.lee@example.org"})
        token = smtp.received[0].link("/reset-password")
        weak = await client.post(
            "/api/v1/password-reset/confirm", json={"token": token, "password": "short"}
        )
        assert weak.status_code == 422
        good = await client.post(
            "/api/v1/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
        )
        assert good.status_code == 200

    async def test_expired_forged_and_foreign_links_are_refused(
        self, active: Depot, client: httpx.AsyncClient
    ) -> None:
        user = stored(active, "ann")
        secret = secret_key(active.settings.root)
        bind = registration._reset_binding(user)
        expired = sign(secret, registration.RESET_PASSWORD, str(user.id), -60, bind)
        forged = sign(os.urandom(32), registration.RESET_PASSWORD, str(user.id), 3600, bind)
        verify_link = sign(secret, registration.VERIFY_EMAIL, str(user.id), 3600, bind)
        unbound = sign(secret, registration.RESET_PASSWORD, str(user.id), 3600)
        for token, says in [
            (expired, "expired"), (forged, "not valid"), (verify_link, "not valid"),
            (unbound, "not valid"), ("MQ.1.x", "not valid"),
        ]:  # fmt: skip
            response = await client.post(
                "/api/v1/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
            )
            assert response.status_code == 400, token
            assert says in response.json()["message"]
        assert verify_password(stored(active, "ann").password_hash, PASSWORD)

    @pytest.mark.parametrize("status", ["pending", "disabled"])
    async def test_an_account_that_is_not_active_gets_no_link(
        self, depot: Depot, client: httpx.AsyncClient, smtp: MailServer, status: str
    ) -> None:
        with depot.transaction() as db:
            accounts.add_user(db, "test", "ann", "ann.lee@example.org", "Ann", password=PASSWORD)
            if status == "disabled":
                accounts.set_status(db, "test", "ann", "disabled")
        response = await client.post(
            "/api/v1/password-reset", json={"email": "ann.lee@example.org"}
        )
        assert response.status_code == 202
        assert smtp.received == []

    async def test_a_link_stops_working_when_the_account_is_disabled(
        self, active: Depot, client: httpx.AsyncClient, smtp: MailServer
    ) -> None:
        await client.post("/api/v1/password-reset", json={"email": "ann.lee@example.org"})
        token = smtp.received[0].link("/reset-password")
        with active.transaction() as db:
            accounts.set_status(db, "test", "ann", "disabled")
        response = await client.post(
            "/api/v1/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
        )
        assert response.status_code == 400

    @pytest.mark.parametrize(
        "email", ["'or'1'='1@example.org", "%@example.org", "*@example.org", "ann.lee@example.org'"]
    )
    async def test_sql_metacharacters_in_the_address_match_nothing(
        self, active: Depot, client: httpx.AsyncClient, smtp: MailServer, email: str
    ) -> None:
        response = await client.post("/api/v1/password-reset", json={"email": email})
        assert response.status_code in (202, 422)
        assert smtp.received == []
        assert user_count(active) == 1

    async def test_a_mail_server_that_is_down_changes_nothing_in_the_answer(
        self, active: Depot, client: httpx.AsyncClient, smtp: MailServer
    ) -> None:
        smtp.stop()
        known = await client.post("/api/v1/password-reset", json={"email": "ann.lee@example.org"})
        unknown = await client.post("/api/v1/password-reset", json={"email": "who@example.org"})
        assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
        assert ("mail_failed", "user:ann", "failed") in actions(active)


class TestBodies:
    @pytest.mark.parametrize(
        "path",
        [
            "/api/v1/register", "/api/v1/register/verify", "/api/v1/password-reset",
            "/api/v1/password-reset/confirm",
        ],
    )  # fmt: skip
    async def test_a_body_over_64_kib_is_413(
        self, depot: Depot, client: httpx.AsyncClient, path: str
    ) -> None:
        big = b'{"purpose": "' + b"x" * (64 * 1024) + b'"}'
        declared = await client.post(
            path, content=big, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        assert declared.json()["error"] == "ContentTooLarge"
        assert "64 KiB" in declared.json()["message"]

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 4096):
                yield big[start : start + 4096]

        streamed = await client.post(
            path, content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert "64 KiB" in streamed.json()["message"]
        assert user_count(depot) == 0

    async def test_a_body_just_under_the_limit_is_read(
        self, depot: Depot, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/api/v1/register", json=form(purpose="x" * 4000))
        assert response.status_code == 202


def test_the_key_file_is_kept_when_it_exists(tmp_path: Path) -> None:
    first = secret_key(tmp_path)
    assert secret_key(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]  # no temporary file left
