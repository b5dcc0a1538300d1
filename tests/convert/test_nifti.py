"""The `convert` pipeline on real multi-vendor DICOM: compared with dcm2niix's own reference
conversions, failures reported per scan, and the NIFTI resource replaced, never mixed."""

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from sqlalchemy import select

from neurodepot.catalog import resources
from neurodepot.catalog.hierarchy import create_scan, find_scan
from neurodepot.catalog.target import Target
from neurodepot.convert import dcm2niix
from neurodepot.convert.models import ScanConversion
from neurodepot.depot.folder import Depot
from neurodepot.depot.fsck import fsck
from neurodepot.errors import Invalid
from tests.convert.conftest import (
    GE_SERIES,
    GE_SESSION,
    SIEMENS_SERIES,
    SIEMENS_SESSION,
    Convert,
    Studies,
    archive,
)

# Sidecar fields that legitimately differ from the reference (made by another dcm2niix release):
# the version itself, and AcquisitionTime, which that release wrote unpadded (`12:30:2.285000`).
VERSION_FIELDS = {"ConversionSoftwareVersion", "AcquisitionTime"}


def seconds_of_day(clock: str) -> float:
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def nifti_files(depot: Depot, scan: Target) -> dict[str, Path]:
    with depot.reading() as db:
        info = resources.get_resource(db, scan, "NIFTI")
    return {f.path: depot.blobs.path(f.digest) for f in info.files}


def conversion(depot: Depot, scan: Target) -> ScanConversion:
    with depot.reading() as db:
        row = find_scan(db, scan.project, scan.subject, scan.session, scan.scan)  # type: ignore[arg-type]
        found = db.scalar(select(ScanConversion).where(ScanConversion.scan_id == row.id))
        assert found is not None
        db.expunge(found)
        return found


def assert_same_as_reference(ours: dict[str, Path], label: str, reference: Path) -> None:
    # Blobs have no extension for nibabel to go by: the image is read from its bytes.
    image = nib.Nifti1Image.from_bytes(gzip.decompress(ours[f"{label}.nii.gz"].read_bytes()))
    expected = nib.load(reference.with_suffix(".nii"))
    assert image.shape == expected.shape
    assert np.array_equal(np.asarray(image.dataobj), np.asarray(expected.dataobj))
    assert np.allclose(image.affine, expected.affine, atol=1e-4)
    sidecar = json.loads(ours[f"{label}.json"].read_text())
    wanted = json.loads(reference.with_suffix(".json").read_text())
    shared = (set(sidecar) & set(wanted)) - VERSION_FIELDS
    assert len(shared) > 30
    assert {k: sidecar[k] for k in shared} == {k: wanted[k] for k in shared}
    assert sidecar["ConversionSoftwareVersion"] == dcm2niix.version()
    ours_time, their_time = sidecar["AcquisitionTime"], wanted["AcquisitionTime"]
    assert seconds_of_day(ours_time) == pytest.approx(seconds_of_day(their_time), abs=1e-6)


@pytest.mark.slow
def test_every_series_converts_as_dcm2niix_made_the_reference(
    depot: Depot, studies: Studies, convert: Convert, testdata: Path
) -> None:
    archive(depot, studies(GE_SERIES, SIEMENS_SERIES))

    job = convert("P")

    assert job.status == "succeeded", job.error
    assert "8 scan(s) converted, 0 not" in job.log
    ref = testdata / "dcm_qa_nih" / "Ref"
    for number in (4, 5, 6, 7):
        scan = Target(GE_SESSION.project, GE_SESSION.subject, GE_SESSION.session, str(number))
        ours = nifti_files(depot, scan)
        assert sorted(ours) == [f"{number}.json", f"{number}.nii.gz"]
        assert_same_as_reference(ours, str(number), ref / f"DCM2NIIX_regression_test_{number}")
    for number, direction in ((3, "AP"), (4, "PA"), (5, "RL"), (6, "LR")):
        scan = Target(
            SIEMENS_SESSION.project, SIEMENS_SESSION.subject, SIEMENS_SESSION.session, str(number)
        )
        assert_same_as_reference(
            nifti_files(depot, scan), str(number), ref / f"EPI_PE={direction}_{number}"
        )
        row = conversion(depot, scan)
        assert (row.status, row.tool, row.tool_version) == (
            "converted",
            "dcm2niix",
            dcm2niix.version(),
        )
    assert fsck(depot.engine, depot.blobs).ok


