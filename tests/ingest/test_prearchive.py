"""Looking after the prearchive: list, show, move, delete, archive, the sweep, review mode.

Studies arrive as an import leaves them (`archive_after=False`) or as the listener stores them
(`Receiver`, with routing); both are real GE/Siemens instances, on SQLite and PostgreSQL.
"""

import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from neurodepot.catalog.hierarchy import create_project
from neurodepot.catalog.models import ImagingSession, Scan
from neurodepot.depot.folder import Depot
from neurodepot.depot.orm import utcnow
from neurodepot.errors import Conflict, Invalid, NotFound
from neurodepot.ingest.archive import ArchiveRefused
from neurodepot.ingest.bulk import import_dicom
from neurodepot.ingest.header import read_header
from neurodepot.ingest.prearchive import (
    SweepReport,
    archive,
    delete_study,
    list_studies,
    move_study,
    set_archive_mode,
    show_study,
    sweep,
)
from neurodepot.ingest.receive import Arrival, Override, Receiver
from neurodepot.ingest.routing import Route
from neurodepot.jobs import records
from neurodepot.jobs.registry import load_registry
from neurodepot.jobs.triggers import set_project_pipelines
from tests.ingest.conftest import (
    DATE_SESSION,
    SQLITE_ONLY,
    DicomSource,
    assert_consistent,
    blob_rows,
    modified,
    sha256,
)

LATER = timedelta(minutes=10)


def receive(
    depot: Depot, paths: Sequence[Path], routes: tuple[Route, ...] = (), **changes: object
) -> int:
    """Store instances as the DICOM listener does; the ID of the one study they make."""
    receiver = Receiver(depot, routes)
    arrival = Arrival("dicom", "NEURODEPOT", "SCANNER")
    studies = {
        receiver.store(modified(p, **changes) if changes else p.read_bytes(), arrival).study_id
        for p in paths
    }
    (study,) = studies
    return study


def waiting(depot: Depot, source: Path, override: Override | None = None) -> list[int]:
    """Import into the prearchive only; the IDs of the studies made."""
    return import_dicom(depot, source, override or Override("P"), archive_after=False).studies


def state_of(depot: Depot, study: int) -> tuple[str, str]:
    with depot.reading() as db:
        entry = show_study(db, study).study
    return entry.state, entry.reason


def session_scans(depot: Depot) -> dict[str, list[str]]:
    """Session label → its scan labels."""
    with depot.reading() as db:
        rows = db.execute(
            select(ImagingSession.label, Scan.label)
            .join(Scan, Scan.session_id == ImagingSession.id)
            .order_by(ImagingSession.label, Scan.label)
        ).all()
    found: dict[str, list[str]] = {}
    for session, scan in rows:
        found.setdefault(session, []).append(scan)
    return found


