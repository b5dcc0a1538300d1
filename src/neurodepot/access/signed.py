"""The depot's secret key, and the signed, expiring tokens carried by links in mails.

The key is 32 random bytes in `secret.key` in the depot folder, made on first use and readable
by its owner alone: whoever reads it can forge a verification or password-reset link for any
account. Keep it out of backups that others can read; replacing it voids every link sent.

A token is `<subject>.<expiry>.<mac>`: the subject (URL-safe base64), the expiry (Unix seconds)
and an HMAC-SHA256 over the purpose, subject, expiry and `bind`, none of which is secret but
none of which can be changed without the key. The purpose is not in the token, so a token made
for one purpose never passes for another. `bind` ties a token to something that changes once
the token has done its job (a password reset is bound to the current password hash), which
makes it good for one use without storing anything.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
import time
from pathlib import Path

from neurodepot.errors import ExpiredToken, InvalidToken, Unavailable

SECRET_FILE = "secret.key"
SECRET_BYTES = 32
_FORMAT = "neurodepot-token-1"  # inside the MAC, so that a later format cannot be confused
_PART = re.compile(r"[A-Za-z0-9_-]*")
INVALID = (
    "this link is not valid: it is incomplete, was changed, or has already been used; "
    "ask for a new one"
)
EXPIRED = "this link has expired; ask for a new one"


def secret_key(root: Path) -> bytes:
    """The depot's key from `root / secret.key`, made (mode 0600) if it does not exist yet.

    Raises `Unavailable` when the file can be read or written by group or others (saying to
    `chmod 600` it), is not a regular file, or does not hold exactly 32 bytes.
    """
    path = root / SECRET_FILE
    if not os.path.lexists(path):
        try:
            _create_key(path)
        except OSError as exc:
            raise Unavailable(
                f"cannot create the depot's secret key {path}: {exc.strerror}"
            ) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise Unavailable(f"cannot read the depot's secret key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as opened:
        info = os.fstat(opened.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Unavailable(f"the depot's secret key {path} is not a regular file")
        if info.st_mode & 0o077:
            raise Unavailable(
                f"the depot's secret key {path} is open to other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}): run `chmod 600 {path}`, and replace "
                "the key (delete the file) if someone else may have read it"
            )
        key = opened.read(SECRET_BYTES + 1)
    if len(key) != SECRET_BYTES:
        raise Unavailable(
            f"the depot's secret key {path} is damaged (not {SECRET_BYTES} bytes); delete it "
            "to make a new one, which voids every link already sent"
        )
    return key


def _create_key(path: Path) -> None:
    """Write a new key under a temporary name and link it into place.

    Linking fails if another process made the key meanwhile; then theirs is kept, so that every
    process signs with the same key. Nobody ever sees a partly written file.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret.key.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(SECRET_BYTES))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return
    finally:
        os.unlink(temporary)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def sign(secret: bytes, purpose: str, subject: str, expires_in_s: float, bind: str = "") -> str:
    """A URL-safe token saying `subject` for `purpose`, valid for `expires_in_s` seconds."""
    expiry = int(time.time() + expires_in_s)
    mac = _mac(secret, purpose, subject, expiry, bind)
    return f"{_encode(subject.encode('utf-8'))}.{expiry}.{_encode(mac)}"


def claimed_subject(token: str) -> str:
    """The subject a token names, NOT checked: only to look up what to pass as `bind`.

    Raises `InvalidToken` when the token is malformed.
    """
    return _parse(token)[0]


def unsign(secret: bytes, purpose: str, token: str, bind: str = "") -> str:
    """The subject of a genuine, unexpired `token` made for `purpose` and `bind`.

    Raises `InvalidToken` when it is malformed, forged, made for another purpose or `bind`
    (a used reset link), and `ExpiredToken` (also an `InvalidToken`) when it is genuine but
    past its expiry. The MAC is compared in constant time and before the expiry, so an
    expired-token answer is given only for tokens the depot made.
    """
    subject, expiry, mac = _parse(token)
    if not hmac.compare_digest(mac, _mac(secret, purpose, subject, expiry, bind)):
        raise InvalidToken(INVALID)
    if expiry <= time.time():
        raise ExpiredToken(EXPIRED)
    return subject


def _mac(secret: bytes, purpose: str, subject: str, expiry: int, bind: str) -> bytes:
    # A JSON array, so that no choice of fields can be mistaken for another (no separators).
    message = json.dumps([_FORMAT, purpose, subject, expiry, bind], separators=(",", ":"))
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).digest()


def _parse(token: str) -> tuple[str, int, bytes]:
    parts = token.split(".")
    if len(parts) != 3 or not all(_PART.fullmatch(part) for part in parts[::2]):
        raise InvalidToken(INVALID)
    encoded_subject, expiry, encoded_mac = parts
    if not expiry.isascii() or not expiry.isdigit() or len(expiry) > 12:
        raise InvalidToken(INVALID)
    try:
        subject = _decode(encoded_subject).decode("utf-8")
        mac = _decode(encoded_mac)
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidToken(INVALID) from None
    return subject, int(expiry), mac


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
