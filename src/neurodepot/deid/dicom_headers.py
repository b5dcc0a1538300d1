"""De-identifying one DICOM instance's header by the PS3.15 Annex E confidentiality profile.

One walk over what the file holds, at every depth of sequences: each tag is looked up in the
profile's plan for the project's options (`deid.profile`); only elements that change are
decoded, the rest (pixel data too) is written back as read. Beyond the table:

- Private elements (odd groups) are removed, unless the project selects Retain Safe Private
  and lists (private creator, element byte) in `DicomRecipe.private_allow`; a kept element
  keeps its block's creator. Group lengths (retired, and wrong after the changes) go.
- Dates the table does not list (any other DA/DT) are handled like listed ones: blanked,
  shifted with Modified Dates, kept with Full Dates. A date that does not parse is blanked.
- Clean (`C`) cannot be done reliably for free text or graphics, so it blanks the value (the
  attribute stays, empty); with Modified Dates it shifts DA/DT by the subject's offset, keeping
  times of day (`deid.date_shift`); on a sequence it keeps the items, applies the table inside
  and blanks their unlisted free text (ST, LT, UT, UC, PN). `D` on a sequence leaves one empty
  item: its content may hold what the table cannot name.
- Patient's Name and ID take the subject's pseudonyms; Patient Identity Removed,
  De-identification Method (+ Code Sequence) and Longitudinal Temporal Information Modified
  are set. The file meta keeps the encoding and the (remapped) Media Storage SOP Instance UID
  only: the sending station's AE titles go.

Siemens CSA headers: dcm2niix needs the private CSA header ("SIEMENS CSA HEADER", element
bytes 0x10 image and 0x20 series) for mosaics, diffusion and slice timing. neurodepot converts
from the archived originals, so NIfTI/BIDS never depend on the de-identified DICOM, which is
made only for sharing. A project sharing DICOM to be reconverted can select Retain Safe Private
and allow-list those two; the series header embeds the scanner's protocol text (names a site
may fill with identifying text), so that is the project's decision; DEID-LINKAGE scans it.
"""

import os
import struct
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.charset import decode_bytes, python_encoding
from pydicom.datadict import dictionary_has_tag, dictionary_VR, repeater_has_tag
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID
from pydicom.valuerep import VR

from neurodepot import __version__
from neurodepot.deid.burned_in import burned_in_reason
from neurodepot.deid.date_shift import shift_values
from neurodepot.deid.profile import (
    ProfileOption,
    check_options,
    deidentification_method,
    dummy_value,
    load_profile,
)
from neurodepot.deid.uid_remap import MIN_KEY_BYTES, remap_uid
from neurodepot.deid.uid_remap import validate_uid_root as validate_uid_root
from neurodepot.errors import Invalid

KNOWN_VRS = frozenset(v.value for v in VR)
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})  # decoded by the charset
FREE_TEXT_VRS, DATE_VRS = frozenset({"ST", "LT", "UT", "UC", "PN"}), frozenset({"DA", "DT"})
VALUE_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "UV": 8, "SV": 8,
               "OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}  # fmt: skip
TIMEZONE_OFFSET, PATIENT_ID, CHARSET = 0x00080201, 0x00100020, 0x00080005
PIXEL_DATA = (0x7FE00010, 0x7FE00008, 0x7FE00009)
META_KEPT = (0x00020001, 0x00020002, 0x00020003, 0x00020010)  # the rest name stations
_ERRORS = (EOFError, ValueError, struct.error, KeyError, TypeError, IndexError, OverflowError)


@dataclass(frozen=True)
class DicomRecipe:
    """One project's de-identification settings; validated when made (`Invalid`)."""

    options: frozenset[ProfileOption]
    uid_root: str
    uid_key: bytes  # the secret for UID remapping: at least 16 random bytes (32 advised)
    private_allow: frozenset[tuple[str, int]] = frozenset()  # (creator, element byte)

    def __post_init__(self) -> None:
        check_options(frozenset(self.options))
        validate_uid_root(self.uid_root)
        if not isinstance(self.uid_key, bytes) or len(self.uid_key) < MIN_KEY_BYTES:
            raise Invalid(f"the UID key must be at least {MIN_KEY_BYTES} random bytes")
        for entry in self.private_allow:
            creator, byte = entry if isinstance(entry, tuple) and len(entry) == 2 else ("", -1)
            if not (isinstance(creator, str) and creator and byte in range(256)):
                raise Invalid(f"private allow-list entry {entry!r} is not (creator, 0x00-0xFF)")


