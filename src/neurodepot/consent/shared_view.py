"""A project's shared view: what people beyond its named team see of it, de-identified.

The subjects shown, counted and exported are exactly those the sharing rule allows for the
caller's kind of account (`access.facts.shared_subjects`: the project's access level and each
subject's current consent), named only by their pseudonyms. For the named team, admins and the
operator (`account` None) the view is what a centre member would see, so that they can check
what they share. Internal labels never appear in it, nor dates (the dataset shifts its own).

Pseudonyms are drawn the first time a subject or session is shown, so the listing writes: call
it in a transaction.
"""

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from neurodepot.access.facts import shared_subjects
from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.models import ImagingSession, Project, Scan, Subject
from neurodepot.consent.dua import SITE, accepted_ids, current_duas, unaccepted
from neurodepot.deid import linkage
from neurodepot.deid.check_report import OVERRIDDEN, PASS, CheckReport
from neurodepot.deid.models import SessionPseudonym, SubjectPseudonym
from neurodepot.deid.release_check import check_folder
from neurodepot.deid.shareable import ShareableSummary, build_shareable
from neurodepot.depot.blobstore import BlobStore
from neurodepot.depot.zip_stream import ZipPipe, open_archive, stream_entry
from neurodepot.errors import Conflict, NeurodepotError

TEAM_VIEW = "member"  # whose view the named team is shown: a centre member's


@dataclass(frozen=True)
class SharedSession:
    pseudonym: str
    modality: str
    scans: int


@dataclass(frozen=True)
class SharedSubject:
    pseudonym: str
    sessions: tuple[SharedSession, ...]


@dataclass(frozen=True)
class SharedDua:
    id: int
    scope: str  # `site` or the project's label
    version: int
    title: str
    accepted: bool  # by the caller


@dataclass(frozen=True)
class SharedSummary:
    project: str
    name: str
    description: str
    access: str
    view: str  # the kind of account whose view this is (`member` or `external`)
    subjects: int
    duas: tuple[SharedDua, ...]
    dua_required: bool  # beyond the named team a download needs every current DUA accepted
    to_accept: tuple[str, ...]  # what the caller must still accept to download (named, with ids)


def view_of(account: str | None) -> str:
    return account or TEAM_VIEW


def shared_labels(db: Session, account: str | None, project: str) -> list[str]:
    """The internal labels of the subjects shared with `account` (server side only)."""
    owner = find_project(db, project)
    return [label for _, label in _visible(db, owner, view_of(account))]


def shared_subjects_for(db: Session, account: str | None, project: str) -> list[SharedSubject]:
    """The subjects shared with `account`, by pseudonym, with their sessions (by pseudonym)."""
    owner = find_project(db, project)
    visible = _visible(db, owner, view_of(account))
    if not visible:
        return []
    with _unnamed(project, [label for _, label in visible]):
        return _listed(db, project, visible)


def _listed(db: Session, project: str, visible: list[tuple[int, str]]) -> list[SharedSubject]:
    ids = [subject_id for subject_id, _ in visible]
    names = _subject_pseudonyms(db, project, visible)
    sessions = db.execute(
        select(
            ImagingSession.id,
            ImagingSession.subject_id,
            ImagingSession.label,
            ImagingSession.modality,
            func.count(Scan.id),
        )
        .outerjoin(Scan, Scan.session_id == ImagingSession.id)
        .where(ImagingSession.subject_id.in_(ids))
        .group_by(
            ImagingSession.id,
            ImagingSession.subject_id,
            ImagingSession.label,
            ImagingSession.modality,
        )
    ).all()
    labels = dict(visible)
    drawn = _session_pseudonyms(
        db, project, [(s.id, labels[s.subject_id], s.label) for s in sessions]
    )
    by_subject: dict[int, list[SharedSession]] = {subject_id: [] for subject_id in ids}
    for session_id, subject_id, _, modality, scans in sessions:
        by_subject[subject_id].append(SharedSession(drawn[session_id], modality, scans))
    shown = [
        SharedSubject(names[i], tuple(sorted(by_subject[i], key=lambda s: s.pseudonym)))
        for i in ids
    ]
    return sorted(shown, key=lambda s: s.pseudonym)


def shared_summary(
    db: Session, project: str, account: str | None, user_id: int | None
) -> SharedSummary:
    """The project as shared with `account` (None: the named team), and the DUAs for `user_id`.

    Beyond the team (`account` given) `to_accept` names what `user_id` must still accept.
    """
    owner = find_project(db, project)
    view = view_of(account)
    count = db.scalar(
        select(func.count())
        .select_from(Subject)
        .where(Subject.project_id == owner.id, shared_subjects(view))
    )
    current = current_duas(db, owner.id)
    accepted = accepted_ids(db, user_id, [d.id for d in current])
    beyond_team = account is not None
    to_accept: tuple[str, ...] = ()
    if beyond_team and user_id is not None:
        to_accept = unaccepted(db, user_id, owner.id)
    duas = tuple(
        SharedDua(d.id, d.scope if d.scope == SITE else owner.label, d.version, d.title,
                  d.id in accepted)
        for d in current
    )  # fmt: skip
    return SharedSummary(
        owner.label, owner.name, owner.description, owner.access, view, count or 0, duas,
        beyond_team, to_accept,
    )  # fmt: skip


