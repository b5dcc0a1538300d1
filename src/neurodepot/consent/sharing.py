"""A project's sharing level (private, internal, public) and the steward's say on going public.

Owners change the level; `private` and `internal` apply at once, and so does going down from
public. Going public exposes the project's consented subjects (de-identified) to external
researchers, so it waits as a pending request until a data steward approves it, with a written
reason; the steward may reject it instead. A newer request replaces (supersedes) a pending one.
Every request and decision is a `SharingRequest` row, so the history of a project's level is
one table, and every change goes to the audit log in the same transaction.

`SharingRequest.reason` holds the requester's reason, `decision_reason` the steward's
(required).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.models import Project
from neurodepot.consent.models import SharingRequest
from neurodepot.depot.orm import utcnow
from neurodepot.errors import Conflict, Invalid

LEVELS = ("private", "internal", "public")
PUBLIC = "public"
REASON_LIMIT = 4000


@dataclass(frozen=True)
class SharingRequestInfo:
    id: int
    project: str
    level: str
    status: str  # pending, applied, rejected, superseded
    requested_by: str
    requested_at: datetime
    decided_by: str
    decided_at: datetime | None
    reason: str  # the requester's
    decision_reason: str  # the steward's


@dataclass(frozen=True)
class SharingStatus:
    project: str
    level: str
    pending: SharingRequestInfo | None
    history: tuple[SharingRequestInfo, ...]  # newest first


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise Invalid(f"a project's sharing level is one of {', '.join(LEVELS)}, not {level!r}")
    return level


def _check_reason(reason: str, required: bool) -> str:
    reason = reason.strip()
    if required and not reason:
        raise Invalid("a steward's decision needs a reason: say why, in a sentence or two")
    if len(reason) > REASON_LIMIT or "\x00" in reason:
        raise Invalid(f"a reason may have at most {REASON_LIMIT} characters")
    return reason


def request_level(
    db: Session, actor: str, project: str, level: str, reason: str = ""
) -> SharingRequestInfo:
    """An owner's change of `project`'s level: applied at once, or pending for going public.

    Who may ask is the edge's decision (ADMINISTER on the project). A pending request is
    superseded by this one; asking for `public` when the project is already public applies
    (nothing changes, and it is recorded).
    """
    check_level(level)
    reason = _check_reason(reason, required=False)
    row = _locked_project(db, project)
    _supersede_pending(db, actor, row)
    pending = level == PUBLIC and row.access != PUBLIC
    request = SharingRequest(
        project_id=row.id,
        level=level,
        status="pending" if pending else "applied",
        requested_by=actor,
        reason=reason,
    )
    db.add(request)
    db.flush()
    if pending:
        detail: dict[str, object] = {"level": level, "request": request.id}
        if reason:
            detail["reason"] = reason[:500]
        audit.record(db, actor, "sharing_requested", f"project:{project}", detail)
    else:
        request.decided_by, request.decided_at = actor, utcnow()
        _apply(db, actor, row, level, request.id)
    return _info(row.label, request)


def approve(db: Session, steward: str, project: str, reason: str) -> SharingRequestInfo:
    """A steward's approval of `project`'s pending request: it takes effect now.

    Raises `Conflict` when nothing is pending. Who may approve is the edge's decision
    (STEWARD); the local operator may act as steward.
    """
    return _decide(db, steward, project, reason, approved=True)


def reject(db: Session, steward: str, project: str, reason: str) -> SharingRequestInfo:
    """A steward's refusal of `project`'s pending request: its level stays as it is."""
    return _decide(db, steward, project, reason, approved=False)


def sharing_status(db: Session, project: str) -> SharingStatus:
    """`project`'s level now, the request waiting for a steward (if any), and every request."""
    row = find_project(db, project)
    rows = db.scalars(
        select(SharingRequest)
        .where(SharingRequest.project_id == row.id)
        .order_by(SharingRequest.id.desc())
    ).all()
    history = tuple(_info(row.label, r) for r in rows)
    pending = next((r for r in history if r.status == "pending"), None)
    return SharingStatus(row.label, row.access, pending, history)


def _decide(
    db: Session, steward: str, project: str, reason: str, approved: bool
) -> SharingRequestInfo:
    reason = _check_reason(reason, required=True)
    row = _locked_project(db, project)
    request = _pending(db, row)
    verb = "approve" if approved else "reject"
    if request is None:
        raise Conflict(
            f"project {project} has no pending sharing request to {verb}; its owners request "
            f"public sharing with `neurodepot share {project} public`"
        )
    request.status = "applied" if approved else "rejected"
    request.decided_by, request.decided_at = steward, utcnow()
    request.decision_reason = reason
    db.flush()
    audit.record(
        db,
        steward,
        "sharing_approved" if approved else "sharing_rejected",
        f"project:{project}",
        {"level": request.level, "request": request.id, "requested_by": request.requested_by},
    )
    if approved:
        _apply(db, steward, row, request.level, request.id)
    return _info(row.label, request)


def _apply(db: Session, actor: str, row: Project, level: str, request_id: int) -> None:
    before = row.access
    row.access = level
    db.flush()
    audit.record(
        db,
        actor,
        "access_changed",
        f"project:{row.label}",
        {"access": [before, level], "request": request_id},
    )


def _supersede_pending(db: Session, actor: str, row: Project) -> None:
    request = _pending(db, row)
    if request is not None:
        request.status, request.decided_by, request.decided_at = "superseded", actor, utcnow()
        db.flush()


def _pending(db: Session, row: Project) -> SharingRequest | None:
    return db.scalar(
        select(SharingRequest)
        .where(SharingRequest.project_id == row.id, SharingRequest.status == "pending")
        .order_by(SharingRequest.id.desc())
        .limit(1)
    )


def _locked_project(db: Session, project: str) -> Project:
    """The project row, locked on PostgreSQL so that two decisions on it run one after another.

    (SQLite has one writer at a time anyway.)
    """
    found = find_project(db, project)
    locked = db.scalar(
        select(Project)
        .where(Project.id == found.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    return locked


def _info(project: str, row: SharingRequest) -> SharingRequestInfo:
    return SharingRequestInfo(
        row.id, project, row.level, row.status, row.requested_by, row.requested_at,
        row.decided_by, row.decided_at, row.reason, row.decision_reason,
    )  # fmt: skip
