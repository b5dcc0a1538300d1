"""Bulk import of real GE and Siemens data from a folder, a zip, a tar and a tar.gz.

Every import goes through the prearchive and (unless asked not to) into the archive: subject
`DEV`, one session per study, one scan per series, files byte-exact. Damaged input is reported
file by file, and whatever happens the depot stays consistent (fsck clean, no leftovers).
"""

import re
import struct
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import func, select

from neurodepot.catalog.models import ImagingSession, Resource, ResourceFile, Scan, Subject
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid, NotFound
from neurodepot.ingest.bulk import ImportSummary, import_dicom
from neurodepot.ingest.header import read_header
from neurodepot.ingest.models import PrearchiveStudy
from neurodepot.ingest.prearchive import list_studies, show_study
from neurodepot.ingest.receive import Override
from tests.ingest.conftest import (
    DATE_SESSION,
    SQLITE_ONLY,
    Archives,
    DicomSource,
    assert_consistent,
    blob_rows,
    modified,
    sha256,
)

GE_SESSION = f"P/DEV/{DATE_SESSION}"
SIEMENS_SESSION = f"P/DEV/{DATE_SESSION}_2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def archived_files(depot: Depot) -> dict[str, str]:
    """Path → digest of every file in a DICOM resource of the depot."""
    with depot.reading() as db:
        rows = db.execute(
            select(ResourceFile.path, ResourceFile.digest)
            .join(Resource, Resource.id == ResourceFile.resource_id)
            .where(Resource.label == "DICOM")
        )
        return {path: digest for path, digest in rows}


def scans(depot: Depot) -> dict[tuple[str, str], Scan]:
    """(session label, scan label) → scan row (detached: read its columns only)."""
    with depot.reading() as db:
        rows = db.execute(
            select(ImagingSession.label, Scan).join(Scan, Scan.session_id == ImagingSession.id)
        ).all()
        db.expunge_all()
    return {(session, scan.label): scan for session, scan in rows}


def by_sop(paths: list[Path]) -> dict[str, str]:
    """`<SOPInstanceUID>.dcm` → SHA-256, the way the archive names and checks files."""
    return {f"{read_header(p.read_bytes()).sop_instance_uid}.dcm": sha256(p) for p in paths}


