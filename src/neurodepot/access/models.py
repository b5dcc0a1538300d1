"""ORM models of accounts, API tokens, project memberships and the audit log.

A token's secret is never stored: only its SHA-256 (the secret is 256 random bits, so a fast
hash is enough), and the first characters to tell tokens apart in a listing.
"""

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from neurodepot.depot.orm import Base, utcnow

ROLES = ("owner", "member", "collaborator")
ACCOUNT_KINDS = ("member", "external")
SCOPES = ("read", "write")


class User(Base):
    """A person with an account: centre member, external researcher, or admin."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active', 'disabled')", name="known_status"),
        CheckConstraint("kind IN ('member', 'external')", name="known_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    is_admin: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A centre member (internal account) or an external researcher.
    kind: Mapped[str] = mapped_column(String(16), default="member", server_default="member")
    is_steward: Mapped[bool] = mapped_column(default=False, server_default=false())
    affiliation: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    purpose: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    # Set when the account's owner followed the emailed link (or an admin created it).
    email_verified_at: Mapped[datetime | None] = mapped_column(default=None)
    # Base32 TOTP secret once a second factor is enabled.
    totp_secret: Mapped[str | None] = mapped_column(String(64), default=None)


class ApiToken(Base):
    """A script's credential: scoped, expiring, revocable, shown once and stored hashed."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("scope IN ('read', 'write')", name="known_scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Membership(Base):
    """A named person's role in one project."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'member', 'collaborator')", name="known_role"),
    )

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One read of data or administrative act; rows are only ever appended."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(1024), default="")
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    previous_hash: Mapped[str] = mapped_column(String(64), default="")
    hash: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str] = mapped_column(Text, default="")


class WebSession(Base):
    """A signed-in browser: the cookie carries a secret whose SHA-256 is kept here.

    Revocable from the server (sign-out, an admin disabling the account); `csrf_token` must
    accompany every write made with the cookie.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class LoginFailure(Base):
    """A failed sign-in, kept for a while to rate-limit by account and by address."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(255), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
