"""`neurodepot gdpr`, run in process: export, erase (confirmed), retention, processing."""

import json
import zipfile
from pathlib import Path

import pytest

from neurodepot.catalog.hierarchy import create_project, create_session, create_subject
from neurodepot.depot.folder import Depot
from tests.consent.conftest import Ran, RunCli
from tests.consent.test_subject_export import build_tree

Cli = RunCli


@pytest.fixture
def cli(run_cli: RunCli) -> Cli:
    return run_cli


@pytest.fixture
def held(depot: Depot) -> Depot:
    build_tree(depot)
    return depot


def one_line_error(ran: Ran, code: int, text: str) -> None:
    assert ran.code == code, (ran.out, ran.err)
    assert ran.err.startswith("error: ") and ran.err.count("\n") == 1
    assert text in ran.err
    assert "Traceback" not in ran.err


class TestExport:
    def test_writes_the_zip_and_says_what_it_holds(
        self, held: Depot, cli: Cli, tmp_path: Path
    ) -> None:
        out = tmp_path / "s01.zip"
        ran = cli("gdpr", "export", "P", "S01", str(out))
        assert ran.code == 0, ran.err
        assert "Wrote 6 file(s)" in ran.text and "about P/S01 to" in ran.text
        with zipfile.ZipFile(out) as archive:
            assert "P-S01/files/resources/beh/scores.csv" in archive.namelist()

        again = cli("gdpr", "export", "P", "S01", str(tmp_path / "again.zip"), "--json")
        assert again.code == 0
        shown = json.loads(again.out)
        assert (shown["files"], shown["subject"]) == (6, "S01")

    def test_refusals_are_one_line_with_the_exit_code(
        self, held: Depot, cli: Cli, tmp_path: Path
    ) -> None:
        taken = tmp_path / "taken.zip"
        taken.write_bytes(b"mine")
        one_line_error(cli("gdpr", "export", "P", "S01", str(taken)), 4, "already exists")
        one_line_error(cli("gdpr", "export", "P", "S99", str(tmp_path / "x.zip")), 3, "'S99'")
        assert taken.read_bytes() == b"mine"


class TestErase:
    def test_without_confirm_it_says_what_would_go_and_how_to_confirm(
        self, held: Depot, cli: Cli
    ) -> None:
        ran = cli("gdpr", "erase", "P", "S01")
        assert ran.code == 1
        for part in ("Erasing P/S01 would remove:", "1 sessions", "6 files", "2 consent records",
                     "1 jobs", "1 prearchive studies", "3 stored content(s) only it uses",
                     "Nothing was erased",
                     "neurodepot gdpr erase P S01 --confirm S01"):  # fmt: skip
            assert part in ran.text
        plan = cli("gdpr", "erase", "P", "S01", "--json")
        assert plan.code == 1
        shown = json.loads(plan.out)
        assert shown["counts"]["files"] == 6 and shown["blobs_to_remove"] == 3
        assert shown["releases"] == []
        assert json.loads(cli("subject", "list", "P", "--json").out)[0]["label"] == "S01"

    def test_a_wrong_confirmation_erases_nothing(self, held: Depot, cli: Cli) -> None:
        one_line_error(
            cli("gdpr", "erase", "P", "S01", "--confirm", "S02"), 2, "repeating the subject's label"
        )
        labels = [s["label"] for s in json.loads(cli("subject", "list", "P", "--json").out)]
        assert labels == ["S01", "S010", "S02"]

    def test_confirmed_erasure_removes_the_subject_and_fsck_is_clean(
        self, held: Depot, cli: Cli
    ) -> None:
        ran = cli("gdpr", "erase", "P", "S01", "--confirm", "S01")
        assert ran.code == 0, ran.err
        assert "Erased P/S01:" in ran.text and "3 stored content(s) removed" in ran.text
        labels = [s["label"] for s in json.loads(cli("subject", "list", "P", "--json").out)]
        assert labels == ["S010", "S02"]
        assert cli("fsck").code == 0
        one_line_error(cli("gdpr", "erase", "P", "S01", "--confirm", "S01"), 3, "'S01'")


