"""Signing in with a password: rate limits and lockout, server-side sessions, sign-out.

Every failure looks the same to the caller (`SignInFailed`), whether the account does not
exist, the password or second factor is wrong, the account is pending or disabled, or it is
locked after repeated failures; the reason goes to the audit log. The caller must commit
before raising, so that the failure is counted and logged (`attempt_sign_in` returns it).

Failures are kept in `login_failures` for `KEPT`, then dropped at the next failed sign-in
(`forget_old_failures`), so the table holds at most an hour of them. The public account routes
count their requests in the same table (`access.throttle`).
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.access.models import LoginFailure, User, WebSession
from neurodepot.access.passwords import verify_password
from neurodepot.access.totp import check_code

SESSION_HOURS = 12
WINDOW = timedelta(minutes=15)
ACCOUNT_FAILURES = 5  # then the account is locked for the rest of the window
ADDRESS_FAILURES = 20  # then the address is throttled for the rest of the window
# How long a row of `login_failures` is kept: the longest window anything counts it in (the
# public account routes count an hour, see `access.throttle`).
KEPT = timedelta(hours=1)
FAILED = "sign-in failed: wrong username, password or code, or the account cannot sign in now"


@dataclass(frozen=True)
class SignedIn:
    """A new session: the cookie's secret (shown once) and the CSRF token for writes."""

    username: str
    secret: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class SessionOwner:
    user_id: int
    username: str
    kind: str
    is_admin: bool
    is_steward: bool
    csrf_token: str
    session_id: int


@dataclass(frozen=True)
class Attempt:
    """What a sign-in came to: `signed_in`, or `throttled` (with a wait), or failed."""

    signed_in: SignedIn | None = None
    throttled_s: int = 0


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def attempt_sign_in(
    db: Session, username: str, password: str, address: str, code: str = ""
) -> Attempt:
    now = datetime.now(UTC)
    since = now - WINDOW
    by_address = _failures(db, LoginFailure.address == address, since)
    if by_address >= ADDRESS_FAILURES:
        audit.record(
            db,
            username[:255] or "unknown",
            "login_failed",
            "",
            {"reason": "address throttled", "address": address},
            "denied",
        )
        return Attempt(throttled_s=int(WINDOW.total_seconds()))
    user = db.scalar(select(User).where(User.username == username))
    locked = _failures(db, LoginFailure.username == username, since) >= ACCOUNT_FAILURES
    # The password is checked even for a missing or locked account: same work, same time.
    password_ok = verify_password(user.password_hash if user else None, password)
    reason = ""
    if user is None:
        reason = "no such account"
    elif locked:
        reason = "account locked after repeated failures"
    elif not password_ok:
        reason = "wrong password"
    elif user.status != "active":
        reason = f"account {user.status}"
    elif user.totp_secret and not check_code(user.totp_secret, code):
        reason = "wrong or missing second-factor code"
    if reason:
        forget_old_failures(db)  # an indexed delete; keeps the table at most `KEPT` long
        db.add(LoginFailure(username=username[:255], address=address[:64], at=now))
        audit.record(
            db,
            username[:255] or "unknown",
            "login_failed",
            "",
            {"reason": reason, "address": address},
            "denied",
        )
        return Attempt()
    assert user is not None
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + timedelta(hours=SESSION_HOURS)
    db.add(
        WebSession(
            user_id=user.id,
            secret_hash=_digest(secret),
            csrf_token=csrf,
            address=address[:64],
            created_at=now,
            expires_at=expires,
        )
    )
    db.flush()
    audit.record(db, user.username, "login", "", {"address": address})
    return Attempt(SignedIn(user.username, secret, csrf, expires))


def _failures(db: Session, condition: object, since: datetime) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(condition, LoginFailure.at >= since)  # type: ignore[arg-type]
        )
        or 0
    )


def session_owner(db: Session, secret: str) -> SessionOwner | None:
    """The account behind a session cookie, while the session and the account are valid."""
    if not secret or len(secret) > 100:
        return None
    row = db.scalar(select(WebSession).where(WebSession.secret_hash == _digest(secret)))
    if row is None or row.revoked_at is not None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    if expires <= datetime.now(UTC):
        return None
    user = db.get(User, row.user_id)
    if user is None or user.status != "active":
        return None
    return SessionOwner(
        user.id, user.username, user.kind, user.is_admin, user.is_steward, row.csrf_token, row.id
    )


def csrf_matches(owner: SessionOwner, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(owner.csrf_token, presented)


def sign_out(db: Session, secret: str) -> bool:
    row = db.scalar(select(WebSession).where(WebSession.secret_hash == _digest(secret)))
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = datetime.now(UTC)
    user = db.get(User, row.user_id)
    audit.record(db, user.username if user else "unknown", "logout", "", {"session": row.id})
    return True


def end_sessions(db: Session, user_id: int) -> int:
    """End every open session of the account (the caller audits why); how many there were."""
    ended = db.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return ended.rowcount or 0  # type: ignore[attr-defined]


def forget_old_failures(db: Session) -> int:
    """Drop rows older than `KEPT` (no window counts them any more); how many went."""
    cutoff = datetime.now(UTC) - KEPT
    return db.execute(delete(LoginFailure).where(LoginFailure.at < cutoff)).rowcount or 0  # type: ignore[attr-defined]
