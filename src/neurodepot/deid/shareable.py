"""The shareable dataset: a project's BIDS view, de-identified, as it may leave the centre.

It is the BIDS export (the same plan as `export-bids`) with every subject and session named by
its pseudonym, sidecars and tables scrubbed as they are written, dates shifted by each
subject's offset and, on request, the DICOM of every exported session de-identified under
`sourcedata/dicom/`. The folder appears complete or not at all. The checker then decides
whether it may leave; nothing here decides that.
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from neurodepot.consent.records import withdrawn_labels
from neurodepot.convert.bids_export import export_folder
from neurodepot.convert.bids_plan import PlannedFile, plan_project
from neurodepot.convert.nifti import DICOM_RESOURCE
from neurodepot.deid import linkage
from neurodepot.deid.dicom_headers import DicomRecipe, SubjectKeys
from neurodepot.deid.sidecars import scrub_sidecar_bytes, scrub_tsv_text, tsv_kind_for
from neurodepot.deid.uid_remap import remap_uid
from neurodepot.depot.blobstore import BlobStore
from neurodepot.errors import Conflict, Invalid

SOURCEDATA = "sourcedata/dicom"


@dataclass(frozen=True)
class ShareableSummary:
    path: Path
    files: int
    subjects: int
    dicom_written: int
    dicom_skipped: tuple[tuple[str, str], ...]
    burned_in: tuple[tuple[str, str], ...]


class _Pseudonyms:
    """Pseudonyms drawn (or looked up) as the plan names subjects and sessions."""

    def __init__(self, db: Session, project: str) -> None:
        self.db = db
        self.project = project
        self.subjects: dict[str, linkage.SubjectLink] = {}
        self.offsets: dict[str, int] = {}  # pseudonym → date offset

    def __call__(self, subject: str, session: str | None) -> str:
        if session is None:
            link = linkage.subject_link(self.db, self.project, subject)
            self.subjects[subject] = link
            self.offsets[link.pseudonym] = link.date_offset_days
            return link.pseudonym
        return linkage.session_pseudonym(self.db, self.project, subject, session)


def _rewrite(
    config: linkage.DeidConfig, offsets: dict[str, int], key: bytes
) -> Callable[[PlannedFile, bytes], bytes]:
    """Scrub a sidecar or table of the subject its path names (UIDs remapped as in DICOM)."""

    def remap(uid: str) -> str:
        return remap_uid(uid, key, config.uid_root)

    def rewrite(planned: PlannedFile, content: bytes) -> bytes:
        first = planned.path.split("/", 1)[0]
        offset = offsets.get(first.removeprefix("sub-"), 0)
        if planned.path.endswith(".json"):
            return scrub_sidecar_bytes(content, planned.path, config.options, offset, remap)
        kind = tsv_kind_for(planned.path)
        if kind is None:
            raise Invalid(f"{planned.path}: not a BIDS table neurodepot knows how to scrub")
        text = scrub_tsv_text(content.decode(), kind, config.options, offset, name=planned.path)
        return text.encode()

    return rewrite


def build_shareable(
    db: Session,
    blobs: BlobStore,
    project: str,
    out: Path,
    subjects: tuple[str, ...] = (),
    include_dicom: bool = False,
    link: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ShareableSummary:
    """Write the de-identified dataset of `project` to `out` (absent or an empty folder).

    Subjects who withdrew consent are never in it.

    Pseudonyms drawn here are added to the caller's transaction: commit it only if the
    dataset is kept, or keep them anyway (they are stable and reveal nothing by themselves).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Conflict(f"{out} already exists and is not an empty folder: choose another")
    parent = out.parent if out.parent != Path() else Path.cwd()
    if not parent.is_dir():
        raise Invalid(f"{parent} does not exist: create it first")
    config = linkage.project_config(db, project)
    key = linkage.uid_key(db, project)
    recipe = DicomRecipe(config.options, config.uid_root, key, config.private_allow)
    names = _Pseudonyms(db, project)
    withdrawn = withdrawn_labels(db, project)
    plan = plan_project(db, blobs, project, subjects, relabel=names, withdrawn=withdrawn)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=parent))
    dataset = staging / "dataset"
    try:
        summary = export_folder(
            plan, blobs, dataset, link, progress, rewrite=_rewrite(config, names.offsets, key)
        )
        written, skipped, burned = 0, [], []
        if include_dicom:
            written, skipped, burned = _dicom(db, blobs, project, names, recipe, dataset)
        if out.exists():
            out.rmdir()
        os.rename(dataset, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ShareableSummary(
        out, summary.files + written, len(plan.subjects), written, tuple(skipped), tuple(burned)
    )


def _dicom(
    db: Session,
    blobs: BlobStore,
    project: str,
    names: _Pseudonyms,
    recipe: DicomRecipe,
    dataset: Path,
) -> tuple[int, list[tuple[str, str]], list[tuple[str, str]]]:
    """De-identify each exported session's DICOM into `sourcedata/dicom/sub-*/ses-*`."""
    from neurodepot.catalog.target import Target
    from neurodepot.catalog.walk import scan_files, scans_under
    from neurodepot.deid.dicom_batch import deidentify_tree

    written = 0
    skipped: list[tuple[str, str]] = []
    burned: list[tuple[str, str]] = []
    by_session: dict[tuple[str, str], list[int]] = {}
    for subject in names.subjects:
        for row in scans_under(db, Target(project, subject)):
            assert row.target.session is not None
            by_session.setdefault((subject, row.target.session), []).append(row.scan_id)
    for (subject, session), scan_ids in sorted(by_session.items()):
        link = names.subjects[subject]
        keys = SubjectKeys(f"sub-{link.pseudonym}", f"sub-{link.pseudonym}", link.date_offset_days)
        folder = f"{SOURCEDATA}/sub-{link.pseudonym}/ses-{names(subject, session)}"
        with tempfile.TemporaryDirectory(dir=dataset.parent, prefix="dicom-") as work:
            count = 0
            for scan_id, files in scan_files(db, scan_ids, DICOM_RESOURCE).items():
                for index, row in enumerate(files):
                    _place(blobs.path(row.digest), Path(work) / f"{scan_id}-{index}.dcm")
                    count += 1
            if not count:
                continue
            report = deidentify_tree(Path(work), dataset / folder, recipe, keys)
        written += report.written
        skipped.extend((f"{folder}: {s.path}", s.reason) for s in report.skipped)
        burned.extend((f"{folder}/{path}", reason) for path, reason in report.burned_in)
    return written, skipped, burned


def _place(source: Path, destination: Path) -> None:
    """Hard-link a blob where the file system allows it, else copy it."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)
