"""The CLI as a user runs it: a real subprocess on a real depot, SQLite and PostgreSQL."""

import hashlib
import json
from pathlib import Path

from tests.cli.conftest import CliResult, Run


def assert_one_line_error(result: CliResult, code: int, *fragments: str) -> None:
    assert result.code == code, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.err + result.out
    for fragment in fragments:
        assert fragment in lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_study_is_built_fetched_checked_and_deleted(cli: Run, tmp_path: Path) -> None:
    assert cli("init").code == 0
    assert cli("project", "create", "P1", "--name", "Pilot").code == 0
    assert cli("subject", "create", "P1/sub01").code == 0
    assert (
        cli("session", "create", "P1/sub01/ses01", "--modality", "mr", "--date", "2024-05-01").code
        == 0
    )
    assert cli("scan", "create", "P1/sub01/ses01/4", "--type", "T1w", "--modality", "MR").code == 0

    upload = tmp_path / "upload"
    (upload / "series" / "deep").mkdir(parents=True)
    (upload / "series" / "a.dcm").write_bytes(b"A" * 5000)
    (upload / "series" / "deep" / "b.dcm").write_bytes(b"B" * 7000)
    (upload / "notes.txt").write_text("scanned fine\n")
    added = cli("resource", "add", "P1/sub01/ses01/4", "DICOM", str(upload / "series"), "--json")
    assert added.code == 0, added.err
    assert sorted(f["file"]["path"] for f in json.loads(added.out)) == [
        "series/a.dcm",
        "series/deep/b.dcm",
    ]
    assert cli("resource", "add", "P1", "notes", str(upload / "notes.txt")).code == 0

    listed = json.loads(cli("resource", "list", "P1/sub01/ses01/4", "--json").out)
    assert [(r["label"], r["file_count"], r["total_size"]) for r in listed] == [("DICOM", 2, 12000)]
    sessions = json.loads(cli("session", "list", "P1/sub01", "--json").out)
    assert sessions[0]["modality"] == "MR" and sessions[0]["acquired_on"] == "2024-05-01"

    out = tmp_path / "out"
    got = cli("resource", "get", "P1/sub01/ses01/4", "DICOM", "-o", str(out))
    assert got.code == 0, got.err
    assert sha256(out / "series" / "deep" / "b.dcm") == sha256(upload / "series" / "deep" / "b.dcm")
    single = tmp_path / "notes-copy.txt"
    assert cli("resource", "get", "P1", "notes", "notes.txt", "-o", str(single)).code == 0
    assert single.read_text() == "scanned fine\n"

    assert cli("fsck").code == 0

    refused = cli("project", "delete", "P1")
    assert_one_line_error(refused, 4, "--force")
    assert json.loads(cli("project", "list", "--json").out)[0]["label"] == "P1"
    assert cli("project", "delete", "P1", "--force").code == 0
    assert json.loads(cli("project", "list", "--json").out) == []
    checked = cli("fsck", "--json")
    assert checked.code == 0
    assert json.loads(checked.out)["checked_blobs"] == 0


def test_resending_the_same_files_stores_nothing_new(cli: Run, tmp_path: Path) -> None:
    cli("init")
    cli("project", "create", "P1")
    source = tmp_path / "data.bin"
    source.write_bytes(b"x" * 100_000)
    first = json.loads(cli("resource", "add", "P1", "raw", str(source), "--json").out)
    again = json.loads(cli("resource", "add", "P1", "raw", str(source), "--json").out)
    assert first[0]["outcome"] == "created"
    assert again[0]["outcome"] == "unchanged"
    blobs = [p for p in (tmp_path / "depot" / "blobs" / "sha256").rglob("*") if p.is_file()]
    assert len(blobs) == 1


def test_changed_content_under_the_same_name_needs_overwrite(cli: Run, tmp_path: Path) -> None:
    cli("init")
    cli("project", "create", "P1")
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n")
    cli("resource", "add", "P1", "tables", str(source))
    source.write_text("a,b\n1,3\n")
    assert_one_line_error(cli("resource", "add", "P1", "tables", str(source)), 4, "overwrite")
    kept = tmp_path / "kept.csv"
    cli("resource", "get", "P1", "tables", "data.csv", "-o", str(kept))
    assert kept.read_text() == "a,b\n1,2\n"
    assert cli("resource", "add", "P1", "tables", str(source), "--overwrite").code == 0
    assert cli("fsck").code == 0, "the replaced content must not stay behind as an orphan"


