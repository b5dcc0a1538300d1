"""Reading an instance's identity and routing facts, and where its dataset starts.

`read_header` takes bytes (the listener's path) or a file object (the import's path); both are
checked here, on the real GE and Siemens files and on damaged copies of them.
"""

import io
from collections.abc import Callable
from datetime import date

import pytest

from neurodepot.errors import Invalid
from neurodepot.ingest.header import InstanceHeader, parse_da, read_header
from tests.ingest.conftest import DicomSource, meta_end, modified, resent, sha256

Reader = Callable[[bytes], InstanceHeader]
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


@pytest.fixture(params=["bytes", "stream"])
def read(request: pytest.FixtureRequest) -> Reader:
    """`read_header` given the data as bytes (the listener) or as a file object (the import)."""
    if request.param == "bytes":
        return read_header
    return lambda data: read_header(io.BytesIO(data))


class TestIdentity:
    def test_ge_instance(self, read: Reader, dicom_source: DicomSource) -> None:
        header = read(dicom_source.ge_files()[0].read_bytes())
        assert header.sop_class_uid == MR_STORAGE
        assert (
            header.sop_instance_uid == "1.2.840.113619.2.408.5282380.4562341.27155.1537232354.550"
        )
        assert header.study_instance_uid == dicom_source.ge_study
        assert header.series_instance_uid == (
            "1.2.840.113619.2.408.5282380.4562341.27283.1537222031.341"
        )
        assert header.transfer_syntax == EXPLICIT_LE
        assert (header.series_number, header.modality) == (4, "MR")
        assert (header.patient_id, header.patient_name) == ("DEV", "Test^Regression")
        assert header.study_date == date(2018, 9, 18)
        assert header.routing == {
            "StudyDescription": "",
            "StudyComments": "",
            "PatientComments": "",
            "AccessionNumber": "",
            "ReferringPhysicianName": "",
        }

    def test_siemens_instance(self, read: Reader, dicom_source: DicomSource) -> None:
        header = read(dicom_source.siemens_files("mr_0004")[0].read_bytes())
        assert header.study_instance_uid == dicom_source.siemens_study
        assert header.series_instance_uid == (
            "1.3.12.2.1107.5.2.19.45160.2018091812265244454190492.0.0.0"
        )
        assert (header.series_number, header.modality, header.patient_id) == (4, "MR", "DEV")
        assert header.routing["StudyDescription"] == "FMRIF^QA"

    def test_routing_fields_are_read_stripped(
        self, read: Reader, dicom_source: DicomSource
    ) -> None:
        data = modified(
            dicom_source.ge_files()[0],
            StudyComments="Project: P Subject: S Session: E ",
            PatientComments="consented",
            AccessionNumber="A123",
            ReferringPhysicianName="Who^Doctor",
            StudyDescription="Brain^Routine",
        )
        assert read(data).routing == {
            "StudyDescription": "Brain^Routine",
            "StudyComments": "Project: P Subject: S Session: E",
            "PatientComments": "consented",
            "AccessionNumber": "A123",
            "ReferringPhysicianName": "Who^Doctor",
        }

    def test_missing_series_number_and_date_are_none(
        self, read: Reader, dicom_source: DicomSource
    ) -> None:
        header = read(modified(dicom_source.ge_files()[0], SeriesNumber=None, StudyDate=None))
        assert (header.series_number, header.study_date) == (None, None)


class TestDatasetOffset:
    def test_offset_is_the_end_of_the_meta_group(
        self, read: Reader, dicom_source: DicomSource
    ) -> None:
        for path in (dicom_source.ge_files()[0], dicom_source.siemens_files()[0]):
            data = path.read_bytes()
            header = read(data)
            assert header.dataset_offset == meta_end(data)
            assert sha256(data[header.dataset_offset :]) == sha256(data[meta_end(data) :])

    def test_other_meta_leaves_the_dataset_bytes_the_same(
        self, read: Reader, dicom_source: DicomSource
    ) -> None:
        path = dicom_source.ge_files()[0]
        original = path.read_bytes()
        again = resent(path, SourceApplicationEntityTitle="ANOTHER_SCU")
        first, second = read(original), read(again)
        assert second.dataset_offset == meta_end(again) != first.dataset_offset
        assert sha256(again[second.dataset_offset :]) == sha256(original[first.dataset_offset :])
        assert second.sop_instance_uid == first.sop_instance_uid


class TestInvalid:
    def test_text_file_is_not_dicom(self, read: Reader, dicom_source: DicomSource) -> None:
        text = (dicom_source.root / dicom_source.texts[0]).read_bytes()
        with pytest.raises(Invalid, match="not a DICOM file"):
            read(text)

    def test_dicm_marker_must_be_after_the_preamble(
        self, read: Reader, dicom_source: DicomSource
    ) -> None:
        data = dicom_source.ge_files()[0].read_bytes()
        with pytest.raises(Invalid, match="not a DICOM file"):
            read(data[128:])

    @pytest.mark.parametrize("missing", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
    def test_an_instance_without_a_uid_is_refused_naming_it(
        self, read: Reader, dicom_source: DicomSource, missing: str
    ) -> None:
        data = modified(dicom_source.ge_files()[0], **{missing: None})
        with pytest.raises(Invalid, match=f"without {missing}"):
            read(data)

    @pytest.mark.parametrize(
        "length",
        [
            pytest.param(136, id="in-the-group-length-tag"),
            pytest.param(140, id="in-the-group-length-value"),
            pytest.param(143, id="one-byte-short-of-the-group-length"),
            pytest.param(300, id="in-the-meta-group"),
            pytest.param(1000, id="in-the-patient-group"),
        ],
    )
    def test_a_file_cut_short_in_its_header_is_invalid(
        self, read: Reader, dicom_source: DicomSource, length: int
    ) -> None:
        data = dicom_source.ge_files()[0].read_bytes()[:length]
        with pytest.raises(Invalid) as raised:
            read(data)
        assert "DICOM" in raised.value.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20180918", date(2018, 9, 18)),
        ("2018.09.18", date(2018, 9, 18)),
        (" 20180918 ", date(2018, 9, 18)),
        ("", None),
        ("2018091", None),
        ("201809180", None),
        ("20181318", None),
        ("20180230", None),
        ("yyyymmdd", None),
    ],
)
def test_parse_da(value: str, expected: date | None) -> None:
    assert parse_da(value) == expected


def test_a_file_object_can_be_hashed_from_the_offset_it_gives(dicom_source: DicomSource) -> None:
    path = dicom_source.siemens_files()[0]
    data = path.read_bytes()
    with path.open("rb") as handle:
        header = read_header(handle)
        handle.seek(header.dataset_offset)
        assert sha256(handle.read()) == sha256(data[meta_end(data) :])