def add_truncated_series(depot: Depot, testdata: Path, scan: Target, tmp_path: Path) -> None:
    """A scan whose DICOM files were uploaded cut short (import would refuse them; an upload
    to a resource takes any file)."""
    with depot.transaction() as db:
        create_scan(db, scan.project, scan.subject, scan.session, scan.scan, "EPI PE=AP", "MR")  # type: ignore[arg-type]
    source = testdata / "dcm_qa_nih" / "In" / "20180918Si" / "mr_0003"
    for file in sorted(source.glob("*.dcm")):
        cut = tmp_path / file.name
        cut.write_bytes(file.read_bytes()[:20000])
        resources.add_local_file(depot, scan, "DICOM", cut)


def test_a_truncated_series_is_reported_and_the_others_convert(
    depot: Depot, studies: Studies, convert: Convert, testdata: Path, tmp_path: Path
) -> None:
    archive(depot, studies((), ("mr_0004", "mr_0005", "mr_0006")))
    broken = Target("P", "DEV", "DEV_20180918", "9")
    add_truncated_series(depot, testdata, broken, tmp_path)

    job = convert("P")

    assert job.status == "succeeded", job.error
    assert "3 scan(s) converted, 1 not" in job.log
    with depot.reading() as db:
        assert resources.get_resource(db, broken, "DICOM").file_count == 2
        assert resources.find_resource_or_none(db, broken, "NIFTI") is None
    row = conversion(depot, broken)
    assert row.status == "failed"
    assert "not large enough" in row.reason, row.reason
    assert f"{broken}: not converted: {row.reason}" in job.log
    for number in ("4", "5", "6"):
        scan = Target("P", "DEV", "DEV_20180918", number)
        assert sorted(nifti_files(depot, scan)) == [f"{number}.json", f"{number}.nii.gz"]


def test_a_scan_that_cannot_convert_fails_its_own_job_with_the_reason(
    depot: Depot, studies: Studies, convert: Convert, testdata: Path, tmp_path: Path
) -> None:
    archive(depot, studies((), ("mr_0004",)))
    broken = Target("P", "DEV", "DEV_20180918", "9")
    add_truncated_series(depot, testdata, broken, tmp_path)

    job = convert(broken)

    assert job.status == "failed"
    assert "no scan converted: P/DEV/DEV_20180918/9: " in job.error
    assert conversion(depot, broken).reason in job.error


def test_converting_again_replaces_the_resource_and_skip_converted_leaves_it(
    depot: Depot, studies: Studies, convert: Convert
) -> None:
    archive(depot, studies((), ("mr_0003", "mr_0004")))
    scan = Target("P", "DEV", "DEV_20180918", "3")
    assert convert("P").status == "succeeded"
    first = nifti_files(depot, scan)

    # An uncompressed conversion writes 3.nii: the old 3.nii.gz must not stay beside it.
    again = convert(scan, compress=False)

    assert again.status == "succeeded", again.error
    assert sorted(nifti_files(depot, scan)) == ["3.json", "3.nii"]
    assert conversion(depot, scan).job_id == again.id
    skipped = convert("P", skip_converted=True)
    assert "0 scan(s) converted, 0 not, 2 skipped" in skipped.log
    assert sorted(nifti_files(depot, scan)) == ["3.json", "3.nii"]
    assert fsck(depot.engine, depot.blobs).ok
    assert sorted(first) == ["3.json", "3.nii.gz"]


def test_a_scan_without_dicom_is_refused(tree: Depot, convert: Convert) -> None:
    job = convert("p/s/v/1")

    assert job.status == "failed"
    assert "has no DICOM resource to convert" in job.error


def test_unknown_parameters_are_refused(tree: Depot, convert: Convert) -> None:
    with pytest.raises(Invalid, match="compres"):
        convert("p", compres=True)
