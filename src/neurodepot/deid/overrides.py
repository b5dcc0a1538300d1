"""Stewards' overrides: a failed criterion let through for one release, with a written reason.

Only an active account with the steward role may override, the reason must say something, and
every override (and its revocation) goes to the audit log. An override names the release it is
for, so it never carries over to the next one silently.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.access.models import User
from neurodepot.catalog.hierarchy import find_project
from neurodepot.deid.check import Criterion
from neurodepot.deid.models import CheckOverride
from neurodepot.errors import Denied, Invalid, NotFound

MIN_REASON_LENGTH = 20
CANDIDATE = "candidate"  # the release being prepared, until releases have versions


@dataclass(frozen=True)
class Override:
    id: int
    project: str
    release: str
    criterion: str
    reason: str
    steward: str
    created_at: datetime
    revoked_at: datetime | None


def parse_criterion(name: str) -> Criterion:
    try:
        return Criterion(name.upper())
    except ValueError:
        known = ", ".join(c.value for c in Criterion)
        raise Invalid(f"unknown criterion {name!r}: choose one of {known}") from None


def _info(row: CheckOverride, project: str) -> Override:
    return Override(
        row.id,
        project,
        row.release,
        row.criterion,
        row.reason,
        row.steward,
        row.created_at,
        row.revoked_at,
    )


def add_override(
    db: Session,
    project: str,
    criterion: str,
    reason: str,
    steward: str,
    actor: str,
    release: str = CANDIDATE,
) -> Override:
    """Record a steward's override of `criterion` for `release` of `project` (audited)."""
    owner = find_project(db, project)
    chosen = parse_criterion(criterion)
    account = db.scalar(select(User).where(User.username == steward))
    if account is None or account.status != "active" or not account.is_steward:
        raise Denied(f"{steward!r} is not an active steward: only a data steward may override")
    reason = reason.strip()
    if len(reason) < MIN_REASON_LENGTH:
        raise Invalid(
            f"the reason must say why the failure is acceptable (at least {MIN_REASON_LENGTH} "
            "characters)"
        )
    row = CheckOverride(
        project_id=owner.id,
        release=release,
        criterion=chosen.value,
        reason=reason,
        steward=steward,
    )
    db.add(row)
    db.flush()
    audit.record(
        db,
        actor,
        "check_overridden",
        project,
        {"criterion": chosen.value, "release": release, "steward": steward, "override": row.id},
        note=reason,
    )
    return _info(row, project)


def revoke_override(db: Session, project: str, override_id: int, actor: str) -> Override:
    owner = find_project(db, project)
    row = db.get(CheckOverride, override_id)
    if row is None or row.project_id != owner.id:
        raise NotFound(f"project {project} has no override {override_id}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        audit.record(
            db, actor, "check_override_revoked", project, {"override": row.id}, note=row.reason
        )
    return _info(row, project)


def list_overrides(db: Session, project: str) -> list[Override]:
    owner = find_project(db, project)
    rows = db.scalars(
        select(CheckOverride).where(CheckOverride.project_id == owner.id).order_by(CheckOverride.id)
    )
    return [_info(row, project) for row in rows]


def active_overrides(db: Session, project: str, release: str = CANDIDATE) -> dict[Criterion, str]:
    """The reasons of the overrides in force for `release`, by criterion (latest wins)."""
    found: dict[Criterion, str] = {}
    for override in list_overrides(db, project):
        if override.release == release and override.revoked_at is None:
            found[Criterion(override.criterion)] = f"{override.reason} ({override.steward})"
    return found