@dataclass(frozen=True)
class SubjectKeys:
    """What replaces one subject's identity: pseudonyms and the date offset in days."""

    patient_name: str
    patient_id: str
    date_offset_days: int

    def __post_init__(self) -> None:
        for what, value in (("patient name", self.patient_name), ("ID", self.patient_id)):
            if not value or len(value) > 64 or not value.isascii() or not value.isprintable():
                raise Invalid(f"pseudonym {what} {value!r}: need 1-64 printable ASCII characters")
            if "\\" in value:
                raise Invalid(f"pseudonym {what} {value!r} must not contain a backslash")


@dataclass(frozen=True)
class HeaderOutcome:
    """What a steward or the batch needs to know about one de-identified instance."""

    burned_in: str | None  # why the image may carry burned-in text (None: no sign)
    sop_instance_uid: str = ""  # remapped
    series_instance_uid: str = ""  # remapped
    path: Path | None = None  # where it was written


Keys = SubjectKeys | Callable[[str], SubjectKeys]
Element = RawDataElement | DataElement


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@cache
def _dictionary_vr(tag: int) -> str:
    return dictionary_VR(tag) if dictionary_has_tag(tag) or repeater_has_tag(tag) else "UN"


def _vr(tag: int, elem: Element) -> str:
    return _dictionary_vr(tag) if elem.VR in (None, "UN") else elem.VR


def _text(elem: Element | None) -> str:
    """An ASCII-only value (UI, DA, DT, CS) as text, without its padding."""
    value = None if elem is None else elem.value
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip(" \x00")
    return "\\".join(str(v) for v in value)


def _check_raw(tag: int, raw: RawDataElement) -> None:
    """What pydicom reads without complaint but is not DICOM: a cut value, a bad VR or size."""
    vr, length = raw.VR, raw.length
    if vr is not None and vr not in KNOWN_VRS:
        raise Invalid(f"malformed element {_tag(tag)}: unknown VR {vr!r}")
    if length == 0xFFFFFFFF:
        return
    got = 0 if raw.value is None else len(raw.value)
    if got != length:
        raise Invalid(f"truncated: element {_tag(tag)} declares {length} bytes, the file has {got}")
    if length % VALUE_SIZES.get(vr or "", 1):
        raise Invalid(f"malformed element {_tag(tag)}: {length} bytes is not a whole {vr} value")


def _encodings(ds: Dataset) -> list[str]:
    """The codecs kept text must decode with ([]: any byte decodes); `Invalid` if unknown."""
    terms = [t.strip() for t in _text(ds.get_item(CHARSET)).split("\\")]
    unknown = [t for t in terms if t not in python_encoding]
    if unknown:
        raise Invalid(f"unknown Specific Character Set {unknown[0]!r}: cannot decode its text")
    encodings = [python_encoding[t] for t in terms]
    return [] if set(encodings) <= {"iso8859", "latin_1"} else encodings


def _decode(value: bytes, encodings: list[str], tag: int) -> str:
    try:
        if len(encodings) <= 1:
            return value.decode(encodings[0] if encodings else "latin_1")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # pydicom warns, then replaces what it cannot decode
            return decode_bytes(value, encodings, set())
    except (UnicodeError, UserWarning, LookupError):
        raise Invalid(f"element {_tag(tag)} cannot be decoded as {'/'.join(encodings)}") from None


