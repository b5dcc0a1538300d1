"""Checking what would leave the centre: a project's shareable dataset, or a folder made elsewhere.

The criteria need the project's internal identifiers and original dates (what must not be
found), its profile options, and the stewards' decisions for the release; this module gathers
them from the database and hands them to the checker, which reads only files. Every check run
is audited with its outcome, never with any identifying value.
"""

import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.consent.records import levels_by_label
from neurodepot.deid import linkage
from neurodepot.deid.check import CheckContext, CheckReport, check_dataset
from neurodepot.deid.identifiers import project_identifiers
from neurodepot.deid.overrides import CANDIDATE, active_overrides
from neurodepot.deid.shareable import build_shareable
from neurodepot.depot.blobstore import BlobStore
from neurodepot.errors import Invalid

Progress = Callable[[int, int], None]


def check_context(
    db: Session, blobs: BlobStore, project: str, release: str = CANDIDATE
) -> CheckContext:
    """What the checker must know of `project`.

    Consent is keyed by subject folder (`sub-<pseudonym>`): a folder whose subject has no
    pseudonym (a dataset made elsewhere, a destroyed linkage) has no known consent, so
    DEID-CONSENT fails for it rather than guessing.
    """
    config = linkage.project_config(db, project)
    identifiers, dates = project_identifiers(db, blobs, project)
    levels = levels_by_label(db, project)
    consent = {
        f"sub-{pseudonym}": levels.get(label, "none")
        for label, pseudonym in linkage.subject_pseudonyms(db, project).items()
    }
    return CheckContext(
        consent=consent,
        identifiers=identifiers,
        original_dates=dates,
        options=config.options,
        private_allow=config.private_allow,
        overrides=active_overrides(db, project, release),
    )


def check_folder(
    db: Session,
    blobs: BlobStore,
    project: str,
    folder: Path,
    actor: str,
    release: str = CANDIDATE,
    progress: Progress | None = None,
) -> CheckReport:
    """Check a folder (an export, a dataset made elsewhere) against `project`'s identifiers."""
    if not folder.is_dir():
        raise Invalid(f"{folder} is not a folder: give the dataset's folder to check")
    context = check_context(db, blobs, project, release)
    report = check_dataset(folder, context, progress)
    _audit(db, actor, project, report, release, "folder")
    return report


def check_project(
    db: Session,
    blobs: BlobStore,
    project: str,
    work_root: Path,
    actor: str,
    release: str = CANDIDATE,
    progress: Progress | None = None,
    keep: Path | None = None,
) -> CheckReport:
    """Build `project`'s shareable dataset (with its DICOM) and check it.

    The dataset is made in the depot's work folder and removed afterwards, unless `keep`
    names where to leave it.
    """
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="check-", dir=work_root) as tmp:
        out = keep or Path(tmp) / project
        build_shareable(db, blobs, project, out, include_dicom=True, link=True)
        context = check_context(db, blobs, project, release)
        report = check_dataset(out, context, progress)
    _audit(db, actor, project, report, release, "shareable dataset")
    return report


def _audit(
    db: Session, actor: str, project: str, report: CheckReport, release: str, what: str
) -> None:
    audit.record(
        db,
        actor,
        "deid_checked",
        project,
        {
            "what": what,
            "release": release,
            "files": report.files,
            "results": {r.criterion.value: r.status for r in report.results},
        },
        outcome="ok" if report.passed else "failed",
    )
