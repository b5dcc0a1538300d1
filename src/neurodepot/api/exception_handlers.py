"""Errors become HTTP statuses with one JSON shape, `{"error", "message"}`, here and nowhere else.

Request validation runs before the access guard in FastAPI (a malformed body is rejected while
parsing), so its handler asks the policy first: a caller who may not act on the depot learns
nothing from a 422 and gets the 403 every other request of theirs gets.
"""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from neurodepot.access.policy import Action, ensure
from neurodepot.api.guard import ACCOUNT_PATHS, current_principal
from neurodepot.errors import (
    Conflict,
    Denied,
    Invalid,
    InvalidToken,
    NeurodepotError,
    NotFound,
    SignInFailed,
    Throttled,
    Unavailable,
)

# The first kind the error is an instance of gives the status, so subclasses come first. A
# signed link that does not check out is a 400: the request was well-formed, the link is not.
STATUS = {
    InvalidToken: 400,
    SignInFailed: 401,
    Throttled: 429,
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    Denied: 403,
    Unavailable: 503,
}


def status_for(error: NeurodepotError) -> int:
    for kind, status in STATUS.items():
        if isinstance(error, kind):
            return status
    return 400


def _body(error: str, message: str, status: int, **extra: object) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NeurodepotError)
    response = _body(type(exc).__name__, exc.message, status_for(exc))
    if isinstance(exc, Throttled):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if request.url.path not in ACCOUNT_PATHS:  # those are for people not signed in
        try:
            ensure(current_principal(request), Action.LIST, None)
        except Denied as denied:
            return await _domain_error(request, denied)
    problems = [
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
        for error in exc.errors()
    ]
    return _body(
        "Invalid",
        "the request is malformed: " + "; ".join(problems),
        422,
        detail=jsonable_errors(exc),
    )


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, object]]:
    """Pydantic's error list without the raw input (which may be large or sensitive)."""
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    names = {404: "NotFound", 405: "MethodNotAllowed"}
    response = _body(names.get(exc.status_code, "HTTPError"), str(exc.detail), exc.status_code)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(NeurodepotError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
