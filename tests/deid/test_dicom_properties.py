"""Property: identifying strings planted anywhere a header can hold them (random standard text
attributes the profile removes or blanks, private elements and private creators, sequences
nested 1-4 deep) are found nowhere in the de-identified file, byte for byte."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pydicom
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.sequence import Sequence

from neurodepot.deid.dicom_headers import deidentify_file
from neurodepot.deid.profile import EXACT, ProfileOption, load_profile
from neurodepot.deid.uid_remap import is_valid_uid
from tests.deid.conftest import instance, make_keys, make_recipe, write

TEXT_VRS = ("SH", "LO", "ST", "LT", "UT", "UC", "PN")
SAFE = ("SAFE VENDOR", 0x01)  # allow-listed with Retain Safe Private: must survive
OPTION_SETS = [
    frozenset(),
    frozenset({ProfileOption.CLEAN_DESCRIPTORS}),
    frozenset({ProfileOption.RETAIN_MODIFIED_DATES}),
    frozenset({ProfileOption.CLEAN_STRUCTURED_CONTENT, ProfileOption.CLEAN_GRAPHICS}),
    frozenset({ProfileOption.RETAIN_SAFE_PRIVATE}),
]
# Sequences to nest plants in: kept (items de-identified), emptied, removed, not in the table.
CONTAINERS = (0x00081140, 0x00082112, 0x00082218, 0x00081115, 0x00081111, 0x0040A730,
              0x00400275, "private")  # fmt: skip
PRIVATE_GROUPS = (0x0009, 0x0019, 0x0029, 0x0043, 0x7005)


def _targets(options: frozenset[ProfileOption]) -> list[int]:
    """Standard text attributes whose value the profile does not keep with `options`."""
    return sorted(
        rule.tag
        for rule in load_profile().rules
        if rule.mask == EXACT
        and rule.tag >> 16 not in (0x0000, 0x0002)  # command and file meta groups
        and dictionary_VR(rule.tag) in TEXT_VRS
        and rule.action_for(options) in "XZDC"
        and rule.tag != 0x00080201  # Timezone Offset From UTC: kept with Modified Dates
    )


TARGETS = {options: _targets(options) for options in OPTION_SETS}
tokens = st.uuids().map(lambda u: "LK" + u.hex[:12].upper())  # 14 characters: fits SH


@dataclass(frozen=True)
class Plant:
    path: tuple[int | str, ...]
    kind: str  # "standard", "private" or "creator"
    tag: int
    group: int
    byte: int
    token: str


@st.composite
def plants(draw, options: frozenset[ProfileOption]) -> Plant:
    return Plant(
        path=tuple(draw(st.lists(st.sampled_from(CONTAINERS), max_size=4))),
        kind=draw(st.sampled_from(["standard", "private", "creator"])),
        tag=draw(st.sampled_from(TARGETS[options])),
        group=draw(st.sampled_from(PRIVATE_GROUPS)),
        byte=draw(st.integers(0x00, 0xFF)),
        token=draw(tokens),
    )


@st.composite
def cases(draw) -> tuple[frozenset[ProfileOption], list[Plant]]:
    options = draw(st.sampled_from(OPTION_SETS))
    return options, draw(st.lists(plants(options), min_size=1, max_size=8))


def _descend(ds: Dataset, container: int | str) -> Dataset:
    if container == "private":
        block = ds.private_block(0x0011, "ACME SEQ", create=True)
        if 0x10 not in block:
            block.add_new(0x10, "SQ", Sequence([Dataset()]))
        return block[0x10].value[0]
    if container not in ds:
        ds.add_new(container, "SQ", Sequence([Dataset()]))
    return ds[container].value[0]


def _plant(ds: Dataset, plant: Plant) -> None:
    target = ds
    for container in plant.path:
        target = _descend(target, container)
    if plant.kind == "standard":
        target.add_new(plant.tag, dictionary_VR(plant.tag), plant.token)
        return
    creator = plant.token if plant.kind == "creator" else "ACME 1.0"
    block = target.private_block(plant.group, creator, create=True)
    block.add_new(plant.byte, "LO", plant.token if plant.kind == "private" else "harmless")


def _elements(ds: Dataset):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _elements(item)


@settings(max_examples=50, deadline=None)
@given(case=cases())
def test_planted_identifiers_do_not_survive(case):
    options, planted = case
    ds = instance()
    safe = ds.private_block(0x0021, SAFE[0], create=True)
    safe.add_new(SAFE[1], "LO", "scanner setting")
    for plant in planted:
        _plant(ds, plant)
    with tempfile.TemporaryDirectory() as folder:
        src = write(ds, Path(folder) / "in.dcm")
        before = src.read_bytes()
        present = [p.token for p in planted if p.token.encode() in before]
        assert present  # what is planted is in the input file
        recipe = make_recipe(*options, private_allow=frozenset({SAFE}))
        out = deidentify_file(src, Path(folder) / "out.dcm", recipe, make_keys())
        after = out.path.read_bytes()
        survived = [token for token in present if token.encode() in after]
        assert not survived, f"{survived} survived with options {sorted(options)}"
        result = pydicom.dcmread(out.path)
        kept_safe = (b"scanner setting" in after) == (ProfileOption.RETAIN_SAFE_PRIVATE in options)
        assert kept_safe
        for elem in _elements(result):
            if elem.VR == "UI" and elem.value:
                values = elem.value if isinstance(elem.value, list) else [elem.value]
                assert all(is_valid_uid(str(v)) for v in values), elem
