"""The sharing rule, request by request: consent, DUA, project access and caller.

For every project access level, every consent level of subject S (none, internal, open, then
withdrawn), every DUA state of the caller (accepted, never accepted, outdated: version 1
accepted, version 2 published) and every kind of caller, the project listing (and its count),
the shared summary, the shared subject listing and the shared dataset answer exactly what
`../shared/DESIGN.md`'s sharing rules say; the expectation is written here from those rules,
not asked of the policy. S appears by its pseudonym only: no response, and no file of a zip,
holds an internal label. Subject N (consent none) is never shared with anyone.

One depot per access level; consent changes between the checks, in the same app, so that each
check also shows the change took effect on the very next request.
"""

import gzip
import io
import json
import zipfile
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from neurodepot.access import accounts, tokens
from neurodepot.api.app import create_app
from neurodepot.catalog import hierarchy, resources
from neurodepot.catalog.target import Target
from neurodepot.consent import dua, records
from neurodepot.deid import linkage
from neurodepot.depot.folder import Depot

pytestmark = pytest.mark.anyio

ACCESS_LEVELS = ("private", "internal", "public")
CONSENTS = ("none", "internal", "open", "withdrawn")
DUA_STATES = ("accepted", "not-accepted", "outdated")
# Who: (kind of account, site role, role in P).
CALLERS = {
    "external": ("external", "none", None),
    "centre-member": ("member", "none", None),
    "collaborator": ("external", "none", "collaborator"),
    "owner": ("member", "none", "owner"),
    "admin": ("member", "admin", None),
}
TEAM = ("collaborator", "owner", "admin")
# Each caller in each DUA state; the team needs no DUA, shown by its members who accepted none.
CASES = [
    (caller, state)
    for caller in CALLERS
    for state in (("not-accepted",) if caller in TEAM else DUA_STATES)
]
# Internal labels carry a marker no pseudonym can hold (pseudonyms are upper-case base32).
MARKER = "intlabel"
SUBJECT, OTHER = f"{MARKER}-s", f"{MARKER}-n"
REMOTE = ("192.0.2.8", 50000)


# --- the rules, as DESIGN.md states them -----------------------------------------------------


def project_shared_with(kind: str, access: str) -> bool:
    """Internal: also every centre member; public: also external researchers."""
    if kind == "member":
        return access in ("internal", "public")
    return access == "public"


def subject_shared_with(kind: str, access: str, consent: str) -> bool:
    """Both the project's access and the subject's consent must allow it; withdrawn: nobody."""
    if kind == "member":
        return project_shared_with(kind, access) and consent in ("internal", "open")
    return access == "public" and consent == "open"


# --- setting up a depot --------------------------------------------------------------------


def add_imaged_subject(depot: Depot, project: str, subject: str, session: str) -> None:
    """A subject with one MR session whose one scan has a (tiny, fake) converted BOLD series.

    Functional, not anatomical, and a well-formed gzip: the release check that an external
    researcher's download must pass then has nothing to object to (no face to deface, nothing
    unreadable), so the tests here are about who sees which subject.
    """
    with depot.transaction() as db:
        hierarchy.create_subject(db, project, subject)
        hierarchy.create_session(db, project, subject, session, modality="mr")
        hierarchy.create_scan(db, project, subject, session, "1", type="rest", modality="mr")
    scan = Target(project, subject, session, "1")
    sidecar = {"SeriesDescription": "rest", "ProtocolName": "rest", "Modality": "MR"}
    image = gzip.compress(b"not really an image", mtime=0)
    resources.add_file(depot, scan, "NIFTI", "bold.nii.gz", [image])
    resources.add_file(depot, scan, "NIFTI", "bold.json", [json.dumps(sidecar).encode()])


def add_caller(
    db: Session, name: str, kind: str, site_role: str = "none", role: str | None = None,
    project: str = "P",
) -> str:  # fmt: skip
    """An active account set up as asked; returns a write token's secret."""
    accounts.add_user(db, "test", name, f"{name}@example.org", kind=kind)
    accounts.set_status(db, "test", name, "active")
    accounts.set_site_role(db, "test", name, site_role)
    if role is not None:
        accounts.set_project_role(db, "test", name, project, role)
    return tokens.create_token(db, "test", name, "sharing", "write")[1]


