"""De-identifying DICOM headers: the real GE and Siemens series of dcm_qa_nih (identity gone,
still converting with dcm2niix to the same voxels), private tags, the options, burned-in
annotation, and every kind of bad input."""

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import SecondaryCaptureImageStorage

from neurodepot.convert.dcm2niix import convert_folder
from neurodepot.deid.burned_in import burned_in_reason
from neurodepot.deid.dicom_headers import (
    DicomRecipe,
    SubjectKeys,
    deidentify_dataset,
    deidentify_file,
    deidentify_into,
)
from neurodepot.deid.profile import ProfileOption
from neurodepot.deid.uid_remap import remap_uid
from neurodepot.errors import Invalid
from tests.deid.conftest import (
    CSA_ALLOW,
    GE_SERIES,
    PSEUDONYM,
    SIEMENS_SERIES,
    UID_KEY,
    UID_ROOT,
    instance,
    make_keys,
    make_recipe,
    write,
)

# Identifying values of dcm_qa_nih's headers (patient, institution, station, device).
IDENTIFYING = [b"Test^Regression", b"TEST_REGRESSION", b"NIH", b"FMRIF", b"Bethesda",
               b"10 Center Drive", b"AWP45160", b"fmrif3tb", b"000301496MR3T6MR",
               b"DCM2NIIX regression test", b"20180918", b"1.3.12.2.1107.5.2.19.45160",
               b"1.2.840.113619"]  # fmt: skip
SAFE_PRIVATE = ProfileOption.RETAIN_SAFE_PRIVATE


def _elements(ds: Dataset) -> Iterator[pydicom.DataElement]:
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _elements(item)


def _header(path: Path) -> bytes:
    """The file's bytes before Pixel Data: what a header leak would be found in."""
    data = path.read_bytes()
    return data[: data.rfind(b"\xe0\x7f\x10\x00")]


def _deidentify_series(series: Path, out: Path, recipe: DicomRecipe) -> list[Path]:
    out.mkdir(parents=True)
    return [deidentify_into(p, out, recipe, make_keys()).path for p in sorted(series.glob("*.dcm"))]


def _voxels(folder: Path, out: Path) -> tuple[np.ndarray, np.ndarray]:
    result = convert_folder(folder, out, "x", compress=False)
    assert result.converted, result.log
    image = nib.load(next(p for p in result.outputs if p.name.endswith(".nii")))
    return np.asanyarray(image.dataobj), image.affine


class TestRealSeries:
    @pytest.mark.parametrize("series", [GE_SERIES, SIEMENS_SERIES], ids=["GE", "Siemens"])
    def test_identity_is_gone_from_every_header(self, series: Path, tmp_path: Path):
        written = _deidentify_series(series, tmp_path / "out", make_recipe())
        assert len(written) == len(list(series.glob("*.dcm")))
        for path in written:
            header = _header(path)
            for value in IDENTIFYING:
                assert value not in header, f"{value!r} survived in {path.name}"
            ds = pydicom.dcmread(path)
            assert ds.PatientName == ds.PatientID == PSEUDONYM
            assert ds.PatientIdentityRemoved == "YES"
            assert ds.InstitutionName == "" and "InstitutionAddress" not in ds
            assert all(elem.value != "DEV" for elem in _elements(ds))
            assert not any(elem.tag.group % 2 for elem in _elements(ds))  # no private left
            assert not any(elem.tag.element == 0 for elem in _elements(ds))  # no group lengths
            assert "SourceApplicationEntityTitle" not in ds.file_meta

    def test_ge_series_converts_to_the_same_voxels(self, tmp_path: Path):
        _deidentify_series(GE_SERIES, tmp_path / "deid", make_recipe())
        original, original_affine = _voxels(GE_SERIES, tmp_path / "nii_orig")
        deidentified, affine = _voxels(tmp_path / "deid", tmp_path / "nii_deid")
        assert deidentified.shape == original.shape == (64, 64, 15, 10)
        assert np.array_equal(deidentified, original)
        assert np.allclose(affine, original_affine)

    def test_siemens_mosaic_converts_the_same_with_the_csa_header_allow_listed(self, tmp_path):
        recipe = make_recipe(SAFE_PRIVATE, private_allow=CSA_ALLOW)
        written = _deidentify_series(SIEMENS_SERIES, tmp_path / "deid", recipe)
        original, original_affine = _voxels(SIEMENS_SERIES, tmp_path / "nii_orig")
        deidentified, affine = _voxels(tmp_path / "deid", tmp_path / "nii_deid")
        assert deidentified.shape == original.shape == (72, 72, 5, 2)
        assert np.array_equal(deidentified, original)
        assert np.allclose(affine, original_affine)
        ds = pydicom.dcmread(written[0])
        kept = sorted(f"{e.tag.group:04X},{e.tag.element:04X}" for e in ds if e.tag.group % 2)
        assert kept == ["0029,0010", "0029,1010", "0029,1020"]
        assert b"Test^Regression" not in _header(written[0])

    def test_without_the_csa_header_a_siemens_mosaic_cannot_be_rebuilt(self, tmp_path):
        _deidentify_series(SIEMENS_SERIES, tmp_path / "deid", make_recipe())
        deidentified, _ = _voxels(tmp_path / "deid", tmp_path / "nii_deid")
        assert deidentified.shape != (72, 72, 5, 2)  # why neurodepot converts from originals


