"""DEID-LINKAGE as a property: no planted identifier goes unnoticed, and real data raises no alarm.

Random identifying strings (8 to 16 letters and digits, as identifiers of random kinds) are
planted in random places of a small dataset that was never de-identified: standard text
attributes, private elements, sequences nested one to four deep, sidecar fields nested in
objects and lists (as values and as keys), TSV cells, file names and folder names. The checker
must fail DEID-LINKAGE with evidence naming the file and location of every plant (no false
pass), while the real DICOM of `dcm_qa_nih` checked against identifiers that do not occur in it
passes (no false alarm).
"""

import json
import random
import shutil
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from neurodepot.deid.check import CheckContext, Criterion, Identifier, check_dataset
from neurodepot.deid.check_scan import tag_text
from neurodepot.deid.profile import ProfileOption

KINDS = (
    "subject label",
    "session label",
    "patient name",
    "patient ID",
    "accession number",
    "consent ID",
)
# (tag, VR, room): text attributes a person could type into, by how much they hold.
TEXT_TAGS = (
    (0x00081030, "LO", 64),  # Study Description
    (0x0008103E, "LO", 64),  # Series Description
    (0x00181030, "LO", 64),  # Protocol Name
    (0x00204000, "LT", 10240),  # Image Comments
    (0x00104000, "LT", 10240),  # Patient Comments
    (0x00080090, "PN", 64),  # Referring Physician's Name
    (0x00080050, "SH", 16),  # Accession Number
    (0x00200010, "SH", 16),  # Study ID
    (0x00321060, "LO", 64),  # Requested Procedure Description
    (0x00400254, "LO", 64),  # Performed Procedure Step Description
)
SEQUENCE_TAGS = (0x00081140, 0x00081115, 0x0040A730, 0x00082112, 0x00400275)
PRIVATE_GROUPS = (0x0009, 0x0011, 0x0019, 0x0029, 0x0043, 0x7FD1)
PRIVATE_VRS = ("LO", "SH", "LT", "UT", "OB", "UN")
PLACES = ("standard", "private", "nested", "sidecar", "tsv", "file name", "folder name")
OPTIONS = frozenset({ProfileOption.RETAIN_MODIFIED_DATES})
SESSION = "sub-7KQ2M9XD/ses-AB12CD34"

secrets = st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=16)


@dataclass(frozen=True)
class Plant:
    value: str
    kind: str
    place: str
    detail: tuple


def redacted(text: str, plant: Plant) -> str:
    return text.replace(plant.value, f"[{plant.kind}]")


@st.composite
def plants(draw: st.DrawFn) -> list[Plant]:
    values = draw(st.lists(secrets, min_size=1, max_size=6, unique_by=str.casefold))
    planted = []
    for value in values:
        place = draw(st.sampled_from(PLACES))
        embed = draw(st.sampled_from(("{}", "note {} end", "x-{}", "{}^Given")))
        if place in ("standard", "nested"):
            detail: tuple = (draw(st.sampled_from(TEXT_TAGS)), embed)
            if place == "nested":
                pairs = st.tuples(st.sampled_from(SEQUENCE_TAGS), st.integers(0, 2))
                levels = draw(st.lists(pairs, min_size=1, max_size=4))
                detail += (tuple(levels),)
        elif place == "private":
            detail = (draw(st.sampled_from(PRIVATE_GROUPS)), draw(st.integers(0, 0xFF)),
                      draw(st.sampled_from(PRIVATE_VRS)), embed)  # fmt: skip
        elif place == "sidecar":
            keys = draw(st.lists(st.sampled_from(("Meta", "Info", "a", "b")), max_size=3))
            where = draw(st.sampled_from(("value", "key", "list")))
            detail = (tuple(keys), where, embed)
        elif place == "tsv":
            detail = (draw(st.integers(1, 3)), draw(st.integers(0, 2)), embed)
        else:
            detail = (draw(st.sampled_from(("{}", "{}_notes", "sub-{}", "run-1_{}", "{}.v2"))),)
        planted.append(Plant(value, draw(st.sampled_from(KINDS)), place, detail))
    return planted


def _text(embed: str, value: str, room: int) -> str:
    text = embed.format(value)
    return text if len(text) <= room else value


