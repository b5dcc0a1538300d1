"""A project's sharing level over HTTP: owners change it, a data steward approves going public.

The same domain functions as `neurodepot share` (`consent.sharing`). The project's team reads
its level, pending request and history; its owners (ADMINISTER) set a level, which for public
only creates a pending request; only a data steward (STEWARD, not an admin as such) approves
or rejects it, with a reason.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from neurodepot.access.policy import Principal
from neurodepot.api.guard import CanAdminister, CanRead, CanSteward, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS
from neurodepot.consent import sharing
from neurodepot.consent.sharing import SharingRequestInfo, SharingStatus

router = APIRouter(tags=["sharing"], responses=GUARDED_ERRORS)
Reason = Annotated[str, Field(max_length=sharing.REASON_LIMIT)]


class LevelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["private", "internal", "public"]
    reason: Reason = ""


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[Reason, Field(min_length=1, description="Why: kept with the decision.")]


def _name(request: Request) -> str:
    principal: Principal = request.state.principal
    return principal.name


@router.get("/projects/{project}/sharing", dependencies=[CanRead])
def get_sharing(depot: DepotDep, project: str) -> SharingStatus:
    """The project's level, the request waiting for a steward (if any), and every request."""
    with depot.reading() as db:
        return sharing.sharing_status(db, project)


@router.put("/projects/{project}/sharing", dependencies=[CanAdminister])
def put_sharing(
    request: Request, depot: DepotDep, project: str, body: LevelIn
) -> SharingRequestInfo:
    """Set the level: private and internal at once; public waits (`status: pending`)."""
    with depot.transaction() as db:
        return sharing.request_level(db, _name(request), project, body.level, body.reason)


@router.post("/projects/{project}/sharing/approve", dependencies=[CanSteward])
def approve(
    request: Request, depot: DepotDep, project: str, body: DecisionIn
) -> SharingRequestInfo:
    """Approve the pending request: the project takes its level now (409 if none is pending)."""
    with depot.transaction() as db:
        return sharing.approve(db, _name(request), project, body.reason)


@router.post("/projects/{project}/sharing/reject", dependencies=[CanSteward])
def reject(request: Request, depot: DepotDep, project: str, body: DecisionIn) -> SharingRequestInfo:
    """Reject the pending request: the project keeps its level (409 if none is pending)."""
    with depot.transaction() as db:
        return sharing.reject(db, _name(request), project, body.reason)