class TestStamp:
    def test_method_and_codes_name_the_profile_and_the_options(self):
        ds = instance()
        options = (ProfileOption.RETAIN_MODIFIED_DATES, ProfileOption.CLEAN_DESCRIPTORS)
        deidentify_dataset(ds, make_recipe(*options), make_keys())
        method = list(ds.DeidentificationMethod)
        assert method[0].startswith("neurodepot ")
        assert "2024e" in method[1] and "Basic Application Confidentiality Profile" in method[1]
        assert "Clean Descriptors Option" in method and all(len(v) <= 64 for v in method)
        items = ds.DeidentificationMethodCodeSequence
        assert [i.CodeValue for i in items] == ["113100", "113105", "113107"]
        assert {i.CodingSchemeDesignator for i in items} == {"DCM"}

    def test_the_file_meta_keeps_only_the_encoding_and_the_remapped_instance(self, tmp_path):
        src = write(instance(), tmp_path / "in.dcm")
        out = deidentify_file(src, tmp_path / "out.dcm", make_recipe(), make_keys())
        meta = pydicom.dcmread(out.path).file_meta
        assert "SourceApplicationEntityTitle" not in meta
        assert meta.MediaStorageSOPInstanceUID == remap_uid(
            "1.2.826.0.1.3680043.8.498.100001", UID_KEY, UID_ROOT
        )
        assert meta.ImplementationVersionName.startswith("NEURODEPOT")

    def test_keys_may_depend_on_the_original_patient_id(self, tmp_path):
        seen = []

        def keys_for(patient_id: str) -> SubjectKeys:
            seen.append(patient_id)
            return make_keys(name="sub-OTHER01")

        out = deidentify_file(write(instance(), tmp_path / "in.dcm"), tmp_path / "o.dcm",
                              make_recipe(), keys_for)  # fmt: skip
        assert seen == ["MRN0042"]
        assert pydicom.dcmread(out.path).PatientID == "sub-OTHER01"

    def test_into_a_folder_files_are_named_by_remapped_uids(self, tmp_path):
        src = write(instance(), tmp_path / "Doe_Jane.dcm")
        outcome = deidentify_into(src, tmp_path / "out", make_recipe(), make_keys(), by_series=True)
        series = remap_uid("1.2.826.0.1.3680043.8.498.300001", UID_KEY, UID_ROOT)
        assert outcome.path == tmp_path / "out" / series / f"{outcome.sop_instance_uid}.dcm"
        assert outcome.path.is_file() and outcome.series_instance_uid == series

    def test_a_file_can_be_de_identified_in_place(self, tmp_path):
        src = write(instance(), tmp_path / "in.dcm")
        deidentify_file(src, src, make_recipe(), make_keys())
        assert pydicom.dcmread(src).PatientName == PSEUDONYM
        assert [p.name for p in tmp_path.iterdir()] == ["in.dcm"]


class TestOptions:
    def test_clean_descriptors_blanks_descriptors_and_keeps_them_present(self):
        ds = instance(SeriesDescription="Jane's scan", ProtocolName="Dr Who protocol")
        deidentify_dataset(ds, make_recipe(ProfileOption.CLEAN_DESCRIPTORS), make_keys())
        assert ds.SeriesDescription == "" and ds.ProtocolName == ""
        plain = instance(SeriesDescription="Jane's scan", ProtocolName="Dr Who protocol")
        deidentify_dataset(plain, make_recipe(), make_keys())
        assert "SeriesDescription" not in plain and plain.ProtocolName == "ANONYMIZED"

    def test_clean_structured_content_keeps_items_and_blanks_their_free_text(self):
        item = Dataset()
        item.ValueType, item.TextValue, item.PersonName = "TEXT", "seen by Dr Who", "Who^Dr"
        ds = instance(ContentSequence=[item])
        deidentify_dataset(ds, make_recipe(ProfileOption.CLEAN_STRUCTURED_CONTENT), make_keys())
        (kept,) = ds.ContentSequence
        assert kept.ValueType == "TEXT" and kept.TextValue == "" and kept.PersonName == "ANONYMIZED"
        basic = instance(ContentSequence=[item])
        deidentify_dataset(basic, make_recipe(), make_keys())
        assert len(basic.ContentSequence) == 1 and len(basic.ContentSequence[0]) == 0

    def test_retain_device_and_institution_identity_keep_what_they_name(self):
        ds = instance(StationName="AWP45160", DeviceSerialNumber="45160", InstitutionName="NIH")
        recipe = make_recipe(ProfileOption.RETAIN_DEVICE_IDENTITY)
        deidentify_dataset(ds, recipe, make_keys())
        assert ds.StationName == "AWP45160" and ds.DeviceSerialNumber == "45160"
        assert ds.InstitutionName == ""


