"""GDPR over HTTP: owners export and erase, the team reads processing, admins see retention."""

import io
import json
import zipfile
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from neurodepot.access import accounts, tokens
from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import create_project, create_subject
from neurodepot.depot.folder import Depot
from tests.api.conftest import caller
from tests.consent.test_subject_export import build_tree

pytestmark = pytest.mark.anyio
EXPORT = "/api/v1/projects/P/subjects/S01/access-export"
ERASE = "/api/v1/projects/P/subjects/S01/erase"
PROCESSING = "/api/v1/projects/P/processing"


@pytest.fixture
def people(depot: Depot) -> dict[str, str]:
    """Write tokens: `olly` owns P, `mia` is a member, `cole` a collaborator, `ada` an admin."""
    build_tree(depot)
    made = {}
    with depot.transaction() as db:
        for name in ("olly", "mia", "cole", "ada"):
            accounts.add_user(db, "test", name, f"{name}@example.org")
            accounts.set_status(db, "test", name, "active")
            made[name] = tokens.create_token(db, "test", name, "t", "write")[1]
        accounts.set_site_role(db, "test", "ada", "admin")
        for name, role in (("olly", "owner"), ("mia", "member"), ("cole", "collaborator")):
            accounts.set_project_role(db, "test", name, "P", role)
    return made


async def as_(depot: Depot, secret: str) -> AsyncIterator[httpx.AsyncClient]:
    async with caller(depot, secret) as client:
        yield client


async def test_the_owner_gets_the_subjects_zip_streamed_and_audited(
    depot: Depot, people: dict[str, str]
) -> None:
    async for olly in as_(depot, people["olly"]):
        got = await olly.get(EXPORT)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/zip"
        assert 'filename="P-S01-access-export.zip"' in got.headers["content-disposition"]
        assert got.headers["cache-control"] == "no-store"
        with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
            assert archive.testzip() is None
            manifest = json.loads(archive.read("P-S01/manifest.json"))
            assert "P-S01/files/resources/beh/scores.csv" in archive.namelist()
        assert manifest["exported_by"] == "olly" and manifest["files"] == 6
        missing = await olly.get("/api/v1/projects/P/subjects/S99/access-export")
        assert missing.status_code == 404
    with depot.reading() as db:
        actions = [
            (e.actor, e.action, e.target)
            for e in db.scalars(select(AuditEvent).where(AuditEvent.actor == "olly"))
        ]
    assert ("olly", "subject_exported", "P/S01") in actions
    assert ("olly", "admin_read", "P/S01") in actions


@pytest.mark.parametrize("who", ["cole", "mia"])
async def test_collaborators_and_members_may_not_export_or_erase(
    depot: Depot, people: dict[str, str], who: str
) -> None:
    async for client in as_(depot, people[who]):
        assert (await client.get(EXPORT)).status_code == 403
        refused = await client.post(ERASE, json={"confirm": "S01"})
        assert refused.status_code == 403
        assert (await client.put(PROCESSING, json={"purpose": "x"})).status_code == 403
        assert (await client.get("/api/v1/retention")).status_code == 403
        assert (await client.get(PROCESSING)).status_code == 200  # the team reads it
    with depot.reading() as db:
        assert not db.scalars(
            select(AuditEvent).where(AuditEvent.action == "subject_exported")
        ).all()
        assert not db.scalars(select(AuditEvent).where(AuditEvent.action == "subject_erased")).all()


