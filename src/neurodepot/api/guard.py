"""The one access dependency every route declares.

It names the caller (a `Principal`: the owner of an `Authorization: Bearer` token, else the
local operator on loopback, else anonymous), reads the target from the path parameters, looks
up the facts the policy needs about its project, and asks the policy. A route without it is
caught by the access-matrix test. Reads of data by signed-in users are written to the audit log.
"""

from collections.abc import Callable
from ipaddress import ip_address
from typing import Annotated

from fastapi import Depends, Request

from neurodepot.access import audit, sessions
from neurodepot.access.facts import project_facts
from neurodepot.access.policy import Action, Principal, PrincipalKind, decide, ensure
from neurodepot.access.tokens import REFUSED as TOKEN_REFUSED
from neurodepot.access.tokens import authenticate
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.errors import Denied, Invalid

BEARER = "bearer "
SESSION_COOKIE = "neurodepot_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Routes for people who are not signed in (yet): they take no guard and decide for themselves
# what to reveal, which is nothing about whether an account exists.
ACCOUNT_PATHS = frozenset(
    {
        "/api/v1/session",
        "/api/v1/register",
        "/api/v1/register/verify",
        "/api/v1/password-reset",
        "/api/v1/password-reset/confirm",
    }
)


def current_depot(request: Request) -> Depot:
    depot: Depot = request.app.state.depot
    return depot


def current_principal(request: Request) -> Principal:
    """The token's or session's owner; without either, a client on loopback is the operator.

    A cookie that names no valid session is refused rather than ignored, so that it never
    falls back to another identity; so is a cookie write without the session's CSRF token.
    """
    host = request.client.host if request.client else ""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header is None and cookie is not None:
        return _session_principal(request, cookie)
    if header is not None:
        if not header.lower().startswith(BEARER):
            raise Denied("send an API token as `Authorization: Bearer <token>`")
        depot: Depot = request.app.state.depot
        with depot.transaction() as db:
            owner = authenticate(db, header[len(BEARER) :].strip(), host)
        if owner is None:  # raised after the commit, so that the refusal stays in the log
            raise Denied(TOKEN_REFUSED)
        return Principal.user(
            owner.user_id, owner.username, owner.kind, owner.is_admin, owner.is_steward, owner.scope
        )
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


def _session_principal(request: Request, secret: str) -> Principal:
    depot: Depot = request.app.state.depot
    with depot.reading() as db:
        owner = sessions.session_owner(db, secret)
    if owner is None:
        raise Denied("the session has ended: sign in again")
    if request.method not in SAFE_METHODS and not sessions.csrf_matches(
        owner, request.headers.get(CSRF_HEADER)
    ):
        raise Denied("a write with the session cookie needs the X-CSRF-Token of the session")
    return Principal.user(
        owner.user_id, owner.username, owner.kind, owner.is_admin, owner.is_steward
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
        if principal.kind is not PrincipalKind.USER or target is None:
            ensure(principal, action, target)
        else:
            _ensure_for_user(request, principal, action, target)
        request.state.principal = principal
        return principal

    guard.__name__ = f"authorize_{action.value}"
    return guard


def ensure_on_target(request: Request, action: Action, target: Target) -> None:
    """The guard's decision for a target named in the body rather than the path (jobs)."""
    principal: Principal = request.state.principal
    if principal.kind is PrincipalKind.USER:
        _ensure_for_user(request, principal, action, target)
    else:
        ensure(principal, action, target)


def _ensure_for_user(
    request: Request, principal: Principal, action: Action, target: Target
) -> None:
    """Decide with the project's facts; record the decision on data in the audit log."""
    depot: Depot = request.app.state.depot
    with depot.transaction() as db:
        facts = project_facts(db, principal, target.project)
        decision = decide(principal, action, target, facts)
        detail = _request_detail(request, action)
        if not decision.allowed:
            audit.record(db, principal.name, "access_denied", str(target), detail, "denied")
        elif action is Action.READ:
            kind = "download" if "/files/" in request.url.path else "data_read"
            audit.record(db, principal.name, kind, str(target), detail)
    # Raised after the commit, so that the refusal stays in the audit log.
    ensure(principal, action, target, facts)


def _request_detail(request: Request, action: Action) -> dict[str, object]:
    return {"method": request.method, "path": request.url.path, "action": action.value}


DepotDep = Annotated[Depot, Depends(current_depot)]
CanRead = Depends(authorize(Action.READ))
CanList = Depends(authorize(Action.LIST))
CanCreate = Depends(authorize(Action.CREATE))
CanUpdate = Depends(authorize(Action.UPDATE))
CanDelete = Depends(authorize(Action.DELETE))
CanAdminister = Depends(authorize(Action.ADMINISTER))
