"""`neurodepot import`, `neurodepot prearchive …` and `project archive-mode`, as a user runs them.

Each call is a real subprocess (about two seconds each), so these run on SQLite only: the
commands call the same domain functions the other tests here run on both databases.
"""

import json
from pathlib import Path

import pytest

from neurodepot.catalog.hierarchy import find_project
from neurodepot.depot.folder import Depot
from neurodepot.ingest.bulk import import_dicom
from neurodepot.ingest.prearchive import list_studies
from neurodepot.ingest.receive import Override
from tests.cli.conftest import Run
from tests.cli.test_end_to_end import assert_one_line_error
from tests.ingest.conftest import DATE_SESSION, SQLITE_ONLY, DicomSource, assert_consistent

pytestmark = SQLITE_ONLY


def test_import_of_a_folder_prints_the_counts_and_exits_0(
    cli: Run, project: Depot, dicom_source: DicomSource
) -> None:
    result = cli("import", str(dicom_source.root), "--project", "P")
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if line]
    assert lines[0].startswith(f"{dicom_source.file_count} file(s), ")
    assert lines[0].endswith(
        ": 16 imported, 0 duplicate(s), 0 conflict(s), 10 not DICOM (skipped), 0 unreadable"
    )
    assert lines[1:] == [
        f"  archived to P/DEV/{DATE_SESSION}: 8 instance(s), 4 scan(s), 0 already there, "
        "0 conflict(s)",
        f"  archived to P/DEV/{DATE_SESSION}_2: 8 instance(s), 4 scan(s), 0 already there, "
        "0 conflict(s)",
    ]
    with project.reading() as db:
        assert [s.state for s in list_studies(db)] == ["archived", "archived"]


def test_import_with_an_unreadable_file_exits_1_and_names_it(
    cli: Run, project: Depot, dicom_source: DicomSource, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good, bad = dicom_source.siemens_files()
    (folder / good.name).write_bytes(good.read_bytes())
    (folder / "broken.dcm").write_bytes(bad.read_bytes()[:1000])
    result = cli("import", str(folder), "--project", "P")
    assert result.code == 1
    assert "Traceback" not in result.err
    assert "1 imported" in result.out and "1 unreadable" in result.out
    assert "  unreadable: broken.dcm: " in result.out
    assert f"archived to P/DEV/{DATE_SESSION}: 1 instance(s)" in result.out


def test_a_study_is_reviewed_moved_archived_and_another_deleted(
    cli: Run, project: Depot, dicom_source: DicomSource
) -> None:
    assert import_dicom(project, dicom_source.root, Override("P"), archive_after=False).studies == [
        1,
        2,
    ]
    listed = cli("prearchive", "list", "--state", "receiving", "--json")
    assert listed.code == 0, listed.err
    studies = json.loads(listed.out)
    assert [(s["id"], s["state"], s["session"], s["instance_count"]) for s in studies] == [
        (1, "receiving", DATE_SESSION, 8),
        (2, "receiving", DATE_SESSION, 8),
    ]
    assert studies[1]["study_instance_uid"] == dicom_source.siemens_study

    shown = cli("prearchive", "show", "2")
    assert shown.code == 0, shown.err
    assert f"destination: P/DEV/{DATE_SESSION}" in shown.out
    assert [line.split(" 1.3.12")[0] for line in shown.out.splitlines() if "series" in line] == [
        f"  series {n}: MR 2 instance(s)" for n in (3, 4, 5, 6)
    ]

    moved = cli("prearchive", "move", "2", "P", "--subject", "sub01", "--session", "ses01")
    assert moved.code == 0, moved.err
    assert moved.out.strip() == "Study 2 now goes to P/sub01/ses01 (ready)"

    archived = cli("prearchive", "archive", "2")
    assert archived.code == 0, archived.err
    assert archived.out.strip() == (
        "Archived study 2 to P/sub01/ses01: 8 instance(s) in 4 scan(s), 0 already there, "
        "0 conflict(s), 0 job(s) queued"
    )

    deleted = cli("prearchive", "delete", "1", "--yes")
    assert deleted.code == 0, deleted.err
    assert deleted.out.strip() == "Deleted prearchive study 1 (8 instance(s))"

    with project.reading() as db:
        assert [(s.id, s.state, s.archived_to) for s in list_studies(db)] == [
            (2, "archived", "P/sub01/ses01")
        ]
    assert_consistent(project)


def test_archive_mode_is_set_and_shown(cli: Run, project: Depot) -> None:
    result = cli("project", "archive-mode", "P", "review")
    assert (result.code, result.out.strip()) == (0, "P: archive mode review")
    with project.reading() as db:
        assert find_project(db, "P").auto_archive is False


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (("prearchive", "show", "99"), 3, ["prearchive study 99 does not exist"]),
        (("prearchive", "list", "--state", "bogus"), 2, ["'bogus'", "receiving"]),
        (("import", "{missing}", "--project", "P"), 2, ["{missing}", "does not exist"]),
        (("project", "archive-mode", "P", "sometimes"), 2, ["auto or review"]),
    ],
    ids=["unknown-study", "bad-state", "missing-path", "bad-mode"],
)
def test_errors_are_one_clear_line(
    cli: Run,
    project: Depot,
    tmp_path: Path,
    args: tuple[str, ...],
    code: int,
    fragments: list[str],
) -> None:
    missing = str(tmp_path / "no-such-folder")
    result = cli(*(arg.replace("{missing}", missing) for arg in args))
    assert_one_line_error(result, code, *(f.replace("{missing}", missing) for f in fragments))
