"""The instances we send, and how to compare what was stored with what was sent.

Over the network a sender never sends its file meta header: the listener stores the received
dataset byte-exact behind a header that pynetdicom builds. So "the same instance" means the same
bytes after the file meta group, in the file sent and in the blob stored.
"""

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

PREAMBLE_AND_MARKER = 128 + 4
GROUP_LENGTH_ELEMENT = 12  # (0002,0000) UL, explicit VR: tag, VR, length, then the value


@dataclass(frozen=True)
class Instance:
    """One DICOM file of the test data, with what we check it by."""

    path: Path
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    series_number: int
    series_description: str
    modality: str
    manufacturer: str
    dataset_sha256: str


def dataset_part(data: bytes) -> bytes:
    """The bytes after the file meta group: offset 128 + 4 + 12 + value of (0002,0000)."""
    assert data[128:132] == b"DICM", "not a DICOM file with a preamble"
    start = PREAMBLE_AND_MARKER + GROUP_LENGTH_ELEMENT
    assert data[PREAMBLE_AND_MARKER : PREAMBLE_AND_MARKER + 4] == b"\x02\x00\x00\x00"
    (group_length,) = struct.unpack("<I", data[start - 4 : start])
    return data[start + group_length :]


def dataset_sha256(data: bytes) -> str:
    return hashlib.sha256(dataset_part(data)).hexdigest()


def read_instance(path: Path) -> Instance:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return Instance(
        path,
        str(ds.SOPInstanceUID),
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        int(ds.SeriesNumber),
        str(ds.get("SeriesDescription", "")),
        str(ds.Modality),
        str(ds.Manufacturer),
        dataset_sha256(path.read_bytes()),
    )


def instances_in(folder: Path) -> list[Instance]:
    """Every `*.dcm` below `folder` (the README files beside them are not DICOM)."""
    return [read_instance(path) for path in sorted(folder.rglob("*.dcm"))]


def rewritten(source: Path, target: Path, change: Callable[[Dataset], None]) -> Path:
    """A copy of `source` with `change` applied to its dataset (file meta kept)."""
    ds = pydicom.dcmread(source)
    change(ds)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return target
