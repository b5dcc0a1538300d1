"""A project's shared view: its de-identified subjects and dataset, for people beyond its team.

Who sees what is `consent.shared_view`'s rule, for the caller's kind of account; the named
team, admins and the operator see what a centre member would. Every response says
`Cache-Control: no-store`, so that no cache serves a subject again after a withdrawal.
"""

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from neurodepot.access.facts import project_facts
from neurodepot.access.policy import Principal, PrincipalKind
from neurodepot.api.guard import CanBrowse, CanDownload, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS
from neurodepot.consent.shared_view import (
    SharedSubject,
    SharedSummary,
    build_shared_dataset,
    refusal,
    release_check,
    shared_labels,
    shared_subjects_for,
    shared_summary,
    stream_and_remove,
)

router = APIRouter(tags=["shared"], responses=GUARDED_ERRORS)
NO_STORE = {"Cache-Control": "no-store"}
SHARED = "/shared/{project}"


def _account(db: Session, principal: Principal, project: str) -> str | None:
    """The caller's kind of account beyond the named team; None for the team, admins, operator."""
    if principal.kind is not PrincipalKind.USER or principal.is_admin:
        return None
    facts = project_facts(db, principal, project)
    if facts is not None and facts.role is not None:
        return None
    return principal.account


@router.get(SHARED, dependencies=[CanBrowse])
def summary(project: str, depot: DepotDep, request: Request, response: Response) -> SharedSummary:
    """The project as shared with the caller: how many subjects, which DUAs a download needs."""
    principal: Principal = request.state.principal
    response.headers.update(NO_STORE)
    with depot.reading() as db:
        account = _account(db, principal, project)
        return shared_summary(db, project, account, principal.user_id)


@router.get(SHARED + "/subjects", dependencies=[CanBrowse])
def subjects(
    project: str, depot: DepotDep, request: Request, response: Response
) -> list[SharedSubject]:
    """The subjects shared with the caller, by pseudonym, with their sessions and scan counts."""
    principal: Principal = request.state.principal
    response.headers.update(NO_STORE)
    with depot.transaction() as db:  # pseudonyms are drawn the first time they are shown
        return shared_subjects_for(db, _account(db, principal, project), project)


@router.get(
    SHARED + "/dataset.zip",
    dependencies=[CanDownload],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def dataset(project: str, depot: DepotDep, request: Request) -> StreamingResponse:
    """The de-identified dataset of the subjects shared with the caller, as a zip.

    Built in the depot's work folder, sent while it is read, and removed once sent. For an
    external researcher it must first pass the release check (409 with the failed criteria).
    """
    principal: Principal = request.state.principal
    root = depot.settings.work_root
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="shared-", dir=root))
    try:
        with depot.transaction() as db:
            account = _account(db, principal, project)
            labels = shared_labels(db, account, project)
            built = build_shared_dataset(db, depot.blobs, project, labels, work / "dataset")
        if account == "external":  # beyond the centre: checked as a release is
            with depot.transaction() as db:
                report = release_check(db, depot.blobs, project, built.path, principal.name)
            if not report.passed:
                raise refusal(project, report)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    name = f"{project}-shared"
    return StreamingResponse(
        stream_and_remove(built.path, name, work),
        media_type="application/zip",
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}.zip"'},
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )
