"""De-identification over HTTP: settings, the owners' linkage, the check, stewards' overrides."""

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from neurodepot.access import accounts, tokens
from neurodepot.access.models import AuditEvent
from neurodepot.api.app import create_app
from neurodepot.catalog.hierarchy import create_project, create_subject
from neurodepot.deid import linkage
from neurodepot.depot.folder import Depot

pytestmark = pytest.mark.anyio
REASON = "Consent is recorded on paper; the steward checked every form."


@pytest.fixture
def people(depot: Depot) -> dict[str, str]:
    """Write tokens of `sam` (steward), `olly` (owner of P) and `ada` (admin, not a steward)."""
    made = {}
    with depot.transaction() as db:
        create_project(db, "P")
        create_subject(db, "P", "alice")
        for name, role in (("sam", "steward"), ("olly", "none"), ("ada", "admin")):
            accounts.add_user(db, "test", name, f"{name}@example.org")
            accounts.set_status(db, "test", name, "active")
            accounts.set_site_role(db, "test", name, role)
            made[name] = tokens.create_token(db, "test", name, "t", "write")[1]
        accounts.set_project_role(db, "test", "olly", "P", "owner")
    return made


async def as_caller(depot: Depot, secret: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(depot), client=("192.0.2.8", 50000))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {secret}"},
    ) as client:
        yield client


async def test_settings_are_read_and_changed_with_clear_errors(
    operator_client: httpx.AsyncClient,
) -> None:
    await operator_client.post("/api/v1/projects", json={"label": "P"})
    shown = await operator_client.get("/api/v1/projects/P/deid/settings")
    assert shown.status_code == 200
    assert shown.json()["options"] == sorted(o.value for o in linkage.DEFAULT_OPTIONS)
    changed = await operator_client.put(
        "/api/v1/projects/P/deid/settings", json={"options": ["clean-descriptors"]}
    )
    assert changed.status_code == 200 and changed.json()["options"] == ["clean-descriptors"]
    bad = await operator_client.put("/api/v1/projects/P/deid/settings", json={"uid_root": "1.02"})
    assert bad.status_code == 422 and "1.02" in bad.text


async def test_the_owner_reads_and_destroys_the_linkage_audited(
    depot: Depot, people: dict[str, str]
) -> None:
    with depot.transaction() as db:
        made = linkage.subject_link(db, "P", "alice")
    async for olly in as_caller(depot, people["olly"]):
        listed = await olly.get("/api/v1/projects/P/linkage")
        assert listed.status_code == 200
        assert listed.json() == [
            {"subject": "alice", "session": None, "pseudonym": made.pseudonym,
             "date_offset_days": made.date_offset_days}
        ]  # fmt: skip
        wrong = await olly.request("DELETE", "/api/v1/projects/P/linkage", json={"confirm": "Q"})
        assert wrong.status_code == 422 and "nothing destroyed" in wrong.text
        gone = await olly.request("DELETE", "/api/v1/projects/P/linkage", json={"confirm": "P"})
        assert gone.status_code == 200 and gone.json() == {"removed": 1}
    async for sam in as_caller(depot, people["sam"]):
        assert (await sam.get("/api/v1/projects/P/linkage")).status_code == 403
    with depot.reading() as db:
        actions = [
            (e.actor, e.action)
            for e in db.scalars(select(AuditEvent).where(AuditEvent.action.like("linkage%")))
        ]
    assert actions == [("olly", "linkage_read"), ("olly", "linkage_destroyed")]


async def test_only_a_steward_overrides_and_the_check_then_passes(
    depot: Depot, people: dict[str, str]
) -> None:
    async for olly in as_caller(depot, people["olly"]):
        checked = await olly.post("/api/v1/projects/P/check")
        assert checked.status_code == 200
        report = checked.json()
        assert {c["id"]: c["status"] for c in report["criteria"]}["DEID-LINKAGE"] == "pass"
        body = {"criterion": "DEID-FACE", "reason": REASON}
        assert (await olly.post("/api/v1/projects/P/check/overrides", json=body)).status_code == 403
    async for ada in as_caller(depot, people["ada"]):
        refused = await ada.post("/api/v1/projects/P/check/overrides", json=body)
        assert refused.status_code == 403
    async for sam in as_caller(depot, people["sam"]):
        short = await sam.post(
            "/api/v1/projects/P/check/overrides", json={"criterion": "DEID-FACE", "reason": "ok"}
        )
        assert short.status_code == 422
        made = await sam.post("/api/v1/projects/P/check/overrides", json=body)
        assert made.status_code == 201 and made.json()["steward"] == "sam"
        revoked = await sam.delete(f"/api/v1/projects/P/check/overrides/{made.json()['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
