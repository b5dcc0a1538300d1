"""The PS3.15 table shipped in the package, row by row: each attribute set to a value of its VR
is removed, blanked, dummied, kept, cleaned or remapped as its row says, for the basic profile
and for every option that names the row. Expected actions come from the JSON itself (not from
`ProfileRule`), so a wrong resolution in `deid.profile` shows here."""

import json
from importlib import resources
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence

from neurodepot.deid.date_shift import shift_values
from neurodepot.deid.dicom_headers import deidentify_dataset
from neurodepot.deid.profile import (
    ProfileOption,
    load_profile,
    parse_options,
    resolve,
)
from neurodepot.deid.uid_remap import is_valid_uid, remap_uid
from neurodepot.errors import Invalid
from tests.deid.conftest import OFFSET_DAYS, PSEUDONYM, UID_KEY, UID_ROOT, make_keys, make_recipe

REFERENCE = Path("/work/shared/reference/dicom/confidentiality_profile_attributes.json")
ROWS = json.loads(
    (resources.files("neurodepot.deid") / "data" / "confidentiality_profile.json").read_text()
)
COLUMN_OPTIONS = {option.column: option for option in ProfileOption}
# Pattern rows, sampled: a few concrete tags each stands for.
PATTERN_SAMPLES = {
    "(50XX,XXXX)": (0x50000005, 0x50023000, 0x501E2500),
    "(60XX,3000)": (0x60003000, 0x601E3000),
    "(60XX,4000)": (0x60004000, 0x60024000),
}
SAMPLE_TEXT = "IDENT-Q7Z3"
SAMPLES = {
    "AE": "STATION01", "AS": "045Y", "CS": "VALUE1", "DA": "20180918", "DS": "1.5",
    "DT": "20180918123000.250000+0100", "IS": "7", "LO": SAMPLE_TEXT, "LT": SAMPLE_TEXT,
    "PN": "Doe^Jane", "SH": SAMPLE_TEXT, "ST": SAMPLE_TEXT, "TM": "123000.5", "UC": SAMPLE_TEXT,
    "UI": "1.2.826.0.1.3680043.8.498.77", "UR": "http://example.org/x", "UT": SAMPLE_TEXT,
    "US": 7, "SS": -7, "UL": 7, "SL": -7, "FL": 1.5, "FD": 1.5, "AT": 0x00100010,
}  # fmt: skip
TIMEZONE_OFFSET = 0x00080201
# How compound codes resolve (deid.profile's docstring says why), written out independently.
RESOLVED = {"X/Z": "Z", "Z/D": "Z", "X/Z/D": "Z", "X/D": "D", "X/Z/U*": "U"}


def _tag_of(row: dict) -> int:
    return int(row["id"], 16)


def _cases() -> list:
    cases = []
    for row in ROWS:
        if row["tag"].upper().startswith("(GGGG"):
            continue  # the private row: tests/deid/test_dicom_headers.py::TestPrivate
        tags = PATTERN_SAMPLES.get(row["tag"].upper()) or (_tag_of(row),)
        columns = [None, *[c for c in COLUMN_OPTIONS if row.get(c)]]
        for tag in tags:
            for column in columns:
                label = f"{row['tag']}-{tag:08X}-{column or 'basic'}"
                cases.append(pytest.param(row, tag, column, id=label))
    return cases


def _expected(row: dict, column: str | None) -> str:
    if column is not None:
        return row[column]
    return RESOLVED.get(row["basicProfile"], row["basicProfile"])


def _value(vr: str) -> object:
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "C1"  # not in the table: kept
        item.PatientName = "Doe^Jane"  # Z in the table: blanked at any depth
        item.TextValue = "free text here"  # not in the table: blanked only when cleaning
        return Sequence([item])
    if vr in SAMPLES:
        return SAMPLES[vr]
    return b"\x01\x02\x03\x04\x05\x06\x07\x08"  # binary VRs


def _vr_for(tag: int) -> str:
    vr = dictionary_VR(tag)
    return {"OB or OW": "OB", "US or SS": "US", "US or SS or OW": "US", "US or OW": "US"}.get(
        vr, vr
    )


class TestTableData:
    def test_the_package_holds_all_621_rows_of_edition_2024e(self):
        profile = load_profile()
        assert len(profile.rules) == 621 == len(ROWS)
        assert profile.edition == "2024e"
        assert "7f4749d" in profile.source and "innolitics" in profile.source

    def test_the_package_copy_is_the_reference_unchanged(self):
        if not REFERENCE.is_file():
            pytest.skip(f"reference table not present at {REFERENCE}")
        assert json.loads(REFERENCE.read_text()) == ROWS

    def test_every_row_resolves_to_one_action(self):
        for rule in load_profile().rules:
            assert rule.action in "XZDKCU"
            assert all(code in "KC" for _, code in rule.option_codes)

    def test_pattern_rows_cover_curves_overlays_and_private(self):
        profile = load_profile()
        assert profile.rule_for(0x50001234).tag_text == "(50XX,XXXX)"
        assert profile.rule_for(0x60023000).tag_text == "(60XX,3000)"
        assert profile.rule_for(0x601E4000).tag_text == "(60XX,4000)"
        assert profile.rule_for(0x60020010) is None  # overlay rows: the other elements stay
        assert profile.rule_for(0x00091010).name == "Private Attributes"
        assert profile.rule_for(0x7FE00010) is None  # pixel data is not in the table
        assert profile.action_for(0x00291010, {ProfileOption.RETAIN_SAFE_PRIVATE}) == "C"


