"""Passwords: argon2id hashes, and the minimum a password must be to be accepted.

The policy follows NIST SP 800-63B in spirit: length over composition rules, no password built
from the account's own name or email, none of the most common ones.
"""

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from neurodepot.errors import Invalid

MIN_LENGTH = 12
MAX_LENGTH = 1024
COMMON = frozenset(
    {
        "password1234", "123456789012", "qwertyuiop12", "letmein12345", "iloveyou1234",
        "administrator", "neurodepot123", "passwordpassword", "welcome12345", "changeme1234",
    }
)  # fmt: skip

_hasher = PasswordHasher()  # argon2id with the library's current recommended cost


def check_password(password: str, *personal: str) -> None:
    """Raise `Invalid` (saying what to change) unless `password` may be used.

    `personal` are the account's username, email and name: a password holding any of them
    (or the part of an email before `@`), ignoring case, is refused.
    """
    if len(password) < MIN_LENGTH:
        raise Invalid(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise Invalid(f"a password may have at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in COMMON or len(set(lowered)) < 4:
        raise Invalid("that password is too easy to guess: choose a longer, less common one")
    for value in personal:
        for part in {value, value.split("@")[0], *re.split(r"[\s._@-]+", value)}:
            if len(part) >= 4 and part.lower() in lowered:
                raise Invalid("a password may not contain the account's name or email")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored` (an argon2 hash); never raises for a mismatch."""
    if not stored:
        # Spend the same time as a real check, so that timing does not tell accounts apart.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
