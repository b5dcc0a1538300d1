"""BIDS mapping rules: loading TOML and JSON, and errors that name file, line and field."""

import json
import re
from pathlib import Path
from textwrap import dedent

import pytest

from neurodepot.convert.rules import (
    DATATYPES,
    ENTITY_ORDER,
    Rule,
    RuleSet,
    default_rules,
    load_rules_file,
    parse_rules,
)
from neurodepot.errors import Invalid

GOOD_TOML = dedent(
    """\
    # a project's own rules
    [[rules]]
    name = "memory task"
    datatype = "func"
    suffix = "bold"
    [rules.match]
    "SeriesDescription|ProtocolName" = "(?i)memory"
    EchoNumber = [1, 2]
    [rules.exclude]
    ImageType = "^DERIVED$"
    [rules.entities]
    task = "memory"
    acq = "{MultibandAccelerationFactor|=sb}"

    [[rules]]
    skip = true
    [rules.match]
    SeriesDescription = "phantom"
    """
)


def parse_error(text: str, kind: str = "toml", name: str = "mine.toml") -> str:
    with pytest.raises(Invalid) as caught:
        parse_rules(text, name, kind)
    return caught.value.message


def assert_located(message: str, text: str, file: str, line: int, field: str, key: str) -> None:
    """The message names file, line and field, and that line of `text` holds `key`."""
    assert message.startswith(f"rules file {file}: line {line}: {field}: "), message
    assert key in text.splitlines()[line - 1], (line, text.splitlines()[line - 1])


class TestParsing:
    def test_a_toml_file_compiles_to_rules_in_order(self) -> None:
        rules = parse_rules(GOOD_TOML, "mine.toml", "toml")
        first, second = rules.rules
        assert first.name == "memory task"
        assert (first.datatype, first.suffix, first.skip) == ("func", "bold", False)
        assert first.entities == (("task", "memory"), ("acq", "{MultibandAccelerationFactor|=sb}"))
        assert first.source == "mine.toml, line 2"
        assert second.name == "rule 2"
        assert second.skip
        assert second.source == "mine.toml, line 15"

    def test_fields_joined_by_a_bar_are_alternatives_and_numbers_are_floats(self) -> None:
        first = parse_rules(GOOD_TOML, "mine.toml", "toml").rules[0]
        (names, pattern), (numbers, echo) = first.match
        assert names == ("SeriesDescription", "ProtocolName")
        assert isinstance(pattern, re.Pattern) and pattern.pattern == "(?i)memory"
        assert numbers == ("EchoNumber",)
        assert echo == (1.0, 2.0)
        assert all(isinstance(n, float) for n in echo)
        ((excluded, derived),) = first.exclude
        assert excluded == ("ImageType",)
        assert isinstance(derived, re.Pattern) and derived.pattern == "^DERIVED$"

    def test_the_same_rules_in_json_compile_alike(self) -> None:
        toml_rules = parse_rules(GOOD_TOML, "mine.toml", "toml")
        as_json = json.dumps(
            {
                "rules": [
                    {
                        "name": "memory task",
                        "datatype": "func",
                        "suffix": "bold",
                        "match": {
                            "SeriesDescription|ProtocolName": "(?i)memory",
                            "EchoNumber": [1, 2],
                        },
                        "exclude": {"ImageType": "^DERIVED$"},
                        "entities": {"task": "memory", "acq": "{MultibandAccelerationFactor|=sb}"},
                    },
                    {"skip": True, "match": {"SeriesDescription": "phantom"}},
                ]
            },
            indent=2,
        )
        json_rules = parse_rules(as_json, "mine.json", "json")
        for ours, theirs in zip(toml_rules.rules, json_rules.rules, strict=True):
            assert (ours.name, ours.skip, ours.datatype, ours.suffix, ours.entities) == (
                theirs.name,
                theirs.skip,
                theirs.datatype,
                theirs.suffix,
                theirs.entities,
            )
            assert [(n, _plain(c)) for n, c in ours.match] == [
                (n, _plain(c)) for n, c in theirs.match
            ]
        assert json_rules.rules[0].source == "mine.json, line 3"
        assert json_rules.rules[1].source == "mine.json, line 22"

    def test_a_skip_rule_needs_no_datatype_or_suffix(self) -> None:
        rules = parse_rules('[[rules]]\nskip = true\nmatch = { X = "y" }\n', "f.toml", "toml")
        assert rules.rules[0].skip
        assert rules.rules[0].datatype == ""

    def test_a_suffix_may_be_a_template(self) -> None:
        text = '[[rules]]\ndatatype = "fmap"\nsuffix = "magnitude{EchoNumber|=1}"\n'
        text += 'match = { X = "y" }\n'
        assert parse_rules(text, "f.toml", "toml").rules[0].suffix == "magnitude{EchoNumber|=1}"


