"""Self-service accounts: registration, email verification, password reset.

These routes are for people who are not signed in (`ACCOUNT_PATHS`): they take no guard, and
none of their answers tells whether an account exists. Their bodies are small JSON documents,
capped at `BODY_LIMIT` bytes (413 beyond). Registering, asking for the link again and asking for
a password reset are limited per client address (`access.throttle`, 429 with `Retry-After`);
a request too malformed to be read (422) is not counted, as it does nothing. Mails whose failure
must not change the answer (password reset, the link sent again, notices to admins) are sent
after the response; a failure is in the audit log and the server log. Only registration waits
for its mail, so that the registrant hears at once (503) when it could not be sent.
"""

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from fastapi import APIRouter, BackgroundTasks, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from neurodepot.access import registration, throttle
from neurodepot.access.registration import AccountMail
from neurodepot.api.guard import DepotDep
from neurodepot.api.schemas import error_responses
from neurodepot.depot.folder import Depot
from neurodepot.errors import Throttled, Unavailable

BODY_LIMIT = 64 * 1024
logger = logging.getLogger("neurodepot.accounts")

REGISTERED = (
    "check your mail: if this username and address can be registered, a link to confirm the "
    "address is on its way (valid for 48 hours); an admin approves the account after that. "
    "Nothing arrived? Ask for the link again, or register with another username."
)
VERIFIED = (
    "your address is confirmed; an admin will now approve the account, and you can sign in "
    "once that is done"
)
RESENT = (
    "if an account waiting for its address to be confirmed has this address, the link is on "
    "its way again (valid for 48 hours)"
)
RESET_REQUESTED = (
    "if an active account has this address, a link to choose a new password is on its way "
    "(valid for one hour, and only once)"
)
RESET_DONE = (
    "your password is changed, you are signed out everywhere and your API tokens are revoked: "
    "sign in with the new password"
)


class _TooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413)


class _CappedRequest(Request):
    """A request whose body is refused once it grows past `BODY_LIMIT` while being read."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > BODY_LIMIT:
                    raise _TooLarge()
                chunks.append(chunk)
            self._body = b"".join(chunks)  # where Starlette keeps a body it has read
        return self._body


class SmallBodyRoute(APIRoute):
    """A route refusing a body over `BODY_LIMIT` with 413: declared, before it is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def capped(request: Request) -> Response:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > BODY_LIMIT:
                return _too_large()
            try:
                return await handler(_CappedRequest(request.scope, request.receive))
            except _TooLarge:
                return _too_large()

        return capped


def _too_large() -> JSONResponse:
    # Answered here rather than raised: the app's own 413 handler speaks of its larger limit.
    message = f"the request body is over {BODY_LIMIT // 1024} KiB, the most this route takes"
    return JSONResponse({"error": "ContentTooLarge", "message": message}, status_code=413)


router = APIRouter(
    tags=["accounts"], route_class=SmallBodyRoute, responses=error_responses(400, 413, 422)
)


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=64, description="2-64 of a-z 0-9 . _ -, from a letter.")
    email: str = Field(max_length=254)
    name: str = Field(max_length=255)
    affiliation: str = Field(max_length=255)
    purpose: str = Field(max_length=4000, description="What the data will be used for.")
    kind: Literal["member", "external"] = Field(
        description="`member` of the centre, or `external` researcher."
    )
    password: str = Field(max_length=1024, description="At least 12 characters.")


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(max_length=1024, description="The token from the link in the mail.")


class EmailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254)


class NewPasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(max_length=1024, description="The token from the link in the mail.")
    password: str = Field(max_length=1024, description="At least 12 characters.")


class Message(BaseModel):
    message: str


ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"model": Message}}
THROTTLED = error_responses(429)


def _count(depot: Depot, request: Request, route: str) -> None:
    """Count the request against its address's limit, or refuse it (429) once over."""
    address = request.client.host if request.client else ""
    with depot.transaction() as db:
        counted = throttle.count_request(db, route, address)
    if not counted.allowed:  # raised after the commit, so that the refusal stays in the log
        raise Throttled(throttle.THROTTLED, counted.retry_after_s)


@router.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**THROTTLED, **error_responses(503)},
)
def register(body: RegistrationIn, depot: DepotDep, request: Request) -> Message:
    """Ask for an account; the same answer whether or not the username or address is taken.

    A new account is `pending` until its owner confirms the address with the mailed link and
    an admin approves it. Invalid input is 422 and stores nothing; 503 when the account is
    registered but its mail could not be sent.
    """
    _count(depot, request, throttle.REGISTER)
    with depot.transaction() as db:
        mail = registration.register(
            db, depot.settings, body.username, body.email, body.name, body.affiliation,
            body.purpose, body.kind, body.password,
        )  # fmt: skip
    if mail is not None:
        registration.deliver(depot, mail)  # Unavailable (503): the account stays registered
    return Message(message=REGISTERED)


@router.post("/register/verify", responses={**ACCEPTED, **THROTTLED})
def verify(
    body: TokenIn | EmailIn,
    depot: DepotDep,
    request: Request,
    response: Response,
    background: BackgroundTasks,
) -> Message:
    """Confirm the address with `{"token"}` from the mailed link (200, or 400 for a bad link).

    With `{"email"}` instead, the link is sent again (202, whether or not there is such an
    account waiting; 429 after too many such requests from one address).
    """
    if isinstance(body, EmailIn):
        _count(depot, request, throttle.RESEND)
        with depot.transaction() as db:
            mail = registration.resend(db, depot.settings, body.email)
        if mail is not None:
            background.add_task(_deliver_later, depot, mail)
        response.status_code = status.HTTP_202_ACCEPTED
        return Message(message=RESENT)
    with depot.transaction() as db:
        notices = registration.verify_email(db, depot.settings, body.token)
    for notice in notices:
        background.add_task(_deliver_later, depot, notice)
    return Message(message=VERIFIED)


@router.post("/password-reset", status_code=status.HTTP_202_ACCEPTED, responses=THROTTLED)
def request_password_reset(
    body: EmailIn, depot: DepotDep, request: Request, background: BackgroundTasks
) -> Message:
    """Mail a link to choose a new password; the same answer whether or not the address is known."""
    _count(depot, request, throttle.RESET)
    with depot.transaction() as db:
        mail = registration.request_password_reset(db, depot.settings, body.email)
    if mail is not None:
        background.add_task(_deliver_later, depot, mail)
    return Message(message=RESET_REQUESTED)


@router.post("/password-reset/confirm")
def confirm_password_reset(body: NewPasswordIn, depot: DepotDep) -> Message:
    """Set the new password with the token from the mailed link; it works once.

    400 for a link that is not valid, used or expired; 422 for a password the policy refuses
    (the link then still works). The account's sessions and API tokens end with the old
    password.
    """
    with depot.transaction() as db:
        registration.reset_password(db, depot.settings, body.token, body.password)
    return Message(message=RESET_DONE)


def _deliver_later(depot: Depot, mail: AccountMail) -> None:
    """Send a mail after the response; a failure is already in the audit log, and logged."""
    try:
        registration.deliver(depot, mail)
    except Unavailable as exc:
        logger.warning(
            "mail not sent",
            extra={"fields": {"user": mail.username, "purpose": mail.purpose, "reason": str(exc)}},
        )