class _Walk:
    """One instance's de-identification: the plan for the options and the per-file state."""

    def __init__(self, recipe: DicomRecipe, keys: SubjectKeys, encodings: list[str]) -> None:
        self.recipe, self.keys, self.encodings = recipe, keys, encodings
        self.profile = load_profile()
        self.plan = self.profile.plan(frozenset(recipe.options))
        self.modified = ProfileOption.RETAIN_MODIFIED_DATES in recipe.options
        self.full = ProfileOption.RETAIN_FULL_DATES in recipe.options
        self.unlisted_date = "C" if self.modified else "K" if self.full else "Z"
        allow = ProfileOption.RETAIN_SAFE_PRIVATE in recipe.options
        self.private_allow = recipe.private_allow if allow else frozenset()
        self.uids: dict[str, str] = {}

    def keep_text(self, tag: int, elem: Element, vr: str) -> None:
        value = elem.value
        if vr in TEXT_VRS and self.encodings and isinstance(value, bytes) and not value.isascii():
            _decode(value, self.encodings, tag)

    def dataset(self, ds: Dataset, cleaning: bool) -> None:
        plan, private = self.plan, []
        for tag, elem in list(ds.items()):
            if isinstance(elem, RawDataElement):
                _check_raw(tag, elem)
            action = plan.get(tag)
            if action is None:
                group = tag >> 16
                if group & 1:
                    private.append(tag)
                    continue
                if tag & 0xFFFF == 0:
                    del ds[tag]
                    continue
                if 0x5000 <= group <= 0x60FF:  # curves and overlays: pattern rows
                    action = self.profile.action_for(tag, self.recipe.options)
                if action is None:
                    vr = _vr(tag, elem)
                    if vr == "SQ":
                        self.sequence(ds, tag, cleaning)
                    elif vr in DATE_VRS or (cleaning and vr in FREE_TEXT_VRS):
                        action = self.unlisted_date if vr in DATE_VRS else "Z"
                    else:
                        self.keep_text(tag, elem, vr)
                    if action is None:
                        continue
            self.apply(ds, tag, elem, action, cleaning)
        if private:
            self.private(ds, private, cleaning)

    def sequence(self, ds: Dataset, tag: int, cleaning: bool) -> None:
        value = ds[tag].value
        if not isinstance(value, Sequence):
            raise Invalid(f"malformed element {_tag(tag)}: a sequence whose items cannot be read")
        for item in value:
            self.dataset(item, cleaning)

    def apply(self, ds: Dataset, tag: int, elem: Element, action: str, cleaning: bool) -> None:
        if action == "X":
            del ds[tag]
            return
        vr = _vr(tag, elem)
        empty = not elem.value if isinstance(elem, RawDataElement) else elem.is_empty
        if vr == "SQ":
            if action in "KUC":
                self.sequence(ds, tag, cleaning or action == "C")
            elif not empty:
                ds[tag] = DataElement(tag, "SQ", [Dataset()] if action == "D" else [])
        elif vr in DATE_VRS and (action == "K" or (action == "C" and self.modified)):
            self.shift(ds, tag, elem, vr, self.keys.date_offset_days if action == "C" else 0)
        elif action == "K":
            self.keep_text(tag, elem, vr)
        elif action == "U" or (action == "D" and vr == "UI"):
            values = [self.remap(v) for v in _text(elem).split("\\") if v.strip(" \x00")]
            ds[tag] = DataElement(tag, "UI", values[0] if len(values) == 1 else values)
        elif action == "C" and self.modified and (vr == "TM" or tag == TIMEZONE_OFFSET):
            return  # times of day stay with a shift by whole days (deid.date_shift)
        elif not empty:
            value = dummy_value(vr) if action == "D" else empty_value_for_VR(vr)
            ds[tag] = DataElement(tag, vr, value)

    def shift(self, ds: Dataset, tag: int, elem: Element, vr: str, days: int) -> None:
        """Move a date by `days` (0: only check it); one that does not parse is blanked."""
        text = _text(elem)
        moved = shift_values(text, vr, days) if text else text
        if moved != text:
            ds[tag] = DataElement(tag, vr, moved or "")

    def remap(self, uid: str) -> str:
        if uid not in self.uids:
            self.uids[uid] = remap_uid(uid, self.recipe.uid_key, self.recipe.uid_root)
        return self.uids[uid]

    def private(self, ds: Dataset, tags: list[int], cleaning: bool) -> None:
        """Remove private elements but those allow-listed, and the creators of their blocks."""
        keep: set[int] = set()
        for tag in tags if self.private_allow else ():
            group, element = tag >> 16, tag & 0xFFFF
            if element < 0x1000 or group < 0x0009 or group == 0xFFFF:
                continue  # creators, group lengths, and odd groups that are not private
            creator = (tag & 0xFFFF0000) | element >> 8
            if (_text(ds.get_item(creator)), element & 0xFF) in self.private_allow:
                keep.update((tag, creator))
        for tag in tags:
            if tag not in keep:
                del ds[tag]
        for tag in sorted(keep):
            if tag & 0xFFFF >= 0x1000 and isinstance(ds[tag].value, Sequence):
                self.sequence(ds, tag, cleaning)

    def file_meta(self, ds: Dataset) -> None:
        if (meta := getattr(ds, "file_meta", None)) is None:
            return
        new = FileMetaDataset()
        for tag in (t for t in META_KEPT if t in meta):
            new[tag] = meta[tag]
            if tag == 0x00020003 and self.plan.get(tag) == "U":
                new[tag] = DataElement(tag, "UI", self.remap(_text(meta[tag])))
        new.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        new.ImplementationVersionName = f"NEURODEPOT_{__version__}"[:16]
        ds.file_meta = new


