"""Consent over HTTP: the team reads it, those who change data set, withdraw and import it."""

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from neurodepot.access import accounts, tokens
from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import create_project, create_subject
from neurodepot.consent import records
from neurodepot.consent.csv_import import MAX_BYTES
from neurodepot.consent.models import ConsentRecord
from neurodepot.depot.folder import Depot
from tests.api.conftest import caller

pytestmark = pytest.mark.anyio
ALICE = "/api/v1/projects/P/subjects/alice/consent"
IMPORT = "/api/v1/projects/P/consent/import"
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def people(depot: Depot) -> dict[str, str]:
    """Write tokens: `olly` owns P, `cole` collaborates on it, `mia` is a centre member outside."""
    made = {}
    with depot.transaction() as db:
        create_project(db, "P")
        create_subject(db, "P", "alice")
        create_subject(db, "P", "bob")
        for name in ("olly", "cole", "mia"):
            accounts.add_user(db, "test", name, f"{name}@example.org")
            accounts.set_status(db, "test", name, "active")
            made[name] = tokens.create_token(db, "test", name, "t", "write")[1]
        accounts.set_project_role(db, "test", "olly", "P", "owner")
        accounts.set_project_role(db, "test", "cole", "P", "collaborator")
    return made


def _records(depot: Depot) -> int:
    with depot.reading() as db:
        return int(db.scalar(select(func.count()).select_from(ConsentRecord)) or 0)


async def test_the_operator_sets_reads_and_withdraws(depot: Depot, people: dict[str, str]) -> None:
    async with caller(depot, None) as operator:
        body = {"level": "open", "form": "Form A", "form_version": "2", "given_on": "2024-01-15",
                "restrictions": "no commercial use"}  # fmt: skip
        made = await operator.put(ALICE, json=body)
        assert made.status_code == 200, made.text
        assert made.json()["level"] == "open" and made.json()["recorded_by"] == "operator@loopback"
        listed = await operator.get("/api/v1/projects/P/consent")
        assert listed.status_code == 200
        assert [(c["subject"], c["level"]) for c in listed.json()] == [
            ("alice", "open"),
            ("bob", "none"),
        ]
        gone = await operator.post(ALICE + "/withdraw", json={"on": "2024-06-01", "note": "mail"})
        assert gone.status_code == 200, gone.text
        assert gone.json()["releases"] == []
        assert gone.json()["withdrawal"]["level"] == "withdrawn"
        assert gone.json()["withdrawal"]["withdrawn_on"] == "2024-06-01"
        shown = (await operator.get(ALICE)).json()
        assert shown["current"]["level"] == "withdrawn"
        assert [h["level"] for h in shown["history"]] == ["open", "withdrawn"]
        plain = await operator.post("/api/v1/projects/P/subjects/bob/consent/withdraw")
        assert plain.status_code == 200, plain.text
        assert plain.json()["withdrawal"]["withdrawn_on"] == date.today().isoformat()


async def test_the_owner_sets_and_reads_and_writes_are_audited(
    depot: Depot, people: dict[str, str]
) -> None:
    async with caller(depot, people["olly"]) as olly:
        assert (await olly.put(ALICE, json={"level": "internal"})).status_code == 200
        again = await olly.put(ALICE, json={"level": "open", "given_on": "2024-02-01"})
        assert again.status_code == 200 and again.json()["recorded_by"] == "olly"
        shown = (await olly.get(ALICE)).json()
        assert [h["level"] for h in shown["history"]] == ["internal", "open"]
        assert shown["current"]["given_on"] == "2024-02-01"
    with depot.reading() as db:
        actions = list(db.scalars(select(AuditEvent.action).where(AuditEvent.target == "P/alice")))
    assert actions.count("consent_set") == 2 and "write" in actions and "data_read" in actions


async def test_a_collaborator_reads_but_may_not_change(
    depot: Depot, people: dict[str, str]
) -> None:
    with depot.transaction() as db:
        records.set_consent(db, "test", "P", "alice", "open")
    async with caller(depot, people["cole"]) as cole:
        assert (await cole.get(ALICE)).json()["current"]["level"] == "open"
        assert (await cole.put(ALICE, json={"level": "none"})).status_code == 403
        assert (await cole.post(ALICE + "/withdraw")).status_code == 403
        refused = await cole.post(IMPORT, content=b"subject,level\nbob,open\n", headers=CSV)
        assert refused.status_code == 403
    assert _records(depot) == 1


