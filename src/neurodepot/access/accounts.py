"""Accounts and roles: add, approve, disable, list; site roles and project roles.

Every change is written to the audit log in the same transaction as the change itself, with
the actor who made it, so that the log and the accounts can never disagree.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.access.models import ACCOUNT_KINDS, ROLES, Membership, User
from neurodepot.access.passwords import check_password, hash_password
from neurodepot.catalog.hierarchy import find_project
from neurodepot.consent import sharing
from neurodepot.errors import Conflict, Denied, Invalid, NotFound

USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,63}")
EMAIL = re.compile(r"[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,}")
SITE_ROLES = ("admin", "steward", "none")


@dataclass(frozen=True)
class UserInfo:
    username: str
    email: str
    display_name: str
    kind: str
    status: str
    is_admin: bool
    is_steward: bool
    affiliation: str
    created_at: datetime
    roles: tuple[tuple[str, str], ...] = ()  # (project, role)
    email_verified: bool = True


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise Invalid(
            f"username {username!r} is not valid: 2 to 64 lowercase letters, digits, '.', '_' "
            "or '-', starting with a letter"
        )
    return username


def check_email(email: str) -> str:
    if not EMAIL.fullmatch(email):
        raise Invalid(f"{email!r} is not an email address")
    return email.strip()


def _single_line(value: str, what: str, limit: int = 255) -> str:
    if len(value) > limit or any(c in value for c in "\r\n\x00"):
        raise Invalid(f"{what} must be one line of at most {limit} characters")
    return value.strip()


def find_user(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"there is no account {username!r}; `neurodepot user list` shows them")
    return user


def add_user(
    db: Session,
    actor: str,
    username: str,
    email: str,
    display_name: str = "",
    kind: str = "member",
    password: str | None = None,
    affiliation: str = "",
    purpose: str = "",
    verified: bool = True,
) -> UserInfo:
    """A new account, `pending` until an admin approves it.

    An account an admin adds is taken as verified; a self-registered one (`verified=False`)
    must follow the emailed link before it can be approved.
    """
    check_username(username)
    email = check_email(email)
    if kind not in ACCOUNT_KINDS:
        raise Invalid(f"account kind must be one of {', '.join(ACCOUNT_KINDS)}, not {kind!r}")
    display_name = _single_line(display_name, "a name")
    affiliation = _single_line(affiliation, "an affiliation")
    if len(purpose) > 4000 or "\x00" in purpose:
        raise Invalid("the purpose of use may have at most 4000 characters")
    if password is not None:
        check_password(password, username, email, display_name)
    taken = db.scalar(
        select(func.count())
        .select_from(User)
        .where((User.username == username) | (func.lower(User.email) == email.lower()))
    )
    if taken:
        raise Conflict("that username or email already has an account")
    user = User(
        username=username,
        email=email,
        display_name=display_name,
        kind=kind,
        status="pending",
        password_hash=hash_password(password) if password is not None else None,
        affiliation=affiliation,
        purpose=purpose,
        email_verified_at=datetime.now(UTC) if verified else None,
    )
    db.add(user)
    db.flush()
    audit.record(
        db, actor, "account_changed", f"user:{username}", {"change": "created", "kind": kind}
    )
    return _info(db, user)


def set_status(db: Session, actor: str, username: str, status: str) -> UserInfo:
    """Approve (`active`) or disable an account; a disabled account's tokens stop working.

    Raises `Conflict` when an account (`actor`) would disable itself: another admin does that.
    """
    if status not in ("active", "disabled"):
        raise Invalid(f"an account is made active or disabled, not {status!r}")
    user = find_user(db, username)
    if status == "disabled" and actor == username:
        raise Conflict("an account cannot disable itself: ask another admin")
    if status == "active" and user.email_verified_at is None:
        raise Invalid(f"{username} has not verified their email address yet: approve it after")
    before = user.status
    user.status = status
    db.flush()
    audit.record(db, actor, "account_changed", f"user:{username}", {"status": [before, status]})
    return _info(db, user)


def set_password(db: Session, actor: str, username: str, password: str) -> None:
    user = find_user(db, username)
    check_password(password, user.username, user.email, user.display_name)
    user.password_hash = hash_password(password)
    db.flush()
    audit.record(db, actor, "account_changed", f"user:{username}", {"change": "password"})


def set_second_factor(db: Session, actor: str, username: str, enable: bool) -> str | None:
    """Turn TOTP on (returns the new secret, to show once) or off for an account."""
    from neurodepot.access.totp import new_secret

    user = find_user(db, username)
    user.totp_secret = new_secret() if enable else None
    db.flush()
    audit.record(db, actor, "account_changed", f"user:{username}", {"second_factor": enable})
    return user.totp_secret


def set_site_role(db: Session, actor: str, username: str, role: str) -> UserInfo:
    """`admin`, `steward`, or `none` (neither).

    Raises `Conflict` when an admin (`actor`) would take away their own admin role, which could
    leave the depot without one: another admin does that.
    """
    if role not in SITE_ROLES:
        raise Invalid(f"a site role is one of {', '.join(SITE_ROLES)}, not {role!r}")
    user = find_user(db, username)
    if actor == username and user.is_admin and role != "admin":
        raise Conflict("an admin cannot take away their own admin role: ask another admin")
    user.is_admin, user.is_steward = role == "admin", role == "steward"
    db.flush()
    audit.record(db, actor, "role_changed", f"user:{username}", {"site_role": role})
    return _info(db, user)


def set_project_role(db: Session, actor: str, username: str, project: str, role: str) -> UserInfo:
    """Give `username` a role in `project` (owner, member, collaborator), or `none` to remove."""
    if role not in (*ROLES, "none"):
        raise Invalid(f"a project role is one of {', '.join(ROLES)} or none, not {role!r}")
    user = find_user(db, username)
    owner = find_project(db, project)
    if role in ("owner", "member") and user.kind != "member":
        raise Invalid(f"{username} is an external account: it can only be a collaborator")
    db.execute(
        delete(Membership).where(Membership.user_id == user.id, Membership.project_id == owner.id)
    )
    if role != "none":
        db.add(Membership(user_id=user.id, project_id=owner.id, role=role))
    db.flush()
    audit.record(
        db, actor, "membership_changed", f"project:{project}", {"user": username, "role": role}
    )
    return _info(db, user)


def set_project_access(
    db: Session,
    actor: str,
    project: str,
    access: str,
    approved_by: str | None = None,
    reason: str = "",
) -> str:
    """Set `project`'s sharing level now, for callers who may also decide for the steward.

    Through the sharing rule (`consent.sharing`): going public needs a steward's approval,
    recorded here as `approved_by` (the local operator may be that steward; so may a test's
    setup). Without it, going public is refused: an owner's request that waits for a steward
    is `consent.sharing.request_level`. Returns the level the project now has.
    """
    sharing.check_level(access)
    if access == sharing.PUBLIC and approved_by is None:
        if find_project(db, project).access == sharing.PUBLIC:
            return access
        raise Denied(
            f"making project {project} public needs a data steward's approval: request it with "
            f"`neurodepot share {project} public`, for a steward to approve"
        )
    request = sharing.request_level(db, actor, project, access, reason)
    if request.status == "pending":
        assert approved_by is not None
        sharing.approve(db, approved_by, project, reason or f"set public by {actor}")
    return access


def list_users(db: Session, status: str | None = None) -> list[UserInfo]:
    query = select(User).order_by(User.username)
    if status:
        query = query.where(User.status == status)
    return [_info(db, user) for user in db.scalars(query)]


def get_user(db: Session, username: str) -> UserInfo:
    return _info(db, find_user(db, username))


def project_role(db: Session, user_id: int, project_id: int) -> str | None:
    return db.scalar(
        select(Membership.role).where(
            Membership.user_id == user_id, Membership.project_id == project_id
        )
    )


def _info(db: Session, user: User) -> UserInfo:
    from neurodepot.catalog.models import Project

    roles = db.execute(
        select(Project.label, Membership.role)
        .join(Project, Project.id == Membership.project_id)
        .where(Membership.user_id == user.id)
        .order_by(Project.label)
    ).all()
    return UserInfo(
        user.username,
        user.email,
        user.display_name,
        user.kind,
        user.status,
        user.is_admin,
        user.is_steward,
        user.affiliation,
        user.created_at,
        tuple((label, role) for label, role in roles),
        user.email_verified_at is not None,
    )
