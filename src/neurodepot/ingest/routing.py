"""Which project, subject and session a received study belongs to.

Rules come from the depot's settings (`[[dicom.routes]]`) and are tried in order; the first
that matches decides. A rule may require the called AE title and regular expressions over the
routing fields; named groups `project`, `subject` and `session` in its expressions give labels,
and the rule's own `project`/`subject`/`session` keys fill in the rest. After the configured
rules comes XNAT's convention (`Project: P Subject: S Session: E` in StudyComments or
PatientComments). A study that no rule places is kept as unassigned, never dropped.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from neurodepot.catalog.identifiers import check_label
from neurodepot.errors import Invalid
from neurodepot.ingest.header import ROUTING_FIELDS

LABEL_PARTS = ("project", "subject", "session")
XNAT_RULE = "XNAT convention"
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_-]+")
_XNAT_FIELDS = ("StudyComments", "PatientComments")
_XNAT_PATTERNS = {
    part: re.compile(rf"\b{part}\s*:\s*(?P<value>[^\s;,]+)", re.IGNORECASE) for part in LABEL_PARTS
}


@dataclass(frozen=True)
class Route:
    """One compiled routing rule."""

    name: str
    called_aet: str | None = None
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Destination:
    """Where a study goes; `project` None means unassigned.

    `session_derived`: no rule named the session, its label was made from the patient and
    date; archiving may then pick a free variant rather than merge into another study.
    """

    project: str | None
    subject: str | None
    session: str | None
    rule: str
    session_derived: bool = False


def compile_routes(tables: Sequence[Mapping[str, object]]) -> tuple[Route, ...]:
    """Check and compile `[[dicom.routes]]`; `Invalid` names the rule and key at fault."""
    routes = []
    for index, table in enumerate(tables, 1):
        name = str(table.get("name") or f"route {index}")
        where = f"[[dicom.routes]] {name!r}"
        unknown = set(table) - {"name", "called_aet", "match", *LABEL_PARTS}
        if unknown:
            raise Invalid(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        match = table.get("match", {})
        if not isinstance(match, Mapping):
            raise Invalid(f"{where}: match must be a table of field = regular expression")
        patterns = []
        for field_name, expression in match.items():
            if field_name not in ROUTING_FIELDS:
                raise Invalid(
                    f"{where}: cannot match on {field_name!r}; use one of "
                    + ", ".join(ROUTING_FIELDS)
                )
            try:
                patterns.append((field_name, re.compile(str(expression))))
            except re.error as exc:
                raise Invalid(f"{where}: bad regular expression for {field_name}: {exc}") from None
        labels = {part: str(table[part]) for part in LABEL_PARTS if part in table}
        for part, label in labels.items():
            try:
                check_label(label, part)
            except Invalid as problem:
                raise Invalid(f"{where}: {problem.message}") from None
        called = table.get("called_aet")
        if called is not None and not str(called).strip():
            raise Invalid(f"{where}: called_aet is empty; give an AE title or leave it out")
        if called is None and not patterns:
            raise Invalid(f"{where}: give called_aet, match, or both")
        if "project" not in labels and not any(
            "project" in pattern.groupindex for _, pattern in patterns
        ):
            raise Invalid(f"{where}: name a project, or capture one with (?P<project>...)")
        routes.append(Route(name, str(called).strip() if called else None, tuple(patterns), labels))
    return tuple(routes)


def route(
    routes: Sequence[Route],
    called_aet: str,
    fields: Mapping[str, str],
    patient_id: str,
    patient_name: str,
    study_date: date | None,
    study_uid: str,
) -> Destination:
    """The destination of a study, from its first instance's routing fields."""
    for rule in routes:
        labels = _apply(rule, called_aet, fields)
        if labels is not None:
            return _complete(labels, rule.name, patient_id, patient_name, study_date, study_uid)
    labels = _xnat_convention(fields)
    if labels is not None:
        return _complete(labels, XNAT_RULE, patient_id, patient_name, study_date, study_uid)
    return Destination(None, None, None, "")


def sanitize_label(value: str) -> str:
    """A label made of what is allowed in one (letters, digits, `_`, `-`), at most 64 long."""
    return _NOT_LABEL.sub("_", value.strip()).strip("_")[:64]


def _apply(rule: Route, called_aet: str, fields: Mapping[str, str]) -> dict[str, str] | None:
    if rule.called_aet is not None and rule.called_aet.upper() != called_aet.strip().upper():
        return None
    labels = dict(rule.labels)
    for field_name, pattern in rule.patterns:
        found = pattern.search(fields.get(field_name, ""))
        if found is None:
            return None
        for part in LABEL_PARTS:
            captured = found.groupdict().get(part)
            if captured:
                labels[part] = captured
    return labels


def _xnat_convention(fields: Mapping[str, str]) -> dict[str, str] | None:
    for field_name in _XNAT_FIELDS:
        text = fields.get(field_name, "")
        labels = {}
        for part, pattern in _XNAT_PATTERNS.items():
            found = pattern.search(text)
            if found:
                labels[part] = found.group("value")
        if "project" in labels:
            return labels
    return None


def _complete(
    labels: Mapping[str, str],
    rule: str,
    patient_id: str,
    patient_name: str,
    study_date: date | None,
    study_uid: str,
) -> Destination:
    """Fill missing subject/session labels from the patient and study, as XNAT does."""
    project = sanitize_label(labels.get("project", "")) or None
    subject = sanitize_label(labels.get("subject", "")) or sanitize_label(
        patient_id or patient_name
    )
    session = sanitize_label(labels.get("session", ""))
    derived = not session
    if derived and subject:
        session = derived_session(subject, study_date, study_uid)
    return Destination(project, subject or None, session or None, rule, derived)


def derived_session(subject: str, study_date: date | None, study_uid: str) -> str:
    """`<subject>_<YYYYMMDD>`, or the UID's last component when the study has no date."""
    suffix = study_date.strftime("%Y%m%d") if study_date else study_uid.rsplit(".", 1)[-1]
    return sanitize_label(f"{subject}_{suffix}")
