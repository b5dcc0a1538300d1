"""The one access dependency every route declares.

It names the caller (a `Principal`), reads the target from the path parameters, and asks the
policy. A route without it is caught by the access-matrix test.
"""

from collections.abc import Callable
from ipaddress import ip_address
from typing import Annotated

from fastapi import Depends, Request

from neurodepot.access.policy import Action, Principal, ensure
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid


def current_depot(request: Request) -> Depot:
    depot: Depot = request.app.state.depot
    return depot


def current_principal(request: Request) -> Principal:
    """Before accounts exist, only a client on this machine (loopback) acts as the operator."""
    host = request.client.host if request.client else ""
    try:
        local = ip_address(host).is_loopback
    except ValueError:
        local = False
    return Principal.operator("operator@loopback") if local else Principal.anonymous()


def _target(request: Request) -> Target | None:
    params = request.path_params
    if "project" not in params:
        return None
    return Target(
        params["project"], params.get("subject"), params.get("session"), params.get("scan")
    )


def authorize(action: Action) -> Callable[..., Principal]:
    """A dependency that allows the request or raises `Denied` (HTTP 403)."""

    def guard(
        request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        try:
            target = _target(request)
        except Invalid:
            # A malformed label is reported (422) only to a caller who may act on the depot.
            ensure(principal, action, None)
            raise
        ensure(principal, action, target)
        request.state.principal = principal
        return principal

    guard.__name__ = f"authorize_{action.value}"
    return guard


DepotDep = Annotated[Depot, Depends(current_depot)]
CanRead = Depends(authorize(Action.READ))
CanCreate = Depends(authorize(Action.CREATE))
CanUpdate = Depends(authorize(Action.UPDATE))
CanDelete = Depends(authorize(Action.DELETE))
CanAdminister = Depends(authorize(Action.ADMINISTER))
