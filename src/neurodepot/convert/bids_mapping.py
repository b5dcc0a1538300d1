"""Mapping one series to a BIDS name, and numbering runs: pure functions over field values.

No I/O here, so the naming can be property-tested: the same fields always give the same
name, every name is a valid BIDS name, and runs within a session never collide.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from neurodepot.convert.rules import ENTITY_ORDER, Criterion, Rule, RuleSet

_TEMPLATE = re.compile(r"{([^{}]*)}")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9]")
# `rest` as a word between non-letters (rest_fMRI, rfMRI_REST_AP: `\b` sees no edge at `_`).
_TASK = re.compile(r"(?i)task[-_ ]?([A-Za-z0-9]+)|(?<![a-z])(rest)(?:ing)?(?![a-z])")
# Phase-encoding axis and sign (dcm2niix's `PhaseEncodingDirection`) → BIDS `dir` label, for
# the usual axial slices: j is posterior→anterior, i is left→right in the scanner's terms.
PE_DIRECTIONS = {"j-": "AP", "j": "PA", "i-": "LR", "i": "RL", "k-": "SI", "k": "IS"}


@dataclass(frozen=True)
class BidsMatch:
    """What the rules made of one image: a name, a skip, or (with `problem`) neither."""

    rule: str
    skip: bool = False
    datatype: str = ""
    suffix: str = ""
    entities: tuple[tuple[str, str], ...] = ()
    problem: str = ""

    @property
    def named(self) -> bool:
        return not self.skip and not self.problem

    def with_entity(self, entity: str, value: str) -> "BidsMatch":
        kept = [(k, v) for k, v in self.entities if k != entity]
        return replace(self, entities=tuple(sorted([*kept, (entity, value)], key=_entity_rank)))


def _entity_rank(pair: tuple[str, str]) -> int:
    return ENTITY_ORDER.index(pair[0])


def with_derived_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields plus `Task`, named by the series description or protocol if either does."""
    out = dict(fields)
    if "Task" not in out:
        for key in ("SeriesDescription", "ProtocolName"):
            found = _TASK.search(str(fields.get(key) or ""))
            if found:
                out["Task"] = found.group(1) or "rest"
                break
    return out


def map_series(rules: RuleSet, fields: Mapping[str, Any]) -> BidsMatch | None:
    """The first rule that holds, applied to `fields`; None if no rule holds."""
    values = with_derived_fields(fields)
    for rule in rules.rules:
        groups = _holds(rule, values)
        if groups is not None:
            return _apply(rule, values, groups)
    return None


def _holds(rule: Rule, values: Mapping[str, Any]) -> dict[str, str] | None:
    groups: dict[str, str] = {}
    for names, criterion in rule.match:
        found = _first_match(names, criterion, values)
        if found is None:
            return None
        groups.update(found)
    for names, criterion in rule.exclude:
        if _first_match(names, criterion, values) is not None:
            return None
    return groups


def _first_match(
    names: tuple[str, ...], criterion: Criterion, values: Mapping[str, Any]
) -> dict[str, str] | None:
    """The named groups of the first field value the criterion matches, or None."""
    options = criterion if isinstance(criterion, tuple) else (criterion,)
    for name in names:
        value = values.get(name)
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if item is None:
                continue
            for option in options:
                if isinstance(option, float):
                    number = _number(item)
                    if number is not None and abs(number - option) < 1e-9:
                        return {}
                else:
                    found = option.search(str(item))
                    if found:
                        return {k: v for k, v in found.groupdict().items() if v}
    return None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _apply(rule: Rule, values: Mapping[str, Any], groups: Mapping[str, str]) -> BidsMatch:
    if rule.skip:
        return BidsMatch(rule.name, skip=True)
    try:
        suffix = _render(rule.suffix, values, groups, label=False)
        entities = tuple(
            sorted(
                ((entity, _render(template, values, groups)) for entity, template in rule.entities),
                key=_entity_rank,
            )
        )
    except _Missing as missing:
        return BidsMatch(rule.name, datatype=rule.datatype, problem=str(missing))
    return BidsMatch(rule.name, False, rule.datatype, suffix, tuple(e for e in entities if e[1]))


