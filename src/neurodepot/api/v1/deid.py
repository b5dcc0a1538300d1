"""De-identification over HTTP: a project's settings, its linkage, the release check, overrides.

The same domain functions as `neurodepot deid|check|linkage|override`. The linkage re-identifies
shared data, so only those who administer the project (its owners, site admins) may read or
destroy it; only a data steward may override a failed criterion.
"""

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from neurodepot.access.policy import Principal
from neurodepot.api.guard import CanAdminister, CanRead, CanSteward, CanUpdate, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS, RowId
from neurodepot.deid import linkage
from neurodepot.deid.check_report import report_json
from neurodepot.deid.overrides import CANDIDATE, Override, add_override, list_overrides
from neurodepot.deid.overrides import revoke_override as revoke
from neurodepot.deid.release_check import check_project
from neurodepot.errors import Invalid

router = APIRouter(tags=["de-identification"], responses=GUARDED_ERRORS)


class DeidSettingsOut(BaseModel):
    project: str
    options: list[str]
    uid_root: str
    private_allow: list[str]
    linkage_destroyed: bool


class DeidSettingsIn(BaseModel):
    options: list[str] | None = Field(None, max_length=20)
    uid_root: str | None = Field(None, max_length=64)
    private_allow: list[str] | None = Field(None, max_length=100)


class LinkageEntry(BaseModel):
    subject: str
    session: str | None
    pseudonym: str
    date_offset_days: int | None


class DestroyLinkage(BaseModel):
    confirm: str = Field(max_length=64, description="The project's label, to confirm.")


class OverrideIn(BaseModel):
    criterion: str = Field(max_length=32)
    reason: str = Field(max_length=4000)
    release: str = Field(CANDIDATE, max_length=64)


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _settings_out(config: linkage.DeidConfig) -> DeidSettingsOut:
    return DeidSettingsOut(
        project=config.project,
        options=sorted(config.options),
        uid_root=config.uid_root,
        private_allow=sorted(f"{c}:{e:#04x}" for c, e in config.private_allow),
        linkage_destroyed=config.linkage_destroyed_at is not None,
    )


@router.get("/projects/{project}/deid/settings", dependencies=[CanRead])
def get_settings(depot: DepotDep, project: str) -> DeidSettingsOut:
    """The project's profile options, UID root and private allow-list."""
    with depot.reading() as db:
        return _settings_out(linkage.project_config(db, project))


@router.put("/projects/{project}/deid/settings", dependencies=[CanAdminister])
def put_settings(
    request: Request, depot: DepotDep, project: str, body: DeidSettingsIn
) -> DeidSettingsOut:
    """Change what is given (each list replaces the stored one)."""
    with depot.transaction() as db:
        config = linkage.configure(
            db,
            project,
            _principal(request).name,
            body.options,
            body.uid_root,
            body.private_allow,
        )
    return _settings_out(config)


@router.get("/projects/{project}/linkage", dependencies=[CanAdminister])
def get_linkage(request: Request, depot: DepotDep, project: str) -> list[LinkageEntry]:
    """Internal labels with their pseudonyms; every read is audited."""
    with depot.transaction() as db:
        rows = linkage.read_linkage(db, project, _principal(request).name)
    return [LinkageEntry(**vars(row)) for row in rows]


@router.delete("/projects/{project}/linkage", dependencies=[CanAdminister])
def destroy_linkage(
    request: Request, depot: DepotDep, project: str, body: DestroyLinkage
) -> dict[str, int]:
    """Delete the linkage for good: the shared data becomes irreversibly anonymous."""
    if body.confirm != project:
        raise Invalid("confirm with the project's label: nothing destroyed")
    with depot.transaction() as db:
        removed = linkage.destroy_linkage(db, project, _principal(request).name)
    return {"removed": removed}


@router.post("/projects/{project}/check", dependencies=[CanUpdate])
def run_check(
    request: Request, depot: DepotDep, project: str, release: str = CANDIDATE
) -> dict[str, Any]:
    """Build the shareable dataset and run the de-identification criteria on it."""
    with depot.transaction() as db:
        report = check_project(
            db, depot.blobs, project, depot.settings.work_root, _principal(request).name, release
        )
    return report_json(report)


@router.get("/projects/{project}/check/overrides", dependencies=[CanRead])
def get_overrides(depot: DepotDep, project: str) -> list[Override]:
    """Stewards' overrides of the project, revoked ones included."""
    with depot.reading() as db:
        return list_overrides(db, project)


@router.post("/projects/{project}/check/overrides", dependencies=[CanSteward], status_code=201)
def post_override(request: Request, depot: DepotDep, project: str, body: OverrideIn) -> Override:
    """Let a failed criterion pass for one release, with the steward's written reason."""
    principal = _principal(request)
    with depot.transaction() as db:
        return add_override(
            db, project, body.criterion, body.reason, principal.name, principal.name, body.release
        )


@router.delete("/projects/{project}/check/overrides/{override_id}", dependencies=[CanSteward])
def delete_override(
    request: Request, depot: DepotDep, project: str, override_id: RowId
) -> Override:
    """Withdraw an override."""
    with depot.transaction() as db:
        return revoke(db, project, override_id, _principal(request).name)
