"""Consistent UID replacement: the same UID under one project's key maps to the same new UID.

So a study's series, instances and the references between them still line up after
de-identification, and a later release of the same project reuses the same UIDs.

The new UID is `<root>.<digits>`, where the digits are the decimal HMAC-SHA256 of the original
UID under the project's secret key, cut to fit 64 characters. Without the key nobody can map
an original UID to its replacement (nor test a guess), and the output never starts a component
with 0. The root must leave at least `MIN_DIGITS` digits (about 80 bits), so collisions stay
negligible however large the project.
"""

import hashlib
import hmac
import re

from neurodepot.errors import Invalid

MAX_UID_LENGTH = 64
MIN_DIGITS = 24
MIN_KEY_BYTES = 16
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def is_valid_uid(text: str) -> bool:
    """True for a UID of valid syntax: dot-separated numbers without leading zeros, ≤ 64."""
    return len(text) <= MAX_UID_LENGTH and _UID.fullmatch(text) is not None


def validate_uid_root(root: str) -> str:
    """`root` if new UIDs can be made under it, else `Invalid` saying why.

    A root is an OID the organisation owns (or "2.25", the UUID-derived arc that needs no
    registration); its first arc is 0, 1 or 2, and it leaves room for `MIN_DIGITS` digits.
    """
    longest = MAX_UID_LENGTH - 1 - MIN_DIGITS
    if not isinstance(root, str) or _UID.fullmatch(root) is None:
        raise Invalid(
            f"UID root {root!r} is not a valid UID: use numbers separated by dots, without "
            'leading zeros, e.g. "2.25" or your organisation\'s OID'
        )
    if root.split(".")[0] not in ("0", "1", "2"):
        raise Invalid(f"UID root {root!r} is not a valid UID: its first number must be 0, 1 or 2")
    if len(root) > longest:
        raise Invalid(
            f"UID root {root!r} is {len(root)} characters long: at most {longest} leave room "
            f"for the {MIN_DIGITS} digits that keep remapped UIDs unique"
        )
    return root


def remap_uid(uid: str, key: bytes, root: str) -> str:
    """The replacement for `uid` under `key` and `root` (validated by the caller).

    Surrounding spaces and the NUL padding some writers leave are not part of the UID.
    """
    original = uid.strip(" \x00")
    digest = hmac.new(key, original.encode("ascii", "surrogateescape"), hashlib.sha256).digest()
    digits = str(int.from_bytes(digest, "big") or 1)
    return f"{root}.{digits[: MAX_UID_LENGTH - 1 - len(root)]}"