def test_bad_input_gives_one_clear_line_and_changes_nothing(cli: Run, tmp_path: Path) -> None:
    cli("init")
    cli("project", "create", "P1")
    before = cli("project", "list", "--json").out

    assert_one_line_error(cli("project", "create", "P1"), 4, "already exists")
    assert_one_line_error(cli("project", "create", "bad label!"), 2, "letters, digits")
    assert_one_line_error(cli("subject", "create", "NOPE/sub01"), 3, "NOPE")
    assert_one_line_error(cli("session", "create", "P1/ghost/ses01"), 3, "ghost")
    assert_one_line_error(
        cli("session", "create", "P1/sub01/x", "--date", "May 1"), 2, "YYYY-MM-DD"
    )
    missing = tmp_path / "no-such-file.dcm"
    present = tmp_path / "present.dcm"
    present.write_bytes(b"data")
    result = cli("resource", "add", "P1", "DICOM", str(present), str(missing))
    assert_one_line_error(result, 2, str(missing))
    assert json.loads(cli("resource", "list", "P1", "--json").out) == []
    assert cli("project", "list", "--json").out == before


def test_a_folder_that_is_not_a_depot_is_refused(cli: Run, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("project", "list", root=elsewhere)
    assert_one_line_error(result, 6, "not a neurodepot depot", "neurodepot init")
    assert list(elsewhere.iterdir()) == []


def test_an_unreachable_database_is_reported_and_nothing_is_created(
    cli: Run, tmp_path: Path
) -> None:
    unreachable = {"NEURODEPOT_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    result = cli("init", extra_env=unreachable)
    assert_one_line_error(result, 6, "cannot reach the database", "NEURODEPOT_DATABASE_URL")
    assert not (tmp_path / "depot").exists()


def test_init_refuses_an_existing_depot_or_a_non_empty_folder(cli: Run, tmp_path: Path) -> None:
    assert cli("init").code == 0
    assert_one_line_error(cli("init"), 4, "already a depot")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.docx").write_text("precious")
    assert_one_line_error(cli("init", str(busy)), 4, "not empty")
    assert [p.name for p in busy.iterdir()] == ["thesis.docx"]


def test_fsck_exits_non_zero_on_a_flipped_byte(cli: Run, tmp_path: Path) -> None:
    cli("init")
    cli("project", "create", "P1")
    source = tmp_path / "scan.nii"
    source.write_bytes(bytes(range(256)) * 100)
    cli("resource", "add", "P1", "NIFTI", str(source))
    blob = next(p for p in (tmp_path / "depot" / "blobs" / "sha256").rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[1234] ^= 0x01
    blob.write_bytes(bytes(data))
    result = cli("fsck")
    assert result.code == 1
    assert "corrupt" in result.out
    fetched = cli("resource", "get", "P1", "NIFTI", "scan.nii", "-o", str(tmp_path / "copy.nii"))
    assert_one_line_error(fetched, 4, "corrupt")
    assert not (tmp_path / "copy.nii").exists()


def test_demo_builds_the_example_project_once(cli: Run) -> None:
    first = cli("demo", "--no-serve")
    assert first.code == 0, first.err
    assert "4 file(s) added" in first.out
    second = cli("demo", "--no-serve")
    assert "0 file(s) added, 4 already there" in second.out
    scans = json.loads(cli("scan", "list", "DEMO/sub01/sub01_MR1", "--json").out)
    assert [s["label"] for s in scans] == ["3"]
    assert cli("fsck").code == 0


def test_version_and_help_work_without_a_depot(cli: Run, tmp_path: Path) -> None:
    assert cli("--version", root=tmp_path).out.startswith("neurodepot ")
    helped = cli("--help", root=tmp_path)
    assert helped.code == 0
    for verb in ("init", "serve", "project", "resource", "fsck"):
        assert verb in helped.out
