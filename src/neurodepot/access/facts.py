"""What the policy needs to know from the database, looked up at the edge.

`project_facts` gathers the facts `decide` takes about one project; `visible_projects` and
`visible_subjects` are the same rules as SQL conditions, so that listings (and their counts)
show only what the caller may see, without asking the policy row by row. Both are built from
the policy's own table (`SHARED_CONSENT`), so the rule is written once.
"""

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from neurodepot.access.models import Membership
from neurodepot.access.policy import (
    SHARED_CONSENT,
    Principal,
    PrincipalKind,
    ProjectFacts,
    SharingFacts,
)
from neurodepot.catalog.models import Project, Subject
from neurodepot.consent.dua import unaccepted
from neurodepot.consent.records import subjects_with_consent


def project_facts(db: Session, principal: Principal, project: str) -> ProjectFacts | None:
    """The project's access level, the caller's role in it, and what DUAs remain to accept.

    The DUAs are looked up beyond the project's named people only; None: no such project.
    """
    row = db.execute(select(Project.id, Project.access).where(Project.label == project)).first()
    if row is None:
        return None
    role = None
    sharing = SharingFacts()
    if principal.user_id is not None:
        role = db.scalar(
            select(Membership.role).where(
                Membership.user_id == principal.user_id, Membership.project_id == row.id
            )
        )
        if role is None:
            sharing = SharingFacts(unaccepted(db, principal.user_id, row.id))
    return ProjectFacts(row.access, role, sharing)


def _named_projects(principal: Principal) -> ColumnElement[bool]:
    return Project.id.in_(
        select(Membership.project_id).where(Membership.user_id == principal.user_id)
    )


def _sees_everything(principal: Principal) -> bool:
    return principal.kind is PrincipalKind.OPERATOR or principal.is_admin


def visible_projects(principal: Principal) -> ColumnElement[bool]:
    """A condition on `Project` true for the projects `principal` may see listed.

    Those they have a role in, and those shared with their kind of account.
    """
    if _sees_everything(principal):
        return true()
    if principal.kind is not PrincipalKind.USER or principal.user_id is None:
        return false()
    shared = [a for (account, a) in SHARED_CONSENT if account == principal.account]
    return or_(_named_projects(principal), Project.access.in_(shared))


def visible_subjects(principal: Principal) -> ColumnElement[bool]:
    """A condition on `Subject` true for the subjects `principal` may see (and count).

    The named people of a project see all its subjects; beyond them, a subject is visible
    only if the project's access and the subject's current consent both allow it.
    """
    if _sees_everything(principal):
        return true()
    if principal.kind is not PrincipalKind.USER or principal.user_id is None:
        return false()
    named = Subject.project_id.in_(
        select(Membership.project_id).where(Membership.user_id == principal.user_id)
    )
    return or_(named, shared_subjects(principal.account))


def shared_subjects(account: str) -> ColumnElement[bool]:
    """A condition on `Subject`: shared with an `account` kind beyond the named people."""
    clauses = [
        and_(
            Subject.project_id.in_(select(Project.id).where(Project.access == access)),
            Subject.id.in_(subjects_with_consent(levels)),
        )
        for (kind, access), levels in SHARED_CONSENT.items()
        if kind == account
    ]
    return or_(false(), *clauses)