class TestResolution:
    @pytest.mark.parametrize(
        ("code", "action"),
        [("X/Z", "Z"), ("Z/D", "Z"), ("X/Z/D", "Z"), ("X/D", "D"), ("X/Z/U*", "U"), ("K", "K")],
    )
    def test_compound_codes_resolve_as_documented(self, code, action):
        assert resolve(code) == action

    def test_an_unknown_code_is_an_error(self):
        with pytest.raises(ValueError, match="Q/R"):
            resolve("Q/R")

    def test_known_rows(self):
        profile = load_profile()
        assert profile.action_for(0x00080050) == "Z"  # Accession Number
        assert profile.action_for(0x00080080) == "Z"  # Institution Name X/Z/D
        assert profile.action_for(0x00181030) == "D"  # Protocol Name X/D
        assert profile.action_for(0x00081140) == "U"  # Referenced Image Sequence X/Z/U*
        assert profile.action_for(0x00080018) == "U"
        assert profile.action_for(0x00080016) is None  # SOP Class UID: kept, not listed
        inst = {ProfileOption.RETAIN_INSTITUTION_IDENTITY}
        assert profile.action_for(0x00080080, inst) == "K"

    def test_clean_wins_over_keep_when_two_selected_options_name_a_row(self):
        both = {ProfileOption.RETAIN_DEVICE_IDENTITY, ProfileOption.RETAIN_MODIFIED_DATES}
        assert load_profile().action_for(0x00181200, both) == "C"  # Date of Last Calibration
        device = {ProfileOption.RETAIN_DEVICE_IDENTITY}
        assert load_profile().action_for(0x00181200, device) == "K"

    def test_the_plan_is_cached_per_option_set(self):
        profile = load_profile()
        options = frozenset({ProfileOption.CLEAN_DESCRIPTORS})
        assert profile.plan(options) is profile.plan(frozenset(options))
        assert profile.plan(options)[0x0008103E] == "C"
        assert profile.plan(frozenset())[0x0008103E] == "X"


class TestOptions:
    def test_names_parse_to_options(self):
        assert parse_options([" Retain-UIDs", "clean-descriptors"]) == {
            ProfileOption.RETAIN_UIDS,
            ProfileOption.CLEAN_DESCRIPTORS,
        }
        assert parse_options([]) == frozenset()

    def test_an_unknown_option_is_invalid_and_lists_the_known_ones(self):
        with pytest.raises(Invalid, match="unknown de-identification option 'keep-all'") as info:
            parse_options(["retain-uids", "keep-all"])
        assert "retain-modified-dates" in info.value.message

    def test_full_and_modified_dates_exclude_each_other(self):
        with pytest.raises(Invalid, match="exclude each other"):
            parse_options(["retain-full-dates", "retain-modified-dates"])

    def test_every_option_has_its_column_and_cid_7050_code(self):
        columns = {option.column for option in ProfileOption}
        assert len(columns) == 10
        assert all(any(row.get(c) for row in ROWS) for c in columns)
        codes = sorted(option.code[0] for option in ProfileOption)
        assert codes == [str(c) for c in range(113103, 113113)]


@pytest.mark.parametrize(("row", "tag", "column"), _cases())
def test_row_action_is_applied(row: dict, tag: int, column: str | None):
    vr = _vr_for(tag)
    options = frozenset() if column is None else frozenset({COLUMN_OPTIONS[column]})
    ds = Dataset()
    original = _value(vr)
    ds[tag] = DataElement(tag, vr, original)
    deidentify_dataset(ds, make_recipe(*options), make_keys())
    action = _expected(row, column)
    modified = ProfileOption.RETAIN_MODIFIED_DATES in options

    if tag in (0x00100010, 0x00100020):  # Patient's Name and ID take the pseudonym
        assert str(ds[tag].value) == PSEUDONYM
        return
    if action == "X":
        assert tag not in ds
        return
    assert tag in ds, f"{row['name']} was removed but its action is {action}"
    value = ds[tag].value
    if vr == "SQ":
        _check_sequence(value, action)
    elif vr == "UI" and action in "UD":
        assert value == remap_uid(original, UID_KEY, UID_ROOT) and is_valid_uid(value)
    elif action == "K" or (action == "C" and modified and (vr == "TM" or tag == TIMEZONE_OFFSET)):
        assert value == original
    elif action == "C" and modified and vr in ("DA", "DT"):
        assert value == shift_values(original, vr, OFFSET_DAYS) != original
    elif action == "D":
        assert value not in (None, "", b"") and value != original
    else:  # Z, and C where cleaning means blanking
        assert ds[tag].is_empty, f"{row['name']}: {action} left {value!r}"


def _check_sequence(value: Sequence, action: str) -> None:
    if action == "Z":
        assert len(value) == 0
    elif action == "D":
        assert len(value) == 1 and len(value[0]) == 0
    else:  # K, U, C: the items stay and the table applies inside them
        (item,) = value
        assert item.CodeValue == "C1"
        assert item.PatientName == ""
        assert item.TextValue == ("" if action == "C" else "free text here")
