"""Subjects' consent over HTTP: read it, set it, withdraw it, import a centre's CSV.

The same domain functions as `neurodepot consent set|show|withdraw|import`. Consent is read by
the project's team (READ) and changed by those who may change its data (UPDATE); every change
adds a record, so the history stays. Dates are ISO days (YYYY-MM-DD), checked by the domain so
that every edge words a bad one the same way.
"""

import tempfile
from datetime import date

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from neurodepot.access.policy import Principal
from neurodepot.api.guard import CanRead, CanUpdate, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS
from neurodepot.consent import records
from neurodepot.consent.csv_import import MAX_BYTES, ImportSummary, import_consent_csv
from neurodepot.consent.records import ConsentInfo
from neurodepot.errors import Invalid

router = APIRouter(tags=["consent"], responses=GUARDED_ERRORS)

SUBJECT_CONSENT = "/projects/{project}/subjects/{subject}/consent"
CSV_TYPES = frozenset({"text/csv", "application/csv"})
# Held in memory up to this size while it arrives, then in a temporary file.
SPOOL_BYTES = 1 << 20
CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "The consent spreadsheet as CSV (UTF-8; `,` or `;`): a header naming "
        "`subject`, `level` and optionally `form`, `form_version`, `given_on`, `restrictions`, "
        "`withdrawn_on`, then one line per record.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


class ConsentIn(BaseModel):
    level: str = Field(max_length=16, description="none, internal or open.")
    form: str = Field("", max_length=records.TEXT_LIMITS["form"])
    form_version: str = Field("", max_length=records.TEXT_LIMITS["form_version"])
    given_on: str | None = Field(None, max_length=32, description="YYYY-MM-DD, not future.")
    restrictions: str = Field(
        "", max_length=records.TEXT_LIMITS["restrictions"], description="e.g. no commercial use"
    )


class WithdrawIn(BaseModel):
    on: str | None = Field(None, max_length=32, description="YYYY-MM-DD (default: today).")
    note: str = Field("", max_length=records.TEXT_LIMITS["restrictions"])


class SubjectConsentOut(BaseModel):
    current: ConsentInfo
    history: list[ConsentInfo] = Field(description="Every record, oldest first.")


class WithdrawalOut(BaseModel):
    withdrawal: ConsentInfo
    releases: list[str] = Field(
        description="Published releases that still contain the subject, for the owners to act on."
    )


def _actor(request: Request) -> str:
    principal: Principal = request.state.principal
    return principal.name


def _day(value: str | None, what: str) -> date | None:
    return None if value is None else records.parse_date(value, what)


@router.get("/projects/{project}/consent", dependencies=[CanRead])
def project_consent(depot: DepotDep, project: str) -> list[ConsentInfo]:
    """Every subject's current consent, by label (`none` for a subject without a record)."""
    with depot.reading() as db:
        return records.project_consents(db, project)


@router.post(
    "/projects/{project}/consent/import",
    dependencies=[CanUpdate],
    openapi_extra=CSV_BODY,
    response_model=ImportSummary,
)
async def import_consent(
    request: Request, depot: DepotDep, project: str, create_subjects: bool = False
) -> ImportSummary | JSONResponse:
    """Import a consent spreadsheet: every line is checked, then all of it or nothing (422)."""
    media, _, params = request.headers.get("content-type", "").partition(";")
    if media.strip().lower() not in CSV_TYPES:
        raise Invalid("send the consent spreadsheet as the body, with Content-Type: text/csv")
    charset = params.strip().lower().removeprefix("charset=").strip('"')
    if params.strip() and charset not in {"utf-8", "utf8"}:
        raise Invalid(f"the CSV must be UTF-8, not {charset[:20]!r}")
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BYTES:
                message = f"the CSV is over {MAX_BYTES // (1 << 20)} MB: split it"
                return JSONResponse(
                    {"error": "ContentTooLarge", "message": message}, status_code=413
                )
            await run_in_threadpool(body.write, chunk)
        body.seek(0)

        def work() -> ImportSummary:
            with depot.transaction() as db:
                return import_consent_csv(db, _actor(request), project, body, create_subjects)

        return await run_in_threadpool(work)


@router.get(SUBJECT_CONSENT, dependencies=[CanRead])
def subject_consent(depot: DepotDep, project: str, subject: str) -> SubjectConsentOut:
    """The subject's current consent and every record of it."""
    with depot.reading() as db:
        return SubjectConsentOut(
            current=records.current_consent(db, project, subject),
            history=records.consent_history(db, project, subject),
        )


@router.put(SUBJECT_CONSENT, dependencies=[CanUpdate])
def put_consent(
    request: Request, depot: DepotDep, project: str, subject: str, body: ConsentIn
) -> ConsentInfo:
    """Record the subject's consent (a new record; the earlier ones stay in its history)."""
    given_on = _day(body.given_on, "given_on")
    with depot.transaction() as db:
        return records.set_consent(
            db, _actor(request), project, subject, body.level, body.form, body.form_version,
            given_on, body.restrictions,
        )  # fmt: skip


@router.post(SUBJECT_CONSENT + "/withdraw", dependencies=[CanUpdate])
def withdraw_consent(
    request: Request, depot: DepotDep, project: str, subject: str, body: WithdrawIn | None = None
) -> WithdrawalOut:
    """Record that the subject withdrew consent; `releases` lists those that still hold it.

    From the next request on, the subject is shared with no one and left out of every later
    export and release.
    """
    given = body or WithdrawIn()
    on = _day(given.on, "on")
    with depot.transaction() as db:
        made = records.withdraw_consent(db, _actor(request), project, subject, on, given.note)
        releases = records.releases_containing(db, project, subject)
    return WithdrawalOut(withdrawal=made, releases=releases)
