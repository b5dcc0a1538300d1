"""Many senders at once, studies sent twice, and a UID re-used for other data."""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydicom.dataset import Dataset

from neurodepot.catalog.hierarchy import list_scans
from neurodepot.depot.folder import Depot
from neurodepot.ingest.prearchive import show_study
from tests.ingest_network.archived import (
    archived_instances,
    conflict_uids,
    differences_from_sent,
    received_count,
    stored_dataset_sha256,
    studies,
    sweep_now,
)
from tests.ingest_network.conftest import MRI3T_ROUTE, Listen
from tests.ingest_network.dicom_files import Instance, read_instance, rewritten
from tests.ingest_network.processes import neurodepot_json
from tests.ingest_network.senders import PEER_TIMEOUT_S, Scu

ASSOCIATIONS = 8
SUCCESS = [0x0000]


def test_eight_concurrent_associations_archive_every_instance_once(
    alpha: Depot,
    listen: Listen,
    scu: Scu,
    ge_instances: list[Instance],
    siemens_instances: list[Instance],
) -> None:
    listener = listen((MRI3T_ROUTE,))
    # Four associations send a Siemens series each, four send slices of the same GE study
    # (one slice per series): every study is opened by several senders at once.
    siemens_series = [siemens_instances[n : n + 2] for n in range(0, 8, 2)]
    ge_slices = [ge_instances[n : n + 12] for n in range(0, 600, 150)]
    batches = siemens_series + ge_slices
    assert len(batches) == ASSOCIATIONS
    together = threading.Barrier(ASSOCIATIONS, timeout=PEER_TIMEOUT_S)

    def send(batch: list[Instance]) -> list[int]:
        return scu.store(listener.port, [i.path for i in batch], "MRI3T", together)

    with ThreadPoolExecutor(ASSOCIATIONS) as pool:
        futures = [pool.submit(send, batch) for batch in batches]
        statuses = [future.result(timeout=4 * PEER_TIMEOUT_S) for future in futures]

    assert statuses == [SUCCESS * len(batch) for batch in batches]
    sent = [instance for batch in batches for instance in batch]
    assert received_count(alpha) == len(sent)
    report = sweep_now(alpha)
    assert sum(outcome.archived for outcome in report.archived) == len(sent)
    assert differences_from_sent(alpha, sent) == []
    # Each study is one prearchive study, however many associations opened it at once.
    held = sorted((study.study_instance_uid, study.instance_count) for study in studies(alpha))
    expected = {siemens_instances[0].study_instance_uid: 8, ge_instances[0].study_instance_uid: 48}
    assert held == sorted(expected.items())


def test_a_study_sent_twice_before_archiving_is_held_once(
    alpha: Depot, listen: Listen, scu: Scu, siemens_instances: list[Instance]
) -> None:
    listener = listen((MRI3T_ROUTE,))
    paths = [i.path for i in siemens_instances]

    first = scu.store(listener.port, paths, "MRI3T")
    again = scu.store(listener.port, paths, "MRI3T")

    assert first == again == SUCCESS * 8
    [study] = studies(alpha)
    assert (study.instance_count, study.conflict_count) == (8, 0)
    assert received_count(alpha) == 8
    [outcome] = sweep_now(alpha).archived
    assert (outcome.archived, outcome.duplicates, outcome.conflicts) == (8, 0, 0)
    assert differences_from_sent(alpha, siemens_instances) == []


def test_a_study_sent_again_after_archiving_is_counted_as_duplicates(
    alpha: Depot, listen: Listen, scu: Scu, siemens_instances: list[Instance]
) -> None:
    listener = listen((MRI3T_ROUTE,))
    paths = [i.path for i in siemens_instances]
    assert scu.store(listener.port, paths, "MRI3T") == SUCCESS * 8
    [first] = sweep_now(alpha).archived

    assert scu.store(listener.port, paths, "MRI3T") == SUCCESS * 8
    [again] = sweep_now(alpha).archived

    assert (first.archived, first.duplicates) == (8, 0)
    assert (again.session, again.archived, again.duplicates, again.conflicts) == (
        first.session,
        0,
        8,
        0,
    )
    assert differences_from_sent(alpha, siemens_instances) == []
    with alpha.reading() as db:
        scans = list_scans(db, "alpha", "DEV", "DEV_20180918")
    assert [scan.instance_count for scan in scans] == [2, 2, 2, 2]
    assert [s.state for s in studies(alpha)] == ["archived", "archived"]


def changed_image_comments(ds: Dataset) -> None:
    ds.ImageComments = "the same UID with other data"


def test_other_data_under_a_held_uid_is_kept_aside_in_the_prearchive(
    alpha: Depot, listen: Listen, scu: Scu, siemens_instances: list[Instance], tmp_path: Path
) -> None:
    listener = listen((MRI3T_ROUTE,))
    original = siemens_instances[0]
    other = read_instance(rewritten(original.path, tmp_path / "other.dcm", changed_image_comments))
    assert other.sop_instance_uid == original.sop_instance_uid
    assert other.dataset_sha256 != original.dataset_sha256

    statuses = scu.store(listener.port, [original.path, other.path], "MRI3T")

    assert statuses == SUCCESS * 2
    assert conflict_uids(alpha) == [(original.sop_instance_uid, "prearchive")]
    [study] = studies(alpha)
    assert (study.instance_count, study.conflict_count) == (1, 1)
    with alpha.reading() as db:
        [kept_aside] = show_study(db, study.id).conflicts
    assert stored_dataset_sha256(alpha, kept_aside.digest) == other.dataset_sha256
    sweep_now(alpha)
    assert differences_from_sent(alpha, [original]) == []
    [study] = studies(alpha)
    assert study.state == "conflict"


def test_other_data_under_an_archived_uid_never_replaces_the_archived_file(
    alpha: Depot,
    listen: Listen,
    scu: Scu,
    siemens_instances: list[Instance],
    tmp_path: Path,
    depot_env: dict[str, str],
) -> None:
    listener = listen((MRI3T_ROUTE,))
    assert scu.store(listener.port, [i.path for i in siemens_instances], "MRI3T") == SUCCESS * 8
    sweep_now(alpha)
    files_before = archived_instances(alpha)
    original = siemens_instances[0]
    other = read_instance(rewritten(original.path, tmp_path / "other.dcm", changed_image_comments))

    assert scu.store(listener.port, [other.path], "MRI3T") == SUCCESS
    [outcome] = sweep_now(alpha).archived

    assert (outcome.archived, outcome.duplicates, outcome.conflicts) == (0, 0, 1)
    assert archived_instances(alpha) == files_before
    assert differences_from_sent(alpha, siemens_instances) == []
    assert conflict_uids(alpha) == [(original.sop_instance_uid, "archive")]
    second = studies(alpha)[-1]
    assert second.state == "conflict"
    shown = neurodepot_json(alpha.settings.root, depot_env, "prearchive", "show", str(second.id))
    assert [(c["sop_instance_uid"], c["against"]) for c in shown["conflicts"]] == [
        (original.sop_instance_uid, "archive")
    ]
    assert stored_dataset_sha256(alpha, shown["conflicts"][0]["digest"]) == other.dataset_sha256
