"""Labels and file paths: what is accepted, what is refused with `Invalid`."""

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from neurodepot.catalog.identifiers import MAX_PATH_LENGTH, check_file_path, check_label
from neurodepot.errors import Invalid

LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
labels = st.from_regex(LABEL, fullmatch=True)


@given(labels)
def test_any_label_of_allowed_characters_is_accepted(label: str) -> None:
    assert check_label(label, "subject") == label


@given(st.text(max_size=70))
@example("")
@example("a" * 65)
@example("sub-01\n")
@example("\nsub-01")
@example("sub 01")
@example("sub.01")
@example("sub/01")
@example("séance")
@example("\u0661")  # ARABIC-INDIC DIGIT ONE: a digit, but not an ASCII one
def test_label_is_accepted_exactly_when_it_matches_the_pattern(text: str) -> None:
    if LABEL.fullmatch(text):
        assert check_label(text, "scan") == text
    else:
        with pytest.raises(Invalid, match="scan label"):
            check_label(text, "scan")


@given(labels, st.characters().filter(lambda c: not LABEL.fullmatch(c)), st.integers(0, 64))
def test_label_with_any_forbidden_character_is_rejected(
    label: str, forbidden: str, position: int
) -> None:
    at = position % (len(label) + 1)
    with pytest.raises(Invalid):
        check_label(label[:at] + forbidden + label[at:], "project")


def test_invalid_label_message_names_the_kind_and_the_rule() -> None:
    with pytest.raises(Invalid) as raised:
        check_label("bad label", "session")
    assert raised.value.message == (
        "session label 'bad label' is not valid: use 1 to 64 letters, digits, '_' or '-'"
    )


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "/",
        "..",
        "../escape",
        "a/../../escape",
        "a/..",
        ".",
        "./a",
        "a/./b",
        "//",
        "a\\b",
        "..\\escape",
        "a\x00b",
        "a\nb",
        "a\x7fb",
        "x" * (MAX_PATH_LENGTH + 1),
    ],
)
def test_unsafe_file_path_is_invalid(path: str) -> None:
    with pytest.raises(Invalid, match="file path"):
        check_file_path(path)


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("sub-01_T1w.nii.gz", "sub-01_T1w.nii.gz"),
        ("anat/sub-01_T1w.json", "anat/sub-01_T1w.json"),
        ("a//b/", "a/b"),
        ("my notes (v2).txt", "my notes (v2).txt"),
        ("séance/..hidden", "séance/..hidden"),
        ("x" * MAX_PATH_LENGTH, "x" * MAX_PATH_LENGTH),
    ],
)
def test_safe_file_path_is_normalised(path: str, normal: str) -> None:
    assert check_file_path(path) == normal


@given(st.text(alphabet="a./\\\x00\n é", max_size=20))
def test_accepted_file_path_cannot_climb_out_and_is_already_normal(path: str) -> None:
    try:
        normal = check_file_path(path)
    except Invalid:
        return
    parts = normal.split("/")
    assert all(part not in {"", ".", ".."} for part in parts)
    assert not re.search(r"[\x00-\x1f\x7f\\]", normal)
    assert parts == [part for part in path.split("/") if part]
    assert check_file_path(normal) == normal
