"""Pseudonyms and the linkage table: who a shared subject really is, known to the owners alone.

Each subject and session that is shared gets a fresh random label the first time it is needed
(`sub-7KQ2M9XD`), drawn from the system's CSPRNG and never derived from an internal identifier,
and keeps it across every later release of the project. A subject also gets a random date
offset (whole days, one to about eleven years back) so that shifted dates keep their intervals.
The project's UID key turns original UIDs into new ones consistently.

Together these re-identify shared data, so every read of the table is audited, and
`destroy_linkage` deletes all of it: afterwards nothing ties the shared data to a person, and
no more de-identified data can be made for the project (its pseudonyms could not be kept).
"""

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.catalog.hierarchy import find_project, find_session, find_subject
from neurodepot.catalog.models import ImagingSession, Subject
from neurodepot.deid.models import (
    PSEUDONYM_LENGTH,
    DeidSettings,
    SessionPseudonym,
    SubjectPseudonym,
)
from neurodepot.deid.profile import ProfileOption, parse_options
from neurodepot.errors import Conflict, Invalid

# Crockford's base32: no I, L, O or U, so a label read aloud or copied by hand survives.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MIN_OFFSET_DAYS = 365
OFFSET_SPAN_DAYS = 3650
MAX_DRAWS = 20
UID_KEY_BYTES = 32

# What a new project's shared data keeps: shifted dates (intervals matter to longitudinal
# research) and age, sex, size and weight (BIDS participants.tsv; search by age and sex).
DEFAULT_OPTIONS = frozenset(
    {ProfileOption.RETAIN_MODIFIED_DATES, ProfileOption.RETAIN_PATIENT_CHARACTERISTICS}
)
DEFAULT_UID_ROOT = "2.25"


@dataclass(frozen=True)
class DeidConfig:
    """A project's de-identification settings as the domain uses them."""

    project: str
    options: frozenset[ProfileOption]
    uid_root: str
    private_allow: frozenset[tuple[str, int]]
    linkage_destroyed_at: datetime | None


@dataclass(frozen=True)
class SubjectLink:
    subject: str
    pseudonym: str
    date_offset_days: int


@dataclass(frozen=True)
class LinkageRow:
    subject: str
    session: str | None
    pseudonym: str
    date_offset_days: int | None


def draw_pseudonym() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(PSEUDONYM_LENGTH))


def draw_offset_days() -> int:
    """A shift into the past, so that a shifted date is never in the future."""
    return -(MIN_OFFSET_DAYS + secrets.randbelow(OFFSET_SPAN_DAYS))


def _settings(db: Session, project: str, create: bool = True) -> DeidSettings | None:
    owner = find_project(db, project)
    row = db.get(DeidSettings, owner.id)
    if row is None and create:
        row = DeidSettings(
            project_id=owner.id,
            options=json.dumps(sorted(o.value for o in DEFAULT_OPTIONS)),
            uid_root=DEFAULT_UID_ROOT,
            private_allow="[]",
            uid_key=secrets.token_bytes(UID_KEY_BYTES),
        )
        db.add(row)
        db.flush()
    return row


def _config(project: str, row: DeidSettings | None) -> DeidConfig:
    if row is None:
        return DeidConfig(project, DEFAULT_OPTIONS, DEFAULT_UID_ROOT, frozenset(), None)
    allow = frozenset(
        (str(creator), int(element)) for creator, element in json.loads(row.private_allow)
    )
    return DeidConfig(
        project,
        parse_options(json.loads(row.options)),
        row.uid_root,
        allow,
        row.linkage_destroyed_at,
    )


def project_config(db: Session, project: str) -> DeidConfig:
    """The project's settings (the defaults until someone sets them)."""
    return _config(project, _settings(db, project, create=False))


def parse_private_allow(entries: list[str]) -> frozenset[tuple[str, int]]:
    """`CREATOR:0xEE` entries (a private creator and the element's low byte) as pairs."""
    allowed: set[tuple[str, int]] = set()
    for entry in entries:
        creator, sep, element = entry.rpartition(":")
        try:
            number = int(element, 0)
        except ValueError:
            number = -1
        if not sep or not creator.strip() or not 0x10 <= number <= 0xFF:
            raise Invalid(
                f"private allow-list entry {entry!r} is not CREATOR:ELEMENT with ELEMENT "
                "between 0x10 and 0xFF, e.g. 'SIEMENS CSA HEADER:0x10'"
            )
        allowed.add((creator.strip(), number))
    return frozenset(allowed)


def configure(
    db: Session,
    project: str,
    actor: str,
    options: list[str] | None = None,
    uid_root: str | None = None,
    private_allow: list[str] | None = None,
) -> DeidConfig:
    """Change the project's profile options, UID root or private allow-list (audited)."""
    from neurodepot.deid.uid_remap import validate_uid_root

    row = _settings(db, project)
    assert row is not None
    changed: dict[str, object] = {}
    if options is not None:
        parsed = parse_options(options)
        row.options = json.dumps(sorted(o.value for o in parsed))
        changed["options"] = sorted(o.value for o in parsed)
    if uid_root is not None:
        if row.linkage_destroyed_at is None and uid_root != row.uid_root:
            row.uid_root = validate_uid_root(uid_root)
        elif row.linkage_destroyed_at is not None:
            raise Conflict(f"the linkage of project {project} was destroyed: nothing to remap")
        changed["uid_root"] = row.uid_root
    if private_allow is not None:
        allowed = parse_private_allow(private_allow)
        row.private_allow = json.dumps(sorted([c, e] for c, e in allowed))
        changed["private_allow"] = sorted(f"{c}:{e:#04x}" for c, e in allowed)
    row.updated_at = datetime.now(UTC)
    audit.record(db, actor, "deid_settings_changed", project, changed)
    return _config(project, row)


