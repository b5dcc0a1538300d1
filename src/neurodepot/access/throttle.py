"""Rate limits of the public account routes: registering, the link sent again, password reset.

Each is limited per client address over an hour (`LIMITS`), whatever the account asked about,
so that no one can register accounts in bulk, or mail-bomb an address through the depot, from
one address. A request is counted before it is looked at (`count_request`, in a transaction of
its own that commits whatever happens next), and one over the limit is refused with the same
answer for every account; the refusal goes to the audit log.

Counted requests are rows of `login_failures` (which already rate-limits sign-ins by address)
under the route's name: `username` is `#register`, `#resend` or `#reset` (no account can be
called that) and `address` is `register:203.0.113.7`, so that they never count as failed
sign-ins of an address or an account. `sessions.forget_old_failures` drops them after
`sessions.KEPT`.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.access.models import LoginFailure
from neurodepot.access.sessions import KEPT, forget_old_failures

REGISTER = "register"
RESEND = "resend"
RESET = "reset"
WINDOW = timedelta(hours=1)
LIMITS = {REGISTER: 10, RESEND: 5, RESET: 5}  # requests per address per `WINDOW`
THROTTLED = "too many requests of this kind from this address: try again later"
assert WINDOW <= KEPT, "rows would be dropped while they still count"


@dataclass(frozen=True)
class Counted:
    """Whether the request may go on; else how many seconds until it may be made again."""

    allowed: bool
    retry_after_s: int = 0


def count_request(db: Session, route: str, address: str, now: datetime | None = None) -> Counted:
    """Count one request to `route` from `address`, or refuse it if the address is over the limit.

    A refused request is not counted (an address that keeps trying is refused until its oldest
    counted request leaves the window, not for ever) but is recorded in the audit log.
    """
    limit = LIMITS[route]
    now = now or datetime.now(UTC)
    key = f"{route}:{address}"[:64]
    since = now - WINDOW
    count, oldest = db.execute(
        select(func.count(), func.min(LoginFailure.at)).where(
            LoginFailure.address == key, LoginFailure.at >= since
        )
    ).one()
    if count >= limit:
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        wait = max(1, ceil((oldest + WINDOW - now).total_seconds()))
        audit.record(
            db, "anonymous", "rate_limited", f"route:{route}",
            {"address": address, "limit": limit, "window_s": int(WINDOW.total_seconds())},
            "denied",
        )  # fmt: skip
        return Counted(False, wait)
    forget_old_failures(db)
    db.add(LoginFailure(username=f"#{route}", address=key, at=now))
    return Counted(True)
