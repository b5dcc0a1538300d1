"""The shareable dataset built from real archived DICOM, and the checker run on it.

A GE and a Siemens series of dcm_qa_nih are archived (PatientID `DEV`, a placeholder patient
`Test^Regression`, a real institution) and converted; the de-identified dataset must name
no internal label, must validate as BIDS, must carry de-identified DICOM, and the checker must
pass it on every criterion but consent until the subject's open consent is recorded. The plain
export of the same project must fail the checker: no false pass. A subject who withdrew consent
is in no export at all.
"""

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pydicom
import pytest

from neurodepot.access import accounts
from neurodepot.catalog import hierarchy
from neurodepot.consent import records
from neurodepot.convert.bids_export import export_folder
from neurodepot.convert.bids_plan import plan_project
from neurodepot.convert.bids_validate import validate
from neurodepot.deid import linkage
from neurodepot.deid.check import Criterion
from neurodepot.deid.overrides import add_override
from neurodepot.deid.release_check import check_folder, check_project
from neurodepot.deid.shareable import build_shareable
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict
from tests.convert.conftest import Convert, Studies, archive

pytestmark = pytest.mark.slow
INTERNAL = ("DEV", "Regression", "20180918")


@pytest.fixture
def converted(depot: Depot, studies: Studies, convert: Convert) -> Depot:
    archive(depot, studies(ge=("mr_0004",), siemens=("mr_0003",)))
    job = convert("P")
    assert job.status == "succeeded", job.log
    return depot


def token(value: str) -> re.Pattern[str]:
    """`value` as a whole token ("Regression" is not in "DCM2NIIXregressiontest")."""
    return re.compile(rf"(?<![a-z0-9]){re.escape(value)}(?![a-z0-9])", re.IGNORECASE)


def every_text(root: Path) -> list[tuple[str, str]]:
    found = []
    for path in sorted(root.rglob("*")):
        found.append((str(path.relative_to(root)), "path"))
        if (path.is_file() and path.suffix in (".json", ".tsv")) or path.name in (
            "README",
            "CHANGES",
        ):
            found.append((str(path.relative_to(root)), path.read_text()))
    return found


def test_the_shareable_dataset_names_no_one_and_validates(converted: Depot, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    with converted.transaction() as db:
        summary = build_shareable(db, converted.blobs, "P", out, include_dicom=True)
        alice = linkage.read_linkage(db, "P", "test")
    subject = next(r for r in alice if r.session is None)
    assert summary.subjects == 1 and summary.dicom_written == 150 + 2
    assert not summary.dicom_skipped
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("sub-")) == [
        f"sub-{subject.pseudonym}"
    ]
    for where, text in every_text(out):
        for value in INTERNAL:
            assert not token(value).search(where), where
            assert text == "path" or not token(value).search(text), (where, value)
    sidecar = next(out.rglob("sub-*_bold.json"))
    fields = json.loads(sidecar.read_text())
    assert "InstitutionName" not in fields and "DeviceSerialNumber" not in fields
    scans = next(out.rglob("*_scans.tsv")).read_text().splitlines()[1:]
    shifted = date(2018, 9, 18) + timedelta(days=subject.date_offset_days)
    assert scans and all(shifted.isoformat() in line for line in scans), scans
    dicom = sorted((out / "sourcedata" / "dicom").rglob("*.dcm"))
    assert len(dicom) == 152
    header = pydicom.dcmread(dicom[0], stop_before_pixels=True)
    assert str(header.PatientName) == f"sub-{subject.pseudonym}"
    assert header.PatientIdentityRemoved == "YES"
    assert "InstitutionName" not in header or not header.InstitutionName
    report = validate(out)
    assert report.valid, report.errors


def test_pseudonyms_are_stable_across_builds(converted: Depot, tmp_path: Path) -> None:
    names = []
    for index in range(2):
        with converted.transaction() as db:
            build_shareable(db, converted.blobs, "P", tmp_path / f"build{index}")
        names.append(
            sorted(
                p.relative_to(tmp_path / f"build{index}")
                for p in (tmp_path / f"build{index}").rglob("*")
            )
        )
    assert names[0] == names[1]