async def test_erase_needs_the_label_repeated_and_then_erases(
    depot: Depot, people: dict[str, str]
) -> None:
    async for olly in as_(depot, people["olly"]):
        for body in ({"confirm": "S02"}, {"confirm": "s01"}, {"label": "new"}, {}):
            wrong = await olly.post(ERASE, json=body)
            assert wrong.status_code == 422, body
        assert (
            "repeating the subject's label"
            in (await olly.post(ERASE, json={"confirm": "S02"})).json()["message"]
        )
        assert (await olly.get("/api/v1/projects/P/subjects/S01")).status_code == 200
        done = await olly.post(ERASE, json={"confirm": "S01"})
        assert done.status_code == 200, done.text
        shown = done.json()
        assert shown["counts"]["files"] == 6 and shown["blobs_removed"] == 3
        assert shown["releases"] == [] and shown["subject"] == "S01"
        assert (await olly.get("/api/v1/projects/P/subjects/S01")).status_code == 404
        assert (await olly.post(ERASE, json={"confirm": "S01"})).status_code == 404
    with depot.reading() as db:
        (erased,) = db.scalars(select(AuditEvent).where(AuditEvent.action == "subject_erased"))
        assert (erased.actor, erased.target) == ("olly", "P/S01")


async def test_processing_is_read_as_json_or_markdown_and_changed_by_owners(
    depot: Depot, people: dict[str, str]
) -> None:
    async for olly in as_(depot, people["olly"]):
        changed = await olly.put(
            PROCESSING,
            json={
                "purpose": "Memory <b>research</b>",
                "lawful_basis": "GDPR 6(1)(e)",
                "data_categories": ["health data"],
                "controller": "Brain Centre",
                "retention_until": "2031-01-01",
            },
        )
        assert changed.status_code == 200, changed.text
        shown = changed.json()
        assert shown["retention"]["until"] == "2031-01-01"
        assert shown["data_categories"]["all"] == ["health data", "MRI"]
        assert [r["recipient"] for r in shown["recipients"]] == ["named team"]
        assert shown["recipients"][0]["by_role"] == {"owner": 1, "member": 1, "collaborator": 1}
        kept = await olly.put(PROCESSING, json={"controller": "Other"})
        assert kept.json()["retention"]["until"] == "2031-01-01"  # left out: unchanged
        cleared = await olly.put(PROCESSING, json={"retention_until": None})
        assert cleared.json()["retention"]["until"] is None
        assert cleared.json()["purpose"] == "Memory <b>research</b>"
        markdown = await olly.get(PROCESSING, params={"format": "markdown"})
        assert markdown.status_code == 200
        assert markdown.headers["content-type"].startswith("text/markdown")
        assert "Memory \\<b\\>research\\</b\\>" in markdown.text
        assert (await olly.get(PROCESSING)).json()["controller"] == "Other"
        for bad in (
            {"retention_until": "2031-13-01"},
            {"retention_until": 0},
            {"controller": "a\nb"},
            {"purpose": "x" * 4001},
            {"unknown": 1},
            {"data_categories": "MRI"},
        ):
            assert (await olly.put(PROCESSING, json=bad)).status_code == 422, bad
        assert (await olly.put(PROCESSING, content=b"\x00\xff")).status_code == 422
        assert (await olly.get(PROCESSING, params={"format": "html"})).status_code == 422
        assert (await olly.get("/api/v1/projects/Nope/processing")).status_code in (403, 404)


async def test_admins_get_the_depot_wide_retention_report(
    depot: Depot, people: dict[str, str]
) -> None:
    with depot.transaction() as db:
        create_project(db, "Q")
        create_subject(db, "Q", "q1")
    async for olly in as_(depot, people["olly"]):
        assert (
            await olly.put(PROCESSING, json={"retention_until": "2031-01-01"})
        ).status_code == 200
        assert (await olly.get("/api/v1/retention")).status_code == 403
    async for ada in as_(depot, people["ada"]):
        report = await ada.get("/api/v1/retention", params={"on": "2031-06-30"})
        assert report.status_code == 200
        shown = report.json()
        assert shown["on"] == "2031-06-30" and shown["without_date"] == ["Q"]
        (past,) = shown["past"]
        assert (past["project"], past["days_past"], past["subjects"], past["files"]) == (
            "P", 180, 3, 10,
        )  # fmt: skip
        assert (await ada.get("/api/v1/retention", params={"on": "soon"})).status_code == 422
        today = await ada.get("/api/v1/retention")
        assert today.status_code == 200 and today.json()["past"] == []
