"""Data Usage Agreements over HTTP: read the current ones, accept them, publish new versions.

The same domain functions as `neurodepot dua` (`consent.dua`). Any signed-in account reads the
site's DUA and the DUA of a project it can see, each marked `accepted` for the caller, and
accepts them for itself (its own word, so the local operator, who has no account, cannot).
Site admins publish the site's DUA and see who accepted what; a project's owners publish its DUA.
A DUA of a project the caller cannot see is, to them, a DUA that does not exist (404).
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from neurodepot.access.accounts import USERNAME
from neurodepot.access.facts import visible_projects
from neurodepot.access.policy import Principal, PrincipalKind
from neurodepot.api.guard import CanAdminister, CanList, CanManageOwn, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS, RowId
from neurodepot.catalog.identifiers import LABEL_PATTERN
from neurodepot.catalog.models import Project
from neurodepot.consent import dua
from neurodepot.consent.dua import AcceptanceInfo, DuaInfo
from neurodepot.errors import Invalid, NotFound

router = APIRouter(tags=["duas"], responses=GUARDED_ERRORS)
NO_ACCOUNT = (
    "the local operator has no account of its own, so it cannot accept a DUA: each person "
    "accepts it signed in to their own account"
)
Label = Annotated[
    str | None, Query(pattern=f"^{LABEL_PATTERN.pattern}$", description="A project's label.")
]
Username = Annotated[
    str | None, Query(pattern=f"^{USERNAME.pattern}$", description="An account's username.")
]


class DuaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=dua.TITLE_LIMIT, description="One line.")
    body: str = Field(min_length=1, max_length=dua.BODY_LIMIT, description="The DUA's text.")


class DuaOut(BaseModel):
    id: int
    scope: str = Field(description="`site`, or the project's label.")
    version: int
    title: str
    body: str
    published_by: str
    published_at: datetime
    current: bool
    accepted: bool = Field(description="Whether the caller has accepted this version.")
    name: str = Field(description="How refusals name it.")


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _out(db: Session, principal: Principal, found: list[DuaInfo]) -> list[DuaOut]:
    accepted = dua.accepted_ids(db, principal.user_id, [d.id for d in found])
    return [DuaOut(**vars(d), accepted=d.id in accepted, name=d.name) for d in found]


def _visible_project(db: Session, principal: Principal, label: str) -> int:
    found = db.scalar(select(Project.id).where(Project.label == label, visible_projects(principal)))
    if found is None:
        raise NotFound(f"project {label!r} does not exist; `GET /api/v1/projects` lists them")
    return found


def _visible_dua(db: Session, principal: Principal, dua_id: int) -> None:
    project_id = dua.project_of(db, dua_id)
    if project_id is None:
        return
    seen = db.scalar(
        select(Project.id).where(Project.id == project_id, visible_projects(principal))
    )
    if seen is None:
        raise NotFound(f"there is no DUA with id {dua_id}; `GET /api/v1/duas` lists them")


@router.get("/duas", dependencies=[CanList])
def current(request: Request, depot: DepotDep, project: Label = None) -> list[DuaOut]:
    """The current site DUA and, with `?project=`, that project's current DUA (if it has one)."""
    principal = _principal(request)
    with depot.reading() as db:
        project_id = _visible_project(db, principal, project) if project is not None else None
        return _out(db, principal, dua.current_duas(db, project_id))


@router.post("/duas", dependencies=[CanAdminister], status_code=status.HTTP_201_CREATED)
def publish_site(request: Request, depot: DepotDep, body: DuaIn) -> DuaOut:
    """Publish the next version of the site's DUA: everyone accepts it again to download."""
    principal = _principal(request)
    with depot.transaction() as db:
        return _out(db, principal, [dua.publish(db, principal.name, body.title, body.body)])[0]


@router.get("/duas/acceptances", dependencies=[CanAdminister])
def acceptances(
    depot: DepotDep,
    project: Label = None,
    user: Username = None,
) -> list[AcceptanceInfo]:
    """Who accepted which version, and when (of every DUA, one project's, or one account's)."""
    with depot.reading() as db:
        return dua.acceptances(db, project, user)


@router.get("/duas/{dua_id}", dependencies=[CanList])
def get_one(request: Request, depot: DepotDep, dua_id: RowId) -> DuaOut:
    """One DUA version, current or superseded, with its text."""
    principal = _principal(request)
    with depot.reading() as db:
        _visible_dua(db, principal, dua_id)
        return _out(db, principal, [dua.get_dua(db, dua_id)])[0]


@router.post("/duas/{dua_id}/accept", dependencies=[CanManageOwn])
def accept(request: Request, depot: DepotDep, dua_id: RowId) -> AcceptanceInfo:
    """Accept a current DUA version for oneself (409 naming the current one if superseded)."""
    principal = _principal(request)
    if principal.kind is not PrincipalKind.USER:
        raise Invalid(NO_ACCOUNT)
    with depot.transaction() as db:
        _visible_dua(db, principal, dua_id)
        return dua.accept(db, principal.name, dua_id)


@router.post(
    "/projects/{project}/duas", dependencies=[CanAdminister], status_code=status.HTTP_201_CREATED
)
def publish_project(request: Request, depot: DepotDep, project: str, body: DuaIn) -> DuaOut:
    """Publish the next version of the project's DUA, on top of the site's."""
    principal = _principal(request)
    with depot.transaction() as db:
        info = dua.publish(db, principal.name, body.title, body.body, project)
        return _out(db, principal, [info])[0]
