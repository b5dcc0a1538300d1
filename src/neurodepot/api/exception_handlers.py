"""Domain errors become HTTP statuses with a JSON body, here and nowhere else."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from neurodepot.errors import Conflict, Denied, Invalid, NeurodepotError, NotFound, Unavailable

STATUS = {
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


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NeurodepotError)
    return JSONResponse(
        {"error": type(exc).__name__, "message": exc.message}, status_code=status_for(exc)
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(NeurodepotError, _domain_error)
