"""What the ingest path needs from a DICOM instance, read without decoding the whole of it.

Only the elements up to group 0x0032 (identity, patient, study, series) are parsed, and only
those named here are converted: every instance passes through this on its way in, so it must
cost a fraction of a millisecond, and it never touches pixel data. The bytes stay as they are.
"""

import io
import mmap
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial, read_preamble
from pydicom.tag import BaseTag, Tag

from neurodepot.errors import Invalid
from neurodepot.ingest.fastheader import find_truncation, read_elements

ROUTING_FIELDS = (
    "StudyDescription",
    "StudyComments",
    "PatientComments",
    "AccessionNumber",
    "ReferringPhysicianName",
)
_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "Modality",
    "PatientID",
    "PatientName",
    "StudyDate",
    *ROUTING_FIELDS,
)
_TAGS = [Tag(keyword) for keyword in _KEYWORDS]
_LAST_GROUP = 0x0032  # StudyComments (0032,4000) is the last element read


@dataclass(frozen=True)
class InstanceHeader:
    """The identity and routing facts of one instance (strings as sent, stripped)."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax: str
    series_number: int | None
    modality: str
    patient_id: str
    patient_name: str
    study_date: date | None
    routing: dict[str, str]
    dataset_offset: int


_FAST_TAGS = {int(tag): keyword for tag, keyword in zip(_TAGS, _KEYWORDS, strict=True)}
_CHARSET = int(Tag("SpecificCharacterSet"))
_FAST_WANTED = frozenset([*_FAST_TAGS, _CHARSET])


def read_header(data: bytes | mmap.mmap | BinaryIO) -> InstanceHeader:
    """Parse a DICOM file's meta and first groups; `Invalid` says why it cannot be archived.

    Bytes (or a mapped file) go through the quick walk of `fastheader` when it can read them,
    and through pydicom otherwise (and always for a file object).
    """
    if isinstance(data, bytes | mmap.mmap):
        walked = read_elements(data, _FAST_WANTED, _LAST_GROUP)
        if walked is not None:
            found, offset, syntax = walked
            text = "utf-8" if b"192" in found.get(_CHARSET, b"") else "latin-1"
            values = {
                keyword: found.get(tag, b"").decode(text, "replace").strip(" \x00")
                for tag, keyword in _FAST_TAGS.items()
            }
            return _header(values, syntax, "", offset)
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    start = stream.tell()
    try:
        read_preamble(stream, force=False)
    except InvalidDicomError:
        raise Invalid("not a DICOM file (no 'DICM' marker after the 128-byte preamble)") from None
    stream.seek(start)
    try:
        dataset = read_partial(stream, stop_when=_past_last_group, specific_tags=_TAGS)
        values = {keyword: _text(dataset, keyword) for keyword in _KEYWORDS}
        meta = dataset.file_meta
        syntax = str(meta.get("TransferSyntaxUID", "") or "")
        sop_class = str(meta.get("MediaStorageSOPClassUID", "") or "")
        offset = start + _dataset_offset(meta)
    except Invalid:
        raise
    except Exception as exc:  # pydicom raises many kinds on damaged input
        raise Invalid(f"unreadable DICOM header: {exc}") from None
    return _header(values, syntax, sop_class, offset)


def _header(
    values: dict[str, str], transfer_syntax: str, meta_sop_class: str, offset: int
) -> InstanceHeader:
    missing = [
        k for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID") if not values[k]
    ]
    if missing:
        raise Invalid(f"DICOM instance without {', '.join(missing)}")
    sop_class = values["SOPClassUID"] or meta_sop_class
    return InstanceHeader(
        sop_class_uid=sop_class,
        sop_instance_uid=values["SOPInstanceUID"],
        study_instance_uid=values["StudyInstanceUID"],
        series_instance_uid=values["SeriesInstanceUID"],
        transfer_syntax=transfer_syntax,
        series_number=_int(values["SeriesNumber"]),
        modality=values["Modality"][:16],
        patient_id=values["PatientID"][:64],
        patient_name=values["PatientName"][:255],
        study_date=parse_da(values["StudyDate"]),
        routing={field: values[field] for field in ROUTING_FIELDS},
        dataset_offset=offset,
    )


def parse_da(value: str) -> date | None:
    """A DICOM DA (`YYYYMMDD`, or the old `YYYY.MM.DD`); None when absent or malformed."""
    digits = value.replace(".", "").strip()
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def _past_last_group(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag.group > _LAST_GROUP


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    return str(value).strip().strip("\x00").strip()


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _dataset_offset(meta: Dataset) -> int:
    """Bytes before the dataset: preamble, 'DICM', the meta group (its length is recorded)."""
    group_length = meta.get("FileMetaInformationGroupLength")
    if group_length is None:
        raise Invalid("DICOM file meta information without its group length (0002,0000)")
    return 128 + 4 + 12 + int(group_length)


def check_complete(data: bytes | mmap.mmap) -> None:
    """`Invalid` when the file ends before an element it declares (cut short in transfer)."""
    cut = find_truncation(data)
    if cut is not None:
        raise Invalid(f"{cut}; it was not stored: send or copy it again")
