"""The release checker: each criterion passes on a clean shareable dataset and fails, with
evidence that locates the problem, on one planted problem at a time.

The clean dataset is made here: DICOM de-identified by `deid.dicom_headers` from pydicom's
MR_small and a real Siemens file, a BIDS tree with sidecars and TSVs, an EDF+, a BrainVision
recording, a FIF written by MNE and a NIfTI written by nibabel.
"""

import json
import shutil
import tracemalloc
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import mne
import nibabel
import numpy as np
import pydicom
import pytest
import scipy.io
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from neurodepot.deid.check import CheckContext, Criterion, Identifier, check_dataset
from neurodepot.deid.check_report import EVIDENCE_CAP, write_reports
from neurodepot.deid.check_scan import CHUNK
from neurodepot.deid.dicom_headers import DicomRecipe, SubjectKeys, deidentify_file
from neurodepot.deid.profile import ProfileOption
from neurodepot.errors import Invalid
from tests.conftest import TESTDATA

SUB, SES = "sub-7KQ2M9XD", "ses-AB12CD34"
SESSION = f"{SUB}/{SES}"
STEM = f"{SUB}_{SES}"
OPTIONS = frozenset(
    {ProfileOption.RETAIN_MODIFIED_DATES, ProfileOption.RETAIN_PATIENT_CHARACTERISTICS}
)
OFFSET = -400
STUDY_DAY = date(2018, 9, 18)  # the Siemens file's acquisition date
SHIFTED = "2017-08-14"  # STUDY_DAY + OFFSET
IDENTIFIERS = (
    Identifier("Qwertyson^Alfreda", "patient name"),
    Identifier("Qwertyson", "patient name part"),
    Identifier("Alfreda", "patient name part"),
    Identifier("PX774411", "patient ID"),
    Identifier("ACC99812", "accession number"),
    Identifier("s01", "subject label"),
    Identifier("v1", "session label"),
    Identifier("Grønnåsen", "patient name part"),
)
ORIGINAL_DATES = (STUDY_DAY, date(1961, 4, 12))
ANAT = f"{SESSION}/anat/{STEM}_T1w.nii.gz"
DICOM_DIR = f"sourcedata/dicom/{SESSION}"
SIEMENS = TESTDATA / "dcm_qa_nih/In/20180918Si/mr_0003/epi_pe_ap-00001.dcm"


# --- writing the clean dataset ------------------------------------------------------------------


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))


def write_edf(
    path: Path,
    patient: str = "X X X X",
    recording: str = "Startdate X X X X",
    startdate: str = "01.01.85",
    annotation: str = "",
) -> None:
    """An EDF+ file by the specification: one EEG signal and the annotation signal."""

    def field(text: str, width: int) -> bytes:
        return text.encode("latin-1")[:width].ljust(width)

    signals = [("Fz", 10), ("EDF Annotations", 32)]
    head = b"".join(
        [
            field("0", 8), field(patient, 80), field(recording, 80), field(startdate, 8),
            field("12.00.00", 8), field(str(256 * (1 + len(signals))), 8), field("EDF+C", 44),
            field("1", 8), field("1", 8), field(str(len(signals)), 4),
        ]
    )  # fmt: skip
    columns = [
        [field(label, 16) for label, _ in signals],
        [field("AgAgCl electrode" if n == 10 else "", 80) for _, n in signals],
        [field("uV" if n == 10 else "", 8) for _, n in signals],
        [field("-3200", 8)] * 2, [field("3200", 8)] * 2,
        [field("-32768", 8)] * 2, [field("32767", 8)] * 2,
        [field("HP:0.1Hz", 80)] * 2,
        [field(str(n), 8) for _, n in signals],
        [field("", 32)] * 2,
    ]  # fmt: skip
    tal = b"+0\x14\x14\x00" + (
        b"+0.5\x140\x14" + annotation.encode() + b"\x14\x00" * bool(annotation)
    )
    record = b"\x00\x00" * 10 + tal.ljust(64, b"\x00")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + b"".join(b"".join(col) for col in columns) + record)


