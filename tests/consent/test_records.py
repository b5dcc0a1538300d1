"""Consent records: a kept history, `none` by default, withdrawal effective, bad input refused."""

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import create_project, create_subject
from neurodepot.consent import records
from neurodepot.consent.models import ConsentRecord
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid, NotFound

TOMORROW = date.today() + timedelta(days=1)


@pytest.fixture
def people(depot: Depot) -> Depot:
    """Project P with subjects alice, bob and carol, none of them with a consent record."""
    with depot.transaction() as db:
        create_project(db, "P")
        for label in ("alice", "bob", "carol"):
            create_subject(db, "P", label)
    return depot


def _count(depot: Depot) -> int:
    with depot.reading() as db:
        return int(db.scalar(select(func.count()).select_from(ConsentRecord)) or 0)


def test_a_subject_without_a_record_has_none(people: Depot) -> None:
    with people.reading() as db:
        current = records.current_consent(db, "P", "alice")
        assert current.level == "none" and current.recorded_by == "" and current.given_on is None
        assert records.consent_history(db, "P", "alice") == []
        assert records.levels_by_label(db, "P") == {"alice": "none", "bob": "none", "carol": "none"}
        assert records.withdrawn_labels(db, "P") == set()


def test_history_is_kept_and_the_newest_record_is_current(people: Depot) -> None:
    with people.transaction() as db:
        records.set_consent(db, "ann", "P", "alice", "internal", "Form A", "1", date(2023, 5, 1))
        records.set_consent(
            db, "ben", "P", "alice", "open", "Form A", "2", date(2024, 2, 3), "no commercial use"
        )
        records.set_consent(db, "ann", "P", "bob", "internal")
    with people.reading() as db:
        history = records.consent_history(db, "P", "alice")
        assert [(h.level, h.form_version, h.recorded_by) for h in history] == [
            ("internal", "1", "ann"),
            ("open", "2", "ben"),
        ]
        current = records.current_consent(db, "P", "alice")
        assert current.level == "open" and current.restrictions == "no commercial use"
        assert current.given_on == date(2024, 2, 3) and current.recorded_at is not None
        assert records.levels_by_label(db, "P") == {
            "alice": "open",
            "bob": "internal",
            "carol": "none",
        }
        assert [c.subject for c in records.project_consents(db, "P")] == ["alice", "bob", "carol"]
        open_ids = set(db.scalars(records.subjects_with_consent(("open",))))
        internal_or_open = set(db.scalars(records.subjects_with_consent(("internal", "open"))))
        assert len(open_ids) == 1 and len(internal_or_open) == 2
        actions = list(db.scalars(select(AuditEvent.action).where(AuditEvent.target == "P/alice")))
        assert actions == ["consent_set", "consent_set"]


def test_withdrawal_is_the_effective_level_and_keeps_what_was_given(people: Depot) -> None:
    with people.transaction() as db:
        records.set_consent(db, "ann", "P", "alice", "open", "Form A", "2", date(2024, 1, 1))
        made = records.withdraw_consent(db, "ann", "P", "alice", date(2024, 6, 1), "by letter")
        records.withdraw_consent(db, "ann", "P", "bob")  # never consented: withdrawn all the same
    assert made.level == "withdrawn" and made.withdrawn_on == date(2024, 6, 1)
    assert made.form == "Form A" and made.restrictions == "by letter"
    with people.reading() as db:
        assert records.current_consent(db, "P", "alice").level == "withdrawn"
        assert records.current_consent(db, "P", "bob").withdrawn_on == date.today()
        assert records.withdrawn_labels(db, "P") == {"alice", "bob"}
        assert set(db.scalars(records.subjects_with_consent(("internal", "open")))) == set()
        assert len(set(db.scalars(records.withdrawn_subject_ids()))) == 2
        assert [h.level for h in records.consent_history(db, "P", "alice")] == ["open", "withdrawn"]
        assert records.releases_containing(db, "P", "alice") == []
        assert "consent_withdrawn" in set(db.scalars(select(AuditEvent.action)))


def test_consent_given_again_after_withdrawal_is_current_and_history_shows_both(
    people: Depot,
) -> None:
    with people.transaction() as db:
        records.set_consent(db, "ann", "P", "alice", "open")
        records.withdraw_consent(db, "ann", "P", "alice", date(2024, 6, 1))
        records.set_consent(db, "ann", "P", "alice", "internal", given_on=date(2024, 9, 1))
    with people.reading() as db:
        assert records.current_consent(db, "P", "alice").level == "internal"
        assert records.withdrawn_labels(db, "P") == set()
        levels = [h.level for h in records.consent_history(db, "P", "alice")]
        assert levels == ["open", "withdrawn", "internal"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda db: records.set_consent(db, "a", "P", "alice", "open", "", "", TOMORROW), "future"),
        (lambda db: records.withdraw_consent(db, "a", "P", "alice", TOMORROW), "future"),
        (lambda db: records.set_consent(db, "a", "P", "alice", "withdrawn"), "consent level"),
        (lambda db: records.set_consent(db, "a", "P", "alice", "OPEN"), "consent level"),
        (lambda db: records.set_consent(db, "a", "P", "alice", "open", "F\x1b[31m"), "control"),
        (lambda db: records.set_consent(db, "a", "P", "alice", "open", "F", "1\x00"), "control"),
        (
            lambda db: records.set_consent(db, "a", "P", "alice", "open", restrictions="x\x07"),
            "control",
        ),
        (lambda db: records.withdraw_consent(db, "a", "P", "alice", note="\r\x08"), "control"),
        (lambda db: records.set_consent(db, "a", "P", "alice", "open", "F" * 256), "at most 255"),
        (
            lambda db: records.set_consent(db, "a", "P", "alice", "open", restrictions="r" * 4001),
            "at most 4000",
        ),
    ],
)
def test_bad_consent_is_refused_and_nothing_recorded(
    people: Depot, change: Callable[[Session], object], fragment: str
) -> None:
    with pytest.raises(Invalid, match=fragment), people.transaction() as db:
        change(db)
    assert _count(people) == 0


def test_plain_text_with_tabs_and_newlines_is_kept_as_written(people: Depot) -> None:
    text = "no commercial use;\n\tno transfer outside the EU — «strict» [sic]"
    with people.transaction() as db:
        records.set_consent(db, "a", "P", "alice", "open", restrictions=text)
    with people.reading() as db:
        assert records.current_consent(db, "P", "alice").restrictions == text


def test_unknown_subject_or_project_is_not_found(people: Depot) -> None:
    with pytest.raises(NotFound, match="'dave'"), people.transaction() as db:
        records.set_consent(db, "a", "P", "dave", "open")
    with pytest.raises(NotFound, match="'Q'"), people.reading() as db:
        records.project_consents(db, "Q")
    with pytest.raises(NotFound), people.transaction() as db:
        records.withdraw_consent(db, "a", "P", "dave")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2024-13-01", "not a day"),
        ("2024-02-30", "not a day"),
        ("01/02/2024", "YYYY-MM-DD"),
        ("20240102", "YYYY-MM-DD"),
        ("2024-1-2", "YYYY-MM-DD"),
        ("", "YYYY-MM-DD"),
        (TOMORROW.isoformat(), "future"),
    ],
)
def test_dates_are_iso_days_not_in_the_future(value: str, fragment: str) -> None:
    with pytest.raises(Invalid, match=fragment):
        records.parse_date(value, "given_on")


def test_an_iso_day_is_read() -> None:
    assert records.parse_date(" 2024-02-29 ", "given_on") == date(2024, 2, 29)
    assert records.parse_date(date.today().isoformat(), "on") == date.today()
