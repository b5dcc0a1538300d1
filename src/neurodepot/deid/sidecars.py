"""Scrubbing BIDS JSON sidecars and TSV files of identifying fields.

A dcm2niix sidecar copies DICOM attributes under their keywords, so each key follows the rule
the DICOM confidentiality profile gives the attribute it came from, under the same project
options (`deid/data/sidecar_fields.toml` lists the keys and their attributes): a value the
DICOM header loses, the sidecar loses too. Where the header keeps an attribute empty (`Z`) or
blanked (`C` on free text: descriptors under clean-descriptors, as `deid.dicom_headers` does)
or with a dummy (`D`), the sidecar drops the key. Dates the table does not list follow the
date options like listed ones. Removal is by key at any depth of nested objects and lists.
Keys that are not DICOM attributes are acquisition parameters and are kept; the release
checker scans every value that stays for internal identifiers.

TSVs are BIDS tables: only known columns stay (`[tsv]` in the same file), labels are
relabelled through the pseudonym map, `acq_time` follows the date options. Age and sex stay in
participants.tsv whatever the options (BIDS expects them, search facets use them): age as
whole years, 89 and over written "89+" (the BIDS and HIPAA Safe Harbor practice).
"""

import json
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources

from neurodepot.deid.profile import ProfileOption, load_profile
from neurodepot.errors import Invalid

FIELDS_FILE = "sidecar_fields.toml"
TOP_CODED_AGE = 89
_AGE_UNITS = {"Y": 1.0, "M": 12.0, "W": 365.25 / 7, "D": 365.25}
_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})")
_ISO_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)
_LABEL = re.compile(r"^(sub|ses)-[^_/]*$")
_DATE_OPTIONS = (ProfileOption.RETAIN_MODIFIED_DATES, ProfileOption.RETAIN_FULL_DATES)


class TsvKind(StrEnum):
    """The BIDS tables this module knows, named as their files end."""

    PARTICIPANTS = "participants"
    SESSIONS = "sessions"
    SCANS = "scans"


_LABEL_COLUMN = {
    TsvKind.PARTICIPANTS: "participant_id",
    TsvKind.SESSIONS: "session_id",
    TsvKind.SCANS: "filename",
}


@dataclass(frozen=True)
class SidecarFields:
    """The package's field list: sidecar key -> DICOM keyword, and TSV columns kept per kind."""

    fields: Mapping[str, str]
    tsv_columns: Mapping[TsvKind, frozenset[str]]


@cache
def load_fields() -> SidecarFields:
    text = resources.files("neurodepot.deid").joinpath("data", FIELDS_FILE).read_text("utf-8")
    data = tomllib.loads(text)
    columns = {kind: frozenset(data["tsv"][kind.value]) for kind in TsvKind}
    return SidecarFields(fields=dict(data["fields"]), tsv_columns=columns)