def copy_files(paths: Sequence[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


class TestList:
    def test_filters_by_state_project_and_unassigned(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        (archived,) = import_dicom(
            project, dicom_source.root / "20180918GE" / "mr_0004", Override("P")
        ).studies
        (pending,) = waiting(project, dicom_source.root / "20180918Si" / "mr_0003")
        unassigned = receive(project, dicom_source.siemens_files("mr_0004"))

        with project.reading() as db:

            def ids(**filters: object) -> list[int]:
                return [s.id for s in list_studies(db, **filters)]  # type: ignore[arg-type]

            assert ids() == [archived, pending, unassigned]
            assert ids(state="receiving") == [pending, unassigned]
            assert ids(state="archived") == [archived]
            assert ids(project="P") == [archived, pending]
            assert ids(unassigned=True) == [unassigned]
            assert ids(state="receiving", project="P") == [pending]
            assert ids(state="ready") == []
            entry = list_studies(db, unassigned=True)[0]
        assert (entry.project, entry.subject, entry.session, entry.rule) == (None, None, None, "")
        assert entry.reason == "no routing rule matched: assign a project"
        assert (entry.source, entry.called_aet, entry.calling_aet) == (
            "dicom",
            "NEURODEPOT",
            "SCANNER",
        )
        assert (entry.patient_id, entry.patient_name, entry.study_description) == (
            "DEV",
            "Test^Regression",
            "FMRIF^QA",
        )
        assert (entry.modality, entry.instance_count, entry.conflict_count) == ("MR", 2, 0)
        assert entry.total_size == sum(
            p.stat().st_size for p in dicom_source.siemens_files("mr_0004")
        )

    @SQLITE_ONLY
    def test_an_unknown_state_is_refused_naming_the_states(self, project: Depot) -> None:
        with project.reading() as db, pytest.raises(Invalid) as refused:
            list_studies(db, state="bogus")
        assert "'bogus'" in refused.value.message
        assert "receiving, ready, archived, conflict, error" in refused.value.message


class TestShow:
    def test_series_and_conflicts_are_shown(
        self, project: Depot, dicom_source: DicomSource, tmp_path: Path
    ) -> None:
        folder = copy_files(
            [*dicom_source.siemens_files("mr_0004"), *dicom_source.siemens_files("mr_0003")],
            tmp_path / "in",
        )
        first = dicom_source.siemens_files("mr_0003")[0]
        (folder / "zz-resent.dcm").write_bytes(modified(first, PatientComments="changed"))
        (study,) = waiting(project, folder)

        with project.reading() as db:
            detail = show_study(db, study)
        assert [(s.series_number, s.modality, s.instance_count) for s in detail.series] == [
            (3, "MR", 2),
            (4, "MR", 2),
        ]
        assert [s.series_instance_uid for s in detail.series] == [
            read_header(dicom_source.siemens_files(series)[0].read_bytes()).series_instance_uid
            for series in ("mr_0003", "mr_0004")
        ]
        assert [(c.sop_instance_uid, c.against, c.digest) for c in detail.conflicts] == [
            (
                read_header(first.read_bytes()).sop_instance_uid,
                "prearchive",
                sha256(folder / "zz-resent.dcm"),
            )
        ]
        assert (detail.study.instance_count, detail.study.conflict_count) == (4, 1)

    @SQLITE_ONLY
    def test_an_unknown_study_is_not_found(self, project: Depot) -> None:
        with project.reading() as db, pytest.raises(NotFound, match="prearchive list"):
            show_study(db, 42)


class TestMove:
    def test_an_unassigned_study_is_refused_until_moved_then_archives(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        study = receive(project, dicom_source.siemens_files())
        with pytest.raises(Invalid) as refused:
            archive(project, study, None, "operator")
        assert f"neurodepot prearchive move {study}" in refused.value.message
        assert state_of(project, study)[0] == "receiving"

        with project.transaction() as db:
            entry = move_study(db, study, "P", "sub01", "ses01")
        assert (entry.project, entry.subject, entry.session) == ("P", "sub01", "ses01")
        assert (entry.state, entry.reason, entry.rule) == ("ready", "", "moved by hand")

        outcome = archive(project, study, None, "operator")
        assert (outcome.session, outcome.scans, outcome.archived) == ("P/sub01/ses01", ("3",), 2)
        with project.reading() as db:
            entry = show_study(db, study).study
        assert (entry.state, entry.archived_to) == ("archived", "P/sub01/ses01")
        assert entry.archived_at is not None

    def test_labels_from_the_headers_are_kept_when_none_are_given(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        study = receive(project, dicom_source.siemens_files(), StudyComments="Project: GHOST")
        with project.transaction() as db:
            entry = move_study(db, study, "P", None, None)
        assert (entry.project, entry.subject, entry.session) == ("P", "DEV", DATE_SESSION)
        assert archive(project, study, None, "operator").session == f"P/DEV/{DATE_SESSION}"

    def test_a_session_named_by_hand_is_the_one_used(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        """A label given to `move` is the operator's choice, not one made up from the date.

        Session `E` holds the GE study; moving the Siemens study (whose label was derived) to
        `E` must be refused as for any named session, not quietly become `E_2`.
        """
        import_dicom(
            project, dicom_source.root / "20180918GE" / "mr_0004", Override("P", session="E")
        )
        (study,) = waiting(project, dicom_source.root / "20180918Si" / "mr_0003")
        with project.transaction() as db:
            move_study(db, study, "P", None, "E")
        with pytest.raises(ArchiveRefused, match="session 'E' already holds another study"):
            archive(project, study, None, "operator")
        assert session_scans(project) == {"E": ["4"]}

    @SQLITE_ONLY
    @pytest.mark.parametrize(
        ("project_label", "subject", "session", "error", "fragment"),
        [
            ("NOPE", "s", "e", NotFound, "project 'NOPE' does not exist"),
            ("P", "bad label!", "e", Invalid, "subject label 'bad label!'"),
            ("P", "s", "a/b", Invalid, "session label 'a/b'"),
            ("P", None, None, Invalid, "give them with --subject and --session"),
        ],
    )
    def test_a_bad_move_is_refused_and_changes_nothing(
        self,
        project: Depot,
        dicom_source: DicomSource,
        project_label: str,
        subject: str | None,
        session: str | None,
        error: type[Exception],
        fragment: str,
    ) -> None:
        study = receive(project, dicom_source.siemens_files())
        with pytest.raises(error, match=re.escape(fragment)), project.transaction() as db:
            move_study(db, study, project_label, subject, session)
        with project.reading() as db:
            entry = show_study(db, study).study
        assert (entry.project, entry.state) == (None, "receiving")

    def test_an_archived_study_cannot_be_moved(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        (study,) = import_dicom(project, dicom_source.siemens_files()[0], Override("P")).studies
        with (
            pytest.raises(Conflict, match="already archived to P/DEV/"),
            project.transaction() as db,
        ):
            move_study(db, study, "P", "other", "other")


class TestDelete:
    def test_only_blobs_nothing_else_uses_are_removed(
        self, project: Depot, dicom_source: DicomSource, tmp_path: Path
    ) -> None:
        ge, siemens = dicom_source.ge_files()[:3], dicom_source.siemens_files()
        import_dicom(project, copy_files(ge, tmp_path / "archived"), Override("P"))
        folder = copy_files([*ge, *siemens], tmp_path / "pending")
        (folder / "zz-conflict.dcm").write_bytes(modified(siemens[0], PatientComments="x"))
        ge_study, siemens_study = waiting(project, folder)
        kept = {sha256(p) for p in ge}
        freed = {sha256(p) for p in siemens} | {sha256(folder / "zz-conflict.dcm")}
        assert kept | freed <= blob_rows(project)

        entry = delete_study(project, siemens_study)
        assert (entry.id, entry.instance_count, entry.conflict_count) == (siemens_study, 2, 1)
        assert blob_rows(project) == kept
        assert set(project.blobs.digests()) == kept

        delete_study(project, ge_study)
        assert blob_rows(project) == kept, "the archive still uses these"
        with project.reading() as db:
            assert [s.state for s in list_studies(db)] == ["archived"]
        assert session_scans(project) == {DATE_SESSION: ["4"]}
        assert_consistent(project)

    @SQLITE_ONLY
    def test_an_unknown_study_is_not_found(self, project: Depot) -> None:
        with pytest.raises(NotFound, match="prearchive study 7 does not exist"):
            delete_study(project, 7)


class TestArchive:
    def test_a_missing_project_is_refused_and_the_reason_recorded(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        study = receive(project, dicom_source.siemens_files(), StudyComments="Project: GHOST")
        with pytest.raises(ArchiveRefused) as refused:
            archive(project, study, None, "operator")
        assert "project 'GHOST' does not exist" in refused.value.message
        assert "neurodepot project create GHOST" in refused.value.reason
        assert state_of(project, study) == ("error", refused.value.reason)
        assert session_scans(project) == {}

        with project.transaction() as db:
            create_project(db, "GHOST")
        assert archive(project, study, None, "operator").session == f"GHOST/DEV/{DATE_SESSION}"
        assert state_of(project, study) == ("archived", "")

    def test_an_archived_study_has_nothing_more_to_archive(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        (study,) = import_dicom(project, dicom_source.siemens_files()[0], Override("P")).studies
        with pytest.raises(Conflict, match="is archived; there is nothing to archive"):
            archive(project, study, None, "operator")

    @SQLITE_ONLY
    def test_an_unknown_study_is_not_found(self, project: Depot) -> None:
        with pytest.raises(NotFound, match="prearchive study 9 does not exist"):
            archive(project, 9, None, "operator")

    def test_studies_deriving_the_same_label_get_sessions_of_their_own(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        ge = dicom_source.root / "20180918GE" / "mr_0004"
        siemens = dicom_source.root / "20180918Si" / "mr_0003"
        first = import_dicom(project, ge, Override("P")).archived
        second = import_dicom(project, siemens, Override("P")).archived
        third_study = receive(
            project,
            dicom_source.ge_files("mr_0005")[:2],
            StudyInstanceUID="1.2.826.0.1.3680043.8.498.1",
            StudyComments="Project: P",
        )
        third = archive(project, third_study, None, "operator")
        again = import_dicom(project, siemens, Override("P")).archived

        assert [o.session for o in (*first, *second, third, *again)] == [
            f"P/DEV/{DATE_SESSION}",
            f"P/DEV/{DATE_SESSION}_2",
            f"P/DEV/{DATE_SESSION}_3",
            f"P/DEV/{DATE_SESSION}_2",
        ]
        assert (again[0].archived, again[0].duplicates) == (0, 2)
        assert session_scans(project) == {
            DATE_SESSION: ["4"],
            f"{DATE_SESSION}_2": ["3"],
            f"{DATE_SESSION}_3": ["5"],
        }

    def test_a_named_session_holding_another_study_is_refused(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        ge = dicom_source.root / "20180918GE" / "mr_0004"
        import_dicom(project, ge, Override("P", session="E"))
        summary = import_dicom(
            project, dicom_source.root / "20180918Si" / "mr_0003", Override("P", session="E")
        )
        ((study, message),) = summary.not_archived
        assert summary.archived == []
        assert "session 'E' already holds another study" in message
        assert dicom_source.ge_study in message
        state, reason = state_of(project, study)
        assert state == "error" and "move this one to a session of its own" in reason
        assert session_scans(project) == {"E": ["4"]}

    def test_a_session_of_another_subject_is_refused(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        import_dicom(project, dicom_source.ge_files()[0], Override("P", "A", "E"))
        summary = import_dicom(project, dicom_source.siemens_files()[0], Override("P", "B", "E"))
        ((study, message),) = summary.not_archived
        assert "belongs to subject 'A', not 'B'" in message
        assert state_of(project, study)[0] == "error"

    def test_archiving_queues_the_projects_automatic_pipelines(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        registry = load_registry()
        with project.transaction() as db:
            set_project_pipelines(db, registry, "P", [("noop", {})])
        summary = import_dicom(
            project,
            dicom_source.root / "20180918Si" / "mr_0003",
            Override("P"),
            registry=registry,
            requested_by="importer",
        )
        ((job_id,),) = [o.jobs for o in summary.archived]
        with project.reading() as db:
            job = records.get_job(db, job_id)
        assert (job.pipeline, job.target, job.status, job.requested_by) == (
            "noop",
            f"P/DEV/{DATE_SESSION}",
            "queued",
            "importer",
        )


class TestSweep:
    def test_a_study_is_archived_once_quiet_for_the_quiet_period(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        (study,) = waiting(project, dicom_source.root / "20180918Si")
        assert sweep(project, None, 60, now=utcnow() + timedelta(seconds=30)) == SweepReport(
            0, (), ()
        )
        assert state_of(project, study)[0] == "receiving"

        report = sweep(project, None, 60, now=utcnow() + timedelta(seconds=90))
        assert report.ready == 1 and report.refused == ()
        assert [(o.study_id, o.session, o.archived, o.jobs) for o in report.archived] == [
            (study, f"P/DEV/{DATE_SESSION}", 8, ())
        ]
        assert state_of(project, study)[0] == "archived"

    def test_review_projects_keep_ready_studies_and_auto_projects_archive_them(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        with project.transaction() as db:
            create_project(db, "R")
            set_archive_mode(db, "R", False)
        (reviewed,) = waiting(project, dicom_source.root / "20180918Si", Override("R"))
        (automatic,) = waiting(project, dicom_source.root / "20180918GE" / "mr_0004")

        report = sweep(project, None, 5, now=utcnow() + LATER)
        assert report.ready == 2
        assert [o.study_id for o in report.archived] == [automatic]
        assert state_of(project, reviewed)[0] == "ready"
        assert sweep(project, None, 5, now=utcnow() + LATER) == SweepReport(0, (), ())
        assert state_of(project, reviewed)[0] == "ready"

        with project.transaction() as db:
            set_archive_mode(db, "R", True)
        report = sweep(project, None, 5, now=utcnow() + LATER)
        assert [o.study_id for o in report.archived] == [reviewed]

    def test_unassigned_studies_become_ready_and_wait(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        study = receive(project, dicom_source.siemens_files())
        assert sweep(project, None, 5, now=utcnow() + LATER) == SweepReport(1, (), ())
        assert state_of(project, study) == (
            "ready",
            "no routing rule matched: assign a project",
        )

    def test_a_study_for_a_missing_project_is_refused_with_its_reason(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        study = receive(project, dicom_source.siemens_files(), StudyComments="Project: GHOST")
        report = sweep(project, None, 5, now=utcnow() + LATER)
        ((refused, message),) = report.refused
        assert refused == study and "project 'GHOST' does not exist" in message
        assert state_of(project, study)[0] == "error"

    def test_a_study_that_cannot_be_archived_does_not_stop_the_others(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        """A study routed to a project but with no patient to name a subject after."""
        nameless = receive(
            project,
            dicom_source.ge_files()[:2],
            PatientID=None,
            PatientName=None,
            StudyComments="Project: P",
        )
        (other,) = waiting(project, dicom_source.root / "20180918Si" / "mr_0003")

        report = sweep(project, None, 5, now=utcnow() + LATER)

        assert [o.study_id for o in report.archived] == [other]
        assert [study for study, _ in report.refused] == [nameless]
        assert state_of(project, other)[0] == "archived"
