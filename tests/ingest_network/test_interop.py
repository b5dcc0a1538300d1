"""Real peers talk to the listener: dcmtk's echoscu/storescu and pynetdicom's SCU.

Every instance sent is archived once, and what is stored is byte for byte the dataset sent.
"""

from collections import defaultdict
from pathlib import Path

import pytest
from pydicom.uid import MRImageStorage

from neurodepot.catalog.hierarchy import list_scans
from neurodepot.catalog.resources import get_resource
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from tests.ingest_network.archived import differences_from_sent, studies, sweep_now
from tests.ingest_network.conftest import MRI3T_ROUTE, Listen
from tests.ingest_network.dicom_files import Instance
from tests.ingest_network.senders import Scu, echoscu, storescu


# Echo needs no database: SQLite only.
@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
def test_echoscu_gets_an_answer(listen: Listen) -> None:
    result = echoscu(listen().port)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
def test_pynetdicom_echo_gets_success(listen: Listen, scu: Scu) -> None:
    assert scu.echo(listen().port) == 0x0000


def test_every_instance_storescu_sends_is_archived_as_sent(
    alpha: Depot,
    listen: Listen,
    ge_folder: Path,
    ge_instances: list[Instance],
    siemens_instances: list[Instance],
) -> None:
    listener = listen((MRI3T_ROUTE,))
    result = storescu(listener.port, ge_folder.parent, "MRI3T")
    assert result.returncode == 0, result.stdout + result.stderr

    report = sweep_now(alpha)

    assert report.refused == ()
    assert sorted(outcome.archived for outcome in report.archived) == [8, 600]
    assert differences_from_sent(alpha, ge_instances + siemens_instances) == []
    for study in studies(alpha):
        assert study.state == "archived", study
        sent = ge_instances if study.instance_count == 600 else siemens_instances
        assert_scans_describe_their_series(alpha, Target.parse(study.archived_to), sent)


def test_every_instance_pynetdicom_sends_is_archived_as_sent(
    alpha: Depot,
    listen: Listen,
    scu: Scu,
    ge_instances: list[Instance],
    siemens_instances: list[Instance],
) -> None:
    listener = listen((MRI3T_ROUTE,))
    sent = siemens_instances + ge_instances[::15]  # every vendor and series, 48 instances

    statuses = scu.store(listener.port, [instance.path for instance in sent], "MRI3T")

    assert statuses == [0x0000] * len(sent)
    assert len(sweep_now(alpha).archived) == 2
    assert differences_from_sent(alpha, sent) == []


def assert_scans_describe_their_series(depot: Depot, session: Target, sent: list[Instance]) -> None:
    """One scan per series sent, with its facts from the headers and a file per instance."""
    series: dict[str, list[Instance]] = defaultdict(list)
    for instance in sent:
        series[instance.series_instance_uid].append(instance)
    assert session.session is not None and session.subject is not None
    with depot.reading() as db:
        scans = list_scans(db, session.project, session.subject, session.session)
        assert {scan.series_instance_uid for scan in scans} == series.keys()
        for scan in scans:
            members = series[str(scan.series_instance_uid)]
            first = members[0]
            assert scan.label == str(first.series_number)
            assert scan.series_number == first.series_number
            assert scan.series_description == first.series_description
            assert scan.modality == first.modality == "MR"
            assert scan.manufacturer == first.manufacturer
            assert scan.sop_class_uid == MRImageStorage
            assert scan.instance_count == len(members)
            assert scan.matrix and scan.voxel_size and scan.acquired_on is not None
            files = get_resource(
                db, Target(session.project, session.subject, session.session, scan.label), "DICOM"
            ).files
            assert sorted(f.path for f in files) == sorted(
                f"{m.sop_instance_uid}.dcm" for m in members
            )