def _plain(criterion: object) -> object:
    if isinstance(criterion, tuple):
        return tuple(_plain(c) for c in criterion)
    return criterion.pattern if isinstance(criterion, re.Pattern) else criterion


class TestDefaultRules:
    def test_the_default_rules_load(self) -> None:
        rules = default_rules()
        assert isinstance(rules, RuleSet)
        assert len(rules.rules) >= 10
        assert all(isinstance(r, Rule) for r in rules.rules)

    def test_every_default_rule_says_where_it_is_written(self) -> None:
        text = (
            Path(__file__).resolve().parents[2] / "src/neurodepot/convert/data/bids_rules.toml"
        ).read_text()
        lines = text.splitlines()
        for rule in default_rules().rules:
            file, _, line = rule.source.rpartition(", line ")
            assert file == "default rules (bids_rules.toml)"
            assert lines[int(line) - 1].strip() == "[[rules]]"
            assert f'name = "{rule.name}"' in lines[int(line)]

    def test_every_named_default_rule_has_a_bids_datatype_and_only_rule_entities(self) -> None:
        for rule in default_rules().rules:
            if rule.skip:
                continue
            assert rule.datatype in DATATYPES
            assert rule.suffix
            assert {e for e, _ in rule.entities} <= set(ENTITY_ORDER) - {"run"}

    def test_localizers_are_left_out_before_anything_else_is_tried(self) -> None:
        first = default_rules().rules[0]
        assert first.skip and first.name == "localizer"


class TestSyntaxErrors:
    def test_a_toml_syntax_error_names_the_file_and_line(self) -> None:
        text = '[[rules]]\nname = "t1"\ndatatype = anat\n'
        message = parse_error(text)
        assert message.startswith("rules file mine.toml: ")
        assert "line 3" in message

    def test_a_json_syntax_error_names_the_file_and_line(self) -> None:
        text = '{\n  "rules": [\n    {"name": "t1",}\n  ]\n}\n'
        message = parse_error(text, "json", "mine.json")
        assert message.startswith("rules file mine.json: line 3: ")

    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            ('name = "no rules"\n', "toml"),
            ("rules = 3\n", "toml"),
            ('{"rules": {"name": "x"}}', "json"),
            ("[1, 2]", "json"),
        ],
        ids=["toml-without-rules", "toml-rules-not-a-list", "json-rules-a-dict", "json-a-list"],
    )
    def test_a_file_without_a_list_of_rules_is_refused(self, text: str, kind: str) -> None:
        assert "needs a list `rules`" in parse_error(text, kind, "f")

    def test_a_rule_that_is_not_a_table_is_refused(self) -> None:
        message = parse_error('{"rules": [\n  "t1"\n]}', "json", "f.json")
        assert message == (
            "rules file f.json: line 2: rules[0]: each rule must be a table (an object)"
        )


