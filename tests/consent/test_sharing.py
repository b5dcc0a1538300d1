"""`consent.sharing`: owners change a project's level; going public waits for a data steward."""

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from neurodepot.access import accounts
from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import create_project, find_project
from neurodepot.consent import sharing
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict, Denied, Invalid, NotFound

REASON = "Every subject shared has open consent; the DUA covers external use."


@pytest.fixture
def project(depot: Depot) -> Depot:
    with depot.transaction() as db:
        create_project(db, "P")
    return depot


def level(depot: Depot) -> str:
    with depot.reading() as db:
        return find_project(db, "P").access


def events(depot: Depot) -> list[tuple[str, str, dict[str, object]]]:
    with depot.reading() as db:
        rows = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.target == "project:P", AuditEvent.action != "project_created")
            .order_by(AuditEvent.id)
        )
        return [(e.actor, e.action, e.detail) for e in rows]


def test_going_public_waits_for_a_steward_and_the_level_stays(project: Depot) -> None:
    with project.transaction() as db:
        made = sharing.request_level(db, "olly", "P", "public", "for the consortium")
    assert (made.status, made.level, made.requested_by) == ("pending", "public", "olly")
    assert made.decided_by == "" and made.decided_at is None
    assert level(project) == "private"
    with project.reading() as db:
        status = sharing.sharing_status(db, "P")
    assert status.level == "private" and status.pending == made
    assert status.history == (made,)
    assert events(project) == [
        ("olly", "sharing_requested",
         {"level": "public", "request": made.id, "reason": "for the consortium"}),
    ]  # fmt: skip


def test_a_stewards_approval_makes_it_public_and_is_recorded(project: Depot) -> None:
    with project.transaction() as db:
        asked = sharing.request_level(db, "olly", "P", "public")
        approved = sharing.approve(db, "sam", "P", f"  {REASON}  ")
    assert approved.id == asked.id
    assert (approved.status, approved.decided_by) == ("applied", "sam")
    assert (approved.reason, approved.decision_reason) == ("", REASON)
    assert approved.decided_at is not None
    assert level(project) == "public"
    with project.reading() as db:
        status = sharing.sharing_status(db, "P")
    assert status.pending is None and [r.status for r in status.history] == ["applied"]
    assert [(actor, action) for actor, action, _ in events(project)] == [
        ("olly", "sharing_requested"),
        ("sam", "sharing_approved"),
        ("sam", "access_changed"),
    ]
    assert events(project)[-1][2] == {"access": ["private", "public"], "request": asked.id}


def test_a_rejection_keeps_the_level(project: Depot) -> None:
    with project.transaction() as db:
        sharing.request_level(db, "olly", "P", "internal")
        sharing.request_level(db, "olly", "P", "public")
        rejected = sharing.reject(db, "sam", "P", "Consent forms do not cover external use.")
    assert (rejected.status, rejected.decided_by) == ("rejected", "sam")
    assert level(project) == "internal"
    with project.reading() as db:
        assert sharing.sharing_status(db, "P").pending is None
    assert events(project)[-1][:2] == ("sam", "sharing_rejected")


@pytest.mark.parametrize("decide", [sharing.approve, sharing.reject])
@pytest.mark.parametrize("reason", ["", "   \n\t", "x" * 4001, "fine\x00"])
def test_a_decision_without_a_proper_reason_changes_nothing(
    project: Depot, decide: object, reason: str
) -> None:
    with project.transaction() as db:
        sharing.request_level(db, "olly", "P", "public")
    with pytest.raises(Invalid, match="reason"), project.transaction() as db:
        decide(db, "sam", "P", reason)  # type: ignore[operator]
    with project.reading() as db:
        status = sharing.sharing_status(db, "P")
    assert status.level == "private" and status.pending is not None


@pytest.mark.parametrize(
    ("decide", "verb"), [(sharing.approve, "approve"), (sharing.reject, "reject")]
)
def test_deciding_with_nothing_pending_is_a_conflict_that_says_so(
    project: Depot, decide: object, verb: str
) -> None:
    with project.transaction() as db:
        sharing.request_level(db, "olly", "P", "internal")
    refused = pytest.raises(Conflict, match=f"no pending sharing request to {verb}")
    with refused, project.transaction() as db:
        decide(db, "sam", "P", REASON)  # type: ignore[operator]
    assert level(project) == "internal"


