"""Importing a consent CSV: every line checked, errors naming the lines, all of it or nothing."""

import io
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import create_project, create_subject, list_subjects
from neurodepot.consent import csv_import, records
from neurodepot.consent.csv_import import ImportSummary, import_consent_csv
from neurodepot.consent.models import ConsentRecord
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid, NotFound

TOMORROW = (date.today() + timedelta(days=1)).isoformat()
GOOD = (
    "subject,level,form,form_version,given_on,restrictions,withdrawn_on\n"
    "alice,open,Consent form A,2,2024-01-15,no commercial use,\n"
    "bob,internal,Consent form A,2,2024-02-01,,\n"
    'carol,open,"Form B, adults",1,2023-11-30,"no transfer; EU only",2024-06-01\n'
)


@pytest.fixture
def centre(depot: Depot) -> Depot:
    """Project P with subjects alice, bob and carol, without consent records."""
    with depot.transaction() as db:
        create_project(db, "P")
        for label in ("alice", "bob", "carol"):
            create_subject(db, "P", label)
    return depot


def _import(depot: Depot, text: str | bytes, create_subjects: bool = False) -> ImportSummary:
    source = text.encode() if isinstance(text, str) else text
    with depot.transaction() as db:
        return import_consent_csv(db, "ann", "P", source, create_subjects)


def _refused(depot: Depot, text: str | bytes, create_subjects: bool = False) -> str:
    """The message of the refusal; checks that nothing at all was stored."""
    with depot.reading() as db:
        subjects_before = len(list_subjects(db, "P"))
    with pytest.raises(Invalid) as refused:
        _import(depot, text, create_subjects)
    with depot.reading() as db:
        assert db.scalar(select(func.count()).select_from(ConsentRecord)) == 0
        assert len(list_subjects(db, "P")) == subjects_before
        assert "consent_imported" not in set(db.scalars(select(AuditEvent.action)))
    return refused.value.message


def test_a_good_file_records_every_line_and_withdrawals(centre: Depot) -> None:
    summary = _import(centre, GOOD)
    assert summary == ImportSummary("P", rows=3, records=4, withdrawals=1, subjects=3,
                                    created_subjects=())  # fmt: skip
    with centre.reading() as db:
        alice = records.current_consent(db, "P", "alice")
        assert (alice.level, alice.form, alice.form_version) == ("open", "Consent form A", "2")
        assert alice.given_on == date(2024, 1, 15) and alice.restrictions == "no commercial use"
        assert alice.recorded_by == "ann"
        assert records.current_consent(db, "P", "bob").level == "internal"
        carol = records.consent_history(db, "P", "carol")
        assert [c.level for c in carol] == ["open", "withdrawn"]
        assert carol[0].form == "Form B, adults" and carol[0].restrictions == "no transfer; EU only"
        assert carol[1].withdrawn_on == date(2024, 6, 1)
        assert records.withdrawn_labels(db, "P") == {"carol"}
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "consent_imported")).one()
        assert event.target == "P" and event.actor == "ann"
        assert "alice" not in str(event.detail) and "commercial" not in str(event.detail)


def test_one_bad_line_imports_nothing_and_the_error_names_the_line(centre: Depot) -> None:
    bad = GOOD.replace("bob,internal,", "bob,opne,")
    message = _refused(centre, bad)
    assert "line 3:" in message and "'opne'" in message and "nothing was recorded" in message
    assert "line 2" not in message and "line 4" not in message


def test_several_bad_lines_are_all_named(centre: Depot) -> None:
    text = (
        "subject,level,given_on,withdrawn_on\n"
        "alice,open,2024-01-15,\n"  # line 2: good
        ",open,,\n"  # line 3: no subject
        "bob,,,\n"  # line 4: no level
        f"carol,open,{TOMORROW},\n"  # line 5: future
        "alice,open,15/01/2024,\n"  # line 6: not ISO
        "bob,open,2024-05-01,2024-04-01\n"  # line 7: withdrawn before given
        "carol,withdrawn,,\n"  # line 8: withdrawn is not a level
        "alice,open,2024-02-30,\n"  # line 9: not a day
        "bob,open,,,extra\n"  # line 10: too many values
    )
    message = _refused(centre, text)
    assert "8 line(s) to fix" in message
    for line, fragment in [
        (3, "no subject"),
        (4, "no level"),
        (5, "future"),
        (6, "YYYY-MM-DD"),
        (7, "before given_on"),
        (8, "'withdrawn' is not a consent level"),
        (9, "not a day"),
        (10, "5 value(s)"),
    ]:
        assert f"line {line}: " in message and fragment in message
    assert "line 2:" not in message


def test_only_the_first_twenty_bad_lines_are_listed(centre: Depot) -> None:
    text = "subject,level\n" + "alice,maybe\n" * 25
    message = _refused(centre, text)
    assert "25 line(s) to fix" in message and "line 21:" in message and "line 22:" not in message
    assert "(and 5 more)" in message


def test_an_unknown_subject_is_an_error_suggesting_to_create_it(centre: Depot) -> None:
    message = _refused(centre, "subject,level\nalice,open\ndave,open\n")
    assert "line 3: no subject 'dave'" in message and "--create-subjects" in message


def test_create_subjects_creates_the_missing_ones(centre: Depot) -> None:
    summary = _import(centre, "subject,level\nalice,open\ndave,internal\nerin,open\n", True)
    assert summary.created_subjects == ("dave", "erin") and summary.records == 3
    with centre.reading() as db:
        assert [s.label for s in list_subjects(db, "P")] == ["alice", "bob", "carol", "dave",
                                                             "erin"]  # fmt: skip
        assert records.current_consent(db, "P", "dave").level == "internal"


