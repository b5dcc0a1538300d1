"""Accounts, for admins: list, show, approve, disable, and set a site role.

The same domain functions as `neurodepot user …` (`access.accounts`), which write each change to
the audit log in the transaction that makes it, naming the admin (or the local operator) as the
actor; the guard adds the request and its outcome. Nobody but an admin sees or changes accounts;
an admin cannot disable their own account or drop their own admin role (409).
"""

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from neurodepot.access import accounts
from neurodepot.access.accounts import UserInfo
from neurodepot.api.guard import CanAdminister, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS

router = APIRouter(tags=["users"], responses=GUARDED_ERRORS)
USER = "/users/{username}"


class SiteRoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["admin", "steward", "none"]


class ProjectRoleOut(BaseModel):
    project: str
    role: str


class UserOut(BaseModel):
    """An account as admins see it (never its password hash or second-factor secret)."""

    username: str
    email: str
    display_name: str
    kind: str
    status: str
    is_admin: bool
    is_steward: bool
    affiliation: str
    created_at: datetime
    email_verified: bool
    roles: list[ProjectRoleOut]

    @classmethod
    def of(cls, info: UserInfo) -> "UserOut":
        fields = {k: v for k, v in info.__dict__.items() if k != "roles"}
        roles = [ProjectRoleOut(project=p, role=r) for p, r in info.roles]
        return cls(**fields, roles=roles)


@router.get("/users", dependencies=[CanAdminister])
def list_users(
    depot: DepotDep, status: Literal["pending", "active", "disabled"] | None = None
) -> list[UserOut]:
    """Every account (or those with `status`), with its site and project roles."""
    with depot.reading() as db:
        return [UserOut.of(info) for info in accounts.list_users(db, status)]


@router.get(USER, dependencies=[CanAdminister])
def get_user(username: str, depot: DepotDep) -> UserOut:
    with depot.reading() as db:
        return UserOut.of(accounts.get_user(db, username))


@router.post(USER + "/approve", dependencies=[CanAdminister])
def approve_user(username: str, depot: DepotDep, request: Request) -> UserOut:
    """Make a pending account active once its address is verified (else 422), or a disabled one."""
    with depot.transaction() as db:
        return UserOut.of(accounts.set_status(db, request.state.principal.name, username, "active"))


@router.post(USER + "/disable", dependencies=[CanAdminister])
def disable_user(username: str, depot: DepotDep, request: Request) -> UserOut:
    """Disable the account: its sessions and API tokens are refused from the next request on."""
    with depot.transaction() as db:
        return UserOut.of(
            accounts.set_status(db, request.state.principal.name, username, "disabled")
        )


@router.put(USER + "/role", dependencies=[CanAdminister])
def set_site_role(username: str, body: SiteRoleIn, depot: DepotDep, request: Request) -> UserOut:
    """Make the account a site `admin` or `steward`, or `none` of them."""
    with depot.transaction() as db:
        return UserOut.of(
            accounts.set_site_role(db, request.state.principal.name, username, body.role)
        )
