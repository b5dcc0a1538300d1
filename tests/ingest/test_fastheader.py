"""The quick header walk agrees with pydicom wherever it answers, and never crashes."""

import functools
import io
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodepot.errors import Invalid
from neurodepot.ingest import header
from neurodepot.ingest.fastheader import read_elements
from tests.conftest import TESTDATA

PYDICOM_FILES = sorted((Path(pydicom.__file__).parent / "data" / "test_files").rglob("*.dcm"))
GE_FILE = "In/20180918GE/mr_0004/axial_epi_fmri_interleaved_i_to_s-00001.dcm"


def outcome(data: bytes | io.BytesIO) -> object:
    try:
        return header.read_header(data)
    except Invalid as problem:
        return ("refused", problem.message)


@pytest.fixture(scope="module")
def corpus(testdata: Path) -> list[tuple[Path, bytes]]:
    files = sorted((testdata / "dcm_qa_nih" / "In").rglob("*.dcm")) + PYDICOM_FILES
    return [(path, path.read_bytes()) for path in files]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_walk_reads_what_pydicom_reads_on_real_and_odd_files(
    corpus: list[tuple[Path, bytes]],
) -> None:
    walked = 0
    for path, data in corpus:
        if read_elements(data, header._FAST_WANTED, 0x0032) is not None:
            walked += 1
        fast, slow = outcome(data), outcome(io.BytesIO(data))
        if isinstance(slow, tuple):
            assert isinstance(fast, tuple), path  # both refuse (reasons may be worded apart)
        else:
            assert fast == slow, path
    # Every vendor file and most of pydicom's odd ones go the quick way; the rest fall back.
    assert len(corpus) > 650
    assert walked >= 0.9 * len(corpus)


@functools.cache
def ge_bytes() -> bytes:
    """One real GE slice (read once; not a fixture, so hypothesis does not print it)."""
    return (TESTDATA / "dcm_qa_nih" / GE_FILE).read_bytes()


def test_the_real_slice_is_there(testdata: Path) -> None:
    assert len(ge_bytes()) > 20_000  # the property tests below read it


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=300, deadline=None)
@given(cut=st.integers(min_value=0, max_value=30_000))
def test_a_truncated_file_is_refused_or_read_never_crashes(cut: int) -> None:
    result = outcome(ge_bytes()[:cut])
    if not isinstance(result, tuple):
        assert result.sop_instance_uid  # what was read is complete enough to archive
        assert result.dataset_offset <= cut


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=300, deadline=None)
@given(
    position=st.integers(min_value=128, max_value=3_000), value=st.binary(min_size=1, max_size=8)
)
def test_corrupted_bytes_are_refused_or_read_never_crash(position: int, value: bytes) -> None:
    data = ge_bytes()
    damaged = data[:position] + value + data[position + len(value) :]
    outcome(damaged)  # Invalid is the only error allowed to escape


def test_without_the_dicm_marker_it_is_not_dicom() -> None:
    damaged = ge_bytes()[:128] + b"XXXX" + ge_bytes()[132:]
    assert read_elements(damaged, header._FAST_WANTED, 0x0032) is None
    assert outcome(damaged) == (
        "refused",
        "not a DICOM file (no 'DICM' marker after the 128-byte preamble)",
    )