@pytest.fixture
def small(depot: Depot) -> Depot:
    with depot.transaction() as db:
        create_project(db, "P")
        create_project(db, "Q")
        create_subject(db, "P", "a")
        create_session(db, "P", "a", "v", modality="MR")
    return depot


class TestRetention:
    def test_set_report_show_and_clear(self, small: Depot, cli: Cli) -> None:
        ran = cli("gdpr", "retention", "P", "2031-01-01")
        assert (ran.code, ran.text) == (0, "Retention date of P: 2031-01-01")
        report = cli("gdpr", "retention", "--on", "2031-06-30", "--json")
        assert report.code == 0
        shown = json.loads(report.out)
        assert [(e["project"], e["days_past"], e["subjects"]) for e in shown["past"]] == [
            ("P", 180, 1)
        ]
        assert shown["without_date"] == ["Q"]
        table = cli("gdpr", "retention", "--on", "2031-06-30")
        assert (
            "P" in table.out and "2031-01-01" in table.out and "No retention date: Q" in table.out
        )
        assert cli("gdpr", "retention", "P").text == "Retention date of P: 2031-01-01"
        cleared = cli("gdpr", "retention", "P", "--clear", "--json")
        assert json.loads(cleared.out)["retention_until"] is None

    def test_bad_uses_are_refused_in_one_line(self, small: Depot, cli: Cli) -> None:
        one_line_error(cli("gdpr", "retention", "--clear"), 2, "--clear needs the project")
        one_line_error(cli("gdpr", "retention", "P", "2031-13-01"), 2, "YYYY-MM-DD")
        one_line_error(cli("gdpr", "retention", "P", "2031-01-01", "--clear"), 2, "not both")
        one_line_error(cli("gdpr", "retention", "--on", "soon"), 2, "YYYY-MM-DD")
        one_line_error(cli("gdpr", "retention", "P", "--on", "2031-01-01"), 2, "for the report")
        one_line_error(cli("gdpr", "retention", "Nope", "2031-01-01"), 3, "'Nope'")


class TestProcessing:
    def test_set_then_show_as_text_json_and_markdown(self, small: Depot, cli: Cli) -> None:
        ran = cli(
            "gdpr", "processing", "P", "--purpose", "Memory research [/red] [bold]x",
            "--lawful-basis", "GDPR 6(1)(e)", "--category", "health data",
            "--category", "MRI", "--controller", "Brain Centre",
        )  # fmt: skip
        assert ran.code == 0, ran.err
        assert "purpose: Memory research [/red] [bold]x" in ran.out  # given text, not markup
        assert "data categories: health data, MRI" in ran.text
        shown = json.loads(cli("gdpr", "processing", "P", "--json").out)
        assert shown["controller"] == "Brain Centre"
        assert shown["data_categories"]["all"] == ["health data", "MRI"]
        markdown = cli("gdpr", "processing", "P", "--markdown")
        assert markdown.out.startswith("# Record of processing: P\n")
        assert "## Recipients" in markdown.out
        cleared = json.loads(cli("gdpr", "processing", "P", "--category", "none", "--json").out)
        assert cleared["data_categories"]["given"] == []
        assert cleared["data_categories"]["all"] == ["MRI"]  # still derived from the session

    def test_bad_uses_are_refused_in_one_line(self, small: Depot, cli: Cli) -> None:
        one_line_error(cli("gdpr", "processing", "P", "--json", "--markdown"), 2, "not both")
        one_line_error(cli("gdpr", "processing", "P", "--controller", "a\nb"), 2, "line breaks")
        one_line_error(cli("gdpr", "processing", "Nope"), 3, "'Nope'")
