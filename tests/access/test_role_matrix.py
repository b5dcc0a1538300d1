"""Every route, for every kind of signed-in caller, at every project access level.

The expectations are written here from `../shared/DESIGN.md`'s sharing rules, not computed by
the policy: a route whose guard decides otherwise, or a new route without a decision, fails.
Beyond a project's named people nobody reads its data as it is stored (the identifiable
originals never leave the team), whatever its access level: they browse and download its
shared, de-identified view only, where the project's access level allows their kind of
account, and download only with every current Data Usage Agreement accepted (the named team
needs none). Which subjects that view shows, by consent, is `tests/consent/`'s matrix; listings
show only what the caller may see.
"""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from neurodepot.access import accounts, tokens
from neurodepot.api.app import ACCOUNT_PATHS, PUBLIC_PATHS
from neurodepot.consent import dua
from neurodepot.depot.folder import Depot
from tests.test_access_matrix import EXISTING, calls, dependency_calls, every_route

pytestmark = pytest.mark.anyio

ACCESS_LEVELS = ("private", "internal", "public")
# Who, and how the account is set up: (kind, status, site role, role in P).
CALLERS = {
    "pending": ("member", "pending", "none", None),
    "external": ("external", "active", "none", None),
    "centre-member": ("member", "active", "none", None),
    "member-without-dua": ("member", "active", "none", None),
    "steward": ("member", "active", "steward", None),
    "collaborator": ("external", "active", "none", "collaborator"),
    "project-member": ("member", "active", "none", "member"),
    "owner": ("member", "active", "none", "owner"),
    "admin": ("member", "active", "admin", None),
}
# Who accepted the current site DUA: every signed-in caller but these (the team needs none).
WITHOUT_DUA = frozenset({"member-without-dua", "owner"})
# The order callers are run in: the owner's project delete comes late, the admin's last.
ORDER = list(CALLERS)
PROJECT_ROUTE = "/api/v1/projects/{project}"
ROLE_ACTIONS = {
    "owner": {"read", "list", "browse", "download", "create", "update", "delete", "administer"},
    "member": {"read", "list", "browse", "download", "create", "update", "delete"},
    "collaborator": {"read", "list", "browse", "download"},
}


def shared_with(kind: str, access: str) -> bool:
    """Internal: also every centre member; public: also external researchers."""
    return access in ("internal", "public") if kind == "member" else access == "public"


def expected(caller: str, action: str, template: str, method: str, access: str) -> bool:
    kind, status, site_role, role = CALLERS[caller]
    if action == "public":
        return True
    if status != "active":
        return False
    if action == "steward":  # overriding a failed check: a steward's decision, not an admin's
        return site_role == "steward"
    if site_role == "admin":
        return True
    if template == "/api/v1/jobs" and method == "POST":
        # Depot-wide, then decided again on the job's target (project P) named in the body.
        return kind == "member" and role in ("owner", "member")
    if "{project}" not in template:
        # Listings; projects made by centre members; each account's own tokens. Accounts and the
        # prearchive (administer) are the admins'.
        return action in ("list", "own_account") or (action == "create" and kind == "member")
    if role is None:
        # Beyond the named people: the shared, de-identified view only; never the originals.
        if action == "browse":
            return shared_with(kind, access)
        if action == "download":
            return shared_with(kind, access) and caller not in WITHOUT_DUA
        return False
    if method == "DELETE" and template == PROJECT_ROUTE:
        return role == "owner"
    return action in ROLE_ACTIONS[role]


def action_of(app: FastAPI, template: str, method: str) -> str:
    if template in PUBLIC_PATHS | ACCOUNT_PATHS:  # for everyone, signed in or not
        return "public"
    for route in every_route(app):
        if route.path == template and method in (route.methods or ()):
            names = [n for n in dependency_calls(route.dependant) if n.startswith("authorize_")]
            assert len(names) == 1, (template, names)
            return names[0].removeprefix("authorize_")
    raise AssertionError(f"no route {template}")


@pytest.fixture
def secrets(app: FastAPI, depot: Depot) -> dict[str, str]:
    """A write token for every caller, set up as CALLERS says."""
    made = {}
    with depot.transaction() as db:
        for name, (kind, status, site_role, role) in CALLERS.items():
            accounts.add_user(db, "test", name, f"{name}@example.org", kind=kind)
            if status == "active":
                accounts.set_status(db, "test", name, "active")
            accounts.set_site_role(db, "test", name, site_role)
            if role is not None:
                accounts.set_project_role(db, "test", name, "P", role)
            made[name] = tokens.create_token(db, "test", name, "matrix", "write")[1]
        site_dua = dua.publish(db, "test", "Site DUA", "Use the shared data for research only.")
        for name, (_, status, _, _) in CALLERS.items():
            if status == "active" and name not in WITHOUT_DUA:
                dua.accept(db, name, site_dua.id)
    return made


def set_access(depot: Depot, access: str) -> None:
    """P's access level (a steward approves going public: this is the test's setup)."""
    with depot.transaction() as db:
        accounts.set_project_access(db, "test", "P", access, approved_by="test")


async def signed_in(app: FastAPI, secret: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        yield client


@pytest.mark.parametrize("access", ACCESS_LEVELS)
async def test_every_route_allows_exactly_what_each_callers_role_allows(
    app: FastAPI, depot: Depot, secrets: dict[str, str], access: str
) -> None:
    set_access(depot, access)
    wrong = []
    for caller in ORDER:
        async for client in signed_in(app, secrets[caller]):
            for call in calls(app, EXISTING):
                action = action_of(app, call.template, call.method)
                response = await call.send(client)
                if response.status_code >= 500:
                    wrong.append(f"{caller} {call.method} {call.url}: {response.status_code}")
                allowed = response.status_code != 403
                if allowed != expected(caller, action, call.template, call.method, access):
                    wrong.append(
                        f"{caller} {call.method} {call.url} ({action}): {response.status_code}"
                    )
    assert wrong == [], "\n".join(wrong)


async def test_listings_and_counts_show_only_what_the_caller_may_see(
    app: FastAPI, depot: Depot, secrets: dict[str, str]
) -> None:
    set_access(depot, "public")
    seen = {}
    for caller in ORDER:
        async for client in signed_in(app, secrets[caller]):
            response = await client.get("/api/v1/projects")
            seen[caller] = (
                response.status_code,
                [(p["label"], p["subject_count"]) for p in response.json()]
                if response.status_code == 200
                else None,
            )
    assert seen == {
        "pending": (403, None),
        # Shared with everyone signed in, but S has no consent: listed, and counted, without S.
        "external": (200, [("P", 0)]),
        "centre-member": (200, [("P", 0)]),
        "member-without-dua": (200, [("P", 0)]),
        "steward": (200, [("P", 0)]),
        "collaborator": (200, [("P", 1)]),
        "project-member": (200, [("P", 1)]),
        "owner": (200, [("P", 1)]),
        "admin": (200, [("P", 1)]),
    }