class TestPrivate:
    def _with_private(self) -> Dataset:
        ds = instance()
        block = ds.private_block(0x0009, "ACME 1.0", create=True)
        block.add_new(0x01, "LO", "keep me")
        block.add_new(0x02, "LO", "Jane Doe again")
        other = ds.private_block(0x0009, "OTHER", create=True)
        other.add_new(0x01, "LO", "other vendor")
        nested = Dataset()
        nested.PatientName = "Doe^Jane"
        block.add_new(0x03, "SQ", [nested])
        ds.add_new(0x00090000, "UL", 99)  # a private group length
        return ds

    def test_private_elements_go_by_default(self):
        ds = self._with_private()
        allow = frozenset({("ACME 1.0", 0x01)})
        deidentify_dataset(ds, make_recipe(private_allow=allow), make_keys())  # option not set
        assert not [e for e in ds if e.tag.group % 2]

    def test_retain_safe_private_keeps_allow_listed_elements_with_their_creator(self):
        ds = self._with_private()
        allow = frozenset({("ACME 1.0", 0x01), ("ACME 1.0", 0x03)})
        deidentify_dataset(ds, make_recipe(SAFE_PRIVATE, private_allow=allow), make_keys())
        kept = {e.tag: e.value for e in ds if e.tag.group % 2}
        assert set(kept) == {0x00090010, 0x00091001, 0x00091003}
        assert kept[0x00091001] == "keep me"
        assert kept[0x00091003][0].PatientName == ""  # the table applies inside it too

    def test_allow_list_entries_are_validated(self):
        with pytest.raises(Invalid, match="not \\(creator, 0x00-0xFF\\)"):
            make_recipe(SAFE_PRIVATE, private_allow=frozenset({("ACME", 0x100)}))
        with pytest.raises(Invalid, match="exclude each other"):
            make_recipe(ProfileOption.RETAIN_FULL_DATES, ProfileOption.RETAIN_MODIFIED_DATES)


