"""A project exported as BIDS: valid for the official validator, named as the preview says,
fieldmaps pointing at what they correct, hard links on request, and a zip that streams."""

import csv
import errno
import io
import json
import os
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from neurodepot.catalog import resources
from neurodepot.catalog.hierarchy import create_scan
from neurodepot.catalog.target import Target
from neurodepot.convert import dcm2niix
from neurodepot.convert.bids_export import export_folder, stream_zip
from neurodepot.convert.bids_plan import BidsPlan, plan_project
from neurodepot.convert.bids_validate import validate
from neurodepot.convert.project_rules import set_project_rules
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict
from tests.convert.conftest import SIEMENS_SERIES, Convert, Studies, archive

FIELDMAP_RULES = """
[[rules]]
name = "PE=AP/PA are this project's fieldmaps"
datatype = "fmap"
suffix = "epi"
[rules.match]
SeriesDescription = "PE=(AP|PA)"
[rules.entities]
dir = "{PhaseEncodingDirection!dir}"
"""


def plan(depot: Depot, project: str = "P") -> BidsPlan:
    with depot.reading() as db:
        return plan_project(db, depot.blobs, project)


@pytest.fixture
def converted(depot: Depot, studies: Studies, convert: Convert) -> Depot:
    """Two GE series (one session, so two runs) and the four Siemens series, converted."""
    archive(depot, studies(("mr_0004", "mr_0005"), SIEMENS_SERIES))
    assert convert("P").status == "succeeded"
    return depot