def deidentify_dataset(ds: Dataset, recipe: DicomRecipe, keys: Keys) -> HeaderOutcome:
    """De-identify `ds` in place, file meta included; `Invalid` for malformed content.

    `keys` may be a function of the original Patient ID, for a batch holding several subjects.
    """
    encodings = _encodings(ds)
    if callable(keys):
        raw = ds.get_item(PATIENT_ID)
        value = None if raw is None else raw.value
        original = _decode(value, encodings, PATIENT_ID) if isinstance(value, bytes) else value
        keys = keys(str(original or "").strip(" \x00"))
    burned_in = burned_in_reason(ds)
    walk = _Walk(recipe, keys, encodings)
    walk.dataset(ds, cleaning=False)
    walk.file_meta(ds)
    ds.PatientName, ds.PatientID = keys.patient_name, keys.patient_id
    ds.PatientIdentityRemoved = "YES"
    method, codes = deidentification_method(recipe.options)
    ds.DeidentificationMethod, ds.DeidentificationMethodCodeSequence = method, codes
    dates = "MODIFIED" if walk.modified else "UNMODIFIED" if walk.full else "REMOVED"
    ds.LongitudinalTemporalInformationModified = dates
    sop, series = ds.get("SOPInstanceUID", ""), ds.get("SeriesInstanceUID", "")
    return HeaderOutcome(burned_in, str(sop or ""), str(series or ""))


def _deidentify(src: Path, recipe: DicomRecipe, keys: Keys) -> tuple[Dataset, HeaderOutcome]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # what pydicom guesses around (charset, VR) is bad input
            ds = dcmread(src)
    except UserWarning as exc:
        problem = str(exc).splitlines()[0].split(" - ")[0]
        what = "undecodable Specific Character Set" if "encoding" in problem else "malformed DICOM"
        raise Invalid(f"{src}: {what}: {problem}") from None
    except InvalidDicomError:
        raise Invalid(f"{src}: not a DICOM file (no 'DICM' after the 128-byte preamble)") from None
    except OSError as exc:
        raise Invalid(f"{src}: cannot be read: {exc.strerror or exc}") from None
    except _ERRORS as exc:
        raise Invalid(f"{src}: malformed DICOM: {exc}") from None
    if 0x00080018 not in ds:
        raise Invalid(f"{src}: truncated or not an instance: it has no SOP Instance UID")
    if 0x00280010 in ds and not any(tag in ds for tag in PIXEL_DATA):
        raise Invalid(f"{src}: truncated: an image (it has Rows) without pixel data")
    try:
        return ds, deidentify_dataset(ds, recipe, keys)
    except Invalid as exc:
        raise Invalid(f"{src}: {exc.message}") from None
    except _ERRORS as exc:
        raise Invalid(f"{src}: malformed element: {exc}") from None


def _write(ds: Dataset, dst: Path, src: Path) -> None:
    """Write atomically: a temporary file beside `dst`, renamed into place, removed on error."""
    try:
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    except OSError as exc:
        raise Invalid(f"{dst.parent}: cannot write there: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            ds.save_as(out, enforce_file_format=True)
        os.replace(tmp, dst)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, _ERRORS):
            raise Invalid(f"{src}: cannot be written as DICOM once de-identified: {exc}") from None
        raise


def deidentify_file(src: Path, dst: Path, recipe: DicomRecipe, keys: Keys) -> HeaderOutcome:
    """De-identify the instance in `src` into `dst` (atomic; `dst` may be `src`).

    `Invalid` naming `src` for a file that is not DICOM, is truncated, has a malformed element
    or an undecodable character set; `dst` is then left as it was. Reading turns pydicom's
    warnings into errors with `warnings.catch_warnings`, which is process-wide: run several
    de-identifications at once in processes (as `deid.dicom_batch` does), not threads.
    """
    ds, outcome = _deidentify(src, recipe, keys)
    _write(ds, dst, src)
    return replace(outcome, path=dst)


def deidentify_into(
    src: Path, folder: Path, recipe: DicomRecipe, keys: Keys, by_series: bool = False
) -> HeaderOutcome:
    """De-identify `src` into `folder` under a name that identifies nothing.

    The file is `<remapped SOP Instance UID>.dcm`, in a folder named by the remapped Series
    Instance UID with `by_series`.
    """
    ds, outcome = _deidentify(src, recipe, keys)
    target = folder / outcome.series_instance_uid if by_series else folder
    target.mkdir(parents=True, exist_ok=True)
    dst = target / f"{outcome.sop_instance_uid}.dcm"
    _write(ds, dst, src)
    return replace(outcome, path=dst)