def set_access(db: Session, project: str, access: str) -> None:
    accounts.set_project_access(db, "test", project, access, approved_by="steward")


def set_consent(db: Session, project: str, subject: str, level: str) -> None:
    """Make `subject`'s current consent `level` (`withdrawn`: a withdrawal record)."""
    if level == "withdrawn":
        records.withdraw_consent(db, "test", project, subject)
    else:
        records.set_consent(db, "test", project, subject, level, form="F", form_version="1")


def pseudonym(depot: Depot, project: str, subject: str) -> str:
    with depot.transaction() as db:
        return linkage.subject_link(db, project, subject).pseudonym


def bearer(app: FastAPI, secret: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=REMOTE)
    return httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {secret}"},
    )


def zip_contents(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def participants(files: dict[str, bytes]) -> set[str]:
    """The participant ids of a shared dataset's participants.tsv, without `sub-`."""
    (table,) = [data for name, data in files.items() if name.endswith("/participants.tsv")]
    header, *rows = table.decode().splitlines()
    assert header.split("\t")[0] == "participant_id"
    return {row.split("\t")[0].removeprefix("sub-") for row in rows}


@dataclass(frozen=True)
class Seen:
    """What one caller got from the four requests."""

    listing: tuple[int, int | None]  # status, P's subject count (None: P not listed)
    summary: tuple[int, int | None]  # status, subject count
    subjects: tuple[int, frozenset[str] | None]  # status, pseudonyms listed
    dataset: tuple[int, frozenset[str] | None]  # status, participants


async def look(client: httpx.AsyncClient, project: str = "P") -> tuple[Seen, list[str]]:
    """The four requests; and what was wrong regardless of the rule (labels, headers)."""
    wrong: list[str] = []
    bodies: list[bytes] = []
    listing = await client.get("/api/v1/projects")
    bodies.append(listing.content)
    count = None
    if listing.status_code == 200:
        count = next((p["subject_count"] for p in listing.json() if p["label"] == project), None)
    summary = await client.get(f"/api/v1/shared/{project}")
    bodies.append(summary.content)
    subjects = await client.get(f"/api/v1/shared/{project}/subjects")
    bodies.append(subjects.content)
    dataset = await client.get(f"/api/v1/shared/{project}/dataset.zip")
    files: dict[str, bytes] = {}
    if dataset.status_code == 200:
        files = zip_contents(dataset.content)
        bodies.extend(name.encode() for name in files)
        bodies.extend(files.values())
    else:
        bodies.append(dataset.content)
    for response in (summary, subjects, dataset):
        if response.status_code == 200 and response.headers.get("cache-control") != "no-store":
            wrong.append(f"{response.url}: Cache-Control {response.headers.get('cache-control')}")
    if any(MARKER.encode() in body for body in bodies):
        wrong.append("an internal label was in a response")
    seen = Seen(
        (listing.status_code, count),
        (summary.status_code, summary.json()["subjects"] if summary.status_code == 200 else None),
        (
            subjects.status_code,
            frozenset(s["pseudonym"] for s in subjects.json())
            if subjects.status_code == 200
            else None,
        ),
        (dataset.status_code, frozenset(participants(files)) if files else None),
    )
    if dataset.status_code == 403:
        wrong.extend(_check_refusal(dataset))
    return seen, wrong


def _check_refusal(response: httpx.Response) -> list[str]:
    message = response.json()["message"]
    if "Data Usage Agreement" in message and "(id " not in message:
        return [f"a DUA refusal that names no DUA id: {message}"]
    return []


# --- the matrix ------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    app: FastAPI
    secrets: dict[tuple[str, str], str]  # (caller, DUA state) → token
    pseudonym: str  # S's
    other: str  # N's
    site_dua: int  # the current site DUA's id


@pytest.fixture
def world(depot: Depot) -> World:
    """P holding S and N, each with an image; the callers in their DUA states (`CASES`)."""
    with depot.transaction() as db:
        hierarchy.create_project(db, "P")
    add_imaged_subject(depot, "P", SUBJECT, f"{MARKER}-sess-s")
    add_imaged_subject(depot, "P", OTHER, f"{MARKER}-sess-n")
    secrets = {}
    with depot.transaction() as db:
        for caller, state in CASES:
            kind, site_role, role = CALLERS[caller]
            secrets[caller, state] = add_caller(db, f"{caller}-{state}", kind, site_role, role)
        first = dua.publish(db, "admin", "Site DUA", "Use it for research only.")
        for caller, state in CASES:
            if state in ("accepted", "outdated"):
                dua.accept(db, f"{caller}-{state}", first.id)
        second = dua.publish(db, "admin", "Site DUA", "Use it for research only; cite us.")
        for caller, state in CASES:
            if state == "accepted":
                dua.accept(db, f"{caller}-accepted", second.id)
    return World(
        create_app(depot),
        secrets,
        pseudonym(depot, "P", SUBJECT),
        pseudonym(depot, "P", OTHER),
        second.id,
    )


def expected(caller: str, state: str, access: str, consent: str, world: World) -> Seen:
    """What DESIGN's rules give this caller (the team sees the shared view as members do)."""
    kind = CALLERS[caller][0]
    team = caller in TEAM
    view = "member" if team else kind
    shown = subject_shared_with(view, access, consent)
    pseudonyms = frozenset({world.pseudonym}) if shown else frozenset()
    # Nothing shared: refused (409) rather than a dataset of every subject.
    dataset: tuple[int, frozenset[str] | None] = (200, pseudonyms) if shown else (409, None)
    if team:  # no DUA needed
        return Seen((200, 2), (200, len(pseudonyms)), (200, pseudonyms), dataset)
    if not project_shared_with(kind, access):
        return Seen((200, None), (403, None), (403, None), (403, None))
    if state != "accepted":
        dataset = (403, None)
    return Seen((200, len(pseudonyms)), (200, len(pseudonyms)), (200, pseudonyms), dataset)


@pytest.mark.parametrize("access", ACCESS_LEVELS)
async def test_each_request_shares_exactly_what_access_consent_and_dua_allow(
    depot: Depot, world: World, access: str
) -> None:
    with depot.transaction() as db:
        set_access(db, "P", access)
    wrong = []
    for consent in CONSENTS:
        with depot.transaction() as db:
            set_consent(db, "P", SUBJECT, consent)
        for (caller, state), secret in world.secrets.items():
            async with bearer(world.app, secret) as client:
                seen, problems = await look(client)
            want = expected(caller, state, access, consent, world)
            where = f"{access}/{consent}/{caller}/{state}"
            wrong.extend(f"{where}: {p}" for p in problems)
            if seen != want:
                wrong.append(f"{where}: got {seen}, expected {want}")
            if world.other in str(seen):
                wrong.append(f"{where}: N (consent none) was shared")
    assert wrong == [], "\n".join(wrong)


async def test_a_download_refused_for_an_outdated_dua_names_the_current_version(
    depot: Depot, world: World
) -> None:
    with depot.transaction() as db:
        set_access(db, "P", "public")
        set_consent(db, "P", SUBJECT, "open")
    async with bearer(world.app, world.secrets["external", "outdated"]) as client:
        response = await client.get("/api/v1/shared/P/dataset.zip")
    assert response.status_code == 403
    message = response.json()["message"]
    assert f"the site DUA 'Site DUA' version 2 (id {world.site_dua})" in message


async def test_shared_routes_answer_unknown_projects_as_denied_to_users(
    depot: Depot, world: World
) -> None:
    async with bearer(world.app, world.secrets["centre-member", "accepted"]) as client:
        for path in ("", "/subjects", "/dataset.zip"):
            response = await client.get(f"/api/v1/shared/Nope{path}")
            assert response.status_code == 403, path
            assert "no such project" in response.json()["message"]
