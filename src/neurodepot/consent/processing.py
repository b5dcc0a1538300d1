"""A project's record of processing (GDPR article 30), as JSON and as Markdown.

What people give (purpose, lawful basis, data categories, controller) is stored in the
project's `ProcessingRecord`; what the depot knows is derived when the summary is made, so it
cannot go stale: the data categories its sessions and scans hold (MRI, EEG, MEG…), who receives
the data at the project's sharing level (the named team by role; centre members when internal
or public; external researchers under the DUAs when public; each beyond the team only the
subjects whose consent allows it), the subjects by consent level, and the retention date.
"""

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.access.models import Membership
from neurodepot.access.policy import shared_consent_levels
from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.models import ImagingSession, Project, Scan
from neurodepot.consent.dua import current_duas
from neurodepot.consent.models import ProcessingRecord
from neurodepot.consent.records import EFFECTIVE_LEVELS, levels_by_label
from neurodepot.depot.orm import utcnow
from neurodepot.errors import Invalid

LIMITS = {"purpose": 4000, "lawful_basis": 1000, "controller": 255, "category": 64}
MAX_CATEGORIES = 50
# DICOM modality codes (and the EEG/MEG kinds recordings are filed under) → data category.
MODALITY_CATEGORIES = {
    "MR": "MRI",
    "CT": "CT",
    "PT": "PET",
    "NM": "nuclear medicine imaging",
    "US": "ultrasound",
    "XA": "X-ray angiography",
    "CR": "X-ray",
    "DX": "X-ray",
    "EEG": "EEG",
    "IEEG": "iEEG",
    "MEG": "MEG",
    "NIRS": "fNIRS",
    "ECG": "ECG",
    "SR": "structured reports",
}
ROLES = ("owner", "member", "collaborator")


@dataclass(frozen=True)
class ProcessingInfo:
    """What was given for a project's record of processing (empty until someone sets it)."""

    project: str
    purpose: str
    lawful_basis: str
    data_categories: list[str]
    controller: str
    retention_until: date | None
    updated_by: str
    updated_at: datetime | None


def processing_row(db: Session, project_id: int, create: bool) -> ProcessingRecord | None:
    """The project's record, made (empty) when `create` and there is none yet."""
    row = db.get(ProcessingRecord, project_id)
    if row is None and create:
        row = ProcessingRecord(project_id=project_id)
        db.add(row)
    return row


def get_processing(db: Session, project: str) -> ProcessingInfo:
    owner = find_project(db, project)
    return _info(project, processing_row(db, owner.id, create=False))


def set_processing(
    db: Session,
    actor: str,
    project: str,
    purpose: str | None = None,
    lawful_basis: str | None = None,
    data_categories: list[str] | None = None,
    controller: str | None = None,
) -> ProcessingInfo:
    """Change what is given (None leaves a field as it is); audited, values not logged.

    Raises `Invalid` for text that is too long or holds control characters, or for more than
    `MAX_CATEGORIES` categories.
    """
    values: dict[str, Any] = {}
    if purpose is not None:
        values["purpose"] = _text("purpose", purpose, multiline=True)
    if lawful_basis is not None:
        values["lawful_basis"] = _text("lawful_basis", lawful_basis, multiline=True)
    if controller is not None:
        values["controller"] = _text("controller", controller)
    if data_categories is not None:
        values["data_categories"] = json.dumps(check_categories(data_categories))
    owner = find_project(db, project)
    row = processing_row(db, owner.id, create=True)
    assert row is not None
    if values:
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_by, row.updated_at = actor, utcnow()
        db.flush()
        audit.record(db, actor, "processing_changed", project, {"fields": sorted(values)})
    return _info(project, row)


def check_categories(categories: list[str]) -> list[str]:
    """Trimmed, de-duplicated (first spelling kept, case-insensitively), order kept."""
    if len(categories) > MAX_CATEGORIES:
        raise Invalid(f"{len(categories)} data categories given: at most {MAX_CATEGORIES}")
    kept: dict[str, str] = {}
    for category in categories:
        clean = _text("category", category.strip())
        if not clean:
            raise Invalid("a data category is empty: name it (e.g. 'MRI', 'health data')")
        kept.setdefault(clean.casefold(), clean)
    return list(kept.values())


def processing_summary(db: Session, project: str, on: date | None = None) -> dict[str, Any]:
    """The record of processing as JSON-ready values (see the module docstring).

    `on` (default today) is the day the retention date is compared with.
    """
    owner = find_project(db, project)
    given = _info(project, processing_row(db, owner.id, create=False))
    modalities = held_modalities(db, owner.id)
    derived = sorted({MODALITY_CATEGORIES.get(m, f"other ({m})") for m in modalities})
    given_folded = {c.casefold() for c in given.data_categories}
    consent = Counter(levels_by_label(db, project).values())
    by_consent = {level: consent.get(level, 0) for level in EFFECTIVE_LEVELS}
    on = on or date.today()
    return {
        "project": project,
        "name": owner.name,
        "access": owner.access,
        "controller": given.controller,
        "purpose": given.purpose,
        "lawful_basis": given.lawful_basis,
        "data_categories": {
            "given": given.data_categories,
            "derived": derived,
            "all": given.data_categories + [c for c in derived if c.casefold() not in given_folded],
        },
        "modalities": modalities,
        "recipients": _recipients(db, owner, by_consent),
        "subjects": {"total": sum(by_consent.values()), "by_consent": by_consent},
        "retention": {
            "until": None if given.retention_until is None else given.retention_until.isoformat(),
            "past": given.retention_until is not None and given.retention_until < on,
        },
        "updated_by": given.updated_by,
        "updated_at": None if given.updated_at is None else audit.iso_time(given.updated_at),
    }


