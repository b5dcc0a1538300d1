"""deid/dicom_batch.py: a whole tree de-identified in a process pool, going on past bad files."""

import os
import re
import shutil
import signal
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from neurodepot.deid.dicom_batch import STAGING, BatchReport, deidentify_tree
from neurodepot.deid.dicom_headers import DicomRecipe, SubjectKeys
from neurodepot.errors import Invalid, NotFound
from tests.conftest import TESTDATA

SOURCE = TESTDATA / "dcm_qa_nih" / "In"
RECIPE = DicomRecipe(options=frozenset(), uid_root="2.25", uid_key=bytes(range(32)))
KEYS = SubjectKeys(patient_name="sub-7KQ2M9XD", patient_id="sub-7KQ2M9XD", date_offset_days=-30)
BAD = {
    "20180918GE/mr_0005/notes.dcm": "not a DICOM file",
    "20180918GE/mr_0006/truncated.dcm": "truncated",
    "20180918Si/mr_0004/charset.dcm": "cannot be decoded",
}
UID_NAME = re.compile(r"[0-9]+(\.[0-9]+)*/[0-9]+(\.[0-9]+)*\.dcm")
GE_FILE = SOURCE / "20180918GE" / "mr_0004" / "axial_epi_fmri_interleaved_i_to_s-00001.dcm"


def source_files() -> list[Path]:
    return sorted(SOURCE.rglob("*.dcm"))


def copy_tree(into: Path, files: list[Path]) -> Path:
    for path in files:
        target = into / path.relative_to(SOURCE)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return into


