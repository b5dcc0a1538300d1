"""Recording, withdrawing and reading subjects' consent.

Every change adds a record (history is never overwritten) and goes to the audit log. A subject
without a record has consent `none`; a subject whose newest record withdraws consent is
`withdrawn`: shared with no one and left out of every later export and release.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.catalog.hierarchy import find_project, find_subject
from neurodepot.catalog.models import Subject
from neurodepot.consent.models import CONSENT_LEVELS, ConsentRecord
from neurodepot.errors import Invalid

WITHDRAWN = "withdrawn"
# What `effective_level` returns: a recorded level, or `withdrawn`.
EFFECTIVE_LEVELS = (*CONSENT_LEVELS, WITHDRAWN)
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
TEXT_LIMITS = {"form": 255, "form_version": 64, "restrictions": 4000}


@dataclass(frozen=True)
class ConsentInfo:
    """One consent record as shown; `level` is the effective level (`withdrawn` included)."""

    project: str
    subject: str
    level: str
    form: str
    form_version: str
    given_on: date | None
    restrictions: str
    withdrawn_on: date | None
    recorded_by: str
    recorded_at: datetime | None


def effective_level(record: ConsentRecord | None) -> str:
    if record is None:
        return "none"
    return WITHDRAWN if record.withdrawn_on is not None else record.level


def check_level(level: str) -> str:
    if level not in CONSENT_LEVELS:
        raise Invalid(f"consent level is one of {', '.join(CONSENT_LEVELS)}, not {level!r}")
    return level


def latest_record_ids() -> Select[tuple[int]]:
    """The id of each subject's newest consent record (its current consent)."""
    return select(func.max(ConsentRecord.id)).group_by(ConsentRecord.subject_id)


def subjects_with_consent(levels: tuple[str, ...]) -> Select[tuple[int]]:
    """The ids of subjects whose current, not withdrawn, consent is one of `levels`."""
    return select(ConsentRecord.subject_id).where(
        ConsentRecord.id.in_(latest_record_ids()),
        ConsentRecord.withdrawn_on.is_(None),
        ConsentRecord.level.in_(levels),
    )


def withdrawn_subject_ids() -> Select[tuple[int]]:
    return select(ConsentRecord.subject_id).where(
        ConsentRecord.id.in_(latest_record_ids()), ConsentRecord.withdrawn_on.is_not(None)
    )


def set_consent(
    db: Session,
    actor: str,
    project: str,
    subject: str,
    level: str,
    form: str = "",
    form_version: str = "",
    given_on: date | None = None,
    restrictions: str = "",
) -> ConsentInfo:
    """Record `subject`'s consent at `level` (a new record: the history stays)."""
    check_level(level)
    check_text(form=form, form_version=form_version, restrictions=restrictions)
    if given_on is not None and given_on > date.today():
        raise Invalid(f"consent date {given_on} is in the future: give the date it was given")
    row = find_subject(db, project, subject)
    record = ConsentRecord(
        subject_id=row.id,
        project_id=row.project_id,
        level=level,
        form=form,
        form_version=form_version,
        given_on=given_on,
        restrictions=restrictions,
        recorded_by=actor,
    )
    db.add(record)
    db.flush()
    audit.record(
        db, actor, "consent_set", f"{project}/{subject}",
        {"level": level, "form": form, "form_version": form_version},
    )  # fmt: skip
    return _info(project, subject, record)


def withdraw_consent(
    db: Session, actor: str, project: str, subject: str, on: date | None = None, note: str = ""
) -> ConsentInfo:
    """Record that `subject` withdrew consent (on `on`, default today); effective at once."""
    on = on or date.today()
    if on > date.today():
        raise Invalid(f"withdrawal date {on} is in the future: give the date it was withdrawn")
    check_text(restrictions=note)
    row = find_subject(db, project, subject)
    previous = current_record(db, row.id)
    record = ConsentRecord(
        subject_id=row.id,
        project_id=row.project_id,
        level=previous.level if previous is not None else "none",
        form=previous.form if previous is not None else "",
        form_version=previous.form_version if previous is not None else "",
        given_on=previous.given_on if previous is not None else None,
        restrictions=note,
        withdrawn_on=on,
        recorded_by=actor,
    )
    db.add(record)
    db.flush()
    audit.record(db, actor, "consent_withdrawn", f"{project}/{subject}", {"on": on.isoformat()})
    return _info(project, subject, record)


