"""The one access dependency every route declares.

It names the caller (a `Principal`: the owner of an `Authorization: Bearer` token or of a
session cookie, else the local operator, else anonymous), reads the target from the path
parameters, looks up the facts the policy needs about its project, and asks the policy. A route
without it is caught by the access-matrix test.

The local operator is a client on loopback without credentials, as long as the depot's
`[server] loopback_operator` is on and the request carries no proxy header (`is_proxied`):
behind a reverse proxy every caller arrives from loopback, so a proxied request is never the
operator, whatever address it comes from.

Written to the audit log here, for signed-in users and the operator alike: every read of data in
a project (`data_read`, `download`; of its shared view too) and of what only admins see
(`admin_read`: accounts, the prearchive), when it is allowed; every refusal of a signed-in
user (`access_denied`); and every allowed request that may change something (any method but
GET, HEAD, OPTIONS) as `write`, with the route's outcome (`ok`, or `failed` with the error),
recorded once the route has run. The anonymous caller's refusals are not recorded, so that no
one can fill the log from outside.
"""

from collections.abc import Callable, Iterator
from ipaddress import ip_address
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import Headers

from neurodepot.access import audit, sessions
from neurodepot.access.facts import project_facts
from neurodepot.access.policy import Action, Principal, PrincipalKind, decide, ensure
from neurodepot.access.tokens import REFUSED as TOKEN_REFUSED
from neurodepot.access.tokens import authenticate
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.errors import Denied, Invalid, NeurodepotError

BEARER = "bearer "
SESSION_COOKIE = "neurodepot_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPERATOR = "operator@loopback"
# Headers a reverse proxy adds (RFC 7239 `Forwarded`, the de-facto `X-Forwarded-*`, nginx's
# `X-Real-IP`, `Via`); a request carrying any of them is never the local operator.
PROXY_HEADERS = frozenset({"forwarded", "via", "x-real-ip", "x-client-ip", "true-client-ip"})
# What a path parameter names, for the audit target of a write outside any project.
NAMED_BY = {
    "username": "user", "token_id": "token", "job_id": "job", "study_id": "prearchive",
    "dua_id": "dua",
}  # fmt: skip
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


def is_proxied(headers: Headers) -> bool:
    """Whether the request came through a proxy that said so (`PROXY_HEADERS`)."""
    return any(
        name.lower() in PROXY_HEADERS or name.lower().startswith("x-forwarded-") for name in headers
    )


def is_local_operator(request: Request) -> bool:
    """A client on loopback, not proxied, while the depot lets loopback be the operator."""
    depot: Depot = request.app.state.depot
    if not depot.settings.loopback_operator or is_proxied(request.headers):
        return False
    host = request.client.host if request.client else ""
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def current_principal(request: Request) -> Principal:
    """The token's or session's owner; without either, maybe the local operator (above).

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
    return Principal.operator(OPERATOR) if is_local_operator(request) else Principal.anonymous()


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


def authorize(action: Action) -> Callable[..., Iterator[Principal]]:
    """A dependency that allows the request or raises `Denied` (HTTP 403).

    Declare it with `scope="function"` (as `CanRead` and the others do), so that a write is
    recorded as soon as the route has returned or raised, before the response is sent.
    """

    def guard(
        request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Iterator[Principal]:
        try:
            target = _target(request)
        except Invalid:
            # A malformed label is reported (422) only to a caller who may act on the depot.
            ensure(principal, action, None)
            raise
        if principal.kind is PrincipalKind.USER and target is not None:
            _ensure_for_user(request, principal, action, target)
        else:
            _ensure_beyond_projects(request, principal, action, target)
        request.state.principal = principal
        if request.method in SAFE_METHODS:
            yield principal
            return
        try:
            yield principal
        except Exception as exc:
            _record_write(request, principal, action, target, exc)
            raise
        _record_write(request, principal, action, target, None)

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
        elif kind := _read_kind(request, action, target):
            audit.record(db, principal.name, kind, str(target), detail)
    # Raised after the commit, so that the refusal stays in the audit log.
    ensure(principal, action, target, facts)


def _ensure_beyond_projects(
    request: Request, principal: Principal, action: Action, target: Target | None
) -> None:
    """The decision for the operator and the anonymous caller, and for depot-wide routes.

    A signed-in user's refusal is recorded, and the operator's reads as a user's are.
    """
    decision = decide(principal, action, target)
    kind, outcome = "", "ok"
    if principal.kind is PrincipalKind.USER and not decision.allowed:
        kind, outcome = "access_denied", "denied"
    elif principal.kind is not PrincipalKind.ANONYMOUS:
        kind = _read_kind(request, action, target)
    if kind:
        depot: Depot = request.app.state.depot
        with depot.transaction() as db:
            audit.record(
                db, principal.name, kind, _audit_target(request, target),
                _request_detail(request, action), outcome,
            )  # fmt: skip
    ensure(principal, action, target)


def _record_write(
    request: Request,
    principal: Principal,
    action: Action,
    target: Target | None,
    error: Exception | None,
) -> None:
    detail = _request_detail(request, action)
    if error is not None:
        detail["error"] = type(error).__name__
        if isinstance(error, NeurodepotError):
            detail["message"] = error.message[:500]
    depot: Depot = request.app.state.depot
    with depot.transaction() as db:
        audit.record(
            db, principal.name, "write", _audit_target(request, target), detail,
            "ok" if error is None else "failed",
        )  # fmt: skip


def _read_kind(request: Request, action: Action, target: Target | None) -> str:
    """How an allowed read is recorded: data in a project, or what only admins see; else ""."""
    if request.method not in SAFE_METHODS:
        return ""
    if action is Action.READ and target is not None:
        return "download" if "/files/" in request.url.path else "data_read"
    if action is Action.DOWNLOAD:
        return "download"
    if action is Action.BROWSE:
        return "data_read"
    return "admin_read" if action is Action.ADMINISTER else ""


def _audit_target(request: Request, target: Target | None) -> str:
    if target is not None:
        return str(target)
    for param, kind in NAMED_BY.items():
        if param in request.path_params:
            return f"{kind}:{request.path_params[param]}"[:1024]
    return ""


def _request_detail(request: Request, action: Action) -> dict[str, object]:
    path = request.url.path
    return {"method": request.method, "path": path[:2048], "action": action.value}


DepotDep = Annotated[Depot, Depends(current_depot)]
CanRead = Depends(authorize(Action.READ), scope="function")
CanList = Depends(authorize(Action.LIST), scope="function")
CanCreate = Depends(authorize(Action.CREATE), scope="function")
CanUpdate = Depends(authorize(Action.UPDATE), scope="function")
CanDelete = Depends(authorize(Action.DELETE), scope="function")
CanAdminister = Depends(authorize(Action.ADMINISTER), scope="function")
CanManageOwn = Depends(authorize(Action.OWN_ACCOUNT), scope="function")
CanSteward = Depends(authorize(Action.STEWARD), scope="function")
CanBrowse = Depends(authorize(Action.BROWSE), scope="function")
CanDownload = Depends(authorize(Action.DOWNLOAD), scope="function")