def write_brainvision(folder: Path, stem: str, comment: str = "", segment: str = "") -> None:
    segment = segment or SHIFTED.replace("-", "") + "122500000000"
    write_text(
        folder / f"{stem}.vhdr",
        "Brain Vision Data Exchange Header File Version 1.0\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem}.eeg\nMarkerFile={stem}.vmrk\nDataFormat=BINARY\n"
        "DataOrientation=MULTIPLEXED\nNumberOfChannels=1\nSamplingInterval=1000\n"
        "[Binary Infos]\nBinaryFormat=INT_16\n[Channel Infos]\nCh1=Fz,,0.1,uV\n"
        f"[Comment]\n{comment}\n",
    )
    write_text(
        folder / f"{stem}.vmrk",
        "Brain Vision Data Exchange Marker File, Version 1.0\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem}.eeg\n[Marker Infos]\nMk1=New Segment,,1,1,0,{segment}\n",
    )
    (folder / f"{stem}.eeg").write_bytes(b"\x00\x00" * 100)


def write_fif(path: Path, his_id: str = SUB, experimenter: str = "", when: date | None = None):
    info = mne.create_info(["EEG 001", "EEG 002"], 100.0, "eeg")
    info["subject_info"] = {"his_id": his_id}
    if experimenter:
        info["experimenter"] = experimenter
    raw = mne.io.RawArray(np.zeros((2, 100)), info, verbose="error")
    day = when or date.fromisoformat(SHIFTED)
    raw.set_meas_date(datetime(day.year, day.month, day.day, 12, tzinfo=UTC))
    path.parent.mkdir(parents=True, exist_ok=True)
    raw.save(path, overwrite=True, verbose="error")


def write_nifti(path: Path, descrip: bytes = b"TE=30", extension: bytes | None = None) -> None:
    image = nibabel.Nifti1Image(np.zeros((4, 4, 4), dtype=np.int16), np.eye(4))
    image.header["descrip"] = descrip
    if extension is not None:
        image.header.extensions.append(nibabel.nifti1.Nifti1Extension(6, extension))
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(image, path)


def write_dicom(root: Path) -> None:
    recipe = DicomRecipe(OPTIONS, "2.25", b"k" * 32)
    keys = SubjectKeys(SUB, SUB, OFFSET)
    (root / DICOM_DIR).mkdir(parents=True)
    deidentify_file(
        Path(get_testdata_file("MR_small.dcm")), root / DICOM_DIR / "1.dcm", recipe, keys
    )
    deidentify_file(SIEMENS, root / DICOM_DIR / "2.dcm", recipe, keys)


@pytest.fixture
def clean(tmp_path: Path) -> tuple[Path, CheckContext]:
    """A shareable dataset with nothing to find, and the context under which it passes."""
    root = tmp_path / "shareable"
    write_json(root / "dataset_description.json", {"Name": "Study", "BIDSVersion": "1.9.0"})
    write_text(root / "README", "A test dataset, acquired in 2010 at 3 T.\n")
    write_text(root / "participants.tsv", f"participant_id\tage\tsex\n{SUB}\t48\tO\n")
    write_text(
        root / SESSION / f"{STEM}_scans.tsv",
        f"filename\tacq_time\nanat/{STEM}_T1w.nii.gz\t{SHIFTED}T12:25:00\n",
    )
    write_nifti(root / ANAT)
    sidecar = {"RepetitionTime": 2.3, "AcquisitionDateTime": f"{SHIFTED}T12:25:00", "Run": 1}
    write_json(root / ANAT.replace(".nii.gz", ".json"), sidecar)
    write_json(root / SESSION / f"func/{STEM}_task-rest_run-01_bold.json", {"TaskName": "rest"})
    write_edf(root / SESSION / f"eeg/{STEM}_task-rest_eeg.edf")
    write_brainvision(root / SESSION / "eeg", f"{STEM}_task-oddball_eeg")
    write_fif(root / SESSION / f"meg/{STEM}_task-rest_meg.fif")
    write_dicom(root)
    context = CheckContext(
        identifiers=IDENTIFIERS,
        original_dates=ORIGINAL_DATES,
        options=OPTIONS,
        private_allow=frozenset(),
        defaced=frozenset({ANAT}),
        consent={SUB: "open"},
    )
    return root, context