# Each TOML case: the text, the line and field the message must name, the key on that line,
# and a part of the problem. The offending rule is the second, to show the index and that
# lines count from the top of the file.
TOML_HEAD = dedent(
    """\
    [[rules]]
    name = "first"
    datatype = "anat"
    suffix = "T1w"
    [rules.match]
    ImageType = "ORIGINAL"

    """
)
TOML_CASES = {
    "unknown-key": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        sufix = "T2w"
        [rules.match]
        SeriesDescription = "t2"
        """,
        11,
        "rules[1].sufix",
        "sufix",
        "unknown field",
    ),
    "bad-regex": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2w"
        [rules.match]
        ImageType = "ORIGINAL"
        SeriesDescription = "(t2"
        """,
        14,
        "rules[1].match.SeriesDescription",
        "SeriesDescription",
        "bad regular expression '(t2'",
    ),
    "bad-regex-in-exclude-of-a-field-also-matched": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2w"
        [rules.match]
        ImageType = "ORIGINAL"
        [rules.exclude]
        ImageType = "[DERIVED"
        """,
        15,
        "rules[1].exclude.ImageType",
        'ImageType = "[DERIVED"',
        "bad regular expression",
    ),
    "bad-datatype": (
        """\
        [[rules]]
        name = "second"
        datatype = "anatomy"
        suffix = "T2w"
        [rules.match]
        SeriesDescription = "t2"
        """,
        10,
        "rules[1].datatype",
        "datatype",
        "'anatomy' is not one of anat, beh, dwi,",
    ),
    "missing-datatype": (
        """\
        [[rules]]
        name = "second"
        suffix = "T2w"
        [rules.match]
        SeriesDescription = "t2"
        """,
        8,
        "rules[1].datatype",
        "[[rules]]",
        "'' is not one of",
    ),
    "entity-run": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2w"
        [rules.match]
        SeriesDescription = "t2"
        [rules.entities]
        acq = "fast"
        run = "{SeriesNumber}"
        """,
        16,
        "rules[1].entities.run",
        "run",
        "runs are numbered",
    ),
    "entity-sub": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2w"
        [rules.match]
        SeriesDescription = "t2"
        [rules.entities]
        sub = "{PatientID}"
        """,
        15,
        "rules[1].entities.sub",
        "sub",
        "not an entity a rule sets",
    ),
    "empty-entity": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2w"
        [rules.match]
        SeriesDescription = "t2"
        [rules.entities]
        acq = ""
        """,
        15,
        "rules[1].entities.acq",
        "acq",
        "must be a non-empty string",
    ),
    "entity-not-a-label": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2w"
        [rules.match]
        SeriesDescription = "t2"
        [rules.entities]
        task = "{Task}"
        acq = "fast-{Coil}"
        """,
        16,
        "rules[1].entities.acq",
        "acq",
        "'fast-{Coil}' is not a BIDS label",
    ),
    "missing-match": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2w"
        """,
        8,
        "rules[1].match",
        "[[rules]]",
        "at least one criterion",
    ),
    "empty-match-table": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2w"
        [rules.match]
        [rules.entities]
        acq = "x"
        """,
        12,
        "rules[1].match",
        "[rules.match]",
        "at least one criterion",
    ),
    "match-not-a-table": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2w"
        match = "t2"
        """,
        12,
        "rules[1].match",
        "match",
        "must be a table of field = pattern",
    ),
    "non-string-suffix": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = 2
        [rules.match]
        SeriesDescription = "t2"
        """,
        11,
        "rules[1].suffix",
        "suffix",
        "2 is not a BIDS suffix",
    ),
    "suffix-with-a-dash": (
        """\
        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2-w"
        [rules.match]
        SeriesDescription = "t2"
        """,
        11,
        "rules[1].suffix",
        "suffix",
        "'T2-w' is not a BIDS suffix",
    ),
    "skip-not-a-boolean": (
        """\
        [[rules]]
        name = "second"
        skip = "yes"
        [rules.match]
        SeriesDescription = "t2"
        """,
        10,
        "rules[1].skip",
        "skip",
        "must be true or false",
    ),
    "empty-name": (
        """\
        [[rules]]
        name = ""
        skip = true
        [rules.match]
        SeriesDescription = "t2"
        """,
        9,
        "rules[1].name",
        "name",
        "non-empty string",
    ),
    "bad-field-name": (
        """\
        [[rules]]
        name = "second"
        skip = true
        [rules.match]
        "Series Description" = "t2"
        """,
        12,
        "rules[1].match.Series Description",
        '"Series Description"',
        "field names are letters and digits",
    ),
    "boolean-criterion": (
        """\
        [[rules]]
        name = "second"
        skip = true
        [rules.match]
        SeriesDescription = true
        """,
        12,
        "rules[1].match.SeriesDescription",
        "SeriesDescription",
        "must be a regular expression, a number, or a list of them",
    ),
    "empty-list-criterion": (
        """\
        [[rules]]
        name = "second"
        skip = true
        [rules.match]
        EchoNumber = []
        """,
        12,
        "rules[1].match.EchoNumber",
        "EchoNumber",
        "an empty list matches nothing",
    ),
    "bad-regex-in-an-inline-table": (
        """\
        [[rules]]
        name = "second"
        skip = true
        match = { ImageType = "ORIGINAL", SeriesDescription = "t2(" }
        """,
        11,
        "rules[1].match.SeriesDescription",
        "match = {",
        "bad regular expression",
    ),
}


class TestTomlErrors:
    @pytest.mark.parametrize(
        ("rule", "line", "field", "key", "problem"), TOML_CASES.values(), ids=TOML_CASES.keys()
    )
    def test_an_error_names_the_file_the_line_and_the_field(
        self, rule: str, line: int, field: str, key: str, problem: str
    ) -> None:
        text = TOML_HEAD + dedent(rule)
        message = parse_error(text)
        assert_located(message, text, "mine.toml", line, field, key)
        assert problem in message

    def test_a_commented_rule_header_still_counts_as_a_rule(self) -> None:
        text = dedent(
            """\
            [[rules]]  # T1 first
            name = "first"
            datatype = "anat"
            suffix = "T1w"
            match = { SeriesDescription = "t1" }

            [[ rules ]]
            name = "second"
            datatype = "anatomy"
            match = { SeriesDescription = "t2" }
            suffix = "T2w"
            """
        )
        assert_located(parse_error(text), text, "mine.toml", 9, "rules[1].datatype", "datatype")
        good = text.replace('"anatomy"', '"anat"')
        first, second = parse_rules(good, "mine.toml", "toml").rules
        assert (first.source, second.source) == ("mine.toml, line 1", "mine.toml, line 7")

    def test_a_missing_field_points_at_its_rule_not_at_the_next_one(self) -> None:
        text = dedent(
            """\
            [[rules]]
            name = "first"
            datatype = "anat"
            suffix = "T1w"

            [[rules]]
            name = "second"
            datatype = "anat"
            suffix = "T2w"
            [rules.match]
            SeriesDescription = "t2"
            """
        )
        assert_located(parse_error(text), text, "mine.toml", 1, "rules[0].match", "[[rules]]")


def _json(rules: list[str]) -> str:
    """A JSON rules file written by hand: one key a line, each rule's `{` on a line of its own."""
    return '{\n  "rules": [\n' + ",\n".join(dedent(r).strip("\n") for r in rules) + "\n  ]\n}\n"


