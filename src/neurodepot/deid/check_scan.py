"""Reading a shareable dataset for the checker: every path, and every value a file carries.

Each reader turns one format into `Field`s (a value with its location) without loading the
file whole: DICOM through pydicom with large values deferred and pixel data never read, NIfTI
through nibabel's header only, EDF/BDF by their fixed-size headers (and the annotation signal,
record by record), FIF through MNE's `read_info`, text in overlapping chunks. Two readers do
load a whole file: JSON (up to 64 MiB; a larger one is searched as text) and EEGLAB .set
(scipy's loadmat has no partial read). A file that a reader cannot parse raises `Unparsable`;
the checker decides what that means.
"""

import gzip
import json
import os
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

CHUNK = 256 << 10
JSON_MAX = 64 << 20
DEFER = 64 << 10
UNDEFINED = 0xFFFFFFFF
# Pixel data, overlay bitmaps and waveform samples: image content, not text, and often large.
PAYLOAD_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010, 0x54001010})
STRING_VRS = frozenset(
    "AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split()  # noqa: SIM905
)
BINARY_VRS = frozenset("OB OD OF OL OV OW UN".split())  # noqa: SIM905
NUMBER_FORMATS = {"FD": "d", "FL": "f", "SL": "l", "SS": "h", "SV": "q", "UL": "L", "US": "H",
                  "UV": "Q"}  # fmt: skip
SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
NUMBER_VRS = frozenset("AT DS FD FL IS SL SS SV UL US UV".split())  # noqa: SIM905


class Kind(StrEnum):
    """How a file is read (by content for DICOM, by name for the rest)."""

    DICOM = "DICOM"
    NIFTI = "NIfTI"
    EDF = "EDF/BDF"
    FIF = "FIF"
    EEGLAB = "EEGLAB"
    JSON = "JSON"
    TSV = "TSV"
    GZIP = "gzip"
    PAYLOAD = "signal data"
    RAW = "raw"


class Unparsable(Exception):
    """The file is not what its name or preamble says, or is cut short."""


@dataclass(frozen=True)
class Entry:
    rel: str
    is_dir: bool


@dataclass(frozen=True)
class Field:
    """One value found in a file.

    `text` is searched as text, `data` as bytes; `wholes` are the separate values a short
    identifier is compared to whole; `when` a date the format stores as a date. For a chunk of
    a stream, `base` is its offset and only matches starting in `window` count (the chunks
    overlap so that nothing is cut in two).
    """

    location: str
    text: str | None = None
    data: bytes | None = None
    wholes: tuple[str, ...] = ()
    when: date | None = None
    dates: bool = True
    base: int = 0
    window: tuple[int, int] | None = None


def value_field(location: str, text: str, data: bytes | None = None) -> Field:
    return Field(location, text=text, data=data, wholes=(text,))


def walk(root: Path) -> list[Entry]:
    """Every folder and file under `root`, sorted, relative, with "/" separators."""
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        rel = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        entries += [Entry(prefix + d, True) for d in dirs]
        # Regular files (through symlinks); a pipe or device would never end.
        entries += [Entry(prefix + f, False) for f in sorted(files)
                    if os.path.isfile(os.path.join(folder, f))]  # fmt: skip
    return sorted(entries, key=lambda e: e.rel)


def classify(path: Path) -> Kind:
    name = path.name.lower()
    with path.open("rb") as handle:
        head = handle.read(132)
    if len(head) == 132 and head[128:] == b"DICM":
        return Kind.DICOM
    by_suffix = {
        (".nii", ".nii.gz"): Kind.NIFTI,
        (".edf", ".bdf"): Kind.EDF,
        (".fif", ".fif.gz"): Kind.FIF,
        (".set",): Kind.EEGLAB,
        (".json",): Kind.JSON,
        (".tsv",): Kind.TSV,
        (".gz",): Kind.GZIP,
        (".eeg", ".fdt"): Kind.PAYLOAD,
    }
    return next((kind for ends, kind in by_suffix.items() if name.endswith(ends)), Kind.RAW)