def uid_key(db: Session, project: str) -> bytes:
    """The project's UID key; refused once the linkage is destroyed."""
    row = _settings(db, project)
    assert row is not None
    _refuse_destroyed(project, row)
    assert row.uid_key is not None
    return row.uid_key


def _refuse_destroyed(project: str, row: DeidSettings) -> None:
    if row.linkage_destroyed_at is not None or row.uid_key is None:
        when = row.linkage_destroyed_at.date().isoformat() if row.linkage_destroyed_at else ""
        raise Conflict(
            f"the linkage of project {project} was destroyed {when}: its shared data can no "
            "longer be tied to anyone, and no new de-identified data can be made from it"
        )


def subject_link(db: Session, project: str, subject: str) -> SubjectLink:
    """The subject's pseudonym and date offset, drawn now if it has none yet."""
    row = _settings(db, project)
    assert row is not None
    _refuse_destroyed(project, row)
    found = find_subject(db, project, subject)
    link = db.get(SubjectPseudonym, found.id)
    if link is None:
        link = SubjectPseudonym(
            subject_id=found.id,
            project_id=found.project_id,
            pseudonym=_fresh(db, SubjectPseudonym, found.project_id),
            date_offset_days=draw_offset_days(),
        )
        db.add(link)
        db.flush()
    return SubjectLink(subject, link.pseudonym, link.date_offset_days)


def session_pseudonym(db: Session, project: str, subject: str, session: str) -> str:
    """The session's pseudonym, drawn now if it has none yet."""
    row = _settings(db, project)
    assert row is not None
    _refuse_destroyed(project, row)
    found = find_session(db, project, subject, session)
    link = db.get(SessionPseudonym, found.id)
    if link is None:
        link = SessionPseudonym(
            session_id=found.id,
            project_id=found.project_id,
            pseudonym=_fresh(db, SessionPseudonym, found.project_id),
        )
        db.add(link)
        db.flush()
    return link.pseudonym


def _fresh(
    db: Session, model: type[SubjectPseudonym] | type[SessionPseudonym], project_id: int
) -> str:
    """A pseudonym not yet used by the project's subjects (or sessions)."""
    taken = set(db.scalars(select(model.pseudonym).where(model.project_id == project_id)))
    for _ in range(MAX_DRAWS):
        label = draw_pseudonym()
        if label not in taken:
            return label
    raise Conflict("could not draw an unused pseudonym: the project's label space is exhausted")


def read_linkage(db: Session, project: str, actor: str) -> list[LinkageRow]:
    """Every internal label with its pseudonym. Audited: it re-identifies shared data."""
    owner = find_project(db, project)
    rows: list[LinkageRow] = []
    subjects = db.execute(
        select(Subject.label, SubjectPseudonym.pseudonym, SubjectPseudonym.date_offset_days)
        .join(SubjectPseudonym, SubjectPseudonym.subject_id == Subject.id)
        .where(Subject.project_id == owner.id)
        .order_by(Subject.label)
    )
    rows.extend(LinkageRow(s, None, p, o) for s, p, o in subjects)
    sessions = db.execute(
        select(Subject.label, ImagingSession.label, SessionPseudonym.pseudonym)
        .join(ImagingSession, ImagingSession.subject_id == Subject.id)
        .join(SessionPseudonym, SessionPseudonym.session_id == ImagingSession.id)
        .where(Subject.project_id == owner.id)
        .order_by(Subject.label, ImagingSession.label)
    )
    rows.extend(LinkageRow(s, e, p, None) for s, e, p in sessions)
    audit.record(db, actor, "linkage_read", project, {"rows": len(rows)})
    return rows


def subject_pseudonyms(db: Session, project: str) -> dict[str, str]:
    """Internal subject label → pseudonym, for those that have one.

    For the checker's own use (consent by subject folder), so not shown and not audited;
    `read_linkage` is the audited way to show the linkage to a person.
    """
    owner = find_project(db, project)
    rows = db.execute(
        select(Subject.label, SubjectPseudonym.pseudonym)
        .join(SubjectPseudonym, SubjectPseudonym.subject_id == Subject.id)
        .where(Subject.project_id == owner.id)
    )
    return {label: pseudonym for label, pseudonym in rows}


def destroy_linkage(db: Session, project: str, actor: str) -> int:
    """Delete every pseudonym link and the UID key of the project, for good (audited)."""
    row = _settings(db, project)
    assert row is not None
    if row.linkage_destroyed_at is not None:
        raise Conflict(f"the linkage of project {project} was already destroyed")
    owner = find_project(db, project)
    removed = 0
    for model in (SubjectPseudonym, SessionPseudonym):
        result = db.execute(delete(model).where(model.project_id == owner.id))
        removed += result.rowcount or 0  # type: ignore[attr-defined]
    row.uid_key = None
    row.linkage_destroyed_at = datetime.now(UTC)
    audit.record(db, actor, "linkage_destroyed", project, {"rows": removed})
    return removed
