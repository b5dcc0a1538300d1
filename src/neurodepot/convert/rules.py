"""BIDS mapping rules: criteria on sidecar and DICOM fields → datatype, suffix and entities.

A rules file (TOML or JSON, in the spirit of dcm2bids) holds an ordered list `rules`; the first
rule whose criteria all hold names the series. Each rule has:

- `name`: shown in the preview, so a user sees why a series got its name;
- `match`: field → regular expression (searched, case-sensitive unless it says `(?i)`), or a
  number (equal), or a list of those (any). A key may name several fields joined by `|`
  (`"SeriesDescription|ProtocolName"`): any of them may match. A list-valued field (ImageType)
  matches if one of its items does. Named groups become template values;
- `exclude`: field → the same kinds of criteria, none of which may hold;
- `skip = true` to leave the series out of BIDS (localizers, derived images), or `datatype`
  and `suffix`;
- `entities`: BIDS entity → template. `{Field}` inserts a field or a named group, `{a|b}` the
  first of them that has a value, `{Field|=1}` falls back to the literal `1`, `{Field!dir}` turns
  a phase-encoding direction (`j-`) into a BIDS `dir` label (`AP`). Values are reduced to
  letters and digits, as BIDS labels must be. Besides the sidecar's fields there is `Task`: a
  task the series description or protocol names (`task-nback`, `task_nback`, `rest`).

Errors name the file, the line and the field, so a user can fix the file they wrote.
"""

import json
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from neurodepot.errors import Invalid

DATATYPES = frozenset({"anat", "func", "dwi", "fmap", "perf", "meg", "eeg", "ieeg", "beh"})
# BIDS entities a rule may set, in the order they appear in a file name.
ENTITY_ORDER = ("task", "acq", "ce", "rec", "dir", "run", "echo", "part", "chunk")
RULE_KEYS = frozenset({"name", "match", "exclude", "skip", "datatype", "suffix", "entities"})
_TEMPLATE = re.compile(r"{([^{}]*)}")
_SUFFIX = re.compile(r"(?:[A-Za-z0-9]+|{[^{}]+})+")
# A `[[rules]]` header as TOML allows it: spaces inside the brackets, a comment after.
_TOML_RULE = re.compile(r"\s*\[\[\s*rules\s*\]\]\s*(?:#.*)?")
DEFAULT_RULES_FILE = "bids_rules.toml"

Criterion = re.Pattern[str] | float | tuple[re.Pattern[str] | float, ...]


@dataclass(frozen=True)
class Rule:
    name: str
    match: tuple[tuple[tuple[str, ...], Criterion], ...]
    exclude: tuple[tuple[tuple[str, ...], Criterion], ...] = ()
    skip: bool = False
    datatype: str = ""
    suffix: str = ""
    entities: tuple[tuple[str, str], ...] = ()
    source: str = ""


@dataclass(frozen=True)
class RuleSet:
    """Rules tried in order: a project's own first, then (unless it says not) the defaults."""

    rules: tuple[Rule, ...]


def default_rules() -> RuleSet:
    text = resources.files("neurodepot.convert").joinpath("data", DEFAULT_RULES_FILE).read_text()
    return parse_rules(text, f"default rules ({DEFAULT_RULES_FILE})", "toml")


