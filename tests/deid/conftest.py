"""Shared pieces for the de-identification tests: a project's recipe, a subject's keys, small
synthetic DICOM instances written as real Part 10 files, and the real series of dcm_qa_nih.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from neurodepot.deid.dicom_headers import DicomRecipe, SubjectKeys
from neurodepot.deid.profile import ProfileOption
from tests.cli.conftest import cli  # noqa: F401
from tests.conftest import TESTDATA
from tests.convert.conftest import convert, studies  # noqa: F401

UID_KEY = bytes(range(32))
UID_ROOT = "2.25"
PSEUDONYM = "sub-7KQ2M9XD"
OFFSET_DAYS = -137
DCM_QA_IN = TESTDATA / "dcm_qa_nih" / "In"
GE_SERIES = DCM_QA_IN / "20180918GE" / "mr_0004"
SIEMENS_SERIES = DCM_QA_IN / "20180918Si" / "mr_0003"
# What dcm2niix reads from the Siemens private CSA header (image and series parts).
CSA_ALLOW = frozenset({("SIEMENS CSA HEADER", 0x10), ("SIEMENS CSA HEADER", 0x20)})


def make_recipe(*options: ProfileOption, private_allow: frozenset = frozenset()) -> DicomRecipe:
    return DicomRecipe(frozenset(options), UID_ROOT, UID_KEY, private_allow)


def make_keys(offset: int = OFFSET_DAYS, name: str = PSEUDONYM) -> SubjectKeys:
    return SubjectKeys(name, name, offset)


def instance(sop_uid: str = "1.2.826.0.1.3680043.8.498.100001", **attributes: object) -> Dataset:
    """A small, valid MR instance (4x4 pixels) with `attributes` set by keyword."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "SCANNER_AE"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.200001"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.300001"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.400001"
    ds.Modality = "MR"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN0042"
    ds.StudyDate = "20180918"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(32))
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def written(tmp_path: Path) -> Callable[..., Path]:
    """`written(name, **attributes)`: an `instance` saved under `tmp_path`."""

    def make(name: str = "in.dcm", **attributes: object) -> Path:
        return write(instance(**attributes), tmp_path / name)

    return make
