"""`/api/v1/…/sharing` and `/api/v1/duas`: owners ask, stewards decide; users read and accept."""

import pytest
from sqlalchemy import select

from neurodepot.access import accounts, tokens
from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import create_project, find_project
from neurodepot.consent import dua
from neurodepot.depot.folder import Depot
from tests.api.conftest import api_client, caller

pytestmark = pytest.mark.anyio
REASON = "Consent forms allow open sharing; the site DUA covers external researchers."
TEXT = "Research use only. Never try to re-identify anyone."


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def people(depot: Depot) -> dict[str, str]:
    """Write tokens: `olly` owns P, `mona` is its member, `sam` a steward, `ada` an admin,
    `mia` a centre member and `eve` an external researcher (neither named in P)."""
    made = {}
    with depot.transaction() as db:
        create_project(db, "P")
        for name, kind, site_role in (
            ("olly", "member", "none"), ("mona", "member", "none"), ("sam", "member", "steward"),
            ("ada", "member", "admin"), ("mia", "member", "none"), ("eve", "external", "none"),
        ):  # fmt: skip
            accounts.add_user(db, "test", name, f"{name}@example.org", kind=kind)
            accounts.set_status(db, "test", name, "active")
            accounts.set_site_role(db, "test", name, site_role)
            made[name] = tokens.create_token(db, "test", name, "t", "write")[1]
        accounts.set_project_role(db, "test", "olly", "P", "owner")
        accounts.set_project_role(db, "test", "mona", "P", "member")
    return made


def access(depot: Depot) -> str:
    with depot.reading() as db:
        return find_project(db, "P").access


class TestSharing:
    async def test_an_owners_public_request_waits_and_only_a_steward_approves(
        self, depot: Depot, people: dict[str, str]
    ) -> None:
        async with caller(depot, people["olly"]) as olly:
            asked = await olly.put("/api/v1/projects/P/sharing", json={"level": "public"})
            assert asked.status_code == 200, asked.text
            assert (asked.json()["status"], asked.json()["requested_by"]) == ("pending", "olly")
            assert access(depot) == "private"
            shown = (await olly.get("/api/v1/projects/P/sharing")).json()
            assert shown["level"] == "private" and shown["pending"]["id"] == asked.json()["id"]
            approve = {"reason": REASON}
            own = await olly.post("/api/v1/projects/P/sharing/approve", json=approve)
            assert own.status_code == 403  # an owner is not a steward
        for name in ("ada", "mona", "mia"):
            async with caller(depot, people[name]) as other:
                refused = await other.post("/api/v1/projects/P/sharing/approve", json=approve)
                assert refused.status_code == 403, name
        assert access(depot) == "private"
        async with caller(depot, people["sam"]) as sam:
            for empty in ({}, {"reason": ""}, {"reason": "   "}):
                bad = await sam.post("/api/v1/projects/P/sharing/approve", json=empty)
                assert bad.status_code == 422, empty
            done = await sam.post("/api/v1/projects/P/sharing/approve", json=approve)
            assert done.status_code == 200, done.text
            assert (done.json()["status"], done.json()["decided_by"]) == ("applied", "sam")
            again = await sam.post("/api/v1/projects/P/sharing/approve", json=approve)
            assert again.status_code == 409 and "no pending" in again.json()["message"]
        assert access(depot) == "public"
        async with caller(depot, people["mona"]) as mona:
            shown = (await mona.get("/api/v1/projects/P/sharing")).json()
        assert shown["level"] == "public" and shown["history"][0]["decision_reason"] == REASON
        with depot.reading() as db:
            actions = db.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.target == "project:P")
                .order_by(AuditEvent.id)
            ).all()
        assert [a for a in actions if a.startswith(("sharing", "access"))] == [
            "sharing_requested",
            "sharing_approved",
            "access_changed",
        ]

    async def test_rejecting_and_going_down_and_who_may_set_it(
        self, depot: Depot, people: dict[str, str]
    ) -> None:
        async with caller(depot, people["olly"]) as olly:
            assert (
                await olly.put("/api/v1/projects/P/sharing", json={"level": "internal"})
            ).json()["status"] == "applied"
            assert access(depot) == "internal"
            await olly.put("/api/v1/projects/P/sharing", json={"level": "public", "reason": "r"})
        async with caller(depot, people["sam"]) as sam:
            no = await sam.post("/api/v1/projects/P/sharing/reject", json={"reason": "not yet"})
            assert no.status_code == 200 and no.json()["status"] == "rejected"
            none = await sam.post("/api/v1/projects/P/sharing/reject", json={"reason": "again"})
            assert none.status_code == 409
        assert access(depot) == "internal"
        for name in ("mona", "mia", "sam"):
            async with caller(depot, people[name]) as other:
                refused = await other.put("/api/v1/projects/P/sharing", json={"level": "private"})
                assert refused.status_code == 403, name
        async with caller(depot, people["olly"]) as olly:
            for bad in ({"level": "everyone"}, {"level": "public", "extra": 1}, {}):
                answered = await olly.put("/api/v1/projects/P/sharing", json=bad)
                assert answered.status_code == 422, bad
            raw = await olly.put("/api/v1/projects/P/sharing", content=b"\x00\xff")
            assert raw.status_code == 422
            down = await olly.put("/api/v1/projects/P/sharing", json={"level": "private"})
            assert down.json()["status"] == "applied"
            missing = await olly.put("/api/v1/projects/Nope/sharing", json={"level": "private"})
            assert missing.status_code == 403  # olly has no role in a project that is not there
        assert access(depot) == "private"
        async with caller(depot, None) as operator:
            gone = await operator.get("/api/v1/projects/Nope/sharing")
            assert gone.status_code == 404


