"""The DICOM PS3.15 Annex E confidentiality profile, read from the table shipped as data.

The table (`data/confidentiality_profile.json`, edition in `data/SOURCE.txt`) gives for every
listed attribute an action code for the Basic Application Level Confidentiality Profile and,
per option, a code that replaces it when the option is selected. The codes are the standard's:

- `X` remove, `Z` keep present with an empty value, `D` replace with a dummy value,
  `K` keep, `C` clean, `U` replace UIDs with consistent new ones.

Compound codes leave the choice to whoever knows the IOD ("X unless Z is required to maintain
IOD conformance"). We de-identify any object without knowing its IOD, so each compound is
resolved once, here, to the weakest action that never breaks a conformant Type 2 attribute and
never keeps the value:

- `X/Z`, `Z/D`, `X/Z/D` → `Z` (present and empty: we invent no dummy values; a Type 1
  attribute of an enhanced IOD such as Content Date or Acquisition DateTime is left empty,
  a conformance cost accepted for objects that are shared for research, not for clinical use);
- `X/D` → `D` (the attribute may be Type 1, so it keeps a dummy value);
- `X/Z/U*` → `U` (the reference sequences are kept; the instance UIDs inside them are
  remapped by their own rows, so references still resolve).

When several selected options name the same row (e.g. Retain Device Identity `K` and Retain
Longitudinal Temporal Information with Modified Dates `C` on a calibration date), `C` wins:
the more protective of the two retaining forms. What `C` does to a value (shift a date, blank
a descriptor, clean a sequence) is decided by `deid.dicom_headers`, which applies the actions.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

from pydicom import Dataset
from pydicom.datadict import keyword_for_tag

from neurodepot import __version__
from neurodepot.errors import Invalid

ACTIONS = frozenset("XZDKCU")
COMPOUND = {"X/Z": "Z", "Z/D": "Z", "X/Z/D": "Z", "X/D": "D", "X/Z/U*": "U"}
PRIVATE_TAG_TEXT = "(GGGG,EEEE) WHERE GGGG IS ODD"
EXACT = 0xFFFFFFFF


class ProfileOption(StrEnum):
    """A profile option as projects and the CLI name it; `column` is its column in the table."""

    RETAIN_SAFE_PRIVATE = "retain-safe-private"
    RETAIN_UIDS = "retain-uids"
    RETAIN_DEVICE_IDENTITY = "retain-device-identity"
    RETAIN_INSTITUTION_IDENTITY = "retain-institution-identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"
    RETAIN_FULL_DATES = "retain-full-dates"
    RETAIN_MODIFIED_DATES = "retain-modified-dates"
    CLEAN_DESCRIPTORS = "clean-descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean-structured-content"
    CLEAN_GRAPHICS = "clean-graphics"

    @property
    def column(self) -> str:
        return _COLUMNS[self]

    @property
    def code(self) -> tuple[str, str]:
        """The option's code in CID 7050 (scheme DCM): code value and code meaning."""
        return _CODES[self]


