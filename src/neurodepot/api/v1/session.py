"""Signing in and out with a password: the session cookie and its CSRF token.

The cookie is HttpOnly, SameSite=Lax, Secure when served over TLS, and names a server-side
session that sign-out (or disabling the account) ends. Writes made with the cookie must send
the session's CSRF token as `X-CSRF-Token`; scripts use API tokens instead.
"""

from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from neurodepot.access import sessions
from neurodepot.api.guard import SESSION_COOKIE, DepotDep
from neurodepot.api.schemas import error_responses
from neurodepot.errors import SignInFailed, Throttled

router = APIRouter(tags=["session"])


class SignInIn(BaseModel):
    username: str = Field(max_length=255)
    password: str = Field(max_length=1024)
    code: str = Field(default="", max_length=16, description="Second-factor code, if enabled.")


class SessionOut(BaseModel):
    signed_in: bool
    username: str = ""
    csrf_token: str = ""
    expires_at: datetime | None = None


@router.post("/session", responses=error_responses(400, 401, 413, 422, 429))
def sign_in(body: SignInIn, request: Request, response: Response, depot: DepotDep) -> SessionOut:
    """Sign in; the same 401 for every reason it fails, 429 after too many from one address."""
    address = request.client.host if request.client else ""
    with depot.transaction() as db:
        attempt = sessions.attempt_sign_in(db, body.username, body.password, address, body.code)
    # Raised after the commit, so that the failure counts and is in the audit log.
    if attempt.throttled_s:
        raise Throttled(
            "too many failed sign-ins from this address: try again later", attempt.throttled_s
        )
    if attempt.signed_in is None:
        raise SignInFailed(sessions.FAILED)
    made = attempt.signed_in
    response.set_cookie(
        SESSION_COOKIE,
        made.secret,
        max_age=sessions.SESSION_HOURS * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return SessionOut(
        signed_in=True,
        username=made.username,
        csrf_token=made.csrf_token,
        expires_at=made.expires_at,
    )


@router.get("/session")
def who_am_i(request: Request, depot: DepotDep) -> SessionOut:
    """Whether this browser is signed in, as whom, and its CSRF token."""
    secret = request.cookies.get(SESSION_COOKIE, "")
    with depot.reading() as db:
        owner = sessions.session_owner(db, secret) if secret else None
    if owner is None:
        return SessionOut(signed_in=False)
    return SessionOut(signed_in=True, username=owner.username, csrf_token=owner.csrf_token)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(request: Request, depot: DepotDep) -> Response:
    """End this browser's session (nothing to do if there is none)."""
    secret = request.cookies.get(SESSION_COOKIE, "")
    if secret:
        with depot.transaction() as db:
            sessions.sign_out(db, secret)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