def status(root: Path, context: CheckContext, criterion: Criterion) -> str:
    return check_dataset(root, context).result(criterion).status


def found(root: Path, context: CheckContext, criterion: Criterion) -> set[tuple[str, str, str]]:
    result = check_dataset(root, context).result(criterion)
    assert result.status == "fail", result
    return {(e.file, e.location, e.kind) for e in result.evidence}


def raw_element(tag: int, vr: str, value: bytes) -> RawDataElement:
    return RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)


def edit_dicom(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


DCM = f"{DICOM_DIR}/2.dcm"


# --- the clean dataset --------------------------------------------------------------------------


def test_clean_dataset_passes_every_criterion(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    report = check_dataset(root, context)
    assert {r.criterion: r.status for r in report.results} == dict.fromkeys(Criterion, "pass")
    assert report.passed
    assert report.files == len([p for p in root.rglob("*") if p.is_file()])


def test_progress_counts_every_file(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    calls: list[tuple[int, int]] = []
    report = check_dataset(root, context, lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, report.files)
    assert calls[-1] == (report.files, report.files)
    assert [done for done, _ in calls] == list(range(report.files + 1))


def test_a_file_is_not_a_dataset(tmp_path: Path, clean: tuple[Path, CheckContext]) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(Invalid, match="not a folder"):
        check_dataset(tmp_path / "file", clean[1])


# --- DEID-HEADERS -------------------------------------------------------------------------------


def test_a_kept_attribute_the_profile_blanks_fails(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    edit_dicom(root / DCM, lambda ds: setattr(ds, "InstitutionName", "General Hospital"))
    evidence = found(root, context, Criterion.HEADERS)
    assert (
        DCM,
        "(0008,0080)",
        "basic profile Z: an attribute the profile blanks keeps a value",
    ) in evidence


def test_a_removed_attribute_deep_in_a_sequence_fails(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean

    def plant(ds: Dataset) -> None:
        inner = Dataset()
        inner.PatientComments = "seen by the night nurse"
        outer = Dataset()
        outer.ReferencedStudySequence = Sequence([inner])
        ds.ReferencedImageSequence = Sequence([Dataset(), outer])

    edit_dicom(root / DCM, plant)
    locations = {loc for _, loc, _ in found(root, context, Criterion.HEADERS)}
    assert "(0008,1140)[1].(0008,1110)[0].(0010,4000)" in locations


def test_a_private_element_fails_unless_allow_listed(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean

    def plant(ds: Dataset) -> None:
        block = ds.private_block(0x0029, "ACME 1.0", create=True)
        block.add_new(0x10, "LO", "calibration")

    edit_dicom(root / DCM, plant)
    evidence = found(root, context, Criterion.HEADERS)
    assert {
        (DCM, "(0029,0010)", "private element"),
        (DCM, "(0029,1010)", "private element"),
    } <= evidence
    allowed = replace(
        context,
        options=context.options | {ProfileOption.RETAIN_SAFE_PRIVATE},
        private_allow=frozenset({("ACME 1.0", 0x10)}),
    )
    assert status(root, allowed, Criterion.HEADERS) == "pass"
    other = replace(allowed, private_allow=frozenset({("ACME 1.0", 0x11)}))
    assert (DCM, "(0029,1010)", "private element") in found(root, other, Criterion.HEADERS)


def test_patient_identity_removed_must_be_yes(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    edit_dicom(root / DCM, lambda ds: setattr(ds, "PatientIdentityRemoved", "NO"))
    assert (DCM, "(0012,0062)", "PatientIdentityRemoved is not YES") in found(
        root, context, Criterion.HEADERS
    )


def test_uids_said_to_be_retained_fail_unless_the_option_is_selected(
    clean: tuple[Path, CheckContext],
) -> None:
    root, context = clean

    def plant(ds: Dataset) -> None:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
            "113110",
            "DCM",
            "Retain UIDs",
        )
        ds.DeidentificationMethodCodeSequence.append(code)

    edit_dicom(root / DCM, plant)
    kinds = {
        kind for _, loc, kind in found(root, context, Criterion.HEADERS) if loc == "(0012,0064)"
    }
    assert kinds == {"UIDs retained (Retain UIDs code) though the project's options remap them"}
    retained = replace(context, options=context.options | {ProfileOption.RETAIN_UIDS})
    assert status(root, retained, Criterion.HEADERS) == "pass"


def test_a_missing_method_code_sequence_fails(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    edit_dicom(root / DCM, lambda ds: delattr(ds, "DeidentificationMethodCodeSequence"))
    kinds = {kind for _, loc, kind in found(root, context, Criterion.HEADERS)}
    assert "DeidentificationMethodCodeSequence lacks the basic profile code" in kinds


def test_an_invalid_uid_fails(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    bad = b"2.25.0123\x00"  # a leading zero: pydicom would refuse to set it, so write raw bytes
    edit_dicom(
        root / DCM, lambda ds: ds.__setitem__(0x00200052, raw_element(0x00200052, "UI", bad))
    )
    assert (DCM, "(0020,0052)", "invalid UID syntax") in found(root, context, Criterion.HEADERS)


def test_a_truncated_dicom_fails_and_the_rest_is_checked(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    data = (root / DCM).read_bytes()
    (root / DCM).write_bytes(data[: len(data) // 2])
    (root / f"{DICOM_DIR}/garbage.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 50)
    report = check_dataset(root, context)
    headers = report.result(Criterion.HEADERS)
    assert headers.status == "fail"
    unreadable = {(e.file, e.kind) for e in headers.evidence if e.kind.startswith("unreadable")}
    assert any(f == DCM and kind.startswith("unreadable: truncated") for f, kind in unreadable)
    assert any(file == f"{DICOM_DIR}/garbage.dcm" for file, _ in unreadable)
    assert not any(e.file.endswith("1.dcm") for e in headers.evidence)
    assert report.result(Criterion.LINKAGE).status == "pass"


def test_dicom_is_found_by_its_preamble_not_its_name(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    shutil.copy(SIEMENS, root / "sourcedata" / "notes.txt")
    files = {e.file for e in check_dataset(root, context).result(Criterion.HEADERS).evidence}
    assert files == {"sourcedata/notes.txt"}


# --- DEID-DATES ---------------------------------------------------------------------------------


def test_an_original_date_in_a_dicom_header_fails(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    edit_dicom(root / DCM, lambda ds: setattr(ds, "StudyDate", "20180918"))
    assert (DCM, "(0008,0020)", "original date") in found(root, context, Criterion.DATES)


@pytest.mark.parametrize(
    ("where", "write", "location"),
    [
        ("sidecar", lambda p: write_json(p, {"A": {"AcquisitionDateTime": "2018-09-18T10:00:00"}}),
         "/A/AcquisitionDateTime"),
        ("tsv", lambda p: write_text(p, "filename\tacq_time\nx.nii\t2018-09-18T12:00:00\n"),
         "row 1, column acq_time"),
        ("edf", lambda p: write_edf(p, startdate="18.09.18"), "EDF startdate"),
        ("edf+", lambda p: write_edf(p, recording="Startdate 18-SEP-2018 X X X"), "EDF recording"),
        ("birth", lambda p: write_edf(p, patient="X F 12-APR-1961 X"), "EDF patient"),
        ("fif", lambda p: write_fif(p, when=STUDY_DAY), "info.meas_date"),
    ],
)  # fmt: skip
def test_an_original_date_beyond_dicom_fails(
    clean: tuple[Path, CheckContext],
    where: str,
    write,
    location: str,  # type: ignore[no-untyped-def]
) -> None:
    root, context = clean
    name = {"sidecar": "x.json", "tsv": "x_scans.tsv", "fif": "x_meg.fif"}.get(where, "x.edf")
    write(root / SESSION / name)
    assert (f"{SESSION}/{name}", location, "original date") in found(root, context, Criterion.DATES)


def test_an_original_date_in_a_brainvision_marker_fails(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    write_brainvision(root / SESSION / "eeg", "x_eeg", segment="20180918122458123456")
    evidence = found(root, context, Criterion.DATES)
    assert [(f, k) for f, _, k in evidence] == [(f"{SESSION}/eeg/x_eeg.vmrk", "original date")]


def test_without_a_date_option_no_date_may_remain(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    no_dates = replace(context, options=frozenset(), original_dates=())
    evidence = found(root, no_dates, Criterion.DATES)
    assert (DCM, "(0008,0020)", "a date kept although the options keep no dates") in evidence


def test_full_dates_are_not_looked_for_with_retain_full_dates(
    clean: tuple[Path, CheckContext],
) -> None:
    root, context = clean
    edit_dicom(root / DCM, lambda ds: setattr(ds, "StudyDate", "20180918"))
    full = replace(context, options=frozenset({ProfileOption.RETAIN_FULL_DATES}))
    result = check_dataset(root, full).result(Criterion.DATES)
    assert result.status == "pass"
    assert "retain-full-dates" in result.summary


def test_an_original_uid_embedding_the_study_date_fails(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    shutil.copy(SIEMENS, root / DCM)  # not de-identified: Siemens UIDs carry the date and time
    kinds = {kind for _, _, kind in found(root, context, Criterion.DATES)}
    assert "UID embeds an original date" in kinds


# --- DEID-FACE ----------------------------------------------------------------------------------


def test_an_anatomical_image_not_verified_defaced_fails(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    write_nifti(root / SESSION / f"anat/{STEM}_FLAIR.nii")
    write_nifti(root / SESSION / f"func/{STEM}_task-rest_bold.nii.gz")
    result = check_dataset(root, replace(context, defaced=frozenset())).result(Criterion.FACE)
    assert result.status == "fail"
    assert "defacing is required and not yet verified" in result.summary
    assert {(e.file, e.kind) for e in result.evidence} == {
        (ANAT, "anatomical image (T1w) not verified defaced"),
        (f"{SESSION}/anat/{STEM}_FLAIR.nii", "anatomical image (FLAIR) not verified defaced"),
    }


# --- DEID-LINKAGE -------------------------------------------------------------------------------


def test_identifiers_in_dicom_values_are_found(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean

    def plant(ds: Dataset) -> None:
        ds.PatientName = "Qwertyson^Alfreda"  # a Z attribute: also HEADERS
        ds.SeriesDescription = "t1 for px774411 rescan"
        block = ds.private_block(0x0011, "ACME 1.0", create=True)
        block.add_new(0x01, "OB", b"\x00\x01ACC99812\x00")
        item = Dataset()
        item.CodeMeaning = "Grønnåsen"  # encoded by the file's ISO_IR 100
        ds.ReferencedImageSequence = Sequence([item])

    edit_dicom(root / DCM, plant)
    evidence = found(root, context, Criterion.LINKAGE)
    assert {
        (DCM, "(0010,0010)", "patient name"),
        (DCM, "(0010,0010)", "patient name part"),
        (DCM, "(0008,103E)", "patient ID"),
        (DCM, "(0011,1001)", "accession number"),
        (DCM, "(0008,1140)[0].(0008,0104)", "patient name part"),
    } <= evidence


@pytest.mark.parametrize(
    ("name", "write", "location", "kind"),
    [
        ("x.json", lambda p: write_json(p, {"a": [{"b": "seen by Alfreda"}]}), "/a/0/b",
         "patient name part"),
        ("x.json", lambda p: write_json(p, {"a": {"PX774411": 1}}), "/a/[patient ID] (key)",
         "patient ID"),
        ("x.json", lambda p: write_json(p, {"Session": "v1"}), "/Session", "session label"),
        ("x.tsv", lambda p: write_text(p, "id\tnote\n1\tACC99812\n"), "row 1, column note",
         "accession number"),
        ("x.edf", lambda p: write_edf(p, patient="PX774411 F X Qwertyson_Alfreda"), "EDF patient",
         "patient ID"),
        ("x.edf", lambda p: write_edf(p, annotation="Alfreda moved"), "EDF annotations, record 1",
         "patient name part"),
        ("x_meg.fif", lambda p: write_fif(p, his_id="PX774411"), "info.subject_info.his_id",
         "patient ID"),
        ("x_meg.fif", lambda p: write_fif(p, experimenter="ran by s01"), "info.experimenter",
         "subject label"),
        ("x.nii.gz", lambda p: write_nifti(p, descrip=b"ACC99812"), "NIfTI descrip",
         "accession number"),
        ("x.nii", lambda p: write_nifti(p, extension=b"<x>PX774411</x>"),
         "NIfTI extension 1 (code 6)", "patient ID"),
        ("notes.md", lambda p: write_text(p, "# Notes\n\nScanned  Qwertyson,  Alfreda\n"),
         "byte 18", "patient name"),
        ("latin1.txt", lambda p: write_text(p, "Patient: Grønnåsen\n", "latin-1"), "byte 9",
         "patient name part"),
        ("x.tsv.gz", lambda p: p.write_bytes(__import__("gzip").compress(b"a\tpx774411\n")),
         "decompressed byte 2", "patient ID"),
    ],
)  # fmt: skip
def test_identifiers_beyond_dicom_are_found(
    clean: tuple[Path, CheckContext],
    name: str,
    write,
    location: str,
    kind: str,  # type: ignore[no-untyped-def]
) -> None:
    root, context = clean
    write(root / SESSION / name)
    assert (f"{SESSION}/{name}", location, kind) in found(root, context, Criterion.LINKAGE)


def test_text_is_decoded_with_the_dicom_character_set(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    context = replace(context, identifiers=(Identifier("山田^太郎", "patient name"),))

    def plant(ds: Dataset) -> None:
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]  # 7-bit bytes with escape sequences
        ds.PatientComments = "Yamada^Tarou=山田^太郎"

    edit_dicom(root / DCM, plant)
    assert (DCM, "(0010,4000)", "patient name") in found(root, context, Criterion.LINKAGE)


def test_eeglab_fields_are_searched(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    fields = {"setname": "rest", "subject": "PX774411", "comments": ["ok", "by Alfreda"]}
    scipy.io.savemat(root / SESSION / "x_eeg.set", fields, do_compression=True)
    assert {(loc, kind) for _, loc, kind in found(root, context, Criterion.LINKAGE)} == {
        ("subject", "patient ID"),
        ("comments[1]", "patient name part"),
    }


def test_brainvision_headers_are_searched(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    write_brainvision(root / SESSION / "eeg", "y_eeg", comment="subject s01, tech ACC99812")
    evidence = {(f, k) for f, _, k in found(root, context, Criterion.LINKAGE)}
    assert evidence == {
        (f"{SESSION}/eeg/y_eeg.vhdr", "subject label"),
        (f"{SESSION}/eeg/y_eeg.vhdr", "accession number"),
    }


def test_identifiers_in_names_are_found_and_redacted(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    write_text(root / "sub-s01" / "ses-v1" / "notes_PX774411.txt", "nothing here\n")
    evidence = found(root, context, Criterion.LINKAGE)
    assert evidence == {
        ("sub-[subject label]", "folder name", "subject label"),
        ("sub-[subject label]/ses-[session label]", "folder name", "session label"),
        (
            "sub-[subject label]/ses-[session label]/notes_[patient ID].txt",
            "file name",
            "patient ID",
        ),
    }


def test_matches_respect_token_boundaries_and_short_identifiers(
    clean: tuple[Path, CheckContext],
) -> None:
    root, context = clean
    context = replace(context, identifiers=(*IDENTIFIERS, Identifier("01", "subject label")))
    write_text(root / "CHANGES", "1.0 2010-01-01 v1 released; PX7744110 and xs01 are fine\n")
    write_json(root / SESSION / "x.json", {"Label": "sub-01", "Other": "01-02", "Count": 1})
    write_text(root / SESSION / f"func/{STEM}_task-rest_run-01_bold.tsv", "a\n1\n")
    result = check_dataset(root, context).result(Criterion.LINKAGE)
    assert {(e.file, e.location) for e in result.evidence} == {(f"{SESSION}/x.json", "/Label")}
    assert "2 shorter than 3 characters only in paths and as whole values" in result.summary


def test_matches_near_chunk_boundaries_are_found_once(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    chunk = CHUNK  # the reader's chunk: the overlap's edges lie a few hundred bytes past it
    unit = b"PX774411  "
    starts = list(range(chunk - 50, chunk + 350, len(unit)))
    (root / "big.txt").write_bytes(b" " * starts[0] + unit * len(starts) + b" " * chunk)
    result = check_dataset(root, context).result(Criterion.LINKAGE)
    assert sorted(e.location for e in result.evidence) == sorted(f"byte {s}" for s in starts)


def test_an_unreadable_file_is_a_finding_not_a_crash(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    (root / SESSION / "anat" / "broken.nii.gz").write_bytes(b"not gzip at all")
    (root / SESSION / "x.set").write_bytes(b"MATLAB 5.0 MAT-file, but then nothing")
    report = check_dataset(root, context)
    linkage = report.result(Criterion.LINKAGE)
    assert {(e.file, e.kind) for e in linkage.evidence} == {
        (f"{SESSION}/anat/broken.nii.gz", "unreadable gzip file"),
        (f"{SESSION}/x.set", "unreadable EEGLAB file"),
    }
    assert "2 file(s) not parsable in their format searched as raw bytes" in linkage.summary


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.json", b'{"Operator": "Alfreda", '),
        ("broken.nii", b"\x5c\x01\x00\x00" + b"\x00" * 100 + b"Alfreda" + b"\x00" * 300),
        ("broken.edf", b"0       Alfreda" + b" " * 100),
        ("broken_meg.fif", b"\x00" * 20 + b"Alfreda\x00"),
        ("broken.nii.gz", __import__("gzip").compress(b"\x00" * 20 + b" Alfreda ")),
    ],
)
def test_an_unparsable_file_is_still_searched_as_bytes(
    clean: tuple[Path, CheckContext], name: str, content: bytes
) -> None:
    root, context = clean
    (root / name).write_bytes(content)
    evidence = found(root, context, Criterion.LINKAGE)
    assert {(f, k) for f, _, k in evidence} == {(name, "patient name part")}


def test_memory_stays_flat_as_files_grow(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    line = b"scan notes: nothing to report here, all good, 42 volumes\n"
    with (root / "notes.txt").open("wb") as handle:
        for _ in range((8 << 20) // len(line)):
            handle.write(line)
        handle.write(b"by Alfreda\n")
    ds = pydicom.dcmread(root / DCM)
    ds.PixelData = b"\x00" * (40 << 20)
    ds.save_as(root / f"{DICOM_DIR}/big.dcm")
    del ds
    tracemalloc.start()
    try:
        result = check_dataset(root, context).result(Criterion.LINKAGE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(e.file, e.kind) for e in result.evidence] == [("notes.txt", "patient name part")]
    assert peak < 8 << 20, f"peak {peak >> 20} MiB for 48 MiB of files"


# --- DEID-BURNEDIN ------------------------------------------------------------------------------


def test_burned_in_annotation_fails_until_cleared(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    edit_dicom(root / DCM, lambda ds: setattr(ds, "BurnedInAnnotation", "YES"))
    evidence = found(root, context, Criterion.BURNEDIN)
    assert evidence == {(DCM, "(0028,0301)", "Burned In Annotation is YES")}
    cleared = replace(context, cleared_burned_in=frozenset({DCM}))
    result = check_dataset(root, cleared).result(Criterion.BURNEDIN)
    assert (result.status, "1 cleared by a steward" in result.summary) == ("pass", True)


def test_secondary_capture_and_screen_saves_fail(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean

    def plant(ds: Dataset) -> None:
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.2"
        ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]

    edit_dicom(root / DCM, plant)
    locations = {loc for _, loc, _ in found(root, context, Criterion.BURNEDIN)}
    assert locations == {"(0008,0016)", "(0008,0008)"}


# --- DEID-CONSENT -------------------------------------------------------------------------------


@pytest.mark.parametrize("consent", [{}, {SUB: "internal"}, {SUB: "none"}])
def test_a_subject_without_open_consent_fails(
    clean: tuple[Path, CheckContext], consent: dict[str, str]
) -> None:
    root, context = clean
    result = check_dataset(root, replace(context, consent=consent)).result(Criterion.CONSENT)
    assert result.status == "fail"
    assert "consent records are required" in result.summary
    level = consent.get(SUB, "none")
    assert [(e.file, e.kind) for e in result.evidence] == [(SUB, f"consent is {level}, not open")]


# --- overrides and reports ----------------------------------------------------------------------


def test_a_steward_override_with_a_reason_lets_a_failure_pass(
    clean: tuple[Path, CheckContext],
) -> None:
    root, context = clean
    no_face = replace(context, defaced=frozenset())
    assert not check_dataset(root, no_face).passed
    reason = "phantom scans, no face"
    report = check_dataset(root, replace(no_face, overrides={Criterion.FACE: reason}))
    face = report.result(Criterion.FACE)
    assert (face.status, face.override_reason, len(face.evidence)) == ("overridden", reason, 1)
    assert report.passed
    blank = check_dataset(root, replace(no_face, overrides={Criterion.FACE: "  "}))
    assert blank.result(Criterion.FACE).status == "fail"
    passing = check_dataset(root, replace(context, overrides={Criterion.FACE: reason}))
    assert passing.result(Criterion.FACE).status == "pass"


def test_reports_name_kinds_never_values(tmp_path: Path, clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    leaky = root.parent / "Qwertyson"
    root.rename(leaky)
    write_json(leaky / SESSION / "PX774411.json", {"ACC99812": ["Grønnåsen", "Alfreda"]})
    write_text(leaky / "sub-s01" / "x.tsv", "Qwertyson\n")
    edit_dicom(leaky / DCM, lambda ds: setattr(ds, "PatientName", "Qwertyson^Alfreda"))
    report = check_dataset(leaky, replace(context, defaced=frozenset()))
    assert report.result(Criterion.LINKAGE).count >= 8
    json_path, md_path = tmp_path / "check.json", tmp_path / "check.md"
    write_reports(report, json_path, md_path)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["passed"] is False and data["neurodepot_version"]
    assert datetime.fromisoformat(data["checked_at"]).tzinfo is not None
    linkage = next(c for c in data["criteria"] if c["id"] == "DEID-LINKAGE")
    assert linkage["status"] == "fail" and linkage["count"] == len(linkage["evidence"])
    assert {"file", "location", "kind"} == set(linkage["evidence"][0])
    markdown = md_path.read_text(encoding="utf-8")
    assert "| DEID-LINKAGE | FAIL |" in markdown and "| DEID-FACE | FAIL |" in markdown
    for text in (json_path.read_text(encoding="utf-8"), markdown):
        for ident in IDENTIFIERS:
            if len(ident.value) >= 3:
                assert ident.value.casefold() not in text.casefold(), ident.kind
        assert "s01" not in text.casefold()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_reports_into_a_missing_folder_are_refused(
    tmp_path: Path, clean: tuple[Path, CheckContext]
) -> None:
    report = check_dataset(*clean)
    with pytest.raises(Invalid, match="does not exist"):
        write_reports(report, tmp_path / "nowhere" / "c.json", tmp_path / "c.md")
    assert not (tmp_path / "c.md").exists()


def test_evidence_is_capped_and_the_rest_counted(clean: tuple[Path, CheckContext]) -> None:
    root, context = clean
    for index in range(EVIDENCE_CAP + 20):
        write_text(root / "notes" / f"{index:03d}.txt", f"PX774411 line {index}\n")
    result = check_dataset(root, context).result(Criterion.LINKAGE)
    assert (len(result.evidence), result.omitted, result.count) == (EVIDENCE_CAP, 20, 120)
    assert "120 finding(s) in 120 file(s)" in result.summary
