"""Real DICOM for the ingest tests: a subset of dcm_qa_nih, copied once, and archives of it.

The subset keeps every series of both studies (4 GE series of 2 instances, 4 Siemens series of
2) and the README text files, so an import meets two studies, eight series and files that are
not DICOM, at a fraction of the full data's cost. Archives are built byte-for-byte the same on
every run (fixed times, sorted names), so a test that damages one damages the same bytes.
"""

import gzip
import hashlib
import io
import shutil
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info

from neurodepot.catalog.hierarchy import create_project
from neurodepot.depot.folder import Depot
from neurodepot.depot.fsck import fsck
from neurodepot.depot.orm import Blob
from neurodepot.ingest.header import read_header
from tests.api.conftest import anonymous_client, anyio_backend, operator_client  # noqa: F401
from tests.cli.conftest import cli  # noqa: F401

GE_SERIES = ("mr_0004", "mr_0005", "mr_0006", "mr_0007")
SIEMENS_SERIES = ("mr_0003", "mr_0004", "mr_0005", "mr_0006")
GE_PER_SERIES = 2
DATE_SESSION = "DEV_20180918"  # PatientID DEV, StudyDate 20180918: both studies derive it
ZIP_TIME = (1980, 1, 1, 0, 0, 0)

# For tests where the database plays no part (reading files, validating input, access): the
# parametrised `database_url` fixture is replaced by SQLite's None.
SQLITE_ONLY = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])


@dataclass(frozen=True)
class DicomSource:
    """The copied subset: `root/20180918GE/mr_000N/*.dcm`, `root/20180918Si/...`, READMEs."""

    root: Path
    original: Path  # the read-only test data the subset was copied from
    digests: dict[str, str]  # relative path of each DICOM file → its SHA-256
    by_sop: dict[str, str]  # SOPInstanceUID → SHA-256 of its file
    texts: tuple[str, ...]  # relative paths of the README files (not DICOM)
    ge_study: str
    siemens_study: str

    @property
    def file_count(self) -> int:
        return len(self.digests) + len(self.texts)

    def ge_files(self, series: str = "mr_0004", count: int = 5) -> list[Path]:
        """The first `count` files of a GE series of the original data (150 in all)."""
        return sorted((self.original / "20180918GE" / series).glob("*.dcm"))[:count]

    def siemens_files(self, series: str = "mr_0003") -> list[Path]:
        """Both files of a Siemens series of the original data."""
        return sorted((self.original / "20180918Si" / series).glob("*.dcm"))


def sha256(data: bytes | Path) -> str:
    return hashlib.sha256(data.read_bytes() if isinstance(data, Path) else data).hexdigest()


@pytest.fixture(scope="session")
def dicom_source(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> DicomSource:
    original = testdata / "dcm_qa_nih" / "In"
    root = tmp_path_factory.mktemp("dicom") / "source"
    picked: list[Path] = []
    for study, series_list, limit in (
        ("20180918GE", GE_SERIES, GE_PER_SERIES),
        ("20180918Si", SIEMENS_SERIES, None),
    ):
        picked.append(original / study / "README-Study.txt")
        for series in series_list:
            folder = original / study / series
            picked.append(folder / "README-Series.txt")
            picked.extend(sorted(folder.glob("*.dcm"))[:limit])
    for path in picked:
        copy = root / path.relative_to(original)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    digests, by_sop, studies = {}, {}, {}
    for path in sorted(root.rglob("*.dcm")):
        data = path.read_bytes()
        header = read_header(data)
        digests[str(path.relative_to(root))] = by_sop[header.sop_instance_uid] = sha256(data)
        studies[path.relative_to(root).parts[0]] = header.study_instance_uid
    texts = tuple(str(p.relative_to(root)) for p in sorted(root.rglob("*.txt")))
    return DicomSource(
        root, original, digests, by_sop, texts, studies["20180918GE"], studies["20180918Si"]
    )


def make_zip(root: Path, dest: Path, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(dest, "w", compression=compression) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(root)), ZIP_TIME)
            info.compress_type = compression
            archive.writestr(info, path.read_bytes())
    return dest


def tar_bytes(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(str(path.relative_to(root)))
            info.size = path.stat().st_size
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()


@dataclass(frozen=True)
class Archives:
    zip: Path
    stored_zip: Path  # no compression: member data appears as is
    tar: Path
    tar_gz: Path

    def by_kind(self, kind: str) -> Path:
        return {"zip": self.zip, "tar": self.tar, "tar.gz": self.tar_gz}[kind]


@pytest.fixture(scope="session")
def archives(dicom_source: DicomSource, tmp_path_factory: pytest.TempPathFactory) -> Archives:
    folder = tmp_path_factory.mktemp("archives")
    plain = tar_bytes(dicom_source.root)
    (folder / "source.tar").write_bytes(plain)
    (folder / "source.tar.gz").write_bytes(gzip.compress(plain, mtime=0))
    return Archives(
        make_zip(dicom_source.root, folder / "source.zip"),
        make_zip(dicom_source.root, folder / "stored.zip", zipfile.ZIP_STORED),
        folder / "source.tar",
        folder / "source.tar.gz",
    )


@pytest.fixture
def project(depot: Depot) -> Depot:
    """The test's depot with an empty project `P` (archived automatically)."""
    with depot.transaction() as db:
        create_project(db, "P")
    return depot


def meta_end(data: bytes) -> int:
    """Where the meta group ends, from its group length (0002,0000), read by hand."""
    assert data[128:132] == b"DICM"
    assert struct.unpack_from("<HH2sH", data, 132) == (2, 0, b"UL", 4)
    return 144 + struct.unpack_from("<I", data, 140)[0]


def resent(path: Path, **meta: str) -> bytes:
    """The file as another sender would send it: other meta elements, the same dataset bytes."""
    data = path.read_bytes()
    file_meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
    for keyword, value in meta.items():
        setattr(file_meta, keyword, value)
    encoded = DicomBytesIO()
    write_file_meta_info(encoded, file_meta, enforce_standard=True)
    return data[:128] + b"DICM" + encoded.getvalue() + data[meta_end(data) :]


def modified(path: Path, **changes: object) -> bytes:
    """The file re-encoded by pydicom with elements set (or removed, for None)."""
    dataset = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def blob_rows(depot: Depot) -> set[str]:
    with depot.reading() as db:
        return set(db.scalars(Blob.__table__.select().with_only_columns(Blob.digest)))


def assert_consistent(depot: Depot) -> None:
    """Database and blob store agree, and no write left a temporary file behind."""
    report = fsck(depot.engine, depot.blobs)
    assert report.ok, report.problems
    assert depot.blobs.temporary_files() == []
    assert set(depot.blobs.digests()) == blob_rows(depot)
