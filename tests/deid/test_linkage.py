"""Pseudonyms, date offsets and the linkage table: random, stable, owners' only, destroyable."""

import re

import pytest
from sqlalchemy import func, select

from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import create_project, create_session, create_subject
from neurodepot.deid import linkage
from neurodepot.deid.models import DeidSettings, SessionPseudonym, SubjectPseudonym
from neurodepot.deid.profile import ProfileOption
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict, Invalid, NotFound

PSEUDONYM = re.compile(r"^[0-9A-HJKMNP-TV-Z]{8}$")


@pytest.fixture
def project(depot: Depot) -> str:
    with depot.transaction() as db:
        create_project(db, "P")
        for subject in ("alice", "bob"):
            create_subject(db, "P", subject)
            create_session(db, "P", subject, f"{subject}_mr1")
    return "P"


def audit_count(depot: Depot, action: str) -> int:
    with depot.reading() as db:
        return db.scalar(select(func.count()).where(AuditEvent.action == action)) or 0


def test_a_subject_gets_a_random_pseudonym_and_offset_that_stay(depot: Depot, project: str) -> None:
    with depot.transaction() as db:
        first = linkage.subject_link(db, project, "alice")
        other = linkage.subject_link(db, project, "bob")
    with depot.transaction() as db:
        again = linkage.subject_link(db, project, "alice")
    assert PSEUDONYM.match(first.pseudonym) and PSEUDONYM.match(other.pseudonym)
    assert first.pseudonym != other.pseudonym
    assert again == first
    assert "alice" not in first.pseudonym.lower()
    low = -(linkage.MIN_OFFSET_DAYS + linkage.OFFSET_SPAN_DAYS)
    assert low < first.date_offset_days <= -linkage.MIN_OFFSET_DAYS


def test_the_same_label_in_another_project_gets_another_pseudonym(depot: Depot) -> None:
    with depot.transaction() as db:
        for label in ("A", "B"):
            create_project(db, label)
            create_subject(db, label, "same")
        a = linkage.subject_link(db, "A", "same")
        b = linkage.subject_link(db, "B", "same")
    # 40 random bits each: equal only by a one-in-a-trillion accident.
    assert a.pseudonym != b.pseudonym


def test_sessions_get_their_own_pseudonyms(depot: Depot, project: str) -> None:
    with depot.transaction() as db:
        one = linkage.session_pseudonym(db, project, "alice", "alice_mr1")
        two = linkage.session_pseudonym(db, project, "bob", "bob_mr1")
        assert linkage.session_pseudonym(db, project, "alice", "alice_mr1") == one
    assert PSEUDONYM.match(one) and one != two


def test_draws_are_not_derived_from_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = {linkage.draw_pseudonym() for _ in range(200)}
    assert len(drawn) == 200
    assert all(PSEUDONYM.match(p) for p in drawn)


def test_a_clash_is_drawn_again_and_an_exhausted_space_is_refused(
    depot: Depot, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with depot.transaction() as db:
        taken = linkage.subject_link(db, project, "alice").pseudonym
    draws = iter([taken, taken, "ZZZZZZZZ"])
    monkeypatch.setattr(linkage, "draw_pseudonym", lambda: next(draws))
    with depot.transaction() as db:
        assert linkage.subject_link(db, project, "bob").pseudonym == "ZZZZZZZZ"
    monkeypatch.setattr(linkage, "draw_pseudonym", lambda: taken)
    with depot.transaction() as db:
        create_subject(db, project, "carol")
    with pytest.raises(Conflict, match="exhausted"), depot.transaction() as db:
        linkage.subject_link(db, project, "carol")


def test_reading_the_linkage_is_audited(depot: Depot, project: str) -> None:
    with depot.transaction() as db:
        alice = linkage.subject_link(db, project, "alice")
        session = linkage.session_pseudonym(db, project, "alice", "alice_mr1")
    with depot.transaction() as db:
        rows = linkage.read_linkage(db, project, "cli:owner")
    assert {(r.subject, r.session, r.pseudonym) for r in rows} == {
        ("alice", None, alice.pseudonym),
        ("alice", "alice_mr1", session),
    }
    assert audit_count(depot, "linkage_read") == 1


def test_destroying_the_linkage_removes_it_for_good(depot: Depot, project: str) -> None:
    with depot.transaction() as db:
        linkage.subject_link(db, project, "alice")
        linkage.session_pseudonym(db, project, "alice", "alice_mr1")
        assert linkage.uid_key(db, project)
    with depot.transaction() as db:
        assert linkage.destroy_linkage(db, project, "cli:owner") == 2
    with depot.reading() as db:
        assert db.scalar(select(func.count()).select_from(SubjectPseudonym)) == 0
        assert db.scalar(select(func.count()).select_from(SessionPseudonym)) == 0
        settings = db.scalars(select(DeidSettings)).one()
        assert settings.uid_key is None and settings.linkage_destroyed_at is not None
    assert audit_count(depot, "linkage_destroyed") == 1
    with pytest.raises(Conflict, match="destroyed"), depot.transaction() as db:
        linkage.subject_link(db, project, "bob")
    with pytest.raises(Conflict, match="destroyed"), depot.transaction() as db:
        linkage.uid_key(db, project)
    with pytest.raises(Conflict, match="already destroyed"), depot.transaction() as db:
        linkage.destroy_linkage(db, project, "cli:owner")


def test_settings_default_then_change_and_refuse_bad_values(depot: Depot, project: str) -> None:
    with depot.reading() as db:
        config = linkage.project_config(db, project)
    assert config.options == linkage.DEFAULT_OPTIONS and config.uid_root == "2.25"
    with depot.transaction() as db:
        changed = linkage.configure(
            db,
            project,
            "cli:owner",
            options=["clean-descriptors", "retain-safe-private"],
            uid_root="1.2.826.0.1.3680043.10.1234",
            private_allow=["SIEMENS CSA HEADER:0x10"],
        )
    assert changed.options == {ProfileOption.CLEAN_DESCRIPTORS, ProfileOption.RETAIN_SAFE_PRIVATE}
    assert changed.private_allow == {("SIEMENS CSA HEADER", 0x10)}
    with depot.reading() as db:
        assert linkage.project_config(db, project) == changed
    assert audit_count(depot, "deid_settings_changed") == 1
    for bad in (
        {"options": ["retain-everything"]},
        {"uid_root": "1.02.3"},
        {"uid_root": "not a uid"},
        {"private_allow": ["SIEMENS CSA HEADER"]},
        {"private_allow": ["X:0x05"]},
    ):
        with pytest.raises(Invalid), depot.transaction() as db:
            linkage.configure(db, project, "cli:owner", **bad)  # type: ignore[arg-type]
    with pytest.raises(NotFound), depot.transaction() as db:
        linkage.configure(db, "nope", "cli:owner", options=[])