def test_a_new_request_supersedes_the_pending_one(project: Depot) -> None:
    with project.transaction() as db:
        first = sharing.request_level(db, "olly", "P", "public", "first try")
        second = sharing.request_level(db, "mona", "P", "public", "second try")
    with project.reading() as db:
        status = sharing.sharing_status(db, "P")
    assert status.pending is not None and status.pending.id == second.id
    assert [(r.id, r.status) for r in status.history] == [
        (second.id, "pending"),
        (first.id, "superseded"),
    ]
    assert status.history[1].decided_by == "mona" and status.history[1].reason == "first try"
    with project.transaction() as db:  # going internal instead withdraws the public request
        sharing.request_level(db, "olly", "P", "internal")
    with project.reading() as db:
        status = sharing.sharing_status(db, "P")
    assert status.level == "internal" and status.pending is None
    assert [r.status for r in status.history] == ["applied", "superseded", "superseded"]
    with pytest.raises(Conflict), project.transaction() as db:
        sharing.approve(db, "sam", "P", REASON)
    assert level(project) == "internal"


@pytest.mark.parametrize("down", ["internal", "private"])
def test_going_down_from_public_is_immediate(project: Depot, down: str) -> None:
    with project.transaction() as db:
        sharing.request_level(db, "olly", "P", "public")
        sharing.approve(db, "sam", "P", REASON)
        made = sharing.request_level(db, "olly", "P", down)
    assert (made.status, made.decided_by) == ("applied", "olly")
    assert level(project) == down
    assert events(project)[-1] == (
        "olly", "access_changed", {"access": ["public", down], "request": made.id}
    )  # fmt: skip


def test_private_and_internal_apply_at_once_and_asking_public_when_public_too(
    project: Depot,
) -> None:
    with project.transaction() as db:
        internal = sharing.request_level(db, "olly", "P", "internal")
        assert internal.status == "applied" and level_now(db) == "internal"
        sharing.request_level(db, "olly", "P", "public")
        sharing.approve(db, "sam", "P", REASON)
        again = sharing.request_level(db, "olly", "P", "public")
    assert again.status == "applied" and level(project) == "public"
    assert [a for _, a, _ in events(project)].count("access_changed") == 3


def level_now(db: Session) -> str:
    return find_project(db, "P").access


def test_bad_levels_projects_and_reasons_are_refused_with_nothing_written(
    project: Depot,
) -> None:
    for bad in ("everyone", "Public", "", "public; drop table projects"):
        refused = pytest.raises(Invalid, match="private, internal, public")
        with refused, project.transaction() as db:
            sharing.request_level(db, "olly", "P", bad)
    with pytest.raises(NotFound, match="Nope"), project.transaction() as db:
        sharing.request_level(db, "olly", "Nope", "internal")
    with pytest.raises(NotFound), project.reading() as db:
        sharing.sharing_status(db, "Nope")
    with pytest.raises(Invalid, match="4000"), project.transaction() as db:
        sharing.request_level(db, "olly", "P", "public", "y" * 4001)
    with project.reading() as db:
        assert sharing.sharing_status(db, "P").history == ()
    assert events(project) == []


class TestSetProjectAccess:
    """`accounts.set_project_access`: the direct setting, for the operator and test setup."""

    def test_public_without_a_stewards_approval_is_refused(self, project: Depot) -> None:
        with pytest.raises(Denied, match="steward"), project.transaction() as db:
            accounts.set_project_access(db, "olly", "P", "public")
        assert level(project) == "private" and events(project) == []

    def test_public_with_an_approver_records_the_approval(self, project: Depot) -> None:
        with project.transaction() as db:
            assert accounts.set_project_access(db, "cli:me", "P", "public", "cli:me") == "public"
            status = sharing.sharing_status(db, "P")
        assert status.level == "public"
        [made] = status.history
        assert (made.status, made.requested_by, made.decided_by) == ("applied", "cli:me", "cli:me")
        assert made.decision_reason  # a decision always has its reason
        assert [a for _, a, _ in events(project)] == [
            "sharing_requested",
            "sharing_approved",
            "access_changed",
        ]

    def test_other_levels_apply_through_the_same_history(self, project: Depot) -> None:
        with project.transaction() as db:
            accounts.set_project_access(db, "ada", "P", "internal")
            with pytest.raises(Invalid, match="private, internal"):
                accounts.set_project_access(db, "ada", "P", "everyone")
            assert [r.status for r in sharing.sharing_status(db, "P").history] == ["applied"]
        assert level(project) == "internal"