class _Missing(Exception):
    pass


def _render(
    template: str, values: Mapping[str, Any], groups: Mapping[str, str], label: bool = True
) -> str:
    """Fill `{a|b!filter}` places; an entity whose every alternative is empty is left out."""

    def fill(place: re.Match[str]) -> str:
        alternatives = place.group(1).split("|")
        for alternative in alternatives:
            name, _, conversion = alternative.partition("!")
            if name.startswith("="):
                value: Any = name[1:]
            else:
                value = groups.get(name) or values.get(name)
            if isinstance(value, list | tuple):
                value = "".join(str(v) for v in value)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if conversion == "dir":
                value = PE_DIRECTIONS.get(str(value or ""))
            text = _NOT_LABEL.sub("", str(value)) if value not in (None, "") else ""
            if text:
                return text
        if not label:
            raise _Missing(f"suffix {template!r}: none of {', '.join(alternatives)} has a value")
        return ""

    return _TEMPLATE.sub(fill, template)


@dataclass(frozen=True)
class RunItem:
    """One image to be named, with what orders it within its session."""

    key: str  # identifies the image to the caller
    group: str  # one scan: its images share a run number
    session: str
    match: BidsMatch
    order: tuple[float, str]  # series number (or inf), acquisition time


def number_runs(items: Sequence[RunItem]) -> dict[str, BidsMatch]:
    """Add `run` where a session has several scans that would get the same name.

    Runs are numbered 1, 2, … in acquisition order (series number, then time); the images of
    one scan (echoes, parts) share their scan's run number.
    """
    by_name: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], list[RunItem]] = {}
    for item in items:
        m = item.match
        if m.named:
            name = (item.session, m.datatype, m.suffix, m.entities)
            by_name.setdefault(name, []).append(item)
    out = {item.key: item.match for item in items}
    for members in by_name.values():
        # A scan is placed by its first image: its images may carry different times.
        first: dict[str, tuple[float, str]] = {}
        for i in members:
            first[i.group] = min(first.get(i.group, i.order), i.order)
        if len(first) < 2:
            continue
        in_order = sorted(first, key=lambda group: (first[group], group))
        runs = {group: n for n, group in enumerate(in_order, 1)}
        for item in members:
            out[item.key] = item.match.with_entity("run", str(runs[item.group]))
    return out


def distinguish_images(
    matches: Sequence[tuple[str, BidsMatch, Mapping[str, Any]]],
) -> dict[str, BidsMatch]:
    """Within one scan, images that got the same name are told apart by echo, then by part.

    Part is added where echo alone does not tell them apart (magnitude and phase of each echo).
    """
    out = {key: match for key, match, _ in matches}
    by_name: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[str]] = {}
    for key, match, _ in matches:
        if match.named:
            by_name.setdefault((match.datatype, match.suffix, match.entities), []).append(key)
    fields = {key: f for key, _, f in matches}
    for keys in by_name.values():
        if len(keys) < 2:
            continue
        echoes = {k: fields[k].get("EchoNumber") for k in keys}
        if len(set(echoes.values())) > 1 and None not in echoes.values():
            for k in keys:
                out[k] = out[k].with_entity("echo", str(int(_number(echoes[k]) or 1)))
            if len(set(echoes.values())) == len(keys):
                continue
        for k in keys:
            kinds = [str(t).upper() for t in fields[k].get("ImageType") or []]
            part = "phase" if "PHASE" in kinds or "P" in kinds else "mag"
            out[k] = out[k].with_entity("part", part)
    return out


def bids_stem(subject: str, session: str | None, match: BidsMatch) -> str:
    """`sub-X[_ses-Y]_entity-value…_suffix`: the file name without its extension."""
    parts = [f"sub-{subject}"] + ([f"ses-{session}"] if session else [])
    parts += [f"{entity}-{value}" for entity, value in match.entities]
    return "_".join([*parts, match.suffix])


def bids_label(text: str) -> str:
    """An internal label made a BIDS label (letters and digits only)."""
    return _NOT_LABEL.sub("", text)
