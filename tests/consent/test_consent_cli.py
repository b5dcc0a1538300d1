"""`neurodepot consent set|show|withdraw|import`, run in process on the test's depot."""

from datetime import date, timedelta
from pathlib import Path

import pytest

from neurodepot.catalog.hierarchy import create_project, create_subject
from neurodepot.consent import records
from neurodepot.depot.folder import Depot
from tests.consent.conftest import Ran, RunCli

Result = Ran
Run = RunCli


@pytest.fixture
def centre(depot: Depot) -> Depot:
    with depot.transaction() as db:
        create_project(db, "P")
        create_subject(db, "P", "alice")
        create_subject(db, "P", "bob")
    return depot


@pytest.fixture
def neurodepot(centre: Depot, run_cli: RunCli) -> Run:
    """`neurodepot …` on the depot holding project P with subjects alice and bob."""
    return run_cli


def assert_error(result: Result, code: int, *fragments: str) -> None:
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_set_show_and_withdraw_keep_the_history(neurodepot: Run, centre: Depot) -> None:
    made = neurodepot(
        "consent", "set", "P", "alice", "open", "--form", "Form [A]", "--form-version", "2",
        "--given-on", "2024-01-15", "--restrictions", "no commercial use",
    )  # fmt: skip
    assert made.code == 0 and "alice in P: consent open" in made.text
    shown = neurodepot("consent", "show", "P", "--json").json()
    assert [(c["subject"], c["level"]) for c in shown] == [("alice", "open"), ("bob", "none")]
    table = neurodepot("consent", "show", "P")
    assert table.code == 0 and "Form [A]" in table.out and "none" in table.out

    gone = neurodepot("consent", "withdraw", "P", "alice", "--on", "2024-06-01", "--note", "mail")
    assert gone.code == 0, gone.err
    assert "alice in P: consent withdrawn on 2024-06-01" in gone.text
    assert "shared with no one and left out of every later export and release" in gone.text
    assert "Published releases that still contain alice: none" in gone.text

    one = neurodepot("consent", "show", "P", "alice", "--history", "--json").json()
    assert isinstance(one, dict)
    assert one["current"]["level"] == "withdrawn" and one["current"]["withdrawn_on"] == "2024-06-01"
    assert [h["level"] for h in one["history"]] == ["open", "withdrawn"]
    assert one["history"][0]["recorded_by"].startswith("cli:")
    people = neurodepot("consent", "show", "P", "alice", "--history")
    assert people.code == 0 and "History" in people.out and "Form [A]" in people.out

    again = neurodepot("consent", "set", "P", "alice", "internal", "--json").json()
    assert isinstance(again, dict) and again["level"] == "internal"
    with centre.reading() as db:
        levels = [h.level for h in records.consent_history(db, "P", "alice")]
    assert levels == ["open", "withdrawn", "internal"]
    assert neurodepot("audit", "verify").code == 0


def test_withdraw_as_json_lists_the_releases(neurodepot: Run) -> None:
    done = neurodepot("consent", "withdraw", "P", "bob", "--json").json()
    assert isinstance(done, dict) and done["releases"] == []
    assert done["withdrawal"]["level"] == "withdrawn"
    assert done["withdrawal"]["withdrawn_on"] == date.today().isoformat()


def test_bad_input_is_one_line_with_the_right_exit_code(neurodepot: Run, centre: Depot) -> None:
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    assert_error(neurodepot("consent", "set", "P", "alice", "yes"), 2, "none, internal, open")
    future = neurodepot("consent", "set", "P", "alice", "open", "--given-on", tomorrow)
    assert_error(future, 2, "--given-on", "future")
    assert_error(neurodepot("consent", "set", "P", "alice", "open", "--given-on", "1/2/24"), 2,
                 "YYYY-MM-DD")  # fmt: skip
    assert_error(neurodepot("consent", "set", "P", "alice", "open", "--form", "\x1b[2J"), 2,
                 "control characters")  # fmt: skip
    assert_error(neurodepot("consent", "withdraw", "P", "alice", "--on", tomorrow), 2, "future")
    assert_error(neurodepot("consent", "set", "P", "dave", "open"), 3, "'dave'")
    assert_error(neurodepot("consent", "show", "Q"), 3, "'Q'")
    assert_error(neurodepot("consent", "show", "P", "--history"), 2, "one subject")
    with centre.reading() as db:
        assert records.consent_history(db, "P", "alice") == []


def test_import_records_a_good_file(neurodepot: Run, tmp_path: Path) -> None:
    csv = tmp_path / "consent.csv"
    csv.write_text("subject;level;given_on;withdrawn_on\nalice;open;2024-01-15;\n"
                   "bob;internal;2024-01-16;2024-03-01\n")  # fmt: skip
    done = neurodepot("consent", "import", "P", str(csv))
    assert done.code == 0, done.err
    assert "Imported 3 consent record(s) for 2 subject(s) of P (1 withdrawal(s)" in done.text
    shown = neurodepot("consent", "show", "P", "--json").json()
    assert [(c["subject"], c["level"]) for c in shown] == [("alice", "open"), ("bob", "withdrawn")]


def test_import_with_a_bad_line_imports_nothing_and_names_the_line(
    neurodepot: Run, tmp_path: Path, centre: Depot
) -> None:
    csv = tmp_path / "consent.csv"
    csv.write_text("subject,level\nalice,open\nbob,opne\ndave,open\n")
    refused = neurodepot("consent", "import", "P", str(csv))
    assert_error(refused, 2, "line 3: level 'opne'", "line 4: no subject 'dave'", "nothing")
    with centre.reading() as db:
        assert records.levels_by_label(db, "P") == {"alice": "none", "bob": "none"}
    csv.write_text("subject,level\nalice,open\nbob,open\ndave,open\n")
    created = neurodepot("consent", "import", "P", str(csv), "--create-subjects", "--json").json()
    assert isinstance(created, dict)
    assert created["created_subjects"] == ["dave"] and created["records"] == 3
    assert_error(neurodepot("consent", "import", "P", str(tmp_path / "none.csv")), 2,
                 "cannot read")  # fmt: skip