JSON_FIRST = """\
    {
      "name": "first",
      "datatype": "anat",
      "suffix": "T1w",
      "match": {"ImageType": "ORIGINAL"}
    }
"""
# Rule 0 takes lines 3-8 of the file, so the second rule starts on line 9.
JSON_CASES = {
    "unknown-key": (
        """\
        {
          "name": "second",
          "datatype": "anat",
          "sufix": "T2w",
          "match": {"SeriesDescription": "t2"}
        }
        """,
        12,
        "rules[1].sufix",
        '"sufix"',
    ),
    "bad-regex": (
        """\
        {
          "name": "second",
          "datatype": "anat",
          "suffix": "T2w",
          "match": {
            "ImageType": "ORIGINAL",
            "SeriesDescription": "(t2"
          }
        }
        """,
        15,
        "rules[1].match.SeriesDescription",
        '"SeriesDescription"',
    ),
    "bad-regex-in-exclude-of-a-field-also-matched": (
        """\
        {
          "name": "second",
          "datatype": "anat",
          "suffix": "T2w",
          "match": {
            "ImageType": "ORIGINAL"
          },
          "exclude": {
            "ImageType": "[DERIVED"
          }
        }
        """,
        17,
        "rules[1].exclude.ImageType",
        '"ImageType": "[DERIVED"',
    ),
    "bad-datatype": (
        """\
        {
          "name": "second",
          "datatype": "anatomy",
          "suffix": "T2w",
          "match": {"SeriesDescription": "t2"}
        }
        """,
        11,
        "rules[1].datatype",
        '"datatype"',
    ),
    "entity-run": (
        """\
        {
          "name": "second",
          "datatype": "anat",
          "suffix": "T2w",
          "match": {"SeriesDescription": "t2"},
          "entities": {
            "run": "{SeriesNumber}"
          }
        }
        """,
        15,
        "rules[1].entities.run",
        '"run"',
    ),
    "entity-sub": (
        """\
        {
          "name": "second",
          "datatype": "anat",
          "suffix": "T2w",
          "match": {"SeriesDescription": "t2"},
          "entities": {"sub": "{PatientID}"}
        }
        """,
        14,
        "rules[1].entities.sub",
        '"entities"',
    ),
    "non-string-suffix": (
        """\
        {
          "name": "second",
          "datatype": "anat",
          "suffix": ["T2w"],
          "match": {"SeriesDescription": "t2"}
        }
        """,
        12,
        "rules[1].suffix",
        '"suffix"',
    ),
}