async def test_a_centre_member_outside_the_project_is_denied(
    depot: Depot, people: dict[str, str]
) -> None:
    with depot.transaction() as db:
        records.set_consent(db, "test", "P", "alice", "open", "Form A")
    async with caller(depot, people["mia"]) as mia:
        for response in (
            await mia.get("/api/v1/projects/P/consent"),
            await mia.get(ALICE),
            await mia.put(ALICE, json={"level": "none"}),
            await mia.post(ALICE + "/withdraw"),
            await mia.post(IMPORT, content=b"subject,level\nbob,open\n", headers=CSV),
        ):
            assert response.status_code == 403, response.text
            assert "Form A" not in response.text
    async with caller(depot, None) as operator:
        assert (await operator.get(ALICE)).json()["current"]["level"] == "open"
    assert _records(depot) == 1


async def test_bad_bodies_are_422_with_what_is_wrong(depot: Depot, people: dict[str, str]) -> None:
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    async with caller(depot, people["olly"]) as olly:
        for body, fragment in [
            ({"level": "withdrawn"}, "consent level"),
            ({"level": "open", "given_on": tomorrow}, "future"),
            ({"level": "open", "given_on": "15/01/2024"}, "YYYY-MM-DD"),
            ({"level": "open", "form": "\x1b[2J"}, "control characters"),
            ({"level": "open", "restrictions": "r" * 4001}, "restrictions"),
            ({"form": "A"}, "level"),
        ]:
            refused = await olly.put(ALICE, json=body)
            assert refused.status_code == 422 and fragment in refused.text, (body, refused.text)
        raw = await olly.put(ALICE, content=b"\x00\xff", headers={"Content-Type": "text/plain"})
        assert raw.status_code == 422
        late = await olly.post(ALICE + "/withdraw", json={"on": tomorrow})
        assert late.status_code == 422 and "future" in late.text
        missing = await olly.put("/api/v1/projects/P/subjects/dave/consent", json={"level": "open"})
        assert missing.status_code == 404 and "'dave'" in missing.text
    assert _records(depot) == 0


async def test_import_records_a_good_csv(depot: Depot, people: dict[str, str]) -> None:
    text = "\ufeffsubject;level;given_on\nalice;open;2024-01-15\ncarol;internal;\n"
    async with caller(depot, people["olly"]) as olly:
        done = await olly.post(
            IMPORT,
            params={"create_subjects": "true"},
            content=text.encode(),
            headers={"Content-Type": "text/csv; charset=utf-8"},
        )
        assert done.status_code == 200, done.text
        assert done.json()["records"] == 2 and done.json()["created_subjects"] == ["carol"]
        listed = (await olly.get("/api/v1/projects/P/consent")).json()
    assert {c["subject"]: c["level"] for c in listed} == {
        "alice": "open",
        "bob": "none",
        "carol": "internal",
    }


async def test_import_with_a_bad_line_is_422_naming_it_and_stores_nothing(
    depot: Depot, people: dict[str, str]
) -> None:
    text = b"subject,level\nalice,open\nbob,perhaps\ncarol,open\n"
    async with caller(depot, people["olly"]) as olly:
        refused = await olly.post(IMPORT, content=text, headers=CSV)
        assert refused.status_code == 422
        message = refused.json()["message"]
        assert "line 3: level 'perhaps'" in message and "line 4: no subject 'carol'" in message
        assert "line 2" not in message
    assert _records(depot) == 0
    with depot.reading() as db:
        outcome = db.scalars(
            select(AuditEvent.outcome)
            .where(AuditEvent.action == "write")
            .order_by(AuditEvent.id.desc())
        ).first()
    assert outcome == "failed"


async def test_import_refuses_other_content_types_and_oversize_bodies(
    depot: Depot, people: dict[str, str]
) -> None:
    async with caller(depot, people["olly"]) as olly:
        as_json = await olly.post(IMPORT, json={"label": "new"})
        assert as_json.status_code == 422 and "text/csv" in as_json.text
        utf16 = await olly.post(
            IMPORT,
            content="subject,level\nalice,open\n".encode("utf-16"),
            headers={"Content-Type": "text/csv; charset=utf-16"},
        )
        assert utf16.status_code == 422 and "UTF-8" in utf16.text
        # Past the route's own limit (it is exempt from the 1 MiB limit of other bodies).
        line = b"alice,open\n"
        big = b"subject,level\n" + line * (MAX_BYTES // len(line) + 1)
        too_large = await olly.post(IMPORT, content=big, headers=CSV)
        assert too_large.status_code == 413 and "MB" in too_large.json()["message"]
    assert _records(depot) == 0
