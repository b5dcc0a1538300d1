"""Accounts, passwords, roles and tokens in the domain, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from neurodepot.access import accounts, tokens
from neurodepot.access.models import ApiToken, AuditEvent, User
from neurodepot.access.passwords import check_password, verify_password
from neurodepot.catalog.hierarchy import create_project
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict, Invalid, NotFound

GOOD = "correct horse battery staple"


def events(depot: Depot) -> list[tuple[str, str, str]]:
    with depot.reading() as db:
        rows = db.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [(r.actor, r.action, r.target) for r in rows]


@pytest.fixture
def mia(depot: Depot) -> Depot:
    with depot.transaction() as db:
        create_project(db, "P")
        accounts.add_user(db, "admin", "mia", "mia.k@example.org", "Mia Kovacs", password=GOOD)
    return depot


def test_a_new_account_waits_for_approval_and_every_change_is_audited(mia: Depot) -> None:
    with mia.transaction() as db:
        assert accounts.get_user(db, "mia").status == "pending"
        accounts.set_status(db, "admin", "mia", "active")
        accounts.set_project_role(db, "admin", "mia", "P", "owner")
        accounts.set_site_role(db, "admin", "mia", "steward")
        accounts.set_project_access(db, "admin", "P", "internal")
        info = accounts.get_user(db, "mia")
    assert (info.status, info.is_steward, info.roles) == ("active", True, (("P", "owner"),))
    assert [action for _, action, _ in events(mia)] == [
        "account_changed",
        "account_changed",
        "membership_changed",
        "role_changed",
        "access_changed",
    ]
    with mia.reading() as db:
        stored = db.scalar(select(User.password_hash).where(User.username == "mia"))
    assert stored is not None and stored.startswith("$argon2id$")
    assert verify_password(stored, GOOD) and not verify_password(stored, GOOD + "!")


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short", "at least 12"),
        ("aaaaaaaaaaaaaaaa", "too easy"),
        ("password1234", "too easy"),
        ("mia.k-is-the-best", "name or email"),
        ("i am kovacs, really", "name or email"),
    ],
)
def test_weak_passwords_are_refused_saying_why(password: str, why: str) -> None:
    with pytest.raises(Invalid, match=why):
        check_password(password, "mia", "mia.k@example.org", "Mia Kovacs")


@pytest.mark.parametrize(
    ("username", "email", "match"),
    [
        ("Mia", "x@example.org", "username"),
        ("m", "x@example.org", "username"),
        ("x'; DROP TABLE users;--", "x@example.org", "username"),
        ("ok", "not-an-email", "email"),
        ("ok", "a@b.org\r\nBcc: all@example.org", "email"),
    ],
)
def test_bad_account_fields_are_refused_and_nothing_is_stored(
    depot: Depot, username: str, email: str, match: str
) -> None:
    with pytest.raises(Invalid, match=match), depot.transaction() as db:
        accounts.add_user(db, "admin", username, email)
    with depot.reading() as db:
        assert accounts.list_users(db) == []


def test_a_username_or_email_is_taken_once(mia: Depot) -> None:
    with pytest.raises(Conflict), mia.transaction() as db:
        accounts.add_user(db, "admin", "mia2", "MIA.K@example.org")
    with pytest.raises(Conflict), mia.transaction() as db:
        accounts.add_user(db, "admin", "mia", "other@example.org")


def test_an_external_account_can_only_collaborate(mia: Depot) -> None:
    with mia.transaction() as db:
        accounts.add_user(db, "admin", "eve", "eve@elsewhere.edu", kind="external")
        with pytest.raises(Invalid, match="only be a collaborator"):
            accounts.set_project_role(db, "admin", "eve", "P", "member")
        info = accounts.set_project_role(db, "admin", "eve", "P", "collaborator")
    assert info.roles == (("P", "collaborator"),)


def test_tokens_work_only_while_valid_and_their_account_is_active(mia: Depot) -> None:
    with mia.transaction() as db:
        accounts.set_status(db, "admin", "mia", "active")
        info, secret = tokens.create_token(db, "admin", "mia", "laptop", "write", days=30)
    with mia.transaction() as db:
        owner = tokens.authenticate(db, secret, "127.0.0.1")
    assert (owner.username, owner.scope, owner.token_id) == ("mia", "write", info.id)
    with mia.reading() as db:
        stored = db.scalar(select(ApiToken.secret_hash).where(ApiToken.id == info.id))
    assert stored is not None and secret not in stored and len(stored) == 64

    for spoil in ("disable", "expire", "revoke", "forge", "garble"):
        with mia.transaction() as db:
            accounts.set_status(db, "admin", "mia", "active")
            db.execute(
                update(ApiToken).values(
                    expires_at=datetime.now(UTC) + timedelta(days=1), revoked_at=None
                )
            )
            presented = secret
            if spoil == "disable":
                accounts.set_status(db, "admin", "mia", "disabled")
            elif spoil == "expire":
                db.execute(update(ApiToken).values(expires_at=datetime.now(UTC) - timedelta(1)))
            elif spoil == "revoke":
                tokens.revoke_token(db, "admin", info.id)
            elif spoil == "forge":
                presented = secret[:-4] + "AAAA"
            else:
                presented = "Bearer" + secret
        with mia.transaction() as db:
            assert tokens.authenticate(db, presented, "192.0.2.1") is None
    with mia.reading() as db:
        denied = db.scalars(select(AuditEvent).where(AuditEvent.action == "token_used"))
        reasons = [(e.actor, e.detail["reason"], e.outcome) for e in denied]
    assert reasons == [
        ("mia", "account disabled", "denied"),
        ("mia", "expired", "denied"),
        ("mia", "revoked", "denied"),
        ("unknown", "unknown token", "denied"),
        ("unknown", "malformed", "denied"),
    ]


def test_bad_token_requests_are_refused(mia: Depot) -> None:
    with mia.transaction() as db:
        for scope, days, name in (("admin", 30, "x"), ("read", 0, "x"), ("read", 400, "x"),
                                  ("read", 30, ""), ("read", 30, "a\nb")):  # fmt: skip
            with pytest.raises(Invalid):
                tokens.create_token(db, "admin", "mia", name, scope, days)
        with pytest.raises(NotFound):
            tokens.create_token(db, "admin", "nobody", "x")
        with pytest.raises(NotFound):
            tokens.revoke_token(db, "admin", 999)