def test_the_export_of_real_data_validates_with_zero_errors(
    converted: Depot, tmp_path: Path
) -> None:
    out = tmp_path / "bids"

    summary = export_folder(plan(converted), converted.blobs, out)
    report = validate(out)

    assert report.errors == ()
    assert summary.copied == 6 and summary.linked == 0
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "raw"
    assert {"Name": "dcm2niix", "Version": dcm2niix.version()} in description["GeneratedBy"]
    assert (out / "participants.tsv").read_text() == "participant_id\nsub-DEV\n"
    ge = out / "sub-DEV" / "ses-DEV20180918"
    runs = sorted(p.name for p in (ge / "func").glob("*.nii.gz"))
    stem = "sub-DEV_ses-DEV20180918_task-DCM2NIIXregressiontest_dir-AP"
    assert runs == [f"{stem}_run-1_bold.nii.gz", f"{stem}_run-2_bold.nii.gz"]
    sidecar = json.loads((ge / "func" / f"{stem}_run-1_bold.json").read_text())
    assert (sidecar["TaskName"], sidecar["SeriesNumber"]) == ("DCM2NIIXregressiontest", 4)
    with (ge / "sub-DEV_ses-DEV20180918_scans.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["filename"] for r in rows] == [f"func/{name}" for name in runs]
    assert rows[0]["acq_time"] == "2018-09-18T11:48:15"
    for name in ("README", "CHANGES", "participants.json"):
        assert (out / name).stat().st_size > 0


def test_the_preview_lists_every_series_with_its_rule_and_what_has_no_name(
    converted: Depot, testdata: Path, tmp_path: Path
) -> None:
    # A series uploaded after conversion and another no rule knows.
    with converted.transaction() as db:
        create_scan(db, "P", "DEV", "DEV_20180918", "20", "bold rest (late)", "MR")
        create_scan(db, "P", "DEV", "DEV_20180918", "21", "mystery", "MR")
    for label in ("20", "21"):
        one = sorted((testdata / "dcm_qa_nih/In/20180918Si/mr_0003").glob("*.dcm"))[0]
        resources.add_local_file(converted, Target("P", "DEV", "DEV_20180918", label), "DICOM", one)

    rows = {(p.scan, p.image): p for p in plan(converted).preview}

    assert len(rows) == 8
    bold = rows[("P/DEV/DEV_20180918/4", "4.nii.gz")]
    assert (bold.conversion, bold.outcome, bold.rule) == ("converted", "named", "functional: BOLD")
    assert bold.bids_path.endswith("_dir-AP_run-1_bold.nii.gz")
    siemens = rows[("P/DEV/DEV_20180918_2/6", "6.nii.gz")]
    assert siemens.bids_path == (
        "sub-DEV/ses-DEV201809182/func/sub-DEV_ses-DEV201809182_task-EPIPELR_dir-LR_bold.nii.gz"
    )
    late = rows[("P/DEV/DEV_20180918/20", "")]
    assert (late.conversion, late.detail) == ("not converted", "convert it first")
    mystery = rows[("P/DEV/DEV_20180918/21", "")]
    assert (mystery.outcome, mystery.rule) == ("unmatched", "")
    assert "no rule matched" in mystery.detail


def test_fieldmaps_name_the_images_they_correct(converted: Depot, tmp_path: Path) -> None:
    set_project_rules(converted, "P", FIELDMAP_RULES, "toml")
    out = tmp_path / "bids"

    export_folder(plan(converted), converted.blobs, out)

    fmap = out / "sub-DEV" / "ses-DEV201809182" / "fmap"
    assert sorted(p.name for p in fmap.glob("*.nii.gz")) == [
        "sub-DEV_ses-DEV201809182_dir-AP_epi.nii.gz",
        "sub-DEV_ses-DEV201809182_dir-PA_epi.nii.gz",
    ]
    intended = json.loads((fmap / "sub-DEV_ses-DEV201809182_dir-AP_epi.json").read_text())
    assert intended["IntendedFor"] == [
        "bids::sub-DEV/ses-DEV201809182/func/sub-DEV_ses-DEV201809182_task-EPIPERL_dir-RL_bold.nii.gz",
        "bids::sub-DEV/ses-DEV201809182/func/sub-DEV_ses-DEV201809182_task-EPIPELR_dir-LR_bold.nii.gz",
    ]
    assert validate(out).errors == ()


def test_link_hard_links_the_depot_files_instead_of_copying(
    converted: Depot, tmp_path: Path
) -> None:
    out = tmp_path / "bids"
    planned = plan(converted)

    summary = export_folder(planned, converted.blobs, out, link=True)

    assert (summary.linked, summary.copied) == (6, 0)
    images = [f for f in planned.files if f.path.endswith(".nii.gz")]
    assert len(images) == 6
    for image in images:
        assert image.digest is not None
        assert os.stat(out / image.path).st_ino == converted.blobs.path(image.digest).stat().st_ino


def test_an_export_never_writes_into_a_folder_that_holds_something(
    converted: Depot, tmp_path: Path
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")

    with pytest.raises(Conflict, match="not an empty folder"):
        export_folder(plan(converted), converted.blobs, out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_a_full_disk_mid_export_leaves_no_partial_dataset(
    converted: Depot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import neurodepot.convert.bids_export as bids_export

    copies = 0

    def copy_until_full(source: Path, destination: Path) -> None:
        nonlocal copies
        copies += 1
        if copies == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        destination.write_bytes(source.read_bytes())

    monkeypatch.setattr(bids_export.shutil, "copyfile", copy_until_full)
    out = tmp_path / "exports" / "bids"
    out.parent.mkdir()

    with pytest.raises(OSError, match="No space left"):
        export_folder(plan(converted), converted.blobs, out)
    assert list(out.parent.iterdir()) == []


def test_the_zip_holds_what_the_folder_export_holds(converted: Depot, tmp_path: Path) -> None:
    planned = plan(converted)
    out = tmp_path / "bids"
    export_folder(planned, converted.blobs, out)

    body = b"".join(stream_zip(planned, converted.blobs, "P-bids"))

    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        names = sorted(archive.namelist())
        assert names == sorted(f"P-bids/{f.path}" for f in planned.files)
        for name in names:
            assert archive.read(name) == (out / name.removeprefix("P-bids/")).read_bytes()


def test_the_zip_streams_a_large_file_without_holding_it(converted: Depot, tmp_path: Path) -> None:
    """A 64 MiB image passes through the zip with a peak of a few chunks in memory."""
    big = tmp_path / "big.nii.gz"
    with big.open("wb") as handle:
        for _ in range(64):
            handle.write(os.urandom(1024 * 1024))
    scan = Target("P", "DEV", "DEV_20180918", "4")
    resources.add_local_file(converted, scan, "NIFTI", big, "4.nii.gz", overwrite=True)
    planned = plan(converted)
    sizes = [f.size for f in planned.files if f.path.endswith("run-1_bold.nii.gz")]
    assert sizes == [64 * 1024 * 1024]

    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in stream_zip(planned, converted.blobs, "P-bids"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert total > 64 * 1024 * 1024
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while streaming"
