"""Filling a depot with the example project (idempotent: running it twice changes nothing)."""

from dataclasses import dataclass
from datetime import date
from importlib import resources as package_files

from sqlalchemy.orm import Session

from neurodepot.catalog import hierarchy, resources
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.errors import NotFound

PROJECT = "DEMO"
SUBJECT = "sub01"
SESSION = "sub01_MR1"
SCAN = "3"

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
    with depot.transaction() as db:
        _ensure(
            db,
            lambda: hierarchy.get_project(db, PROJECT),
            lambda: hierarchy.create_project(
                db, PROJECT, "Example EPI study", "Two EPI volumes from a public regression set."
            ),
        )
        _ensure(
            db,
            lambda: hierarchy.get_subject(db, PROJECT, SUBJECT),
            lambda: hierarchy.create_subject(db, PROJECT, SUBJECT),
        )
        _ensure(
            db,
            lambda: hierarchy.get_session(db, PROJECT, SUBJECT, SESSION),
            lambda: hierarchy.create_session(
                db, PROJECT, SUBJECT, SESSION, "MR", date(2018, 9, 18)
            ),
        )
        _ensure(
            db,
            lambda: hierarchy.get_scan(db, PROJECT, SUBJECT, SESSION, SCAN),
            lambda: hierarchy.create_scan(db, PROJECT, SUBJECT, SESSION, SCAN, "epi_pe_ap", "MR"),
        )
    outcomes = []
    scan = Target(PROJECT, SUBJECT, SESSION, SCAN)
    dicom_folder = package_files.files("neurodepot.example") / "data" / "siemens_epi_ap"
    for entry in sorted(dicom_folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".dcm"):
            with entry.open("rb") as handle:
                chunks = iter(lambda h=handle: h.read(1 << 20), b"")
                outcomes.append(resources.add_file(depot, scan, "DICOM", entry.name, chunks))
    outcomes.append(
        resources.add_file(depot, Target(PROJECT), "protocol", "protocol.txt", [PROTOCOL.encode()])
    )
    outcomes.append(
        resources.add_file(
            depot, Target(PROJECT, SUBJECT), "behaviour", "responses.csv", [BEHAVIOUR.encode()]
        )
    )
    added = sum(1 for o in outcomes if o.outcome == "created")
    return ExampleSummary(PROJECT, added, len(outcomes) - added)
