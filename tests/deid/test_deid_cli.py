"""`neurodepot deid export|dicom|settings`, `check`, `linkage show|destroy` and `override`."""

import json
import shutil
from pathlib import Path

import pytest

from neurodepot.depot.folder import Depot
from tests.cli.conftest import Run
from tests.cli.test_end_to_end import assert_one_line_error
from tests.convert.conftest import Studies, archive

pytestmark = pytest.mark.slow


@pytest.fixture
def siemens(depot: Depot, studies: Studies) -> Depot:
    archive(depot, studies((), ("mr_0003",)))
    return depot


def test_export_check_and_override_as_a_steward_would(
    siemens: Depot, cli: Run, tmp_path: Path
) -> None:
    assert cli("convert", "P").code == 0
    out = tmp_path / "shared"
    made = cli("deid", "export", "P", str(out), "--dicom")
    assert made.code == 0, made.err
    assert "2 DICOM" in made.out and f"neurodepot check {out} --project P" in made.out
    assert not [p for p in out.rglob("*") if "DEV" in p.name]

    checked = cli("check", str(out), "--project", "P", "--report", str(tmp_path / "r"))
    assert checked.code == 1, checked.out + checked.err
    assert "DEID-LINKAGE" in checked.out and "FAILED" in checked.out
    report = json.loads((tmp_path / "r.json").read_text())
    status = {r["id"]: r["status"] for r in report["criteria"]}
    assert status["DEID-CONSENT"] == "fail" and status["DEID-LINKAGE"] == "pass"
    assert "DEV" not in (tmp_path / "r.json").read_text() + (tmp_path / "r.md").read_text()

    refused = cli("override", "add", "P", "DEID-CONSENT", "--reason", "x", "--steward", "sam")
    assert_one_line_error(refused, 5, "steward")
    assert cli("user", "add", "sam", "--email", "sam@example.org").code == 0
    assert cli("user", "approve", "sam").code == 0
    assert cli("user", "set-role", "sam", "steward").code == 0
    reason = "Consent is recorded on paper forms; checked by the steward."
    added = cli("override", "add", "P", "DEID-CONSENT", "--reason", reason, "--steward", "sam")
    assert added.code == 0, added.err
    checked = cli("check", "P", "--report", str(tmp_path / "again"))
    assert checked.code == 0, checked.out + checked.err
    assert "overridden" in checked.out and "Check passed" in checked.out
    assert cli("audit", "verify").code == 0


def test_linkage_show_and_destroy_need_the_label_to_confirm(
    siemens: Depot, cli: Run, tmp_path: Path
) -> None:
    assert cli("convert", "P").code == 0
    assert cli("deid", "export", "P", str(tmp_path / "out")).code == 0
    shown = json.loads(cli("linkage", "show", "P", "--json").out)
    assert {row["subject"] for row in shown} == {"DEV"}
    wrong = cli("linkage", "destroy", "P", "--confirm", "Q")
    assert_one_line_error(wrong, 2, "nothing destroyed")
    assert len(json.loads(cli("linkage", "show", "P", "--json").out)) == len(shown)
    assert cli("linkage", "destroy", "P", "--confirm", "P").code == 0
    assert json.loads(cli("linkage", "show", "P", "--json").out) == []
    again = cli("deid", "export", "P", str(tmp_path / "again"))
    assert_one_line_error(again, 4, "destroyed")


def test_settings_and_a_folder_of_dicom_with_bad_files(
    siemens: Depot, cli: Run, tmp_path: Path, testdata: Path
) -> None:
    bad = cli("deid", "settings", "P", "--option", "retain-everything")
    assert_one_line_error(bad, 2, "retain-everything")
    assert cli("deid", "settings", "P", "--option", "clean-descriptors").code == 0
    shown = json.loads(cli("deid", "settings", "P", "--json").out)
    assert shown["options"] == ["clean-descriptors"]

    src = tmp_path / "src"
    shutil.copytree(testdata / "dcm_qa_nih" / "In" / "20180918Si" / "mr_0003", src)
    (src / "notes.txt").write_text("not DICOM")
    whole = sorted(src.glob("*.dcm"))[0].read_bytes()
    (src / "cut.dcm").write_bytes(whole[: len(whole) // 3])
    done = cli(
        "deid", "dicom", str(src), str(tmp_path / "dst"), "--project", "P", "--subject", "DEV"
    )
    assert done.code == 1, done.out + done.err
    assert "Wrote 2 file(s)" in done.out
    assert "skipped notes.txt" in done.out and "skipped cut.dcm" in done.out
    assert "Traceback" not in done.out + done.err