def test_the_checker_passes_it_but_for_consent_and_a_steward_can_override(
    converted: Depot, tmp_path: Path
) -> None:
    with converted.transaction() as db:
        report = check_project(db, converted.blobs, "P", tmp_path / "work", "test")
    status = {r.criterion: r.status for r in report.results}
    assert status.pop(Criterion.CONSENT) == "fail"
    assert set(status.values()) == {"pass"}, [r for r in report.results if r.status == "fail"]
    assert not report.passed
    with converted.transaction() as db:
        accounts.add_user(db, "test", "sam", "sam@example.org")
        accounts.set_status(db, "test", "sam", "active")
        accounts.set_site_role(db, "test", "sam", "steward")
        add_override(
            db,
            "P",
            "DEID-CONSENT",
            "Consent forms are on paper, checked by the steward.",
            "sam",
            "test",
        )
    with converted.transaction() as db:
        report = check_project(db, converted.blobs, "P", tmp_path / "work", "test")
    assert report.passed
    assert {r.criterion: r.status for r in report.results}[Criterion.CONSENT] == "overridden"


def test_the_plain_export_fails_the_checker(converted: Depot, tmp_path: Path) -> None:
    with converted.reading() as db:
        plan = plan_project(db, converted.blobs, "P")
    export_folder(plan, converted.blobs, tmp_path / "plain")
    with converted.transaction() as db:
        report = check_folder(db, converted.blobs, "P", tmp_path / "plain", "test")
    linked = next(r for r in report.results if r.criterion is Criterion.LINKAGE)
    assert linked.status == "fail"
    assert any(e.file == "sub-[subject label]" for e in linked.evidence), linked.evidence[:5]
    # The report names the kind of identifier found, never the identifier.
    assert not [e for e in linked.evidence if token("DEV").search(repr(e))]
    assert not [e for e in linked.evidence if token("DEV201809182").search(repr(e))]


def test_after_the_linkage_is_destroyed_nothing_more_is_shared(
    converted: Depot, tmp_path: Path
) -> None:
    with converted.transaction() as db:
        linkage.destroy_linkage(db, "P", "test")
    with pytest.raises(Conflict, match="destroyed"), converted.transaction() as db:
        build_shareable(db, converted.blobs, "P", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def only_subject(depot: Depot) -> str:
    with depot.reading() as db:
        (subject,) = hierarchy.list_subjects(db, "P")
    return subject.label


def test_open_consent_passes_the_consent_criterion_and_internal_does_not(
    converted: Depot, tmp_path: Path
) -> None:
    subject = only_subject(converted)
    results = {}
    for level in ("internal", "open"):
        with converted.transaction() as db:
            records.set_consent(db, "test", "P", subject, level, "main form", "2.1")
            report = check_project(db, converted.blobs, "P", tmp_path / level, "test")
        results[level] = {r.criterion: r.status for r in report.results}[Criterion.CONSENT]
    assert results == {"internal": "fail", "open": "pass"}


def test_a_withdrawn_subject_is_in_no_export(converted: Depot, tmp_path: Path) -> None:
    subject = only_subject(converted)
    with converted.transaction() as db:
        records.set_consent(db, "test", "P", subject, "open")
        records.withdraw_consent(db, "test", "P", subject)
    with converted.transaction() as db:
        summary = build_shareable(db, converted.blobs, "P", tmp_path / "shared")
    assert summary.subjects == 0
    assert not [p for p in (tmp_path / "shared").iterdir() if p.name.startswith("sub-")]
    with converted.reading() as db:
        withdrawn = records.withdrawn_labels(db, "P")
        assert plan_project(db, converted.blobs, "P", withdrawn=withdrawn).subjects == ()
        with pytest.raises(Conflict, match="withdrew consent"):
            plan_project(db, converted.blobs, "P", [subject], withdrawn=withdrawn)
        # The team's own preview still shows the subject, so that they can act on it.
        assert plan_project(db, converted.blobs, "P").subjects != ()