class TestDuas:
    async def test_admins_publish_the_site_dua_and_owners_their_projects(
        self, depot: Depot, people: dict[str, str]
    ) -> None:
        body = {"title": "Site DUA", "body": TEXT}
        for name in ("mia", "olly", "sam"):
            async with caller(depot, people[name]) as other:
                assert (await other.post("/api/v1/duas", json=body)).status_code == 403, name
        async with caller(depot, people["ada"]) as ada:
            made = await ada.post("/api/v1/duas", json=body)
            assert made.status_code == 201, made.text
            assert (made.json()["scope"], made.json()["version"]) == ("site", 1)
            assert made.json()["published_by"] == "ada" and made.json()["accepted"] is False
            for bad in ({"title": "T"}, {"title": "a\nb", "body": "x"}, {"title": "", "body": "x"}):
                assert (await ada.post("/api/v1/duas", json=bad)).status_code == 422, bad
        async with caller(depot, people["mona"]) as mona:
            refused = await mona.post("/api/v1/projects/P/duas", json=body)
            assert refused.status_code == 403  # members add data, owners set the terms
        async with caller(depot, people["olly"]) as olly:
            terms = await olly.post("/api/v1/projects/P/duas", json={**body, "title": "P terms"})
            assert terms.status_code == 201 and terms.json()["scope"] == "P"

    async def test_a_user_reads_and_accepts_the_current_duas(
        self, depot: Depot, people: dict[str, str]
    ) -> None:
        with depot.transaction() as db:
            accounts.set_project_access(db, "test", "P", "internal")
            site = dua.publish(db, "ada", "Site DUA", TEXT)
            terms = dua.publish(db, "olly", "P terms", TEXT, "P")
        async with caller(depot, people["mia"]) as mia:
            listed = await mia.get("/api/v1/duas", params={"project": "P"})
            assert listed.status_code == 200
            assert [(d["id"], d["accepted"]) for d in listed.json()] == [
                (site.id, False),
                (terms.id, False),
            ]
            assert listed.json()[0]["body"] == TEXT and listed.json()[0]["name"] == site.name
            accepted = await mia.post(f"/api/v1/duas/{site.id}/accept")
            assert accepted.status_code == 200, accepted.text
            assert (accepted.json()["username"], accepted.json()["version"]) == ("mia", 1)
            assert (await mia.post(f"/api/v1/duas/{site.id}/accept")).status_code == 200
            listed = (await mia.get("/api/v1/duas", params={"project": "P"})).json()
            assert [d["accepted"] for d in listed] == [True, False]
            one = (await mia.get(f"/api/v1/duas/{site.id}")).json()
            assert one["accepted"] is True and one["current"] is True
            assert (await mia.get("/api/v1/duas/999")).status_code == 404
        with depot.reading() as db:
            assert dua.unaccepted(
                db, accounts.find_user(db, "mia").id, find_project(db, "P").id
            ) == (terms.name,)
            audited = db.scalars(
                select(AuditEvent.actor).where(AuditEvent.action == "dua_accepted")
            ).all()
        assert audited == ["mia"]

    async def test_an_outdated_version_is_refused_naming_the_current_one(
        self, depot: Depot, people: dict[str, str]
    ) -> None:
        with depot.transaction() as db:
            old = dua.publish(db, "ada", "Site DUA", TEXT)
        async with caller(depot, people["ada"]) as ada:
            new = (await ada.post("/api/v1/duas", json={"title": "Site DUA", "body": "v2"})).json()
        async with caller(depot, people["eve"]) as eve:
            refused = await eve.post(f"/api/v1/duas/{old.id}/accept")
            assert refused.status_code == 409
            assert new["name"] in refused.json()["message"] and "version 2" in new["name"]
            old_one = (await eve.get(f"/api/v1/duas/{old.id}")).json()
            assert old_one["current"] is False and old_one["accepted"] is False
            assert (await eve.post(f"/api/v1/duas/{new['id']}/accept")).status_code == 200
            assert [d["accepted"] for d in (await eve.get("/api/v1/duas")).json()] == [True]

    async def test_a_private_projects_dua_is_not_shown_beyond_its_people(
        self, depot: Depot, people: dict[str, str]
    ) -> None:
        with depot.transaction() as db:
            accounts.set_project_access(db, "test", "P", "internal")
            dua.publish(db, "ada", "Site DUA", TEXT)
            terms = dua.publish(db, "olly", "P terms", TEXT, "P")
        async with caller(depot, people["eve"]) as eve:  # external: P (internal) is not shared
            assert (await eve.get("/api/v1/duas", params={"project": "P"})).status_code == 404
            assert (await eve.get(f"/api/v1/duas/{terms.id}")).status_code == 404
            assert (await eve.post(f"/api/v1/duas/{terms.id}/accept")).status_code == 404
            nope = await eve.get("/api/v1/duas", params={"project": "Nope"})
            assert nope.status_code == 404
            assert len((await eve.get("/api/v1/duas")).json()) == 1  # the site's is for everyone
        async with caller(depot, people["mona"]) as mona:  # named in P
            listed = await mona.get("/api/v1/duas", params={"project": "P"})
            assert [d["scope"] for d in listed.json()] == ["site", "P"]

    async def test_acceptances_are_for_admins_and_the_operator_cannot_accept(
        self, depot: Depot, people: dict[str, str]
    ) -> None:
        with depot.transaction() as db:
            site = dua.publish(db, "ada", "Site DUA", TEXT)
            dua.accept(db, "mia", site.id)
            dua.accept(db, "eve", site.id)
        async with caller(depot, people["mia"]) as mia:
            assert (await mia.get("/api/v1/duas/acceptances")).status_code == 403
        async with caller(depot, people["ada"]) as ada:
            every = (await ada.get("/api/v1/duas/acceptances")).json()
            assert [a["username"] for a in every] == ["mia", "eve"]
            only = await ada.get("/api/v1/duas/acceptances", params={"user": "eve"})
            assert [a["username"] for a in only.json()] == ["eve"]
            unknown = await ada.get("/api/v1/duas/acceptances", params={"user": "nobody"})
            assert unknown.status_code == 404
            for hostile in ({"user": "mia\x00"}, {"project": "P\x00"}, {"project": "P'--"}):
                bad = await ada.get("/api/v1/duas/acceptances", params=hostile)
                assert bad.status_code == 422, hostile
            bad = await ada.get("/api/v1/duas", params={"project": "P\x00; drop"})
            assert bad.status_code == 422
        async with caller(depot, None) as operator:
            refused = await operator.post(f"/api/v1/duas/{site.id}/accept")
            assert refused.status_code == 422 and "no account" in refused.json()["message"]
            assert (await operator.get("/api/v1/duas")).json()[0]["accepted"] is False
        with depot.transaction() as db:
            secret = tokens.create_token(db, "test", "mia", "ro", "read")[1]
        async with caller(depot, secret) as script:
            assert (await script.get("/api/v1/duas")).status_code == 200
            assert (await script.post(f"/api/v1/duas/{site.id}/accept")).status_code == 403


async def test_anonymous_callers_get_nothing(depot: Depot) -> None:
    async with api_client(depot, "203.0.113.7") as anonymous:
        assert (await anonymous.get("/api/v1/duas")).status_code == 403
        assert (await anonymous.post("/api/v1/duas/1/accept")).status_code == 403
