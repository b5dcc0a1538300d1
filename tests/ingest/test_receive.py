"""Recording received instances: stored once, duplicates acknowledged, conflicts kept aside."""

import pytest

from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid
from neurodepot.ingest.prearchive import list_studies, show_study
from neurodepot.ingest.receive import CONFLICT, DUPLICATE, STORED, Arrival, Receiver
from neurodepot.ingest.routing import compile_routes
from tests.ingest.conftest import (
    SQLITE_ONLY,
    DicomSource,
    assert_consistent,
    blob_rows,
    modified,
    resent,
    sha256,
)

SCANNER = Arrival("dicom", "NEURODEPOT", "SCANNER")


def test_an_instance_is_stored_byte_exact(project: Depot, dicom_source: DicomSource) -> None:
    path = dicom_source.siemens_files()[0]
    received = Receiver(project, ()).store(path.read_bytes(), SCANNER)
    assert received.outcome == STORED
    assert received.ref.digest == sha256(path)
    assert sha256(project.blobs.path(received.ref.digest)) == sha256(path)
    assert_consistent(project)


def test_the_same_instance_again_is_a_duplicate_even_from_another_sender(
    project: Depot, dicom_source: DicomSource
) -> None:
    path = dicom_source.siemens_files()[0]
    receiver = Receiver(project, ())
    first = receiver.store(path.read_bytes(), SCANNER)
    again = receiver.store(path.read_bytes(), SCANNER)
    relayed = Receiver(project, ()).store(
        resent(path, SourceApplicationEntityTitle="RELAY"),
        Arrival("dicom", "NEURODEPOT", "RELAY"),
    )
    assert [r.outcome for r in (first, again, relayed)] == [STORED, DUPLICATE, DUPLICATE]
    assert first.study_id == again.study_id == relayed.study_id
    with project.reading() as db:
        detail = show_study(db, first.study_id)
    assert (detail.study.instance_count, detail.study.conflict_count) == (1, 0)


def test_the_same_uid_with_other_data_is_a_conflict_kept_aside(
    project: Depot, dicom_source: DicomSource
) -> None:
    path = dicom_source.siemens_files()[0]
    receiver = Receiver(project, ())
    first = receiver.store(path.read_bytes(), SCANNER)
    changed = modified(path, SeriesDescription="edited on the scanner")
    clash = receiver.store(changed, SCANNER)
    assert clash.outcome == CONFLICT and clash.study_id == first.study_id
    with project.reading() as db:
        detail = show_study(db, first.study_id)
    assert (detail.study.instance_count, detail.study.conflict_count) == (1, 1)
    assert [(c.sop_instance_uid, c.against, c.digest) for c in detail.conflicts] == [
        (first.sop_instance_uid, "prearchive", sha256(changed))
    ]
    assert blob_rows(project) == {sha256(path), sha256(changed)}
    assert_consistent(project)


@SQLITE_ONLY
def test_data_that_cannot_be_archived_is_refused_and_nothing_stored(
    project: Depot, dicom_source: DicomSource
) -> None:
    receiver = Receiver(project, ())
    with pytest.raises(Invalid, match="not a DICOM file"):
        receiver.store(b"hello" * 100, SCANNER)
    with pytest.raises(Invalid, match="without SeriesInstanceUID"):
        receiver.store(modified(dicom_source.siemens_files()[0], SeriesInstanceUID=None), SCANNER)
    assert blob_rows(project) == set()
    assert list(project.blobs.digests()) == []
    with project.reading() as db:
        assert list_studies(db) == []


def test_one_study_sent_to_two_destinations_makes_two_studies(
    project: Depot, dicom_source: DicomSource
) -> None:
    routes = compile_routes([{"called_aet": "RESEARCH", "project": "P"}])
    receiver = Receiver(project, routes)
    first, second = dicom_source.siemens_files()
    routed = receiver.store(first.read_bytes(), Arrival("dicom", "RESEARCH", "SCANNER"))
    unrouted = receiver.store(second.read_bytes(), Arrival("dicom", "CLINICAL", "SCANNER"))
    assert routed.study_id != unrouted.study_id
    with project.reading() as db:
        studies = list_studies(db)
    assert [(s.project, s.called_aet, s.rule, s.instance_count) for s in studies] == [
        ("P", "RESEARCH", "route 1", 1),
        (None, "CLINICAL", "", 1),
    ]