def build_shared_dataset(
    db: Session, blobs: BlobStore, project: str, labels: list[str], out: Path
) -> ShareableSummary:
    """The de-identified dataset of exactly the subjects `labels` (the visible ones) at `out`.

    Refused when `labels` is empty: an empty selection would otherwise mean the whole project.
    """
    if not labels:
        raise Conflict(
            f"nothing is shared from project {project} yet: no subject's consent and the "
            "project's access level allow it to be shared with this account"
        )
    with _unnamed(project, labels):
        return build_shareable(db, blobs, project, out, subjects=tuple(sorted(labels)), link=True)


def release_check(
    db: Session, blobs: BlobStore, project: str, folder: Path, actor: str
) -> CheckReport:
    """Check a built dataset as a release is checked (audited), before it leaves the centre.

    External researchers are beyond the centre: what they download must pass the
    de-identification criteria (or a steward must have overridden a failure), as a release must.
    """
    return check_folder(db, blobs, project, folder, actor)


def refusal(project: str, report: CheckReport) -> Conflict:
    failed = [r.criterion.value for r in report.results if r.status not in (PASS, OVERRIDDEN)]
    return Conflict(
        f"project {project}'s shared data has not passed the de-identification check "
        f"({', '.join(failed)}), so it cannot leave the centre yet: its owners run "
        f"`neurodepot check {project}` to see why"
    )


def zip_folder(folder: Path, root: str) -> Iterator[bytes]:
    """`folder` as a zip (entries under `root/`), in chunks: memory stays flat.

    Entries are stored, not deflated (NIfTI is already compressed).
    """
    pipe = ZipPipe()
    with open_archive(pipe) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = f"{root}/{path.relative_to(folder).as_posix()}"
            with path.open("rb") as source:
                yield from stream_entry(archive, pipe, name, source, path.stat().st_size)
    yield pipe.take()


def stream_and_remove(folder: Path, root: str, remove: Path) -> Iterator[bytes]:
    """`zip_folder(folder)`, then `remove` deleted, however the stream ends."""
    try:
        yield from zip_folder(folder, root)
    finally:
        shutil.rmtree(remove, ignore_errors=True)


@contextmanager
def _unnamed(project: str, labels: list[str]) -> Iterator[None]:
    """Let no error name a shared subject by its internal label (it goes beyond the team).

    One can arise only when the project changes meanwhile: a subject erased, or consent
    withdrawn between choosing the subjects and exporting them.
    """
    try:
        yield
    except NeurodepotError as exc:
        if not any(label in exc.message for label in labels):
            raise
        raise type(exc)(
            f"the shared view of project {project} could not be made because its subjects "
            "changed meanwhile (a consent withdrawn, a subject erased): ask again"
        ) from None


def _visible(db: Session, owner: Project, view: str) -> list[tuple[int, str]]:
    rows = db.execute(
        select(Subject.id, Subject.label)
        .where(Subject.project_id == owner.id, shared_subjects(view))
        .order_by(Subject.id)
    )
    return [(subject_id, label) for subject_id, label in rows]


def _subject_pseudonyms(
    db: Session, project: str, visible: list[tuple[int, str]]
) -> dict[int, str]:
    """Subject id → pseudonym, drawing the missing ones."""
    ids = [subject_id for subject_id, _ in visible]
    known = dict(
        db.execute(
            select(SubjectPseudonym.subject_id, SubjectPseudonym.pseudonym).where(
                SubjectPseudonym.subject_id.in_(ids)
            )
        ).all()
    )
    for subject_id, label in visible:
        if subject_id not in known:
            known[subject_id] = _drawn(db, partial(_subject_pseudonym, db, project, label))
    return known


def _session_pseudonyms(
    db: Session, project: str, sessions: list[tuple[int, str, str]]
) -> dict[int, str]:
    """Session id → pseudonym for `(id, subject label, session label)`, drawing missing ones."""
    known = dict(
        db.execute(
            select(SessionPseudonym.session_id, SessionPseudonym.pseudonym).where(
                SessionPseudonym.session_id.in_([s[0] for s in sessions])
            )
        ).all()
    )
    for session_id, subject, label in sessions:
        if session_id not in known:
            draw = partial(linkage.session_pseudonym, db, project, subject, label)
            known[session_id] = _drawn(db, draw)
    return known


def _subject_pseudonym(db: Session, project: str, label: str) -> str:
    return linkage.subject_link(db, project, label).pseudonym


def _drawn(db: Session, draw: Callable[[], str]) -> str:
    """Draw in a savepoint; if another request drew the same one first, read theirs."""
    try:
        with db.begin_nested():
            return draw()
    except IntegrityError:
        return draw()
