"""API tokens for scripts: shown once, stored as a SHA-256, scoped, expiring, revocable.

A token is `ndp_` + 43 URL-safe characters (256 random bits). Looking one up by its hash makes
the comparison the database's; the hash is of a secret no one can guess, so timing tells an
attacker nothing they could use.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.access.accounts import find_user
from neurodepot.access.models import SCOPES, ApiToken, User
from neurodepot.errors import Invalid, NotFound

PREFIX = "ndp_"
MAX_DAYS = 366
DEFAULT_DAYS = 90


@dataclass(frozen=True)
class TokenInfo:
    id: int
    username: str
    name: str
    prefix: str
    scope: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class TokenOwner:
    """Who a presented token speaks for, as the policy needs it."""

    user_id: int
    username: str
    kind: str
    is_admin: bool
    is_steward: bool
    scope: str
    token_id: int


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    db: Session, actor: str, username: str, name: str, scope: str = "read", days: int = DEFAULT_DAYS
) -> tuple[TokenInfo, str]:
    """A new token for `username`; the secret is returned here and never again."""
    if scope not in SCOPES:
        raise Invalid(f"a token's scope is one of {', '.join(SCOPES)}, not {scope!r}")
    if not 1 <= days <= MAX_DAYS:
        raise Invalid(f"a token lives 1 to {MAX_DAYS} days, not {days}")
    if not name or len(name) > 255 or any(c in name for c in "\r\n\x00"):
        raise Invalid("a token needs a name of one line, at most 255 characters")
    user = find_user(db, username)
    secret = PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    row = ApiToken(
        user_id=user.id,
        name=name,
        prefix=secret[: len(PREFIX) + 6],
        secret_hash=_digest(secret),
        scope=scope,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    db.add(row)
    db.flush()
    audit.record(
        db, actor, "account_changed", f"user:{username}", {"token": row.id, "created": scope}
    )
    return _info(row, username), secret


def list_tokens(db: Session, username: str) -> list[TokenInfo]:
    user = find_user(db, username)
    rows = db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    return [_info(row, username) for row in rows]


def revoke_token(db: Session, actor: str, token_id: int, owned_by: str | None = None) -> TokenInfo:
    """Revoke a token (again is no error); with `owned_by`, only a token of that account.

    Raises `NotFound` for a token that does not exist, or is not `owned_by`'s: the same
    message, so that nobody learns which ids other accounts hold.
    """
    row = db.get(ApiToken, token_id)
    user = db.get(User, row.user_id) if row is not None else None
    if row is None or user is None or (owned_by is not None and user.username != owned_by):
        raise NotFound(f"there is no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        db.flush()
        audit.record(
            db,
            actor,
            "account_changed",
            f"user:{user.username}",
            {"token": row.id, "revoked": True},
        )
    return _info(row, user.username)


def revoke_all_tokens(db: Session, user_id: int) -> int:
    """Revoke every token of the account not yet revoked (the caller audits why); how many."""
    revoked = db.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return revoked.rowcount or 0  # type: ignore[attr-defined]


REFUSED = "the token is not valid: create a new one (neurodepot user token create)"


def authenticate(db: Session, secret: str, address: str = "") -> TokenOwner | None:
    """The owner of a presented token, or None (its reason recorded in the audit log).

    Refused: an unknown, malformed, expired or revoked token, and any token of an account
    that is not active. The caller raises `Denied(REFUSED)` after committing, so that the
    audit record of the refusal stays: the same message for every reason.
    """
    if not secret.startswith(PREFIX) or len(secret) > 100:
        audit.record(
            db,
            "unknown",
            "token_used",
            "",
            {"reason": "malformed", "address": address},
            outcome="denied",
        )
        return None
    row = db.scalar(select(ApiToken).where(ApiToken.secret_hash == _digest(secret)))
    now = datetime.now(UTC)
    reason = ""
    user = db.get(User, row.user_id) if row is not None else None
    if row is None or user is None:
        reason = "unknown token"
    elif row.revoked_at is not None:
        reason = "revoked"
    elif _aware(row.expires_at) <= now:
        reason = "expired"
    elif user.status != "active":
        reason = f"account {user.status}"
    if reason:
        who = user.username if user is not None else "unknown"
        audit.record(
            db, who, "token_used", "", {"reason": reason, "address": address}, outcome="denied"
        )
        return None
    assert row is not None and user is not None
    row.last_used_at = now
    return TokenOwner(
        user.id, user.username, user.kind, user.is_admin, user.is_steward, row.scope, row.id
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _info(row: ApiToken, username: str) -> TokenInfo:
    return TokenInfo(
        row.id,
        username,
        row.name,
        row.prefix,
        row.scope,
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
    )