def load_rules_file(path: Path) -> RuleSet:
    """Read a rules file; its kind is told by its extension (`.toml` or `.json`)."""
    kind = path.suffix.lower().lstrip(".")
    if kind not in {"toml", "json"}:
        raise Invalid(f"rules file {path.name}: must end in .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(f"rules file {path}: cannot be read ({exc})") from None
    return parse_rules(text, path.name, kind)


def parse_rules(text: str, name: str, kind: str) -> RuleSet:
    """Check and compile rules from `text`; raise `Invalid` naming line and field."""
    if kind == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise Invalid(f"rules file {name}: {exc}") from None
        starts = _toml_rule_lines(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Invalid(f"rules file {name}: line {exc.lineno}: {exc.msg}") from None
        starts = _json_rule_lines(text)
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise Invalid(f"rules file {name}: needs a list `rules` ([[rules]] tables in TOML)")
    lines = text.splitlines()
    compiled = []
    for index, raw in enumerate(data["rules"]):
        start = starts[index] if index < len(starts) else 1
        end = starts[index + 1] - 1 if index + 1 < len(starts) else len(lines)
        where = _Where(name, index, start, end, lines)
        compiled.append(_rule(raw, where))
    return RuleSet(tuple(compiled))


@dataclass(frozen=True)
class _Where:
    """Where a rule is written (lines `start` to `end`), to say where a problem is."""

    file: str
    index: int
    start: int
    end: int
    lines: list[str]

    def fail(self, field: str, problem: str) -> Invalid:
        """An error at the line of `field` (dotted: `match.SeriesDescription`) in this rule."""
        line = self.start
        for part in field.split(".") if field else []:
            line = self._find(part, line) or line
        at = f"rules[{self.index}]" + (f".{field}" if field else "")
        return Invalid(f"rules file {self.file}: line {line}: {at}: {problem}")

    def _find(self, key: str, after: int) -> int | None:
        k = re.escape(key)
        written = re.compile(rf'^\s*"?{k}"?\s*=|"{k}"\s*:|^\s*\[rules\.{k}\]\s*$')
        for number in range(after, self.end + 1):
            if written.search(self.lines[number - 1]):
                return number
        return None


def _rule(raw: object, where: _Where) -> Rule:
    if not isinstance(raw, dict):
        raise where.fail("", "each rule must be a table (an object)")
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise where.fail(unknown[0], f"unknown field; a rule has {', '.join(sorted(RULE_KEYS))}")
    name = raw.get("name", f"rule {where.index + 1}")
    if not isinstance(name, str) or not name:
        raise where.fail("name", "must be a non-empty string")
    match = _criteria(raw.get("match"), "match", where)
    if not match:
        raise where.fail("match", "a rule needs at least one criterion")
    exclude = _criteria(raw.get("exclude", {}), "exclude", where)
    skip = raw.get("skip", False)
    if not isinstance(skip, bool):
        raise where.fail("skip", "must be true or false")
    datatype, suffix = raw.get("datatype", ""), raw.get("suffix", "")
    if not skip:
        if datatype not in DATATYPES:
            raise where.fail(
                "datatype", f"{datatype!r} is not one of {', '.join(sorted(DATATYPES))}"
            )
        if not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix):
            raise where.fail("suffix", f"{suffix!r} is not a BIDS suffix (letters and digits)")
    entities = raw.get("entities", {})
    if not isinstance(entities, dict):
        raise where.fail("entities", "must be a table of entity = template")
    checked = []
    for entity, template in entities.items():
        if entity not in ENTITY_ORDER or entity == "run":
            allowed = ", ".join(e for e in ENTITY_ORDER if e != "run")
            raise where.fail(
                f"entities.{entity}", f"not an entity a rule sets ({allowed}; runs are numbered)"
            )
        if not isinstance(template, str) or not template:
            raise where.fail(f"entities.{entity}", "must be a non-empty string")
        if not _SUFFIX.fullmatch(template):
            raise where.fail(
                f"entities.{entity}",
                f"{template!r} is not a BIDS label (letters and digits, and {{Field}} places)",
            )
        checked.append((entity, template))
    return Rule(
        name,
        match,
        exclude,
        skip,
        datatype,
        suffix,
        tuple(checked),
        f"{where.file}, line {where.start}",
    )


def _criteria(
    raw: object, key: str, where: _Where
) -> tuple[tuple[tuple[str, ...], Criterion], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise where.fail(key, "must be a table of field = pattern")
    out = []
    for fields, value in raw.items():
        names = tuple(f.strip() for f in fields.split("|"))
        if not all(re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", n) for n in names):
            raise where.fail(f"{key}.{fields}", "field names are letters and digits, joined by |")
        out.append((names, _criterion(value, f"{key}.{fields}", where)))
    return tuple(out)


def _criterion(value: Any, field: str, where: _Where) -> Criterion:
    if isinstance(value, list):
        if not value:
            raise where.fail(field, "an empty list matches nothing")
        return tuple(_single(v, field, where) for v in value)
    return _single(value, field, where)


def _single(value: Any, field: str, where: _Where) -> re.Pattern[str] | float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise where.fail(field, "must be a regular expression, a number, or a list of them")
    if isinstance(value, int | float):
        return float(value)
    try:
        return re.compile(value)
    except re.error as exc:
        raise where.fail(field, f"bad regular expression {value!r}: {exc}") from None


def _toml_rule_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1) if _TOML_RULE.fullmatch(line)]


def _json_rule_lines(text: str) -> list[int]:
    """The line each object of the `rules` array starts on, found by decoding them in turn."""
    found = re.search(r'"rules"\s*:\s*\[', text)
    if found is None:
        return []
    decoder = json.JSONDecoder()
    position, starts = found.end(), []
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            return starts
        starts.append(text.count("\n", 0, position) + 1)
        try:
            _, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return starts