def copy_files(paths: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for path in paths:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def assert_all_archived(depot: Depot, dicom_source: DicomSource, summary: ImportSummary) -> None:
    """The whole source imported: counted, one session per study, every file byte-exact."""
    counts = (summary.files, summary.imported, summary.duplicates, summary.conflicts)
    assert counts == (dicom_source.file_count, 16, 0, 0)
    assert (summary.not_dicom, summary.unreadable, summary.problems) == (10, 0, [])
    assert sorted(summary.skipped) == sorted(dicom_source.texts)
    dicom_bytes = sum((dicom_source.root / p).stat().st_size for p in dicom_source.digests)
    assert dicom_bytes < summary.bytes < dicom_bytes + 132 * len(dicom_source.texts) + 1
    assert [(o.session, o.scans, o.archived, o.duplicates) for o in summary.archived] == [
        (GE_SESSION, ("4", "5", "6", "7"), 8, 0),
        (SIEMENS_SESSION, ("3", "4", "5", "6"), 8, 0),
    ]
    assert summary.not_archived == []
    expected = {f"{sop}.dcm": digest for sop, digest in dicom_source.by_sop.items()}
    assert archived_files(depot) == expected
    for digest in expected.values():
        assert sha256(depot.blobs.path(digest)) == digest
    assert_consistent(depot)


class TestImport:
    def test_everything_is_counted_and_archived_byte_exact(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        summary = import_dicom(project, dicom_source.root, Override("P"))
        assert_all_archived(project, dicom_source, summary)

    @SQLITE_ONLY
    @pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
    def test_a_zip_or_tar_is_read_like_the_folder(
        self, project: Depot, dicom_source: DicomSource, archives: Archives, kind: str
    ) -> None:
        summary = import_dicom(project, archives.by_kind(kind), Override("P"))
        assert_all_archived(project, dicom_source, summary)

    def test_each_study_is_a_session_and_each_series_a_scan_with_its_facts(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        import_dicom(project, dicom_source.root, Override("P"))
        found = scans(project)
        assert sorted(found) == [(DATE_SESSION, label) for label in ("4", "5", "6", "7")] + [
            (f"{DATE_SESSION}_2", label) for label in ("3", "4", "5", "6")
        ]

        ge = found[(DATE_SESSION, "4")]
        assert ge.series_number == 4
        assert ge.series_description == ge.type == "Axial EPI-FMRI (Interleaved I to S)"
        assert (ge.modality, ge.manufacturer, ge.model) == (
            "MR",
            "GE MEDICAL SYSTEMS",
            "DISCOVERY MR750",
        )
        assert (ge.protocol, ge.image_type) == (
            "DCM2NIIX regression test",
            "ORIGINAL\\PRIMARY\\EPI\\NONE",
        )
        assert (ge.repetition_time, ge.echo_time, ge.inversion_time, ge.flip_angle) == (
            5000.0,
            30.0,
            None,
            60.0,
        )
        assert (ge.matrix, ge.voxel_size, ge.field_strength) == ("64x64", "3.75x3.75x3", 3.0)
        assert (ge.instance_count, ge.acquired_on) == (2, date(2018, 9, 18))
        assert ge.sop_class_uid == MR_STORAGE

        siemens = found[(f"{DATE_SESSION}_2", "3")]
        assert (siemens.series_description, siemens.manufacturer, siemens.model) == (
            "EPI PE=AP",
            "SIEMENS",
            "Skyra",
        )
        assert (siemens.repetition_time, siemens.echo_time, siemens.flip_angle) == (
            2435.37,
            50.0,
            75.0,
        )
        assert (siemens.matrix, siemens.voxel_size, siemens.instance_count) == (
            "216x216",
            "3x3x3",
            2,
        )

        with project.reading() as db:
            rows = db.execute(
                select(
                    Subject.label,
                    ImagingSession.label,
                    ImagingSession.modality,
                    ImagingSession.acquired_on,
                    ImagingSession.study_instance_uid,
                )
                .join(Subject, Subject.id == ImagingSession.subject_id)
                .order_by(ImagingSession.label)
            ).all()
        assert [tuple(row) for row in rows] == [
            ("DEV", DATE_SESSION, "MR", date(2018, 9, 18), dicom_source.ge_study),
            ("DEV", f"{DATE_SESSION}_2", "MR", date(2018, 9, 18), dicom_source.siemens_study),
        ]

        expected = {}
        for path in sorted(dicom_source.root.rglob("*.dcm")):
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
            session = DATE_SESSION if path.parts[-3] == "20180918GE" else f"{DATE_SESSION}_2"
            expected[(session, str(dataset.SeriesNumber))] = (
                dataset.SeriesInstanceUID,
                dataset.SeriesDescription,
            )
        assert {
            key: (scan.series_instance_uid, scan.series_description) for key, scan in found.items()
        } == expected

    def test_labels_given_by_the_importer_are_used(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        folder = dicom_source.root / "20180918GE" / "mr_0005"
        summary = import_dicom(project, folder, Override("P", subject="sub01", session="ses01"))
        assert [(o.session, o.scans, o.archived) for o in summary.archived] == [
            ("P/sub01/ses01", ("5",), 2)
        ]

    def test_a_subject_alone_gives_a_session_from_it_and_the_date(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        summary = import_dicom(project, dicom_source.siemens_files()[0], Override("P", "sub01"))
        assert [o.session for o in summary.archived] == ["P/sub01/sub01_20180918"]

    def test_a_single_file_can_be_imported(self, project: Depot, dicom_source: DicomSource) -> None:
        path = dicom_source.siemens_files()[1]
        summary = import_dicom(project, path, Override("P"))
        assert (summary.files, summary.imported) == (1, 1)
        assert archived_files(project) == by_sop([path])

    @SQLITE_ONLY
    def test_progress_is_reported_per_file(self, project: Depot, dicom_source: DicomSource) -> None:
        seen: list[tuple[int, int]] = []
        folder = dicom_source.root / "20180918Si"
        import_dicom(project, folder, Override("P"), progress=lambda n, b: seen.append((n, b)))
        assert [n for n, _ in seen] == list(range(1, 14))
        assert [b for _, b in seen] == sorted(b for _, b in seen)
        assert seen[-1][1] >= sum(p.stat().st_size for p in folder.rglob("*.dcm"))


class TestImportingAgain:
    def test_the_same_data_again_is_all_duplicates_and_stores_nothing_twice(
        self, project: Depot, dicom_source: DicomSource, archives: Archives
    ) -> None:
        import_dicom(project, archives.zip, Override("P"))
        files, blobs = archived_files(project), blob_rows(project)
        on_disk = set(project.blobs.digests())
        first_scans = {key: scan.instance_count for key, scan in scans(project).items()}

        again = import_dicom(project, dicom_source.root, Override("P"))

        assert [(o.session, o.archived, o.duplicates, o.conflicts) for o in again.archived] == [
            (GE_SESSION, 0, 8, 0),
            (SIEMENS_SESSION, 0, 8, 0),
        ]
        counts = (again.imported, again.duplicates, again.conflicts, again.unreadable)
        assert counts == (0, 16, 0, 0)
        assert archived_files(project) == files
        assert blob_rows(project) == blobs
        assert set(project.blobs.digests()) == on_disk
        assert {key: scan.instance_count for key, scan in scans(project).items()} == first_scans
        with project.reading() as db:
            assert {s.state for s in list_studies(db)} == {"archived"}
        assert_consistent(project)

    def test_new_instances_of_a_study_merge_into_its_session(
        self, project: Depot, dicom_source: DicomSource, tmp_path: Path
    ) -> None:
        files = dicom_source.ge_files()
        import_dicom(project, copy_files(files[:3], tmp_path / "first"), Override("P"))
        summary = import_dicom(project, copy_files(files, tmp_path / "all"), Override("P"))
        assert (summary.imported, summary.duplicates) == (2, 3)
        assert [(o.session, o.scans, o.archived, o.duplicates) for o in summary.archived] == [
            (GE_SESSION, ("4",), 2, 3)
        ]
        assert scans(project)[(DATE_SESSION, "4")].instance_count == 5
        assert archived_files(project) == by_sop(files)


class TestConflicts:
    def test_an_instance_clashing_with_the_archive_is_kept_aside(
        self, project: Depot, dicom_source: DicomSource, tmp_path: Path
    ) -> None:
        import_dicom(project, dicom_source.root / "20180918GE" / "mr_0004", Override("P"))
        original = dicom_source.ge_files()[0]
        sop = read_header(original.read_bytes()).sop_instance_uid
        changed = tmp_path / "changed" / original.name
        changed.parent.mkdir()
        changed.write_bytes(modified(original, SeriesDescription="edited"))

        summary = import_dicom(project, changed.parent, Override("P"))

        assert (summary.imported, summary.duplicates, summary.conflicts) == (0, 0, 1)
        assert [(o.session, o.archived, o.duplicates, o.conflicts) for o in summary.archived] == [
            (GE_SESSION, 0, 0, 1)
        ]
        with project.reading() as db:
            detail = show_study(db, summary.studies[0])
        assert detail.study.state == "conflict"
        assert "reuse a UID with other data" in detail.study.reason
        assert [(c.sop_instance_uid, c.against, c.digest) for c in detail.conflicts] == [
            (sop, "archive", sha256(changed))
        ]
        assert archived_files(project)[f"{sop}.dcm"] == sha256(original)
        scan = scans(project)[(DATE_SESSION, "4")]
        assert (scan.series_description, scan.instance_count) == (
            "Axial EPI-FMRI (Interleaved I to S)",
            2,
        )
        assert project.blobs.exists(sha256(changed))
        assert_consistent(project)

    def test_two_versions_of_an_instance_in_one_import_keep_the_first(
        self, project: Depot, dicom_source: DicomSource, tmp_path: Path
    ) -> None:
        original = dicom_source.siemens_files()[0]
        folder = tmp_path / "in"
        folder.mkdir()
        (folder / "a.dcm").write_bytes(original.read_bytes())
        (folder / "b.dcm").write_bytes(modified(original, PatientComments="second thoughts"))

        summary = import_dicom(project, folder, Override("P"))

        assert (summary.imported, summary.duplicates, summary.conflicts) == (1, 0, 1)
        with project.reading() as db:
            detail = show_study(db, summary.studies[0])
        assert detail.study.state == "conflict"
        assert [(c.against, c.digest) for c in detail.conflicts] == [
            ("prearchive", sha256(folder / "b.dcm"))
        ]
        assert archived_files(project) == by_sop([original])
        assert_consistent(project)

    def test_the_same_instance_twice_in_one_import_is_a_duplicate(
        self, project: Depot, dicom_source: DicomSource, tmp_path: Path
    ) -> None:
        original = dicom_source.siemens_files()[0]
        folder = copy_files([original], tmp_path / "in")
        (folder / "copy.dcm").write_bytes(original.read_bytes())
        summary = import_dicom(project, folder, Override("P"))
        assert (summary.imported, summary.duplicates, summary.conflicts) == (1, 1, 0)
        assert len(blob_rows(project)) == 1


def cut_meta_group_length(data: bytes, path: Path) -> bytes:
    return data[:140]


def cut_patient_group(data: bytes, path: Path) -> bytes:
    return data[:1000]


def cut_pixel_data(data: bytes, path: Path) -> bytes:
    return data[: len(data) // 2]


def without_study_uid(data: bytes, path: Path) -> bytes:
    return modified(path, StudyInstanceUID=None)


@SQLITE_ONLY
class TestUnreadableFiles:
    @pytest.mark.parametrize(
        ("damage", "reason"),
        [
            pytest.param(cut_meta_group_length, "", id="cut-in-meta-group-length"),
            pytest.param(cut_patient_group, "", id="cut-in-patient-group"),
            pytest.param(cut_pixel_data, "", id="cut-in-pixel-data"),
            pytest.param(without_study_uid, "StudyInstanceUID", id="without-study-uid"),
        ],
    )
    def test_a_damaged_file_is_reported_while_the_others_import(
        self,
        project: Depot,
        dicom_source: DicomSource,
        tmp_path: Path,
        damage: Callable[[bytes, Path], bytes],
        reason: str,
    ) -> None:
        files = dicom_source.ge_files()
        folder = copy_files(files, tmp_path / "in")
        damaged = folder / files[2].name
        damaged.write_bytes(damage(files[2].read_bytes(), files[2]))

        summary = import_dicom(project, folder, Override("P"))

        assert (summary.files, summary.imported, summary.unreadable) == (5, 4, 1)
        ((name, problem),) = summary.problems
        assert name == damaged.name
        assert reason in problem and problem
        assert archived_files(project) == by_sop([f for f in files if f != files[2]])
        assert_consistent(project)

    def test_text_files_are_skipped_not_unreadable(
        self, project: Depot, dicom_source: DicomSource, tmp_path: Path
    ) -> None:
        folder = copy_files(dicom_source.siemens_files(), tmp_path / "in")
        (folder / "notes.txt").write_text("scanned fine\n")
        (folder / "empty").write_bytes(b"")
        (folder / "deep" / "er").mkdir(parents=True)
        (folder / "deep" / "er" / "x.dcm").write_bytes(
            dicom_source.siemens_files("mr_0004")[0].read_bytes()
        )
        summary = import_dicom(project, folder, Override("P"))
        assert (summary.files, summary.imported, summary.not_dicom, summary.unreadable) == (
            5,
            3,
            2,
            0,
        )
        assert sorted(summary.skipped) == ["empty", "notes.txt"]


def member_data_offset(archive: bytes, info: zipfile.ZipInfo) -> int:
    """Where a zip member's (compressed) data starts, from its local header."""
    name_length, extra_length = struct.unpack_from("<HH", archive, info.header_offset + 26)
    return info.header_offset + 30 + name_length + extra_length


def third_dicom(archive: Path) -> zipfile.ZipInfo:
    with zipfile.ZipFile(archive) as opened:
        return [i for i in opened.infolist() if i.filename.endswith(".dcm")][2]


def zip_cut_short(archives: Archives) -> bytes:
    data = archives.zip.read_bytes()
    return data[: len(data) * 2 // 3]


def zip_member_bad_crc(archives: Archives) -> bytes:
    data = bytearray(archives.stored_zip.read_bytes())
    info = third_dicom(archives.stored_zip)
    data[member_data_offset(data, info) + info.compress_size // 2] ^= 0x01
    return bytes(data)


def zip_member_bad_deflate(archives: Archives) -> bytes:
    data = bytearray(archives.zip.read_bytes())
    data[member_data_offset(data, third_dicom(archives.zip))] = 0x07  # block type 3: invalid
    return bytes(data)


def tar_gz_cut_short(archives: Archives) -> bytes:
    data = archives.tar_gz.read_bytes()
    return data[: len(data) // 2]


def tar_gz_cut_in_first_block(archives: Archives) -> bytes:
    return archives.tar_gz.read_bytes()[:30]


def tar_gz_bit_flipped(archives: Archives) -> bytes:
    data = bytearray(archives.tar_gz.read_bytes())
    data[len(data) // 2] ^= 0x10
    return bytes(data)


def tar_member_header_garbled(archives: Archives) -> bytes:
    data = bytearray(archives.tar.read_bytes())
    with tarfile.open(archives.tar) as opened:
        header = opened.getmembers()[6].offset
    data[header : header + 512] = b"\x7f" * 512
    return bytes(data)


@dataclass(frozen=True)
class Damage:
    make: Callable[[Archives], bytes]
    suffix: str


DAMAGED_ARCHIVES = {
    "zip-cut-short": Damage(zip_cut_short, ".zip"),
    "zip-member-bad-crc": Damage(zip_member_bad_crc, ".zip"),
    "zip-member-bad-deflate": Damage(zip_member_bad_deflate, ".zip"),
    "tar-gz-cut-short": Damage(tar_gz_cut_short, ".tar.gz"),
    "tar-gz-cut-in-first-block": Damage(tar_gz_cut_in_first_block, ".tar.gz"),
    "tar-gz-bit-flipped": Damage(tar_gz_bit_flipped, ".tar.gz"),
    "tar-member-header-garbled": Damage(tar_member_header_garbled, ".tar"),
}


@SQLITE_ONLY
class TestDamagedArchives:
    @pytest.mark.parametrize("name", DAMAGED_ARCHIVES)
    def test_damage_is_reported_and_the_depot_stays_consistent(
        self,
        project: Depot,
        archives: Archives,
        dicom_source: DicomSource,
        tmp_path: Path,
        name: str,
    ) -> None:
        """Either the whole archive is refused naming it, or the damage is in the report.

        What was read intact before the damage may be imported; nothing may be dropped
        silently, nothing damaged archived, no other exception escape, no partial write stay.
        """
        damage = DAMAGED_ARCHIVES[name]
        upload = tmp_path / f"upload{damage.suffix}"
        upload.write_bytes(damage.make(archives))
        try:
            summary = import_dicom(project, upload, Override("P"))
        except Invalid as refused:
            assert upload.name in refused.message
        else:
            assert summary.unreadable >= 1, f"damage not reported: {summary}"
            assert summary.problems
            assert summary.imported + summary.not_dicom + summary.unreadable <= summary.files
        assert set(archived_files(project).values()) <= set(dicom_source.by_sop.values())
        assert_consistent(project)


class TestWhereItGoes:
    def test_prearchive_leaves_the_studies_for_review(
        self, project: Depot, dicom_source: DicomSource, archives: Archives
    ) -> None:
        summary = import_dicom(project, archives.tar_gz, Override("P"), archive_after=False)
        assert (summary.imported, summary.archived, summary.not_archived) == (16, [], [])
        with project.reading() as db:
            studies = list_studies(db)
            sessions = db.scalar(select(func.count()).select_from(ImagingSession))
        assert [(s.id, s.state, s.study_instance_uid, s.instance_count) for s in studies] == [
            (summary.studies[0], "receiving", dicom_source.ge_study, 8),
            (summary.studies[1], "receiving", dicom_source.siemens_study, 8),
        ]
        assert [(s.project, s.subject, s.session, s.source, s.rule) for s in studies] == [
            ("P", "DEV", DATE_SESSION, "import", "import")
        ] * 2
        assert sessions == 0
        assert archived_files(project) == {}
        assert len(blob_rows(project)) == 16
        assert_consistent(project)

    def test_a_missing_project_is_refused_and_nothing_is_stored(
        self, project: Depot, dicom_source: DicomSource
    ) -> None:
        with pytest.raises(NotFound, match="project 'NOPE' does not exist"):
            import_dicom(project, dicom_source.root, Override("NOPE"))
        assert blob_rows(project) == set()
        assert list(project.blobs.digests()) == []
        with project.reading() as db:
            assert db.scalar(select(func.count()).select_from(PrearchiveStudy)) == 0

    @SQLITE_ONLY
    @pytest.mark.parametrize(
        ("override", "fragment"),
        [
            (Override("P", subject="bad label!"), "subject label 'bad label!'"),
            (Override("P", session="a/b"), "session label 'a/b'"),
        ],
    )
    def test_a_bad_label_is_refused_before_anything_is_stored(
        self, project: Depot, dicom_source: DicomSource, override: Override, fragment: str
    ) -> None:
        with pytest.raises(Invalid, match=re.escape(fragment)):
            import_dicom(project, dicom_source.root, override)
        assert blob_rows(project) == set()

    @SQLITE_ONLY
    def test_a_missing_path_is_refused_naming_it(self, project: Depot, tmp_path: Path) -> None:
        missing = tmp_path / "nowhere"
        with pytest.raises(Invalid, match=re.escape(str(missing))):
            import_dicom(project, missing, Override("P"))
