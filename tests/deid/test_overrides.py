"""Stewards' overrides: stewards only, with a reason, per release, audited, revocable."""

import pytest
from sqlalchemy import select

from neurodepot.access import accounts
from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import create_project
from neurodepot.deid.check import Criterion
from neurodepot.deid.overrides import (
    active_overrides,
    add_override,
    list_overrides,
    revoke_override,
)
from neurodepot.depot.folder import Depot
from neurodepot.errors import Denied, Invalid, NotFound

REASON = "Faces are blurred by the scanner's own reconstruction; verified by hand."


@pytest.fixture
def project(depot: Depot) -> str:
    with depot.transaction() as db:
        create_project(db, "P")
        for name, steward in (("sam", True), ("rob", False)):
            accounts.add_user(db, "cli:admin", name, f"{name}@example.org", name.title())
            accounts.set_status(db, "cli:admin", name, "active")
            if steward:
                accounts.set_site_role(db, "cli:admin", name, "steward")
    return "P"


def test_a_steward_overrides_one_criterion_for_one_release(depot: Depot, project: str) -> None:
    with depot.transaction() as db:
        made = add_override(db, project, "deid-face", REASON, "sam", "cli:x", release="1.0.0")
    assert made.criterion == "DEID-FACE"
    with depot.reading() as db:
        assert active_overrides(db, project, "1.0.0") == {Criterion.FACE: f"{REASON} (sam)"}
        assert active_overrides(db, project, "1.1.0") == {}
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "check_overridden")).one()
    assert event.note == REASON and event.detail["steward"] == "sam"
    with depot.transaction() as db:
        revoke_override(db, project, made.id, "cli:x")
    with depot.reading() as db:
        assert active_overrides(db, project, "1.0.0") == {}
        assert list_overrides(db, project)[0].revoked_at is not None


@pytest.mark.parametrize(
    ("criterion", "reason", "steward", "error"),
    [
        ("DEID-FACE", REASON, "rob", Denied),  # not a steward
        ("DEID-FACE", REASON, "nobody", Denied),
        ("DEID-FACE", "ok", "sam", Invalid),  # no real reason
        ("DEID-EVERYTHING", REASON, "sam", Invalid),
    ],
)
def test_overrides_are_refused_without_a_steward_a_reason_or_a_known_criterion(
    depot: Depot, project: str, criterion: str, reason: str, steward: str, error: type
) -> None:
    with pytest.raises(error), depot.transaction() as db:
        add_override(db, project, criterion, reason, steward, "cli:x")
    with depot.reading() as db:
        assert list_overrides(db, project) == []


def test_revoking_an_unknown_override_is_not_found(depot: Depot, project: str) -> None:
    with pytest.raises(NotFound), depot.transaction() as db:
        revoke_override(db, project, 99, "cli:x")