class TestBurnedIn:
    @pytest.mark.parametrize(
        ("attributes", "reason"),
        [
            ({"BurnedInAnnotation": "YES"}, "Burned In Annotation is YES"),
            ({"SOPClassUID": SecondaryCaptureImageStorage}, "Burned In Annotation is missing"),
            ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7.4", "BurnedInAnnotation": "NO"},
             "Secondary Capture"),
            ({"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]}, "SCREEN SAVE"),
            ({"ImageType": ["DERIVED", "SECONDARY", "OTHER", "CSA REPORT"]}, "CSA REPORT"),
            ({"ConversionType": "WSD"}, "workstation screen"),
        ],
    )  # fmt: skip
    def test_signs_of_burned_in_text_are_flagged_with_the_reason(self, attributes, reason):
        assert reason in burned_in_reason(instance(**attributes))

    def test_an_ordinary_image_is_not_flagged(self):
        assert burned_in_reason(instance(BurnedInAnnotation="NO", ImageType=["ORIGINAL"])) is None
        ds = instance(ImageType=["DERIVED", "SECONDARY", "MPR"])
        assert burned_in_reason(ds) is None

    def test_the_outcome_carries_the_reason(self, tmp_path):
        src = write(instance(BurnedInAnnotation="YES"), tmp_path / "in.dcm")
        outcome = deidentify_file(src, tmp_path / "out.dcm", make_recipe(), make_keys())
        assert outcome.burned_in == "Burned In Annotation is YES"


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _replace(old: bytes, new: bytes, **attributes: object) -> bytes:
    data = _bytes(instance(**attributes))
    assert data.count(old) == 1
    return data.replace(old, new)


GOOD = _bytes(instance())
ROWS_US = b"\x28\x00\x10\x00US\x02\x00\x04\x00"  # (0028,0010) Rows = 4
UTF8_MANUFACTURER = {"Manufacturer": "ACMEVENDOR", "SpecificCharacterSet": "ISO_IR 192"}
PIXELS_AT = GOOD.rfind(b"\xe0\x7f\x10\x00")
BAD_INPUTS: dict[str, tuple[Callable[[], bytes], str]] = {
    "text file": (lambda: b"PatientName=Doe\n" * 20, "not a DICOM file"),
    "empty file": (lambda: b"", "not a DICOM file"),
    "cut in pixel data": (lambda: GOOD[:-7], "truncated: element (7FE0,0010) declares 32"),
    "cut before pixel data": (lambda: GOOD[:PIXELS_AT], "an image (it has Rows) without pixel"),
    "cut in the header": (lambda: GOOD[:200], "no SOP Instance UID"),
    "unknown VR": (lambda: _replace(b"\x10\x00\x10\x00PN", b"\x10\x00\x10\x00Q?"), "unknown VR"),
    "odd-sized US": (
        lambda: _replace(ROWS_US, ROWS_US[:6] + b"\x03\x00\x04\x00\x00"),
        "(0028,0010): 3 bytes is not a whole US value",
    ),
    "length past the end": (
        lambda: _replace(b"\x10\x00\x10\x00PN\x08\x00", b"\x10\x00\x10\x00PN\xff\x7f"),
        "(0010,0010) declares 32767 bytes",
    ),
    "unknown character set": (
        lambda: _replace(b"ISO_IR 100", b"ISO_IR 999"),
        "undecodable Specific Character Set: Unknown encoding 'ISO_IR 999'",
    ),
    "undecodable text": (
        lambda: _replace(b"ACMEVENDOR", b"ACME\xff\xfe\xfdDOR", **UTF8_MANUFACTURER),
        "element (0008,0070) cannot be decoded as UTF8",
    ),
}


class TestBadInput:
    @pytest.mark.parametrize("case", list(BAD_INPUTS))
    def test_bad_input_is_invalid_naming_the_file_and_nothing_is_written(self, case, tmp_path):
        make, problem = BAD_INPUTS[case]
        src = tmp_path / "in" / "case.dcm"
        src.parent.mkdir()
        src.write_bytes(make())
        out = tmp_path / "out"
        out.mkdir()
        (out / "existing.dcm").write_bytes(b"before")
        with pytest.raises(Invalid) as info:
            deidentify_file(src, out / "existing.dcm", make_recipe(), make_keys())
        assert str(src) in info.value.message and problem in info.value.message
        with pytest.raises(Invalid, match=r"case\.dcm"):
            deidentify_into(src, out, make_recipe(), make_keys())
        assert [p.name for p in out.iterdir()] == ["existing.dcm"]
        assert (out / "existing.dcm").read_bytes() == b"before"

    def test_a_missing_file_cannot_be_read(self, tmp_path):
        missing = tmp_path / "nothing.dcm"
        with pytest.raises(Invalid, match=r"nothing\.dcm: cannot be read"):
            deidentify_file(missing, tmp_path / "o.dcm", make_recipe(), make_keys())

    def test_an_undecodable_patient_id_is_reported_when_keys_depend_on_it(self, tmp_path):
        data = _replace(b"MRN0042", b"MRN\xff\xfe42", SpecificCharacterSet="ISO_IR 192")
        (tmp_path / "in.dcm").write_bytes(data)
        with pytest.raises(Invalid, match="element \\(0010,0020\\) cannot be decoded"):
            deidentify_file(tmp_path / "in.dcm", tmp_path / "o.dcm", make_recipe(),
                            lambda patient_id: make_keys())  # fmt: skip

    def test_a_failed_write_leaves_no_temporary_file(self, tmp_path, monkeypatch):
        src = write(instance(), tmp_path / "in" / "in.dcm")

        def fail(*args, **kwargs):
            raise ValueError("disk says no")

        monkeypatch.setattr(Dataset, "save_as", fail)
        (tmp_path / "out").mkdir()
        with pytest.raises(Invalid, match="cannot be written as DICOM once de-identified"):
            deidentify_file(src, tmp_path / "out" / "x.dcm", make_recipe(), make_keys())
        assert list((tmp_path / "out").iterdir()) == []

    def test_a_missing_destination_folder_is_invalid(self, tmp_path):
        src = write(instance(), tmp_path / "in.dcm")
        with pytest.raises(Invalid, match="cannot write there"):
            deidentify_file(src, tmp_path / "no" / "x.dcm", make_recipe(), make_keys())

    @pytest.mark.parametrize("name", ["", "a\\b", "x" * 65, "Jöns"])
    def test_bad_pseudonyms_are_refused(self, name):
        with pytest.raises(Invalid, match="pseudonym"):
            SubjectKeys(name, "sub-1", 0)
