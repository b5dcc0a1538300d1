"""Where a received study goes: the called AE title, XNAT's comment convention, or nowhere yet."""

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from neurodepot.catalog.hierarchy import create_project
from neurodepot.depot.folder import Depot
from neurodepot.ingest.prearchive import list_studies
from tests.ingest_network.archived import differences_from_sent, studies, sweep_now
from tests.ingest_network.conftest import MRI3T_ROUTE, Listen
from tests.ingest_network.dicom_files import Instance, read_instance, rewritten
from tests.ingest_network.processes import neurodepot_json
from tests.ingest_network.senders import Scu


def test_the_called_ae_title_chooses_the_project(
    alpha: Depot, listen: Listen, scu: Scu, siemens_instances: list[Instance]
) -> None:
    listener = listen((MRI3T_ROUTE,))

    statuses = scu.store(listener.port, [i.path for i in siemens_instances], "MRI3T")

    assert set(statuses) == {0x0000}
    [study] = studies(alpha)
    assert (study.state, study.project, study.subject, study.session, study.rule) == (
        "receiving",
        "alpha",
        "DEV",
        "DEV_20180918",
        "3T scanner",
    )
    assert (study.called_aet, study.calling_aet) == ("MRI3T", "PYNETDICOM")
    [outcome] = sweep_now(alpha).archived
    assert outcome.session == "alpha/DEV/DEV_20180918"
    assert differences_from_sent(alpha, siemens_instances) == []


# Routing is decided before the database is touched: SQLite only (the other tests run on both).
@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
@pytest.mark.parametrize("element", ["StudyComments", "PatientComments"])
def test_xnat_project_subject_session_in_comments_place_the_study(
    depot: Depot,
    listen: Listen,
    scu: Scu,
    siemens_instances: list[Instance],
    tmp_path: Path,
    element: str,
) -> None:
    with depot.transaction() as db:
        create_project(db, "beta")
    listener = listen((MRI3T_ROUTE,))  # not called as MRI3T: the convention decides

    def comment(ds: Dataset) -> None:
        setattr(ds, element, "Project: beta Subject: S01 Session: S01_MR1")

    copies = [
        read_instance(rewritten(i.path, tmp_path / "sent" / i.path.name, comment))
        for i in siemens_instances
    ]
    statuses = scu.store(listener.port, [c.path for c in copies])

    assert set(statuses) == {0x0000}
    [study] = studies(depot)
    assert (study.project, study.subject, study.session, study.rule) == (
        "beta",
        "S01",
        "S01_MR1",
        "XNAT convention",
    )
    [outcome] = sweep_now(depot).archived
    assert outcome.session == "beta/S01/S01_MR1"
    assert differences_from_sent(depot, copies) == []


def test_an_unmatched_study_waits_unassigned_then_is_moved_and_archived(
    alpha: Depot,
    listen: Listen,
    scu: Scu,
    siemens_instances: list[Instance],
    depot_env: dict[str, str],
) -> None:
    listener = listen((MRI3T_ROUTE,))

    statuses = scu.store(listener.port, [i.path for i in siemens_instances], "ELSEWHERE")

    assert set(statuses) == {0x0000}
    [study] = studies(alpha)
    assert (study.state, study.project, study.instance_count) == ("receiving", None, 8)
    assert "no routing rule matched" in study.reason
    assert sweep_now(alpha).archived == ()
    [study] = studies(alpha)
    assert (study.state, study.project) == ("ready", None)  # quiet, but nowhere to go

    with alpha.reading() as db:
        assert [s.id for s in list_studies(db, unassigned=True)] == [study.id]
    moved = neurodepot_json(
        alpha.settings.root,
        depot_env,
        *("prearchive", "move", str(study.id), "alpha", "--subject", "S02", "--session", "S02_MR"),
    )
    assert (moved["project"], moved["state"]) == ("alpha", "ready")
    [outcome] = sweep_now(alpha).archived

    assert (outcome.session, outcome.archived) == ("alpha/S02/S02_MR", 8)
    assert differences_from_sent(alpha, siemens_instances) == []
    [study] = studies(alpha)
    assert (study.state, study.archived_to) == ("archived", "alpha/S02/S02_MR")
