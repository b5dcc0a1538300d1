"""What a sender hears when an instance cannot be kept, and that the listener carries on."""

import errno
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from sqlalchemy import func, select

from neurodepot.depot.blobstore import BlobWriter
from neurodepot.depot.folder import Depot
from neurodepot.depot.orm import Blob
from tests.ingest_network.archived import (
    differences_from_sent,
    received_count,
    studies,
    sweep_now,
)
from tests.ingest_network.conftest import MRI3T_ROUTE, Listen
from tests.ingest_network.dicom_files import Instance, dataset_part, rewritten
from tests.ingest_network.senders import Scu

SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000


def blob_rows(depot: Depot) -> int:
    with depot.reading() as db:
        return db.scalar(select(func.count()).select_from(Blob)) or 0


@pytest.mark.parametrize("failing", ["write", "finish"])
def test_a_full_disk_answers_out_of_resources_and_records_nothing(
    alpha: Depot,
    listen: Listen,
    scu: Scu,
    siemens_instances: list[Instance],
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    listener = listen((MRI3T_ROUTE,))
    sent = siemens_instances[:2]

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as fault:
        fault.setattr(BlobWriter, failing, no_space)
        statuses = scu.store(listener.port, [i.path for i in sent], "MRI3T")

    assert statuses == [OUT_OF_RESOURCES] * 2
    assert studies(alpha) == []
    assert blob_rows(alpha) == 0
    assert list(alpha.blobs.digests()) == []
    assert alpha.blobs.temporary_files() == []

    assert scu.store(listener.port, [i.path for i in sent], "MRI3T") == [SUCCESS] * 2
    assert received_count(alpha) == 2
    sweep_now(alpha)
    assert differences_from_sent(alpha, sent) == []


def without_study_uid(source: Path, target: Path) -> Path:
    def drop(ds: Dataset) -> None:
        del ds.StudyInstanceUID

    return rewritten(source, target, drop)


def without_study_and_series_uids() -> Dataset:
    """A dataset pynetdicom will send (it has SOP class and instance UIDs) and no more."""
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID = "NOUIDS"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def garbage_after_the_file_meta(source: Path, target: Path) -> Path:
    """A file whose meta is fine and whose dataset is noise: pynetdicom sends it as it is."""
    data = source.read_bytes()
    meta = data[: len(data) - len(dataset_part(data))]
    target.write_bytes(meta + bytes(range(256)) * 16)
    return target


# Refused before the database is touched: SQLite only.
@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
@pytest.mark.parametrize("fault", ["no StudyInstanceUID", "no UIDs but SOP", "garbage dataset"])
def test_a_malformed_instance_is_refused_and_the_rest_is_stored(
    alpha: Depot,
    listen: Listen,
    scu: Scu,
    siemens_instances: list[Instance],
    tmp_path: Path,
    fault: str,
) -> None:
    listener = listen((MRI3T_ROUTE,))
    first, second, later = siemens_instances[:3]
    bad: Path | Dataset
    if fault == "no StudyInstanceUID":
        bad = without_study_uid(first.path, tmp_path / "bad.dcm")
    elif fault == "no UIDs but SOP":
        bad = without_study_and_series_uids()
    else:
        bad = garbage_after_the_file_meta(first.path, tmp_path / "bad.dcm")

    statuses = scu.store(listener.port, [first.path, bad, second.path], "MRI3T")

    assert statuses == [SUCCESS, CANNOT_UNDERSTAND, SUCCESS]
    assert received_count(alpha) == 2
    assert scu.echo(listener.port) == SUCCESS
    assert scu.store(listener.port, [later.path], "MRI3T") == [SUCCESS]
    sweep_now(alpha)
    assert differences_from_sent(alpha, [first, second, later]) == []