def plant_bad_files(tree: Path) -> None:
    """A text file, a DICOM cut short, and one whose character set cannot be decoded."""
    (tree / "20180918GE/mr_0005/notes.dcm").write_text("Scanned by Dr Smith on Tuesday\n")
    data = GE_FILE.read_bytes()
    (tree / "20180918GE/mr_0006/truncated.dcm").write_bytes(data[: len(data) // 2])
    # UTF-8 declared, and a kept value (ManufacturerModelName) that is not UTF-8: same lengths.
    siemens = next((SOURCE / "20180918Si" / "mr_0004").glob("*.dcm")).read_bytes()
    assert siemens.count(b"ISO_IR 100") == siemens.count(b"Skyra") == 1
    charset = siemens.replace(b"ISO_IR 100", b"ISO_IR 192").replace(b"Skyra", b"Sky\xffa")
    (tree / "20180918Si/mr_0004/charset.dcm").write_bytes(charset)


def outputs(dst: Path) -> dict[str, bytes]:
    return {
        path.relative_to(dst).as_posix(): path.read_bytes()
        for path in sorted(dst.rglob("*"))
        if path.is_file()
    }


def leftovers(dst: Path) -> list[Path]:
    return [p for p in dst.rglob("*") if p.name.endswith(".tmp") or p.name == STAGING]


@dataclass(frozen=True)
class Run:
    src: Path
    dst: Path
    report: BatchReport
    progress: list[tuple[int, int]]


@pytest.fixture(scope="module")
def mixed_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = copy_tree(tmp_path_factory.mktemp("src"), source_files())
    plant_bad_files(tree)
    return tree


def run_batch(src: Path, dst: Path, workers: int) -> Run:
    calls: list[tuple[int, int]] = []
    report = deidentify_tree(
        src, dst, RECIPE, KEYS, workers=workers, progress=lambda d, t: calls.append((d, t))
    )
    return Run(src, dst, report, calls)


@pytest.fixture(scope="module")
def serial(mixed_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_batch(mixed_tree, tmp_path_factory.mktemp("out") / "serial", workers=1)


@pytest.fixture(scope="module")
def parallel(mixed_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_batch(mixed_tree, tmp_path_factory.mktemp("out") / "parallel", workers=2)


class TestMixedTree:
    def test_every_good_file_is_written(self, serial: Run) -> None:
        written = outputs(serial.dst)
        assert serial.report.written == len(source_files()) == len(written) == 608
        assert all(UID_NAME.fullmatch(name) for name in written)
        for name in list(written)[:: len(written) // 20]:
            ds = pydicom.dcmread(serial.dst / name)
            assert name == f"{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.PatientID == KEYS.patient_id
        assert not serial.report.duplicates

    def test_the_three_bad_files_are_skipped_with_their_reasons(self, serial: Run) -> None:
        assert [item.path for item in serial.report.skipped] == sorted(BAD)
        for item in serial.report.skipped:
            assert item.path in item.reason and BAD[item.path] in item.reason, item

    def test_no_temporary_file_is_left(self, serial: Run, parallel: Run) -> None:
        assert leftovers(serial.dst) == leftovers(parallel.dst) == []

    def test_one_and_two_workers_write_the_same_bytes(self, serial: Run, parallel: Run) -> None:
        assert serial.report == parallel.report
        assert outputs(serial.dst) == outputs(parallel.dst)

    def test_output_names_carry_no_original_identifiers(self, serial: Run) -> None:
        originals = {"DEV", "Test", "Regression", "20180918", "mr_0", "axial", "epi", "GE", "Si"}
        for path in source_files()[::7]:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            originals |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
        names = list(outputs(serial.dst))
        assert not [(n, o) for n in names for o in originals if o.lower() in n.lower()]

    def test_progress_counts_up_to_every_file(self, serial: Run, parallel: Run) -> None:
        total = len(source_files()) + len(BAD)
        for run in (serial, parallel):
            done = [d for d, _ in run.progress]
            assert done == sorted(done) and done[-1] == total
            assert {t for _, t in run.progress} == {total}


def small_tree(tmp_path: Path, count: int = 12) -> Path:
    ge = sorted((SOURCE / "20180918GE" / "mr_0004").glob("*.dcm"))[:count]
    return copy_tree(tmp_path / "src", [*ge, *sorted((SOURCE / "20180918Si").rglob("*.dcm"))])


def set_patient_id(path: Path, patient_id: str) -> None:
    ds = pydicom.dcmread(path)
    ds.PatientID = patient_id
    ds.save_as(path)


class TestSubjects:
    def test_keys_are_looked_up_once_per_patient(self, tmp_path: Path) -> None:
        src = small_tree(tmp_path, count=40)  # enough files for a pool
        for path in (src / "20180918Si").rglob("*.dcm"):
            set_patient_id(path, "SIEMENS-7")
        asked: list[str] = []
        pseudonyms = {"DEV": "sub-AAAA1111", "SIEMENS-7": "sub-BBBB2222"}

        def keys_for(patient_id: str) -> SubjectKeys:
            asked.append(patient_id)
            return SubjectKeys(pseudonyms[patient_id], pseudonyms[patient_id], 0)

        report = deidentify_tree(src, tmp_path / "out", RECIPE, keys_for, workers=2)
        assert report.written == 48 and not report.skipped
        assert sorted(asked) == ["DEV", "SIEMENS-7"]
        found = {str(pydicom.dcmread(p).PatientID) for p in (tmp_path / "out").rglob("*.dcm")}
        assert found == set(pseudonyms.values())

    def test_a_patient_without_keys_is_skipped(self, tmp_path: Path) -> None:
        src = small_tree(tmp_path)

        def keys_for(patient_id: str) -> SubjectKeys:
            raise NotFound(f"patient {patient_id!r} has no pseudonym in this project")

        report = deidentify_tree(src, tmp_path / "out", RECIPE, keys_for, workers=1)
        assert report.written == 0 and len(report.skipped) == 20
        assert all("has no pseudonym" in item.reason for item in report.skipped)
        assert outputs(tmp_path / "out") == {}

    def test_a_non_dicom_file_is_skipped_before_keys_are_asked(self, tmp_path: Path) -> None:
        src = small_tree(tmp_path, count=1)
        (src / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
        report = deidentify_tree(src, tmp_path / "out", RECIPE, lambda _: KEYS, workers=1)
        assert report.written == 9
        assert [item.path for item in report.skipped] == ["photo.jpg"]
        assert "PatientID cannot be read" in report.skipped[0].reason


class TestTree:
    def test_an_unknown_character_set_is_skipped_alike_in_and_out_of_process(
        self, tmp_path: Path
    ) -> None:
        src = small_tree(tmp_path, count=40)
        siemens = next((src / "20180918Si").rglob("*.dcm"))
        siemens.write_bytes(siemens.read_bytes().replace(b"ISO_IR 100", b"ISO_IR 999"))
        reports = [
            deidentify_tree(src, tmp_path / f"out{workers}", RECIPE, KEYS, workers=workers)
            for workers in (1, 2)
        ]
        assert reports[0] == reports[1] and reports[0].written == 47
        [skipped] = reports[0].skipped
        assert skipped.path == siemens.relative_to(src).as_posix()
        assert "ISO_IR 999" in skipped.reason
        assert outputs(tmp_path / "out1") == outputs(tmp_path / "out2")

    def test_a_resent_instance_is_written_once(self, tmp_path: Path) -> None:
        src = small_tree(tmp_path, count=2)
        first = next((src / "20180918GE" / "mr_0004").glob("*00001.dcm"))
        shutil.copyfile(first, src / "20180918GE" / "zz-again.dcm")
        report = deidentify_tree(src, tmp_path / "out", RECIPE, KEYS, workers=2)
        assert report.written == 10 and not report.skipped
        assert [item.path for item in report.duplicates] == ["20180918GE/zz-again.dcm"]
        assert len(outputs(tmp_path / "out")) == 10

    def test_links_out_of_the_tree_are_not_followed(self, tmp_path: Path) -> None:
        src = small_tree(tmp_path, count=1)
        outside = tmp_path / "elsewhere"
        copy_tree(outside, [GE_FILE.with_name("axial_epi_fmri_interleaved_i_to_s-00002.dcm")])
        (src / "out-link.dcm").symlink_to(next(outside.rglob("*.dcm")))
        (src / "folder-link").symlink_to(outside, target_is_directory=True)
        (src / "in-link.dcm").symlink_to(next((src / "20180918GE").rglob("*.dcm")))
        os.mkfifo(src / "pipe.dcm")
        (src / "loop-a").symlink_to(src / "loop-b")
        (src / "loop-b").symlink_to(src / "loop-a")
        report = deidentify_tree(src, tmp_path / "out", RECIPE, KEYS, workers=1)
        reasons = {item.path: item.reason for item in report.skipped}
        assert sorted(reasons) == ["folder-link", "loop-a", "loop-b", "out-link.dcm", "pipe.dcm"]
        assert "cannot be read" in reasons["loop-a"]
        assert (
            "not followed" in reasons["out-link.dcm"] and "not followed" in reasons["folder-link"]
        )
        assert "not a regular file" in reasons["pipe.dcm"]
        assert report.written == 9
        assert [item.path for item in report.duplicates] == ["in-link.dcm"]

    def test_a_destination_that_is_not_empty_is_refused(self, tmp_path: Path) -> None:
        src = small_tree(tmp_path, count=1)
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "keep.txt").write_text("mine")
        with pytest.raises(Invalid, match="not empty"):
            deidentify_tree(src, tmp_path / "out", RECIPE, KEYS, workers=1)
        assert outputs(tmp_path / "out") == {"keep.txt": b"mine"}

    def test_a_missing_source_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(Invalid, match="not a folder"):
            deidentify_tree(tmp_path / "nothing", tmp_path / "out", RECIPE, KEYS)
        assert not (tmp_path / "out").exists()


class Stop(Exception):
    pass


def stop_after(files: int) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        if done >= files:
            raise Stop

    return progress


def die_unless(parent: int) -> SubjectKeys:
    """Unpickled in a worker, kills it as an out-of-memory kill would."""
    if os.getpid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return KEYS


class KeysThatKillTheWorker(SubjectKeys):
    def __reduce__(self) -> tuple[Callable[[int], SubjectKeys], tuple[int]]:
        return die_unless, (os.getpid(),)


class TestFailureMidBatch:
    @pytest.mark.parametrize(("existed", "workers"), [(True, 1), (False, 1), (True, 2)])
    def test_an_error_mid_batch_leaves_the_destination_as_found(
        self, tmp_path: Path, existed: bool, workers: int
    ) -> None:
        src = small_tree(tmp_path, count=60)
        dst = tmp_path / "out"
        if existed:
            dst.mkdir()
        with pytest.raises(Stop):
            deidentify_tree(src, dst, RECIPE, KEYS, workers=workers, progress=stop_after(20))
        assert dst.exists() is existed
        assert not existed or list(dst.iterdir()) == []

    def test_a_worker_that_dies_leaves_nothing_behind(self, tmp_path: Path) -> None:
        src = small_tree(tmp_path, count=60)
        for path in (src / "20180918Si").rglob("*.dcm"):
            set_patient_id(path, "KILL")
        killer = KeysThatKillTheWorker("sub-X", "sub-X", 0)
        seen: list[int] = []

        def keys_for(patient_id: str) -> SubjectKeys:
            return killer if patient_id == "KILL" else KEYS

        with pytest.raises(BrokenProcessPool):
            deidentify_tree(
                src,
                tmp_path / "out",
                RECIPE,
                keys_for,
                workers=2,
                progress=lambda d, t: seen.append(d),
            )
        assert max(seen) > 0  # files were placed before the worker died, and then removed
        assert not (tmp_path / "out").exists()