def test_create_subjects_still_refuses_a_label_that_is_not_valid(centre: Depot) -> None:
    message = _refused(centre, "subject,level\nnew one,open\n../x,open\n", True)
    assert "line 2: subject label 'new one' is not valid" in message
    assert "line 3: subject label '../x'" in message


def test_a_byte_order_mark_semicolons_and_loose_header_names_are_read(centre: Depot) -> None:
    text = "\ufeffSubject;LEVEL;Given On;Form-Version\r\nalice;Open;2024-01-15;3\r\nbob;none;;\r\n"
    summary = _import(centre, text.encode("utf-8"))
    assert summary.rows == 2
    with centre.reading() as db:
        alice = records.current_consent(db, "P", "alice")
        assert alice.level == "open" and alice.form_version == "3"
        assert alice.given_on == date(2024, 1, 15)
        assert records.current_consent(db, "P", "bob").level == "none"


def test_line_numbers_count_lines_of_the_file_across_quoted_newlines_and_blanks(
    centre: Depot,
) -> None:
    text = (
        "subject,level,restrictions\n"
        'alice,open,"no commercial use,\nno transfer"\n'  # lines 2-3
        "\n"  # line 4: blank, skipped
        ",,\n"  # line 5: empty values, skipped
        "bob,sometimes,\n"  # line 6
    )
    message = _refused(centre, text)
    assert "1 line(s) to fix: line 6: level 'sometimes'" in message


def test_a_subject_on_several_lines_keeps_them_in_order(centre: Depot) -> None:
    text = (
        "subject,level,given_on,withdrawn_on\n"
        "alice,open,2023-01-01,2023-06-01\n"
        "alice,internal,2024-01-01,\n"
    )
    assert _import(centre, text).records == 3
    with centre.reading() as db:
        history = records.consent_history(db, "P", "alice")
        assert [h.level for h in history] == ["open", "withdrawn", "internal"]
        assert records.current_consent(db, "P", "alice").level == "internal"


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("subject,form\n", "no column 'level'"),
        ("level\n", "no column 'subject'"),
        ("subject,level,consent_date\n", "unknown column(s) 'consent_date'"),
        ("subject,level,level\n", "given twice: level"),
    ],
)
def test_a_header_without_required_or_with_unknown_columns_is_refused(
    centre: Depot, header: str, fragment: str
) -> None:
    message = _refused(centre, header + "alice,open,x\n")
    assert message.startswith("line 1 (the header)") and fragment in message
    assert "subject, level, form" in message


@pytest.mark.parametrize("text", [b"", b"\xef\xbb\xbf", b"\n\n"])
def test_an_empty_file_is_refused(centre: Depot, text: bytes) -> None:
    assert "empty" in _refused(centre, text)


def test_a_header_without_rows_is_refused(centre: Depot) -> None:
    assert "no rows" in _refused(centre, "subject,level\n\n")


def test_text_that_is_not_utf8_is_refused_naming_the_line(centre: Depot) -> None:
    text = "subject,level,form\nalice,open,Einverständnis\n".encode("latin-1")
    assert "line 2: not UTF-8" in _refused(centre, text)


def test_hostile_text_is_refused_per_line_and_shown_escaped(centre: Depot) -> None:
    text = (
        "subject,level,form,restrictions\n"
        "alice,open,\x1b[2J,\n"
        "bob,open,,\x00\x07\n"
        f"carol,open,{'F' * 300},\n"
        "\x1b]0;pwn\x07,open,,\n"
    )
    message = _refused(centre, text)
    assert "line 2: form contains control characters" in message
    assert "line 3: restrictions contains control characters" in message
    assert "line 4: form is 300 characters" in message
    assert "line 5: no subject '\\x1b]0;pwn\\x07'" in message
    assert "\x1b" not in message and "\x00" not in message


def test_a_file_over_the_size_limit_is_refused(
    centre: Depot, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = f"alice,open,2024-01-15,{'r' * 200}\n"  # fewer rows than the row limit
    rows = csv_import.MAX_BYTES // len(line) + 1
    big = ("subject,level,given_on,restrictions\n" + line * rows).encode()
    assert len(big) > csv_import.MAX_BYTES
    assert "over 10 MB" in _refused(centre, big)
    monkeypatch.setattr(csv_import, "MAX_BYTES", 100)
    assert "over" in _refused(centre, "subject,level\n" + "alice,open\n" * 10)
    assert _import(centre, "subject,level\n" + "alice,open\n" * 5).rows == 5


def test_a_file_over_the_row_limit_is_refused(
    centre: Depot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_import, "MAX_ROWS", 3)
    assert "more than 3 rows" in _refused(centre, "subject,level\n" + "alice,open\n" * 4)
    assert _import(centre, "subject,level\n" + "alice,open\n" * 3).rows == 3


def test_binary_and_text_streams_are_read_too(centre: Depot) -> None:
    with centre.transaction() as db:
        from_bytes = import_consent_csv(db, "ann", "P", io.BytesIO(b"subject,level\nalice,open\n"))
        from_text = import_consent_csv(db, "ann", "P", io.StringIO("subject;level\nbob;internal\n"))
    assert from_bytes.rows == from_text.rows == 1
    with centre.reading() as db:
        assert records.levels_by_label(db, "P") == {"alice": "open", "bob": "internal",
                                                    "carol": "none"}  # fmt: skip


def test_an_unknown_project_is_not_found(centre: Depot) -> None:
    with pytest.raises(NotFound, match="'Q'"), centre.transaction() as db:
        import_consent_csv(db, "ann", "Q", b"subject,level\nalice,open\n")