def held_modalities(db: Session, project_id: int) -> list[str]:
    """The modality codes of the project's sessions and scans, upper case, sorted."""
    sessions = select(ImagingSession.modality.label("m")).where(
        ImagingSession.project_id == project_id
    )
    scans = (
        select(Scan.modality.label("m"))
        .join(ImagingSession)
        .where(ImagingSession.project_id == project_id)
    )
    found = db.scalars(select(union(sessions, scans).subquery().c.m))
    return sorted({m.strip().upper() for m in found if m and m.strip()})


def processing_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown document; given text is escaped so it cannot add markup."""
    categories = summary["data_categories"]
    lines = [
        f"# Record of processing: {_md(summary['project'])}",
        "",
        f"- Project: {_md(summary['name'])} ({_md(summary['project'])})",
        f"- Controller: {_md(summary['controller']) or '*not given*'}",
        f"- Sharing level: {summary['access']}",
        f"- Retention until: {summary['retention']['until'] or '*not set*'}"
        + (" (**past**)" if summary["retention"]["past"] else ""),
        "",
        "## Purpose",
        "",
        _md_block(summary["purpose"]),
        "",
        "## Lawful basis",
        "",
        _md_block(summary["lawful_basis"]),
        "",
        "## Data categories",
        "",
    ]
    for category in categories["all"]:
        held = "" if category in categories["given"] else " (held in the project's sessions)"
        lines.append(f"- {_md(category)}{held}")
    if not categories["all"]:
        lines.append("*none given, and no sessions held*")
    lines += ["", "## Recipients", ""]
    lines += ["| recipient | what they receive | subjects |", "|---|---|---|"]
    for recipient in summary["recipients"]:
        lines.append(
            f"| {_md(recipient['recipient'])} | {_md(recipient['receives'])} "
            f"| {recipient['subjects']} |"
        )
    counts = summary["subjects"]["by_consent"]
    lines += ["", "## Subjects by consent", "", "| consent | subjects |", "|---|---|"]
    lines += [f"| {level} | {count} |" for level, count in counts.items()]
    lines += ["", f"Total: {summary['subjects']['total']}", ""]
    if summary["updated_by"]:
        lines.append(f"Last changed by {_md(summary['updated_by'])} at {summary['updated_at']}.")
        lines.append("")
    return "\n".join(lines)


def _recipients(db: Session, project: Project, by_consent: dict[str, int]) -> list[dict[str, Any]]:
    roles = dict(
        db.execute(
            select(Membership.role, func.count())
            .where(Membership.project_id == project.id)
            .group_by(Membership.role)
        ).all()
    )
    team = {role: roles.get(role, 0) for role in ROLES}
    total = sum(by_consent.values())
    found: list[dict[str, Any]] = [
        {
            "recipient": "named team",
            "people": sum(team.values()),
            "by_role": team,
            "receives": "the identifiable originals, for the project's work",
            "subjects": total,
        }
    ]
    for account, who in (("member", "centre members"), ("external", "external researchers")):
        levels = shared_consent_levels(account, project.access)
        if not levels:
            continue
        receives = "de-identified data of subjects with consent " + " or ".join(levels)
        if account == "external":
            duas = [d.name for d in current_duas(db, project.id)]
            receives += ", under the Data Usage Agreement(s): " + (
                "; ".join(duas) if duas else "none published yet (no download possible)"
            )
        found.append(
            {
                "recipient": who,
                "receives": receives,
                "consent_levels": list(levels),
                "subjects": sum(by_consent.get(level, 0) for level in levels),
            }
        )
    return found


def _info(project: str, row: ProcessingRecord | None) -> ProcessingInfo:
    if row is None:
        return ProcessingInfo(project, "", "", [], "", None, "", None)
    return ProcessingInfo(
        project, row.purpose, row.lawful_basis, list(json.loads(row.data_categories or "[]")),
        row.controller, row.retention_until, row.updated_by,
        row.updated_at if row.updated_by else None,
    )  # fmt: skip


def _text(name: str, value: str, multiline: bool = False) -> str:
    limit = LIMITS[name]
    if len(value) > limit:
        raise Invalid(f"{name} is {len(value)} characters: at most {limit}")
    allowed = "\t\n\r" if multiline else ""
    if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value):
        what = "control characters" if multiline else "line breaks or control characters"
        raise Invalid(f"{name} contains {what}: give plain text")
    return value


_MARKUP = re.compile(r"([\\`*_{}\[\]<>()#+!|~&])")


def _md(text: str) -> str:
    """One line of given text with Markdown and HTML markup characters escaped."""
    return _MARKUP.sub(r"\\\1", " ".join(text.split()))


def _md_block(text: str) -> str:
    lines = [_md(line) for line in text.strip().splitlines()]
    return "\n".join(lines) if any(lines) else "*not given*"