class TestJsonErrors:
    @pytest.mark.parametrize(("rule", "line", "field", "key"), JSON_CASES.values(), ids=JSON_CASES)
    def test_an_error_names_the_file_the_line_and_the_field(
        self, rule: str, line: int, field: str, key: str
    ) -> None:
        text = _json([JSON_FIRST, rule])
        assert_located(parse_error(text, "json", "mine.json"), text, "mine.json", line, field, key)

    def test_a_missing_match_points_at_its_rule_not_at_the_next_ones_match(self) -> None:
        second = """\
            {
              "name": "second",
              "datatype": "anat",
              "suffix": "T2w"
            }
        """
        third = """\
            {
              "name": "third",
              "datatype": "anat",
              "suffix": "PDw",
              "match": {"SeriesDescription": "pd"}
            }
        """
        text = _json([JSON_FIRST, second, third])
        message = parse_error(text, "json", "mine.json")
        assert_located(message, text, "mine.json", 9, "rules[1].match", "{")

    def test_rules_on_one_line_are_told_apart_by_index(self) -> None:
        text = (
            '{"rules": [\n{"skip": true, "match": {"A": "a"}}, {"skip": 1, "match": {"A": "a"}}\n]}'
        )
        message = parse_error(text, "json", "mine.json")
        assert message.startswith("rules file mine.json: line 2: rules[1].skip: ")


class TestLoadRulesFile:
    def test_a_toml_file_is_read_by_its_extension(self, tmp_path: Path) -> None:
        path = tmp_path / "rules.TOML"
        path.write_text(GOOD_TOML, encoding="utf-8")
        rules = load_rules_file(path)
        assert [r.name for r in rules.rules] == ["memory task", "rule 2"]
        assert rules.rules[0].source == "rules.TOML, line 2"

    def test_a_json_file_is_read_by_its_extension(self, tmp_path: Path) -> None:
        path = tmp_path / "rules.json"
        path.write_text(_json([JSON_FIRST]), encoding="utf-8")
        assert [r.suffix for r in load_rules_file(path).rules] == ["T1w"]

    def test_an_error_names_the_file_by_its_name(self, tmp_path: Path) -> None:
        path = tmp_path / "lab.toml"
        path.write_text('[[rules]]\nskip = true\n[rules.match]\nX = "("\n', encoding="utf-8")
        with pytest.raises(Invalid, match=r"^rules file lab\.toml: line 4: rules\[0\]\.match\.X: "):
            load_rules_file(path)

    def test_another_extension_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "rules.yaml"
        path.write_text("rules: []\n", encoding="utf-8")
        with pytest.raises(Invalid, match=r"rules\.yaml: must end in \.toml or \.json"):
            load_rules_file(path)

    def test_a_file_that_is_not_utf8_is_reported(self, tmp_path: Path) -> None:
        path = tmp_path / "rules.toml"
        path.write_bytes(b'[[rules]]\nname = "\xff"\n')
        with pytest.raises(Invalid, match="cannot be read"):
            load_rules_file(path)

    def test_a_missing_file_is_reported(self, tmp_path: Path) -> None:
        with pytest.raises(Invalid, match="cannot be read"):
            load_rules_file(tmp_path / "absent.json")
