"""The `convert` pipeline: each scan's DICOM becomes its `NIFTI` resource, through dcm2niix.

Per scan, the archived DICOM blobs are linked (not copied) into a temporary folder, dcm2niix
converts them into another, and what it wrote is staged as the scan's new `NIFTI` resource.
The resource is replaced wholesale when the job succeeds, in the transaction that records
the outputs, together with the conversion's provenance (`scan_conversions`). A scan that does
not convert keeps its DICOM and its reason is recorded at once; the other scans go on.
"""

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from neurodepot.catalog.models import Resource, ResourceFile
from neurodepot.catalog.target import Level, Target
from neurodepot.catalog.walk import FileRow, ScanRow, scan_files, scans_under
from neurodepot.convert import dcm2niix
from neurodepot.convert.models import ScanConversion
from neurodepot.depot.folder import Depot
from neurodepot.depot.upsert import insert_ignoring_duplicates
from neurodepot.errors import Invalid
from neurodepot.jobs.context import JobContext
from neurodepot.jobs.registry import Pipeline

DICOM_RESOURCE = "DICOM"
NIFTI_RESOURCE = "NIFTI"
TOOL = "dcm2niix"
CHUNK_SIZE = 1024 * 1024


class ConvertParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    compress: bool = Field(default=True, description="Write .nii.gz (true) or .nii (false).")
    skip_converted: bool = Field(
        default=False, description="Leave scans already converted by this dcm2niix version."
    )


def convert(context: JobContext) -> None:
    params = ConvertParams.model_validate(context.params)
    version = dcm2niix.version()
    with context.depot.reading() as db:
        scans = scans_under(db, context.target)
        dicom = scan_files(db, [s.scan_id for s in scans], DICOM_RESOURCE)
        done = _converted_by(db, version) if params.skip_converted else set()
    todo = [s for s in scans if s.scan_id in dicom and s.scan_id not in done]
    if context.target.level is Level.SCAN and not todo and not done:
        raise Invalid(f"scan {context.target} has no DICOM resource to convert")
    converted: dict[int, list[str]] = {}
    failures: list[str] = []
    for index, scan in enumerate(todo):
        context.progress(index / max(len(todo), 1), f"converting scan {scan.target}")
        work = context.staging / f"scan-{scan.scan_id}"
        try:
            result = _convert_scan(context, scan, dicom[scan.scan_id], params.compress, work)
            if result.converted:
                converted[scan.scan_id] = [_stage(context, scan.target, p) for p in result.outputs]
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if result.converted:
            context.log(f"{scan.target}: {len(result.outputs)} file(s) from dcm2niix {version}")
        else:
            failures.append(f"{scan.target}: {result.reason}")
            _record_failure(context.depot, scan.scan_id, result.reason, version, context.job_id)
            context.log(f"{scan.target}: not converted: {result.reason}")
    context.on_commit(lambda db: _replace_nifti(db, converted, version, context.job_id))
    context.log(
        f"{len(converted)} scan(s) converted, {len(failures)} not, "
        f"{len(scans) - len(todo)} skipped (no DICOM, or already converted)"
    )
    if failures and not converted:
        raise Invalid("no scan converted: " + "; ".join(failures))
    context.progress(1.0, f"{len(converted)} converted, {len(failures)} not")


def _convert_scan(
    context: JobContext, scan: ScanRow, files: list[FileRow], compress: bool, work: Path
) -> dcm2niix.Dcm2niixResult:
    """Link the scan's DICOM blobs into `work/dicom` and run dcm2niix into `work/nifti`.

    Hard links where the work folder shares the blobs' file system (the depot's own `work/`),
    which cost a fraction of symbolic links to make and remove; symbolic links otherwise.
    dcm2niix only reads them.
    """
    source, output = work / "dicom", work / "nifti"
    source.mkdir(parents=True)
    link = os.link
    for number, file in enumerate(files):
        blob, name = context.depot.blobs.path(file.digest), source / f"{number:06d}.dcm"
        try:
            link(blob, name)
        except OSError:
            link = os.symlink
            link(blob, name)
    context.check_cancelled()
    return dcm2niix.convert_folder(source, output, scan.target.scan or "scan", compress)


def _stage(context: JobContext, target: Target, path: Path) -> str:
    context.add_output(NIFTI_RESOURCE, path.name, _chunks(path), target=target)
    return path.name


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def _converted_by(db: Session, version: str) -> set[int]:
    return set(
        db.scalars(
            select(ScanConversion.scan_id).where(
                ScanConversion.status == "converted", ScanConversion.tool_version == version
            )
        )
    )


def _record_failure(depot: Depot, scan_id: int, reason: str, version: str, job_id: int) -> None:
    """Recorded at once: the reason is a fact about this attempt, whatever becomes of the job."""
    with depot.transaction() as db:
        _set_conversion(db, scan_id, "failed", reason, version, job_id)


def _set_conversion(
    db: Session, scan_id: int, status: str, reason: str, version: str, job_id: int
) -> None:
    values = {
        "status": status,
        "reason": reason,
        "tool": TOOL,
        "tool_version": version,
        "job_id": job_id,
        "updated_at": datetime.now(UTC),
    }
    if not insert_ignoring_duplicates(db, ScanConversion, {"scan_id": scan_id, **values}):
        row = db.get(ScanConversion, scan_id)
        if row is not None:
            for name, value in values.items():
                setattr(row, name, value)
    db.flush()


def _replace_nifti(
    db: Session, converted: dict[int, list[str]], version: str, job_id: int
) -> list[str]:
    """Drop NIFTI files the new conversion did not write; record each scan as converted."""
    superseded: list[str] = []
    for scan_id, names in converted.items():
        resource_id = db.scalar(
            select(Resource.id).where(Resource.scan_id == scan_id, Resource.label == NIFTI_RESOURCE)
        )
        if resource_id is not None:
            stale = select(ResourceFile).where(
                ResourceFile.resource_id == resource_id, ResourceFile.path.not_in(names)
            )
            superseded.extend(row.digest for row in db.scalars(stale))
            db.execute(
                delete(ResourceFile).where(
                    ResourceFile.resource_id == resource_id, ResourceFile.path.not_in(names)
                )
            )
        _set_conversion(db, scan_id, "converted", "", version, job_id)
    return superseded


PIPELINE = Pipeline(
    "convert",
    "1",
    convert,
    params=ConvertParams,
    outputs=(NIFTI_RESOURCE,),
    description="Converts each scan's DICOM to NIfTI + JSON sidecar (dcm2niix) as its NIFTI "
    "resource; a scan that does not convert keeps its DICOM and gets the reason.",
)