def _dicom(path: Path, plant: Plant) -> str:
    """Copy MR_small with the plant in it; returns the planted element's location."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    if plant.place == "private":
        group, offset, vr, embed = plant.detail
        block = ds.private_block(group, "NEURODEPOT TEST", create=True)
        text = _text(embed, plant.value, 16 if vr == "SH" else 64)
        value = b"\x01\x02" + text.encode() + b"\x00" if vr in ("OB", "UN") else text
        block.add_new(offset, vr, value)
        location = tag_text(block.get_tag(offset))
    else:
        (tag, vr, room), embed = plant.detail[:2]
        target, location = ds, ""
        for sequence, index in plant.detail[2] if plant.place == "nested" else ():
            items = [Dataset() for _ in range(index + 1)]
            target.add_new(sequence, "SQ", Sequence(items))
            target, location = items[index], f"{location}{tag_text(sequence)}[{index}]."
        target.add_new(tag, vr, _text(embed, plant.value, room))
        location += tag_text(tag)
    ds.save_as(path)
    return location


def _sidecar(path: Path, plant: Plant) -> str:
    keys, where, embed = plant.detail
    text = embed.format(plant.value)
    leaf: object = {text: 1} if where == "key" else [0, text] if where == "list" else text
    data: dict[str, object] = {"TaskName": "rest", "RepetitionTime": 2.0}
    node = data
    for key in keys:
        child: dict[str, object] = {}
        node[key] = child
        node = child
    node["Field"] = leaf
    path.write_text(json.dumps(data), encoding="utf-8")
    pointer = "".join(f"/{k}" for k in (*keys, "Field"))
    return {"key": f"{pointer}/{text} (key)", "list": f"{pointer}/1"}.get(where, pointer)


def _tsv(path: Path, plant: Plant) -> str:
    row, column, embed = plant.detail
    header = ["participant_id", "note", "group"]
    rows = [[f"sub-{n}", "n/a", "control"] for n in range(3)]
    rows[row - 1][column] = embed.format(plant.value)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return f"row {row}, column {header[column]}"


def plant_all(root: Path, planted: list[Plant]) -> set[tuple[str, str, str]]:
    """Write one file (or folder) per plant; returns the evidence each must produce."""
    expected = set()
    for index, plant in enumerate(planted):
        folder = root / SESSION
        folder.mkdir(parents=True, exist_ok=True)
        if plant.place in ("standard", "private", "nested"):
            rel = f"sourcedata/dicom/{SESSION}/{index}.dcm"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            location = _dicom(root / rel, plant)
        elif plant.place in ("sidecar", "tsv"):
            rel = f"{SESSION}/plant{index}.{'json' if plant.place == 'sidecar' else 'tsv'}"
            writer = _sidecar if plant.place == "sidecar" else _tsv
            location = redacted(writer(root / rel, plant), plant)
        else:
            name = plant.detail[0].format(plant.value)
            rel = f"{SESSION}/p{index}/{name}"
            if plant.place == "folder name":
                (root / rel).mkdir(parents=True)
                (root / rel / "data.txt").write_text("nothing\n")
            else:
                (root / rel).parent.mkdir(parents=True)
                (root / rel).write_text("nothing\n")
            location = plant.place
            rel = redacted(rel, plant)
        expected.add((rel, location, plant.kind))
    return expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted=plants(), decoys=st.lists(secrets, max_size=3))
def test_every_planted_leak_is_found_and_located(planted: list[Plant], decoys: list[str]) -> None:
    identifiers = tuple(Identifier(p.value, p.kind) for p in planted)
    identifiers += tuple(Identifier(d, "consent ID") for d in decoys)
    context = CheckContext(identifiers, (), OPTIONS, frozenset())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "dataset"
        expected = plant_all(root, planted)
        result = check_dataset(root, context).result(Criterion.LINKAGE)
    assert result.status == "fail"
    evidence = {(e.file, e.location, e.kind) for e in result.evidence}
    assert expected <= evidence
    shown = [f"{e.file} {e.location}" for e in result.evidence]
    assert not [p.value for p in planted for text in shown if p.value in text], "value shown"


def test_real_dicom_raises_no_alarm(tmp_path: Path, testdata: Path) -> None:
    """Real GE and Siemens DICOM, checked against realistic and random identifiers not in it."""
    root = tmp_path / "dataset"
    source = testdata / "dcm_qa_nih" / "In"
    for series in ("20180918GE/mr_0004", "20180918Si/mr_0003", "20180918Si/mr_0004"):
        shutil.copytree(source / series, root / "sourcedata" / "dicom" / SESSION / series)
    realistic = (
        Identifier("Smith^John", "patient name"),
        Identifier("Smith", "patient name part"),
        Identifier("P0042", "patient ID"),
        Identifier("ACC123456", "accession number"),
        Identifier("s017", "subject label"),
        Identifier("CNS-2231", "consent ID"),
        Identifier("v2", "session label"),
        Identifier("17", "subject label"),
    )
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    randoms = tuple(
        Identifier("".join(rng.choices(alphabet, k=rng.randint(8, 16))), rng.choice(KINDS))
        for _ in range(200)
    )
    report = check_dataset(root, CheckContext(realistic + randoms, (), OPTIONS, frozenset()))
    linkage = report.result(Criterion.LINKAGE)
    assert linkage.status == "pass", linkage.evidence
    assert report.files > 150
    assert report.result(Criterion.HEADERS).status == "fail"  # real, not de-identified data