# DICOM


@dataclass(frozen=True)
class DicomElement:
    """One element at any depth; `value` is None for sequences and for payload left unread."""

    location: str
    tag: int
    vr: str
    depth: int
    empty: bool
    value: object
    raw: bytes | None
    creator: str | None


@dataclass(frozen=True)
class DicomScan:
    """A file's elements; `problems` (location, what) say why it is not whole."""

    elements: tuple[DicomElement, ...]
    problems: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]


def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _creator(ds: Dataset, tag: int) -> str | None:
    group, element = tag >> 16, tag & 0xFFFF
    if not group & 1:
        return None
    if 0x0010 <= element <= 0x00FF:
        owner = ds.get_item(tag, keep_deferred=True)
    elif element >= 0x1000:
        owner = ds.get_item((group << 16) | (element >> 8), keep_deferred=True)
    else:
        return None
    if owner is None or owner.value is None:
        return None
    value = owner.value
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return text.strip(" \0")


def _cut_short(raw: RawDataElement, depth: int, size: int) -> str | None:
    """Why a raw element's value is not all there (pydicom reads a cut file without a word)."""
    if raw.length == UNDEFINED:
        return None
    if raw.value is None:  # deferred: the value is still in the file
        past = depth == 0 and raw.value_tell + raw.length > size
        return "unreadable: truncated (value runs past the end)" if past else None
    if isinstance(raw.value, bytes) and len(raw.value) < raw.length:
        return "unreadable: truncated (value cut short)"
    return None


def _plain_value(raw: RawDataElement) -> object:
    """ASCII text or bytes straight from the file; None when pydicom must convert the value.

    pydicom's conversion is most of the time a check takes, and these need none.
    """
    data, vr = raw.value, raw.VR
    if not isinstance(data, bytes) or vr is None:
        return None
    if vr in BINARY_VRS:
        return data
    if vr in NUMBER_FORMATS:
        code = NUMBER_FORMATS[vr]
        count, rest = divmod(len(data), struct.calcsize(code))
        if rest:
            return None  # pydicom reports the odd length
        order = "<" if raw.is_little_endian else ">"
        numbers = list(struct.unpack(f"{order}{count}{code}", data))
        return numbers[0] if count == 1 else numbers
    if vr not in STRING_VRS or not data.isascii() or b"\x1b" in data:
        return None  # beyond ASCII, or ISO 2022 escapes: the character set decides
    text = data.decode("ascii")
    if vr in SINGLE_TEXT_VRS:
        return text.rstrip(" \0")
    values = [v.strip(" \0") for v in text.split("\\")]
    return values[0] if len(values) == 1 else values


def _walk_dicom(
    ds: Dataset,
    prefix: str,
    depth: int,
    size: int,
    out: list[DicomElement],
    problems: list[tuple[str, str]],
) -> None:
    for tag in sorted(ds.keys()):
        location = prefix + tag_text(tag)
        raw = ds.get_item(tag, keep_deferred=True)
        creator = _creator(ds, tag)
        plain = None
        if isinstance(raw, RawDataElement):
            problem = _cut_short(raw, depth, size)
            if problem is not None:
                problems.append((location, problem))
            payload = tag in PAYLOAD_TAGS or (
                (tag >> 16) & 0xFF01 == 0x6000 and tag & 0xFFFF == 0x3000
            )
            if payload or problem is not None:  # never read a value that is not all there
                out.append(DicomElement(location, tag, raw.VR or "", depth, raw.length == 0,
                                        None, None, creator))  # fmt: skip
                continue
            plain = _plain_value(raw)
        if plain is not None:
            empty = all(v == "" for v in plain) if isinstance(plain, list) else plain in ("", b"")
            raw_bytes = plain if isinstance(plain, bytes) else None
            out.append(DicomElement(location, tag, raw.VR, depth, empty, plain, raw_bytes, creator))
            continue
        raw_bytes = raw.value if isinstance(raw, RawDataElement) else None
        try:
            element = ds[tag]
        except Exception as exc:  # pydicom raises many types for one malformed value
            problems.append((location, f"unreadable: malformed element ({type(exc).__name__})"))
            continue
        if element.VR == "SQ":
            items = element.value or []
            out.append(DicomElement(location, tag, "SQ", depth, not items, None, None, creator))
            for index, item in enumerate(items):
                _walk_dicom(item, f"{location}[{index}].", depth + 1, size, out, problems)
            continue
        out.append(DicomElement(location, tag, element.VR, depth, element.is_empty, element.value,
                                raw_bytes, creator))  # fmt: skip


