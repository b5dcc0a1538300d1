"""`neurodepot convert`, `export-bids` and `bids preview|validate|rules` as a user runs them."""

import json
from pathlib import Path

import pytest

from neurodepot.depot.folder import Depot
from tests.cli.conftest import Run
from tests.cli.test_end_to_end import assert_one_line_error
from tests.convert.conftest import SIEMENS_SERIES, Studies, archive

BAD_TOML = """\
[[rules]]
name = "first"
datatype = "func"
suffix = "bold"
[rules.match]
SeriesDescription = "bold"

[[rules]]
name = "second"
datatype = "physics"
suffix = "T1w"
[rules.match]
SeriesDescription = "t1"
"""

BAD_JSON = """\
{
  "rules": [
    {"name": "ok", "datatype": "anat", "suffix": "T1w", "match": {"SeriesDescription": "t1"}},
    {
      "name": "broken",
      "datatype": "anat",
      "suffix": "T2w",
      "match": {"SeriesDescription": "t2("}
    }
  ]
}
"""

GOOD_JSON = """\
{"rules": [{"name": "PE=LR is our T2w", "datatype": "anat", "suffix": "T2w",
            "match": {"SeriesDescription": "PE=LR"}}]}
"""


@pytest.fixture
def siemens(depot: Depot, studies: Studies) -> Depot:
    archive(depot, studies((), SIEMENS_SERIES))
    return depot


def test_convert_then_export_then_validate(siemens: Depot, cli: Run, tmp_path: Path) -> None:
    converted = cli("convert", "P")
    assert converted.code == 0, converted.err
    assert "4 scan(s) converted, 0 not" in converted.out

    preview = json.loads(cli("bids", "preview", "P", "--json").out)
    assert [(p["scan"], p["outcome"]) for p in preview] == [
        (f"P/DEV/DEV_20180918/{n}", "named") for n in (3, 4, 5, 6)
    ]

    out = tmp_path / "bids"
    exported = cli("export-bids", "P", str(out), "--link")
    assert exported.code == 0, exported.out + exported.err
    assert "4 linked, 0 copied" in exported.out
    assert ": 0 error(s)," in exported.out

    assert cli("bids", "validate", str(out)).code == 0
    report = json.loads(cli("bids", "validate", "P", "--json").out)
    assert report["errors"] == [] and report["warnings"]


def test_a_dataset_with_errors_fails_validation_and_says_why(
    siemens: Depot, cli: Run, tmp_path: Path
) -> None:
    assert cli("convert", "P").code == 0
    out = tmp_path / "bids"
    assert cli("export-bids", "P", str(out), "--no-validate").code == 0
    (out / "dataset_description.json").unlink()

    result = cli("bids", "validate", str(out))

    assert result.code == 1
    assert "error" in result.out and "dataset_description" in result.out.lower()


def test_a_failed_scan_makes_convert_exit_1_and_names_it(
    siemens: Depot, cli: Run, tmp_path: Path, testdata: Path
) -> None:
    assert cli("scan", "create", "P/DEV/DEV_20180918/9", "--type", "EPI PE=AP").code == 0
    cut = tmp_path / "cut.dcm"
    first = sorted((testdata / "dcm_qa_nih/In/20180918Si/mr_0003").glob("*.dcm"))[0]
    cut.write_bytes(first.read_bytes()[:20000])
    assert cli("resource", "add", "P/DEV/DEV_20180918/9", "DICOM", str(cut)).code == 0

    result = cli("convert", "P")

    assert result.code == 1
    assert "4 scan(s) converted, 1 not" in result.out
    assert "P/DEV/DEV_20180918/9: not converted:" in result.out
    preview = json.loads(cli("bids", "preview", "P", "--json").out)
    failed = [p for p in preview if p["scan"].endswith("/9")]
    assert [(p["conversion"], p["image"]) for p in failed] == [("failed", "")]
    assert "not large enough" in failed[0]["detail"]


@pytest.mark.parametrize(
    ("name", "text", "fragments"),
    [
        ("rules.toml", BAD_TOML, ("rules.toml: line 10: rules[1].datatype:", "'physics'")),
        ("rules.json", BAD_JSON, ("rules.json: line 8: rules[1].match.SeriesDescription:",)),
        ("rules.toml", "[[rules]\nname = 1\n", ("rules.toml:", "line 1")),
        ("rules.yaml", "rules: []", ("must end in .toml or .json",)),
    ],
)
def test_a_bad_rules_file_is_refused_with_its_line_and_field(
    siemens: Depot, cli: Run, tmp_path: Path, name: str, text: str, fragments: tuple[str, ...]
) -> None:
    path = tmp_path / name
    path.write_text(text)

    assert_one_line_error(cli("bids", "rules", "set", "P", str(path)), 2, *fragments)
    assert_one_line_error(cli("bids", "rules", "check", str(path)), 2, *fragments)
    shown = json.loads(cli("bids", "rules", "show", "P", "--json").out)
    assert "rules.toml" not in shown[0]["source"] or "default" in shown[0]["source"]


def test_a_project_rule_is_tried_before_the_defaults(
    siemens: Depot, cli: Run, tmp_path: Path
) -> None:
    path = tmp_path / "ours.json"
    path.write_text(GOOD_JSON)
    assert cli("bids", "rules", "set", "P", str(path)).code == 0
    assert cli("convert", "P").code == 0

    preview = json.loads(cli("bids", "preview", "P", "--json").out)
    rules = json.loads(cli("bids", "rules", "show", "P", "--json").out)

    lr = next(p for p in preview if p["scan"].endswith("/6"))
    assert (lr["rule"], lr["bids_path"]) == (
        "PE=LR is our T2w",
        "sub-DEV/ses-DEV20180918/anat/sub-DEV_ses-DEV20180918_T2w.nii.gz",
    )
    assert rules[0]["name"] == "PE=LR is our T2w" and "rules.json" in rules[0]["source"]
    assert rules[1]["source"].startswith("default rules")


def test_export_errors_are_one_clear_line(siemens: Depot, cli: Run, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")

    assert_one_line_error(cli("export-bids", "P", str(taken)), 4, "not an empty folder")
    assert_one_line_error(cli("export-bids", "Nope", str(tmp_path / "o")), 3, "Nope")
    assert_one_line_error(cli("bids", "validate", str(tmp_path / "absent/")), 2, "not a folder")
    assert_one_line_error(cli("convert", "P/DEV/nope"), 3)
