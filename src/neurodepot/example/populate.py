"""Filling a depot with the example project (idempotent: running it twice changes nothing)."""

from dataclasses import dataclass
from importlib import resources as package_files
from pathlib import Path

from sqlalchemy.orm import Session

from neurodepot.catalog import hierarchy, resources
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid, NotFound
from neurodepot.ingest.bulk import import_dicom
from neurodepot.ingest.receive import Override

PROJECT = "DEMO"
SUBJECT = "sub01"
SESSION = "sub01_MR1"
SCAN = "3"  # the series number of the example DICOM

PROTOCOL = """Example protocol
================
Resting-state EPI, phase encoding anterior-to-posterior (Siemens, 3 T).
These two volumes come from dcm2niix's public dcm_qa_nih regression data.
"""

BEHAVIOUR = "trial,onset_s,response_ms\n1,0.0,512\n2,4.0,498\n3,8.0,530\n"


@dataclass(frozen=True)
class ExampleSummary:
    project: str
    files_added: int
    files_present: int


def _ensure(db: Session, find: object, create: object) -> None:
    try:
        find()  # type: ignore[operator]
    except NotFound:
        create()  # type: ignore[operator]


def populate(depot: Depot) -> ExampleSummary:
    """Create the project, import its DICOM like a scanner's study, add its other files."""
    with depot.transaction() as db:
        _ensure(
            db,
            lambda: hierarchy.get_project(db, PROJECT),
            lambda: hierarchy.create_project(
                db, PROJECT, "Example EPI study", "Two EPI volumes from a public regression set."
            ),
        )
    dicom_folder = package_files.files("neurodepot.example") / "data" / "siemens_epi_ap"
    with package_files.as_file(dicom_folder) as folder:
        imported = import_dicom(depot, Path(folder), Override(PROJECT, SUBJECT, SESSION))
    if imported.not_archived or imported.unreadable:
        raise Invalid(f"the example data did not import cleanly: {imported}")
    outcomes = [
        resources.add_file(depot, Target(PROJECT), "protocol", "protocol.txt", [PROTOCOL.encode()]),
        resources.add_file(
            depot, Target(PROJECT, SUBJECT), "behaviour", "responses.csv", [BEHAVIOUR.encode()]
        ),
    ]
    added = imported.imported + sum(1 for o in outcomes if o.outcome == "created")
    present = imported.duplicates + sum(1 for o in outcomes if o.outcome != "created")
    return ExampleSummary(PROJECT, added, present)