def read_dicom(path: Path) -> DicomScan:
    """All elements of a DICOM file, file meta first; problems say why it is not whole.

    Warnings pydicom raises while decoding (invalid values, undecodable characters) are kept
    and reported, not printed: the checker runs its own validity tests on what matters.
    """
    size = path.stat().st_size
    out: list[DicomElement] = []
    problems: list[tuple[str, str]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = dcmread(path, defer_size=DEFER)
        except Exception as exc:  # pydicom raises many types for a malformed file
            return DicomScan((), (("file", f"unreadable: {type(exc).__name__}"),), ())
        _walk_dicom(ds.file_meta, "", 0, size, out, problems)
        _walk_dicom(ds, "", 0, size, out, problems)
        if len(out) <= len(ds.file_meta):
            problems.append(("file", "unreadable: no data set after the file meta information"))
    return DicomScan(tuple(out), tuple(problems), tuple(str(w.message) for w in caught))


def _pn_parts(text: str) -> list[str]:
    """The components of a person name (family, given, ... in each representation)."""
    return [p for group in text.split("=") for p in group.split("^") if p.strip()]


def dicom_fields(element: DicomElement) -> Iterator[Field]:
    """What the linkage and date tests look at in one element (nothing for sequences)."""
    value = element.value
    if value is None:
        return
    if isinstance(value, bytes):
        yield Field(element.location, data=value, dates=False)
        return
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    texts = [str(item) for item in items]
    # A number equal to a short label ("7") is a count, not the label: no whole-value test.
    wholes = [] if element.vr in NUMBER_VRS else list(texts)
    if element.vr == "PN":
        wholes += [part for text in texts for part in _pn_parts(text)]
    raw = element.raw if element.vr in STRING_VRS | BINARY_VRS else None
    yield Field(
        element.location,
        text="\\".join(texts),
        data=raw,
        wholes=tuple(wholes),
        dates=element.vr != "UI",
    )


# JSON and TSV


def _pointer(parts: list[str]) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _json_walk(value: object, parts: list[str]) -> Iterator[Field]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield value_field(_pointer([*parts, key]) + " (key)", str(key))
            yield from _json_walk(item, [*parts, str(key)])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_walk(item, [*parts, str(index)])
    elif isinstance(value, str):
        yield value_field(_pointer(parts), value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield Field(_pointer(parts), text=str(value))  # a number: no whole-value test


def json_fields(path: Path) -> Iterator[Field]:
    if path.stat().st_size > JSON_MAX:
        raise Unparsable("too large to parse as JSON")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise Unparsable(f"not valid JSON: {exc}") from exc
    yield from _json_walk(data, [])


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def tsv_fields(path: Path) -> Iterator[Field]:
    header: list[str] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            cells = _decode(line.rstrip(b"\r\n")).split("\t")
            if number == 0:
                header = cells
            for index, cell in enumerate(cells):
                column = header[index] if index < len(header) else f"#{index + 1}"
                where = "header" if number == 0 else f"row {number}"
                yield value_field(f"{where}, column {column}", cell)


# Streams of bytes


def chunk_fields(path: Path, overlap: int, compressed: bool = False) -> Iterator[Field]:
    """The file (decompressed if gzip) in overlapping chunks.

    Each byte is owned by one chunk's window, so a match is counted once and never cut in two.
    """
    opener = gzip.open if compressed else open
    label = "decompressed byte" if compressed else "byte"
    try:
        with opener(path, "rb") as handle:
            yield from _chunks(handle, overlap, label)
    except (OSError, EOFError, zlib.error) as exc:
        raise Unparsable(f"cannot be decompressed: {type(exc).__name__}") from exc


def _chunks(handle: IO[bytes], overlap: int, label: str) -> Iterator[Field]:
    half = overlap // 2
    base, data = 0, handle.read(CHUNK + overlap)
    while data:
        more = handle.read(CHUNK)
        lo = 0 if base == 0 else half
        hi = len(data) - overlap + half if more else len(data)
        yield Field(label, data=data, base=base, window=(lo, hi))
        if not more:
            return
        base += len(data) - overlap
        data = data[-overlap:] + more


# EEG/MEG headers and NIfTI


def _edf_date(text: str) -> date | None:
    try:
        day, month, year = (int(p) for p in text.strip().split("."))
        return date(year + (1900 if year >= 85 else 2000), month, day)
    except ValueError:
        return None


EDF_SIGNAL_FIELDS = (
    ("label", 16), ("transducer", 80), ("physical dimension", 8), ("physical minimum", 8),
    ("physical maximum", 8), ("digital minimum", 8), ("digital maximum", 8),
    ("prefiltering", 80), ("samples per record", 8), ("reserved", 32),
)  # fmt: skip


def _edf_header(handle: IO[bytes], size: int) -> tuple[bytes, int, int, dict[str, list[str]]]:
    head = handle.read(256)
    try:
        header_bytes, records, signals = (int(head[a:b]) for a, b in ((184, 192), (236, 244),
                                                                    (252, 256)))  # fmt: skip
    except ValueError as exc:
        raise Unparsable("not an EDF/BDF header") from exc
    if len(head) < 256 or not 0 < signals <= 4096 or 256 * (signals + 1) > size:
        raise Unparsable("not an EDF/BDF header: cut short or a bad number of signals")
    signal_head = handle.read(256 * signals)
    values: dict[str, list[str]] = {}
    offset = 0
    for name, width in EDF_SIGNAL_FIELDS:
        chunk = signal_head[offset : offset + width * signals].decode("latin-1")
        values[name] = [chunk[i * width : (i + 1) * width].strip() for i in range(signals)]
        offset += width * signals
    records = records if records >= 0 else size  # unknown: as many as the file holds
    return head, max(header_bytes, 256 * (signals + 1)), records, values


def edf_fields(path: Path) -> Iterator[Field]:
    """The fixed header, every signal header, and the EDF+/BDF+ annotation signal's text."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head, header_bytes, records, values = _edf_header(handle, size)
        for name, start, end in (("patient", 8, 88), ("recording", 88, 168),
                                 ("starttime", 176, 184), ("reserved", 192, 236)):  # fmt: skip
            text = head[start:end].decode("latin-1")
            yield Field(f"EDF {name}", text=text, wholes=(text.strip(), *text.split()))
        start_date = head[168:176].decode("latin-1")
        yield Field("EDF startdate", text=start_date, when=_edf_date(start_date), dates=False)
        for name in ("label", "transducer", "physical dimension", "prefiltering", "reserved"):
            for index, text in enumerate(values[name]):
                yield value_field(f"EDF signal {index + 1} {name}", text)
        try:
            samples = [int(s) for s in values["samples per record"]]
        except ValueError as exc:
            raise Unparsable("EDF samples per record is not a number") from exc
        width = 3 if path.name.lower().endswith(".bdf") else 2
        record = sum(samples) * width
        if record <= 0 or min(samples) < 0:
            return
        records = min(records, (size - header_bytes) // record)
        for index, label in enumerate(values["label"]):
            if label not in ("EDF Annotations", "BDF Annotations"):
                continue
            start = sum(samples[:index]) * width
            for number in range(records):
                handle.seek(header_bytes + number * record + start)
                data = handle.read(samples[index] * width)
                yield Field(f"EDF annotations, record {number + 1}", data=data)


def _info_walk(value: object, location: str, depth: int = 0) -> Iterator[Field]:
    if depth > 8:
        return
    if isinstance(value, datetime):
        yield Field(location, when=value.date())
    elif isinstance(value, date):
        yield Field(location, when=value)
    elif isinstance(value, dict):
        if isinstance(value.get("secs"), int) and value["secs"] > 0 and "usecs" in value:
            # a FIF time stamp (file_id, meas_id); 0 means none was recorded
            yield Field(location, when=datetime.fromtimestamp(value["secs"], UTC).date())
        for key, item in value.items():
            yield from _info_walk(item, f"{location}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _info_walk(item, f"{location}[{index}]", depth + 1)
    elif isinstance(value, str):
        yield value_field(location, value)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield Field(location, text=str(value))  # a number: no whole-value test


def fif_fields(path: Path) -> Iterator[Field]:
    """MNE's measurement info: subject info, experimenter, description, dates, projects."""
    import mne

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # naming-convention advice, not a property of the data
        try:
            info = mne.io.read_info(str(path), verbose="error")
        except Exception as exc:  # MNE raises many types for a malformed file
            raise Unparsable(f"not a readable FIF file: {type(exc).__name__}") from exc
    yield from _info_walk(dict(info), "info")


def eeglab_fields(path: Path) -> Iterator[Field]:
    """Every text field of an EEGLAB .set (MATLAB v5; a v7.3 file is `Unparsable`)."""
    from scipy.io import loadmat

    try:
        data = loadmat(str(path), simplify_cells=True)
    except Exception as exc:  # scipy raises many types for a malformed file
        raise Unparsable(f"not a readable EEGLAB file: {type(exc).__name__}") from exc
    for key, value in data.items():
        if not key.startswith("__"):
            yield from _mat_walk(value, key)


def _mat_walk(value: object, location: str, depth: int = 0) -> Iterator[Field]:
    import numpy as np

    if depth > 12:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _mat_walk(item, f"{location}.{key}", depth + 1)
    elif isinstance(value, np.ndarray) and value.dtype.kind in "OU":
        for index, item in enumerate(value.ravel()):
            yield from _mat_walk(item, f"{location}[{index}]", depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _mat_walk(item, f"{location}[{index}]", depth + 1)
    elif isinstance(value, str):
        yield value_field(location, value)


NIFTI_TEXT = ("descrip", "aux_file", "intent_name", "db_name", "data_type")


def nifti_fields(path: Path) -> Iterator[Field]:
    """The header's text fields and every header extension (read as bytes)."""
    import nibabel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # header-fixing advice; the fields are read as stored
        try:
            header = nibabel.load(str(path)).header
        except Exception as exc:  # nibabel raises many types for a malformed file
            raise Unparsable(f"not a readable NIfTI file: {type(exc).__name__}") from exc
    for name in NIFTI_TEXT:
        if name in header:
            data = bytes(header[name].item()).split(b"\0")[0]
            yield value_field(f"NIfTI {name}", _decode(data).strip(), data)
    for index, extension in enumerate(getattr(header, "extensions", ())):
        content = getattr(extension, "content", None)
        if not isinstance(content, bytes):
            content = extension.get_content()
        data = content if isinstance(content, bytes) else str(content).encode()
        yield Field(f"NIfTI extension {index + 1} (code {extension.get_code()})", data=data)