def releases_containing(db: Session, project: str, subject: str) -> list[str]:
    """The published releases of `project` that still contain `subject`, for its owners to act on.

    Releases are not built yet (a later issue), so none contain anyone: always empty for now.
    Callers (withdrawal, erasure) already show the list, so nothing changes for them then.
    """
    return []


def parse_date(value: str, what: str) -> date:
    """`value` as an ISO day (YYYY-MM-DD) that is not in the future; `what` names it in errors."""
    text = value.strip()
    if not DATE_PATTERN.fullmatch(text):
        raise Invalid(f"{what} {value[:40]!r} is not a date: write it as YYYY-MM-DD")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{what} {text!r} is not a day of the calendar") from None
    if day > date.today():
        raise Invalid(f"{what} {day} is in the future: give the day it happened")
    return day


def current_record(db: Session, subject_id: int) -> ConsentRecord | None:
    return db.scalar(
        select(ConsentRecord)
        .where(ConsentRecord.subject_id == subject_id)
        .order_by(ConsentRecord.id.desc())
        .limit(1)
    )


def current_consent(db: Session, project: str, subject: str) -> ConsentInfo:
    row = find_subject(db, project, subject)
    return _info(project, subject, current_record(db, row.id))


def consent_history(db: Session, project: str, subject: str) -> list[ConsentInfo]:
    """Every record of `subject`, oldest first."""
    row = find_subject(db, project, subject)
    records = db.scalars(
        select(ConsentRecord).where(ConsentRecord.subject_id == row.id).order_by(ConsentRecord.id)
    )
    return [_info(project, subject, r) for r in records]


def project_consents(db: Session, project: str) -> list[ConsentInfo]:
    """The current consent of every subject of `project`, by label (`none` without a record)."""
    owner = find_project(db, project)
    latest = {
        r.subject_id: r
        for r in db.scalars(
            select(ConsentRecord).where(
                ConsentRecord.project_id == owner.id, ConsentRecord.id.in_(latest_record_ids())
            )
        )
    }
    subjects = db.execute(
        select(Subject.id, Subject.label)
        .where(Subject.project_id == owner.id)
        .order_by(Subject.label)
    ).all()
    return [_info(project, label, latest.get(subject_id)) for subject_id, label in subjects]


def levels_by_label(db: Session, project: str) -> dict[str, str]:
    """Subject label → effective consent level, for every subject of `project`."""
    return {c.subject: c.level for c in project_consents(db, project)}


def withdrawn_labels(db: Session, project: str) -> set[str]:
    """The subjects of `project` who withdrew consent: left out of every export."""
    owner = find_project(db, project)
    return set(
        db.scalars(
            select(Subject.label).where(
                Subject.project_id == owner.id, Subject.id.in_(withdrawn_subject_ids())
            )
        )
    )


def check_text(**values: str) -> None:
    """Refuse a text field (`form`, `form_version`, `restrictions`) too long or not plain."""
    for name, value in values.items():
        if len(value) > TEXT_LIMITS[name]:
            raise Invalid(f"{name} is {len(value)} characters: at most {TEXT_LIMITS[name]}")
        if any(ord(c) < 32 and c not in "\t\n" for c in value):
            raise Invalid(f"{name} contains control characters: give plain text")


def _info(project: str, subject: str, record: ConsentRecord | None) -> ConsentInfo:
    if record is None:
        return ConsentInfo(project, subject, "none", "", "", None, "", None, "", None)
    return ConsentInfo(
        project=project,
        subject=subject,
        level=effective_level(record),
        form=record.form,
        form_version=record.form_version,
        given_on=record.given_on,
        restrictions=record.restrictions,
        withdrawn_on=record.withdrawn_on,
        recorded_by=record.recorded_by,
        recorded_at=record.recorded_at,
    )