_COLUMNS = {
    ProfileOption.RETAIN_SAFE_PRIVATE: "rtnSafePrivOpt",
    ProfileOption.RETAIN_UIDS: "rtnUIDsOpt",
    ProfileOption.RETAIN_DEVICE_IDENTITY: "rtnDevIdOpt",
    ProfileOption.RETAIN_INSTITUTION_IDENTITY: "rtnInstIdOpt",
    ProfileOption.RETAIN_PATIENT_CHARACTERISTICS: "rtnPatCharsOpt",
    ProfileOption.RETAIN_FULL_DATES: "rtnLongFullDatesOpt",
    ProfileOption.RETAIN_MODIFIED_DATES: "rtnLongModifDatesOpt",
    ProfileOption.CLEAN_DESCRIPTORS: "cleanDescOpt",
    ProfileOption.CLEAN_STRUCTURED_CONTENT: "cleanStructContOpt",
    ProfileOption.CLEAN_GRAPHICS: "cleanGraphOpt",
}
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
_CODES = {
    ProfileOption.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    ProfileOption.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    ProfileOption.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    ProfileOption.RETAIN_FULL_DATES: (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    ProfileOption.RETAIN_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    ProfileOption.RETAIN_PATIENT_CHARACTERISTICS: (
        "113108",
        "Retain Patient Characteristics Option",
    ),
    ProfileOption.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    ProfileOption.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    ProfileOption.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    ProfileOption.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}


# What `D` writes, by VR: values that are valid for the VR and say what happened. Binary VRs
# not listed get 8 zero bytes (a whole value of every binary VR).
DUMMY_TEXT = "ANONYMIZED"
DUMMY_VALUES: Mapping[str, object] = {
    "AE": DUMMY_TEXT, "AS": "000Y", "CS": DUMMY_TEXT, "DA": "19000101", "DS": "0",
    "DT": "19000101000000", "IS": "0", "LO": DUMMY_TEXT, "LT": DUMMY_TEXT, "PN": DUMMY_TEXT,
    "SH": DUMMY_TEXT, "ST": DUMMY_TEXT, "TM": "000000", "UC": DUMMY_TEXT, "UR": "urn:anonymized",
    "UT": DUMMY_TEXT, "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0,
    "AT": 0,
}  # fmt: skip


def dummy_value(vr: str) -> object:
    """The dummy value `D` writes for an attribute of `vr`."""
    return DUMMY_VALUES.get(vr, b"\x00" * 8)


def method_codes(options: Iterable[ProfileOption]) -> list[tuple[str, str]]:
    """The CID 7050 codes (value, meaning) of the profile and `options`, basic profile first."""
    return [BASIC_PROFILE_CODE, *sorted(option.code for option in set(options))]


def deidentification_method(options: Iterable[ProfileOption]) -> tuple[list[str], list[Dataset]]:
    """De-identification Method (0012,0063) values and Code Sequence (0012,0064) items."""
    codes = method_codes(options)
    text = [f"neurodepot {__version__}", f"DICOM PS3.15 {load_profile().edition} {codes[0][1]}"]
    items = [Dataset() for _ in codes]
    for item, (value, meaning) in zip(items, codes, strict=True):
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return text + [meaning for _, meaning in codes[1:]], items


def parse_options(names: Iterable[str]) -> frozenset[ProfileOption]:
    """Options from their names; `Invalid` for an unknown name or two options that conflict."""
    known = {option.value: option for option in ProfileOption}
    chosen = set()
    for name in names:
        option = known.get(name.strip().lower())
        if option is None:
            listed = ", ".join(sorted(known))
            raise Invalid(f"unknown de-identification option {name!r}; known options: {listed}")
        chosen.add(option)
    return check_options(frozenset(chosen))


def check_options(options: frozenset[ProfileOption]) -> frozenset[ProfileOption]:
    """`options` when they can be applied together, else `Invalid` saying which conflict."""
    if not all(isinstance(option, ProfileOption) for option in options):
        raise Invalid(f"de-identification options must be ProfileOption values, not {options!r}")
    dates = {ProfileOption.RETAIN_FULL_DATES, ProfileOption.RETAIN_MODIFIED_DATES}
    if dates <= options:
        raise Invalid("retain-full-dates and retain-modified-dates exclude each other: choose one")
    return options


def resolve(code: str) -> str:
    """One action for a table code: itself, or the resolution of a compound (module docstring)."""
    if code in ACTIONS:
        return code
    if code in COMPOUND:
        return COMPOUND[code]
    raise ValueError(f"not an action code of PS3.15 Table E.1-1: {code!r}")


@dataclass(frozen=True)
class ProfileRule:
    """One row of the table.

    `tag` and `mask` say which tags the row covers (`tag_of & mask == tag`): every bit for a
    single attribute, only the fixed digits for a pattern row such as "(60XX,3000)". The
    private row ("(GGGG,EEEE) WHERE GGGG IS ODD") matches on the group's lowest bit.
    """

    tag_text: str
    tag: int
    mask: int
    name: str
    keyword: str
    basic: str
    action: str
    option_codes: tuple[tuple[ProfileOption, str], ...]

    def matches(self, tag: int) -> bool:
        return tag & self.mask == self.tag

    def action_for(self, options: Iterable[ProfileOption] = ()) -> str:
        """The action with `options` selected.

        The basic one, unless a selected option's column names this row (`C` winning over `K`
        when several do).
        """
        chosen = set(options)
        selected = [code for option, code in self.option_codes if option in chosen]
        if not selected:
            return self.action
        return "C" if "C" in selected else selected[0]


class Profile:
    """The whole table, with the actions for a set of options computed once and cached."""

    def __init__(self, rules: tuple[ProfileRule, ...], edition: str, source: str) -> None:
        self.rules = rules
        self.edition = edition
        self.source = source
        self.by_tag: Mapping[int, ProfileRule] = {r.tag: r for r in rules if r.mask == EXACT}
        self.patterns = tuple(r for r in rules if r.mask != EXACT)
        self._plans: dict[frozenset[ProfileOption], Mapping[int, str]] = {}

    def rule_for(self, tag: int) -> ProfileRule | None:
        """The row covering `tag` (a private tag: the private row), or None if none does."""
        rule = self.by_tag.get(tag)
        if rule is not None:
            return rule
        return next((r for r in self.patterns if r.matches(tag)), None)

    def action_for(self, tag: int, options: Iterable[ProfileOption] = ()) -> str | None:
        """The action for `tag` with `options` selected; None when the table does not list it."""
        rule = self.rule_for(tag)
        return None if rule is None else rule.action_for(options)

    def plan(self, options: frozenset[ProfileOption]) -> Mapping[int, str]:
        """Action per listed single tag for `options`: the dict the header walk looks up."""
        plan = self._plans.get(options)
        if plan is None:
            plan = {tag: rule.action_for(options) for tag, rule in self.by_tag.items()}
            self._plans[options] = plan
        return plan


def _parse_tag(text: str) -> tuple[int, int]:
    if text.upper() == PRIVATE_TAG_TEXT:
        return 0x00010000, 0x00010000
    digits = text.strip("()").replace(",", "").upper()
    if len(digits) != 8:
        raise ValueError(f"unreadable tag in the profile table: {text!r}")
    mask = int("".join("0" if c == "X" else "F" for c in digits), 16)
    return int(digits.replace("X", "0"), 16), mask


def _rule(row: Mapping[str, str]) -> ProfileRule:
    tag, mask = _parse_tag(row["tag"])
    options = tuple(
        (option, row[option.column]) for option in ProfileOption if row.get(option.column)
    )
    for _, code in options:
        if code not in ACTIONS:
            raise ValueError(f"bad option code {code!r} in profile row {row['tag']}")
    keyword = (keyword_for_tag(tag) or "") if mask == EXACT else ""
    basic = row["basicProfile"]
    return ProfileRule(row["tag"], tag, mask, row["name"], keyword, basic, resolve(basic), options)


def _edition(source: str) -> str:
    for line in source.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Edition":
            return value.strip()
    raise ValueError("data/SOURCE.txt names no Edition")


@cache
def load_profile() -> Profile:
    """The profile table shipped in the package (read once per process)."""
    data = resources.files("neurodepot.deid") / "data"
    rows = json.loads((data / "confidentiality_profile.json").read_text(encoding="utf-8"))
    source = (data / "SOURCE.txt").read_text(encoding="utf-8")
    return Profile(tuple(_rule(row) for row in rows), _edition(source), source)
