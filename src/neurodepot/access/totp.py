"""Time-based one-time passwords as a second factor (RFC 6238: HMAC-SHA1, 30 s, 6 digits).

A code one step early or late is accepted, for clocks that drift.
"""

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote

STEP_S = 30
DIGITS = 6
DRIFT_STEPS = 1


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def code_at(secret: str, at: float) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    counter = struct.pack(">Q", int(at // STEP_S))
    digest = hmac.new(key, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def check_code(secret: str, code: str, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    given = code.strip().replace(" ", "")
    if not (given.isdigit() and len(given) == DIGITS):
        return False
    matches = [
        hmac.compare_digest(code_at(secret, now + step * STEP_S), given)
        for step in range(-DRIFT_STEPS, DRIFT_STEPS + 1)
    ]
    return any(matches)


def provisioning_uri(secret: str, username: str, issuer: str = "neurodepot") -> str:
    """The `otpauth://` address an authenticator app reads (usually from a QR code)."""
    return (
        f"otpauth://totp/{quote(issuer)}:{quote(username)}"
        f"?secret={secret}&issuer={quote(issuer)}&digits={DIGITS}&period={STEP_S}"
    )
