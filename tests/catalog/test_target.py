"""`PROJECT[/SUBJECT[/SESSION[/SCAN]]]` targets: parsing, validation, levels."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurodepot.catalog.target import Level, Target
from neurodepot.errors import Invalid

labels = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@pytest.mark.parametrize(
    ("text", "target", "level"),
    [
        ("p", Target("p"), Level.PROJECT),
        ("p/s", Target("p", "s"), Level.SUBJECT),
        ("p/s/v", Target("p", "s", "v"), Level.SESSION),
        ("p/s/v/1", Target("p", "s", "v", "1"), Level.SCAN),
        ("/p/s/", Target("p", "s"), Level.SUBJECT),
    ],
)
def test_target_is_parsed_to_its_level(text: str, target: Target, level: Level) -> None:
    parsed = Target.parse(text)
    assert parsed == target
    assert parsed.level is level
    assert str(parsed) == text.strip("/")


@pytest.mark.parametrize(
    "text", ["", "/", "//", "p/s/v/1/extra", "p//v", "p/s v", "../p", "p/s/./1", "p\\s"]
)
def test_malformed_target_is_invalid(text: str) -> None:
    with pytest.raises(Invalid):
        Target.parse(text)


@pytest.mark.parametrize("parts", [("p", None, "v"), ("p", None, None, "1"), ("p", "s", None, "1")])
def test_target_skipping_a_level_is_invalid(parts: tuple[str | None, ...]) -> None:
    with pytest.raises(Invalid, match="skips a level"):
        Target(*parts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parts", "kind"),
    [(("bad label",), "project"), (("p", "s!"), "subject"), (("p", "s", "v.1"), "session")],
)
def test_bad_label_at_any_level_is_invalid_naming_the_level(
    parts: tuple[str, ...], kind: str
) -> None:
    with pytest.raises(Invalid, match=f"^{kind} label"):
        Target(*parts)


@given(st.lists(labels, min_size=1, max_size=4))
def test_any_valid_target_survives_printing_and_parsing(parts: list[str]) -> None:
    target = Target(*parts)  # type: ignore[arg-type]
    assert Target.parse(str(target)) == target
    assert target.level is list(Level)[len(parts) - 1]
