"""Self-service accounts: registering, confirming the email address, resetting a password.

Each step is a function of the caller's transaction that changes the database, writes the
audit log and returns the mail to send (`AccountMail`), and `deliver` sends it once that
transaction has committed. So no link is mailed for a change that was rolled back, the
database (SQLite's write lock) is never held while the mail server is talked to, and a mail
that cannot be sent leaves the account stored: the link can be asked for again (`resend`).

None of these tells the caller whether an account exists: `register` with a taken username or
address, `resend` and `request_password_reset` with an address no suitable account has change
nothing, send nothing, and do about the same work (a signature, an audit row; `register` also
hashes the password). A self-registered account stays `pending` and unverified until its owner
follows the link, and then still needs an admin's approval (`neurodepot user approve`).
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from neurodepot.access import accounts, audit, sessions, tokens
from neurodepot.access.mail import Letter, check_recipient, send
from neurodepot.access.models import User
from neurodepot.access.passwords import hash_password
from neurodepot.access.signed import INVALID, claimed_subject, secret_key, sign, unsign
from neurodepot.config import Settings
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict, Invalid, InvalidToken, Unavailable

VERIFY_EMAIL = "verify-email"
VERIFY_EMAIL_S = 48 * 3600
RESET_PASSWORD = "reset-password"
RESET_PASSWORD_S = 3600
ANONYMOUS = "anonymous"  # the actor of acts by someone not (yet) known to be the account's owner
NOTHING_SENT = "nothing_sent"  # the audit outcome of a request for which no suitable account exists
NOT_SENT = {
    VERIFY_EMAIL: (
        "the account is registered, but the mail with the link to confirm the address could "
        "not be sent just now; ask for the link again in a while"
    ),
    "": "the mail could not be sent just now; try again in a while",
}


@dataclass(frozen=True)
class AccountMail:
    """A mail to send about an account; `purpose` names it in the audit log."""

    username: str
    purpose: str
    letter: Letter


def register(
    db: Session,
    settings: Settings,
    username: str,
    email: str,
    name: str,
    affiliation: str,
    purpose: str,
    kind: str,
    password: str,
) -> AccountMail | None:
    """A new `pending`, unverified account, and the mail with its verification link.

    Raises `Invalid` (storing nothing) for any field that is not acceptable, checked before
    anything else, so that the answer does not depend on what exists. Returns None, storing
    nothing but an audit row, when the username or the address already has an account.
    Raises `Unavailable` when the depot's secret key cannot be used (see `signed.secret_key`).
    """
    check_recipient(email)
    if not name.strip():
        raise Invalid("a name is needed, so that an admin knows whose account they approve")
    try:
        with db.begin_nested():
            accounts.add_user(
                db, ANONYMOUS, username, email, name, kind, password, affiliation, purpose,
                verified=False,
            )  # fmt: skip
    except (Conflict, IntegrityError):  # IntegrityError: a concurrent registration won
        hash_password(password)  # the work a new account costs, so that timing tells nothing
        sign(secret_key(settings.root), VERIFY_EMAIL, "0", VERIFY_EMAIL_S, email.lower())
        audit.record(
            db, ANONYMOUS, "registration_refused", f"user:{username}",
            {"reason": "the username or email already has an account"}, "refused",
        )  # fmt: skip
        return None
    return _verification_mail(settings, accounts.find_user(db, username))


def resend(db: Session, settings: Settings, email: str) -> AccountMail | None:
    """The verification mail again, if an unverified pending account has `email`; else None."""
    check_recipient(email)
    user = _by_email(db, email)
    if user is None or user.status != "pending" or user.email_verified_at is not None:
        sign(secret_key(settings.root), VERIFY_EMAIL, "0", VERIFY_EMAIL_S, email.lower())
        audit.record(
            db, ANONYMOUS, "verification_requested", _target(user, email), {}, NOTHING_SENT
        )
        return None
    audit.record(db, ANONYMOUS, "verification_requested", _target(user, email), {})
    return _verification_mail(settings, user)


def verify_email(db: Session, settings: Settings, token: str) -> list[AccountMail]:
    """Mark the address of the token's account verified; the notices to send to the admins.

    Raises `InvalidToken` (`ExpiredToken` when it is only too old). Verifying twice is not an
    error and notifies nobody again. The account still waits for an admin's approval.
    """
    user = _token_user(db, token)
    unsign(secret_key(settings.root), VERIFY_EMAIL, token, bind=user.email.lower())
    if user.email_verified_at is not None:
        return []
    user.email_verified_at = datetime.now(UTC)
    db.flush()
    audit.record(
        db, user.username, "account_changed", f"user:{user.username}", {"change": "email_verified"}
    )
    if user.status != "pending":
        return []
    admins = db.scalars(
        select(User).where(
            User.is_admin, User.status == "active", User.email_verified_at.is_not(None)
        )
    )
    return [_approval_notice(user, admin.email) for admin in admins]


def request_password_reset(db: Session, settings: Settings, email: str) -> AccountMail | None:
    """A one-time reset link (1 hour) if an active account has `email`; else None.

    The link is bound to the account's current password hash and address: once the password
    is changed (by this link or otherwise) or the address is, it no longer works.
    """
    check_recipient(email)
    user = _by_email(db, email)
    secret = secret_key(settings.root)
    if user is None or user.status != "active":
        sign(secret, RESET_PASSWORD, "0", RESET_PASSWORD_S, _reset_binding(None))
        audit.record(
            db, ANONYMOUS, "password_reset_requested", _target(user, email), {}, NOTHING_SENT
        )
        return None
    token = sign(secret, RESET_PASSWORD, str(user.id), RESET_PASSWORD_S, _reset_binding(user))
    audit.record(db, ANONYMOUS, "password_reset_requested", _target(user, email), {})
    link = f"{settings.public_url}/reset-password?token={token}"
    body = (
        f"Someone (hopefully you) asked to choose a new password for the account "
        f'"{user.username}" at {settings.public_url}.\n\n'
        f"To choose one, open this link within an hour; it works once:\n\n{link}\n\n"
        "If you did not ask for this, ignore this mail: your password stays as it is.\n"
    )
    return AccountMail(
        user.username, RESET_PASSWORD, Letter(user.email, "Choose a new neurodepot password", body)
    )


def reset_password(db: Session, settings: Settings, token: str, new_password: str) -> str:
    """Set the password of the token's account and end its sessions and API tokens.

    A reset means the old password may be known to someone else, and so may whatever was made
    with it: the account signs in again and makes new tokens. Returns the username.

    Raises `InvalidToken` for a forged, used or expired link (`ExpiredToken`) or an account
    that is no longer active, and `Invalid` when the password is refused by the policy (the
    link then still works).
    """
    user = _token_user(db, token)
    if user.status != "active":
        raise InvalidToken(INVALID)
    unsign(secret_key(settings.root), RESET_PASSWORD, token, bind=_reset_binding(user))
    accounts.set_password(db, user.username, user.username, new_password)
    signed_out = sessions.end_sessions(db, user.id)
    revoked = tokens.revoke_all_tokens(db, user.id)
    audit.record(
        db, user.username, "password_reset", f"user:{user.username}",
        {"sessions_revoked": signed_out, "tokens_revoked": revoked},
    )  # fmt: skip
    return user.username


def deliver(depot: Depot, mail: AccountMail) -> None:
    """Send `mail`; call it after the transaction that made it has committed.

    Raises `Unavailable` when the mail server does not take it, after recording the failure
    and the server's reason in the audit log (in a transaction of its own). Its message is for
    the person the mail is for, so it names neither the server nor the reason.
    """
    try:
        send(depot.settings, mail.letter)
    except Unavailable as exc:
        with depot.transaction() as db:
            audit.record(
                db, "neurodepot", "mail_failed", f"user:{mail.username}",
                {"purpose": mail.purpose, "reason": exc.message}, "failed",
            )  # fmt: skip
        raise Unavailable(NOT_SENT.get(mail.purpose, NOT_SENT[""])) from None


def _verification_mail(settings: Settings, user: User) -> AccountMail:
    # Only the depot's own words and the (restricted) username: the address is not verified
    # yet, so nothing else the registrant typed goes to it.
    token = sign(
        secret_key(settings.root), VERIFY_EMAIL, str(user.id), VERIFY_EMAIL_S, user.email.lower()
    )
    link = f"{settings.public_url}/verify?token={token}"
    body = (
        f'Someone (hopefully you) asked for the account "{user.username}" at '
        f"{settings.public_url} with this address.\n\n"
        f"To confirm the address, open this link within 48 hours:\n\n{link}\n\n"
        "An admin then approves the account, and you can sign in once that is done.\n"
        "If you did not ask for it, ignore this mail: without the confirmation the account "
        "is never used.\n"
    )
    return AccountMail(
        user.username, VERIFY_EMAIL, Letter(user.email, "Confirm your address for neurodepot", body)
    )


def _approval_notice(user: User, admin_email: str) -> AccountMail:
    body = (
        f'The account "{user.username}" ({user.kind}) has confirmed its address {user.email} '
        "and waits for approval:\n\n"
        f"    neurodepot user approve {user.username}\n\n"
        "What the person registering typed (unchecked):\n"
        f"  name: {user.display_name}\n  affiliation: {user.affiliation}\n"
        f"  purpose of use:\n{user.purpose}\n"
    )
    subject = f"neurodepot account {user.username} waits for approval"
    return AccountMail(user.username, "approval-notice", Letter(admin_email, subject, body))


def _by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def _token_user(db: Session, token: str) -> User:
    subject = claimed_subject(token)
    is_id = subject.isascii() and subject.isdigit() and len(subject) <= 18  # fits a BIGINT
    user = db.get(User, int(subject)) if is_id else None
    if user is None:
        raise InvalidToken(INVALID)
    return user


def _reset_binding(user: User | None) -> str:
    if user is None:
        return json.dumps(["", ""])
    return json.dumps([user.password_hash or "", user.email.lower()])


def _target(user: User | None, email: str) -> str:
    return f"user:{user.username}" if user is not None else f"email:{email}"