@cache
def _dicom_rule(key: str) -> tuple[int, str] | None:
    """The (tag, VR) of the DICOM attribute a sidecar key comes from, if it comes from one."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    tag = tag_for_keyword(load_fields().fields.get(key, key))
    return None if tag is None else (tag, dictionary_VR(tag))


def scrub_sidecar(
    data: dict[str, object],
    options: frozenset[ProfileOption],
    date_offset_days: int,
    remap_uid: Callable[[str], str] | None = None,
) -> dict[str, object]:
    """A copy of `data` without what the profile removes for `options`.

    Dates are shifted by `date_offset_days` under retain-modified-dates. UIDs are removed
    unless retain-uids, or remapped by `remap_uid` (the project's DICOM remapper, so sidecar
    and headers agree) when given. A date that cannot be read is removed, not guessed at.
    """
    return _scrub_object(data, options, date_offset_days, remap_uid)


def scrub_sidecar_bytes(
    data: bytes,
    name: str,
    options: frozenset[ProfileOption],
    date_offset_days: int,
    remap_uid: Callable[[str], str] | None = None,
) -> bytes:
    """`scrub_sidecar` on a file's bytes (`name` is told in errors); UTF-8 JSON out."""
    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise Invalid(f"{name}: not UTF-8 text (byte {exc.start}); a JSON sidecar is") from None
    except json.JSONDecodeError as exc:
        raise Invalid(
            f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix or remove the sidecar"
        ) from None
    if not isinstance(parsed, dict):
        raise Invalid(f"{name}: a JSON sidecar must hold an object, not {type(parsed).__name__}")
    scrubbed = scrub_sidecar(parsed, options, date_offset_days, remap_uid)
    return (json.dumps(scrubbed, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _scrub_object(
    data: Mapping[str, object],
    options: frozenset[ProfileOption],
    offset: int,
    remap_uid: Callable[[str], str] | None,
) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        action, vr = _action(key, options)
        if action in (None, "K"):
            kept = _scrub_value(value, options, offset, remap_uid)
            if key == "PatientAge":
                kept = _age_or_none(kept)
                if kept is None:
                    continue
            out[key] = kept
        elif action == "U" and remap_uid is not None:
            remapped = _map_strings(value, remap_uid)
            if remapped is not None:
                out[key] = remapped
        elif action == "C" and vr in ("DA", "DT", "TM"):
            shifted = _map_strings(value, lambda text, vr=vr: _shift(text, vr, offset))
            if shifted is not None:
                out[key] = shifted
        # X, Z, D, an unmapped U and C on text (the DICOM header blanks it: free text has no
        # reliable automatic cleaning): the key goes, a sidecar has no use for an empty value
    return out


def _action(key: str, options: frozenset[ProfileOption]) -> tuple[str | None, str]:
    """The profile's action for a sidecar key, and its DICOM VR ("" if not an attribute)."""
    rule = _dicom_rule(key)
    if rule is None:
        if key.endswith("UID"):
            return ("K" if ProfileOption.RETAIN_UIDS in options else "U"), "UI"
        return None, ""
    tag, vr = rule
    action = load_profile().action_for(tag, options)
    if action is None and vr in ("DA", "DT"):  # dates the table does not list: like listed ones
        modified = ProfileOption.RETAIN_MODIFIED_DATES in options
        action = "C" if modified else "K" if ProfileOption.RETAIN_FULL_DATES in options else "Z"
    return action, vr


def _scrub_value(
    value: object,
    options: frozenset[ProfileOption],
    offset: int,
    remap_uid: Callable[[str], str] | None,
) -> object:
    if isinstance(value, dict):
        return _scrub_object(value, options, offset, remap_uid)
    if isinstance(value, list):
        return [_scrub_value(item, options, offset, remap_uid) for item in value]
    return value


def _map_strings(value: object, change: Callable[[str], str | None]) -> object:
    """`change` applied to a string or each string of a list; None if any cannot be changed."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        items = [_map_strings(item, change) for item in value]
        return None if any(item is None for item in items) else items
    return None


def _shift(text: str, vr: str, offset: int) -> str | None:
    """A DICOM or ISO date/datetime moved by `offset` days, keeping its own format.

    A time of day is returned as is (shifts are whole days); None if `text` is not a date.
    """
    if vr == "TM":
        return text
    found = _DATE.match(text)
    if found is None:
        return None
    try:
        day = date(*(int(part) for part in found.groups()))
    except ValueError:
        return None
    moved = day + timedelta(days=offset)
    separator = "-" if "-" in found.group(0) else ""
    return f"{moved:%Y}{separator}{moved:%m}{separator}{moved:%d}" + text[found.end() :]


def _age_or_none(value: object) -> object:
    """An age in whole years, "89+" at 89 and over; None when it cannot be read."""
    years: float | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        years = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text == "89+":
            return text
        found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([YMWD]?)", text, re.IGNORECASE)
        if found:
            years = float(found.group(1)) / _AGE_UNITS[(found.group(2) or "Y").upper()]
    if years is None or not math.isfinite(years) or years < 0:
        return None
    return "89+" if years >= TOP_CODED_AGE else math.floor(years)


def tsv_kind_for(filename: str) -> TsvKind | None:
    """Which BIDS table a file is, by its name (`participants.tsv`, `*_scans.tsv`, ...)."""
    for kind in TsvKind:
        if filename == f"{kind.value}.tsv" or filename.endswith(f"_{kind.value}.tsv"):
            return kind
    return None


def scrub_tsv_text(
    text: str,
    kind: TsvKind | str,
    options: frozenset[ProfileOption],
    date_offset_days: int,
    relabel: Mapping[str, str] | None = None,
    name: str = "TSV",
    keep_columns: Iterable[str] = (),
) -> str:
    """A BIDS TSV with only known columns, labels relabelled and `acq_time` per the options.

    `relabel` maps whole labels (`sub-01` -> `sub-7KQ2M9XD`, `ses-pre` -> `ses-K3M9`); a
    `sub-`/`ses-` label it lacks is an error, never passed through. None: the caller wrote the
    table with pseudonyms already, and labels are kept as they are. `acq_time` is shifted by
    `date_offset_days` under retain-modified-dates, kept under retain-full-dates, else its
    column is dropped. Raises Invalid naming `name` and the line for a ragged or bad row.
    """
    kind = TsvKind(kind)
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise Invalid(f"{name}: empty; a BIDS TSV needs a header row")
    header = lines[0].split("\t")
    label_column = _LABEL_COLUMN[kind]
    if len(set(header)) != len(header):
        raise Invalid(f"{name}: line 1: a column name appears twice")
    if label_column not in header:
        raise Invalid(f"{name}: line 1: no `{label_column}` column, which a {kind} table needs")
    allowed = load_fields().tsv_columns[kind] | frozenset(keep_columns)
    if not any(option in options for option in _DATE_OPTIONS):
        allowed -= {"acq_time"}
    if ProfileOption.RETAIN_MODIFIED_DATES not in options:
        date_offset_days = 0  # full dates: acq_time is checked, not moved
    kept = [index for index, column in enumerate(header) if column in allowed]
    out = ["\t".join(header[index] for index in kept)]
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise Invalid(
                f"{name}: line {number}: {len(cells)} cells where the header has "
                f"{len(header)}; every row needs one cell per column (tab-separated)"
            )
        where = f"{name}: line {number}"
        row = [_cell(header[i], cells[i], kind, date_offset_days, relabel, where) for i in kept]
        out.append("\t".join(row))
    return "\n".join(out) + "\n"


def _cell(
    column: str,
    value: str,
    kind: TsvKind,
    offset: int,
    relabel: Mapping[str, str] | None,
    where: str,
) -> str:
    if value == "n/a" or (relabel is None and column == _LABEL_COLUMN[kind]):
        return value
    if column == _LABEL_COLUMN[kind] and kind is TsvKind.SCANS:
        return "/".join(_relabel_name(part, relabel, where) for part in value.split("/"))
    if column == _LABEL_COLUMN[kind]:
        if value not in relabel:
            raise Invalid(f"{where}: {column} has no pseudonym; give one for every label")
        return relabel[value]
    if column == "acq_time":
        shifted = _shift(value, "DT", offset) if _ISO_DATE_TIME.match(value) else None
        if shifted is None:
            raise Invalid(f"{where}: acq_time is not a date-time like 2020-01-31T13:45:00")
        return shifted
    if column == "age" and kind is TsvKind.PARTICIPANTS:
        age = _age_or_none(value)
        if age is None:
            raise Invalid(f"{where}: age must be a number of years (or n/a)")
        return str(age)
    return value


def _relabel_name(part: str, relabel: Mapping[str, str], where: str) -> str:
    """A path part (`sub-01`, `sub-01_ses-2_T1w.nii.gz`) with its sub-/ses- labels replaced."""
    tokens = part.split("_")
    for index, token in enumerate(tokens):
        if _LABEL.match(token):
            if token not in relabel:
                raise Invalid(f"{where}: filename has a label with no pseudonym")
            tokens[index] = relabel[token]
    return "_".join(tokens)
